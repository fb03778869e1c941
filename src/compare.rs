//! `ballast compare`: images side by side, built for the Go-vs-Rust question — which
//! build of a service is smaller, why, and what each would be after the suggested
//! changes. Every figure is read from the analyses, the advice and the cost estimate
//! given; nothing is derived that those do not contain.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::advice::{Advice, Confidence};
use crate::binary::{AnatomyGroup, BinaryReport, StripPrediction};
use crate::category::Category;
use crate::cost::{ColdStartParts, CostEstimate, ImageCost};
use crate::fs::Node;
use crate::inspect::ImageAnalysis;
use crate::layer::{ElfKind, EntryKind};
use crate::report::inspect::ImageInfo;
use crate::size::human;

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
    pub fn anatomy_bytes(&self, group: &str) -> u64 {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// The config's entrypoint (or a wrapper's argument) names it.
    Entrypoint,
    /// The config's cmd names it (no entrypoint).
    Cmd,
    /// No ELF program is named: the largest ELF executable outside system directories.
    LargestExecutable,
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
    pub language: String,
    /// `go.version` or `rust.rustc_version`.
    pub toolchain: Option<String>,
    pub linkage: String,
    pub elf_type: String,
    pub has_debug_info: bool,
    pub has_symbol_table: bool,
    pub anatomy: Vec<AnatomyGroup>,
    pub strip: Option<StripPrediction>,
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
    pub id: String,
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
    let verdict = verdict(&images, &set);
    Comparison {
        schema_version: crate::report::SCHEMA_VERSION,
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
    let created_by = analysis
        .image
        .config
        .created_by_per_layer(analysis.layers.len());
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
                id: s.id.clone(),
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
        image: ImageInfo::of(analysis),
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

/// Programs that run another program named in their arguments: the service is the
/// argument, not the wrapper.
const WRAPPERS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "ash",
    "zsh",
    "busybox",
    "env",
    "tini",
    "tini-static",
    "dumb-init",
    "catatonit",
    "s6-svscan",
    "gosu",
    "su-exec",
    "exec",
];

/// Where an unqualified command is looked up (Docker's default PATH).
const DEFAULT_PATH: &[&str] = &[
    "usr/local/sbin",
    "usr/local/bin",
    "usr/sbin",
    "usr/bin",
    "sbin",
    "bin",
];

/// Directories whose executables belong to the distribution, not to the service.
const SYSTEM_DIRS: &[&str] = &[
    "bin/",
    "sbin/",
    "lib/",
    "lib32/",
    "lib64/",
    "libx32/",
    "usr/bin/",
    "usr/sbin/",
    "usr/lib/",
    "usr/lib32/",
    "usr/lib64/",
    "usr/libx32/",
    "usr/libexec/",
    "usr/share/",
    "usr/include/",
    "etc/",
    "var/lib/",
];

/// The service's binary: the ELF program the config runs (through symlinks and
/// wrappers such as `sh -c` or `tini --`), else the largest ELF executable outside the
/// system directories.
pub fn main_binary(analysis: &ImageAnalysis) -> Option<MainBinary> {
    let config = &analysis.image.config;
    let (argv, found_by) = if config.entrypoint.is_empty() {
        (config.cmd.clone(), FoundBy::Cmd)
    } else {
        let mut argv = config.entrypoint.clone();
        argv.extend(config.cmd.iter().cloned());
        (argv, FoundBy::Entrypoint)
    };
    let merged = &analysis.fs.merged;
    for token in argv.iter().flat_map(|arg| arg.split_whitespace()) {
        if token.starts_with('-') || token.contains('=') {
            continue;
        }
        let token = token.trim_matches(|c| c == '"' || c == '\'' || c == ';' || c == '&');
        let Some(path) = resolve_command(merged, token) else {
            continue;
        };
        let Some(node) = merged.get(&path) else {
            continue;
        };
        if node.kind != EntryKind::File || node.elf.is_none() {
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or(&path);
        let token_name = token.rsplit('/').next().unwrap_or(token);
        if WRAPPERS.contains(&name) || WRAPPERS.contains(&token_name) {
            continue;
        }
        if let Some(report) = visible_report(analysis, &path, node) {
            let named_as = (token.trim_start_matches('/') != path).then(|| token.to_string());
            return Some(describe(report, &path, named_as, found_by));
        }
    }
    // Nothing named: the largest program a user put there.
    analysis
        .fs
        .visible_files()
        .filter(|(path, _)| !SYSTEM_DIRS.iter().any(|d| path.starts_with(d)))
        .filter_map(|(path, node)| {
            node.elf?;
            let report = visible_report(analysis, path, node)?;
            is_program(report, node).then_some((path, report))
        })
        .max_by(|a, b| a.1.size.cmp(&b.1.size).then_with(|| b.0.cmp(a.0)))
        .map(|(path, report)| describe(report, path, None, FoundBy::LargestExecutable))
}

fn is_program(report: &BinaryReport, node: &Node) -> bool {
    match report.elf_type.as_str() {
        "exec" | "pie" => true,
        "unknown" => node.elf == Some(ElfKind::Executable),
        _ => false,
    }
}

/// The forensic record of the visible copy of `path` (the one in the layer it comes from).
fn visible_report<'a>(
    analysis: &'a ImageAnalysis,
    path: &str,
    node: &Node,
) -> Option<&'a BinaryReport> {
    analysis
        .layers
        .get(node.layer)?
        .binaries
        .iter()
        .find(|r| r.path == path)
}

fn describe(
    report: &BinaryReport,
    path: &str,
    named_as: Option<String>,
    found_by: FoundBy,
) -> MainBinary {
    let toolchain = report.go.as_ref().map(|g| g.version.clone()).or_else(|| {
        report
            .rust
            .as_ref()
            .and_then(|r| r.rustc_version.as_ref())
            .map(|v| format!("rustc {v}"))
    });
    MainBinary {
        path: format!("/{path}"),
        named_as,
        found_by,
        size: report.size,
        language: report.language.clone(),
        toolchain,
        linkage: report.linkage.clone(),
        elf_type: report.elf_type.clone(),
        has_debug_info: report.has_debug_info,
        has_symbol_table: report.has_symbol_table,
        anatomy: report
            .anatomy
            .as_ref()
            .map(|a| a.groups.clone())
            .unwrap_or_default(),
        strip: report.strip.clone(),
    }
}

/// Finds the file a command names: `/abs/path`, `rel/path` (from the root) or a bare
/// name looked up in the default PATH; symlinks and hard links followed.
fn resolve_command(merged: &BTreeMap<String, Node>, command: &str) -> Option<String> {
    if command.is_empty() {
        return None;
    }
    if command.contains('/') {
        return resolve_path(merged, command);
    }
    DEFAULT_PATH
        .iter()
        .filter_map(|dir| resolve_path(merged, &format!("{dir}/{command}")))
        .find(|path| merged.get(path).is_some_and(|n| n.kind == EntryKind::File))
}

/// Resolves every component of `path` against the stacked filesystem, following
/// symbolic links (relative to their directory, absolute from the image root) and
/// hard links, the way the kernel would inside the container. `None` on a loop.
pub fn resolve_path(merged: &BTreeMap<String, Node>, path: &str) -> Option<String> {
    // Linux gives up after 40 links (ELOOP); so do we.
    let mut budget = 40;
    let mut pending: Vec<String> = components(path).into_iter().rev().collect();
    let mut resolved: Vec<String> = Vec::new();
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        resolved.push(part);
        let current = resolved.join("/");
        let Some(node) = merged.get(&current) else {
            continue;
        };
        let Some(target) = node.link_target.as_deref() else {
            continue;
        };
        match node.kind {
            EntryKind::Symlink => {
                budget -= 1;
                if budget == 0 {
                    return None;
                }
                resolved.pop();
                if target.starts_with('/') {
                    resolved.clear();
                }
                pending.extend(components(target).into_iter().rev());
            }
            EntryKind::Hardlink => {
                budget -= 1;
                if budget == 0 {
                    return None;
                }
                // Hard link targets are paths from the root of the layer.
                resolved.clear();
                pending.extend(components(target).into_iter().rev());
            }
            _ => {}
        }
    }
    Some(resolved.join("/"))
}

fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn verdict(images: &[ImageSide], set: &SetTotals) -> Verdict {
    let by_size = |a: &&ImageSide, b: &&ImageSide| {
        a.compressed_bytes
            .cmp(&b.compressed_bytes)
            .then(a.uncompressed_bytes.cmp(&b.uncompressed_bytes))
    };
    let index_of = |side: &ImageSide| {
        images
            .iter()
            .position(|i| std::ptr::eq(i, side))
            .unwrap_or(0)
    };
    let smallest = images.iter().min_by(by_size).map_or(0, index_of);
    let largest = images.iter().rev().max_by(by_size).map_or(0, index_of);
    let (small, large) = match (images.get(smallest), images.get(largest)) {
        (Some(s), Some(l)) => (s, l),
        _ => {
            return Verdict {
                smallest: 0,
                largest: 0,
                difference_compressed_bytes: 0,
                difference_uncompressed_bytes: 0,
                difference_share: 0.0,
                categories: vec![],
                anatomy: vec![],
                smallest_after_suggestions: None,
                summary: vec!["No images to compare.".into()],
            }
        }
    };
    let difference = large.compressed_bytes - small.compressed_bytes;
    let difference_share = if large.compressed_bytes == 0 {
        0.0
    } else {
        difference as f64 / large.compressed_bytes as f64
    };

    let categories = top_differences(Category::ALL.iter().map(|c| {
        (
            c.key().to_string(),
            c.label().to_string(),
            images
                .iter()
                .map(|i| {
                    i.categories
                        .iter()
                        .find(|row| row.category == c.key())
                        .map_or(0, |row| row.bytes)
                })
                .collect(),
        )
    }));
    let group_names = anatomy_groups(images);
    let anatomy = if images.iter().all(|i| i.main_binary.is_some()) {
        top_differences(group_names.iter().map(|name| {
            (
                name.to_string(),
                anatomy_label(name).to_string(),
                images.iter().map(|i| i.anatomy_bytes(name)).collect(),
            )
        }))
    } else {
        Vec::new()
    };
    let smallest_after_suggestions = if images.iter().all(|i| i.advice.is_some()) {
        images
            .iter()
            .enumerate()
            .filter_map(|(index, i)| i.advice.as_ref().map(|a| (index, a)))
            .min_by(|a, b| {
                a.1.projected_compressed_bytes
                    .cmp(&b.1.projected_compressed_bytes)
                    .then(a.0.cmp(&b.0))
            })
            .map(|(index, _)| index)
    } else {
        None
    };

    let mut verdict = Verdict {
        smallest,
        largest,
        difference_compressed_bytes: difference,
        difference_uncompressed_bytes: large.uncompressed_bytes as i64
            - small.uncompressed_bytes as i64,
        difference_share,
        categories,
        anatomy,
        smallest_after_suggestions,
        summary: Vec::new(),
    };
    verdict.summary = summary(images, set, &verdict);
    verdict
}

fn top_differences(rows: impl Iterator<Item = (String, String, Vec<u64>)>) -> Vec<Difference> {
    let mut out: Vec<Difference> = rows
        .map(|(name, label, bytes)| {
            let max = bytes.iter().copied().max().unwrap_or(0);
            let min = bytes.iter().copied().min().unwrap_or(0);
            Difference {
                name,
                label,
                bytes,
                spread: max - min,
            }
        })
        .filter(|d| d.spread > 0)
        .collect();
    out.sort_by(|a, b| b.spread.cmp(&a.spread).then_with(|| a.name.cmp(&b.name)));
    out.truncate(TOP_DIFFERENCES);
    out
}

/// The anatomy groups any of the main binaries has, in the analyser's order.
pub fn anatomy_groups(images: &[ImageSide]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for binary in images.iter().filter_map(|i| i.main_binary.as_ref()) {
        for group in &binary.anatomy {
            if !names.contains(&group.group) {
                names.push(group.group);
            }
        }
    }
    names.sort_by_key(|name| {
        crate::binary::ANATOMY_GROUPS
            .iter()
            .position(|o| o == name)
            .unwrap_or(crate::binary::ANATOMY_GROUPS.len())
    });
    names
}

/// What an anatomy group holds, in a reader's words.
pub fn anatomy_label(group: &str) -> &'static str {
    match group {
        "code" => "machine code",
        "rodata" => "read-only data",
        "data" => "data and bss",
        "gopclntab" => "Go pc-line table",
        "symbols" => "symbol tables",
        "dwarf" => "DWARF debug info",
        "unwind" => "unwind tables",
        "dynamic_linking" => "dynamic linking",
        "headers_and_padding" => "headers and padding",
        _ => "other sections",
    }
}

fn summary(images: &[ImageSide], set: &SetTotals, verdict: &Verdict) -> Vec<String> {
    let mut lines = Vec::new();
    let (Some(small), Some(large)) = (images.get(verdict.smallest), images.get(verdict.largest))
    else {
        return lines;
    };
    // Prose names images by their short labels; the references are listed beside them.
    let labels = image_labels(images);
    let name = |side: &ImageSide| -> String {
        images
            .iter()
            .position(|i| std::ptr::eq(i, side))
            .and_then(|index| labels.get(index).cloned())
            .unwrap_or_else(|| side.image.reference.clone())
    };
    if images.len() == 1 {
        lines.push(format!(
            "{} is the only image: {} compressed, {} uncompressed.",
            name(small),
            human(small.compressed_bytes),
            human(small.uncompressed_bytes)
        ));
    } else if verdict.difference_compressed_bytes == 0 {
        lines.push(format!(
            "{} and {} are the same size compressed ({}).",
            name(small),
            name(large),
            human(small.compressed_bytes)
        ));
    } else {
        lines.push(format!(
            "{} is the smallest: {} compressed vs {} for {} ({} or {:.1}% less); uncompressed {} vs {}.",
            name(small),
            human(small.compressed_bytes),
            human(large.compressed_bytes),
            name(large),
            human(verdict.difference_compressed_bytes),
            verdict.difference_share * 100.0,
            human(small.uncompressed_bytes),
            human(large.uncompressed_bytes)
        ));
    }
    if images.len() > 1 {
        if set.shared_layers > 0 {
            lines.push(format!(
                "{} layer(s) are shared (the same blobs, stored once and pulled once per node): \
                 the set is {} compressed instead of {}.",
                set.shared_layers,
                human(set.unique_compressed_bytes),
                human(set.total_compressed_bytes)
            ));
        }
        if set.same_content_layers > 0 {
            lines.push(format!(
                "{} layer(s) hold the same content (diff_id) in two images but are compressed \
                 differently: different blobs, so a registry stores and a node pulls each copy.",
                set.same_content_layers
            ));
        }
        if !verdict.categories.is_empty() {
            lines.push(format!(
                "Biggest differences by category (visible bytes): {}.",
                differences_text(&verdict.categories, images)
            ));
        }
        if !verdict.anatomy.is_empty() {
            lines.push(format!(
                "Inside the main binaries: {}.",
                differences_text(&verdict.anatomy, images)
            ));
        }
    }
    let stripped: Vec<Option<u64>> = images
        .iter()
        .map(|i| {
            i.main_binary
                .as_ref()
                .and_then(|b| b.strip.as_ref())
                .map(|s| s.size_after_strip_all)
        })
        .collect();
    if images.len() > 1 && stripped.iter().all(Option::is_some) {
        let parts: Vec<String> = stripped
            .iter()
            .zip(&labels)
            .map(|(size, label)| format!("{label} {}", human(size.unwrap_or(0))))
            .collect();
        lines.push(format!(
            "With debug info and symbols stripped (strip --strip-all), the main binaries would be {}.",
            parts.join(" vs ")
        ));
    }
    for side in images {
        if let Some(binary) = &side.main_binary {
            let mut line = format!(
                "{}: main binary {} ({}{}, {}, {})",
                name(side),
                binary.path,
                binary.language,
                binary
                    .toolchain
                    .as_ref()
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default(),
                binary.linkage,
                human(binary.size)
            );
            if let Some(strip) = &binary.strip {
                if strip.saved_by_strip_all > 0 {
                    line.push_str(&format!(
                        "; stripping would save {}",
                        human(strip.saved_by_strip_all)
                    ));
                }
            }
            line.push('.');
            lines.push(line);
        }
    }
    let with_advice: Vec<(&ImageSide, &AdviceSide)> = images
        .iter()
        .filter_map(|i| i.advice.as_ref().map(|a| (i, a)))
        .collect();
    if !with_advice.is_empty() {
        let parts: Vec<String> = with_advice
            .iter()
            .map(|(side, advice)| {
                format!(
                    "{} {} (from {})",
                    name(side),
                    human(advice.projected_compressed_bytes),
                    human(side.compressed_bytes)
                )
            })
            .collect();
        lines.push(format!(
            "After the exact and measured suggestions, compressed: {}.",
            parts.join("; ")
        ));
        if let Some(after) = verdict
            .smallest_after_suggestions
            .and_then(|i| images.get(i))
        {
            if images.len() > 1 {
                lines.push(if std::ptr::eq(after, small) {
                    format!("{} stays the smallest.", name(after))
                } else {
                    format!("{} would then be the smallest.", name(after))
                });
            }
        }
    }
    for side in images.iter().filter(|i| i.advice.is_none()) {
        lines.push(format!(
            "{}: no advice was computed, so no projection.",
            name(side)
        ));
    }
    lines
}

fn differences_text(differences: &[Difference], images: &[ImageSide]) -> String {
    differences
        .iter()
        .take(3)
        .map(|d| {
            let values: Vec<String> = d
                .bytes
                .iter()
                .zip(image_labels(images))
                .map(|(bytes, label)| format!("{label} {}", human(*bytes)))
                .collect();
            format!("{} ({})", d.label, values.join(" vs "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Short, distinct labels for the images (column headers, chart axes): the last
/// path component of each reference, numbered when two would read the same.
pub fn image_labels(images: &[ImageSide]) -> Vec<String> {
    let short: Vec<&str> = images
        .iter()
        .map(|i| short_name(&i.image.reference))
        .collect();
    short
        .iter()
        .enumerate()
        .map(|(index, name)| {
            if short.iter().filter(|other| *other == name).count() > 1 {
                format!("{} {name}", index + 1)
            } else {
                name.to_string()
            }
        })
        .collect()
}

/// The last path component of a reference (`hello-go:1.0` for
/// `oci:target/demo/hello-go:1.0`), for labels where the whole reference is too long.
pub fn short_name(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    without_digest
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: EntryKind, target: Option<&str>) -> Node {
        Node {
            kind,
            size: 10,
            layer: 0,
            elf: (kind == EntryKind::File).then_some(ElfKind::Executable),
            link_target: target.map(str::to_string),
        }
    }

    #[test]
    fn resolves_symlinked_directories_and_files() {
        let mut merged = BTreeMap::new();
        merged.insert("bin".to_string(), node(EntryKind::Symlink, Some("usr/bin")));
        merged.insert("usr".to_string(), node(EntryKind::Dir, None));
        merged.insert("usr/bin".to_string(), node(EntryKind::Dir, None));
        merged.insert(
            "usr/bin/app".to_string(),
            node(EntryKind::Symlink, Some("../../opt/app/server")),
        );
        merged.insert("opt/app/server".to_string(), node(EntryKind::File, None));
        merged.insert(
            "opt/abs".to_string(),
            node(EntryKind::Symlink, Some("/opt/app/server")),
        );
        merged.insert("loop".to_string(), node(EntryKind::Symlink, Some("loop")));
        assert_eq!(
            resolve_path(&merged, "/bin/app").as_deref(),
            Some("opt/app/server")
        );
        assert_eq!(
            resolve_path(&merged, "/opt/abs").as_deref(),
            Some("opt/app/server")
        );
        assert_eq!(resolve_path(&merged, "/loop"), None);
        assert_eq!(
            resolve_command(&merged, "app").as_deref(),
            Some("opt/app/server")
        );
    }

    #[test]
    fn short_names() {
        assert_eq!(short_name("oci:target/demo/hello-go:1.0"), "hello-go:1.0");
        assert_eq!(short_name("ghcr.io/org/app@sha256:abc"), "app");
        assert_eq!(short_name("alpine"), "alpine");
    }
}
