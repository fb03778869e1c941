//! Rebuilding a layer in memory to measure a change: the layer is streamed again
//! (verified as in the first pass), its tar entries re-emitted into one compressing,
//! counting sink per variant ("without these files", "with this binary stripped"), and
//! nothing is stored: only byte counts come out.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::sync::Arc;

use super::gzip_level::{self, GzipLevelMatch};
use super::inflate::PositionedGzDecoder;
use super::segments::{Change, SegmentStats, Segmenter, Shared};
use crate::digest::HashingReader;
use crate::layer::{self, Compression, LayerError};
use crate::source::LayerDescriptor;

use crate::recompress::ZstdProbe;
pub use crate::recompress::{ZstdMeasurement, ZSTD_LEVEL};

/// One version of the layer to measure.
#[derive(Debug, Clone, Default)]
pub struct Variant {
    pub id: String,
    /// Paths (normalised, no leading `/`) left out.
    pub remove: HashSet<String>,
    /// Paths whose contents are replaced.
    pub replace: HashMap<String, Arc<Vec<u8>>>,
    /// ELF files replaced by what strip leaves of them (`RebuildRequest::strip_mode`).
    pub strip: HashSet<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RebuildRequest {
    pub variants: Vec<Variant>,
    pub measure_zstd: bool,
    pub method: Method,
    /// The layer's gzip level when the first read judged it (else the rebuild does).
    pub gzip_level: Option<GzipLevelMatch>,
    /// `strip --strip-all` or `--strip-debug`, for every variant's strips.
    pub strip_mode: super::StripMode,
}

/// How a layer's variants are compressed to measure them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every variant and the original recompressed whole: when the original
    /// re-gzips to its stored size, the savings are exact.
    #[default]
    Full,
    /// Only the stretches around changed entries (see `segments`): measured, at a
    /// cost that follows the change rather than the layer. gzip layers only.
    Segments,
}

#[derive(Debug, Clone)]
pub struct VariantResult {
    pub id: String,
    /// Compressed bytes the variant saves against the rebuilt original.
    pub saved_compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct RebuildResult {
    pub compression: Compression,
    pub original_compressed_bytes: u64,
    pub original_uncompressed_bytes: u64,
    /// The original tar stream recompressed here (gzip layers only, at the matched
    /// level): equal to `original_compressed_bytes` means deltas measured here are exact.
    pub recompressed_original_bytes: Option<u64>,
    /// The gzip level the layer was judged to be written at (gzip layers only).
    pub gzip_level: Option<GzipLevelMatch>,
    pub method: Method,
    /// The original entries re-emitted and recompressed whole (`Method::Full`): the
    /// baseline every variant is compared with, so tar-writer and compressor
    /// differences cancel out.
    pub rebuilt_bytes: Option<u64>,
    pub rebuilt_uncompressed_bytes: u64,
    /// `Method::Segments`: how many stretches were compressed, and how many bytes.
    pub segments: Option<SegmentStats>,
    pub variants: Vec<VariantResult>,
    pub zstd: Option<ZstdMeasurement>,
}

impl RebuildResult {
    pub fn variant(&self, id: &str) -> Option<&VariantResult> {
        self.variants.iter().find(|v| v.id == id)
    }

    /// Compressed bytes a variant saves, against the rebuilt baseline.
    pub fn saved_compressed(&self, id: &str) -> u64 {
        self.variant(id).map_or(0, |v| v.saved_compressed_bytes)
    }

    /// Uncompressed (tar) bytes a variant saves: exact, headers and padding included.
    pub fn saved_uncompressed(&self, id: &str) -> u64 {
        self.variant(id).map_or(0, |v| {
            self.rebuilt_uncompressed_bytes
                .saturating_sub(v.uncompressed_bytes)
        })
    }

    /// The level gzip layers were rebuilt at.
    pub fn gzip_rebuild_level(&self) -> u32 {
        self.gzip_level
            .as_ref()
            .map_or(gzip_level::DEFAULT_LEVEL, |m| m.level)
    }

    /// Whether recompressing the original reproduced its exact size.
    pub fn reproducible(&self) -> bool {
        match self.compression {
            Compression::None => true,
            Compression::Gzip => {
                self.method == Method::Full
                    && self.recompressed_original_bytes == Some(self.original_compressed_bytes)
            }
            Compression::Zstd => false,
        }
    }
}

#[derive(Default)]
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Sink {
    Plain(Counter),
    Gzip(Box<flate2::write::GzEncoder<Counter>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, Counter>>),
}

impl Sink {
    fn new(compression: Compression, gzip_level: u32) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Sink::Plain(Counter::default()),
            Compression::Gzip => Sink::Gzip(Box::new(flate2::write::GzEncoder::new(
                Counter::default(),
                flate2::Compression::new(gzip_level),
            ))),
            Compression::Zstd => Sink::Zstd(Box::new(zstd::stream::write::Encoder::new(
                Counter::default(),
                ZSTD_LEVEL,
            )?)),
        })
    }

    fn finish(self) -> io::Result<u64> {
        Ok(match self {
            Sink::Plain(counter) => counter.0,
            Sink::Gzip(encoder) => encoder.finish()?.0,
            Sink::Zstd(encoder) => encoder.finish()?.0,
        })
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
            Sink::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
            Sink::Zstd(w) => w.flush(),
        }
    }
}

/// Counts uncompressed bytes on their way into a compressing sink (and, measuring by
/// stretches, hands them to the segmenter as output `tap.1`).
struct Counted {
    sink: Sink,
    uncompressed: u64,
    tap: Option<(Shared, usize)>,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.sink.write(buf)?;
        if let Some((segmenter, output)) = &self.tap {
            segmenter.borrow_mut().write(*output, &buf[..n]);
        }
        self.uncompressed += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

impl Counted {
    /// Bytes the segmenter is handed another way ([`Segmenter::aligned_chunk`]).
    fn count(&mut self, bytes: &[u8]) {
        self.uncompressed += bytes.len() as u64;
        if let Sink::Plain(counter) = &mut self.sink {
            counter.0 += bytes.len() as u64;
        }
    }
}

/// Rewritten entries are compared with the original this many bytes at a time: a
/// chunk that differs anywhere counts as changed.
const ALIGNED_CHUNK_BYTES: usize = 4 * 1024;
/// A rewrite's stretch closes inside the file only before at least this many bytes
/// equal to the original's (see [`Segmenter::aligned_chunk`]).
const ALIGNED_CLOSE_RUN_BYTES: usize = 1024 * 1024;

/// Copies every byte the tar reader consumes into the raw sinks.
struct Tee<'a, R> {
    inner: R,
    regzip: Option<&'a mut Sink>,
    zstd: Option<&'a mut ZstdProbe>,
    uncompressed: u64,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let bytes = &buf[..n];
        if let Some(sink) = self.regzip.as_deref_mut() {
            sink.write_all(bytes)?;
        }
        if let Some(probe) = self.zstd.as_deref_mut() {
            probe.write(bytes)?;
        }
        self.uncompressed += n as u64;
        Ok(n)
    }
}

/// Streams `blob` (the layer as stored) once and measures every requested variant.
pub fn rebuild(
    blob: impl Read,
    descriptor: &LayerDescriptor,
    request: &RebuildRequest,
    limits: &layer::LayerLimits,
) -> Result<RebuildResult, LayerError> {
    let max_binary_bytes = limits.max_binary_bytes;
    let digest = &descriptor.digest;
    let compression = layer::compression_of(&descriptor.media_type).ok_or_else(|| {
        LayerError::UnsupportedMediaType {
            digest: digest.clone(),
            media_type: descriptor.media_type.clone(),
        }
    })?;
    let io_error = |e: io::Error| LayerError::Corrupt {
        digest: digest.clone(),
        compression,
        reason: e.to_string(),
    };
    let mut compressed = HashingReader::new(io::BufReader::with_capacity(256 * 1024, blob));
    // The level is judged from bytes read ahead, which then flow into the walk as if
    // never taken out: still one pass, still hashed.
    let mut probe = Vec::new();
    let gzip_match = if request.gzip_level.is_some() {
        request.gzip_level.clone()
    } else if compression == Compression::Gzip {
        (&mut compressed)
            .take(gzip_level::PROBE_COMPRESSED_BYTES as u64)
            .read_to_end(&mut probe)
            .map_err(io_error)?;
        gzip_level::match_level(&probe)
    } else {
        None
    };
    let level = gzip_match
        .as_ref()
        .map_or(gzip_level::DEFAULT_LEVEL, |m| m.level);
    let segmented = request.method == Method::Segments && compression == Compression::Gzip;
    let mut regzip = if compression == Compression::Gzip && !segmented {
        Some(Sink::new(Compression::Gzip, level).map_err(io_error)?)
    } else {
        None
    };
    let mut zstd_probe = if request.measure_zstd {
        Some(ZstdProbe::new(true).map_err(io_error)?)
    } else {
        None
    };
    // Measuring by stretches, the blob is inflated by a decoder that knows where it
    // is in the stored bytes, so removed stretches are priced at what they cost there.
    let stored_position = segmented.then(|| std::rc::Rc::new(std::cell::Cell::new(0u64)));
    let position = || stored_position.as_ref().map_or(0, |p| p.get());
    // Reading (hash, inflate, tar) and writing the variants (the compressors) run on
    // two threads: a layer's rebuild is often the one the others wait for.
    let (written, original_uncompressed) = std::thread::scope(|scope| {
        let (to_writer, from_reader) = std::sync::mpsc::sync_channel(MESSAGES_IN_FLIGHT);
        let writer = std::thread::Builder::new()
            .name("rebuild-write".into())
            .spawn_scoped(scope, move || {
                write_variants(from_reader, request, compression, level, segmented)
            })
            .map_err(io_error)?;
        let send = |message: Message| to_writer.send(message).is_ok();
        let read = (|| -> Result<Option<u64>, LayerError> {
            let stored = io::Cursor::new(&probe).chain(&mut compressed);
            let decoder: Box<dyn Read + '_> = match &stored_position {
                Some(position) => Box::new(PositionedGzDecoder::new(
                    stored,
                    std::rc::Rc::clone(position),
                )),
                None => layer::decoder(stored, compression).map_err(io_error)?,
            };
            let mut tee = Tee {
                inner: decoder,
                regzip: regzip.as_mut(),
                zstd: zstd_probe.as_mut(),
                uncompressed: 0,
            };
            {
                let mut archive = layer::tar_archive(&mut tee, limits);
                let mut chunk = vec![0u8; 64 * 1024];
                for entry in archive.entries().map_err(io_error)? {
                    let mut entry = entry.map_err(io_error)?;
                    let raw_path = crate::text::name_from_bytes(&entry.path_bytes());
                    let path = layer::normalise_path(&raw_path).map_err(|reason| {
                        LayerError::BadEntry {
                            digest: digest.clone(),
                            path: raw_path.clone(),
                            reason: reason.to_string(),
                        }
                    })?;
                    let header = entry.header().clone();
                    let link = entry
                        .link_name_bytes()
                        .map(|l| crate::text::name_from_bytes(&l));
                    let size = entry.size();
                    let kind = header.entry_type();
                    let linked = matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link)
                        && link.is_some();
                    let strips = plans_for(request, &path)
                        .iter()
                        .any(|p| matches!(p, EntryPlan::Strip));
                    let whole = !linked && (strips || kind.is_gnu_sparse());
                    if whole && size > max_binary_bytes {
                        return Err(LayerError::Limit {
                            digest: digest.clone(),
                            what: format!("binary {raw_path} of {size} bytes to strip"),
                            limit: max_binary_bytes,
                            flag: "--max-binary-size",
                        });
                    }
                    let shape = if linked {
                        Shape::Link
                    } else if whole {
                        Shape::Whole
                    } else {
                        Shape::Stream
                    };
                    if !send(Message::Entry(Box::new(EntryMessage {
                        path,
                        raw_path: raw_path.clone(),
                        header,
                        link,
                        size,
                        shape,
                    }))) {
                        return Ok(None);
                    }
                    match shape {
                        Shape::Link => {}
                        Shape::Whole => {
                            // A binary to strip is rewritten whole, in memory: the one
                            // thing buffered, bounded like the binary analysis (the
                            // file and what strip leaves of it).
                            let held = crate::binary::budget::reserve(
                                size.saturating_mul(2),
                                max_binary_bytes.saturating_mul(2),
                            );
                            let mut data = Vec::new();
                            entry.read_to_end(&mut data).map_err(io_error)?;
                            if !send(Message::Whole(data, held)) {
                                return Ok(None);
                            }
                        }
                        Shape::Stream => loop {
                            let n = entry.read(&mut chunk).map_err(io_error)?;
                            if n == 0 {
                                break;
                            }
                            if !send(Message::Data(chunk[..n].to_vec(), position())) {
                                return Ok(None);
                            }
                        },
                    }
                    if !send(Message::End(position())) {
                        return Ok(None);
                    }
                }
            }
            io::copy(&mut tee, &mut io::sink()).map_err(io_error)?;
            let uncompressed = tee.uncompressed;
            Ok(send(Message::Done(position())).then_some(uncompressed))
        })();
        drop(to_writer);
        let written = writer
            .join()
            .map_err(|_| io_error(io::Error::other("the rebuild's writer panicked")))?;
        match read? {
            Some(uncompressed) => Ok((written.map_err(io_error)?, uncompressed)),
            // The writer stopped first: its error says why.
            None => Err(io_error(written.err().unwrap_or_else(|| {
                io::Error::other("the rebuild's writer stopped early")
            }))),
        }
    })?;
    let original_compressed = compressed.bytes_read();
    layer::finish_compressed(compressed, descriptor)?;
    let Written {
        rebuilt_bytes,
        rebuilt_uncompressed_bytes,
        variants,
        segments,
    } = written;
    let recompressed_original_bytes = regzip.map(Sink::finish).transpose().map_err(io_error)?;
    let zstd = zstd_probe
        .map(ZstdProbe::finish)
        .transpose()
        .map_err(io_error)?;
    Ok(RebuildResult {
        compression,
        original_compressed_bytes: original_compressed,
        original_uncompressed_bytes: original_uncompressed,
        recompressed_original_bytes,
        gzip_level: gzip_match,
        method: if segments.is_some() {
            Method::Segments
        } else {
            Method::Full
        },
        rebuilt_bytes: segments.is_none().then_some(rebuilt_bytes),
        rebuilt_uncompressed_bytes,
        segments,
        variants,
        zstd,
    })
}

/// Messages from a rebuild's reader to its writer: what the reader has in memory at
/// once is bounded by this many (chunks of 64 KiB, or one binary held to strip).
const MESSAGES_IN_FLIGHT: usize = 32;

#[derive(Clone, Copy)]
enum Shape {
    Link,
    Whole,
    Stream,
}

struct EntryMessage {
    path: String,
    raw_path: String,
    header: tar::Header,
    link: Option<String>,
    size: u64,
    shape: Shape,
}

/// Positions are stored-blob offsets after the bytes read so far (0 when unknown).
enum Message {
    Entry(Box<EntryMessage>),
    /// A streamed entry's next bytes.
    Data(Vec<u8>, u64),
    /// A whole entry's bytes, with the memory budget they hold.
    Whole(Vec<u8>, crate::binary::budget::Reservation),
    /// The entry's data has been read.
    End(u64),
    /// The layer has been read to its end.
    Done(u64),
}

/// What the writer measured.
struct Written {
    rebuilt_bytes: u64,
    rebuilt_uncompressed_bytes: u64,
    variants: Vec<VariantResult>,
    segments: Option<SegmentStats>,
}

/// The writer's side of a rebuild: every variant's tar, from the entries the reader
/// sends, until it says the layer is done.
fn write_variants(
    messages: std::sync::mpsc::Receiver<Message>,
    request: &RebuildRequest,
    compression: Compression,
    level: u32,
    segmented: bool,
) -> io::Result<Written> {
    let position = segmented.then(|| std::rc::Rc::new(std::cell::Cell::new(0u64)));
    let segmenter = segmented.then(|| {
        std::rc::Rc::new(std::cell::RefCell::new(Segmenter::new(
            level,
            request.variants.len(),
            position.clone(),
        )))
    });
    let at = |offset: u64| {
        if let Some(position) = &position {
            position.set(offset);
        }
    };
    let mut outputs = Outputs::new(
        compression,
        level,
        request.variants.len(),
        segmenter.clone(),
    )?;
    outputs.strip_all = request.strip_mode == super::StripMode::All;
    let mut current: Option<(Box<EntryMessage>, Vec<EntryPlan>, u64)> = None;
    let end = loop {
        let Ok(message) = messages.recv() else {
            return Err(io::Error::other("the layer's read stopped early"));
        };
        match message {
            Message::Entry(entry) => {
                let plans = plans_for(request, &entry.path);
                outputs.begin_entry(&plans);
                let named = Named {
                    header: &entry.header,
                    raw_path: &entry.raw_path,
                    link: entry.link.as_deref(),
                };
                match entry.shape {
                    Shape::Link => outputs.link(&plans, &named)?,
                    Shape::Stream => outputs.begin_stream(&plans, &named, entry.size)?,
                    Shape::Whole => {}
                }
                current = Some((entry, plans, 0));
            }
            Message::Data(bytes, offset) => {
                let Some((_, plans, copied)) = current.as_mut() else {
                    return Err(io::Error::other("data outside an entry"));
                };
                *copied += bytes.len() as u64;
                outputs.write_kept(plans, &bytes)?;
                at(offset);
                if let Some(segmenter) = &outputs.segmenter {
                    segmenter.borrow_mut().between_chunks();
                }
            }
            Message::Whole(bytes, _held) => {
                let Some((entry, plans, _)) = current.as_ref() else {
                    return Err(io::Error::other("data outside an entry"));
                };
                let named = Named {
                    header: &entry.header,
                    raw_path: &entry.raw_path,
                    link: entry.link.as_deref(),
                };
                outputs.whole(plans, &named, &bytes)?;
            }
            Message::End(offset) => {
                let Some((entry, plans, copied)) = current.take() else {
                    return Err(io::Error::other("an entry ended twice"));
                };
                if let Shape::Stream = entry.shape {
                    let named = Named {
                        header: &entry.header,
                        raw_path: &entry.raw_path,
                        link: entry.link.as_deref(),
                    };
                    outputs.end_stream(&plans, &named, entry.size, copied)?;
                }
                at(offset);
                outputs.end_entry();
            }
            Message::Done(offset) => break offset,
        }
    };

    let finish = |builder: tar::Builder<Counted>| -> io::Result<(u64, u64)> {
        let counted = builder.into_inner()?;
        let uncompressed = counted.uncompressed;
        Ok((counted.sink.finish()?, uncompressed))
    };
    let Outputs {
        baseline,
        variants: builders,
        segmenter: tapped,
        ..
    } = outputs;
    drop(tapped);
    let (rebuilt_bytes, rebuilt_uncompressed_bytes) = finish(baseline)?;
    let mut variants = Vec::with_capacity(builders.len());
    for (variant, builder) in request.variants.iter().zip(builders) {
        let (compressed_bytes, uncompressed_bytes) = finish(builder)?;
        variants.push(VariantResult {
            id: variant.id.clone(),
            saved_compressed_bytes: rebuilt_bytes.saturating_sub(compressed_bytes),
            uncompressed_bytes,
        });
    }
    // Every writer has let go of its handle, so the segmenter is the last one.
    let segments = match segmenter.map(std::rc::Rc::try_unwrap) {
        Some(Ok(segmenter)) => {
            let (saved, stats) = segmenter.into_inner().finish(end);
            for (variant, saved) in variants.iter_mut().zip(saved) {
                variant.saved_compressed_bytes = saved.max(0) as u64;
            }
            Some(stats)
        }
        Some(Err(_)) => {
            return Err(io::Error::other(
                "the stretch measurement is still shared after the rebuild",
            ))
        }
        None => None,
    };
    Ok(Written {
        rebuilt_bytes,
        rebuilt_uncompressed_bytes,
        variants,
        segments,
    })
}

/// An entry's header and names, as every output writes them.
struct Named<'a> {
    header: &'a tar::Header,
    raw_path: &'a str,
    link: Option<&'a str>,
}

/// What each variant does with the entry at `path`.
fn plans_for(request: &RebuildRequest, path: &str) -> Vec<EntryPlan> {
    request
        .variants
        .iter()
        .map(|variant| {
            if variant.remove.contains(path) {
                EntryPlan::Leave
            } else if let Some(replacement) = variant.replace.get(path) {
                EntryPlan::Replace(Arc::clone(replacement))
            } else if variant.strip.contains(path) {
                EntryPlan::Strip
            } else {
                EntryPlan::Keep
            }
        })
        .collect()
}

/// The tars being rebuilt: the layer as it is (`baseline`, to measure this
/// compressor against the stored blob) and one per variant.
/// Measuring by stretches, the outputs only count their bytes and hand them to the
/// segmenter, which compresses what differs.
struct Outputs {
    baseline: tar::Builder<Counted>,
    variants: Vec<tar::Builder<Counted>>,
    segmenter: Option<Shared>,
    strip_all: bool,
}

impl Outputs {
    fn new(
        compression: Compression,
        level: u32,
        variants: usize,
        segmenter: Option<Shared>,
    ) -> io::Result<Self> {
        let builder = |output: usize| -> io::Result<tar::Builder<Counted>> {
            Ok(tar::Builder::new(Counted {
                sink: if segmenter.is_some() {
                    Sink::new(Compression::None, level)?
                } else {
                    Sink::new(compression, level)?
                },
                uncompressed: 0,
                tap: segmenter.clone().map(|s| (s, output)),
            }))
        };
        Ok(Self {
            baseline: builder(0)?,
            variants: (1..=variants).map(builder).collect::<io::Result<_>>()?,
            segmenter,
            strip_all: true,
        })
    }

    /// Tells the segmenter what each variant does with the entry about to be written.
    fn begin_entry(&mut self, plans: &[EntryPlan]) {
        if let Some(segmenter) = &self.segmenter {
            let changes: Vec<Change> = plans
                .iter()
                .map(|p| match p {
                    EntryPlan::Keep => Change::Keep,
                    EntryPlan::Leave => Change::Leave,
                    // Every strip of one entry writes the same bytes; a
                    // replacement is known by its buffer.
                    EntryPlan::Strip => Change::Rewrite(0),
                    EntryPlan::Replace(data) => Change::Rewrite(Arc::as_ptr(data) as usize),
                })
                .collect();
            segmenter.borrow_mut().begin_entry(&changes);
        }
    }

    /// Tells the segmenter the entry has been read to its end.
    fn end_entry(&mut self) {
        if let Some(segmenter) = &self.segmenter {
            segmenter.borrow_mut().end_entry();
        }
    }

    /// A link: written by every output that keeps it.
    fn link(&mut self, plans: &[EntryPlan], entry: &Named<'_>) -> io::Result<()> {
        append(
            &mut self.baseline,
            entry.header,
            entry.raw_path,
            entry.link,
            &[],
        )?;
        for (plan, builder) in plans.iter().zip(self.variants.iter_mut()) {
            if !matches!(plan, EntryPlan::Leave) {
                append(builder, entry.header, entry.raw_path, entry.link, &[])?;
            }
        }
        Ok(())
    }

    /// A file held whole (to strip it): each output writes what its plan leaves.
    fn whole(&mut self, plans: &[EntryPlan], entry: &Named<'_>, data: &[u8]) -> io::Result<()> {
        let mut stripped: Option<Option<Vec<u8>>> = None;
        if self.segmenter.is_some() {
            let contents: Vec<Option<&[u8]>> = plans
                .iter()
                .map(|plan| match plan {
                    EntryPlan::Leave => None,
                    EntryPlan::Replace(replacement) => Some(replacement.as_slice()),
                    EntryPlan::Strip => None,
                    EntryPlan::Keep => Some(data),
                })
                .collect();
            if plans.iter().any(|p| matches!(p, EntryPlan::Strip)) {
                stripped = Some(strip(data, self.strip_all));
            }
            let strip = stripped.as_ref().map(|s| s.as_deref().unwrap_or(data));
            let contents: Vec<Option<&[u8]>> = plans
                .iter()
                .zip(contents)
                .map(|(plan, contents)| match plan {
                    EntryPlan::Strip => strip,
                    _ => contents,
                })
                .collect();
            return self.aligned(entry, data, &contents);
        }
        append(
            &mut self.baseline,
            entry.header,
            entry.raw_path,
            entry.link,
            data,
        )?;
        for (plan, builder) in plans.iter().zip(self.variants.iter_mut()) {
            let contents: &[u8] = match plan {
                EntryPlan::Leave => continue,
                EntryPlan::Replace(replacement) => replacement,
                EntryPlan::Strip => stripped
                    .get_or_insert_with(|| strip(data, self.strip_all))
                    .as_deref()
                    .unwrap_or(data),
                EntryPlan::Keep => data,
            };
            append(builder, entry.header, entry.raw_path, entry.link, contents)?;
        }
        Ok(())
    }

    /// Measuring by stretches, an entry rewritten whole: the headers as usual, then
    /// the data offset by offset, every output's bytes beside the original's, so the
    /// segmenter compresses only the ranges a rewrite changes.
    fn aligned(
        &mut self,
        entry: &Named<'_>,
        original: &[u8],
        contents: &[Option<&[u8]>],
    ) -> io::Result<()> {
        let Some(segmenter) = self.segmenter.clone() else {
            return Ok(());
        };
        let mut header = entry.header.clone();
        header.set_size(original.len() as u64);
        begin_entry(&mut self.baseline, &header, entry.raw_path)?;
        for (bytes, builder) in contents.iter().zip(self.variants.iter_mut()) {
            if let Some(bytes) = bytes {
                header.set_size(bytes.len() as u64);
                begin_entry(builder, &header, entry.raw_path)?;
            }
        }
        let longest = contents
            .iter()
            .flatten()
            .map(|b| b.len())
            .chain([original.len()])
            .max()
            .unwrap_or(0);
        let piece = |bytes: &[u8], at: usize| -> std::ops::Range<usize> {
            at.min(bytes.len())..(at + ALIGNED_CHUNK_BYTES).min(bytes.len())
        };
        // Per variant and chunk: how many chunks from there on match the original's.
        let chunks = longest.div_ceil(ALIGNED_CHUNK_BYTES);
        let equal_runs: Vec<Vec<u32>> = contents
            .iter()
            .map(|bytes| {
                let mut runs = vec![0u32; chunks + 1];
                if let Some(bytes) = bytes {
                    for chunk in (0..chunks).rev() {
                        let at = chunk * ALIGNED_CHUNK_BYTES;
                        if bytes[piece(bytes, at)] == original[piece(original, at)] {
                            runs[chunk] = runs[chunk + 1] + 1;
                        }
                    }
                }
                runs
            })
            .collect();
        let mut at = 0;
        while at < longest {
            let chunk = at / ALIGNED_CHUNK_BYTES;
            let closable: Vec<bool> = equal_runs
                .iter()
                .map(|runs| runs[chunk] as usize * ALIGNED_CHUNK_BYTES >= ALIGNED_CLOSE_RUN_BYTES)
                .collect();
            let here = &original[piece(original, at)];
            self.baseline.get_mut().count(here);
            let mut written = Vec::with_capacity(contents.len());
            for (bytes, builder) in contents.iter().zip(self.variants.iter_mut()) {
                let chunk = bytes.map(|b| &b[piece(b, at)]);
                if let Some(chunk) = chunk {
                    builder.get_mut().count(chunk);
                }
                written.push(chunk);
            }
            segmenter
                .borrow_mut()
                .aligned_chunk(here, &written, &closable);
            at += ALIGNED_CHUNK_BYTES;
        }
        let padding = [0u8; 512];
        let pad = |len: usize| &padding[..(512 - len % 512) % 512];
        self.baseline.get_mut().write_all(pad(original.len()))?;
        for (bytes, builder) in contents.iter().zip(self.variants.iter_mut()) {
            if let Some(bytes) = bytes {
                builder.get_mut().write_all(pad(bytes.len()))?;
            }
        }
        Ok(())
    }

    /// Everything else streams through: the header to every output that keeps the
    /// entry, then its bytes chunk by chunk to all of them ([`Outputs::write_kept`]),
    /// then the padding ([`Outputs::end_stream`]).
    fn begin_stream(
        &mut self,
        plans: &[EntryPlan],
        entry: &Named<'_>,
        size: u64,
    ) -> io::Result<()> {
        let mut header = entry.header.clone();
        header.set_size(size);
        begin_entry(&mut self.baseline, &header, entry.raw_path)?;
        for (plan, builder) in plans.iter().zip(self.variants.iter_mut()) {
            match plan {
                EntryPlan::Keep => begin_entry(builder, &header, entry.raw_path)?,
                EntryPlan::Replace(replacement) => {
                    append(builder, &header, entry.raw_path, None, replacement)?
                }
                EntryPlan::Leave | EntryPlan::Strip => {}
            }
        }
        Ok(())
    }

    fn end_stream(
        &mut self,
        plans: &[EntryPlan],
        entry: &Named<'_>,
        size: u64,
        copied: u64,
    ) -> io::Result<()> {
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: {copied} of {size} bytes", entry.raw_path),
            ));
        }
        let padding = [0u8; 512];
        self.write_kept(plans, &padding[..((512 - size % 512) % 512) as usize])
    }

    /// Raw bytes of the entry being streamed, to the baseline and every keeper.
    fn write_kept(&mut self, plans: &[EntryPlan], bytes: &[u8]) -> io::Result<()> {
        self.baseline.get_mut().write_all(bytes)?;
        for (plan, builder) in plans.iter().zip(self.variants.iter_mut()) {
            if matches!(plan, EntryPlan::Keep) {
                builder.get_mut().write_all(bytes)?;
            }
        }
        Ok(())
    }
}

/// `strip --strip-all` (`all`) or `--strip-debug` in memory; a file the rewrite
/// cannot handle stays as it is (its saving then counts as zero rather than as a
/// guess).
fn strip(data: &[u8], all: bool) -> Option<Vec<u8>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::binary::stripped(data, all)
    }))
    .ok()?
    .ok()
}

/// What one variant does with one entry.
enum EntryPlan {
    Keep,
    Leave,
    Replace(Arc<Vec<u8>>),
    Strip,
}

/// A name as the tar had it (`text::name_from_bytes` undone).
fn tar_name(name: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&crate::text::name_to_bytes(
        name,
    )))
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &tar::Header,
    path: &str,
    link: Option<&str>,
    data: &[u8],
) -> io::Result<()> {
    let mut header = header.clone();
    match (header.entry_type(), link) {
        (tar::EntryType::Symlink | tar::EntryType::Link, Some(target)) => {
            builder.append_link(&mut header, tar_name(path), tar_name(target))
        }
        _ => {
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, tar_name(path), data)
        }
    }
}

/// Writes an entry's header (and a GNU long-name entry before it when the name needs
/// one) but none of its data: the caller streams `header.size()` bytes and the
/// padding after it.
fn begin_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &tar::Header,
    path: &str,
) -> io::Result<()> {
    let mut header = header.clone();
    builder.append_data(&mut header, tar_name(path), io::empty())
}
