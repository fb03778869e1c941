//! Manifests, indexes and configs from registries and layouts: malformed JSON is an
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ballast::source::manifest::parse_manifest_or_index(data, None, "fuzz");
    let _ = ballast::source::manifest::parse_config(data, "fuzz");
});
