//! A tar file read in place: indexed once (member name → offset and size), then each
//! member read at its offset. docker-archive and oci-archive sources both sit on it.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{BlobReader, SourceError, MAX_METADATA_BYTES};

/// How many entries an archive may hold before we call it hostile.
const MAX_ARCHIVE_ENTRIES: usize = 1_000_000;

#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub offset: u64,
    pub size: u64,
}

pub struct TarIndex {
    file: PathBuf,
    /// `docker-archive` or `oci-archive`, for messages.
    transport: &'static str,
    spans: HashMap<String, Span>,
}

impl TarIndex {
    pub fn open(file: PathBuf, transport: &'static str) -> Result<Self, SourceError> {
        let what = format!("{transport} {}", file.display());
        let io_error = |source| SourceError::Io {
            path: file.clone(),
            source,
        };
        let mut handle = std::fs::File::open(&file).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SourceError::NotFound {
                    what: what.clone(),
                    hint: String::new(),
                }
            } else {
                io_error(source)
            }
        })?;
        if !handle.metadata().map_err(io_error)?.is_file() {
            return Err(SourceError::malformed(
                &what,
                "not a regular file (archives are read in place, so a pipe or device cannot be one)",
            ));
        }
        let mut magic = [0u8; 4];
        let read = handle.read(&mut magic).map_err(io_error)?;
        if read >= 2 && magic[..2] == [0x1f, 0x8b] {
            return Err(SourceError::malformed(
                &what,
                "the archive is gzip-compressed; decompress it first (gunzip), as docker load would",
            ));
        }
        let file_len = handle.metadata().map_err(io_error)?.len();
        handle.seek(SeekFrom::Start(0)).map_err(io_error)?;
        let mut archive = crate::layer::tar_archive(handle, &crate::layer::LayerLimits::default());
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
            let path = member_name(
                &entry
                    .path()
                    .map_err(|e| SourceError::malformed(&what, e))?
                    .to_string_lossy(),
            );
            // Checked before the reader seeks past it: a size no file can hold is a
            // broken archive, said so, not a seek error.
            let end = entry.raw_file_position().checked_add(entry.size());
            if end.is_none_or(|end| end > file_len) {
                return Err(SourceError::malformed(
                    &what,
                    format!(
                        "member {} claims {} bytes, past the end of the {file_len}-byte archive",
                        crate::text::escape_control(&path),
                        entry.size()
                    ),
                ));
            }
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
                            crate::fs::resolve_link(&path, &target)
                        } else {
                            member_name(&target)
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
            transport,
            spans,
        })
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn what(&self) -> String {
        format!("{} {}", self.transport, self.file.display())
    }

    pub fn span(&self, name: &str) -> Option<Span> {
        self.spans.get(&member_name(name)).copied()
    }

    /// A small member (a manifest, a config, index.json), size-checked before reading.
    pub fn read_member(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let span = self.span(name).ok_or_else(|| SourceError::NotFound {
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

    /// Reads no further than the member's recorded size.
    pub fn open_span(&self, span: Span) -> Result<BlobReader, SourceError> {
        let io_error = |source| SourceError::Io {
            path: self.file.clone(),
            source,
        };
        let mut file = std::fs::File::open(&self.file).map_err(io_error)?;
        file.seek(SeekFrom::Start(span.offset)).map_err(io_error)?;
        Ok(Box::new(file.take(span.size)))
    }
}

/// Member names as archives write them (`./index.json`, `blobs/sha256/…`).
fn member_name(raw: &str) -> String {
    raw.trim_start_matches("./").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links() {
        assert_eq!(
            crate::fs::resolve_link("abc/layer.tar", "../def/layer.tar"),
            "def/layer.tar"
        );
        assert_eq!(member_name("./index.json"), "index.json");
    }
}
