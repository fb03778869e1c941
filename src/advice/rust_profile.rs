//! A size-oriented Cargo release profile (LTO, one codegen unit, panic = abort). No
//! binary records its profile, so the saving is only ever an estimate, with the
//! published range it comes from.

use std::collections::BTreeSet;

use super::{Confidence, Suggestion, SuggestionKind};
use crate::binary::{BinaryReport, ElfType, Language};
use crate::image::ImageAnalysis;

/// Cargo profile settings that no binary records: only ever an estimate, with the
/// published range it comes from.
pub(super) fn plan(analysis: &ImageAnalysis) -> Option<Suggestion> {
    let rust: Vec<(usize, &BinaryReport)> = analysis
        .visible_binaries()
        .into_iter()
        .map(|b| (b.layer, b.report))
        .filter(|(_, r)| r.language == Language::Rust && r.elf_type != ElfType::Shared)
        // The unwinding runtime linked in is the one sign that the profile was not
        // tuned for size (a size profile sets panic = "abort"); without it, say nothing.
        .filter(|(_, r)| r.rust.as_ref().is_some_and(|info| info.panic == "unwind"))
        .collect();
    if rust.is_empty() {
        return None;
    }
    let mut paths = Vec::new();
    let mut layers = BTreeSet::new();
    let (mut low, mut high, mut low_compressed, mut high_compressed) = (0u64, 0u64, 0u64, 0u64);
    for (layer, report) in &rust {
        // The savings apply to the code that stays after stripping.
        let base = report
            .strip
            .as_ref()
            .map_or(report.size, |s| s.size_after_strip_all);
        low += base * 15 / 100;
        high += base * 30 / 100;
        let scan = &analysis.layers[*layer];
        let ratio = if scan.uncompressed_bytes > 0 {
            scan.compressed_bytes as f64 / scan.uncompressed_bytes as f64
        } else {
            1.0
        };
        low_compressed += (base as f64 * 0.15 * ratio) as u64;
        high_compressed += (base as f64 * 0.30 * ratio) as u64;
        paths.push(format!("/{}", report.path));
        layers.insert(*layer);
    }
    Some(Suggestion {
        id: SuggestionKind::RustProfileSize,
        title: "Size-oriented Cargo release profile (LTO, one codegen unit, panic = abort)".into(),
        paths,
        layers: layers.into_iter().collect(),
        saved_bytes: low,
        saved_compressed_bytes: low_compressed,
        confidence: Confidence::Estimate,
        saved_bytes_confidence: Confidence::Estimate,
        saved_compressed_confidence: Confidence::Estimate,
        evidence: vec![
            format!("estimate: 15–30% of the stripped binaries ({low}–{high} B uncompressed, {low_compressed}–{high_compressed} B compressed at their layers' ratio); the figures above are the low end"),
            "the binaries link Rust's unwinding panic runtime, so panic = \"abort\" is not set; LTO, codegen-units and opt-level are not recorded in a binary, so ballast cannot tell whether they are".into(),
        ],
        fix: "[profile.release]\nlto = true\ncodegen-units = 1\npanic = \"abort\"   # only if nothing relies on catching panics\n# opt-level = \"s\" or \"z\" trades speed for size: measure before adopting".into(),
        side_effects: vec![
            "longer release builds (LTO and a single codegen unit)".into(),
            "panic = \"abort\" ends the process on a panic instead of unwinding (no catch_unwind, no cleanup)".into(),
        ],
        overlaps_with: vec![],
        base_added: None,
        run_dependent: vec![],
        source: Some("~30% smaller with lto + codegen-units=1 (Debian rust-team, salsa.debian.org/rust-team/rust merge request 41); 16% on ballast's own sample service (hello-rs, release vs lto + codegen-units=1 + panic=abort, both debuginfo-stripped, tests/it/binary_forensics.rs)".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::{ElfKind, Linkage, RustInfo};
    use crate::image::fixture::{analysis, elf, layer, program};

    fn image(panic: &'static str) -> ImageAnalysis {
        let mut report = program("app", 1_000_000, Language::Rust, Linkage::Static, (0, 0));
        report.rust = Some(RustInfo {
            rustc_version: Some("1.95.0".into()),
            toolchain_commit: None,
            crates: None,
            crates_error: None,
            panic,
            panic_evidence: None,
            lto: "unknown",
            codegen_units: "unknown",
            opt_level: "unknown",
        });
        analysis(
            "t",
            vec![layer(
                "app",
                "COPY app /",
                vec![elf("app", 1_000_000, ElfKind::Executable)],
                vec![report],
            )],
            &[],
        )
    }

    #[test]
    fn an_unwinding_rust_binary_gets_an_estimate_with_its_range() {
        let suggestion = plan(&image("unwind")).expect("an estimate");
        assert_eq!(suggestion.id, SuggestionKind::RustProfileSize);
        assert_eq!(suggestion.confidence, Confidence::Estimate);
        assert_eq!(suggestion.saved_bytes, 150_000, "15% of the stripped size");
        assert!(suggestion.source.is_some());
    }

    #[test]
    fn panic_abort_says_nothing() {
        assert!(plan(&image("abort")).is_none());
    }
}
