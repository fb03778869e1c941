//! `ballast advise`: what to change, what it saves (uncompressed and compressed), and
//! how sure that number is. Savings are `exact` (computed from the bytes), `measured`
//! (the affected layers were rebuilt in memory and recompressed) or `estimate` (with
//! the published range it comes from). Nothing is suggested that the image does not
//! show a reason for.

pub mod rebuild;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::category::{self, Category};
use crate::fs::WasteCause;
use crate::inspect::ImageAnalysis;
use crate::layer::{Compression, LayerError};
use crate::source::{Source, SourceError};
use rebuild::{RebuildRequest, RebuildResult, Variant};

#[derive(Debug, thiserror::Error)]
pub enum AdviceError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("internal error: a rebuild task failed: {0}")]
    Task(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Exact,
    Measured,
    Estimate,
}

#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub id: String,
    pub title: String,
    /// Files concerned (largest first, at most 20) and the layers they are in.
    pub paths: Vec<String>,
    pub layers: Vec<usize>,
    pub saved_bytes: u64,
    pub saved_compressed_bytes: u64,
    /// The weaker of the two figures' confidences.
    pub confidence: Confidence,
    pub saved_bytes_confidence: Confidence,
    pub saved_compressed_confidence: Confidence,
    pub evidence: Vec<String>,
    pub fix: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub side_effects: Vec<String>,
    /// Where an estimate's range comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    /// The image with every `exact` and `measured` suggestion applied (zstd aside).
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// What `estimate` suggestions might save on top, as a range.
    pub estimate_low_compressed_bytes: u64,
    pub estimate_high_compressed_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerMeasurement {
    pub layer: usize,
    pub digest: String,
    pub compression: Compression,
    pub compressed_bytes: u64,
    pub rebuilt_compressed_bytes: u64,
    /// The original tar recompressed here reproduces the stored size exactly.
    pub reproducible: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    pub suggestions: Vec<Suggestion>,
    pub projected: Projection,
    /// How each rebuilt layer's recompression compares with the stored blob.
    pub measurements: Vec<LayerMeasurement>,
}

#[derive(Debug, Clone)]
pub struct AdviseOptions {
    pub measure_zstd: bool,
    pub max_entry_bytes: u64,
    pub concurrency: usize,
}

impl Default for AdviseOptions {
    fn default() -> Self {
        Self {
            measure_zstd: true,
            max_entry_bytes: 4 * 1024 * 1024 * 1024,
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Files to leave out of a layer for one suggestion.
struct Removal {
    id: &'static str,
    files: Vec<(String, u64, usize)>,
}

const COMBINED: &str = "all";

pub async fn advise(
    source: Arc<Source>,
    analysis: &ImageAnalysis,
    options: &AdviseOptions,
) -> Result<Advice, AdviceError> {
    let removals = plan_removals(analysis);

    // One rebuild per affected layer, measuring every suggestion's variant and the
    // combination of all of them (for the projection).
    let mut requests: BTreeMap<usize, RebuildRequest> = BTreeMap::new();
    for removal in &removals {
        let mut per_layer: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (path, _, layer) in &removal.files {
            per_layer.entry(*layer).or_default().push(path.clone());
        }
        for (layer, paths) in per_layer {
            let request = requests.entry(layer).or_default();
            request.variants.push(Variant {
                id: removal.id.to_string(),
                remove: paths.iter().cloned().collect(),
                replace: HashMap::new(),
            });
        }
    }
    for request in requests.values_mut() {
        let mut combined = Variant {
            id: COMBINED.to_string(),
            ..Default::default()
        };
        for variant in &request.variants {
            combined.remove.extend(variant.remove.iter().cloned());
            combined.replace.extend(
                variant
                    .replace
                    .iter()
                    .map(|(k, v)| (k.clone(), Arc::clone(v))),
            );
        }
        request.variants.push(combined);
    }
    if options.measure_zstd {
        for (index, layer) in analysis.layers.iter().enumerate() {
            if layer.compression == Compression::Gzip && layer.compressed_bytes > 0 {
                requests.entry(index).or_default().measure_zstd = true;
            }
        }
    }
    let results = run_rebuilds(&source, analysis, requests, options).await?;

    let mut suggestions = Vec::new();
    for removal in &removals {
        suggestions.push(removal_suggestion(removal, analysis, &results));
    }
    if let Some(zstd) = zstd_suggestion(&results) {
        suggestions.push(zstd);
    }
    suggestions.retain(|s| s.saved_bytes > 0 || s.saved_compressed_bytes > 0);
    suggestions.sort_by(|a, b| {
        b.saved_compressed_bytes
            .cmp(&a.saved_compressed_bytes)
            .then_with(|| b.saved_bytes.cmp(&a.saved_bytes))
            .then_with(|| a.id.cmp(&b.id))
    });

    let mut compressed = analysis.compressed_bytes();
    let mut uncompressed = analysis.uncompressed_bytes();
    let mut measurements = Vec::new();
    for (layer, result) in &results {
        measurements.push(LayerMeasurement {
            layer: *layer,
            digest: analysis.layers[*layer].descriptor.digest.to_string(),
            compression: result.compression,
            compressed_bytes: result.original_compressed_bytes,
            rebuilt_compressed_bytes: result.rebuilt_bytes,
            reproducible: result.reproducible(),
        });
        compressed = compressed.saturating_sub(result.saved_compressed(COMBINED));
        uncompressed = uncompressed.saturating_sub(result.saved_uncompressed(COMBINED));
    }
    let (low, high) = suggestions
        .iter()
        .filter(|s| s.confidence == Confidence::Estimate)
        .fold((0, 0), |(low, high), s| {
            (
                low + s.saved_compressed_bytes / 2,
                high + s.saved_compressed_bytes,
            )
        });
    Ok(Advice {
        suggestions,
        projected: Projection {
            compressed_bytes: compressed,
            uncompressed_bytes: uncompressed,
            estimate_low_compressed_bytes: compressed.saturating_sub(high),
            estimate_high_compressed_bytes: compressed.saturating_sub(low),
        },
        measurements,
    })
}

async fn run_rebuilds(
    source: &Arc<Source>,
    analysis: &ImageAnalysis,
    requests: BTreeMap<usize, RebuildRequest>,
    options: &AdviseOptions,
) -> Result<BTreeMap<usize, RebuildResult>, AdviceError> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (layer, request) in requests {
        let source = Arc::clone(source);
        let semaphore = Arc::clone(&semaphore);
        let descriptor = analysis.layers[layer].descriptor.clone();
        let max_entry_bytes = options.max_entry_bytes;
        tasks.spawn(async move {
            let _permit = semaphore
                .acquire_owned()
                .await
                .map_err(|e| AdviceError::Task(e.to_string()))?;
            let blob = source.open_blob(&descriptor).await?;
            let result = tokio::task::spawn_blocking(move || {
                rebuild::rebuild(blob, &descriptor, &request, max_entry_bytes)
            })
            .await
            .map_err(|e| AdviceError::Task(e.to_string()))??;
            Ok::<_, AdviceError>((layer, result))
        });
    }
    let mut results = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (layer, result) = joined.map_err(|e| AdviceError::Task(e.to_string()))??;
        results.insert(layer, result);
    }
    Ok(results)
}

/// Files a suggestion would leave out, with the layer that adds them.
fn plan_removals(analysis: &ImageAnalysis) -> Vec<Removal> {
    let fs = &analysis.fs;
    let hidden = |cause: WasteCause| Removal {
        id: match cause {
            WasteCause::Deleted => "drop-deleted-files",
            WasteCause::Overwritten => "drop-overwritten-files",
        },
        files: fs
            .wasted_files
            .iter()
            .filter(|f| f.cause == cause)
            .map(|f| (f.path.clone(), f.size, f.layer))
            .collect(),
    };
    let visible = |id: &'static str, wanted: Category| Removal {
        id,
        files: fs
            .visible_files()
            .filter(|(path, node)| category::classify(path, node.elf) == wanted)
            .map(|(path, node)| (path.clone(), node.size, node.layer))
            .collect(),
    };
    let mut removals = vec![
        hidden(WasteCause::Deleted),
        hidden(WasteCause::Overwritten),
        visible("drop-package-caches", Category::PackageCaches),
        visible("multi-stage-toolchain", Category::Toolchains),
    ];
    removals.retain(|r| !r.files.is_empty());
    removals
}

fn removal_suggestion(
    removal: &Removal,
    analysis: &ImageAnalysis,
    results: &BTreeMap<usize, RebuildResult>,
) -> Suggestion {
    let layers: BTreeSet<usize> = removal.files.iter().map(|(_, _, layer)| *layer).collect();
    let saved_bytes: u64 = layers
        .iter()
        .filter_map(|l| results.get(l))
        .map(|r| r.saved_uncompressed(removal.id))
        .sum();
    let saved_compressed_bytes: u64 = layers
        .iter()
        .filter_map(|l| results.get(l))
        .map(|r| r.saved_compressed(removal.id))
        .sum();
    let all_reproducible = layers
        .iter()
        .filter_map(|l| results.get(l))
        .all(RebuildResult::reproducible);
    let compressed_confidence = if all_reproducible {
        Confidence::Exact
    } else {
        Confidence::Measured
    };
    let mut files = removal.files.clone();
    files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let file_bytes: u64 = files.iter().map(|f| f.1).sum();
    let created_by = analysis
        .image
        .config
        .created_by_per_layer(analysis.layers.len());
    let layer_line = |layer: usize| {
        format!(
            "layer {layer} ({})",
            created_by
                .get(layer)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "no history".into())
        )
    };
    let mut evidence = vec![format!(
        "{} {}, {} bytes of file data, in {}",
        files.len(),
        if files.len() == 1 { "file" } else { "files" },
        file_bytes,
        layers
            .iter()
            .map(|l| layer_line(*l))
            .collect::<Vec<_>>()
            .join("; ")
    )];
    if removal.id == "drop-deleted-files" || removal.id == "drop-overwritten-files" {
        let hiders: BTreeSet<usize> = analysis
            .fs
            .wasted_files
            .iter()
            .filter(|f| {
                removal
                    .files
                    .iter()
                    .any(|(p, _, l)| p == &f.path && *l == f.layer)
            })
            .map(|f| f.hidden_by_layer)
            .collect();
        evidence.push(format!(
            "hidden by {}: no container sees these bytes, every node pulls them",
            hiders
                .iter()
                .map(|l| layer_line(*l))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    evidence.push(compression_evidence(&layers, results));
    let paths: Vec<String> = files
        .iter()
        .take(20)
        .map(|(p, _, _)| format!("/{p}"))
        .collect();
    let (title, fix) = removal_fix(removal.id, &files);
    Suggestion {
        id: removal.id.to_string(),
        title,
        paths,
        layers: layers.into_iter().collect(),
        saved_bytes,
        saved_compressed_bytes,
        confidence: compressed_confidence,
        saved_bytes_confidence: Confidence::Exact,
        saved_compressed_confidence: compressed_confidence,
        evidence,
        fix,
        side_effects: vec![],
        source: None,
    }
}

fn compression_evidence(
    layers: &BTreeSet<usize>,
    results: &BTreeMap<usize, RebuildResult>,
) -> String {
    let parts: Vec<String> = layers
        .iter()
        .filter_map(|l| results.get(l).map(|r| (l, r)))
        .map(|(layer, r)| match r.compression {
            Compression::Gzip => format!(
                "layer {layer}: stored {} B; re-gzipped here (level {}) {} B{}",
                r.original_compressed_bytes,
                rebuild::GZIP_LEVEL,
                r.recompressed_original_bytes.unwrap_or(0),
                if r.reproducible() {
                    ", the same size, so the compressed saving is exact"
                } else {
                    ", so the compressed saving is measured with this compressor, not the one that built the image"
                }
            ),
            Compression::Zstd => format!(
                "layer {layer}: zstd, rebuilt at level {} to measure the saving",
                rebuild::ZSTD_LEVEL
            ),
            Compression::None => format!("layer {layer}: uncompressed, so the saving is exact"),
        })
        .collect();
    parts.join("; ")
}

fn removal_fix(id: &str, files: &[(String, u64, usize)]) -> (String, String) {
    let has = |prefix: &str| {
        files
            .iter()
            .any(|(p, _, _)| p.starts_with(prefix) || p.contains(prefix))
    };
    match id {
        "drop-deleted-files" => (
            "Delete temporary files in the step that creates them".into(),
            "Files removed by a later `RUN rm` still ship in the layer that added them. Remove them in the same step:\n\
             RUN <build or download> && <use> && rm -rf <the files>\n\
             or build in a separate stage and `COPY --from=build` only what the image runs."
                .into(),
        ),
        "drop-overwritten-files" => (
            "Stop shipping files that a later layer replaces".into(),
            "Write each file once: install the final version in the earlier step, or move the later step's change into it.\n\
             In a multi-stage build, assemble the files in a build stage and COPY the result once."
                .into(),
        ),
        "drop-package-caches" => {
            let mut lines = Vec::new();
            if has("var/lib/apt/lists/") || has("var/cache/apt/") {
                lines.push("RUN apt-get update && apt-get install -y --no-install-recommends <packages> && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb");
            }
            if has("var/cache/apk/") {
                lines.push("RUN apk add --no-cache <packages>");
            }
            if has(".cache/pip/") {
                lines.push("RUN pip install --no-cache-dir <packages>");
            }
            if has(".npm/") || has(".cache/yarn/") {
                lines.push("RUN npm ci --omit=dev && npm cache clean --force");
            }
            if has("go-build/") || has("go/pkg/mod/") {
                lines.push("RUN --mount=type=cache,target=/root/.cache/go-build --mount=type=cache,target=/go/pkg/mod go build …");
            }
            if has("cargo/registry/") || has("cargo/git/") {
                lines.push("RUN --mount=type=cache,target=/usr/local/cargo/registry cargo build --release");
            }
            if has("tmp/") {
                lines.push("RUN … && rm -rf /tmp/* /var/tmp/*");
            }
            if lines.is_empty() {
                lines.push("Clean the package manager's cache in the step that fills it.");
            }
            ("Remove package-manager caches and indexes".into(), lines.join("\n"))
        }
        _ => (
            "Build in one stage, run from another: the compiler and headers stay behind".into(),
            "FROM <toolchain image> AS build\n\
             WORKDIR /src\n\
             COPY . .\n\
             RUN <build command>\n\
             FROM gcr.io/distroless/cc-debian12   # or static-debian12 for a static binary\n\
             COPY --from=build /src/<binary> /usr/local/bin/<binary>"
                .into(),
        ),
    }
}

fn zstd_suggestion(results: &BTreeMap<usize, RebuildResult>) -> Option<Suggestion> {
    let mut saved = 0u64;
    let mut gzip_total = 0u64;
    let mut zstd_total = 0u64;
    let mut layers = Vec::new();
    let (mut gzip_time, mut zstd_time, mut sample) = (0.0, 0.0, 0u64);
    for (layer, result) in results {
        let Some(zstd) = &result.zstd else { continue };
        gzip_total += result.original_compressed_bytes;
        zstd_total += zstd.compressed_bytes;
        saved += result
            .original_compressed_bytes
            .saturating_sub(zstd.compressed_bytes);
        layers.push(*layer);
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
    Some(Suggestion {
        id: "zstd-layers".into(),
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
                rebuild::ZSTD_LEVEL
            ),
            format!(
                "decompression on this machine, on a {sample}-byte sample of the same layers: gzip {gzip_time:.3} s, zstd {zstd_time:.3} s ({speedup:.1}x faster)"
            ),
        ],
        fix: "docker buildx build --output type=image,name=<ref>,push=true,compression=zstd,compression-level=3,force-compression=true .".into(),
        side_effects: vec![
            "pulling needs containerd 1.5+ / Docker 23+ / Podman 3+; older clients cannot unpack zstd layers".into(),
            "a zstd image shares no layer blobs with gzip images of the same base: the base is stored and pulled again".into(),
        ],
        source: None,
    })
}
