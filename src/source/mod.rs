//! Where image bytes come from: a registry, an OCI layout directory or a `docker save`
//! tarball. Each source resolves a reference to one platform's manifest, config and
//! layer descriptors, and opens blobs as plain byte streams for the layer pipeline.

mod archive;
mod daemon;
mod layout;
pub mod manifest;
mod pipe;
pub(crate) mod registry;
pub mod save_stream;
mod tar_index;

use std::io::Read;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError};
use crate::reference::ImageRef;
use crate::registry::{RegistryError, RegistryOptions};

pub use manifest::{ImageConfig, LayerDescriptor, Platform};
pub(crate) use pipe::is_stream;
pub(crate) use registry::within;

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
    #[error("{engine} ({host}): {reason}")]
    Engine {
        engine: &'static str,
        host: String,
        reason: String,
    },
    #[error("{what}: unsupported media type {media_type:?}")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
}

impl crate::error::Fault for SourceError {
    /// A reference, a registry, a file or an image that is wrong or unreachable.
    fn is_bad_input(&self) -> bool {
        true
    }
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
    /// The config blob's length (read and verified while resolving).
    pub config_size: u64,
    pub config: ImageConfig,
    pub layers: Vec<LayerDescriptor>,
}

/// An opened image source.
pub enum Source {
    Registry(registry::RegistrySource),
    Layout(layout::LayoutSource),
    Archive(archive::ArchiveSource),
    /// A local engine: read by exporting the image, in one pass (`Source::stream_scan`).
    Daemon(daemon::DaemonSource),
    /// An archive given as a pipe: read once, in one pass.
    Pipe(pipe::PipeSource),
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
            ImageRef::DockerArchive { file, reference } if pipe::is_stream(file) => Source::Pipe(
                pipe::PipeSource::new(file.clone(), "docker-archive", reference.clone()),
            ),
            ImageRef::OciArchive { file, reference } if pipe::is_stream(file) => Source::Pipe(
                pipe::PipeSource::new(file.clone(), "oci-archive", reference.clone()),
            ),
            ImageRef::DockerArchive { file, reference } => {
                let file = file.clone();
                let reference = reference.clone();
                tokio::task::spawn_blocking(move || archive::ArchiveSource::open(file, reference))
                    .await
                    .map_err(|e| SourceError::malformed("docker-archive", e))??
                    .into()
            }
            ImageRef::OciArchive { file, reference } => {
                let file = file.clone();
                let reference = reference.clone();
                Source::Layout(
                    tokio::task::spawn_blocking(move || {
                        layout::LayoutSource::open_archive(file, reference)
                    })
                    .await
                    .map_err(|e| SourceError::malformed("oci-archive", e))??,
                )
            }
            ImageRef::Daemon { engine, name } => Source::Daemon(daemon::DaemonSource::open(
                *engine,
                name,
                options
                    .connect_timeout
                    .unwrap_or(std::time::Duration::from_secs(30)),
                options
                    .read_timeout
                    .unwrap_or(std::time::Duration::from_secs(60)),
            )?),
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
            Source::Daemon(source) => Err(SourceError::malformed(
                source.display(),
                "a local engine's image is read with stream_scan",
            )),
            Source::Pipe(source) => Err(SourceError::malformed(
                source.display(),
                "a pipe is read with stream_scan",
            )),
        }
    }

    /// The entries of the index the reference names (its platforms), or `None` when
    /// it names one manifest or the source has no indexes (archives, engines, pipes).
    pub async fn index_entries(&self) -> Result<Option<Vec<manifest::IndexEntry>>, SourceError> {
        match self {
            Source::Registry(source) => source.index_entries().await,
            Source::Layout(source) => source.index_entries(),
            Source::Archive(_) | Source::Daemon(_) | Source::Pipe(_) => Ok(None),
        }
    }

    /// For sources that can only be read front to back: the image, resolved, with
    /// every layer already scanned. `None` for sources resolved first and read later.
    pub async fn stream_scan(
        &self,
        options: &save_stream::StreamOptions,
    ) -> Option<Result<save_stream::StreamedImage, save_stream::StreamError>> {
        match self {
            Source::Daemon(source) => Some(source.stream_scan(options).await),
            Source::Pipe(source) => Some(source.stream_scan(options).await),
            _ => None,
        }
    }

    /// Opens a layer blob as a blocking byte stream (use it inside `spawn_blocking`).
    /// The bytes are not verified here: the layer pipeline hashes them as it reads.
    ///
    /// Never more than the descriptor's size is read, whatever the source would
    /// send: an endless body or a blob that is really `/dev/zero` costs no more than
    /// the blob it claims to be, and the digest check then says what is wrong.
    pub async fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobReader, SourceError> {
        let blob = match self {
            Source::Registry(source) => source.open_blob(layer).await,
            Source::Layout(source) => source.open_blob(layer),
            Source::Archive(source) => source.open_blob(layer),
            Source::Daemon(source) => source.open_blob(layer).await,
            Source::Pipe(source) => source.open_blob(layer),
        }?;
        Ok(Box::new(blob.take(layer.size)))
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
    crate::input::read_capped(path, MAX_METADATA_BYTES).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SourceError::NotFound {
                what: format!("{what} ({})", path.display()),
                hint: String::new(),
            }
        } else if source.kind() == std::io::ErrorKind::InvalidData {
            SourceError::TooLarge {
                what: what.to_string(),
                size: std::fs::metadata(path).map_or(MAX_METADATA_BYTES + 1, |m| m.len()),
                limit: MAX_METADATA_BYTES,
            }
        } else {
            SourceError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
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

/// Lets a command stop every blob reader still running on a blocking thread once one
/// layer has failed, and wait for them: no reader may outlive the runtime it reads
/// through.
#[derive(Clone, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `blob`, failing its next read once the command is cancelled.
    pub fn wrap(&self, blob: BlobReader) -> BlobReader {
        Box::new(CancellableReader {
            inner: blob,
            cancel: self.clone(),
        })
    }
}

struct CancellableReader {
    inner: BlobReader,
    cancel: Cancel,
}

impl Read for CancellableReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            // Not `Interrupted`: readers retry that kind forever.
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "cancelled: another layer failed",
            ));
        }
        self.inner.read(buf)
    }
}

/// Collects every task's result; after the first failure the rest are cancelled and
/// waited for, and that first failure is returned.
pub async fn join_all<T: Send + 'static, E: Send + 'static>(
    mut tasks: tokio::task::JoinSet<Result<T, E>>,
    cancel: &Cancel,
    task_error: impl Fn(String) -> E,
) -> Result<Vec<T>, E> {
    let mut results = Vec::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(value)) => results.push(value),
            Ok(Err(error)) => {
                cancel.cancel();
                first_error.get_or_insert(error);
            }
            Err(join_error) => {
                cancel.cancel();
                first_error.get_or_insert(task_error(join_error.to_string()));
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(results),
    }
}
