//! `ballast advise`: what to change, what it saves (uncompressed and compressed), and
//! how sure that number is. Savings are `exact` (computed from the bytes), `measured`
//! (the affected layers were rebuilt in memory and recompressed) or `estimate` (with
//! the published range it comes from). Nothing is suggested that the image does not
//! show a reason for.

//!
//! One planner per kind of change, each with its fixes beside it: `removals`
//! (hidden files, caches, toolchains), `strip`, `base` (distroless or scratch),
//! `rust_profile`, `squash`, `zstd` and `upx`. The planners that change files return
//! a [`Removal`]; this module rebuilds every affected layer once to measure them all,
//! then ranks the suggestions.

mod base;
pub mod gzip_level;
mod inflate;
pub mod rebuild;
mod removals;
mod rust_profile;
mod segments;
mod squash;
mod strip;
mod upx;
mod zstd;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::image::{counted, ImageAnalysis, Progress};
use crate::layer::{Compression, LayerError};
use crate::source::{Source, SourceError};
use crate::vocabulary::vocabulary;
use rebuild::{RebuildRequest, RebuildResult, Variant};

/// What a strip takes out of a binary: `strip --strip-all` (debug info and the
/// symbol table, what advise prices by default) or `strip --strip-debug` (debug info
/// only, for those whose profilers need the symbols).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StripMode {
    #[default]
    All,
    Debug,
}

impl StripMode {
    pub fn key(self) -> &'static str {
        match self {
            StripMode::All => "all",
            StripMode::Debug => "debug",
        }
    }

    /// The binutils flag whose result the rewrite reproduces.
    pub fn flag(self) -> &'static str {
        match self {
            StripMode::All => "--strip-all",
            StripMode::Debug => "--strip-debug",
        }
    }

    /// The file's size after this strip, as the ELF rewrite predicted it.
    pub fn size_after(self, prediction: &crate::binary::StripPrediction) -> u64 {
        match self {
            StripMode::All => prediction.size_after_strip_all,
            StripMode::Debug => prediction.size_after_strip_debug,
        }
    }

    /// What this strip saves on the file.
    pub fn saved(self, prediction: &crate::binary::StripPrediction) -> u64 {
        match self {
            StripMode::All => prediction.saved_by_strip_all,
            StripMode::Debug => prediction.saved_by_strip_debug,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdviceError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("internal error: a rebuild task failed: {0}")]
    Task(String),
}

impl crate::error::Fault for AdviceError {
    fn is_bad_input(&self) -> bool {
        !matches!(self, AdviceError::Task(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Exact,
    Measured,
    Estimate,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Exact => "exact",
            Confidence::Measured => "measured",
            Confidence::Estimate => "estimate",
        }
    }
}

vocabulary! {
    /// What a suggestion (or a mention) changes; its key is the stable `id`.
    pub enum SuggestionKind {
        DropDeletedFiles => "drop-deleted-files", "delete temporary files in the step that creates them";
        DropOverwrittenFiles => "drop-overwritten-files", "stop shipping files a later layer replaces";
        DropPackageCaches => "drop-package-caches", "remove package-manager caches";
        DropDocs => "drop-docs", "leave out docs, man pages and locales";
        MultiStageToolchain => "multi-stage-toolchain", "leave the toolchain in a build stage";
        GoLdflags => "go-ldflags-s-w", "go build -ldflags=\"-s -w\"";
        RustStrip => "rust-strip", "strip in the Cargo release profile";
        StripDebug => "strip-debug", "strip the shipped binaries";
        StaticBase => "static-base", "a static binary on distroless/static or scratch";
        StaticMusl => "static-musl", "a static musl binary on a minimal base";
        DistrolessCc => "distroless-cc", "distroless/cc";
        DistrolessBase => "distroless-base", "distroless/base";
        RustProfileSize => "rust-profile-size", "a size-oriented Cargo release profile";
        SquashLayers => "squash-layers", "flatten the layers";
        ZstdLayers => "zstd-layers", "zstd layers";
        Upx => "upx", "UPX";
    }
}

impl SuggestionKind {
    /// Whether two suggestions save (some of) the same bytes, so that their savings
    /// do not add up: base changes replace each other and the distribution whose
    /// docs and caches the others drop; squashing saves what dropping hidden files
    /// saves.
    pub fn overlaps(self, other: SuggestionKind) -> bool {
        use SuggestionKind::*;
        let distribution_files =
            |k: SuggestionKind| matches!(k, DropDocs | DropPackageCaches | MultiStageToolchain);
        let hidden_files = |k: SuggestionKind| matches!(k, DropDeletedFiles | DropOverwrittenFiles);
        self != other
            && ((self.replaces_base() && (other.replaces_base() || distribution_files(other)))
                || (other.replaces_base() && distribution_files(self))
                || (self == SquashLayers && hidden_files(other))
                || (other == SquashLayers && hidden_files(self)))
    }

    /// Base-image suggestions replace the whole image, so they stay out of the
    /// combined projection (which adds up changes made within the current image).
    pub fn replaces_base(self) -> bool {
        matches!(
            self,
            SuggestionKind::StaticBase
                | SuggestionKind::StaticMusl
                | SuggestionKind::DistrolessCc
                | SuggestionKind::DistrolessBase
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub id: SuggestionKind,
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
    /// Suggestions that save some of the same bytes: alternatives, whose savings
    /// do not add up (the projection counts them once).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overlaps_with: Vec<SuggestionKind>,
    /// Base changes: the new base's own size, already taken off the savings above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_added: Option<BaseAddition>,
    /// Lines of `evidence` whose figures differ from run to run (timings on this
    /// machine), which `--stable` reports leave out.
    #[serde(skip)]
    pub run_dependent: Vec<String>,
}

impl Suggestion {
    /// Leaves out the evidence whose figures differ from run to run.
    pub fn drop_run_dependent(&mut self) {
        let volatile = std::mem::take(&mut self.run_dependent);
        self.evidence.retain(|line| !volatile.contains(line));
    }
}

/// What a base change adds back: the new base's own files. A base suggestion's
/// savings are net of it (the image reduced to its binaries, measured, minus this).
#[derive(Debug, Clone, Serialize)]
pub struct BaseAddition {
    /// The base the fix moves to.
    pub image: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// `exact` when the base was read here (`--base-image`), `estimate` when its
    /// published size stands in for it.
    pub confidence: Confidence,
    pub source: String,
    /// What the change saves before the base is added back.
    pub gross_saved_bytes: u64,
    pub gross_saved_compressed_bytes: u64,
}

/// A change worth knowing about that ballast will not rank, because what it costs
/// (start-up time, memory) cannot be read from the image.
#[derive(Debug, Clone, Serialize)]
pub struct Mention {
    pub id: SuggestionKind,
    pub title: String,
    pub paths: Vec<String>,
    pub why_not_ranked: String,
    pub evidence: Vec<String>,
    pub side_effects: Vec<String>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    /// The image with every `exact` and `measured` suggestion applied (zstd aside),
    /// on the suggested base when moving to it gives the smaller image.
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// `estimate` when the projection stands on a base's published size.
    pub confidence: Confidence,
    /// The base change the projection includes, with what its base adds back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<ProjectedBase>,
    /// What `estimate` suggestions might save on top, as a range.
    pub estimate_low_compressed_bytes: u64,
    pub estimate_high_compressed_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectedBase {
    pub suggestion: SuggestionKind,
    pub image: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub confidence: Confidence,
}

impl Projection {
    /// What the projected figures assume, in words.
    pub fn basis(&self) -> String {
        match &self.base {
            None => "every exact and measured suggestion applied (zstd aside)".into(),
            Some(base) => format!(
                "every exact and measured suggestion applied (zstd aside), on {} ({}), whose own {} compressed {}",
                base.image,
                base.suggestion.key(),
                crate::size::human(base.compressed_bytes),
                if base.confidence == Confidence::Estimate {
                    "are an estimate from its published size"
                } else {
                    "were read here"
                }
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerMeasurement {
    pub layer: usize,
    pub digest: String,
    pub compression: Compression,
    pub compressed_bytes: u64,
    /// How the variants were measured: `full` (every variant recompressed whole) or
    /// `segments` (only the stretches around changed entries).
    pub method: rebuild::Method,
    /// `full`: the original entries re-emitted and recompressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuilt_compressed_bytes: Option<u64>,
    /// `segments`: what was recompressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recompressed_stretches: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recompressed_bytes: Option<u64>,
    /// The original tar recompressed here reproduces the stored size exactly.
    pub reproducible: bool,
    /// gzip layers: the level judged from the stored bytes, which the layer was
    /// rebuilt at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gzip_level: Option<gzip_level::GzipLevelMatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    pub suggestions: Vec<Suggestion>,
    pub projected: Projection,
    /// How each rebuilt layer's recompression compares with the stored blob.
    pub measurements: Vec<LayerMeasurement>,
    pub not_ranked: Vec<Mention>,
}

#[derive(Debug, Clone)]
pub struct AdviseOptions {
    pub measure_zstd: bool,
    /// The limits the layers were read under; a binary is rewritten in memory to
    /// measure a strip only up to `max_binary_bytes` (`--max-binary-size`).
    pub limits: crate::layer::LayerLimits,
    pub concurrency: usize,
    /// A gzip layer is recompressed whole (so that its savings can be `exact`) when
    /// its tar times the outputs to compress is at most this; above it, only the
    /// stretches around changed entries are (`measured`).
    pub full_rebuild_bytes: u64,
    /// The base a base change would move to (`--base-image`), read beforehand: its
    /// size is added back exactly instead of from published figures.
    pub base_image: Option<Arc<ImageAnalysis>>,
    /// Which strip the strip suggestions are priced for (`ballast apply
    /// --strip-debug` asks for the one it makes).
    pub strip_mode: StripMode,
    /// `ballast apply`: measure only these file suggestions, each on its own, and not
    /// their combination (apply adds up the ones it makes), so the rebuild compresses
    /// nothing apply will not use. The advice's own projected total is then not
    /// measured.
    pub measure_only: Option<BTreeSet<SuggestionKind>>,
}

/// The default for [`AdviseOptions::full_rebuild_bytes`]: about a second of deflate
/// on one core.
pub const FULL_REBUILD_BYTES: u64 = 48 * 1024 * 1024;

impl Default for AdviseOptions {
    fn default() -> Self {
        Self {
            full_rebuild_bytes: FULL_REBUILD_BYTES,
            measure_zstd: true,
            limits: crate::layer::LayerLimits::default(),
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            base_image: None,
            strip_mode: StripMode::All,
            measure_only: None,
        }
    }
}

/// Files a suggestion changes (left out of their layer, or stripped in it) and what
/// its planner says about the change; the rebuild adds the measured figures.
struct Removal {
    kind: SuggestionKind,
    /// Root-relative path, size and the layer that adds it.
    files: Vec<(String, u64, usize)>,
    strip: bool,
    prose: Prose,
}

/// A suggestion's words, written by its planner.
#[derive(Debug, Clone, Default)]
struct Prose {
    title: String,
    fix: String,
    side_effects: Vec<String>,
    /// Evidence before the measured figures.
    evidence: Vec<String>,
    /// Evidence after them.
    notes: Vec<String>,
    /// Listed instead of the files (e.g. the binaries a smaller base keeps).
    paths: Option<Vec<String>>,
}

/// The rebuild variant with every in-image change at once, for the projection.
const COMBINED: &str = "all";
/// The base change with the binaries stripped as suggested, for the projection.
const COMBINED_ON_BASE: &str = "all-on-base";
pub async fn advise(
    source: Arc<Source>,
    analysis: &ImageAnalysis,
    options: &AdviseOptions,
    progress: Arc<dyn Progress>,
) -> Result<Advice, AdviceError> {
    let mut removals = removals::plan(analysis);
    removals.extend(strip::plan(analysis, options.strip_mode));
    let mut base_addition = None;
    if let Some(plan) = base::plan(analysis, options.base_image.as_deref()) {
        base_addition = Some((plan.removal.kind, plan.addition));
        removals.push(plan.removal);
    }
    if let Some(only) = &options.measure_only {
        removals.retain(|r| only.contains(&r.kind));
    }

    // One rebuild per affected layer, measuring every suggestion's variant and the
    // combination of all of them (for the projection).
    let mut requests: BTreeMap<usize, RebuildRequest> = BTreeMap::new();
    let layer_paths: Vec<BTreeMap<usize, HashSet<String>>> = removals
        .iter()
        .map(|removal| removal_layers(removal, analysis))
        .collect();
    for (removal, per_layer) in removals.iter().zip(&layer_paths) {
        for (layer, paths) in per_layer.clone() {
            let request = requests.entry(layer).or_default();
            request.variants.push(if removal.strip {
                Variant {
                    id: removal.kind.key().to_string(),
                    strip: paths,
                    ..Default::default()
                }
            } else {
                Variant {
                    id: removal.kind.key().to_string(),
                    remove: paths,
                    ..Default::default()
                }
            });
        }
    }
    let base_keys: Vec<&str> = removals
        .iter()
        .filter(|r| r.kind.replaces_base())
        .map(|r| r.kind.key())
        .collect();
    for request in requests
        .values_mut()
        .filter(|_| options.measure_only.is_none())
    {
        let mut combined = Variant {
            id: COMBINED.to_string(),
            ..Default::default()
        };
        for variant in request
            .variants
            .iter()
            .filter(|v| !base_keys.contains(&v.id.as_str()))
        {
            combined.remove.extend(variant.remove.iter().cloned());
            combined.replace.extend(
                variant
                    .replace
                    .iter()
                    .map(|(k, v)| (k.clone(), Arc::clone(v))),
            );
            combined.strip.extend(variant.strip.iter().cloned());
        }
        request.variants.push(combined);
        // The base change with the suggested strips (when anything is stripped: else
        // the base change's own variant is that), in every layer either touches.
        if !base_keys.is_empty() && removals.iter().any(|r| r.strip) {
            let remove: HashSet<String> = request
                .variants
                .iter()
                .filter(|v| base_keys.contains(&v.id.as_str()))
                .flat_map(|v| v.remove.iter().cloned())
                .collect();
            let strip: HashSet<String> = removals
                .iter()
                .filter(|r| r.strip)
                .filter_map(|r| request.variants.iter().find(|v| v.id == r.kind.key()))
                .flat_map(|v| v.strip.iter())
                .filter(|path| !remove.contains(*path))
                .cloned()
                .collect();
            if !remove.is_empty() || !strip.is_empty() {
                request.variants.push(Variant {
                    id: COMBINED_ON_BASE.to_string(),
                    remove,
                    strip,
                    ..Default::default()
                });
            }
        }
    }
    if options.measure_zstd {
        for (index, layer) in analysis.layers.iter().enumerate() {
            // Measured in the layer read when the caller asked for it there.
            if layer.compression == Compression::Gzip
                && layer.compressed_bytes > 0
                && layer.zstd.is_none()
            {
                requests.entry(index).or_default().measure_zstd = true;
            }
        }
    }
    for (index, request) in requests.iter_mut() {
        request.gzip_level = analysis.layers[*index].gzip_level.clone();
        request.strip_mode = options.strip_mode;
        // The original, the rebuilt baseline and each variant; for apply, the layer it
        // writes and the combination it leaves out count too, so a layer is priced
        // whole only where apply can afford to compress it whole again.
        let outputs =
            request.variants.len() as u64 + 2 + if options.measure_only.is_some() { 2 } else { 0 };
        let work = analysis.layers[*index]
            .uncompressed_bytes
            .saturating_mul(outputs);
        if work > options.full_rebuild_bytes {
            request.method = rebuild::Method::Segments;
        }
    }
    let results = run_rebuilds(&source, analysis, requests, options, progress).await?;

    let mut suggestions: Vec<Suggestion> = removals
        .iter()
        .zip(&layer_paths)
        .map(|(removal, per_layer)| {
            let layers: BTreeSet<usize> = per_layer.keys().copied().collect();
            let mut suggestion = removal_suggestion(removal, &layers, analysis, &results);
            if let Some((kind, addition)) = &base_addition {
                if *kind == removal.kind {
                    net_of_base(&mut suggestion, addition.clone());
                }
            }
            suggestion
        })
        .collect();
    suggestions.extend(rust_profile::plan(analysis));
    if let Some(squash) = squash::plan(analysis, &suggestions) {
        suggestions.push(squash);
    }
    let zstd_in_read: BTreeMap<usize, crate::recompress::ZstdMeasurement> = analysis
        .layers
        .iter()
        .enumerate()
        .filter_map(|(index, layer)| layer.zstd.clone().map(|m| (index, m)))
        .collect();
    if let Some(zstd) = zstd::plan(analysis, &zstd_in_read, &results, options.measure_zstd) {
        suggestions.push(zstd);
    }
    suggestions.retain(|s| s.saved_bytes > 0 || s.saved_compressed_bytes > 0);
    suggestions.sort_by(|a, b| {
        b.saved_compressed_bytes
            .cmp(&a.saved_compressed_bytes)
            .then_with(|| b.saved_bytes.cmp(&a.saved_bytes))
            .then_with(|| a.id.key().cmp(b.id.key()))
    });

    let kinds: Vec<SuggestionKind> = suggestions.iter().map(|s| s.id).collect();
    for suggestion in &mut suggestions {
        suggestion.overlaps_with = kinds
            .iter()
            .copied()
            .filter(|k| suggestion.id.overlaps(*k))
            .collect();
    }
    let mut compressed = analysis.compressed_bytes();
    let mut uncompressed = analysis.uncompressed_bytes();
    // The same on the new base: the image reduced to its (stripped) binaries, plus
    // the base. A layer the base change leaves alone saves nothing there.
    let mut on_base = base_addition.as_ref().map(|(kind, addition)| {
        (
            *kind,
            addition,
            analysis.compressed_bytes() + addition.compressed_bytes,
            analysis.uncompressed_bytes() + addition.uncompressed_bytes,
        )
    });
    let mut measurements = Vec::new();
    for (layer, result) in &results {
        measurements.push(LayerMeasurement {
            layer: *layer,
            digest: analysis.layers[*layer].descriptor.digest.to_string(),
            compression: result.compression,
            compressed_bytes: result.original_compressed_bytes,
            method: result.method,
            rebuilt_compressed_bytes: result.rebuilt_bytes,
            recompressed_stretches: result.segments.map(|s| s.stretches),
            recompressed_bytes: result.segments.map(|s| s.recompressed_bytes),
            reproducible: result.reproducible(),
            gzip_level: result.gzip_level.clone(),
        });
        compressed = compressed.saturating_sub(result.saved_compressed(COMBINED));
        uncompressed = uncompressed.saturating_sub(result.saved_uncompressed(COMBINED));
        if let Some((kind, _, base_compressed, base_uncompressed)) = &mut on_base {
            let id = if removals.iter().any(|r| r.strip) {
                COMBINED_ON_BASE
            } else {
                kind.key()
            };
            *base_compressed = base_compressed.saturating_sub(result.saved_compressed(id));
            *base_uncompressed = base_uncompressed.saturating_sub(result.saved_uncompressed(id));
        }
    }
    let mut projected_base = None;
    let mut projected_confidence = Confidence::Measured;
    if let Some((kind, addition, base_compressed, base_uncompressed)) = on_base {
        // Only a base change the ranking kept (it saves something net) and that
        // gives the smaller image.
        if base_compressed < compressed && suggestions.iter().any(|s| s.id == kind) {
            compressed = base_compressed;
            uncompressed = base_uncompressed;
            projected_confidence = projected_confidence.max(addition.confidence);
            projected_base = Some(ProjectedBase {
                suggestion: kind,
                image: addition.image.clone(),
                compressed_bytes: addition.compressed_bytes,
                uncompressed_bytes: addition.uncompressed_bytes,
                confidence: addition.confidence,
            });
        }
    }
    let (low, high) = suggestions
        .iter()
        .filter(|s| s.confidence == Confidence::Estimate && !s.id.replaces_base())
        .fold((0, 0), |(low, high), s| {
            (
                low + s.saved_compressed_bytes / 2,
                high + s.saved_compressed_bytes,
            )
        });
    Ok(Advice {
        not_ranked: upx::plan(analysis).into_iter().collect(),
        suggestions,
        projected: Projection {
            compressed_bytes: compressed,
            uncompressed_bytes: uncompressed,
            confidence: projected_confidence,
            base: projected_base,
            estimate_low_compressed_bytes: compressed.saturating_sub(high),
            estimate_high_compressed_bytes: compressed.saturating_sub(low),
        },
        measurements,
    })
}

/// What applying one in-image suggestion leaves out: per layer index, the tar paths
/// (normalised, as [`crate::layer::normalise_path`] gives them) to drop. The same
/// sets advise measures, so `ballast apply` makes exactly the change advise priced.
#[derive(Debug, Clone)]
pub struct LayerRemovals {
    pub kind: SuggestionKind,
    pub layers: BTreeMap<usize, HashSet<String>>,
    /// The files (root-relative path, size, layer that adds them), whiteouts aside.
    pub files: Vec<(String, u64, usize)>,
}

/// Every suggestion that leaves files out of the image's own layers (hidden files,
/// package caches, toolchains, docs), as advise plans them.
/// What a base change carries over: the application binaries (root-relative paths),
/// the files the base-image suggestions keep.
pub fn application_binaries(analysis: &ImageAnalysis) -> Vec<String> {
    base::applications(analysis)
        .into_iter()
        .map(|b| b.path.clone())
        .collect()
}

pub fn layer_removals(analysis: &ImageAnalysis) -> Vec<LayerRemovals> {
    removals::plan(analysis)
        .into_iter()
        .filter(|r| !r.strip && !r.kind.replaces_base())
        .map(|removal| LayerRemovals {
            kind: removal.kind,
            layers: removal_layers(&removal, analysis),
            files: removal.files,
        })
        .collect()
}

/// What applying one strip suggestion rewrites: per layer index, the tar paths
/// (normalised) of the binaries to strip, the same ones advise strips to measure it.
#[derive(Debug, Clone)]
pub struct LayerStrips {
    pub kind: SuggestionKind,
    pub mode: StripMode,
    pub layers: BTreeMap<usize, HashSet<String>>,
    pub files: Vec<StripFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripFile {
    /// Root-relative path, as in the layer that adds it.
    pub path: String,
    pub layer: usize,
    pub size: u64,
    /// The size the ELF rewrite predicted for `mode` (`size_after_strip_all` or
    /// `size_after_strip_debug`).
    pub size_after: u64,
}

impl StripFile {
    /// Tar bytes the strip saves: the data blocks, the header staying as it is.
    pub fn tar_bytes_saved(&self) -> u64 {
        let blocks = |n: u64| n.div_ceil(512) * 512;
        blocks(self.size).saturating_sub(blocks(self.size_after))
    }
}

/// Every strip suggestion (`go-ldflags-s-w`, `rust-strip`, `strip-debug`) as advise
/// plans it for `mode`.
pub fn layer_strips(analysis: &ImageAnalysis, mode: StripMode) -> Vec<LayerStrips> {
    let after: std::collections::HashMap<(usize, &str), u64> = analysis
        .visible_binaries()
        .into_iter()
        .filter_map(|b| {
            let prediction = b.report.strip.as_ref()?;
            Some((
                (b.layer, b.report.path.as_str()),
                mode.size_after(prediction),
            ))
        })
        .collect();
    strip::plan(analysis, mode)
        .into_iter()
        .map(|removal| LayerStrips {
            kind: removal.kind,
            mode,
            layers: removal_layers(&removal, analysis),
            files: removal
                .files
                .iter()
                .map(|(path, size, layer)| StripFile {
                    path: path.clone(),
                    layer: *layer,
                    size: *size,
                    size_after: after
                        .get(&(*layer, path.as_str()))
                        .copied()
                        .unwrap_or(*size),
                })
                .collect(),
        })
        .collect()
}

/// The tar paths each layer leaves out for `removal`: its files and, for files a
/// later layer deletes, the whiteouts that deleted them once nothing below is left
/// for them to hide.
fn removal_layers(removal: &Removal, analysis: &ImageAnalysis) -> BTreeMap<usize, HashSet<String>> {
    let mut per_layer: BTreeMap<usize, HashSet<String>> = BTreeMap::new();
    for (path, _, layer) in &removal.files {
        per_layer.entry(*layer).or_default().insert(path.clone());
    }
    if removal.kind == SuggestionKind::DropDeletedFiles && !removal.strip {
        for (layer, whiteout) in idle_whiteouts(analysis, &per_layer) {
            per_layer.entry(layer).or_default().insert(whiteout);
        }
    }
    per_layer
}

/// Whiteouts (as their tar paths, `dir/.wh.name`) that hide nothing once `removed`
/// is gone from the layers below them. One ordered map of what stays, looked up once
/// per whiteout: never a scan of the layers per whiteout.
fn idle_whiteouts(
    analysis: &ImageAnalysis,
    removed: &BTreeMap<usize, HashSet<String>>,
) -> Vec<(usize, String)> {
    use crate::layer::EntryKind;
    let whiteouts: Vec<(usize, &str)> = analysis
        .layers
        .iter()
        .enumerate()
        .flat_map(|(index, layer)| {
            layer
                .entries
                .iter()
                .filter(|e| e.kind == EntryKind::Whiteout && !e.path.is_empty())
                .map(move |e| (index, e.path.as_str()))
        })
        .collect();
    if whiteouts.is_empty() {
        return vec![];
    }
    // Every entry that stays (whiteouts aside), by path, with the lowest layer it is in.
    let mut kept: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, layer) in analysis.layers.iter().enumerate() {
        let gone = removed.get(&index);
        for entry in &layer.entries {
            if entry.kind == EntryKind::Whiteout || gone.is_some_and(|g| g.contains(&entry.path)) {
                continue;
            }
            let lowest = kept.entry(entry.path.as_str()).or_insert(index);
            *lowest = (*lowest).min(index);
        }
    }
    whiteouts
        .into_iter()
        .filter(|(layer, path)| {
            let prefix = format!("{path}/");
            let below = |(_, lowest): (&&str, &usize)| *lowest < *layer;
            let hides_something = kept.get_key_value(path).is_some_and(below)
                || kept
                    .range(prefix.as_str()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .any(below);
            !hides_something
        })
        .map(|(layer, path)| {
            let name = match path.rsplit_once('/') {
                Some((dir, name)) => format!("{dir}/.wh.{name}"),
                None => format!(".wh.{path}"),
            };
            (layer, name)
        })
        .collect()
}

async fn run_rebuilds(
    source: &Arc<Source>,
    analysis: &ImageAnalysis,
    requests: BTreeMap<usize, RebuildRequest>,
    options: &AdviseOptions,
    progress: Arc<dyn Progress>,
) -> Result<BTreeMap<usize, RebuildResult>, AdviceError> {
    let measured: BTreeSet<&str> = requests
        .values()
        .flat_map(|r| r.variants.iter().map(|v| v.id.as_str()))
        .filter(|id| *id != COMBINED && *id != COMBINED_ON_BASE)
        .collect();
    progress.phase(
        &format!(
            "measuring {} {} on {} {}",
            measured.len(),
            if measured.len() == 1 {
                "suggestion"
            } else {
                "suggestions"
            },
            requests.len(),
            if requests.len() == 1 {
                "layer"
            } else {
                "layers"
            },
        ),
        requests
            .keys()
            .map(|layer| analysis.layers[*layer].compressed_bytes)
            .sum(),
    );
    let semaphore = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let cancel = crate::source::Cancel::default();
    for (layer, request) in requests {
        let cancel = cancel.clone();
        let source = Arc::clone(source);
        let semaphore = Arc::clone(&semaphore);
        let descriptor = analysis.layers[layer].descriptor.clone();
        let limits = options.limits;
        let progress = Arc::clone(&progress);
        let what = request
            .variants
            .iter()
            .map(|v| v.id.as_str())
            .filter(|id| *id != COMBINED && *id != COMBINED_ON_BASE)
            .collect::<Vec<_>>()
            .join(", ");
        tasks.spawn(async move {
            let _permit = semaphore
                .acquire_owned()
                .await
                .map_err(|e| AdviceError::Task(e.to_string()))?;
            if cancel.is_cancelled() {
                return Err(AdviceError::Task("cancelled".into()));
            }
            progress.detail(&format!("layer {layer}: {what}"));
            let blob = counted(
                cancel.wrap(source.open_blob(&descriptor).await?),
                Arc::clone(&progress),
            );
            let result = tokio::task::spawn_blocking(move || {
                rebuild::rebuild(blob, &descriptor, &request, &limits)
            })
            .await
            .map_err(|e| AdviceError::Task(e.to_string()))??;
            Ok::<_, AdviceError>((layer, result))
        });
    }
    let mut results = BTreeMap::new();
    for (layer, result) in crate::source::join_all(tasks, &cancel, AdviceError::Task).await? {
        results.insert(layer, result);
    }
    Ok(results)
}

fn removal_suggestion(
    removal: &Removal,
    layers: &BTreeSet<usize>,
    analysis: &ImageAnalysis,
    results: &BTreeMap<usize, RebuildResult>,
) -> Suggestion {
    let layers = layers.clone();
    let saved_bytes: u64 = layers
        .iter()
        .filter_map(|l| results.get(l))
        .map(|r| r.saved_uncompressed(removal.kind.key()))
        .sum();
    let saved_compressed_bytes: u64 = layers
        .iter()
        .filter_map(|l| results.get(l))
        .map(|r| r.saved_compressed(removal.kind.key()))
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
    let created_by = analysis.created_by();
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
    // Layers that only lose a whiteout (the one that deleted a file removed here)
    // hold none of the file data: named apart, so no reader looks for it there.
    let file_layers: std::collections::BTreeSet<usize> = files.iter().map(|f| f.2).collect();
    let whiteout_layers: Vec<usize> = layers
        .iter()
        .copied()
        .filter(|l| !file_layers.contains(l))
        .collect();
    let mut evidence = vec![format!(
        "{} {}, {} bytes of file data, in {}{}",
        files.len(),
        if files.len() == 1 { "file" } else { "files" },
        file_bytes,
        file_layers
            .iter()
            .map(|l| layer_line(*l))
            .collect::<Vec<_>>()
            .join("; "),
        if whiteout_layers.is_empty() {
            String::new()
        } else {
            format!(
                "; {}, left with nothing to hide, in {}",
                if files.len() == 1 {
                    "the whiteout that hid it"
                } else {
                    "the whiteouts that hid them"
                },
                whiteout_layers
                    .iter()
                    .map(|l| layer_line(*l))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    )];
    if matches!(
        removal.kind,
        SuggestionKind::DropDeletedFiles | SuggestionKind::DropOverwrittenFiles
    ) {
        // One lookup per hidden file: a set of the removal's files, not a scan of
        // them for each (200,000 deleted files made that 40 billion comparisons).
        let removed: HashSet<(&str, usize)> = removal
            .files
            .iter()
            .map(|(p, _, l)| (p.as_str(), *l))
            .collect();
        let hiders: BTreeSet<usize> = analysis
            .fs
            .wasted_files
            .iter()
            .filter(|f| removed.contains(&(f.path.as_str(), f.layer)))
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
    let prose = &removal.prose;
    let paths: Vec<String> = prose.paths.clone().unwrap_or_else(|| {
        files
            .iter()
            .take(20)
            .map(|(p, _, _)| format!("/{p}"))
            .collect()
    });
    let evidence = prose
        .evidence
        .iter()
        .cloned()
        .chain(evidence)
        .chain(prose.notes.iter().cloned())
        .collect();
    Suggestion {
        id: removal.kind,
        title: prose.title.clone(),
        paths,
        layers: layers.into_iter().collect(),
        saved_bytes,
        saved_compressed_bytes,
        confidence: compressed_confidence,
        saved_bytes_confidence: Confidence::Exact,
        saved_compressed_confidence: compressed_confidence,
        evidence,
        fix: prose.fix.clone(),
        side_effects: prose.side_effects.clone(),
        source: None,
        overlaps_with: vec![],
        base_added: None,
        run_dependent: vec![],
    }
}

/// Takes the new base's own size off a base change's savings, and says so.
fn net_of_base(suggestion: &mut Suggestion, mut addition: BaseAddition) {
    addition.gross_saved_bytes = suggestion.saved_bytes;
    addition.gross_saved_compressed_bytes = suggestion.saved_compressed_bytes;
    suggestion.saved_bytes = suggestion
        .saved_bytes
        .saturating_sub(addition.uncompressed_bytes);
    suggestion.saved_compressed_bytes = suggestion
        .saved_compressed_bytes
        .saturating_sub(addition.compressed_bytes);
    suggestion.saved_bytes_confidence = suggestion.saved_bytes_confidence.max(addition.confidence);
    suggestion.saved_compressed_confidence = suggestion
        .saved_compressed_confidence
        .max(addition.confidence);
    suggestion.confidence = suggestion
        .saved_bytes_confidence
        .max(suggestion.saved_compressed_confidence);
    suggestion.evidence.push(format!(
        "net of the new base: the image reduced to its binaries saves {} B compressed, {} B uncompressed (measured); {} adds back {} B compressed, {} B uncompressed ({})",
        addition.gross_saved_compressed_bytes,
        addition.gross_saved_bytes,
        addition.image,
        addition.compressed_bytes,
        addition.uncompressed_bytes,
        if addition.confidence == Confidence::Estimate {
            "an estimate: see its source"
        } else {
            addition.source.as_str()
        },
    ));
    if addition.confidence == Confidence::Estimate {
        suggestion.source = Some(addition.source.clone());
    }
    suggestion.base_added = Some(addition);
}

fn compression_evidence(
    layers: &BTreeSet<usize>,
    results: &BTreeMap<usize, RebuildResult>,
) -> String {
    let parts: Vec<String> = layers
        .iter()
        .filter_map(|l| results.get(l).map(|r| (l, r)))
        .map(|(layer, r)| match r.compression {
            Compression::Gzip if r.method == rebuild::Method::Segments => {
                let stats = r.segments.unwrap_or_default();
                format!(
                    "layer {layer}: stored {} B; measured at gzip level {} ({}) on the {} changed {} only ({} B recompressed), since deflate looks back no more than 32 KiB: measured, not exact (raise --full-rebuild-size to recompress the layer whole)",
                    r.original_compressed_bytes,
                    r.gzip_rebuild_level(),
                    level_evidence(r.gzip_level.as_ref()),
                    stats.stretches,
                    if stats.stretches == 1 { "stretch" } else { "stretches" },
                    stats.recompressed_bytes,
                )
            }
            Compression::Gzip if r.reproducible() => format!(
                "layer {layer}: stored {} B; re-gzipped here at level {} ({}): the same size, so the compressed saving is exact",
                r.original_compressed_bytes,
                r.gzip_rebuild_level(),
                level_evidence(r.gzip_level.as_ref()),
            ),
            Compression::Gzip => format!(
                "layer {layer}: stored {} B; re-gzipped here at level {} ({}): {} B, so the compressed saving is measured with this compressor at the closest level, not with the one that built the image",
                r.original_compressed_bytes,
                r.gzip_rebuild_level(),
                level_evidence(r.gzip_level.as_ref()),
                r.recompressed_original_bytes.unwrap_or(0),
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

fn level_evidence(found: Option<&gzip_level::GzipLevelMatch>) -> String {
    let Some(found) = found else {
        return "the default: too little data to judge the level".into();
    };
    let hint = found
        .header_hint
        .map(|h| format!("; its header says {h}"))
        .unwrap_or_default();
    let scope = if found.whole_layer {
        "the whole layer".to_string()
    } else {
        format!("its first {} B", found.probe_compressed_bytes)
    };
    if found.same_compressor {
        format!("{scope} re-deflates byte for byte at that level{hint}")
    } else {
        format!(
            "the closest of levels 1-9 to the stored bytes: {scope} within {:.2}%{hint}",
            found.probe_gap_percent().abs()
        )
    }
}
