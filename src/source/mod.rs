//! Where image bytes come from: a registry, an OCI layout directory or a `docker save`
//! tarball. Each source resolves a reference to one platform's manifest, config and
//! layer descriptors, and opens blobs as plain byte streams for the layer pipeline.

mod archive;
mod layout;
pub mod manifest;
mod registry;

use std::io::Read;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError};
use crate::reference::ImageRef;
use crate::registry::{RegistryError, RegistryOptions};

pub use manifest::{ImageConfig, LayerDescriptor, Platform};

/// Manifests, indexes and configs larger than this are refused: the distribution spec
/// lets registries enforce 4 MiB, and a larger one is a mistake or an attack.
pub const MAX_METADATA_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: malformed: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: {size} bytes exceeds the {limit}-byte limit for manifests and configs")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{what}: not found{hint}")]
    NotFound { what: String, hint: String },
    #[error("no image for platform {wanted} in {reference}; available: {available}")]
    NoMatchingPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("{what}: unsupported media type {media_type:?}")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl SourceError {
    pub(crate) fn malformed(what: impl Into<String>, reason: impl ToString) -> Self {
        SourceError::Malformed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// One platform's image, resolved: everything but the layer bytes.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub reference: String,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub platform: Platform,
    pub config_digest: Digest,
    pub config: ImageConfig,
    pub layers: Vec<LayerDescriptor>,
}

/// An opened image source.
pub enum Source {
    Registry(registry::RegistrySource),
    Layout(layout::LayoutSource),
    Archive(archive::ArchiveSource),
}

pub type BlobReader = Box<dyn Read + Send>;

impl Source {
    pub async fn open(image: &ImageRef, options: &RegistryOptions) -> Result<Self, SourceError> {
        Ok(match image {
            ImageRef::Registry(reference) => {
                Source::Registry(registry::RegistrySource::new(reference.clone(), options).await?)
            }
            ImageRef::OciLayout { dir, tag } => {
                Source::Layout(layout::LayoutSource::open(dir.clone(), tag.clone())?)
            }
            ImageRef::DockerArchive { file, reference } => {
                let file = file.clone();
                let reference = reference.clone();
                tokio::task::spawn_blocking(move || archive::ArchiveSource::open(file, reference))
                    .await
                    .map_err(|e| SourceError::malformed("docker-archive", e))??
                    .into()
            }
        })
    }

    pub async fn resolve(
        &self,
        platform: &Platform,
        explicit: bool,
    ) -> Result<ResolvedImage, SourceError> {
        match self {
            Source::Registry(source) => source.resolve(platform, explicit).await,
            Source::Layout(source) => source.resolve(platform, explicit),
            Source::Archive(source) => source.resolve(platform, explicit),
        }
    }

    /// Opens a layer blob as a blocking byte stream (use it inside `spawn_blocking`).
    /// The bytes are not verified here: the layer pipeline hashes them as it reads.
    pub async fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobReader, SourceError> {
        match self {
            Source::Registry(source) => source.open_blob(layer).await,
            Source::Layout(source) => source.open_blob(layer),
            Source::Archive(source) => source.open_blob(layer),
        }
    }
}

impl From<archive::ArchiveSource> for Source {
    fn from(source: archive::ArchiveSource) -> Self {
        Source::Archive(source)
    }
}

/// Reads a small metadata file with the size limit applied before reading.
pub(crate) fn read_metadata_file(
    path: &std::path::Path,
    what: &str,
) -> Result<Vec<u8>, SourceError> {
    let io_error = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SourceError::NotFound {
                what: format!("{what} ({})", path.display()),
                hint: String::new(),
            }
        } else {
            io_error(source)
        }
    })?;
    let size = file.metadata().map_err(io_error)?.len();
    if size > MAX_METADATA_BYTES {
        return Err(SourceError::TooLarge {
            what: what.to_string(),
            size,
            limit: MAX_METADATA_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    Ok(bytes)
}

pub(crate) fn verify_digest(
    what: &str,
    bytes: &[u8],
    expected: &Digest,
) -> Result<(), SourceError> {
    let actual = Digest::of_bytes(bytes);
    if &actual != expected {
        return Err(SourceError::DigestMismatch {
            what: what.to_string(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}
