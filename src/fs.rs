//! The stacked filesystem a container sees: layers applied in order, whiteouts honoured,
//! and the bytes no container can ever see (deleted or overwritten by a later layer).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::binary::ElfKind;
use crate::category::{self, Category};
use crate::layer::{EntryKind, LayerScan};

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: EntryKind,
    pub size: u64,
    pub layer: usize,
    pub elf: Option<ElfKind>,
    pub link_target: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WasteCause {
    /// Removed by a whiteout in a later layer.
    Deleted,
    /// Replaced by a later layer's file at the same path.
    Overwritten,
}

#[derive(Debug, Clone, Serialize)]
pub struct WastedFile {
    pub path: String,
    pub size: u64,
    /// The layer that added the bytes.
    pub layer: usize,
    /// The layer that hid them.
    pub hidden_by_layer: usize,
    pub cause: WasteCause,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DiveFigures {
    /// dive's efficiency score: Σ smallest occurrence / Σ all occurrences, per path.
    pub efficiency: f64,
    /// dive's "wasted bytes": Σ all occurrences of every path seen in two or more
    /// layers (so the surviving copy counts too).
    pub wasted_bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct FsAnalysis {
    pub merged: BTreeMap<String, Node>,
    pub deleted_bytes: u64,
    pub overwritten_bytes: u64,
    pub wasted_files: Vec<WastedFile>,
    pub dive: DiveFigures,
}

impl FsAnalysis {
    pub fn wasted_bytes(&self) -> u64 {
        self.deleted_bytes + self.overwritten_bytes
    }

    pub fn visible_files(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.merged
            .iter()
            .filter(|(_, n)| n.kind == EntryKind::File)
    }

    pub fn visible_bytes(&self) -> u64 {
        self.visible_files().map(|(_, n)| n.size).sum()
    }

    /// Visible bytes per category, every category present (zero when empty).
    pub fn bytes_by_category(&self) -> BTreeMap<Category, (u64, u64)> {
        let mut totals: BTreeMap<Category, (u64, u64)> =
            Category::ALL.iter().map(|c| (*c, (0, 0))).collect();
        for (path, node) in self.visible_files() {
            let slot = totals
                .entry(category::classify(path, node.elf))
                .or_default();
            slot.0 += node.size;
            slot.1 += 1;
        }
        totals
    }

    /// Where `path` (absolute, or relative to the root) leads inside the container:
    /// every component resolved against the merged filesystem, following symbolic
    /// links (relative to their directory, absolute from the root) and hard links, as
    /// the kernel would. The path need not exist; `None` on a loop. This is the one
    /// resolver every analysis asks "does this path exist, and what is it?".
    pub fn resolve(&self, path: &str) -> Option<String> {
        // Linux gives up after 40 links (ELOOP); so do we.
        let mut budget = 40;
        let mut pending: Vec<&str> = components(path).rev().collect();
        let mut resolved: Vec<&str> = Vec::new();
        while let Some(part) = pending.pop() {
            match part {
                "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(part);
            let Some(node) = self.merged.get(&resolved.join("/")) else {
                continue;
            };
            let Some(target) = node.link_target.as_deref() else {
                continue;
            };
            match node.kind {
                EntryKind::Symlink => {
                    resolved.pop();
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                }
                // Hard link targets are paths from the root of the layer.
                EntryKind::Hardlink => resolved.clear(),
                _ => continue,
            }
            budget -= 1;
            if budget == 0 {
                return None;
            }
            pending.extend(components(target).rev());
        }
        Some(resolved.join("/"))
    }

    /// The node `path` leads to (see [`FsAnalysis::resolve`]) and its resolved path,
    /// when there is one.
    pub fn lookup(&self, path: &str) -> Option<(String, &Node)> {
        let resolved = self.resolve(path)?;
        let node = self.merged.get(&resolved)?;
        Some((resolved, node))
    }

    pub fn package_cache_bytes(&self) -> u64 {
        self.visible_files()
            .filter(|(path, _)| category::is_package_cache(path))
            .map(|(_, n)| n.size)
            .sum()
    }
}

/// Stacks the layers (in manifest order) the way overlayfs and the OCI spec do.
pub fn analyse(layers: &[&LayerScan]) -> FsAnalysis {
    let mut analysis = FsAnalysis::default();
    let mut dive = DiveAccumulator::default();
    for (index, layer) in layers.iter().enumerate() {
        dive.add_layer(layer, &analysis.merged);
        // Whiteouts hide what lower layers hold, never what their own layer adds: apply
        // them first, then the layer's own entries.
        for entry in &layer.entries {
            match entry.kind {
                EntryKind::Whiteout => {
                    remove_tree(&mut analysis, &entry.path, true, index, WasteCause::Deleted)
                }
                EntryKind::OpaqueWhiteout => remove_tree(
                    &mut analysis,
                    &entry.path,
                    false,
                    index,
                    WasteCause::Deleted,
                ),
                _ => {}
            }
        }
        for entry in &layer.entries {
            if matches!(entry.kind, EntryKind::Whiteout | EntryKind::OpaqueWhiteout)
                || entry.path.is_empty()
            {
                continue;
            }
            if let Some(previous) = analysis.merged.get(&entry.path) {
                match previous.kind {
                    EntryKind::Dir if entry.kind == EntryKind::Dir => {}
                    EntryKind::Dir => remove_tree(
                        &mut analysis,
                        &entry.path,
                        false,
                        index,
                        WasteCause::Overwritten,
                    ),
                    EntryKind::File => {
                        let previous = previous.clone();
                        record(
                            &mut analysis,
                            &entry.path,
                            &previous,
                            index,
                            WasteCause::Overwritten,
                        );
                    }
                    _ => {}
                }
            }
            analysis.merged.insert(
                entry.path.clone(),
                Node {
                    kind: entry.kind,
                    size: entry.size,
                    layer: index,
                    elf: entry.elf,
                    link_target: entry.link_target.clone(),
                },
            );
        }
    }
    analysis.dive = dive.finish();
    analysis
        .wasted_files
        .sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    analysis
}

fn record(analysis: &mut FsAnalysis, path: &str, node: &Node, hidden_by: usize, cause: WasteCause) {
    if node.kind != EntryKind::File || node.size == 0 {
        return;
    }
    match cause {
        WasteCause::Deleted => analysis.deleted_bytes += node.size,
        WasteCause::Overwritten => analysis.overwritten_bytes += node.size,
    }
    analysis.wasted_files.push(WastedFile {
        path: path.to_string(),
        size: node.size,
        layer: node.layer,
        hidden_by_layer: hidden_by,
        cause,
    });
}

/// Removes everything below `path` (and `path` itself when `including_self`).
fn remove_tree(
    analysis: &mut FsAnalysis,
    path: &str,
    including_self: bool,
    hidden_by: usize,
    cause: WasteCause,
) {
    let mut doomed: Vec<String> = Vec::new();
    if including_self && analysis.merged.contains_key(path) {
        doomed.push(path.to_string());
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    doomed.extend(
        analysis
            .merged
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone()),
    );
    for doomed_path in doomed {
        if let Some(node) = analysis.merged.remove(&doomed_path) {
            record(analysis, &doomed_path, &node, hidden_by, cause);
        }
    }
}

/// dive's efficiency (`filetree/efficiency.go`), reproduced so users moving from dive
/// see the same figures: every leaf of every layer's tree counts once per layer, a
/// whiteout of a directory counts the bytes it hides and a whiteout of a file counts
/// zero (as dive does). Opaque-directory markers count zero.
#[derive(Default)]
struct DiveAccumulator {
    paths: HashMap<String, (u64, u64, u32)>,
}

impl DiveAccumulator {
    fn add_layer(&mut self, layer: &LayerScan, below: &BTreeMap<String, Node>) {
        // dive builds one tree per layer, so a path written twice in a layer is one
        // node: its last entry.
        let mut last: HashMap<&str, &crate::layer::Entry> = HashMap::new();
        for entry in &layer.entries {
            if !entry.path.is_empty() {
                last.insert(entry.path.as_str(), entry);
            }
        }
        // Only leaves count: a path with another of this layer's paths below it is a
        // directory node. Ordered with `/` before every other byte, a path's
        // descendants come right after it, so one look at the next path tells,
        // without listing any path's ancestors (which is quadratic in its depth).
        let mut paths: Vec<&str> = last.keys().copied().collect();
        paths.sort_unstable_by(|a, b| slash_first(a).cmp(slash_first(b)));
        let inner: HashSet<&str> = paths
            .windows(2)
            .filter(|pair| is_below(pair[1], pair[0]))
            .map(|pair| pair[0])
            .collect();
        for (path, entry) in last {
            if inner.contains(path) {
                continue;
            }
            let size = match entry.kind {
                EntryKind::Whiteout => match below.get(path) {
                    Some(node) if node.kind == EntryKind::Dir => {
                        let prefix = format!("{path}/");
                        below
                            .range(prefix.clone()..)
                            .take_while(|(p, _)| p.starts_with(&prefix))
                            .map(|(_, n)| n.size)
                            .sum()
                    }
                    _ => 0,
                },
                EntryKind::OpaqueWhiteout => continue,
                _ => entry.size,
            };
            let slot = self
                .paths
                .entry(path.to_string())
                .or_insert((0, u64::MAX, 0));
            slot.0 += size;
            slot.1 = slot.1.min(size);
            slot.2 += 1;
        }
    }

    fn finish(self) -> DiveFigures {
        let (mut minimum, mut cumulative, mut wasted) = (0u64, 0u64, 0u64);
        for (total, smallest, count) in self.paths.values() {
            minimum += smallest;
            cumulative += total;
            if *count >= 2 {
                wasted += total;
            }
        }
        DiveFigures {
            efficiency: if cumulative == 0 {
                1.0
            } else {
                minimum as f64 / cumulative as f64
            },
            wasted_bytes: wasted,
        }
    }
}

/// `/a/./b/../c/` → `a/c`: root-relative, `..` never climbing above the root (as the
/// kernel resolves `..` at `/`).
pub fn normalise_clamped(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Where a symbolic link at `link` pointing at `target` leads, root-relative: an
/// absolute target from the root, a relative one from the link's directory.
pub fn resolve_link(link: &str, target: &str) -> String {
    if target.starts_with('/') {
        return normalise_clamped(target);
    }
    match link.rsplit_once('/') {
        Some((dir, _)) => normalise_clamped(&format!("{dir}/{target}")),
        None => normalise_clamped(target),
    }
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|part| !part.is_empty())
}

/// A path's bytes with `/` ordered before every other byte.
fn slash_first(path: &str) -> impl Iterator<Item = u8> + '_ {
    path.bytes().map(|b| if b == b'/' { 0 } else { b })
}

fn is_below(path: &str, ancestor: &str) -> bool {
    path.len() > ancestor.len()
        && path.starts_with(ancestor)
        && path.as_bytes()[ancestor.len()] == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::layer::{Compression, Entry};
    use crate::source::LayerDescriptor;

    fn file(path: &str, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            size,
            mode: 0o644,
            link_target: None,
            elf: None,
        }
    }

    fn special(path: &str, kind: EntryKind) -> Entry {
        Entry {
            kind,
            size: 0,
            ..file(path, 0)
        }
    }

    fn layer(entries: Vec<Entry>) -> LayerScan {
        LayerScan {
            descriptor: LayerDescriptor {
                digest: Digest::of_bytes(b"x"),
                media_type: String::new(),
                size: 0,
            },
            compression: Compression::None,
            compressed_bytes: 0,
            uncompressed_bytes: 0,
            diff_id: Digest::of_bytes(b"x"),
            entries,
            binaries: vec![],
            zstd: None,
            gzip_level: None,
        }
    }

    #[test]
    fn whiteouts_and_overwrites() {
        let base = layer(vec![
            special("etc", EntryKind::Dir),
            file("etc/a", 100),
            file("etc/b", 50),
            special("var", EntryKind::Dir),
            file("var/cache/x", 30),
            file("var/cache/y", 20),
        ]);
        let second = layer(vec![
            special("etc/a", EntryKind::Whiteout),
            file("etc/b", 60),
            special("var/cache", EntryKind::OpaqueWhiteout),
            file("var/cache/z", 5),
        ]);
        let result = analyse(&[&base, &second]);
        assert_eq!(
            result.deleted_bytes, 150,
            "etc/a plus the opaque directory's x and y"
        );
        assert_eq!(result.overwritten_bytes, 50);
        assert_eq!(result.wasted_bytes(), 200);
        assert!(!result.merged.contains_key("etc/a"));
        assert_eq!(result.merged.get("etc/b").map(|n| n.size), Some(60));
        assert_eq!(result.visible_bytes(), 65);
        // dive: etc/a (100 + 0), etc/b (50 + 60) appear twice; x, y, z once.
        // min sum = 0 + 50 + 30 + 20 + 5 = 105; cumulative = 100 + 110 + 55 = 265.
        assert_eq!(result.dive.wasted_bytes, 210);
        assert!((result.dive.efficiency - 105.0 / 265.0).abs() < 1e-12);
    }

    #[test]
    fn directory_whiteout_counts_children_for_dive() {
        let base = layer(vec![
            special("d", EntryKind::Dir),
            file("d/1", 10),
            file("d/2", 20),
        ]);
        let second = layer(vec![special("d", EntryKind::Whiteout)]);
        let result = analyse(&[&base, &second]);
        assert_eq!(result.deleted_bytes, 30);
        // d/1, d/2 once each (10, 20); d is a leaf only in the second layer, where
        // its whiteout counts the 30 bytes it hides: each path seen once, so dive
        // scores it fully efficient even though 30 bytes are dead.
        assert_eq!(result.dive.wasted_bytes, 0);
        assert_eq!(result.dive.efficiency, 1.0);
    }

    #[test]
    fn a_path_written_twice_in_one_layer_is_one_dive_node() {
        // dive's tree keeps the last entry: 10 B, seen once: fully efficient.
        let result = analyse(&[&layer(vec![file("a", 1000), file("a", 10)])]);
        assert_eq!(result.dive.efficiency, 1.0);
        assert_eq!(result.dive.wasted_bytes, 0);
        // The first copy is still stored in the layer and hidden: ballast's waste.
        assert_eq!(result.overwritten_bytes, 1000);
        let link = Entry {
            kind: EntryKind::Hardlink,
            link_target: Some("h".into()),
            ..file("h", 0)
        };
        let result = analyse(&[&layer(vec![file("h", 100), link])]);
        assert_eq!(result.dive.efficiency, 1.0);
    }

    #[test]
    fn leaves_are_found_without_listing_ancestors() {
        let deep = "d/".repeat(200_000) + "file";
        let result = analyse(&[&layer(vec![
            special("d", EntryKind::Dir),
            file(&deep, 7),
            file("d-sibling", 3),
        ])]);
        // d has a descendant: a directory node; the deep file and the sibling count.
        assert_eq!(result.dive.efficiency, 1.0);
        assert_eq!(result.visible_bytes(), 10);
    }

    fn node(kind: EntryKind, target: Option<&str>) -> Node {
        Node {
            kind,
            size: 10,
            layer: 0,
            elf: None,
            link_target: target.map(str::to_string),
        }
    }

    #[test]
    fn resolves_symlinked_directories_files_and_hard_links() {
        let mut fs = FsAnalysis::default();
        let mut add = |path: &str, node| {
            fs.merged.insert(path.to_string(), node);
        };
        add("bin", node(EntryKind::Symlink, Some("usr/bin")));
        add("usr", node(EntryKind::Dir, None));
        add("usr/bin", node(EntryKind::Dir, None));
        add(
            "usr/bin/app",
            node(EntryKind::Symlink, Some("../../opt/app/server")),
        );
        add("opt/app/server", node(EntryKind::File, None));
        add("opt/abs", node(EntryKind::Symlink, Some("/opt/app/server")));
        add(
            "opt/hard",
            node(EntryKind::Hardlink, Some("opt/app/server")),
        );
        add("loop", node(EntryKind::Symlink, Some("loop")));
        add("dangling", node(EntryKind::Symlink, Some("nowhere")));
        assert_eq!(fs.resolve("/bin/app").as_deref(), Some("opt/app/server"));
        assert_eq!(fs.resolve("opt/abs").as_deref(), Some("opt/app/server"));
        assert_eq!(fs.resolve("/opt/hard").as_deref(), Some("opt/app/server"));
        assert_eq!(fs.resolve("/loop"), None);
        assert_eq!(fs.resolve("/dangling").as_deref(), Some("nowhere"));
        assert!(fs.lookup("/dangling").is_none());
        assert_eq!(
            fs.lookup("/bin/../bin/app").map(|(path, n)| (path, n.kind)),
            Some(("opt/app/server".to_string(), EntryKind::File))
        );
    }

    #[test]
    fn empty_image_is_fully_efficient() {
        let result = analyse(&[]);
        assert_eq!(result.dive.efficiency, 1.0);
        assert_eq!(result.wasted_bytes(), 0);
    }
}
