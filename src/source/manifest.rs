//! Manifests, indexes and configs, OCI and Docker v2 schema 2 alike (they share a shape),
//! parsed with `oci-spec` and checked for what ballast relies on.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;

use super::SourceError;
use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest type ballast reads, for the registry's `Accept` header.
pub const ACCEPTED_MANIFEST_TYPES: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7")]
pub struct PlatformParseError(String);

impl FromStr for Platform {
    type Err = PlatformParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid_part) {
            return Err(PlatformParseError(text.to_string()));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

impl Platform {
    /// Whether an index entry's platform satisfies what the user asked for. A request
    /// without a variant takes any variant (as docker does); `arm64` means `arm64/v8`.
    pub fn satisfied_by(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        let normalise = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", None) => Some("v8".to_string()),
            (_, variant) => variant.map(str::to_string),
        };
        match &self.variant {
            None => true,
            Some(_) => normalise(self) == normalise(candidate),
        }
    }
}

/// A layer as a manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDescriptor {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct ManifestDoc {
    pub config_digest: Digest,
    pub config_size: u64,
    pub layers: Vec<LayerDescriptor>,
}

#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub platform: Option<Platform>,
    pub ref_name: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ManifestOrIndex {
    Manifest(ManifestDoc),
    Index(Vec<IndexEntry>),
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
}

/// Parses manifest or index bytes; `media_type_hint` is what the registry's
/// Content-Type or the referring descriptor said, used when the document omits it.
pub fn parse_manifest_or_index(
    bytes: &[u8],
    media_type_hint: Option<&str>,
    what: &str,
) -> Result<(ManifestOrIndex, String), SourceError> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| SourceError::malformed(what, e))?;
    let media_type = probe
        .media_type
        .clone()
        .or_else(|| media_type_hint.map(str::to_string))
        .unwrap_or_default();
    if probe.schema_version == Some(1)
        || media_type == DOCKER_SCHEMA1
        || media_type == DOCKER_SCHEMA1_SIGNED
    {
        return Err(SourceError::UnsupportedMediaType {
            what: what.to_string(),
            media_type:
                "Docker schema 1 manifest (deprecated; re-push the image with a current client)"
                    .to_string(),
        });
    }
    let is_index = media_type == OCI_INDEX
        || media_type == DOCKER_MANIFEST_LIST
        || (probe.manifests.is_some() && probe.layers.is_none());
    if is_index {
        let index: ImageIndex =
            serde_json::from_slice(bytes).map_err(|e| SourceError::malformed(what, e))?;
        let mut entries = Vec::with_capacity(index.manifests().len());
        for descriptor in index.manifests() {
            entries.push(IndexEntry {
                digest: Digest::parse(descriptor.digest().as_ref())?,
                media_type: descriptor.media_type().to_string(),
                size: descriptor.size(),
                platform: descriptor.platform().as_ref().map(|p| Platform {
                    os: p.os().to_string(),
                    architecture: p.architecture().to_string(),
                    variant: p.variant().clone().filter(|v| !v.is_empty()),
                }),
                ref_name: descriptor
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get("org.opencontainers.image.ref.name").cloned()),
            });
        }
        let media_type = if media_type.is_empty() {
            OCI_INDEX.to_string()
        } else {
            media_type
        };
        return Ok((ManifestOrIndex::Index(entries), media_type));
    }
    if !media_type.is_empty() && media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(SourceError::UnsupportedMediaType {
            what: what.to_string(),
            media_type,
        });
    }
    let manifest: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| SourceError::malformed(what, e))?;
    let config = manifest.config();
    let mut layers = Vec::with_capacity(manifest.layers().len());
    for layer in manifest.layers() {
        layers.push(LayerDescriptor {
            digest: Digest::parse(layer.digest().as_ref())?,
            media_type: layer.media_type().to_string(),
            size: layer.size(),
        });
    }
    let media_type = if media_type.is_empty() {
        OCI_MANIFEST.to_string()
    } else {
        media_type
    };
    Ok((
        ManifestOrIndex::Manifest(ManifestDoc {
            config_digest: Digest::parse(config.digest().as_ref())?,
            config_size: config.size(),
            layers,
        }),
        media_type,
    ))
}

/// Picks the index entry for `wanted`. Attestation manifests (`unknown/unknown`) never
/// count; an index with a single real entry and no explicit `--platform` gives that one.
pub fn select_platform<'a>(
    entries: &'a [IndexEntry],
    wanted: &Platform,
    explicit: bool,
    reference: &str,
) -> Result<&'a IndexEntry, SourceError> {
    let images: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| {
            e.platform
                .as_ref()
                .is_none_or(|p| p.os != "unknown" && p.architecture != "unknown")
        })
        .collect();
    if let Some(found) = images
        .iter()
        .find(|e| e.platform.as_ref().is_some_and(|p| wanted.satisfied_by(p)))
    {
        return Ok(found);
    }
    if !explicit && images.len() == 1 {
        return Ok(images[0]);
    }
    let available: Vec<String> = images
        .iter()
        .map(|e| {
            e.platform
                .as_ref()
                .map_or_else(|| "(no platform)".to_string(), Platform::to_string)
        })
        .collect();
    Err(no_matching_platform(reference, wanted, available))
}

/// Lists at most this many platforms in an error: an index may hold thousands.
const MAX_PLATFORMS_LISTED: usize = 12;

pub fn no_matching_platform(
    reference: &str,
    wanted: &Platform,
    mut available: Vec<String>,
) -> SourceError {
    available.sort();
    available.dedup();
    let total = available.len();
    let mut listed: Vec<String> = available
        .iter()
        .take(MAX_PLATFORMS_LISTED)
        .map(|p| crate::text::escape_control(p).into_owned())
        .collect();
    if total > MAX_PLATFORMS_LISTED {
        listed.push(format!("and {} more", total - MAX_PLATFORMS_LISTED));
    }
    SourceError::NoMatchingPlatform {
        reference: reference.to_string(),
        wanted: wanted.to_string(),
        available: if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join(", ")
        },
    }
}

/// The parts of an image config that ballast reads.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    pub platform: Platform,
    pub diff_ids: Vec<Digest>,
    pub history: Vec<HistoryEntry>,
    pub user: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub created_by: Option<String>,
    pub empty_layer: bool,
}

pub fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfig, SourceError> {
    let config: ImageConfiguration =
        serde_json::from_slice(bytes).map_err(|e| SourceError::malformed(what, e))?;
    let mut diff_ids = Vec::with_capacity(config.rootfs().diff_ids().len());
    for id in config.rootfs().diff_ids() {
        diff_ids.push(Digest::parse(id)?);
    }
    let history = config
        .history()
        .as_ref()
        .map(|entries| {
            entries
                .iter()
                .map(|h| HistoryEntry {
                    created_by: h.created_by().clone(),
                    empty_layer: h.empty_layer().unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default();
    let exec = config.config().as_ref();
    Ok(ImageConfig {
        platform: Platform {
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            variant: config.variant().clone().filter(|v| !v.is_empty()),
        },
        diff_ids,
        history,
        user: exec
            .and_then(|c| c.user().clone())
            .filter(|u| !u.is_empty()),
        entrypoint: exec
            .and_then(|c| c.entrypoint().clone())
            .unwrap_or_default(),
        cmd: exec.and_then(|c| c.cmd().clone()).unwrap_or_default(),
    })
}

impl ImageConfig {
    /// `created_by` for each layer: history entries marked `empty_layer` (ENV, CMD, …)
    /// produce no layer, so they are skipped when pairing history with layers.
    pub fn created_by_per_layer(&self, layer_count: usize) -> Vec<Option<String>> {
        let mut per_layer: Vec<Option<String>> = self
            .history
            .iter()
            .filter(|h| !h.empty_layer)
            .map(|h| h.created_by.clone())
            .take(layer_count)
            .collect();
        per_layer.resize(layer_count, None);
        per_layer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parsing_and_matching() {
        let arm: Platform = "linux/arm64".parse().expect("valid");
        let arm_v8 = Platform {
            variant: Some("v8".into()),
            ..arm.clone()
        };
        assert!(arm.satisfied_by(&arm_v8));
        let wanted_v8: Platform = "linux/arm64/v8".parse().expect("valid");
        assert!(wanted_v8.satisfied_by(&arm));
        let v7: Platform = "linux/arm/v7".parse().expect("valid");
        let v6: Platform = "linux/arm/v6".parse().expect("valid");
        assert!(!v7.satisfied_by(&v6));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/amd64/v2/x".parse::<Platform>().is_err());
    }

    #[test]
    fn history_skips_empty_layers() {
        let config = ImageConfig {
            platform: Platform::default(),
            diff_ids: vec![],
            history: vec![
                HistoryEntry {
                    created_by: Some("ADD base".into()),
                    empty_layer: false,
                },
                HistoryEntry {
                    created_by: Some("ENV A=1".into()),
                    empty_layer: true,
                },
                HistoryEntry {
                    created_by: Some("COPY app".into()),
                    empty_layer: false,
                },
            ],
            user: None,
            entrypoint: vec![],
            cmd: vec![],
        };
        assert_eq!(
            config.created_by_per_layer(3),
            vec![Some("ADD base".into()), Some("COPY app".into()), None]
        );
    }

    #[test]
    fn schema1_is_refused() {
        let result =
            parse_manifest_or_index(br#"{"schemaVersion":1,"name":"x"}"#, None, "manifest");
        assert!(matches!(
            result,
            Err(SourceError::UnsupportedMediaType { .. })
        ));
    }
}
