//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`): a directory
//! (`oci:`) or a tar of one (`oci-archive:`), read in place.

use std::path::{Path, PathBuf};

use super::manifest::{self, IndexEntry, ManifestOrIndex};
use super::tar_index::TarIndex;
use super::{read_metadata_file, verify_digest, BlobReader, ResolvedImage, SourceError};
use crate::digest::Digest;
use crate::source::{LayerDescriptor, Platform};

/// Where the layout's files are.
enum Store {
    Dir(PathBuf),
    Archive(TarIndex),
    /// The small files of a layout that was streamed (index.json, manifests, configs);
    /// its layers were scanned as they went by.
    Streamed {
        files: std::collections::HashMap<String, Vec<u8>>,
        display: String,
    },
}

pub struct LayoutSource {
    store: Store,
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
        Ok(Self {
            store: Store::Dir(dir),
            tag,
        })
    }

    /// An oci-archive: the tar is indexed once and blobs are read at their offsets.
    pub fn open_archive(file: PathBuf, tag: Option<String>) -> Result<Self, SourceError> {
        Ok(Self {
            store: Store::Archive(TarIndex::open(file, "oci-archive")?),
            tag,
        })
    }

    /// A layout read from a stream: `files` holds its small files by path.
    pub fn streamed(
        files: std::collections::HashMap<String, Vec<u8>>,
        display: String,
        tag: Option<String>,
    ) -> Self {
        Self {
            store: Store::Streamed { files, display },
            tag,
        }
    }

    pub fn blob_name(digest: &Digest) -> String {
        format!("blobs/sha256/{}", digest.hex())
    }

    /// A small file of the layout (index.json, a manifest, a config), size-checked.
    fn read_small(&self, name: &str, what: &str) -> Result<Vec<u8>, SourceError> {
        match &self.store {
            Store::Dir(dir) => read_metadata_file(&dir.join(name), what),
            Store::Archive(index) => index.read_member(name),
            Store::Streamed { files, display } => {
                files
                    .get(name)
                    .cloned()
                    .ok_or_else(|| SourceError::NotFound {
                        what: format!("{what} ({name} in {display})"),
                        hint: String::new(),
                    })
            }
        }
    }

    fn read_blob(&self, digest: &Digest, what: &str) -> Result<Vec<u8>, SourceError> {
        let what = format!("{what} {digest}");
        let bytes = self.read_small(&Self::blob_name(digest), &what)?;
        verify_digest(&what, &bytes, digest)?;
        Ok(bytes)
    }

    fn display(&self) -> String {
        let mut text = match &self.store {
            Store::Dir(dir) => format!("oci:{}", dir.display()),
            Store::Archive(index) => format!("oci-archive:{}", index.file().display()),
            Store::Streamed { display, .. } => display.clone(),
        };
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
        let what = match &self.store {
            Store::Dir(dir) => dir.join("index.json").display().to_string(),
            Store::Archive(index) => format!("index.json in {}", index.what()),
            Store::Streamed { display, .. } => format!("index.json in {display}"),
        };
        let bytes = self.read_small("index.json", "index.json")?;
        let (parsed, _) =
            manifest::parse_manifest_or_index(&bytes, Some(manifest::OCI_INDEX), &what)?;
        let ManifestOrIndex::Index(entries) = parsed else {
            return Err(SourceError::malformed(
                what,
                "index.json is not an image index",
            ));
        };
        let mut candidates: Vec<IndexEntry> = match &self.tag {
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
        // One manifest listed twice (under two names, or the same one twice) is one image.
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|entry| seen.insert((entry.digest.clone(), entry.platform.clone())));
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

    /// The platform entries of the image the tag names when it is an index: the
    /// nested index one entry names, or several entries under the one tag. `None` for
    /// a single manifest, and for an untagged layout listing several images (those
    /// may be unrelated images, not one image's platforms).
    pub fn index_entries(&self) -> Result<Option<Vec<IndexEntry>>, SourceError> {
        let bytes = self.read_small("index.json", "index.json")?;
        let (parsed, _) =
            manifest::parse_manifest_or_index(&bytes, Some(manifest::OCI_INDEX), "index.json")?;
        let ManifestOrIndex::Index(entries) = parsed else {
            return Ok(None);
        };
        let mut candidates: Vec<IndexEntry> = match &self.tag {
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
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|entry| seen.insert((entry.digest.clone(), entry.platform.clone())));
        match candidates.as_slice() {
            [one] => {
                let bytes = self.read_blob(&one.digest, "manifest")?;
                let what = format!("manifest {}", one.digest);
                match manifest::parse_manifest_or_index(&bytes, Some(&one.media_type), &what)?.0 {
                    ManifestOrIndex::Index(entries) => Ok(Some(entries)),
                    ManifestOrIndex::Manifest(_) => Ok(None),
                }
            }
            [] => Ok(None),
            _ if self.tag.is_some() => Ok(Some(candidates)),
            _ => Ok(None),
        }
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
                    config_size: config_bytes.len() as u64,
                    config,
                    layers: doc.layers,
                })
            }
        }
    }

    pub fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobReader, SourceError> {
        let name = Self::blob_name(&layer.digest);
        let what = format!("layer {}", layer.digest);
        match &self.store {
            Store::Dir(dir) => open_file(&dir.join(name), &what),
            Store::Archive(index) => {
                let span = index.span(&name).ok_or_else(|| SourceError::NotFound {
                    what: format!("{what} in {}", index.what()),
                    hint: String::new(),
                })?;
                index.open_span(span)
            }
            Store::Streamed { display, .. } => Err(SourceError::NotFound {
                what: format!("{what} in {display}"),
                hint: " (it was streamed once and cannot be read again)".into(),
            }),
        }
    }
}

/// `ref.name` is a tag (`v1`) by the layout spec, but tools also write whole references
/// (`docker.io/library/app:v1`); both are matched.
fn ref_name_matches(name: &str, wanted: &str) -> bool {
    name == wanted || name.rsplit_once(':').is_some_and(|(_, tag)| tag == wanted)
}

pub(super) fn open_file(path: &Path, what: &str) -> Result<BlobReader, SourceError> {
    if let Err(source) = crate::input::check_regular(path) {
        if source.kind() != std::io::ErrorKind::NotFound {
            return Err(SourceError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    }
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
