//! Pricing tables, usage profiles and cold-start profiles from user TOML files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ballast::cost::pricing::parse(text, "fuzz.toml");
        let _ = ballast::cost::usage::parse(text, "fuzz.toml");
        let _ = ballast::cost::coldstart::parse(text, "fuzz.toml");
    }
});
