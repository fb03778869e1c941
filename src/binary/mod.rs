//! What the ELF files in an image are made of: identity, language and toolchain
//! (Go build info, rustc), linking, size anatomy and exact strip savings. Sources
//! for every rule are in `../shared/FACTS.md` ("Binaries").
//!
//! `analyze` sees hostile bytes (anything in a layer that starts with `\x7fELF`), so
//! it never panics and never sizes an allocation from a header value that the file's
//! own length has not bounded; a broken file gives a report with `malformed` set and
//! whatever could still be read.

mod anatomy;
pub mod attribution;
pub mod budget;
mod elf;
mod go;
mod kinds;
mod rust;
mod strip;

use serde::Serialize;

pub use anatomy::{Anatomy, AnatomyGroup};
pub use attribution::{Attribution, AttributionItem};
pub use go::{GoInfo, GoModule, GoSettings};
pub use kinds::{AnatomyPart, ElfClass, ElfKind, ElfType, Endian, Language, Linkage, Machine};
pub use rust::{RustCrate, RustInfo};
pub use strip::{stripped, StripPrediction};

/// The forensic record of one ELF file.
#[derive(Debug, Clone, Serialize)]
pub struct BinaryReport {
    pub path: String,
    pub size: u64,
    /// `elf32` or `elf64`.
    pub class: Option<ElfClass>,
    /// `little` or `big`.
    pub endian: Option<Endian>,
    /// `x86_64`, `aarch64`, … (`unknown(N)` for others).
    pub machine: Option<Machine>,
    /// `exec`, `pie`, `shared`, `relocatable`, `core` or `unknown`.
    pub elf_type: ElfType,
    /// GNU build-id, hex.
    pub build_id: Option<String>,
    /// `go`, `rust`, `c/c++` or `unknown`.
    pub language: Language,
    /// What the language verdict rests on, strongest first.
    pub language_evidence: Vec<String>,
    /// `static`, `static-pie`, `dynamic` or `unknown`.
    pub linkage: Linkage,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    /// Highest `GLIBC_x.y` symbol version required (`GLIBC_2.34`).
    pub glibc_version_needed: Option<String>,
    pub has_symbol_table: bool,
    pub has_debug_info: bool,
    pub go: Option<GoInfo>,
    pub rust: Option<RustInfo>,
    pub anatomy: Option<Anatomy>,
    pub strip: Option<StripPrediction>,
    /// Which packages, crates or symbols the text section holds; `null` for files
    /// other than executables and shared objects with a `.text` section.
    pub attribution: Option<Attribution>,
    /// Why `strip` is null for a file that was analysed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strip_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
}

impl BinaryReport {
    /// An executable outside the system directories: what the image was built to run.
    pub fn is_application(&self) -> bool {
        self.elf_type.is_executable() && !crate::category::is_system_path(&self.path)
    }

    pub(crate) fn empty(path: &str, size: u64) -> Self {
        Self {
            path: path.to_string(),
            size,
            class: None,
            endian: None,
            machine: None,
            elf_type: ElfType::Unknown,
            build_id: None,
            language: Language::Unknown,
            language_evidence: Vec::new(),
            linkage: Linkage::Unknown,
            interpreter: None,
            needed: Vec::new(),
            soname: None,
            rpath: Vec::new(),
            runpath: Vec::new(),
            glibc_version_needed: None,
            has_symbol_table: false,
            has_debug_info: false,
            go: None,
            rust: None,
            anatomy: None,
            strip: None,
            attribution: None,
            strip_error: None,
            malformed: None,
        }
    }

    pub fn skipped(path: &str, size: u64, reason: &str) -> Self {
        Self {
            malformed: Some(format!("not analysed: {reason}")),
            ..Self::empty(path, size)
        }
    }
}

/// Recognises an ELF header from its first bytes and says what kind of file it is.
pub fn elf_kind(head: &[u8]) -> Option<ElfKind> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let little_endian = head[5] == 1;
    let e_type = if little_endian {
        u16::from_le_bytes([head[16], head[17]])
    } else {
        u16::from_be_bytes([head[16], head[17]])
    };
    match e_type {
        1 => Some(ElfKind::Object),
        2 => Some(ElfKind::Executable),
        // ET_DYN is both PIE executables and shared libraries; the binary analysis
        // tells them apart by PT_INTERP, the layer walk only needs a first guess.
        3 => Some(ElfKind::SharedLibrary),
        _ => None,
    }
}

pub fn analyze(path: &str, bytes: &[u8]) -> BinaryReport {
    let mut report = BinaryReport::empty(path, bytes.len() as u64);
    let parsed = match elf::parse(bytes) {
        Ok(parsed) => parsed,
        Err(e) => {
            report.malformed = Some(e.to_string());
            return report;
        }
    };
    let mut problems = parsed.problems.clone();
    let mut problem_count = parsed.problem_count;
    report.class = Some(if parsed.is_64 {
        ElfClass::Elf64
    } else {
        ElfClass::Elf32
    });
    report.endian = Some(if parsed.big_endian {
        Endian::Big
    } else {
        Endian::Little
    });
    report.machine = Some(Machine::from_e_machine(parsed.machine));
    report.elf_type = elf_type(&parsed);
    report.build_id = parsed.build_id.clone();
    report.linkage = linkage(&parsed);
    report.interpreter = parsed.interpreter.clone();
    report.needed = parsed.needed.clone();
    report.soname = parsed.soname.clone();
    report.rpath = parsed.rpath.clone();
    report.runpath = parsed.runpath.clone();
    report.glibc_version_needed = max_glibc(&parsed.version_needs);
    report.has_symbol_table = parsed
        .sections
        .iter()
        .any(|s| s.sh_type == object::elf::SHT_SYMTAB.0);
    report.has_debug_info = parsed
        .sections
        .iter()
        .any(|s| !s.is_alloc() && strip::is_debug_section_name(s.name.as_bytes()));

    let mut evidence = Vec::new();
    let go = match go::read_raw(&parsed, bytes) {
        Ok(Some(raw)) => {
            evidence.push(if raw.from_section {
                "go: .go.buildinfo section".to_string()
            } else {
                "go: build info blob in the data segment".to_string()
            });
            Some(go::build_info(&parsed, raw))
        }
        Ok(None) => None,
        Err(e) => {
            problems.push(format!("Go build info: {e}"));
            problem_count += 1;
            None
        }
    };
    if parsed.section(".gopclntab").is_some() {
        evidence.push("go: .gopclntab section".into());
    }
    if parsed.go_build_id.is_some() {
        evidence.push("go: Go build ID note".into());
    }
    if parsed.symbols.go_runtime {
        evidence.push("go: runtime.main symbol".into());
    }
    let is_go = !evidence.is_empty();

    let rustc = rust::rustc_comment(&parsed);
    if let Some(version) = &rustc {
        evidence.push(format!("rust: .comment \"rustc version {version}\""));
    }
    if let Some(name) = &parsed.symbols.rust_mangled {
        evidence.push(format!("rust: mangled symbol {name}"));
    }
    let commit = rust::toolchain_commit(&parsed);
    if let Some(commit) = &commit {
        evidence.push(format!("rust: /rustc/{commit}/ paths"));
    }
    if parsed.section(".dep-v0").is_some() {
        evidence.push("rust: cargo-auditable .dep-v0 section".into());
    }
    let is_rust = evidence.iter().any(|e| e.starts_with("rust:"));

    let c_compiler = parsed
        .comments
        .iter()
        .find(|c| c.starts_with("GCC:") || c.contains("clang version"));
    if let Some(compiler) = c_compiler {
        evidence.push(format!("c/c++: .comment \"{compiler}\""));
    }
    let is_c = c_compiler.is_some();

    report.language = if is_go {
        Language::Go
    } else if is_rust {
        Language::Rust
    } else if is_c {
        Language::C
    } else {
        Language::Unknown
    };
    report.language_evidence = evidence;
    report.go = go;
    if is_rust && !is_go {
        report.rust = Some(rust::rust_info(&parsed));
    }

    report.anatomy = Some(anatomy::anatomy(&parsed.sections, report.size));
    // The distribution's own files are not what the image was built to run: a
    // Debian base holds hundreds of libraries, and demangling their symbols was most
    // of what attribution added to inspect there.
    if matches!(
        report.elf_type,
        ElfType::Exec | ElfType::Pie | ElfType::Shared
    ) && !crate::category::is_system_path(path)
    {
        report.attribution = attribution::attribute(
            &parsed,
            bytes,
            report.language,
            report.go.as_ref(),
            report.rust.as_ref(),
        );
    }

    if parsed.section_headers_ok && problems.is_empty() {
        // `object`'s builder is third-party code doing layout arithmetic on values
        // from the file; `strip::sanitise` checks what it is known to trust, and this
        // keeps one overlooked case from taking the whole image analysis down.
        let predicted =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| strip::predict(bytes)));
        match predicted {
            Ok(Ok(prediction)) => report.strip = Some(prediction),
            Ok(Err(e)) => report.strip_error = Some(e),
            Err(_) => report.strip_error = Some("the ELF rewriter failed on this file".into()),
        }
    } else if !parsed.section_headers_ok {
        report.strip_error = Some(
            "no section header table: nothing to strip can be named, and GNU strip refuses the file"
                .into(),
        );
    } else {
        report.strip_error = Some("not predicted for a malformed file".into());
    }

    if let Some(first) = problems.first() {
        report.malformed = Some(if problem_count > 1 {
            format!("{first} (and {} more problems)", problem_count - 1)
        } else {
            first.clone()
        });
    }
    report
}

fn elf_type(parsed: &elf::Parsed<'_>) -> ElfType {
    use object::elf::{DF_1_PIE, ET_CORE, ET_DYN, ET_EXEC, ET_REL};
    match object::elf::FileType(parsed.e_type) {
        ET_EXEC => ElfType::Exec,
        ET_REL => ElfType::Relocatable,
        ET_CORE => ElfType::Core,
        ET_DYN => {
            if parsed.flags_1 & DF_1_PIE.0 != 0 {
                ElfType::Pie
            } else if parsed.soname.is_some() {
                // libc.so.6 has a PT_INTERP too (it can be run), yet it is a library.
                ElfType::Shared
            } else if parsed.interpreter.is_some() {
                ElfType::Pie
            } else {
                ElfType::Shared
            }
        }
        _ => ElfType::Unknown,
    }
}

fn linkage(parsed: &elf::Parsed<'_>) -> Linkage {
    match elf_type(parsed) {
        kind @ (ElfType::Exec | ElfType::Pie) => {
            if parsed.interpreter.is_some() || !parsed.needed.is_empty() {
                Linkage::Dynamic
            } else if parsed.has_dynamic && kind == ElfType::Pie {
                Linkage::StaticPie
            } else {
                Linkage::Static
            }
        }
        ElfType::Shared => Linkage::Dynamic,
        _ => Linkage::Unknown,
    }
}

/// `GLIBC_2.34` > `GLIBC_2.4`: compared numerically, component by component.
fn max_glibc(needs: &[(String, String)]) -> Option<String> {
    needs
        .iter()
        .filter_map(|(_, version)| {
            let numbers = version.strip_prefix("GLIBC_")?;
            let parts: Option<Vec<u32>> = numbers.split('.').map(|p| p.parse().ok()).collect();
            Some((parts?, version))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, version)| version.clone())
}

/// Where the loader would find each needed library inside the image (paths relative
/// to the image root, no leading slash), in `ld.so`'s order: `DT_RPATH` (ignored when
/// `DT_RUNPATH` exists), `DT_RUNPATH`, then the default directories for the binary's
/// architecture. `$ORIGIN` is the binary's own directory.
pub fn resolve_needed(
    report: &BinaryReport,
    exists: impl Fn(&str) -> bool,
) -> Vec<(String, Option<String>)> {
    let origin = match report.path.trim_start_matches('/').rsplit_once('/') {
        Some((dir, _)) => dir.to_string(),
        None => String::new(),
    };
    let lib = if report.class == Some(ElfClass::Elf64) {
        "lib64"
    } else {
        "lib"
    };
    let expand = |dir: &str| -> String {
        let dir = dir
            .replace("${ORIGIN}", &format!("/{origin}"))
            .replace("$ORIGIN", &format!("/{origin}"))
            .replace("${LIB}", lib)
            .replace("$LIB", lib);
        crate::fs::normalise_clamped(&dir)
    };
    let mut dirs: Vec<String> = Vec::new();
    if report.runpath.is_empty() {
        dirs.extend(report.rpath.iter().map(|d| expand(d)));
    }
    dirs.extend(report.runpath.iter().map(|d| expand(d)));
    if let Some(triplet) = report.machine.and_then(Machine::debian_triplet) {
        dirs.push(format!("lib/{triplet}"));
        dirs.push(format!("usr/lib/{triplet}"));
    }
    for dir in ["lib64", "usr/lib64", "lib", "usr/lib", "usr/local/lib"] {
        dirs.push(dir.to_string());
    }
    report
        .needed
        .iter()
        .map(|name| {
            let found = if name.contains('/') {
                let path = crate::fs::normalise_clamped(&expand(name));
                exists(&path).then_some(path)
            } else {
                dirs.iter()
                    .map(|dir| {
                        if dir.is_empty() {
                            name.clone()
                        } else {
                            format!("{dir}/{name}")
                        }
                    })
                    .find(|candidate| exists(candidate))
            };
            (name.clone(), found)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_compare_numerically() {
        let needs = |v: &[&str]| -> Vec<(String, String)> {
            v.iter()
                .map(|s| ("libc.so.6".to_string(), s.to_string()))
                .collect()
        };
        assert_eq!(
            max_glibc(&needs(&[
                "GLIBC_2.4",
                "GLIBC_2.34",
                "GLIBC_2.2.5",
                "GLIBC_PRIVATE"
            ])),
            Some("GLIBC_2.34".into())
        );
        assert_eq!(max_glibc(&needs(&["GCC_3.0"])), None);
    }

    #[test]
    fn resolves_with_runpath_origin_and_defaults() {
        let mut report = BinaryReport::empty("opt/app/bin/server", 0);
        report.class = Some(ElfClass::Elf64);
        report.machine = Some(Machine::X86_64);
        report.needed = vec![
            "libfoo.so".into(),
            "libc.so.6".into(),
            "libmissing.so.1".into(),
            "/opt/abs/libabs.so".into(),
        ];
        report.rpath = vec!["/ignored/because/runpath".into()];
        report.runpath = vec!["$ORIGIN/../lib".into()];
        let present = [
            "opt/app/lib/libfoo.so",
            "ignored/because/runpath/libc.so.6",
            "lib/x86_64-linux-gnu/libc.so.6",
            "opt/abs/libabs.so",
        ];
        let resolved = resolve_needed(&report, |p| present.contains(&p));
        assert_eq!(
            resolved,
            vec![
                ("libfoo.so".into(), Some("opt/app/lib/libfoo.so".into())),
                (
                    "libc.so.6".into(),
                    Some("lib/x86_64-linux-gnu/libc.so.6".into())
                ),
                ("libmissing.so.1".into(), None),
                (
                    "/opt/abs/libabs.so".into(),
                    Some("opt/abs/libabs.so".into())
                ),
            ]
        );
    }

    #[test]
    fn rpath_applies_without_runpath() {
        let mut report = BinaryReport::empty("app", 0);
        report.needed = vec!["libx.so".into()];
        report.rpath = vec!["${ORIGIN}/libs".into()];
        let resolved = resolve_needed(&report, |p| p == "libs/libx.so");
        assert_eq!(resolved[0].1.as_deref(), Some("libs/libx.so"));
    }

    #[test]
    fn not_elf_is_malformed_not_a_panic() {
        let report = analyze("x", b"\x7fELF");
        assert!(report.malformed.is_some());
        let report = analyze("x", b"");
        assert!(report.malformed.is_some());
    }
}
