//! The one-pass layer pipeline: blob bytes → sha256 (of the compressed stream, against
//! the descriptor) → decompression with limits → sha256 of the tar stream (the diff_id)
//! → tar walk → one record per entry, and ELF files handed to the binary analyser.
//! Nothing is written to disk and memory stays flat whatever the layer's size.

use std::io::{self, Read};

use crate::advice::gzip_level::GzipLevelMatch;

use crate::binary::{self, BinaryReport, ElfKind};
use crate::digest::{Digest, HashingReader};
use crate::source::LayerDescriptor;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LayerError {
    #[error("layer {digest}: digest mismatch: the blob's bytes hash to {actual}")]
    DigestMismatch { digest: Digest, actual: Digest },
    #[error(
        "layer {digest}: size mismatch: the manifest says {expected} bytes, the blob has {actual}"
    )]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("layer {digest}: diff_id mismatch: the config says {expected}, the uncompressed tar hashes to {actual}")]
    DiffIdMismatch {
        digest: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {digest}: unsupported media type {media_type:?}")]
    UnsupportedMediaType { digest: Digest, media_type: String },
    #[error("layer {digest}: corrupt or truncated {compression} data: {reason}")]
    Corrupt {
        digest: Digest,
        compression: Compression,
        reason: String,
    },
    #[error(
        "layer {digest}: not a valid tar stream (its {compression} data decoded fine): {reason}"
    )]
    BadTar {
        digest: Digest,
        compression: Compression,
        reason: String,
    },
    #[error("layer {digest}: bad tar entry {path:?}: {reason}")]
    BadEntry {
        digest: Digest,
        path: String,
        reason: String,
    },
    #[error("layer {digest}: {what} exceeds the limit of {limit} ({flag} raises it)")]
    Limit {
        digest: Digest,
        what: String,
        limit: u64,
        flag: &'static str,
    },
    #[error("layer {digest}: {what} exceeds the fixed limit of {limit} bytes")]
    FixedLimit {
        digest: Digest,
        what: String,
        limit: u64,
    },
    #[error("layer {digest}: reading the blob failed: {reason}")]
    Read { digest: Digest, reason: String },
}

impl LayerError {
    /// Whether the problem is in the image rather than in getting its bytes.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, LayerError::Read { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// The compression a layer media type declares (OCI and Docker names alike).
pub fn compression_of(media_type: &str) -> Option<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// Compresses a tar stream as a layer blob: the encoder counterpart of the decoding
/// below, for measuring what a layer would weigh in another form. `level` is the gzip
/// level (clamped to 0-9) or the zstd level; `None` takes each library's default (6, 3).
pub fn compress(data: &[u8], compression: Compression, level: Option<i32>) -> io::Result<Vec<u8>> {
    use std::io::Write;
    Ok(match compression {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let level = flate2::Compression::new(level.unwrap_or(6).clamp(0, 9) as u32);
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(data)?;
            encoder.finish()?
        }
        Compression::Zstd => {
            let mut encoder = crate::recompress::encoder(
                Vec::new(),
                level.unwrap_or(crate::recompress::ZSTD_LEVEL),
            )?;
            encoder.write_all(data)?;
            encoder.finish()?
        }
    })
}

/// Guards against hostile layers. The defaults never trip on real images.
#[derive(Debug, Clone, Copy)]
pub struct LayerLimits {
    pub max_uncompressed_bytes: u64,
    /// Uncompressed / compressed, checked while streaming once `RATIO_GRACE_BYTES` are
    /// out. Off by default: a zero-filled layer (a preallocated disk image, a sparse
    /// file) gzips at about 1030:1 and zstd goes far beyond, so no ratio separates
    /// bombs from real layers. What a bomb costs is bounded by the decompressed bytes.
    pub max_ratio: Option<u64>,
    pub max_entries: u64,
    pub max_path_bytes: usize,
    /// ELF files larger than this are listed but not analysed.
    pub max_binary_bytes: u64,
}

impl Default for LayerLimits {
    fn default() -> Self {
        Self {
            max_uncompressed_bytes: 64 * 1024 * 1024 * 1024,
            max_ratio: None,
            max_entries: 2_000_000,
            max_path_bytes: 4096,
            // Analysing a binary means holding it whole; at this size inspect stays
            // under 64 MB whatever the image holds (larger binaries are listed,
            // not analysed; --max-binary-size raises it).
            max_binary_bytes: 48 * 1024 * 1024,
        }
    }
}

const RATIO_GRACE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    /// `.wh.NAME`: `path` is the deleted path.
    Whiteout,
    /// `.wh..wh..opq`: `path` is the directory whose lower contents are hidden.
    OpaqueWhiteout,
    Other,
}

#[derive(Debug, Clone)]
pub struct Entry {
    /// Normalised: relative to the root, no leading `./` or `/`, no trailing `/`.
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
    pub mode: u32,
    pub link_target: Option<String>,
    /// Set for ELF files (executables, shared libraries, objects).
    pub elf: Option<ElfKind>,
}

#[derive(Debug, Clone)]
pub struct LayerScan {
    pub descriptor: LayerDescriptor,
    pub compression: Compression,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub diff_id: Digest,
    pub entries: Vec<Entry>,
    pub binaries: Vec<BinaryReport>,
    /// The tar recompressed with zstd on its way past, when asked for.
    pub zstd: Option<crate::recompress::ZstdMeasurement>,
    /// The gzip level the layer was written at, judged on the way past when advice
    /// follows.
    pub gzip_level: Option<GzipLevelMatch>,
}

/// Measurements taken on the way past, beyond what inspect itself needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanExtras {
    /// Recompress gzip layers with zstd (for advice), saving a second read.
    pub zstd: bool,
    /// ...timing gzip and zstd decompression on a sample (one layer of an image).
    pub zstd_timing: bool,
}

/// Reads one layer to its end, verifying as it goes. `expected_diff_id`, when the config
/// gives one, is checked against the hash of the uncompressed tar.
pub fn scan_layer(
    blob: impl Read,
    descriptor: &LayerDescriptor,
    expected_diff_id: Option<&Digest>,
    limits: &LayerLimits,
    extras: ScanExtras,
) -> Result<LayerScan, LayerError> {
    scan(
        blob,
        descriptor,
        Verify::Digest,
        expected_diff_id,
        limits,
        extras,
    )
}

/// As `scan_layer`, for a blob whose digest is not known until it has been read (a
/// member of a `docker save` stream, which lists its manifest last): the digest is
/// computed, not checked, and the returned scan's descriptor carries it. `label`
/// names the blob in errors; its size is still checked. The caller must compare
/// the computed digest and diff_id with the manifest's once it has it.
pub fn scan_unverified(
    blob: impl Read,
    label: &LayerDescriptor,
    limits: &LayerLimits,
) -> Result<LayerScan, LayerError> {
    scan(
        blob,
        label,
        Verify::Size,
        None,
        limits,
        ScanExtras::default(),
    )
}

/// As `scan_unverified`, for a blob being written as it is read (`apply` reads its
/// output back on the way to disk): neither digest nor size is known yet, both are
/// computed, and the caller compares them, and the diff_id, with what it wrote.
/// `label` gives the media type and names the blob in errors.
pub fn scan_written(
    blob: impl Read,
    label: &LayerDescriptor,
    limits: &LayerLimits,
) -> Result<LayerScan, LayerError> {
    scan(
        blob,
        label,
        Verify::Nothing,
        None,
        limits,
        ScanExtras::default(),
    )
}

/// What a scan checks the blob against.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verify {
    /// The descriptor's digest (and so its size).
    Digest,
    /// Its size; the digest is computed.
    Size,
    /// Nothing: digest and size are computed.
    Nothing,
}

fn scan(
    blob: impl Read,
    descriptor: &LayerDescriptor,
    verify: Verify,
    expected_diff_id: Option<&Digest>,
    limits: &LayerLimits,
    extras: ScanExtras,
) -> Result<LayerScan, LayerError> {
    let digest = &descriptor.digest;
    let compression =
        compression_of(&descriptor.media_type).ok_or_else(|| LayerError::UnsupportedMediaType {
            digest: digest.clone(),
            media_type: descriptor.media_type.clone(),
        })?;
    let compressed_so_far = std::rc::Rc::new(std::cell::Cell::new(0u64));
    // Advice rebuilds gzip layers at the level they were written at: judged here, on
    // a thread of its own, from the first stored bytes as they pass, so the rebuild
    // (which the image's advice waits for) need not.
    let level_probe = (extras.zstd && compression == Compression::Gzip)
        .then(|| std::rc::Rc::new(std::cell::RefCell::new(LevelProbe::default())));
    let counted = CountingReader {
        inner: io::BufReader::with_capacity(256 * 1024, blob),
        count: std::rc::Rc::clone(&compressed_so_far),
        level_probe: level_probe.clone(),
    };
    // A blob of a stream read front to back (`verify_digest` false) has the layer
    // pipeline to itself: its hash goes to the other core.
    let verify_digest = verify == Verify::Digest;
    let mut compressed = if verify_digest {
        HashingReader::new(counted)
    } else {
        HashingReader::new_background(counted)
    };
    let mut zstd_probe = if extras.zstd && compression == Compression::Gzip {
        Some(
            crate::recompress::ZstdProbe::new(extras.zstd_timing)
                .map_err(|e| corrupt(digest, compression, &e))?,
        )
    } else {
        None
    };
    let walk_result = {
        let decoder =
            decoder(&mut compressed, compression).map_err(|e| corrupt(digest, compression, &e))?;
        let limited = LimitedReader {
            inner: DecoderErrors(decoder),
            read: 0,
            limit: limits.max_uncompressed_bytes,
            max_ratio: limits.max_ratio,
            compressed: compressed_so_far,
        };
        let limited = ZstdTee {
            inner: limited,
            probe: zstd_probe.as_mut(),
        };
        let mut uncompressed = if compression == Compression::None {
            HashingReader::counting_only(limited)
        } else {
            HashingReader::new(limited)
        };
        let walk = walk_tar(&mut uncompressed, digest, limits);
        match walk {
            Ok(entries) => {
                // Past the tar end marker there may be padding, and the compressed
                // stream's own trailer: both belong to the digests.
                match uncompressed.finish_optional() {
                    Ok((diff_id, uncompressed_bytes)) => Ok((entries, diff_id, uncompressed_bytes)),
                    Err(e) => Err(e),
                }
            }
            Err(WalkError::Io(e)) => Err(e),
            Err(WalkError::Layer(e)) => return Err(*e),
        }
    };
    // Whatever went wrong while decompressing, a digest mismatch explains it best:
    // read the rest of the blob and compare before reporting a decompression error.
    let (entries, diff_id, uncompressed_bytes) = match walk_result {
        Ok(result) => result,
        Err(io_error) => {
            if let Some(limit) = limit_error(&io_error, digest, limits) {
                return Err(limit);
            }
            if verify_digest {
                finish_compressed(compressed, descriptor)?;
            }
            return Err(classify_io(io_error, digest, compression));
        }
    };
    let compressed_bytes = compressed.bytes_read();
    let mut descriptor = descriptor.clone();
    if verify_digest {
        finish_compressed(compressed, &descriptor)?;
    } else {
        let (actual, bytes) = compressed.finish().map_err(|e| LayerError::Read {
            digest: descriptor.digest.clone(),
            reason: e.to_string(),
        })?;
        if verify == Verify::Size && bytes != descriptor.size {
            return Err(LayerError::SizeMismatch {
                digest: descriptor.digest.clone(),
                expected: descriptor.size,
                actual: bytes,
            });
        }
        descriptor.digest = actual;
        descriptor.size = bytes;
    }
    let digest = &descriptor.digest;
    // An uncompressed layer's tar is its blob: same bytes, same digest.
    let diff_id = diff_id.unwrap_or_else(|| descriptor.digest.clone());
    if let Some(expected) = expected_diff_id {
        if expected != &diff_id {
            return Err(LayerError::DiffIdMismatch {
                digest: digest.clone(),
                expected: expected.clone(),
                actual: diff_id,
            });
        }
    }
    let (entries, binaries) = entries;
    let zstd = zstd_probe
        .map(crate::recompress::ZstdProbe::finish)
        .transpose()
        .map_err(|e| corrupt(digest, compression, &e))?;
    let gzip_level = level_probe.and_then(|probe| probe.take().finish());
    Ok(LayerScan {
        descriptor,
        compression,
        compressed_bytes,
        uncompressed_bytes,
        diff_id,
        entries,
        binaries,
        zstd,
        gzip_level,
    })
}

/// The first [`crate::advice::gzip_level::PROBE_COMPRESSED_BYTES`] of a gzip blob,
/// then their level match, worked out on a thread while the layer is read.
#[derive(Default)]
struct LevelProbe {
    head: Vec<u8>,
    matching: Option<std::thread::JoinHandle<Option<GzipLevelMatch>>>,
}

impl LevelProbe {
    fn see(&mut self, bytes: &[u8]) {
        let limit = crate::advice::gzip_level::PROBE_COMPRESSED_BYTES;
        if self.matching.is_some() || self.head.len() >= limit {
            return;
        }
        let take = (limit - self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..take]);
        if self.head.len() == limit {
            let head = std::mem::take(&mut self.head);
            // Without a thread, the match is made at the end, inline.
            self.matching = std::thread::Builder::new()
                .name("gzip-level".into())
                .spawn(move || crate::advice::gzip_level::match_level(&head))
                .ok();
        }
    }

    fn finish(self) -> Option<GzipLevelMatch> {
        match self.matching {
            Some(matching) => matching.join().ok().flatten(),
            None => crate::advice::gzip_level::match_level(&self.head),
        }
    }
}

/// The decompressing reader for a layer's bytes.
pub fn decoder<'a>(
    compressed: impl Read + 'a,
    compression: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(compressed),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(compressed)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(
            io::BufReader::new(compressed),
        )?),
    })
}

pub(crate) fn finish_compressed<R: Read>(
    compressed: HashingReader<R>,
    descriptor: &LayerDescriptor,
) -> Result<(), LayerError> {
    let digest = &descriptor.digest;
    let (actual, bytes) = compressed.finish().map_err(|e| LayerError::Read {
        digest: digest.clone(),
        reason: e.to_string(),
    })?;
    if &actual != digest {
        return Err(LayerError::DigestMismatch {
            digest: digest.clone(),
            actual,
        });
    }
    if bytes != descriptor.size {
        return Err(LayerError::SizeMismatch {
            digest: digest.clone(),
            expected: descriptor.size,
            actual: bytes,
        });
    }
    Ok(())
}

fn corrupt(digest: &Digest, compression: Compression, error: &dyn std::fmt::Display) -> LayerError {
    LayerError::Corrupt {
        digest: digest.clone(),
        compression,
        reason: error.to_string(),
    }
}

/// Marker carried inside an `io::Error` when a streaming limit trips.
#[derive(Debug)]
enum LimitTripped {
    Size,
    Ratio(u64),
}

impl std::fmt::Display for LimitTripped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompression limit reached")
    }
}

impl std::error::Error for LimitTripped {}

fn limit_error(error: &io::Error, digest: &Digest, limits: &LayerLimits) -> Option<LayerError> {
    let inner = error.get_ref()?;
    if let Some(extension) = inner.downcast_ref::<tar::ExtensionTooLarge>() {
        return Some(if extension.kind == "PAX extended header" {
            LayerError::FixedLimit {
                digest: digest.clone(),
                what: format!("a PAX extended header of {} bytes", extension.size),
                limit: extension.limit,
            }
        } else {
            LayerError::Limit {
                digest: digest.clone(),
                what: format!("path length {} ({})", extension.size, extension.kind),
                limit: limits.max_path_bytes as u64,
                flag: "--max-path-length",
            }
        });
    }
    Some(match inner.downcast_ref::<LimitTripped>()? {
        LimitTripped::Size => LayerError::Limit {
            digest: digest.clone(),
            what: "decompressed size".into(),
            limit: limits.max_uncompressed_bytes,
            flag: "--max-layer-size",
        },
        LimitTripped::Ratio(ratio) => LayerError::Limit {
            digest: digest.clone(),
            what: format!("decompression ratio {ratio}:1"),
            limit: limits.max_ratio.unwrap_or(0),
            flag: "--max-ratio",
        },
    })
}

fn classify_io(error: io::Error, digest: &Digest, compression: Compression) -> LayerError {
    match error.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::Other => {
            // `Other` here is how the decoders and tar report format errors; a failed
            // network read arrives as a digest/size mismatch or a Read error instead.
            // An error the decoder raised is the compression's; anything else the
            // tar reader found in data that decoded fine.
            let decoder = error
                .get_ref()
                .and_then(|e| e.downcast_ref::<DecodeFailure>())
                .map(|failure| failure.0.clone());
            let reason = if error.kind() == io::ErrorKind::UnexpectedEof {
                "unexpected end of data".to_string()
            } else {
                decoder.clone().unwrap_or_else(|| error.to_string())
            };
            if decoder.is_some() && compression != Compression::None {
                corrupt(digest, compression, &reason)
            } else {
                LayerError::BadTar {
                    digest: digest.clone(),
                    compression,
                    reason,
                }
            }
        }
        _ => LayerError::Read {
            digest: digest.clone(),
            reason: error.to_string(),
        },
    }
}

/// An error the decompressor raised, so it is told apart from the tar reader's.
#[derive(Debug)]
struct DecodeFailure(String);

impl std::fmt::Display for DecodeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeFailure {}

struct DecoderErrors<R>(R);

impl<R: Read> Read for DecoderErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            let kind = e.kind();
            io::Error::new(kind, DecodeFailure(e.to_string()))
        })
    }
}

/// Stops decompression the moment a limit is passed, so a bomb costs at most the
/// limit's worth of work, never the whole stream's.
struct LimitedReader<R> {
    inner: R,
    read: u64,
    limit: u64,
    max_ratio: Option<u64>,
    /// Compressed bytes consumed so far (counted beneath the decoder).
    compressed: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(LimitTripped::Size));
        }
        if let Some(max_ratio) = self.max_ratio {
            if self.read > RATIO_GRACE_BYTES {
                let ratio = self.read / self.compressed.get().max(1);
                if ratio > max_ratio {
                    return Err(io::Error::other(LimitTripped::Ratio(ratio)));
                }
            }
        }
        Ok(n)
    }
}

/// Hands the tar's bytes to the zstd measurement as they are read.
struct ZstdTee<'a, R> {
    inner: R,
    probe: Option<&'a mut crate::recompress::ZstdProbe>,
}

impl<R: Read> Read for ZstdTee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(probe) = self.probe.as_deref_mut() {
            probe.write(&buf[..n])?;
        }
        Ok(n)
    }
}

struct CountingReader<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
    level_probe: Option<std::rc::Rc<std::cell::RefCell<LevelProbe>>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        if let Some(probe) = &self.level_probe {
            probe.borrow_mut().see(&buf[..n]);
        }
        Ok(n)
    }
}

enum WalkError {
    Io(io::Error),
    Layer(Box<LayerError>),
}

impl From<io::Error> for WalkError {
    fn from(error: io::Error) -> Self {
        WalkError::Io(error)
    }
}

type Walked = (Vec<Entry>, Vec<BinaryReport>);

fn walk_tar(
    reader: &mut impl Read,
    digest: &Digest,
    limits: &LayerLimits,
) -> Result<Walked, WalkError> {
    let bad = |path: &str, reason: &str| {
        WalkError::Layer(Box::new(LayerError::BadEntry {
            digest: digest.clone(),
            path: path.to_string(),
            reason: reason.to_string(),
        }))
    };
    let mut archive = tar_archive(reader, limits);
    let mut entries = Vec::new();
    let mut binaries = Vec::new();
    let mut head = [0u8; 64];
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entries.len() as u64 >= limits.max_entries {
            return Err(WalkError::Layer(Box::new(LayerError::Limit {
                digest: digest.clone(),
                what: "number of tar entries".into(),
                limit: limits.max_entries,
                flag: "--max-entries",
            })));
        }
        let raw_path = entry.path_bytes().into_owned();
        if raw_path.len() > limits.max_path_bytes {
            return Err(WalkError::Layer(Box::new(LayerError::Limit {
                digest: digest.clone(),
                what: format!("path length {}", raw_path.len()),
                limit: limits.max_path_bytes as u64,
                flag: "--max-path-length",
            })));
        }
        // Names are bytes: kept exactly (two names that differ in an invalid byte stay
        // two files), escaped only when shown.
        let raw_path = crate::text::name_from_bytes(&raw_path);
        let path = normalise_path(&raw_path).map_err(|reason| bad(&raw_path, reason))?;
        let header = entry.header();
        let mode = header.mode().unwrap_or(0);
        let entry_type = header.entry_type();
        let link_target = entry
            .link_name_bytes()
            .map(|target| crate::text::name_from_bytes(&target));
        let size = entry.size();
        // A size past the layer's limit can never be read in full: refused now, not
        // after decompressing up to the limit.
        if size > limits.max_uncompressed_bytes {
            return Err(WalkError::Layer(Box::new(LayerError::Limit {
                digest: digest.clone(),
                what: format!(
                    "decompressed size (entry {} claims {size} bytes)",
                    crate::text::escape_control(&path)
                ),
                limit: limits.max_uncompressed_bytes,
                flag: "--max-layer-size",
            })));
        }
        let (name_dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (Some(dir), name),
            None => (None, path.as_str()),
        };
        let joined = |rest: &str| match name_dir {
            Some(dir) => format!("{dir}/{rest}"),
            None => rest.to_string(),
        };
        let (path, kind) = if name == ".wh..wh..opq" {
            (
                name_dir.unwrap_or("").to_string(),
                EntryKind::OpaqueWhiteout,
            )
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden.is_empty() {
                return Err(bad(&raw_path, "whiteout names nothing"));
            }
            (joined(hidden), EntryKind::Whiteout)
        } else {
            let kind = match entry_type {
                tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => EntryKind::Symlink,
                tar::EntryType::Link => EntryKind::Hardlink,
                _ => EntryKind::Other,
            };
            (path, kind)
        };
        if kind == EntryKind::Hardlink {
            if let Some(target) = &link_target {
                normalise_path(target).map_err(|reason| bad(target, reason))?;
            }
        }
        let mut elf = None;
        if kind == EntryKind::File && size >= 64 {
            entry.read_exact(&mut head)?;
            if let Some(elf_kind) = binary::elf_kind(&head) {
                elf = Some(elf_kind);
                let report = if size <= limits.max_binary_bytes {
                    let _held = binary::budget::reserve(size, limits.max_binary_bytes);
                    let mut bytes = Vec::with_capacity(size as usize);
                    bytes.extend_from_slice(&head);
                    entry.read_to_end(&mut bytes)?;
                    binary::analyze(&path, &bytes)
                } else {
                    BinaryReport::skipped(&path, size, &format!(
                        "larger than the binary analysis limit of {} bytes (--max-binary-size raises it)",
                        limits.max_binary_bytes
                    ))
                };
                binaries.push(report);
            }
        }
        entries.push(Entry {
            path,
            kind,
            size: if kind == EntryKind::File { size } else { 0 },
            mode,
            link_target,
            elf,
        });
    }
    Ok((entries, binaries))
}

/// The most a PAX extended header may hold: paths are bounded by
/// `--max-path-length`, and the other records real layers carry (xattrs, SELinux
/// labels, times) are far smaller.
pub const MAX_PAX_HEADER_BYTES: u64 = 1024 * 1024;

/// A tar reader that refuses extension entries larger than a path may be (GNU long
/// names) or than `MAX_PAX_HEADER_BYTES` (PAX headers) before reading them: the
/// tar crate buffers them whole.
pub fn tar_archive<R: Read>(reader: R, limits: &LayerLimits) -> tar::Archive<R> {
    let mut archive = tar::Archive::new(reader);
    // The name plus its NUL terminator.
    archive.set_max_long_name_size(limits.max_path_bytes as u64 + 1);
    archive.set_max_pax_extensions_size(MAX_PAX_HEADER_BYTES);
    archive
}

/// Tar paths as layers write them (`./usr/bin/x`, `usr/bin/`, `/usr/bin/x`,
/// `usr/lib/../bin/x`) to `usr/bin/x`, as containerd and docker resolve them: `..` is
/// resolved within the name and a leading `/` means the layer's root. Only a name
/// that climbs above the root is refused.
pub fn normalise_path(raw: &str) -> Result<String, &'static str> {
    if raw.contains('\0') {
        return Err("NUL in path");
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("path escapes the layer root with '..'");
                }
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_paths() {
        assert_eq!(
            normalise_path("./usr/bin/").ok(),
            Some("usr/bin".to_string())
        );
        assert_eq!(normalise_path("./").ok(), Some(String::new()));
        assert_eq!(normalise_path("a/b/../c").ok(), Some("a/c".to_string()));
        assert_eq!(
            normalise_path("/etc/passwd").ok(),
            Some("etc/passwd".to_string())
        );
        assert!(normalise_path("a/../../etc").is_err());
        assert!(normalise_path("/../etc").is_err());
    }

    #[test]
    fn media_types() {
        assert_eq!(
            compression_of("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            compression_of("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(compression_of("application/json"), None);
    }
}
