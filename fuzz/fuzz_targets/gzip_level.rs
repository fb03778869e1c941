//! `ballast::advice::gzip_level::match_level` over arbitrary bytes: the gzip header
//! parser (optional fields, lengths) and the bounded inflate of a layer's start
//! run on whatever libFuzzer produces. Any panic is a finding.
#![no_main]

use ballast::advice::gzip_level::match_level_within;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // 64 KiB of output instead of 4 MiB: the nine deflates per input dominate.
    if let Some(found) = match_level_within(data, 64 * 1024) {
        assert!((1..=9).contains(&found.level));
        assert!(found.probe_compressed_bytes <= data.len() as u64);
        assert!(found.probe_uncompressed_bytes <= 64 * 1024);
    }
});
