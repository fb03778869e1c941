//! Layers recompressed with zstd: measured on the layers themselves, with the
//! decompression time of both on this machine.

use std::collections::BTreeMap;

use super::rebuild::{RebuildResult, ZSTD_LEVEL};
use super::{Confidence, Suggestion, SuggestionKind};
use crate::image::ImageAnalysis;
use crate::recompress::ZstdMeasurement;

/// From the zstd measurements taken in the layer read, else in the rebuild.
pub(super) fn plan(
    analysis: &ImageAnalysis,
    in_read: &BTreeMap<usize, ZstdMeasurement>,
    results: &BTreeMap<usize, RebuildResult>,
    wanted: bool,
) -> Option<Suggestion> {
    if !wanted {
        return None;
    }
    let mut saved = 0u64;
    let mut gzip_total = 0u64;
    let mut zstd_total = 0u64;
    let mut layers = Vec::new();
    let (mut gzip_time, mut zstd_time, mut sample) = (0.0, 0.0, 0u64);
    for (layer, scan) in analysis.layers.iter().enumerate() {
        let zstd = match (in_read.get(&layer), results.get(&layer)) {
            (Some(zstd), _) => zstd,
            (None, Some(result)) => match &result.zstd {
                Some(zstd) => zstd,
                None => continue,
            },
            (None, None) => continue,
        };
        gzip_total += scan.compressed_bytes;
        zstd_total += zstd.compressed_bytes;
        saved += scan.compressed_bytes.saturating_sub(zstd.compressed_bytes);
        layers.push(layer);
        gzip_time += zstd.gzip_decompress_s;
        zstd_time += zstd.zstd_decompress_s;
        sample += zstd.sample_bytes;
    }
    if layers.is_empty() || saved == 0 && zstd_time >= gzip_time {
        return None;
    }
    let speedup = if zstd_time > 0.0 {
        gzip_time / zstd_time
    } else {
        0.0
    };
    // Timings differ from run to run: `--stable` reports leave this line out.
    let timing = format!(
        "decompression on this machine, on a {sample}-byte sample of the same layers: gzip {gzip_time:.3} s, zstd {zstd_time:.3} s ({speedup:.1}x faster)"
    );
    Some(Suggestion {
        id: SuggestionKind::ZstdLayers,
        title: "Compress layers with zstd".into(),
        paths: vec![],
        layers,
        saved_bytes: 0,
        saved_compressed_bytes: saved,
        confidence: Confidence::Measured,
        saved_bytes_confidence: Confidence::Exact,
        saved_compressed_confidence: Confidence::Measured,
        evidence: vec![
            format!(
                "gzip layers: {gzip_total} B stored; recompressed here with zstd level {}: {zstd_total} B",
                ZSTD_LEVEL
            ),
            timing.clone(),
        ],
        fix: "docker buildx build --output type=image,name=<ref>,push=true,compression=zstd,compression-level=3,force-compression=true .".into(),
        side_effects: vec![
            "pulling needs containerd 1.5+ / Docker 23+ / Podman 3+; older clients cannot unpack zstd layers".into(),
            "a zstd image shares no layer blobs with gzip images of the same base: the base is stored and pulled again".into(),
        ],
        overlaps_with: vec![],
        base_added: None,
        run_dependent: vec![timing],
        source: None,
    })
}
