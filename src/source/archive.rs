//! `docker save` tarballs: both the classic layout (`<id>/layer.tar`, `<hex>.json`) and
//! the OCI-style one Docker 25+ writes (`blobs/sha256/<hex>`), read in place: the
//! archive is indexed once and layers are read at their offsets, never extracted.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;

use super::manifest::{self, OCI_MANIFEST};
use super::tar_index::{Span, TarIndex};
use super::{verify_digest, BlobReader, ResolvedImage, SourceError};
use crate::digest::Digest;
use crate::source::{LayerDescriptor, Platform};

pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

pub struct ArchiveSource {
    index: TarIndex,
    reference: Option<String>,
    /// Layer digest → where its bytes are, filled in by `resolve`.
    layers: std::sync::Mutex<HashMap<Digest, Span>>,
}

/// One entry of a `docker save` manifest.json.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ArchiveManifest {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

impl ArchiveSource {
    pub fn open(file: PathBuf, reference: Option<String>) -> Result<Self, SourceError> {
        let index = TarIndex::open(file, "docker-archive")?;
        Ok(Self {
            index,
            reference,
            layers: Default::default(),
        })
    }

    fn what(&self) -> String {
        self.index.what()
    }

    fn read_member(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        self.index.read_member(name)
    }

    fn open_span(&self, span: Span) -> Result<BlobReader, SourceError> {
        self.index.open_span(span)
    }

    pub fn resolve(
        &self,
        _platform: &Platform,
        _explicit: bool,
    ) -> Result<ResolvedImage, SourceError> {
        let what = self.what();
        let manifest_bytes = self.read_member("manifest.json")?;
        let manifests: Vec<ArchiveManifest> = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| SourceError::malformed(format!("manifest.json in {what}"), e))?;
        let chosen = choose_manifest(&manifests, self.reference.as_deref(), &what)?;
        let config_bytes = self.read_member(&chosen.config)?;
        let config_digest = match content_address(&chosen.config) {
            Some(expected) => {
                verify_digest(
                    &format!("config {} in {what}", chosen.config),
                    &config_bytes,
                    &expected,
                )?;
                expected
            }
            None => Digest::of_bytes(&config_bytes),
        };
        let config = manifest::parse_config(
            &config_bytes,
            &format!("config {} in {what}", chosen.config),
        )?;
        if config.diff_ids.len() != chosen.layers.len() {
            return Err(SourceError::malformed(
                format!("manifest.json in {what}"),
                format!(
                    "{} layers listed but the config has {} diff_ids",
                    chosen.layers.len(),
                    config.diff_ids.len()
                ),
            ));
        }
        let mut layers = Vec::with_capacity(chosen.layers.len());
        let mut located = HashMap::new();
        for (path, diff_id) in chosen.layers.iter().zip(&config.diff_ids) {
            let span = self.index.span(path).ok_or_else(|| SourceError::NotFound {
                what: format!("layer {path} in {what}"),
                hint: String::new(),
            })?;
            // Classic archives name layers by id, not content: an uncompressed layer's
            // digest is then its diff_id, which the pipeline verifies all the same. A
            // compressed `layer.tar` (docker load accepts gzip there) has a digest of
            // its own, which only its bytes can tell.
            let media_type = self.sniff_media_type(span)?;
            let digest = match content_address(path) {
                Some(digest) => digest,
                None if media_type == DOCKER_LAYER_TAR => diff_id.clone(),
                None => self.hash_span(span)?,
            };
            located.insert(digest.clone(), span);
            layers.push(LayerDescriptor {
                digest,
                media_type: media_type.to_string(),
                size: span.size,
            });
        }
        if let Ok(mut map) = self.layers.lock() {
            map.extend(located);
        }
        let reference = match &self.reference {
            Some(r) => format!("{what}:{r}"),
            None => what.clone(),
        };
        // An archive has no manifest of the registry kind; its digest is that of
        // the manifest.json entry, which identifies this export.
        Ok(ResolvedImage {
            reference,
            manifest_digest: Digest::of_bytes(&manifest_bytes),
            manifest_media_type: OCI_MANIFEST.to_string(),
            platform: config.platform.clone(),
            config_digest,
            config_size: config_bytes.len() as u64,
            config,
            layers,
        })
    }

    fn hash_span(&self, span: Span) -> Result<Digest, SourceError> {
        let reader = crate::digest::HashingReader::new(self.open_span(span)?);
        let (digest, _) = reader.finish().map_err(|source| SourceError::Io {
            path: self.index.file().to_path_buf(),
            source,
        })?;
        Ok(digest)
    }

    fn sniff_media_type(&self, span: Span) -> Result<&'static str, SourceError> {
        let mut reader = self.open_span(span)?;
        let mut magic = [0u8; 4];
        let mut filled = 0;
        while filled < magic.len() {
            let n = reader
                .read(&mut magic[filled..])
                .map_err(|source| SourceError::Io {
                    path: self.index.file().to_path_buf(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(match magic {
            [0x1f, 0x8b, ..] => DOCKER_LAYER_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => OCI_LAYER_ZSTD,
            _ => DOCKER_LAYER_TAR,
        })
    }

    pub fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobReader, SourceError> {
        let span = self
            .layers
            .lock()
            .ok()
            .and_then(|map| map.get(&layer.digest).copied())
            .ok_or_else(|| SourceError::NotFound {
                what: format!("layer {} in {}", layer.digest, self.what()),
                hint: String::new(),
            })?;
        self.open_span(span)
    }
}

/// The image of a manifest.json that `reference` names (a tag, or `@N` for the N-th),
/// or its only one.
pub(super) fn choose_manifest<'a>(
    manifests: &'a [ArchiveManifest],
    reference: Option<&str>,
    what: &str,
) -> Result<&'a ArchiveManifest, SourceError> {
    let what = what.to_string();
    let tags = || {
        manifests
            .iter()
            .flat_map(|m| m.repo_tags.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match reference {
        None if manifests.len() == 1 => Ok(&manifests[0]),
        None if manifests.is_empty() => Err(SourceError::malformed(
            format!("manifest.json in {what}"),
            "lists no images",
        )),
        None => Err(SourceError::malformed(
            what,
            format!(
                "holds {} images; name one as docker-archive:FILE:REF (tags: {})",
                manifests.len(),
                tags()
            ),
        )),
        Some(wanted) => {
            if let Some(index) = wanted.strip_prefix('@') {
                let index: usize = index.parse().map_err(|_| {
                    SourceError::malformed(&what, format!("bad image index {wanted:?}"))
                })?;
                return manifests.get(index).ok_or_else(|| SourceError::NotFound {
                    what: format!("image {wanted} in {what}"),
                    hint: format!(" (it holds {})", manifests.len()),
                });
            }
            let normalised = normalise_tag(wanted);
            manifests
                .iter()
                .find(|m| {
                    m.repo_tags
                        .iter()
                        .flatten()
                        .any(|t| t == wanted || normalise_tag(t) == normalised)
                })
                .ok_or_else(|| SourceError::NotFound {
                    what: format!("image {wanted} in {what}"),
                    hint: format!(" (tags: {})", tags()),
                })
        }
    }
}

/// `blobs/sha256/<hex>` and classic `<hex>.json` names carry their digest.
pub(super) fn content_address(path: &str) -> Option<Digest> {
    let path = path.trim_start_matches("./");
    let hex = path
        .strip_prefix("blobs/sha256/")
        .or_else(|| path.strip_suffix(".json"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

fn normalise_tag(tag: &str) -> String {
    tag.parse::<oci_client::Reference>()
        .map(|r| r.whole())
        .unwrap_or_else(|_| tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_addresses() {
        assert_eq!(
            content_address(
                "blobs/sha256/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            )
            .map(|d| d.short().to_string()),
            Some("e3b0c44298fc".to_string())
        );
        assert_eq!(content_address("abc/layer.tar"), None);
    }
}
