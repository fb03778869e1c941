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
    /// ELF files replaced by what `strip --strip-all` leaves of them.
    pub strip: HashSet<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RebuildRequest {
    pub variants: Vec<Variant>,
    pub measure_zstd: bool,
    pub method: Method,
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
    let gzip_match = if compression == Compression::Gzip {
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
        Some(ZstdProbe::new(false, true).map_err(io_error)?)
    } else {
        None
    };
    // Measuring by stretches, the blob is inflated by a decoder that knows where it
    // is in the stored bytes, so removed stretches are priced at what they cost there.
    let stored_position = segmented.then(|| std::rc::Rc::new(std::cell::Cell::new(0u64)));
    let segmenter = segmented.then(|| {
        std::rc::Rc::new(std::cell::RefCell::new(Segmenter::new(
            level,
            request.variants.len(),
            stored_position.clone(),
        )))
    });
    let mut outputs = Outputs::new(
        compression,
        level,
        request.variants.len(),
        segmenter.clone(),
    )
    .map_err(io_error)?;
    let original_uncompressed;
    {
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
                let path =
                    layer::normalise_path(&raw_path).map_err(|reason| LayerError::BadEntry {
                        digest: digest.clone(),
                        path: raw_path.clone(),
                        reason: reason.to_string(),
                    })?;
                let header = entry.header().clone();
                let link = entry
                    .link_name_bytes()
                    .map(|l| crate::text::name_from_bytes(&l));
                let size = entry.size();
                let kind = header.entry_type();
                let plans = plans_for(request, &path);
                outputs.begin_entry(&plans);
                let named = Named {
                    header: &header,
                    raw_path: &raw_path,
                    link: link.as_deref(),
                };
                if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) && link.is_some()
                {
                    outputs.link(&plans, &named).map_err(io_error)?;
                } else if plans.iter().any(|p| matches!(p, EntryPlan::Strip))
                    || kind.is_gnu_sparse()
                {
                    // A binary to strip is rewritten whole, in memory: the one thing
                    // buffered, bounded like the binary analysis.
                    if size > max_binary_bytes {
                        return Err(LayerError::Limit {
                            digest: digest.clone(),
                            what: format!("binary {raw_path} of {size} bytes to strip"),
                            limit: max_binary_bytes,
                            flag: "--max-binary-size",
                        });
                    }
                    // The file and what strip leaves of it.
                    let _held = crate::binary::budget::reserve(
                        size.saturating_mul(2),
                        max_binary_bytes.saturating_mul(2),
                    );
                    let mut data = Vec::new();
                    entry.read_to_end(&mut data).map_err(io_error)?;
                    outputs.whole(&plans, &named, &data).map_err(io_error)?;
                } else {
                    outputs
                        .stream(&plans, &named, &mut entry, size, &mut chunk)
                        .map_err(io_error)?;
                }
                outputs.end_entry();
            }
        }
        io::copy(&mut tee, &mut io::sink()).map_err(io_error)?;
        original_uncompressed = tee.uncompressed;
    }
    let original_compressed = compressed.bytes_read();
    layer::finish_compressed(compressed, descriptor)?;

    let finish = |builder: tar::Builder<Counted>| -> io::Result<(u64, u64)> {
        let counted = builder.into_inner()?;
        let uncompressed = counted.uncompressed;
        Ok((counted.sink.finish()?, uncompressed))
    };
    let Outputs {
        baseline,
        variants: builders,
        segmenter: tapped,
    } = outputs;
    drop(tapped);
    let (rebuilt_bytes, rebuilt_uncompressed_bytes) = finish(baseline).map_err(io_error)?;
    let mut variants = Vec::with_capacity(builders.len());
    for (variant, builder) in request.variants.iter().zip(builders) {
        let (compressed_bytes, uncompressed_bytes) = finish(builder).map_err(io_error)?;
        variants.push(VariantResult {
            id: variant.id.clone(),
            saved_compressed_bytes: rebuilt_bytes.saturating_sub(compressed_bytes),
            uncompressed_bytes,
        });
    }
    // Every writer has let go of its handle, so the segmenter is the last one.
    let segments = match segmenter.map(std::rc::Rc::try_unwrap) {
        Some(Ok(segmenter)) => {
            let end = stored_position.as_ref().map_or(0, |p| p.get());
            let (saved, stats) = segmenter.into_inner().finish(end);
            for (variant, saved) in variants.iter_mut().zip(saved) {
                variant.saved_compressed_bytes = saved.max(0) as u64;
            }
            Some(stats)
        }
        Some(Err(_)) => {
            return Err(io_error(io::Error::other(
                "the stretch measurement is still shared after the rebuild",
            )))
        }
        None => None,
    };
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
        append(
            &mut self.baseline,
            entry.header,
            entry.raw_path,
            entry.link,
            data,
        )?;
        let mut stripped: Option<Option<Vec<u8>>> = None;
        for (plan, builder) in plans.iter().zip(self.variants.iter_mut()) {
            let contents: &[u8] = match plan {
                EntryPlan::Leave => continue,
                EntryPlan::Replace(replacement) => replacement,
                EntryPlan::Strip => stripped
                    .get_or_insert_with(|| strip_all(data))
                    .as_deref()
                    .unwrap_or(data),
                EntryPlan::Keep => data,
            };
            append(builder, entry.header, entry.raw_path, entry.link, contents)?;
        }
        Ok(())
    }

    /// Everything else streams through: the header to every output that keeps the
    /// entry, then its bytes chunk by chunk to all of them, then the padding.
    fn stream(
        &mut self,
        plans: &[EntryPlan],
        entry: &Named<'_>,
        data: &mut impl Read,
        size: u64,
        chunk: &mut [u8],
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
        let mut copied = 0u64;
        loop {
            let n = data.read(chunk)?;
            if n == 0 {
                break;
            }
            copied += n as u64;
            self.write_kept(plans, &chunk[..n])?;
            if let Some(segmenter) = &self.segmenter {
                segmenter.borrow_mut().between_chunks();
            }
        }
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

/// `strip --strip-all` in memory; a file the rewrite cannot handle stays as it is
/// (its saving then counts as zero rather than as a guess).
fn strip_all(data: &[u8]) -> Option<Vec<u8>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::binary::stripped(data, true)
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
