//! `ballast diff BASE NEW`: what changed between two images, sorted by impact.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::binary::attribution::summary::{self as attribution_summary, AttributionDiff};
use crate::binary::BinaryReport;
use crate::image::ImageAnalysis;
use crate::layer::EntryKind;
use crate::vocabulary::vocabulary;

vocabulary! {
    /// What became of a layer between BASE and NEW.
    pub enum LayerChangeKind {
        Added => "added", "added";
        Removed => "removed", "removed";
        /// The same blob in both.
        Shared => "shared", "shared";
        /// The same content (diff_id) in another blob: compressed another way.
        Recompressed => "recompressed", "recompressed";
    }
}

vocabulary! {
    /// What became of a visible file between BASE and NEW.
    pub enum FileChangeKind {
        Added => "added", "added";
        Removed => "removed", "removed";
        Grown => "grown", "grown";
        Shrunk => "shrunk", "shrunk";
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerChange {
    /// `added`, `removed`, `shared` (the same blob) or `recompressed` (the same
    /// content, by diff_id, in another blob: compressed another way).
    pub change: LayerChangeKind,
    pub digest: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Position in BASE and in NEW.
    pub base_index: Option<usize>,
    pub new_index: Option<usize>,
    pub created_by: Option<String>,
    /// For `recompressed`: the blob in BASE, and both compressions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recompressed: Option<Recompressed>,
}

impl LayerChange {
    /// The change as a person reads it: `recompressed (gzip → tar)` says how.
    pub fn change_label(&self) -> String {
        match &self.recompressed {
            Some(r) => format!("recompressed ({} → {})", r.base_compression, r.compression),
            None => self.change.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Recompressed {
    pub base_digest: String,
    pub base_compressed_bytes: u64,
    pub base_compression: crate::layer::Compression,
    pub compression: crate::layer::Compression,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    /// `added`, `removed`, `grown` or `shrunk`.
    pub change: FileChangeKind,
    pub path: String,
    pub before: u64,
    pub after: u64,
    pub delta: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BinaryChange {
    pub path: String,
    pub before: u64,
    pub after: u64,
    pub delta: i64,
    /// What changed in its make-up, in words ("debug info came back", …).
    pub changes: Vec<String>,
    /// Packages (Go) or crates (Rust) of its code that came, went, grew or shrank;
    /// `null` when either build's code is unmeasured or the unit differs.
    pub code: Option<AttributionDiff>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub before: u64,
    pub after: u64,
    pub delta: i64,
    pub percent: f64,
}

impl Totals {
    fn of(before: u64, after: u64) -> Self {
        let delta = after as i64 - before as i64;
        Self {
            before,
            after,
            delta,
            percent: if before == 0 {
                0.0
            } else {
                (delta as f64 / before as f64 * 10_000.0).round() / 100.0
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageDiff {
    pub base: String,
    pub new: String,
    pub compressed: Totals,
    pub uncompressed: Totals,
    pub visible_files: Totals,
    pub wasted: Totals,
    pub layers: Vec<LayerChange>,
    pub files: Vec<FileChange>,
    pub binaries: Vec<BinaryChange>,
}

pub fn diff(base: &ImageAnalysis, new: &ImageAnalysis) -> ImageDiff {
    let created_base = base.created_by();
    let created_new = new.created_by();
    let base_digests: BTreeMap<String, usize> = base
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.descriptor.digest.to_string(), i))
        .collect();
    let new_digests: BTreeMap<String, usize> = new
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.descriptor.digest.to_string(), i))
        .collect();
    // Content that moved to another blob (the same tar compressed another way, or
    // stored plain in a docker save) is matched by diff_id, so it is neither removed
    // nor added.
    let base_contents: BTreeMap<String, usize> = base
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.diff_id.to_string(), i))
        .collect();
    let new_contents: BTreeMap<String, usize> = new
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.diff_id.to_string(), i))
        .collect();
    let mut layers = Vec::new();
    for (index, layer) in new.layers.iter().enumerate() {
        let digest = layer.descriptor.digest.to_string();
        let same_blob = base_digests.get(&digest).copied();
        let same_content = base_contents.get(&layer.diff_id.to_string()).copied();
        let (change, base_index, recompressed) = match (same_blob, same_content) {
            (Some(base_index), _) => (LayerChangeKind::Shared, Some(base_index), None),
            (None, Some(base_index)) => {
                let before = &base.layers[base_index];
                (
                    LayerChangeKind::Recompressed,
                    Some(base_index),
                    Some(Recompressed {
                        base_digest: before.descriptor.digest.to_string(),
                        base_compressed_bytes: before.compressed_bytes,
                        base_compression: before.compression,
                        compression: layer.compression,
                    }),
                )
            }
            (None, None) => (LayerChangeKind::Added, None, None),
        };
        layers.push(LayerChange {
            change,
            digest,
            compressed_bytes: layer.compressed_bytes,
            uncompressed_bytes: layer.uncompressed_bytes,
            base_index,
            new_index: Some(index),
            created_by: created_new.get(index).cloned().flatten(),
            recompressed,
        });
    }
    for (index, layer) in base.layers.iter().enumerate() {
        let digest = layer.descriptor.digest.to_string();
        if !new_digests.contains_key(&digest)
            && !new_contents.contains_key(&layer.diff_id.to_string())
        {
            layers.push(LayerChange {
                change: LayerChangeKind::Removed,
                digest,
                compressed_bytes: layer.compressed_bytes,
                uncompressed_bytes: layer.uncompressed_bytes,
                base_index: Some(index),
                new_index: None,
                created_by: created_base.get(index).cloned().flatten(),
                recompressed: None,
            });
        }
    }

    let files_of = |analysis: &ImageAnalysis| -> BTreeMap<String, u64> {
        analysis
            .fs
            .merged
            .iter()
            .filter(|(_, n)| n.kind == EntryKind::File)
            .map(|(p, n)| (p.clone(), n.size))
            .collect()
    };
    let before_files = files_of(base);
    let after_files = files_of(new);
    let paths: BTreeSet<&String> = before_files.keys().chain(after_files.keys()).collect();
    let mut files = Vec::new();
    for path in paths {
        let (before, after) = (before_files.get(path), after_files.get(path));
        let change = match (before, after) {
            (None, Some(_)) => FileChangeKind::Added,
            (Some(_), None) => FileChangeKind::Removed,
            (Some(b), Some(a)) if a > b => FileChangeKind::Grown,
            (Some(b), Some(a)) if a < b => FileChangeKind::Shrunk,
            _ => continue,
        };
        let (before, after) = (before.copied().unwrap_or(0), after.copied().unwrap_or(0));
        files.push(FileChange {
            change,
            path: format!("/{path}"),
            before,
            after,
            delta: after as i64 - before as i64,
        });
    }
    files.sort_by(|a, b| {
        b.delta
            .unsigned_abs()
            .cmp(&a.delta.unsigned_abs())
            .then_with(|| a.path.cmp(&b.path))
    });

    let before_binaries = binaries_of(base);
    let after_binaries = binaries_of(new);
    let mut binaries = Vec::new();
    for (path, after) in &after_binaries {
        let Some(before) = before_binaries.get(path) else {
            continue;
        };
        let changes = binary_changes(before, after);
        let code = match (&before.attribution, &after.attribution) {
            (Some(b), Some(a)) => attribution_summary::diff(b, a).filter(|d| !d.items.is_empty()),
            _ => None,
        };
        if changes.is_empty() && before.size == after.size && code.is_none() {
            continue;
        }
        binaries.push(BinaryChange {
            path: path.clone(),
            before: before.size,
            after: after.size,
            delta: after.size as i64 - before.size as i64,
            changes,
            code,
        });
    }
    binaries.sort_by(|a, b| {
        b.delta
            .unsigned_abs()
            .cmp(&a.delta.unsigned_abs())
            .then_with(|| a.path.cmp(&b.path))
    });

    ImageDiff {
        base: base.image.reference.clone(),
        new: new.image.reference.clone(),
        compressed: Totals::of(base.compressed_bytes(), new.compressed_bytes()),
        uncompressed: Totals::of(base.uncompressed_bytes(), new.uncompressed_bytes()),
        visible_files: Totals::of(base.fs.visible_bytes(), new.fs.visible_bytes()),
        wasted: Totals::of(base.fs.wasted_bytes(), new.fs.wasted_bytes()),
        layers,
        files,
        binaries,
    }
}

/// The visible binaries by absolute path.
fn binaries_of(analysis: &ImageAnalysis) -> BTreeMap<String, &BinaryReport> {
    analysis
        .visible_binaries()
        .into_iter()
        .map(|b| (format!("/{}", b.report.path), b.report))
        .collect()
}

/// A binary's make-up, compared field by field on its forensic record.
fn binary_changes(before: &BinaryReport, after: &BinaryReport) -> Vec<String> {
    let mut changes = Vec::new();
    match (before.has_debug_info, after.has_debug_info) {
        (false, true) => changes.push("debug info came back".to_string()),
        (true, false) => changes.push("debug info removed".to_string()),
        _ => {}
    }
    match (before.has_symbol_table, after.has_symbol_table) {
        (false, true) => changes.push("symbol table came back".to_string()),
        (true, false) => changes.push("symbol table removed".to_string()),
        _ => {}
    }
    if before.linkage != after.linkage {
        changes.push(format!("linkage: {} → {}", before.linkage, after.linkage));
    }
    if before.language != after.language {
        changes.push(format!(
            "language: {} → {}",
            before.language, after.language
        ));
    }
    if before.interpreter != after.interpreter {
        // `null` is what the JSON record shows for a program without one.
        let show = |i: &Option<String>| i.clone().unwrap_or_else(|| "null".into());
        changes.push(format!(
            "interpreter: {} → {}",
            show(&before.interpreter),
            show(&after.interpreter)
        ));
    }
    let version = |r: &BinaryReport| {
        r.go.as_ref()
            .map(|g| g.version.clone())
            .or_else(|| r.rust.as_ref().and_then(|r| r.rustc_version.clone()))
    };
    if version(before) != version(after) {
        changes.push(format!(
            "toolchain: {} → {}",
            version(before).unwrap_or_else(|| "?".into()),
            version(after).unwrap_or_else(|| "?".into())
        ));
    }
    if let (Some(b), Some(a)) = (&before.anatomy, &after.anatomy) {
        // By the part's key, as the JSON names it.
        let sizes = |anatomy: &crate::binary::Anatomy| -> BTreeMap<&'static str, u64> {
            anatomy
                .groups
                .iter()
                .map(|g| (g.group.key(), g.bytes))
                .collect()
        };
        let (b, a) = (sizes(b), sizes(a));
        let groups: BTreeSet<&&str> = a.keys().chain(b.keys()).collect();
        for group in groups {
            let before_bytes = b.get(*group).copied().unwrap_or(0);
            let after_bytes = a.get(*group).copied().unwrap_or(0);
            let delta = after_bytes as i64 - before_bytes as i64;
            if delta.unsigned_abs() >= 4096 {
                changes.push(format!("{group} {}", crate::size::human_delta(delta)));
            }
        }
    }
    changes
}
