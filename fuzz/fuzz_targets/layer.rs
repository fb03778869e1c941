//! The layer pipeline over arbitrary bytes as an uncompressed tar and as gzip: tar
//! walk, whiteouts, path checks and limits must refuse, not panic.
#![no_main]

use ballast::digest::Digest;
use ballast::layer::{scan_layer, LayerLimits};
use ballast::source::LayerDescriptor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = LayerLimits {
        max_uncompressed_bytes: 64 * 1024 * 1024,
        ..LayerLimits::default()
    };
    for media_type in [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ] {
        let descriptor = LayerDescriptor {
            digest: Digest::of_bytes(data),
            media_type: media_type.to_string(),
            size: data.len() as u64,
        };
        let _ = scan_layer(data, &descriptor, None, &limits, Default::default());
    }
});
