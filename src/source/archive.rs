//! `docker save` tarballs: both the classic layout (`<id>/layer.tar`, `<hex>.json`) and
//! the OCI-style one Docker 25+ writes (`blobs/sha256/<hex>`), read in place: the
//! archive is indexed once and layers are read at their offsets, never extracted.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde::Deserialize;

use super::manifest::{self, OCI_MANIFEST};
use super::{verify_digest, BlobReader, ResolvedImage, SourceError, MAX_METADATA_BYTES};
use crate::digest::Digest;
use crate::source::{LayerDescriptor, Platform};

pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// How many entries a docker-archive may hold before we call it hostile.
const MAX_ARCHIVE_ENTRIES: usize = 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Span {
    offset: u64,
    size: u64,
}

pub struct ArchiveSource {
    file: PathBuf,
    reference: Option<String>,
    spans: HashMap<String, Span>,
    /// Layer digest → where its bytes are, filled in by `resolve`.
    layers: std::sync::Mutex<HashMap<Digest, Span>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl ArchiveSource {
    pub fn open(file: PathBuf, reference: Option<String>) -> Result<Self, SourceError> {
        let io_error = |source| SourceError::Io {
            path: file.clone(),
            source,
        };
        let mut handle = std::fs::File::open(&file).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SourceError::NotFound {
                    what: format!("docker-archive {}", file.display()),
                    hint: String::new(),
                }
            } else {
                io_error(source)
            }
        })?;
        let mut magic = [0u8; 4];
        let read = handle.read(&mut magic).map_err(io_error)?;
        if read >= 2 && magic[..2] == [0x1f, 0x8b] {
            return Err(SourceError::malformed(
                format!("docker-archive {}", file.display()),
                "the archive is gzip-compressed; decompress it first (gunzip), as docker load would",
            ));
        }
        handle.seek(SeekFrom::Start(0)).map_err(io_error)?;
        let what = format!("docker-archive {}", file.display());
        let mut archive = tar::Archive::new(handle);
        let mut spans = HashMap::new();
        let mut links: Vec<(String, String)> = Vec::new();
        let entries = archive
            .entries_with_seek()
            .map_err(|e| SourceError::malformed(&what, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| SourceError::malformed(&what, e))?;
            if spans.len() + links.len() > MAX_ARCHIVE_ENTRIES {
                return Err(SourceError::malformed(&what, "more than a million entries"));
            }
            let path = entry
                .path()
                .map_err(|e| SourceError::malformed(&what, e))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    spans.insert(
                        path,
                        Span {
                            offset: entry.raw_file_position(),
                            size: entry.size(),
                        },
                    );
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Ok(Some(target)) = entry.link_name() {
                        let target = target.to_string_lossy().to_string();
                        let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                            resolve_relative(&path, &target)
                        } else {
                            target.trim_start_matches("./").to_string()
                        };
                        links.push((path, resolved));
                    }
                }
                _ => {}
            }
        }
        // Older `docker save` links identical layers to one copy.
        for (path, target) in links {
            if let Some(span) = spans.get(&target).copied() {
                spans.insert(path, span);
            }
        }
        Ok(Self {
            file,
            reference,
            spans,
            layers: Default::default(),
        })
    }

    fn what(&self) -> String {
        format!("docker-archive {}", self.file.display())
    }

    fn read_member(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let span = self
            .spans
            .get(name)
            .copied()
            .ok_or_else(|| SourceError::NotFound {
                what: format!("{name} in {}", self.what()),
                hint: String::new(),
            })?;
        if span.size > MAX_METADATA_BYTES {
            return Err(SourceError::TooLarge {
                what: format!("{name} in {}", self.what()),
                size: span.size,
                limit: MAX_METADATA_BYTES,
            });
        }
        let mut reader = self.open_span(span)?;
        let mut bytes = Vec::with_capacity(span.size as usize);
        reader
            .read_to_end(&mut bytes)
            .map_err(|source| SourceError::Io {
                path: self.file.clone(),
                source,
            })?;
        Ok(bytes)
    }

    fn open_span(&self, span: Span) -> Result<BlobReader, SourceError> {
        let io_error = |source| SourceError::Io {
            path: self.file.clone(),
            source,
        };
        let mut file = std::fs::File::open(&self.file).map_err(io_error)?;
        file.seek(SeekFrom::Start(span.offset)).map_err(io_error)?;
        Ok(Box::new(file.take(span.size)))
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
        let chosen = self.choose(&manifests)?;
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
            let span = self
                .spans
                .get(path.trim_start_matches("./"))
                .copied()
                .ok_or_else(|| SourceError::NotFound {
                    what: format!("layer {path} in {what}"),
                    hint: String::new(),
                })?;
            // Classic archives name layers by id, not content: an uncompressed layer's
            // digest is then its diff_id, which the pipeline verifies all the same.
            let digest = content_address(path).unwrap_or_else(|| diff_id.clone());
            let media_type = self.sniff_media_type(span)?;
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
            config,
            layers,
        })
    }

    fn choose<'a>(
        &self,
        manifests: &'a [ArchiveManifest],
    ) -> Result<&'a ArchiveManifest, SourceError> {
        let what = self.what();
        let tags = || {
            manifests
                .iter()
                .flat_map(|m| m.repo_tags.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.reference {
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

    fn sniff_media_type(&self, span: Span) -> Result<&'static str, SourceError> {
        let mut reader = self.open_span(span)?;
        let mut magic = [0u8; 4];
        let mut filled = 0;
        while filled < magic.len() {
            let n = reader
                .read(&mut magic[filled..])
                .map_err(|source| SourceError::Io {
                    path: self.file.clone(),
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

/// `blobs/sha256/<hex>` and classic `<hex>.json` names carry their digest.
fn content_address(path: &str) -> Option<Digest> {
    let path = path.trim_start_matches("./");
    let hex = path
        .strip_prefix("blobs/sha256/")
        .or_else(|| path.strip_suffix(".json"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

fn resolve_relative(path: &str, target: &str) -> String {
    if let Some(absolute) = target.strip_prefix('/') {
        return absolute.to_string();
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    for part in target.split('/') {
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

fn normalise_tag(tag: &str) -> String {
    tag.parse::<oci_client::Reference>()
        .map(|r| r.whole())
        .unwrap_or_else(|_| tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links() {
        assert_eq!(
            resolve_relative("abc/layer.tar", "../def/layer.tar"),
            "def/layer.tar"
        );
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
