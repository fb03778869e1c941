//! `ballast compare`: images side by side, built for the Go-vs-Rust question — which
//! build of a service is smaller, why, and what each would be after the suggested
//! changes. Every figure is read from the analyses, the advice and the cost estimate
//! given; nothing is derived that those do not contain.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::advice::{Advice, Confidence};
use crate::binary::attribution::summary::{AttributionSummary, TOP_ITEMS};
use crate::binary::{AnatomyGroup, AnatomyPart, ElfType, Language, Linkage, StripPrediction};
use crate::cost::{ColdStartParts, CostEstimate, ImageCost};
use crate::image::{FoundBy, ImageAnalysis, ImageInfo, MainProgram};

mod verdict;

pub use verdict::{anatomy_groups, image_labels, reference_labels, short_name};

/// One image's inputs: what `inspect` read and, when it ran, what `advise` found.
#[derive(Debug, Clone)]
pub struct ImageBundle {
    pub analysis: ImageAnalysis,
    pub advice: Option<Advice>,
}

/// How many suggestions each image lists.
pub const TOP_SUGGESTIONS: usize = 3;
/// How many differing categories and anatomy groups the verdict names.
const TOP_DIFFERENCES: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub images: Vec<ImageSide>,
    /// Layers present in two or more of the images (by blob digest).
    pub shared_layers: Vec<SharedLayer>,
    pub set: SetTotals,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageSide {
    pub image: ImageInfo,
    /// Σ of the manifest's layer blobs, as `inspect` reports it.
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub layers: usize,
    /// Layers whose blob another image of the comparison also has.
    pub shared_layers: usize,
    pub shared_compressed_bytes: u64,
    /// Compressed bytes in layers no other image of the comparison has.
    pub unique_compressed_bytes: u64,
    pub layer_list: Vec<LayerSide>,
    /// Visible bytes per category, every category present.
    pub categories: Vec<CategoryBytes>,
    pub main_binary: Option<MainBinary>,
    pub waste: WasteSide,
    /// `None` when no advice was given for this image.
    pub advice: Option<AdviceSide>,
    /// `None` when no cost estimate was given (or it has no entry for this image).
    pub cost: Option<CostSide>,
}

impl ImageSide {
    /// Bytes of the main binary in one anatomy group (0 without a main binary).
    pub fn anatomy_bytes(&self, group: AnatomyPart) -> u64 {
        self.main_binary
            .iter()
            .flat_map(|b| b.anatomy.iter())
            .find(|g| g.group == group)
            .map_or(0, |g| g.bytes)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerSide {
    pub index: usize,
    pub digest: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Another image of the comparison has this blob too.
    pub shared: bool,
    /// The uncompressed tar's digest (the config's diff_id).
    pub diff_id: String,
    /// Another image has the same content (diff_id) in a different blob: compressed
    /// another way, so a registry stores and a node pulls it twice.
    pub same_content_elsewhere: bool,
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryBytes {
    pub category: &'static str,
    pub label: &'static str,
    pub bytes: u64,
    pub files: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MainBinary {
    /// Absolute path inside the image, symlinks resolved.
    pub path: String,
    /// The path as the config names it, when it differs from `path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named_as: Option<String>,
    pub found_by: FoundBy,
    pub size: u64,
    pub language: Language,
    /// `go.version` or `rust.rustc_version`.
    pub toolchain: Option<String>,
    pub linkage: Linkage,
    pub elf_type: ElfType,
    pub has_debug_info: bool,
    pub has_symbol_table: bool,
    pub anatomy: Vec<AnatomyGroup>,
    pub strip: Option<StripPrediction>,
    /// The largest packages (Go) or crates (Rust) of its code and the standard
    /// library's share of `.text`; `null` without a measured attribution.
    pub attribution_summary: Option<AttributionSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WasteSide {
    /// Bytes no container can see: deleted plus overwritten.
    pub hidden_bytes: u64,
    pub deleted_bytes: u64,
    pub overwritten_bytes: u64,
    pub package_cache_bytes: u64,
    pub dive_efficiency: f64,
    pub dive_wasted_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdviceSide {
    pub suggestions: usize,
    pub top: Vec<TopSuggestion>,
    /// With every `exact` and `measured` suggestion applied, as `advise` projects it.
    pub projected_compressed_bytes: u64,
    pub projected_uncompressed_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopSuggestion {
    pub id: crate::advice::SuggestionKind,
    pub title: String,
    pub saved_bytes: u64,
    pub saved_compressed_bytes: u64,
    pub confidence: Confidence,
}

#[derive(Debug, Clone, Serialize)]
pub struct CostSide {
    pub profile: String,
    pub storage_usd_month: f64,
    pub transfer_usd_month: f64,
    pub total_usd_month: f64,
    pub cold_start_s: f64,
    pub cold_start_parts: ColdStartParts,
}

#[derive(Debug, Clone, Serialize)]
pub struct SharedLayer {
    pub digest: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Indexes into `images`.
    pub images: Vec<usize>,
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetTotals {
    pub images: usize,
    /// Σ of each image's compressed bytes, as if nothing were shared.
    pub total_compressed_bytes: u64,
    /// Each distinct layer blob once.
    pub unique_compressed_bytes: u64,
    pub shared_layers: usize,
    /// What sharing saves: `total - unique`.
    pub sharing_saved_bytes: u64,
    /// Distinct contents (diff_ids) held by two or more images in different blobs.
    pub same_content_layers: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Index of the smallest image by compressed bytes (first on a tie).
    pub smallest: usize,
    /// Index of the largest image by compressed bytes.
    pub largest: usize,
    /// `largest - smallest`, compressed.
    pub difference_compressed_bytes: u64,
    pub difference_uncompressed_bytes: i64,
    /// The difference as a share of the largest image, 0..1.
    pub difference_share: f64,
    /// Categories whose visible bytes differ most between the images.
    pub categories: Vec<Difference>,
    /// Anatomy groups of the main binaries that differ most.
    pub anatomy: Vec<Difference>,
    /// Index of the smallest image after every image's projected changes, when every
    /// image has advice.
    pub smallest_after_suggestions: Option<usize>,
    /// The verdict in sentences, figures filled in from the fields above.
    pub summary: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub name: String,
    pub label: String,
    /// One per image, in image order.
    pub bytes: Vec<u64>,
    /// max - min over the images.
    pub spread: u64,
}

pub fn compare(bundles: &[ImageBundle], cost: Option<&CostEstimate>) -> Comparison {
    let holders = layer_holders(bundles);
    let contents = content_holders(bundles);
    let mut images: Vec<ImageSide> = bundles
        .iter()
        .enumerate()
        .map(|(index, bundle)| image_side(index, bundle, &holders, &contents, cost))
        .collect();
    // A blob listed twice in one image is still one blob; shared-ness is across images.
    for side in &mut images {
        let mut seen = BTreeSet::new();
        side.shared_layers = 0;
        side.shared_compressed_bytes = 0;
        for layer in side.layer_list.iter().filter(|l| l.shared) {
            side.shared_layers += 1;
            if seen.insert(layer.digest.clone()) {
                side.shared_compressed_bytes += layer.compressed_bytes;
            }
        }
        let distinct: u64 = distinct_layers(&side.layer_list).values().sum();
        side.unique_compressed_bytes = distinct.saturating_sub(side.shared_compressed_bytes);
    }

    let mut shared_layers: Vec<SharedLayer> = Vec::new();
    let mut union: BTreeMap<String, u64> = BTreeMap::new();
    for (index, side) in images.iter().enumerate() {
        for layer in &side.layer_list {
            union.insert(layer.digest.clone(), layer.compressed_bytes);
            if !layer.shared || shared_layers.iter().any(|s| s.digest == layer.digest) {
                continue;
            }
            let mut holders: Vec<usize> = holders
                .get(layer.digest.as_str())
                .map(|h| h.iter().copied().collect())
                .unwrap_or_default();
            holders.sort_unstable();
            if holders.first() == Some(&index) {
                shared_layers.push(SharedLayer {
                    digest: layer.digest.clone(),
                    compressed_bytes: layer.compressed_bytes,
                    uncompressed_bytes: layer.uncompressed_bytes,
                    images: holders,
                    created_by: layer.created_by.clone(),
                });
            }
        }
    }
    let total: u64 = images.iter().map(|i| i.compressed_bytes).sum();
    let unique: u64 = union.values().sum();
    let same_content: BTreeSet<&str> = images
        .iter()
        .flat_map(|side| side.layer_list.iter())
        .filter(|layer| layer.same_content_elsewhere)
        .map(|layer| layer.diff_id.as_str())
        .collect();
    let set = SetTotals {
        images: images.len(),
        total_compressed_bytes: total,
        unique_compressed_bytes: unique,
        shared_layers: shared_layers.len(),
        sharing_saved_bytes: total.saturating_sub(unique),
        same_content_layers: same_content.len(),
    };
    let verdict = verdict::verdict(&images, &set);
    Comparison {
        schema_version: crate::image::SCHEMA_VERSION,
        images,
        shared_layers,
        set,
        verdict,
    }
}

/// Which images hold each layer blob.
fn layer_holders(bundles: &[ImageBundle]) -> HashMap<String, BTreeSet<usize>> {
    let mut holders: HashMap<String, BTreeSet<usize>> = HashMap::new();
    for (index, bundle) in bundles.iter().enumerate() {
        for layer in &bundle.analysis.layers {
            holders
                .entry(layer.descriptor.digest.to_string())
                .or_default()
                .insert(index);
        }
    }
    holders
}

/// Which images hold each layer content (diff_id), and in which blobs.
type ContentHolders = HashMap<String, Vec<(usize, String)>>;

fn content_holders(bundles: &[ImageBundle]) -> ContentHolders {
    let mut holders: ContentHolders = HashMap::new();
    for (index, bundle) in bundles.iter().enumerate() {
        for layer in &bundle.analysis.layers {
            holders
                .entry(layer.diff_id.to_string())
                .or_default()
                .push((index, layer.descriptor.digest.to_string()));
        }
    }
    holders
}

fn distinct_layers(layers: &[LayerSide]) -> BTreeMap<&str, u64> {
    layers
        .iter()
        .map(|l| (l.digest.as_str(), l.compressed_bytes))
        .collect()
}

fn image_side(
    index: usize,
    bundle: &ImageBundle,
    holders: &HashMap<String, BTreeSet<usize>>,
    contents: &ContentHolders,
    cost: Option<&CostEstimate>,
) -> ImageSide {
    let analysis = &bundle.analysis;
    let created_by = analysis.created_by();
    let layer_list = analysis
        .layers
        .iter()
        .enumerate()
        .map(|(layer_index, scan)| {
            let digest = scan.descriptor.digest.to_string();
            let shared = holders
                .get(&digest)
                .is_some_and(|h| h.iter().any(|i| *i != index));
            let diff_id = scan.diff_id.to_string();
            let same_content_elsewhere = contents
                .get(&diff_id)
                .is_some_and(|h| h.iter().any(|(i, blob)| *i != index && *blob != digest));
            LayerSide {
                index: layer_index,
                digest,
                compressed_bytes: scan.compressed_bytes,
                uncompressed_bytes: scan.uncompressed_bytes,
                shared,
                diff_id,
                same_content_elsewhere,
                created_by: created_by.get(layer_index).cloned().flatten(),
            }
        })
        .collect();
    let fs = &analysis.fs;
    let categories = fs
        .bytes_by_category()
        .into_iter()
        .map(|(category, (bytes, files))| CategoryBytes {
            category: category.key(),
            label: category.label(),
            bytes,
            files,
        })
        .collect();
    let advice = bundle.advice.as_ref().map(|advice| AdviceSide {
        suggestions: advice.suggestions.len(),
        top: advice
            .suggestions
            .iter()
            .take(TOP_SUGGESTIONS)
            .map(|s| TopSuggestion {
                id: s.id,
                title: s.title.clone(),
                saved_bytes: s.saved_bytes,
                saved_compressed_bytes: s.saved_compressed_bytes,
                confidence: s.confidence,
            })
            .collect(),
        projected_compressed_bytes: advice.projected.compressed_bytes,
        projected_uncompressed_bytes: advice.projected.uncompressed_bytes,
    });
    let cost = cost
        .and_then(|estimate| image_cost(estimate, index, &analysis.image.reference))
        .map(|(profile, c)| CostSide {
            profile: profile.to_string(),
            storage_usd_month: c.storage_usd_month,
            transfer_usd_month: c.transfer_usd_month,
            total_usd_month: c.total_usd_month,
            cold_start_s: c.cold_start.total_s,
            cold_start_parts: c.cold_start.parts.clone(),
        });
    ImageSide {
        image: analysis.info(),
        compressed_bytes: analysis.compressed_bytes(),
        uncompressed_bytes: analysis.uncompressed_bytes(),
        layers: analysis.layers.len(),
        shared_layers: 0,
        shared_compressed_bytes: 0,
        unique_compressed_bytes: 0,
        layer_list,
        categories,
        main_binary: main_binary(analysis),
        waste: WasteSide {
            hidden_bytes: fs.wasted_bytes(),
            deleted_bytes: fs.deleted_bytes,
            overwritten_bytes: fs.overwritten_bytes,
            package_cache_bytes: fs.package_cache_bytes(),
            dive_efficiency: fs.dive.efficiency,
            dive_wasted_bytes: fs.dive.wasted_bytes,
        },
        advice,
        cost,
    }
}

/// The estimate's entry for image `index`: the same position when its reference
/// matches (the usual case: costed in the same order), else the first with the reference.
pub fn image_cost<'a>(
    estimate: &'a CostEstimate,
    index: usize,
    reference: &str,
) -> Option<(&'a str, &'a ImageCost)> {
    let found = estimate
        .images
        .get(index)
        .filter(|c| c.reference == reference)
        .or_else(|| estimate.images.iter().find(|c| c.reference == reference))?;
    Some((estimate.profile.as_str(), found))
}

/// The service's binary as the comparison shows it (see
/// [`ImageAnalysis::main_program`]).
pub fn main_binary(analysis: &ImageAnalysis) -> Option<MainBinary> {
    analysis.main_program().map(describe)
}

/// The main program as the comparison shows it.
fn describe(program: MainProgram<'_>) -> MainBinary {
    let report = program.report;
    let toolchain = report.go.as_ref().map(|g| g.version.clone()).or_else(|| {
        report
            .rust
            .as_ref()
            .and_then(|r| r.rustc_version.as_ref())
            .map(|v| format!("rustc {v}"))
    });
    MainBinary {
        path: format!("/{}", program.path),
        named_as: program.named_as,
        found_by: program.found_by,
        size: report.size,
        language: report.language,
        toolchain,
        linkage: report.linkage,
        elf_type: report.elf_type,
        has_debug_info: report.has_debug_info,
        has_symbol_table: report.has_symbol_table,
        anatomy: report
            .anatomy
            .as_ref()
            .map(|a| a.groups.clone())
            .unwrap_or_default(),
        strip: report.strip.clone(),
        attribution_summary: report
            .attribution
            .as_ref()
            .and_then(|a| AttributionSummary::of(a, TOP_ITEMS)),
    }
}
