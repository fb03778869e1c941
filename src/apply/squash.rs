//! `apply --squash`: the image's last layers written as one. Which layers: `all`,
//! `yours` (those after the base image, found from the history), or `N` (from layer
//! N on). The squashed layer holds what a container sees of those layers: every
//! entry a later layer of the range hides is left out, and so is every whiteout with
//! nothing below the range to hide.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::ApplyError;
use crate::image::ImageAnalysis;
use crate::layer::EntryKind;

/// Which layers `--squash` folds into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SquashScope {
    /// The layers after the base image's.
    Yours,
    /// Every layer.
    All,
    /// Layer N (0-based, as inspect numbers them) and every one after it.
    From(usize),
}

impl SquashScope {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "yours" => Ok(SquashScope::Yours),
            "all" => Ok(SquashScope::All),
            n => n.parse().map(SquashScope::From).map_err(|_| {
                format!("{n:?}: `yours`, `all`, or the first layer to squash (a number)")
            }),
        }
    }
}

/// The range squashed, and in words which it is and how it was found.
pub(crate) struct SquashRange {
    pub from: usize,
    pub why: String,
}

/// Where the base ends: after the base's last instruction (`CMD` or `ENTRYPOINT`,
/// which every base image ends with and a build rarely repeats before its own
/// layers) that comes before a layer. `None` when the history does not tell.
fn base_boundary(analysis: &ImageAnalysis) -> Option<(usize, String)> {
    let history = &analysis.image.config.history;
    let mut layers_before = 0usize;
    let mut found = None;
    // A CMD counts once a layer follows it: the image's own CMD comes last.
    let mut pending: Option<(usize, String)> = None;
    for entry in history {
        let created_by = entry.created_by.as_deref().unwrap_or("");
        if entry.empty_layer {
            let instruction = created_by
                .trim_start_matches("/bin/sh -c ")
                .trim_start_matches("#(nop) ")
                .trim_start();
            if (instruction.starts_with("CMD") || instruction.starts_with("ENTRYPOINT"))
                && layers_before > 0
            {
                pending = Some((layers_before, instruction.to_string()));
            }
        } else {
            if pending.is_some() {
                found = pending.take();
            }
            layers_before += 1;
        }
    }
    found.filter(|(from, _)| *from < analysis.layers.len())
}

pub(crate) fn range(
    analysis: &ImageAnalysis,
    scope: SquashScope,
) -> Result<SquashRange, ApplyError> {
    let layers = analysis.layers.len();
    let range = match scope {
        SquashScope::All => SquashRange {
            from: 0,
            why: format!("all {layers} layers, the base's too: the image shares no layer with its base any more"),
        },
        SquashScope::From(from) => SquashRange {
            from,
            why: format!("layers {from} to {} (--squash {from})", layers.saturating_sub(1)),
        },
        SquashScope::Yours => {
            let (from, instruction) = base_boundary(analysis).ok_or_else(|| {
                ApplyError::Refused(
                    "--squash yours: the history does not say where the base image ends (no CMD or ENTRYPOINT between layers); give --squash all or --squash N, the first layer to squash".into(),
                )
            })?;
            SquashRange {
                from,
                why: format!(
                    "yours: layers {from} to {}, after the base image's last instruction ({}); the base's {from} layers stay as they are",
                    layers.saturating_sub(1),
                    crate::text::escape_control(&instruction)
                ),
            }
        }
    };
    if range.from + 2 > layers {
        return Err(ApplyError::Refused(format!(
            "--squash: nothing to squash, layers {} to {} are fewer than two",
            range.from,
            layers.saturating_sub(1)
        )));
    }
    Ok(range)
}

/// What the squash leaves out.
pub(crate) struct SquashPlan {
    /// Per layer of the range, the tar paths to leave out.
    pub layers: BTreeMap<usize, HashSet<String>>,
    /// The regular files among them: path, size, layer.
    pub files: Vec<(String, u64, usize)>,
    /// Entries (whiteouts aside) left out, with their sizes: for the estimate.
    pub entries: Vec<(usize, String, u64)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Gone {
    Overwritten,
    Deleted,
}

pub(crate) fn plan(analysis: &ImageAnalysis, from: usize) -> Result<SquashPlan, ApplyError> {
    // What the layers below the range hold: a whiteout that hides any of it stays.
    let below: Vec<&crate::layer::LayerScan> =
        analysis.layers[..from].iter().map(|l| l.as_ref()).collect();
    let base = crate::fs::analyse(&below).merged;
    let base_has = |path: &str, including_self: bool| {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        (including_self && base.contains_key(path))
            || base
                .range(prefix.clone()..)
                .next()
                .is_some_and(|(p, _)| p.starts_with(&prefix))
    };
    // Path → the range's layers whose entry for it is live (several for a directory
    // declared again: the last one's metadata wins, as on extraction).
    let mut live: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut gone: HashMap<(usize, String), (Gone, u64)> = HashMap::new();
    let mut sizes: HashMap<(usize, String), (EntryKind, u64)> = HashMap::new();
    let mut idle_whiteouts: Vec<(usize, String)> = Vec::new();
    let mut links: Vec<(usize, String, String)> = Vec::new();
    let hide = |live: &mut BTreeMap<String, Vec<usize>>,
                gone: &mut HashMap<(usize, String), (Gone, u64)>,
                sizes: &HashMap<(usize, String), (EntryKind, u64)>,
                path: &str,
                including_self: bool,
                why: Gone| {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut doomed: Vec<String> = live
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect();
        if including_self && live.contains_key(path) {
            doomed.push(path.to_string());
        }
        for doomed_path in doomed {
            for layer in live.remove(&doomed_path).unwrap_or_default() {
                let size = sizes
                    .get(&(layer, doomed_path.clone()))
                    .map_or(0, |(_, s)| *s);
                gone.insert((layer, doomed_path.clone()), (why, size));
            }
        }
    };
    for (index, layer) in analysis.layers.iter().enumerate().skip(from) {
        for entry in &layer.entries {
            let (including_self, tar_path) = match entry.kind {
                EntryKind::Whiteout => (true, whiteout_name(&entry.path)),
                EntryKind::OpaqueWhiteout => (
                    false,
                    if entry.path.is_empty() {
                        ".wh..wh..opq".to_string()
                    } else {
                        format!("{}/.wh..wh..opq", entry.path)
                    },
                ),
                _ => continue,
            };
            hide(
                &mut live,
                &mut gone,
                &sizes,
                &entry.path,
                including_self,
                Gone::Deleted,
            );
            if !base_has(&entry.path, including_self) {
                idle_whiteouts.push((index, tar_path));
            }
        }
        for entry in &layer.entries {
            if matches!(entry.kind, EntryKind::Whiteout | EntryKind::OpaqueWhiteout)
                || entry.path.is_empty()
            {
                continue;
            }
            sizes.insert((index, entry.path.clone()), (entry.kind, entry.size));
            if entry.kind == EntryKind::Hardlink {
                if let Some(target) = &entry.link_target {
                    if let Ok(target) = crate::layer::normalise_path(target) {
                        links.push((index, entry.path.clone(), target));
                    }
                }
            }
            let previous_dir = live.get(&entry.path).map(|layers| {
                layers.iter().any(|l| {
                    sizes
                        .get(&(*l, entry.path.clone()))
                        .is_some_and(|(k, _)| *k == EntryKind::Dir)
                })
            });
            match previous_dir {
                Some(true) if entry.kind == EntryKind::Dir => {
                    if let Some(layers) = live.get_mut(&entry.path) {
                        if !layers.contains(&index) {
                            layers.push(index);
                        }
                    }
                    continue;
                }
                // A file over a directory hides the directory's tree.
                Some(true) => hide(
                    &mut live,
                    &mut gone,
                    &sizes,
                    &entry.path,
                    true,
                    Gone::Overwritten,
                ),
                Some(false) => {
                    // The same path twice in one layer: both entries stay, the later
                    // wins on extraction, as in the source.
                    let earlier: Vec<usize> = live
                        .get(&entry.path)
                        .map(|l| l.iter().copied().filter(|l| *l != index).collect())
                        .unwrap_or_default();
                    for layer in earlier {
                        let size = sizes
                            .get(&(layer, entry.path.clone()))
                            .map_or(0, |(_, s)| *s);
                        gone.insert((layer, entry.path.clone()), (Gone::Overwritten, size));
                    }
                }
                None => {}
            }
            live.insert(entry.path.clone(), vec![index]);
        }
    }
    // A hard link that stays needs its target in its own layer: a target a later
    // layer overwrites stays too (the later file replaces the name, the link keeps
    // the bytes, as on extraction); one a later layer deletes cannot be squashed.
    for (layer, path, target) in &links {
        if gone.contains_key(&(*layer, path.clone())) {
            continue;
        }
        match gone.get(&(*layer, target.clone())) {
            Some((Gone::Overwritten, _)) => {
                gone.remove(&(*layer, target.clone()));
            }
            Some((Gone::Deleted, _)) => {
                return Err(ApplyError::NotYet(format!(
                    "--squash: /{} is a hard link to /{}, which a later layer deletes",
                    crate::text::escape_control(path),
                    crate::text::escape_control(target)
                )))
            }
            None => {}
        }
    }
    let mut plan = SquashPlan {
        layers: BTreeMap::new(),
        files: Vec::new(),
        entries: Vec::new(),
    };
    for layer in from..analysis.layers.len() {
        plan.layers.insert(layer, HashSet::new());
    }
    let mut gone: Vec<_> = gone.into_iter().collect();
    gone.sort_by(|a, b| a.0.cmp(&b.0));
    for ((layer, path), (_, size)) in gone {
        if sizes
            .get(&(layer, path.clone()))
            .is_some_and(|(k, _)| *k == EntryKind::File)
        {
            plan.files.push((path.clone(), size, layer));
        }
        plan.entries.push((layer, path.clone(), size));
        plan.layers.entry(layer).or_default().insert(path);
    }
    for (layer, tar_path) in idle_whiteouts {
        plan.entries.push((layer, tar_path.clone(), 0));
        plan.layers.entry(layer).or_default().insert(tar_path);
    }
    Ok(plan)
}

pub(crate) fn whiteout_name(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.wh.{name}"),
        None => format!(".wh.{path}"),
    }
}
