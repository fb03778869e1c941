//! Writing the new image: changed layers streamed once (verified, entries kept byte
//! for byte, recompressed at the level the layer was written at), untouched layers
//! copied as they are, then config, manifest and `index.json`, each through a
//! temporary file renamed into place.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::splice::{BlockReader, SharedBlocks, SpliceStats, Splicer};
use super::ApplyError;
use crate::advice::gzip_level;
use crate::digest::{Digest, HashingReader};
use crate::layer::{self, Compression, LayerError, LayerLimits};
use crate::source::LayerDescriptor;

/// A file being written into the layout, deleted unless [`TempFile::persist`] is
/// reached.
pub(crate) struct TempFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl TempFile {
    pub(crate) fn create(dir: &Path) -> Result<Self, ApplyError> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(".ballast-apply-{}-{n}.tmp", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| ApplyError::io(&path, source))?;
        Ok(Self {
            path,
            file: Some(file),
        })
    }

    fn take(&mut self) -> Result<std::fs::File, ApplyError> {
        self.file
            .take()
            .ok_or_else(|| ApplyError::Task("a temporary file was taken twice".into()))
    }

    /// Renames the file to `name` in its directory.
    pub(crate) fn persist(mut self, to: &Path) -> Result<(), ApplyError> {
        drop(self.file.take());
        std::fs::rename(&self.path, to).map_err(|source| ApplyError::io(to, source))?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes small bytes (a config, a manifest, index.json) as `to`, atomically.
pub(crate) fn write_small(dir: &Path, to: &Path, bytes: &[u8]) -> Result<(), ApplyError> {
    let mut temp = TempFile::create(dir)?;
    let mut file = temp.take()?;
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .map_err(|source| ApplyError::io(to, source))?;
    drop(file);
    temp.persist(to)
}

/// sha256 and length of everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> Result<(W, Digest, u64), ApplyError> {
        let hex = hex::encode(self.hasher.finalize());
        let digest = Digest::parse(&format!("sha256:{hex}"))
            .map_err(|e| ApplyError::Task(format!("a computed digest: {e}")))?;
        Ok((self.inner, digest, self.bytes))
    }
}

impl<W: Write> HashingWriter<Encoder<W>> {
    fn skip_original(&mut self, n: u64) -> io::Result<()> {
        self.inner.skip_original(n)
    }

    #[allow(dead_code)]
    fn write_new(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        self.inner.write_new(bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How a rewritten layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// As the source layer is: gzip at its matched level, zstd at ballast's level.
    Matched,
    /// gzip, copying the source's deflate blocks that the change leaves alone
    /// (`splice`); the rest at the matched level.
    Spliced,
    /// Recompressed whole, with this compressor and level (`--zstd`, `--gzip`).
    Recompressed(Compression, i32),
}

/// The layer's compressor.
enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Spliced(Box<Splicer<W>>),
}

impl<W: Write> Encoder<W> {
    fn new(compression: Compression, level: i32, inner: W) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Encoder::Plain(inner),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::new(level.clamp(0, 9) as u32),
            )),
            Compression::Zstd => Encoder::Zstd(crate::recompress::encoder(inner, level)?),
        })
    }

    fn finish(self) -> io::Result<(W, Option<SpliceStats>)> {
        match self {
            Encoder::Plain(w) => Ok((w, None)),
            Encoder::Gzip(w) => Ok((w.finish()?, None)),
            Encoder::Zstd(w) => Ok((w.finish()?, None)),
            Encoder::Spliced(w) => w.finish().map(|(w, stats)| (w, Some(stats))),
        }
    }

    /// The next `n` bytes of the source tar are left out.
    fn skip_original(&mut self, n: u64) -> io::Result<()> {
        match self {
            Encoder::Spliced(w) => w.skip_original(n),
            _ => Ok(()),
        }
    }

    /// Bytes the source tar does not have here (a rewritten entry).
    #[allow(dead_code)]
    fn write_new(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Spliced(w) => w.write_new(bytes),
            other => other.write_all(bytes),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
            Encoder::Spliced(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
            Encoder::Spliced(w) => w.flush(),
        }
    }
}

/// Counts what the tar reader takes, so the bytes after the last entry (the end
/// marker and any padding) can be copied as they were.
struct Counting<R> {
    inner: R,
    bytes: u64,
    limit: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.bytes > self.limit {
            return Err(io::Error::other(LIMIT_MARK));
        }
        Ok(n)
    }
}

const LIMIT_MARK: &str = "ballast: decompressed-bytes limit";

/// A rewritten layer blob, in place in the layout.
#[derive(Debug, Clone)]
pub(crate) struct Rewritten {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    /// Tar bytes left out (headers, extension entries and padding included) per
    /// suggestion index.
    pub removed_bytes: HashMap<usize, u64>,
    /// A spliced gzip layer: how much was copied and how much compressed again.
    pub splice: Option<SpliceStats>,
    /// Tar bytes written.
    pub kept_bytes: u64,
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// Streams one layer, leaving out the entries in `remove` (normalised path → the
/// suggestion that removes it), into a new blob in `blobs`. Every kept entry is
/// copied as the source has it: its header block, the extension entries before it
/// (GNU long names, PAX records with xattrs and times) and its data.
pub(crate) fn rewrite_layer(
    blob: impl Read,
    descriptor: &LayerDescriptor,
    expected_diff_id: &Digest,
    remove: &HashMap<String, usize>,
    limits: &LayerLimits,
    blobs: &Path,
    output: Output,
) -> Result<Rewritten, ApplyError> {
    let digest = &descriptor.digest;
    let compression = layer::compression_of(&descriptor.media_type).ok_or_else(|| {
        LayerError::UnsupportedMediaType {
            digest: digest.clone(),
            media_type: descriptor.media_type.clone(),
        }
    })?;
    let corrupt = |e: io::Error| -> ApplyError {
        if e.to_string() == LIMIT_MARK {
            return LayerError::Limit {
                digest: digest.clone(),
                what: "the decompressed layer".into(),
                limit: limits.max_uncompressed_bytes,
                flag: "--max-layer-size",
            }
            .into();
        }
        LayerError::Corrupt {
            digest: digest.clone(),
            compression,
            reason: e.to_string(),
        }
        .into()
    };
    let mut compressed = HashingReader::new(io::BufReader::with_capacity(256 * 1024, blob));
    let mut probe = Vec::new();
    let level = if compression == Compression::Gzip {
        (&mut compressed)
            .take(gzip_level::PROBE_COMPRESSED_BYTES as u64)
            .read_to_end(&mut probe)
            .map_err(|e| LayerError::Read {
                digest: digest.clone(),
                reason: e.to_string(),
            })?;
        gzip_level::match_level(&probe).map_or(gzip_level::DEFAULT_LEVEL, |m| m.level)
    } else {
        gzip_level::DEFAULT_LEVEL
    };
    let mut temp = TempFile::create(blobs)?;
    let file = temp.take()?;
    let out_io = |e: io::Error| ApplyError::io(blobs, e);
    let stored = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let blocks = SharedBlocks::default();
    let spliced = output == Output::Spliced && compression == Compression::Gzip;
    let encoder = match output {
        _ if spliced => Ok(Encoder::Spliced(Box::new(Splicer::new(
            stored,
            blocks.clone(),
            level,
        )))),
        Output::Recompressed(with, level) => Encoder::new(with, level, stored),
        _ if compression == Compression::Zstd => {
            Encoder::new(compression, crate::recompress::ZSTD_LEVEL, stored)
        }
        _ => Encoder::new(compression, level as i32, stored),
    }
    .map_err(out_io)?;
    let mut tar_out = HashingWriter::new(encoder);

    let mut removed_bytes: HashMap<usize, u64> = HashMap::new();
    let (source_diff_id, _) = {
        let stored_input = io::Cursor::new(&probe).chain(&mut compressed);
        let decoder: Box<dyn Read + '_> = if spliced {
            Box::new(BlockReader::new(stored_input, blocks.clone()))
        } else {
            layer::decoder(stored_input, compression).map_err(corrupt)?
        };
        let hashed = HashingReader::new(decoder);
        let counting = Counting {
            inner: hashed,
            bytes: 0,
            limit: limits.max_uncompressed_bytes,
        };
        let mut archive = layer::tar_archive(counting, limits);
        // Bytes of the entries walked so far, kept or not.
        let mut walked = 0u64;
        let mut entries = 0u64;
        // Extension entries waiting for the entry they describe, as raw bytes.
        let mut pending: Vec<u8> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut pax_path: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        for entry in archive.entries().map_err(corrupt)?.raw(true) {
            let mut entry = entry.map_err(corrupt)?;
            entries += 1;
            if entries > limits.max_entries {
                return Err(LayerError::Limit {
                    digest: digest.clone(),
                    what: "the number of tar entries".into(),
                    limit: limits.max_entries,
                    flag: "--max-entries",
                }
                .into());
            }
            let header = entry.header().clone();
            let size = header.entry_size().map_err(corrupt)?;
            let block_bytes = 512 + size + padding(size) as u64;
            walked += block_bytes;
            let kind = header.entry_type();
            if kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_local_extensions() {
                if size > layer::MAX_PAX_HEADER_BYTES {
                    return Err(LayerError::FixedLimit {
                        digest: digest.clone(),
                        what: "an extension entry (long name or PAX records)".into(),
                        limit: layer::MAX_PAX_HEADER_BYTES,
                    }
                    .into());
                }
                let mut data = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut data).map_err(corrupt)?;
                if kind.is_gnu_longname() {
                    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                    long_name = Some(data[..end].to_vec());
                } else if kind.is_pax_local_extensions() {
                    for record in tar::PaxExtensions::new(&data) {
                        let record = record.map_err(corrupt)?;
                        match record.key_bytes() {
                            b"path" => pax_path = Some(record.value_bytes().to_vec()),
                            b"size" => {
                                pax_size = std::str::from_utf8(record.value_bytes())
                                    .ok()
                                    .and_then(|v| v.parse().ok())
                            }
                            _ => {}
                        }
                    }
                }
                pending.extend_from_slice(header.as_bytes());
                pending.extend_from_slice(&data);
                pending.resize(pending.len() + padding(size), 0);
                continue;
            }
            if kind.is_gnu_sparse() && header.as_gnu().is_some_and(|g| g.is_extended()) {
                return Err(ApplyError::NotYet(format!(
                    "layer {digest}: a GNU sparse file with extended sparse headers"
                )));
            }
            if pax_size.take().is_some_and(|s| s != size) {
                return Err(ApplyError::NotYet(format!(
                    "layer {digest}: a PAX size record that differs from its header's"
                )));
            }
            let raw_path = match (long_name.take(), pax_path.take()) {
                (_, Some(path)) => path,
                (Some(path), None) => path,
                (None, None) => header.path_bytes().into_owned(),
            };
            if raw_path.len() > limits.max_path_bytes {
                return Err(LayerError::Limit {
                    digest: digest.clone(),
                    what: "a path".into(),
                    limit: limits.max_path_bytes as u64,
                    flag: "--max-path-length",
                }
                .into());
            }
            let name = crate::text::name_from_bytes(&raw_path);
            let path = layer::normalise_path(&name).map_err(|reason| LayerError::BadEntry {
                digest: digest.clone(),
                path: name.clone(),
                reason: reason.to_string(),
            })?;
            let global = kind.is_pax_global_extensions();
            if let Some(suggestion) = remove.get(&path).filter(|_| !global) {
                *removed_bytes.entry(*suggestion).or_default() +=
                    pending.len() as u64 + block_bytes;
                let left_out = pending.len() as u64 + block_bytes;
                pending.clear();
                io::copy(&mut entry, &mut io::sink()).map_err(corrupt)?;
                tar_out.skip_original(left_out).map_err(out_io)?;
                continue;
            }
            tar_out.write_all(&pending).map_err(out_io)?;
            pending.clear();
            tar_out.write_all(header.as_bytes()).map_err(out_io)?;
            let copied = copy(&mut entry, &mut tar_out).map_err(|e| match e {
                CopyError::Read(e) => corrupt(e),
                CopyError::Write(e) => out_io(e),
            })?;
            if copied != size {
                return Err(corrupt(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{name}: {copied} of {size} bytes"),
                )));
            }
            tar_out
                .write_all(&[0u8; 512][..padding(size)])
                .map_err(out_io)?;
        }
        if !pending.is_empty() {
            return Err(corrupt(io::Error::other(
                "an extension entry describes no entry after it",
            )));
        }
        // The end marker the walk stopped at, then whatever follows it.
        let mut counting = archive.into_inner();
        let end_marker = counting.bytes.saturating_sub(walked);
        io::copy(&mut io::repeat(0).take(end_marker), &mut tar_out).map_err(out_io)?;
        copy(&mut counting, &mut tar_out).map_err(|e| match e {
            CopyError::Read(e) => corrupt(e),
            CopyError::Write(e) => out_io(e),
        })?;
        counting.inner.finish().map_err(corrupt)?
    };
    layer::finish_compressed(compressed, descriptor)?;
    let diff_id_expected = if compression == Compression::None {
        digest.clone()
    } else {
        source_diff_id
    };
    if &diff_id_expected != expected_diff_id {
        return Err(LayerError::DiffIdMismatch {
            digest: digest.clone(),
            expected: expected_diff_id.clone(),
            actual: diff_id_expected,
        }
        .into());
    }
    let (encoder, diff_id, kept_bytes) = tar_out.finish()?;
    let (stored, splice) = encoder.finish().map_err(out_io)?;
    let (buffered, blob_digest, size) = stored.finish()?;
    let file = buffered
        .into_inner()
        .map_err(|e| ApplyError::io(blobs, e.into_error()))?;
    drop(file);
    temp.persist(&blobs.join(blob_digest.hex()))?;
    Ok(Rewritten {
        digest: blob_digest,
        size,
        diff_id,
        removed_bytes,
        splice,
        kept_bytes,
    })
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy` that says which side failed.
fn copy(from: &mut impl Read, to: &mut impl Write) -> Result<u64, CopyError> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buffer[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

/// Copies a blob byte for byte into `blobs`, verifying its digest and size.
pub(crate) fn copy_blob(
    blob: impl Read,
    descriptor: &LayerDescriptor,
    blobs: &Path,
) -> Result<(), ApplyError> {
    let target = blobs.join(descriptor.digest.hex());
    let mut temp = TempFile::create(blobs)?;
    let file = temp.take()?;
    let mut reader = HashingReader::new(blob);
    let mut writer = BufWriter::with_capacity(256 * 1024, file);
    copy(&mut reader, &mut writer).map_err(|e| match e {
        CopyError::Read(e) => ApplyError::from(LayerError::Read {
            digest: descriptor.digest.clone(),
            reason: e.to_string(),
        }),
        CopyError::Write(e) => ApplyError::io(&target, e),
    })?;
    writer
        .into_inner()
        .map_err(|e| ApplyError::io(&target, e.into_error()))?;
    layer::finish_compressed(reader, descriptor)?;
    temp.persist(&target)
}
