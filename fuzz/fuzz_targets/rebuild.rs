//! `advise`'s layer rebuild over arbitrary bytes, as advise runs it: the layer is
//! scanned first (only layers the pipeline accepted are rebuilt), then re-streamed
//! with one file left out and every binary stripped in memory, measuring zstd too.
//! It must refuse or measure, never panic.
#![no_main]

use std::collections::HashSet;

use ballast::advice::rebuild::{rebuild, RebuildRequest, Variant};
use ballast::digest::Digest;
use ballast::layer::{scan_layer, LayerLimits};
use ballast::source::LayerDescriptor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = LayerLimits {
        max_uncompressed_bytes: 16 * 1024 * 1024,
        ..LayerLimits::default()
    };
    for media_type in [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ] {
        let descriptor = LayerDescriptor {
            digest: Digest::of_bytes(data),
            media_type: media_type.to_string(),
            size: data.len() as u64,
        };
        let Ok(scan) = scan_layer(data, &descriptor, None, &limits, Default::default()) else {
            continue;
        };
        let remove: HashSet<String> = scan
            .entries
            .iter()
            .take(1)
            .map(|e| e.path.clone())
            .collect();
        let strip: HashSet<String> = scan.binaries.iter().map(|b| b.path.clone()).collect();
        let request = RebuildRequest {
            variants: vec![
                Variant {
                    id: "remove".into(),
                    remove,
                    ..Default::default()
                },
                Variant {
                    id: "strip".into(),
                    strip,
                    ..Default::default()
                },
            ],
            measure_zstd: data.len() < 4096,
        };
        let result = rebuild(data, &descriptor, &request, &limits)
            .expect("a layer the pipeline accepted rebuilds");
        assert_eq!(result.original_uncompressed_bytes, scan.uncompressed_bytes);
    }
});
