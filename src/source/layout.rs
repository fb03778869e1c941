//! OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/…`).

use std::path::{Path, PathBuf};

use super::manifest::{self, IndexEntry, ManifestOrIndex};
use super::{read_metadata_file, verify_digest, BlobReader, ResolvedImage, SourceError};
use crate::digest::Digest;
use crate::source::{LayerDescriptor, Platform};

pub struct LayoutSource {
    dir: PathBuf,
    tag: Option<String>,
}

impl LayoutSource {
    pub fn open(dir: PathBuf, tag: Option<String>) -> Result<Self, SourceError> {
        if !dir.is_dir() {
            return Err(SourceError::NotFound {
                what: format!("OCI layout directory {}", dir.display()),
                hint: String::new(),
            });
        }
        Ok(Self { dir, tag })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(digest.hex())
    }

    fn read_blob(&self, digest: &Digest, what: &str) -> Result<Vec<u8>, SourceError> {
        let what = format!("{what} {digest}");
        let bytes = read_metadata_file(&self.blob_path(digest), &what)?;
        verify_digest(&what, &bytes, digest)?;
        Ok(bytes)
    }

    fn display(&self) -> String {
        let mut text = format!("oci:{}", self.dir.display());
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        text
    }

    pub fn resolve(
        &self,
        platform: &Platform,
        explicit_platform: bool,
    ) -> Result<ResolvedImage, SourceError> {
        let index_path = self.dir.join("index.json");
        let what = format!("{}", index_path.display());
        let bytes = read_metadata_file(&index_path, "index.json")?;
        let (parsed, _) =
            manifest::parse_manifest_or_index(&bytes, Some(manifest::OCI_INDEX), &what)?;
        let ManifestOrIndex::Index(entries) = parsed else {
            return Err(SourceError::malformed(
                what,
                "index.json is not an image index",
            ));
        };
        let candidates: Vec<IndexEntry> = match &self.tag {
            Some(tag) => entries
                .into_iter()
                .filter(|e| {
                    e.ref_name
                        .as_deref()
                        .is_some_and(|name| ref_name_matches(name, tag))
                })
                .collect(),
            None => entries,
        };
        if candidates.is_empty() {
            return Err(SourceError::NotFound {
                what: self.display(),
                hint: match &self.tag {
                    Some(tag) => format!(" (no index.json entry is named {tag:?})"),
                    None => " (index.json lists no manifests)".to_string(),
                },
            });
        }
        let reference = self.display();
        let chosen = if candidates.len() == 1 {
            candidates[0].clone()
        } else {
            manifest::select_platform(&candidates, platform, explicit_platform, &reference)?.clone()
        };
        self.resolve_entry(&chosen, platform, explicit_platform, &reference, 0)
    }

    fn resolve_entry(
        &self,
        entry: &IndexEntry,
        platform: &Platform,
        explicit_platform: bool,
        reference: &str,
        depth: u8,
    ) -> Result<ResolvedImage, SourceError> {
        let bytes = self.read_blob(&entry.digest, "manifest")?;
        let what = format!("manifest {}", entry.digest);
        let (parsed, media_type) =
            manifest::parse_manifest_or_index(&bytes, Some(&entry.media_type), &what)?;
        match parsed {
            ManifestOrIndex::Index(entries) => {
                if depth > 2 {
                    return Err(SourceError::malformed(
                        what,
                        "indexes nested more than 3 deep",
                    ));
                }
                let chosen =
                    manifest::select_platform(&entries, platform, explicit_platform, reference)?
                        .clone();
                self.resolve_entry(&chosen, platform, explicit_platform, reference, depth + 1)
            }
            ManifestOrIndex::Manifest(doc) => {
                let config_bytes = self.read_blob(&doc.config_digest, "config")?;
                let config = manifest::parse_config(
                    &config_bytes,
                    &format!("config {}", doc.config_digest),
                )?;
                Ok(ResolvedImage {
                    reference: reference.to_string(),
                    manifest_digest: entry.digest.clone(),
                    manifest_media_type: media_type,
                    platform: config.platform.clone(),
                    config_digest: doc.config_digest,
                    config,
                    layers: doc.layers,
                })
            }
        }
    }

    pub fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobReader, SourceError> {
        let path = self.blob_path(&layer.digest);
        open_file(&path, &format!("layer {}", layer.digest))
    }
}

/// `ref.name` is a tag (`v1`) by the layout spec, but tools also write whole references
/// (`docker.io/library/app:v1`); both are matched.
fn ref_name_matches(name: &str, wanted: &str) -> bool {
    name == wanted || name.rsplit_once(':').is_some_and(|(_, tag)| tag == wanted)
}

pub(super) fn open_file(path: &Path, what: &str) -> Result<BlobReader, SourceError> {
    match std::fs::File::open(path) {
        Ok(file) => Ok(Box::new(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SourceError::NotFound {
            what: format!("{what} ({})", path.display()),
            hint: String::new(),
        }),
        Err(source) => Err(SourceError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}
