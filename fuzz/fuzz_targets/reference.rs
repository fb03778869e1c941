//! Image references as users type them: any string either parses or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(image) = ballast::reference::ImageRef::parse(text) {
            // What parses prints back as something that parses to the same thing.
            let again = ballast::reference::ImageRef::parse(&image.to_string());
            assert!(again.is_ok(), "{image} does not parse back");
        }
    }
});
