//! Writing the new image: changed layers streamed once (verified, entries kept byte
//! for byte or stripped, recompressed at the level the layer was written at),
//! untouched layers copied as they are, then config, manifest and `index.json`, each
//! through a temporary file renamed into place.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::splice::{BlockReader, SharedBlocks, SpliceStats, Splicer};
use super::ApplyError;
use crate::advice::{gzip_level, StripMode};
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

    pub(crate) fn take_file(&mut self) -> Result<std::fs::File, ApplyError> {
        self.take()
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

/// What becomes of one entry of a changed layer, with the index of the suggestion
/// that asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryChange {
    Remove(usize),
    Strip(usize),
}

/// An extension entry (GNU long name or link, PAX records) waiting for the entry it
/// describes.
struct Extension {
    header: tar::Header,
    data: Vec<u8>,
    pax: bool,
}

impl Extension {
    fn tar_bytes(&self) -> u64 {
        let size = self.data.len() as u64;
        512 + size + padding(size) as u64
    }

    fn write(&self, to: &mut impl Write) -> io::Result<()> {
        to.write_all(self.header.as_bytes())?;
        to.write_all(&self.data)?;
        to.write_all(&[0u8; 512][..padding(self.data.len() as u64)])
    }
}

/// A rewritten layer blob, in place in the layout.
#[derive(Debug, Clone)]
pub(crate) struct Rewritten {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    /// Tar bytes left out (headers, extension entries and padding included), or
    /// taken off by a strip, per suggestion index.
    pub removed_bytes: HashMap<usize, u64>,
    /// A spliced gzip layer: how much was copied and how much compressed again.
    pub splice: Option<SpliceStats>,
    /// Tar bytes written.
    pub kept_bytes: u64,
    /// Binaries stripped: path, size before, size after.
    pub stripped: Vec<(String, u64, u64)>,
    /// The blob as inspect reads it, from its bytes on their way to disk (none for
    /// zstd, whose decoder's window would not fit beside its encoder's in memory).
    pub read_back: Option<layer::LayerScan>,
}

/// The blob being written, read at the same time by inspect's own layer reader
/// (`layer::scan_written`) on a thread of its own: the read-back `apply` proves its
/// figures with, made while the layer is written rather than after it, so that it
/// takes the idle core instead of wall time. Its digest, size and diff_id are
/// compared with the writer's by the caller.
pub(crate) struct ReadBack {
    sender: Option<std::sync::mpsc::SyncSender<Chunk>>,
    pending: Vec<u8>,
    reader: Option<std::thread::JoinHandle<Result<layer::LayerScan, LayerError>>>,
}

impl ReadBack {
    /// Reads back a blob of `media_type`; `label` (the source layer) names it in
    /// errors.
    fn start(label: &Digest, media_type: &str, limits: &LayerLimits) -> Result<Self, ApplyError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(PIPE_CHUNKS);
        let descriptor = LayerDescriptor {
            digest: label.clone(),
            media_type: media_type.to_string(),
            size: 0,
        };
        let limits = *limits;
        let reader = std::thread::Builder::new()
            .name("apply-read-back".into())
            .spawn(move || layer::scan_written(Piped::new(receiver), &descriptor, &limits))
            .map_err(|e| ApplyError::Task(format!("starting the read-back: {e}")))?;
        Ok(Self {
            sender: Some(sender),
            pending: Vec::with_capacity(PIPE_CHUNK_BYTES),
            reader: Some(reader),
        })
    }

    fn none() -> Self {
        Self {
            sender: None,
            pending: Vec::new(),
            reader: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let Some(sender) = &self.sender else {
            return;
        };
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= PIPE_CHUNK_BYTES {
            let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(PIPE_CHUNK_BYTES));
            // The reader stopped early: its error is what `finish` returns.
            if sender.send(Ok(chunk)).is_err() {
                self.sender = None;
            }
        }
    }

    /// The reader's scan of everything fed.
    fn finish(mut self) -> Result<Option<layer::LayerScan>, ApplyError> {
        if let Some(sender) = self.sender.take() {
            let chunk = std::mem::take(&mut self.pending);
            if !chunk.is_empty() {
                let _ = sender.send(Ok(chunk));
            }
            let _ = sender.send(Ok(Vec::new()));
        }
        let Some(reader) = self.reader.take() else {
            return Ok(None);
        };
        let scan = reader
            .join()
            .map_err(|_| ApplyError::Task("the read-back thread panicked".into()))?
            .map_err(|e| ApplyError::Verify(format!("reading back what was written: {e}")))?;
        Ok(Some(scan))
    }
}

impl Drop for ReadBack {
    fn drop(&mut self) {
        // An abandoned write: the reader sees its input end early and stops.
        drop(self.sender.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The stored bytes on their way to the file, fed to the read-back too.
pub(crate) struct Teed<W> {
    inner: W,
    read_back: ReadBack,
}

impl<W: Write> Write for Teed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.read_back.feed(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type StoredFile = HashingWriter<Teed<BufWriter<std::fs::File>>>;

/// The blob file's writer: hashed, and read back as it goes unless `media_type` is
/// `None` (zstd).
fn stored_file(
    file: std::fs::File,
    read_back: Option<(&Digest, &str, &LayerLimits)>,
) -> Result<StoredFile, ApplyError> {
    let read_back = match read_back {
        Some((label, media_type, limits)) => ReadBack::start(label, media_type, limits)?,
        None => ReadBack::none(),
    };
    Ok(HashingWriter::new(Teed {
        inner: BufWriter::with_capacity(256 * 1024, file),
        read_back,
    }))
}

/// Flushes the blob file, renames it to its digest and collects the read-back.
fn persist_stored(
    stored: StoredFile,
    temp: TempFile,
    blobs: &Path,
) -> Result<(Digest, u64, Option<layer::LayerScan>), ApplyError> {
    let (teed, blob_digest, size) = stored.finish()?;
    let Teed { inner, read_back } = teed;
    let file = inner
        .into_inner()
        .map_err(|e| ApplyError::io(blobs, e.into_error()))?;
    drop(file);
    let scan = read_back.finish()?;
    temp.persist(&blobs.join(blob_digest.hex()))?;
    Ok((blob_digest, size, scan))
}

/// The media type a read-back decodes the output as: `None` for zstd (not read
/// back on the way).
fn read_back_media_type(compression: Compression) -> Option<&'static str> {
    match compression {
        Compression::Gzip => Some("application/vnd.oci.image.layer.v1.tar+gzip"),
        Compression::None => Some("application/vnd.oci.image.layer.v1.tar"),
        Compression::Zstd => None,
    }
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// Streams one layer, leaving out or stripping the entries in `changes` (normalised
/// path → what to do), into a new blob in `blobs`. Every kept entry is copied as the
/// source has it: its header block, the extension entries before it (GNU long names,
/// PAX records with xattrs and times) and its data. A stripped one keeps all of that
/// but its size (header and PAX `size` record) and checksum.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rewrite_layer(
    blob: impl Read + Send,
    descriptor: &LayerDescriptor,
    expected_diff_id: &Digest,
    changes: &HashMap<String, EntryChange>,
    strip_mode: StripMode,
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
    let spliced = output == Output::Spliced && compression == Compression::Gzip;
    let written_as = match output {
        Output::Recompressed(with, _) => with,
        _ => compression,
    };
    let stored = stored_file(
        file,
        read_back_media_type(written_as).map(|media_type| (digest, media_type, limits)),
    )?;
    let blocks = SharedBlocks::default();
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
    let mut stripped = Vec::new();
    // Inflating (and hashing the stored bytes) on a thread of its own, walking and
    // writing on this one: a large layer's rewrite takes two cores, not one.
    let (source_diff_id, _) = std::thread::scope(|scope| {
        let stored_input = io::Cursor::new(&probe).chain(&mut compressed);
        let (sender, receiver) = std::sync::mpsc::sync_channel(PIPE_CHUNKS);
        let reader_blocks = blocks.clone();
        scope.spawn(move || {
            let decoder: io::Result<Box<dyn Read + '_>> = if spliced {
                Ok(Box::new(BlockReader::new(stored_input, reader_blocks)))
            } else {
                layer::decoder(stored_input, compression)
            };
            pump(decoder, &sender);
        });
        walk_entries(
            Box::new(Piped::new(receiver)),
            digest,
            compression,
            changes,
            strip_mode,
            limits,
            blobs,
            &mut tar_out,
            End::Keep,
            &mut removed_bytes,
            &mut stripped,
        )
    })?;
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
    let (blob_digest, size, read_back) = persist_stored(stored, temp, blobs)?;
    Ok(Rewritten {
        digest: blob_digest,
        size,
        diff_id,
        removed_bytes,
        splice,
        kept_bytes,
        stripped,
        read_back,
    })
}

/// One source layer of a squash: what to leave out of it.
pub(crate) struct SquashInput {
    pub descriptor: LayerDescriptor,
    pub diff_id: Digest,
    pub changes: HashMap<String, EntryChange>,
}

/// Writes `inputs`, in order, as one layer: each source layer verified and walked
/// as [`rewrite_layer`] walks one, their entries going on in one tar with one end
/// marker. `open` opens a layer's blob when its turn comes, so one download runs at
/// a time.
pub(crate) fn squash_layers(
    inputs: &[SquashInput],
    mut open: impl FnMut(&LayerDescriptor) -> Result<crate::source::BlobReader, ApplyError>,
    strip_mode: StripMode,
    limits: &LayerLimits,
    blobs: &Path,
    (compression, level): (Compression, i32),
) -> Result<Rewritten, ApplyError> {
    let mut temp = TempFile::create(blobs)?;
    let file = temp.take()?;
    let out_io = |e: io::Error| ApplyError::io(blobs, e);
    let label = inputs
        .first()
        .map(|input| input.descriptor.digest.clone())
        .ok_or_else(|| ApplyError::Task("a squash of no layers".into()))?;
    let stored = stored_file(
        file,
        read_back_media_type(compression).map(|media_type| (&label, media_type, limits)),
    )?;
    let encoder = Encoder::new(compression, level, stored).map_err(out_io)?;
    let mut tar_out = HashingWriter::new(encoder);
    let mut removed_bytes: HashMap<usize, u64> = HashMap::new();
    let mut stripped = Vec::new();
    for input in inputs {
        let descriptor = &input.descriptor;
        let digest = &descriptor.digest;
        let source_compression =
            layer::compression_of(&descriptor.media_type).ok_or_else(|| {
                LayerError::UnsupportedMediaType {
                    digest: digest.clone(),
                    media_type: descriptor.media_type.clone(),
                }
            })?;
        let blob = open(descriptor)?;
        let mut compressed = HashingReader::new(io::BufReader::with_capacity(256 * 1024, blob));
        let (source_diff_id, _) = {
            let decoder = layer::decoder(&mut compressed, source_compression).map_err(|e| {
                LayerError::Corrupt {
                    digest: digest.clone(),
                    compression: source_compression,
                    reason: e.to_string(),
                }
            })?;
            walk_entries(
                decoder,
                digest,
                source_compression,
                &input.changes,
                strip_mode,
                limits,
                blobs,
                &mut tar_out,
                End::Drop,
                &mut removed_bytes,
                &mut stripped,
            )?
        };
        layer::finish_compressed(compressed, descriptor)?;
        let diff_id = if source_compression == Compression::None {
            digest.clone()
        } else {
            source_diff_id
        };
        if diff_id != input.diff_id {
            return Err(LayerError::DiffIdMismatch {
                digest: digest.clone(),
                expected: input.diff_id.clone(),
                actual: diff_id,
            }
            .into());
        }
    }
    // One end marker for all of them: two zero blocks.
    tar_out.write_all(&[0u8; 1024]).map_err(out_io)?;
    let (encoder, diff_id, kept_bytes) = tar_out.finish()?;
    let (stored, _) = encoder.finish().map_err(out_io)?;
    let (blob_digest, size, read_back) = persist_stored(stored, temp, blobs)?;
    Ok(Rewritten {
        digest: blob_digest,
        size,
        diff_id,
        removed_bytes,
        splice: None,
        kept_bytes,
        stripped,
        read_back,
    })
}

/// Chunks in flight between the inflating thread and the walking one: 512 KiB.
const PIPE_CHUNKS: usize = 4;
const PIPE_CHUNK_BYTES: usize = 128 * 1024;

type Chunk = io::Result<Vec<u8>>;

/// Reads `decoder` to its end in chunks, then sends an empty one; stops when the
/// walker has gone (an error there).
fn pump(decoder: io::Result<Box<dyn Read + '_>>, sender: &std::sync::mpsc::SyncSender<Chunk>) {
    let mut decoder = match decoder {
        Ok(decoder) => decoder,
        Err(e) => {
            let _ = sender.send(Err(e));
            return;
        }
    };
    loop {
        let mut chunk = vec![0u8; PIPE_CHUNK_BYTES];
        let mut filled = 0;
        while filled < chunk.len() {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = sender.send(Err(e));
                    return;
                }
            }
        }
        chunk.truncate(filled);
        let last = filled == 0;
        if sender.send(Ok(chunk)).is_err() || last {
            return;
        }
    }
}

/// The walking side of the pipe.
struct Piped {
    receiver: std::sync::mpsc::Receiver<Chunk>,
    chunk: Vec<u8>,
    at: usize,
    ended: bool,
}

impl Piped {
    fn new(receiver: std::sync::mpsc::Receiver<Chunk>) -> Self {
        Self {
            receiver,
            chunk: Vec::new(),
            at: 0,
            ended: false,
        }
    }
}

impl Read for Piped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.chunk.len() {
                let n = buf.len().min(self.chunk.len() - self.at);
                buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            match self.receiver.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => self.ended = true,
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::other(
                        "the inflating thread stopped before the layer's end",
                    ))
                }
            }
        }
    }
}

/// What becomes of the bytes after a source layer's last entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Copied: the layer is written as a layer of its own.
    Keep,
    /// Left out: more layers' entries follow in the same tar (a squash).
    Drop,
}

/// Walks one decompressed source layer into `tar_out`: entries kept byte for byte,
/// left out or stripped as `changes` says. Returns the source tar's diff_id.
#[allow(clippy::too_many_arguments)]
fn walk_entries<W: Write>(
    decoder: Box<dyn Read + '_>,
    digest: &Digest,
    compression: Compression,
    changes: &HashMap<String, EntryChange>,
    strip_mode: StripMode,
    limits: &LayerLimits,
    blobs: &Path,
    tar_out: &mut HashingWriter<Encoder<W>>,
    end: End,
    removed_bytes: &mut HashMap<usize, u64>,
    stripped: &mut Vec<(String, u64, u64)>,
) -> Result<(Digest, u64), ApplyError> {
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
    let out_io = |e: io::Error| ApplyError::io(blobs, e);
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
    // Extension entries waiting for the entry they describe.
    let mut pending: Vec<Extension> = Vec::new();
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_path: Option<Vec<u8>> = None;
    let mut pax_size: Option<u64> = None;
    let mut raw_entries = archive.entries().map_err(corrupt)?.raw(true);
    while let Some(entry) = raw_entries.next() {
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
        // The header's size, or for an entry after a PAX header its `size` record (as
        // inspect's reader, and Go's, GNU tar's and containerd's, take it).
        let size = entry.size();
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
                let mut size_seen = false;
                for record in tar::PaxExtensions::new(&data) {
                    let record = record.map_err(corrupt)?;
                    match record.key_bytes() {
                        b"path" => pax_path = Some(record.value_bytes().to_vec()),
                        // The first `size` record counts, as in inspect's reader.
                        b"size" if !size_seen => {
                            size_seen = true;
                            pax_size = std::str::from_utf8(record.value_bytes())
                                .ok()
                                .and_then(|v| v.parse().ok());
                        }
                        _ => {}
                    }
                }
                let recognised = header.as_gnu().is_some() || header.as_ustar().is_some();
                if let (Some(size), true) = (pax_size, recognised) {
                    raw_entries.set_raw_next_size(size);
                }
            }
            pending.push(Extension {
                header,
                data,
                pax: kind.is_pax_local_extensions(),
            });
            continue;
        }
        if kind.is_gnu_sparse() && header.as_gnu().is_some_and(|g| g.is_extended()) {
            return Err(ApplyError::NotYet(format!(
                "layer {digest}: a GNU sparse file with extended sparse headers"
            )));
        }
        let pax_sized = pax_size.take();
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
        let pending_bytes: u64 = pending.iter().map(Extension::tar_bytes).sum();
        match changes.get(&path).filter(|_| !global) {
            Some(EntryChange::Remove(suggestion)) => {
                *removed_bytes.entry(*suggestion).or_default() += pending_bytes + block_bytes;
                pending.clear();
                io::copy(&mut entry, &mut io::sink()).map_err(corrupt)?;
                tar_out
                    .skip_original(pending_bytes + block_bytes)
                    .map_err(out_io)?;
                continue;
            }
            // Links carry no data: a hard link to a stripped file gets the
            // stripped bytes, as advise's rebuild has it.
            Some(EntryChange::Strip(suggestion))
                if matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) =>
            {
                let (data, _held) =
                    read_whole(&mut entry, &name, size, limits, digest).map_err(|e| match e {
                        WholeError::Read(e) => corrupt(e),
                        WholeError::Limit(e) => e,
                    })?;
                let held = data.len();
                let new = strip(&data, strip_mode).map_err(|reason| ApplyError::Strip {
                    path: format!("/{path}"),
                    layer: digest.clone(),
                    reason,
                })?;
                drop(data);
                let new_size = new.len() as u64;
                let mut extensions = std::mem::take(&mut pending);
                if pax_sized.is_some() {
                    for extension in extensions.iter_mut().filter(|e| e.pax) {
                        set_pax_size(extension, new_size).map_err(corrupt)?;
                    }
                }
                let mut new_header = header.clone();
                new_header.set_size(new_size);
                new_header.set_cksum();
                // The entry replaces the source's (a spliced layer copies none of
                // the stored blocks around it).
                tar_out
                    .skip_original(pending_bytes + block_bytes)
                    .map_err(out_io)?;
                let mut head = Vec::new();
                for extension in &extensions {
                    extension.write(&mut head).map_err(out_io)?;
                }
                head.extend_from_slice(new_header.as_bytes());
                tar_out.write_new(&head).map_err(out_io)?;
                tar_out.write_new(&new).map_err(out_io)?;
                tar_out
                    .write_new(&[0u8; 512][..padding(new_size)])
                    .map_err(out_io)?;
                let written: u64 = extensions.iter().map(Extension::tar_bytes).sum::<u64>()
                    + 512
                    + new_size
                    + padding(new_size) as u64;
                let before = pending_bytes + block_bytes;
                if written > before {
                    return Err(ApplyError::Strip {
                        path: format!("/{path}"),
                        layer: digest.clone(),
                        reason: format!(
                            "the stripped entry takes {written} tar bytes, more than the {before} it replaces"
                        ),
                    });
                }
                *removed_bytes.entry(*suggestion).or_default() += before - written;
                stripped.push((format!("/{path}"), held as u64, new_size));
                continue;
            }
            Some(EntryChange::Strip(_)) if kind.is_gnu_sparse() => {
                return Err(ApplyError::NotYet(format!(
                    "layer {digest}: stripping {name}, a GNU sparse file"
                )));
            }
            _ => {}
        }
        for extension in pending.drain(..) {
            extension.write(tar_out).map_err(out_io)?;
        }
        tar_out.write_all(header.as_bytes()).map_err(out_io)?;
        let copied = copy(&mut entry, tar_out).map_err(|e| match e {
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
    let mut counting = archive.into_inner();
    match end {
        // The end marker the walk stopped at, then whatever follows it.
        End::Keep => {
            let end_marker = counting.bytes.saturating_sub(walked);
            io::copy(&mut io::repeat(0).take(end_marker), tar_out).map_err(out_io)?;
            copy(&mut counting, tar_out).map_err(|e| match e {
                CopyError::Read(e) => corrupt(e),
                CopyError::Write(e) => out_io(e),
            })?;
        }
        // A layer squashed into the next: its entries go on in the same tar.
        End::Drop => {
            io::copy(&mut counting, &mut io::sink()).map_err(corrupt)?;
        }
    }
    counting.inner.finish().map_err(corrupt)
}

enum WholeError {
    Read(io::Error),
    Limit(ApplyError),
}

/// An entry's data, held whole to strip it: refused past `--max-binary-size` (the
/// limit under which the binary was analysed and its strip priced) before a byte is
/// read, and held under the budget binary analysis holds ELF files in (the file and
/// what strip leaves of it, as advise's rebuild counts them).
fn read_whole(
    entry: &mut impl Read,
    name: &str,
    size: u64,
    limits: &LayerLimits,
    digest: &Digest,
) -> Result<(Vec<u8>, crate::binary::budget::Reservation), WholeError> {
    if size > limits.max_binary_bytes {
        return Err(WholeError::Limit(
            LayerError::Limit {
                digest: digest.clone(),
                what: format!("binary {name} of {size} bytes to strip"),
                limit: limits.max_binary_bytes,
                flag: "--max-binary-size",
            }
            .into(),
        ));
    }
    let held = crate::binary::budget::reserve(
        size.saturating_mul(2),
        limits.max_binary_bytes.saturating_mul(2),
    );
    let mut data = Vec::with_capacity(size as usize);
    entry
        .by_ref()
        .take(size)
        .read_to_end(&mut data)
        .map_err(WholeError::Read)?;
    if data.len() as u64 != size {
        return Err(WholeError::Read(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{name}: {} of {size} bytes", data.len()),
        )));
    }
    Ok((data, held))
}

/// The ELF rewrite advise priced the strip with; a file it cannot handle (or that
/// makes it panic) is an error, never a silent copy.
fn strip(data: &[u8], mode: StripMode) -> Result<Vec<u8>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::binary::stripped(data, mode == StripMode::All)
    }))
    .map_err(|_| "the ELF rewriter failed on this file".to_string())?
}

/// Rewrites the `size` record of a PAX extension entry (every other record kept byte
/// for byte), and its header's size and checksum to match.
fn set_pax_size(extension: &mut Extension, size: u64) -> io::Result<()> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut out = Vec::with_capacity(extension.data.len() + 2);
    let mut rest = extension.data.as_slice();
    while let Some(&first) = rest.first() {
        // Writers may pad the records with NULs; they end the list.
        if first == 0 {
            out.extend_from_slice(rest);
            break;
        }
        let space = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| invalid("a PAX record without a length"))?;
        let length: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|t| t.parse().ok())
            .filter(|n| *n > space && *n <= rest.len())
            .ok_or_else(|| invalid("a PAX record with a bad length"))?;
        let (record, tail) = rest.split_at(length);
        if record[space + 1..].starts_with(b"size=") {
            out.extend_from_slice(&pax_record("size", &size.to_string()));
        } else {
            out.extend_from_slice(record);
        }
        rest = tail;
    }
    extension.header.set_size(out.len() as u64);
    extension.header.set_cksum();
    extension.data = out;
    Ok(())
}

/// `"%d %s=%s\n"`, the length counting its own digits (POSIX pax, "extended header").
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut length = body + 1;
    while length != body + length.to_string().len() {
        length = body + length.to_string().len();
    }
    format!("{length} {key}={value}\n").into_bytes()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pax(records: &[(&str, &str)]) -> Extension {
        let data: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_size(data.len() as u64);
        header.set_cksum();
        Extension {
            header,
            data,
            pax: true,
        }
    }

    fn records(extension: &Extension) -> Vec<(String, String)> {
        tar::PaxExtensions::new(&extension.data)
            .map(|r| {
                let r = r.expect("record");
                (
                    r.key().expect("key").to_string(),
                    r.value().expect("value").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn pax_record_lengths_count_their_own_digits() {
        assert_eq!(pax_record("size", "1"), b"9 size=1\n");
        // 9 bytes besides the length: a 1-digit length would make 10, so 2 digits.
        assert_eq!(pax_record("size", "12"), b"11 size=12\n");
        // 98 besides it: 2 digits would make 100, so 3.
        let record = pax_record("path", &"x".repeat(91));
        assert_eq!(record.len(), 101);
        assert!(record.starts_with(b"101 path=x"));
        assert_eq!(pax_record("path", &"x".repeat(90)).len(), 99);
    }

    #[test]
    fn strip_rewrites_only_the_pax_size_record() {
        let mut extension = pax(&[
            ("mtime", "1234567890.25"),
            ("size", "1000"),
            ("SCHILY.xattr.user.a", "b"),
        ]);
        set_pax_size(&mut extension, 999).expect("rewrite");
        assert_eq!(
            records(&extension),
            [
                ("mtime".to_string(), "1234567890.25".to_string()),
                ("size".to_string(), "999".to_string()),
                ("SCHILY.xattr.user.a".to_string(), "b".to_string()),
            ]
        );
        assert_eq!(
            extension.header.size().expect("size"),
            extension.data.len() as u64
        );
        let mut check = extension.header.clone();
        check.set_cksum();
        assert_eq!(check.as_bytes(), extension.header.as_bytes());
    }

    #[test]
    fn strip_refuses_a_malformed_pax_record() {
        let mut extension = pax(&[]);
        extension.data = b"99 size=1\n".to_vec();
        assert!(set_pax_size(&mut extension, 1).is_err());
        extension.data = b"size=1\n".to_vec();
        assert!(set_pax_size(&mut extension, 1).is_err());
    }

    #[test]
    fn strip_refuses_an_entry_past_the_binary_limit_before_reading_it() {
        let limits = LayerLimits {
            max_binary_bytes: 1024,
            ..LayerLimits::default()
        };
        let digest = Digest::of_bytes(b"layer");
        let mut never = io::repeat(0);
        match read_whole(&mut never, "usr/bin/big", 1 << 40, &limits, &digest) {
            Err(WholeError::Limit(e)) => {
                let text = e.to_string();
                assert!(text.contains("usr/bin/big"), "{text}");
                assert!(text.contains("--max-binary-size"), "{text}");
            }
            _ => panic!("a 1 TiB entry was not refused"),
        }
        let mut short = io::Cursor::new(vec![1u8; 10]);
        assert!(matches!(
            read_whole(&mut short, "usr/bin/cut", 20, &limits, &digest),
            Err(WholeError::Read(_))
        ));
    }

    #[test]
    fn strip_of_a_file_that_is_not_elf_is_an_error() {
        let error = strip(b"#!/bin/sh\necho hi\n", StripMode::All).expect_err("not ELF");
        assert!(!error.is_empty());
    }

    fn small_layer() -> (Vec<u8>, Vec<u8>) {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, body) in [
            ("etc/kept", b"kept\n".repeat(3000)),
            ("tmp/gone", b"gone\n".repeat(5000)),
            ("etc/after", b"after\n".repeat(100)),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, body.as_slice())
                .expect("append");
        }
        let tar = builder.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&tar).expect("gzip");
        (tar, gz.finish().expect("gzip"))
    }

    #[test]
    fn a_rewritten_layer_is_read_back_on_its_way_to_disk() {
        let (tar, blob) = small_layer();
        let dir = tempfile::tempdir().expect("dir");
        let descriptor = LayerDescriptor {
            digest: Digest::of_bytes(&blob),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size: blob.len() as u64,
        };
        let changes = HashMap::from([("tmp/gone".to_string(), EntryChange::Remove(0))]);
        for output in [
            Output::Matched,
            Output::Spliced,
            Output::Recompressed(Compression::Gzip, 1),
            Output::Recompressed(Compression::None, 0),
        ] {
            let rewritten = rewrite_layer(
                blob.as_slice(),
                &descriptor,
                &Digest::of_bytes(&tar),
                &changes,
                StripMode::All,
                &LayerLimits::default(),
                dir.path(),
                output,
            )
            .expect("rewrite");
            let stored = std::fs::read(dir.path().join(rewritten.digest.hex())).expect("blob");
            let scan = rewritten.read_back.expect("read back");
            assert_eq!(
                scan.descriptor.digest,
                Digest::of_bytes(&stored),
                "{output:?}"
            );
            assert_eq!(scan.descriptor.size, stored.len() as u64, "{output:?}");
            assert_eq!(scan.diff_id, rewritten.diff_id, "{output:?}");
            let paths: Vec<&str> = scan.entries.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, ["etc/kept", "etc/after"], "{output:?}");
        }
        // zstd is read back from disk afterwards instead.
        let rewritten = rewrite_layer(
            blob.as_slice(),
            &descriptor,
            &Digest::of_bytes(&tar),
            &changes,
            StripMode::All,
            &LayerLimits::default(),
            dir.path(),
            Output::Recompressed(Compression::Zstd, 3),
        )
        .expect("rewrite");
        assert!(rewritten.read_back.is_none());
    }

    #[test]
    fn a_read_back_that_ends_early_is_an_error_not_a_hang() {
        let (_, blob) = small_layer();
        let label = Digest::of_bytes(&blob);
        let mut read_back = ReadBack::start(
            &label,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &LayerLimits::default(),
        )
        .expect("start");
        read_back.feed(&blob[..blob.len() / 2]);
        assert!(read_back.finish().is_err());
    }
}
