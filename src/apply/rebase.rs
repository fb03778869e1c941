//! `apply --base REF`: the application binaries moved onto another base. The new
//! image is the base's layers, as they are (the same blobs, so it shares them with
//! every image on that base), then one layer with the binaries advise's base-image
//! suggestion keeps, each as its image has it (the directories above it too), taken
//! from the source's layers in one pass, as a squash takes them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::ApplyError;
use crate::digest::Digest;
use crate::image::{self, ImageAnalysis, InspectOptions};
use crate::layer::EntryKind;
use crate::reference::ImageRef;
use crate::source::Source;

/// The base read, with what the new image needs of it.
pub(crate) struct Rebase {
    pub source: Arc<Source>,
    pub analysis: ImageAnalysis,
    pub config: serde_json::Value,
    /// `org.opencontainers.image.base.name`: the reference as given.
    pub name: String,
    pub digest: Digest,
}

/// Reads the base for the image's own platform.
pub(crate) async fn open(
    base: &ImageRef,
    image: &ImageAnalysis,
    inspect: &InspectOptions,
) -> Result<Rebase, ApplyError> {
    let mut options = inspect.clone();
    options.platform = image.image.platform.clone();
    options.explicit_platform = true;
    options.extras = Default::default();
    let (source, analysis) =
        image::inspect_keeping_source(base, &options, Arc::new(image::NoProgress)).await?;
    let bytes = super::read_config(&source, &analysis).await?;
    let config: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        crate::source::SourceError::malformed(format!("config {}", analysis.image.config_digest), e)
    })?;
    let name = match base {
        ImageRef::Registry(reference) => reference.whole(),
        other => other.to_string(),
    };
    let digest = analysis.image.manifest_digest.clone();
    Ok(Rebase {
        source,
        analysis,
        config,
        name,
        digest,
    })
}

/// Per source layer, the tar paths the rebased layer leaves out: everything but the
/// binaries' visible copies and the last declaration of each directory above them.
pub(crate) fn plan(analysis: &ImageAnalysis, apps: &[String]) -> BTreeMap<usize, HashSet<String>> {
    let merged = &analysis.fs.merged;
    let mut keep: HashSet<(usize, &str)> = HashSet::new();
    for app in apps {
        let Some(node) = merged.get(app) else {
            continue;
        };
        keep.insert((node.layer, app.as_str()));
        let mut dir = app.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if let Some(node) = merged.get(parent).filter(|n| n.kind == EntryKind::Dir) {
                keep.insert((node.layer, parent));
            }
            dir = parent;
        }
    }
    let mut plan = BTreeMap::new();
    for (index, layer) in analysis.layers.iter().enumerate() {
        let mut drop = HashSet::new();
        for entry in &layer.entries {
            let tar_path = match entry.kind {
                EntryKind::Whiteout => super::squash::whiteout_name(&entry.path),
                EntryKind::OpaqueWhiteout if entry.path.is_empty() => ".wh..wh..opq".into(),
                EntryKind::OpaqueWhiteout => format!("{}/.wh..wh..opq", entry.path),
                _ if keep.contains(&(index, entry.path.as_str())) => continue,
                _ => entry.path.clone(),
            };
            drop.insert(tar_path);
        }
        plan.insert(index, drop);
    }
    plan
}

/// The new config's environment: the image's, with what the base sets and the image
/// does not (`SSL_CERT_FILE` on distroless static, say).
pub(crate) fn merged_env(image: &serde_json::Value, base: &serde_json::Value) -> Vec<String> {
    let list = |config: &serde_json::Value| -> Vec<String> {
        config
            .get("config")
            .and_then(|c| c.get("Env"))
            .and_then(|e| e.as_array())
            .map(|e| {
                e.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut env = list(image);
    let names: HashSet<String> = env
        .iter()
        .map(|v| v.split('=').next().unwrap_or("").to_string())
        .collect();
    for variable in list(base) {
        if !names.contains(variable.split('=').next().unwrap_or("")) {
            env.push(variable);
        }
    }
    env
}
