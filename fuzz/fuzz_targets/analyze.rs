//! `ballast::binary::analyze` over arbitrary bytes: the ELF reader, the Go build info
//! and modinfo parsers, the Rust probes, the anatomy and the strip rewrite all run on
//! whatever libFuzzer produces. Any panic is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = ballast::binary::analyze("fuzz", data);
    if let Some(anatomy) = &report.anatomy {
        let total: u64 = anatomy.groups.iter().map(|g| g.bytes).sum();
        assert_eq!(
            total,
            data.len() as u64,
            "anatomy must add up to the file size"
        );
    }
    if let Some(strip) = &report.strip {
        assert!(
            strip.size_after_strip_all
                <= strip.size_after_strip_debug.saturating_mul(2) + (1 << 20)
        );
    }
});
