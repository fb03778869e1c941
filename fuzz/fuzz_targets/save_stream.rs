//! A `docker save` / OCI layout stream, as a local engine's export or a pipe delivers
//! it, read in one pass over arbitrary bytes: never a panic, and every scan kept
//! belongs to a layer the manifest lists.
#![no_main]

use ballast::layer::LayerLimits;
use ballast::source::save_stream::{read_save_stream, StreamOptions, StreamRequest};
use ballast::source::Platform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = LayerLimits {
        max_uncompressed_bytes: 16 * 1024 * 1024,
        ..LayerLimits::default()
    };
    let request = StreamRequest {
        what: "fuzz".into(),
        wanted: None,
        options: StreamOptions {
            platform: Platform::default(),
            explicit_platform: false,
            limits,
            max_blobs: 64,
        },
    };
    if let Ok(image) = read_save_stream(data, &request) {
        for scan in &image.scans {
            assert!(image.image.layers.contains(&scan.descriptor));
        }
    }
});
