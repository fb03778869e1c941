//! `docker-archive:` and `oci-archive:` given a pipe (`docker save app |
//! ballast inspect docker-archive:/dev/stdin`, `<(…)`): read once, front to back,
//! as a local engine's export is.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::save_stream::{self, StreamError, StreamOptions, StreamRequest, StreamedImage};
use super::{BlobReader, LayerDescriptor, SourceError};

pub struct PipeSource {
    path: PathBuf,
    transport: &'static str,
    reference: Option<String>,
    read: AtomicBool,
}

impl PipeSource {
    pub fn new(path: PathBuf, transport: &'static str, reference: Option<String>) -> Self {
        Self {
            path,
            transport,
            reference,
            read: AtomicBool::new(false),
        }
    }

    pub fn display(&self) -> String {
        let mut text = format!("{}:{}", self.transport, self.path.display());
        if let Some(reference) = &self.reference {
            text.push(':');
            text.push_str(reference);
        }
        text
    }

    pub async fn stream_scan(&self, options: &StreamOptions) -> Result<StreamedImage, StreamError> {
        if self.read.swap(true, Ordering::SeqCst) {
            return Err(self.read_twice().into());
        }
        let file = std::fs::File::open(&self.path).map_err(|source| SourceError::Io {
            path: self.path.clone(),
            source,
        })?;
        let request = StreamRequest {
            what: self.display(),
            wanted: self.reference.clone(),
            options: options.clone(),
        };
        save_stream::read_in_background(file, request).await
    }

    pub fn open_blob(&self, _layer: &LayerDescriptor) -> Result<BlobReader, SourceError> {
        Err(self.read_twice())
    }

    fn read_twice(&self) -> SourceError {
        SourceError::malformed(
            self.display(),
            "a pipe can be read only once, and this command reads layers again; save the archive to a file first",
        )
    }
}

/// Whether `path` is something to read front to back (a pipe, a character device),
/// not a file to index in place.
pub fn is_stream(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}
