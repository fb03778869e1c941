//! What a Rust binary records about its toolchain: the `.comment` rustc line, the
//! `/rustc/<commit>/` paths std's panic locations carry, cargo-auditable's `.dep-v0`
//! crate list, and (only when the evidence cannot be read two ways) the panic
//! strategy. LTO, codegen-units and opt-level leave no trace in the output, so they
//! are always reported as unknown.

use std::io::Read;

use serde::Serialize;

use super::elf::{find, Parsed};

/// cargo-auditable data is a few KiB; anything past this is not worth inflating.
const MAX_DEP_JSON: u64 = 8 * 1024 * 1024;
const RUSTC_PREFIX: &str = "rustc version ";

#[derive(Debug, Clone, Serialize)]
pub struct RustCrate {
    pub name: String,
    pub version: String,
    pub source: String,
    /// `runtime` or `build`.
    pub kind: String,
    pub root: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RustInfo {
    /// As `rustc --version` prints it after `rustc `: `1.95.0 (59807616e 2026-04-14)`.
    pub rustc_version: Option<String>,
    /// The full commit hash from `/rustc/<sha>/library/...` paths.
    pub toolchain_commit: Option<String>,
    /// From cargo-auditable's `.dep-v0`; `null` when the binary has none.
    pub crates: Option<Vec<RustCrate>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crates_error: Option<String>,
    /// `unwind`, `abort` or `unknown`.
    pub panic: &'static str,
    pub panic_evidence: Option<String>,
    pub lto: &'static str,
    pub codegen_units: &'static str,
    pub opt_level: &'static str,
}

pub(crate) fn rustc_comment(parsed: &Parsed<'_>) -> Option<String> {
    parsed
        .comments
        .iter()
        .find_map(|c| c.strip_prefix(RUSTC_PREFIX))
        .map(str::to_string)
}

/// The first `/rustc/<40 hex>/` in the read-only data.
pub(crate) fn toolchain_commit(parsed: &Parsed<'_>) -> Option<String> {
    const PREFIX: &[u8] = b"/rustc/";
    for section in &parsed.sections {
        if !section.is_alloc() || section.is_exec() {
            continue;
        }
        let Some(mut data) = section.data else {
            continue;
        };
        while let Some(at) = find(data, PREFIX) {
            let rest = &data[at + PREFIX.len()..];
            if rest.len() > 40
                && rest[..40]
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                && rest[40] == b'/'
            {
                return Some(String::from_utf8_lossy(&rest[..40]).into_owned());
            }
            data = rest;
        }
    }
    None
}

#[derive(serde::Deserialize)]
struct AuditData {
    packages: Vec<AuditPackage>,
}

#[derive(serde::Deserialize)]
struct AuditPackage {
    name: String,
    version: String,
    #[serde(default)]
    source: serde_json::Value,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    root: bool,
}

/// cargo-auditable's `.dep-v0`: zlib-compressed JSON (rust-secure-code/cargo-auditable
/// `auditable-serde`).
pub(crate) fn dep_v0(parsed: &Parsed<'_>) -> Option<Result<Vec<RustCrate>, String>> {
    let section = parsed.section(".dep-v0")?;
    let Some(compressed) = section.data else {
        return Some(Err(".dep-v0 lies outside the file".into()));
    };
    let mut json = Vec::new();
    let decoder = flate2::read::ZlibDecoder::new(compressed);
    if let Err(e) = decoder.take(MAX_DEP_JSON + 1).read_to_end(&mut json) {
        return Some(Err(format!(".dep-v0 does not inflate: {e}")));
    }
    if json.len() as u64 > MAX_DEP_JSON {
        return Some(Err(".dep-v0 inflates past 8 MiB".into()));
    }
    let audit: AuditData = match serde_json::from_slice(&json) {
        Ok(audit) => audit,
        Err(e) => return Some(Err(format!(".dep-v0 is not cargo-auditable JSON: {e}"))),
    };
    Some(Ok(audit
        .packages
        .into_iter()
        .map(|p| RustCrate {
            name: p.name,
            version: p.version,
            source: match p.source {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => "crates.io".into(),
                other => other.to_string(),
            },
            kind: p.kind.unwrap_or_else(|| "runtime".into()),
            root: p.root,
        })
        .collect()))
}

/// Only two readings are unambiguous. Symbols of exactly one of the panic runtime
/// crates; or, in a binary whose unwinder is a shared library, whether
/// `_Unwind_RaiseException` (called only by `panic_unwind`) is imported. Anything
/// else, e.g. a stripped static binary, is `unknown` (`.eh_frame` is there either way,
/// rust-lang/rust#143613).
pub(crate) fn panic_strategy(parsed: &Parsed<'_>) -> (&'static str, Option<String>) {
    let s = &parsed.symbols;
    match (s.panic_unwind_crate, s.panic_abort_crate) {
        (true, false) => {
            return (
                "unwind",
                Some("symbols of the panic_unwind runtime crate".into()),
            )
        }
        (false, true) => {
            return (
                "abort",
                Some("symbols of the panic_abort runtime crate".into()),
            )
        }
        (true, true) => return ("unknown", None),
        (false, false) => {}
    }
    if parsed.needed.iter().any(|lib| lib.starts_with("libstd-")) {
        // `-C prefer-dynamic`: the panic runtime lives in libstd's shared object.
        return ("unknown", None);
    }
    if s.imports_unwind_raise {
        return (
            "unwind",
            Some("imports _Unwind_RaiseException, which only panic_unwind calls".into()),
        );
    }
    if s.imports_unwinder {
        return (
            "abort",
            Some(
                "imports the shared unwinder but not _Unwind_RaiseException, which panic_unwind would call"
                    .into(),
            ),
        );
    }
    ("unknown", None)
}

pub(crate) fn rust_info(parsed: &Parsed<'_>) -> RustInfo {
    let (crates, crates_error) = match dep_v0(parsed) {
        None => (None, None),
        Some(Ok(crates)) => (Some(crates), None),
        Some(Err(e)) => (None, Some(e)),
    };
    let (panic, panic_evidence) = panic_strategy(parsed);
    RustInfo {
        rustc_version: rustc_comment(parsed),
        toolchain_commit: toolchain_commit(parsed),
        crates,
        crates_error,
        panic,
        panic_evidence,
        lto: "unknown",
        codegen_units: "unknown",
        opt_level: "unknown",
    }
}
