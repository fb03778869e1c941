//! What a layer's tar would weigh compressed with zstd, measured on the tar as it
//! streams past (in the layer scan when advice is wanted, else in the rebuild), with
//! the decompression time of both on a sample of it.

use std::io::{self, Write};
use std::time::Instant;

use serde::Serialize;

use crate::layer::Compression;

/// zstd level for the what-if: the level `docker buildx --compression zstd` defaults to.
pub const ZSTD_LEVEL: i32 = 3;
/// Bytes of the layer's tar used to time gzip against zstd decompression.
const TIMING_SAMPLE_BYTES: usize = 1024 * 1024;
/// gzip level the timing sample is written at: decompression speed barely depends on
/// it, and this is what image builders use.
const SAMPLE_GZIP_LEVEL: i32 = 6;

#[derive(Debug, Clone, Serialize)]
pub struct ZstdMeasurement {
    pub level: i32,
    pub compressed_bytes: u64,
    /// Seconds to decompress the timing sample, gzip against zstd.
    pub sample_bytes: u64,
    pub gzip_decompress_s: f64,
    pub zstd_decompress_s: f64,
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

/// A counting zstd compressor fed the tar's bytes, keeping the first ones as the
/// timing sample. zstd runs in its multi-threaded mode with one worker: the reader
/// only copies bytes into zstd's jobs while the worker compresses them, so a layer's
/// read and its zstd measurement share the cores. On a 180 MB Debian base that mode
/// took 0.68 s of CPU against 1.0 s streaming single-threaded (whole jobs in
/// stable buffers spare zstd its window copies), and wrote 0.5% less; any worker
/// count writes the same bytes.
pub struct ZstdProbe {
    encoder: zstd::stream::write::Encoder<'static, Counter>,
    /// Whether to time decompression on a sample (one layer of an image is enough).
    timed: bool,
    sample: Vec<u8>,
    /// Bytes gathered for the next call into zstd: the tar reader hands over
    /// 512-byte headers and short files one by one.
    batch: Vec<u8>,
}

/// Bytes handed to zstd at a time.
const BATCH_BYTES: usize = 256 * 1024;
/// zstd's own workers per measurement (see [`ZstdProbe`]).
const ZSTD_WORKERS: u32 = 1;
const ZSTD_JOB_BYTES: u32 = 4 * 1024 * 1024;

/// Keeps the first [`TIMING_SAMPLE_BYTES`] of what passes.
fn keep_sample(sample: &mut Vec<u8>, bytes: &[u8]) {
    if sample.len() < TIMING_SAMPLE_BYTES {
        let take = (TIMING_SAMPLE_BYTES - sample.len()).min(bytes.len());
        sample.extend_from_slice(&bytes[..take]);
    }
}

/// The zstd encoder of every measurement and of every zstd layer this crate writes
/// ([`crate::layer::compress`]), so a measured size is the size of the layer written.
pub fn encoder<W: Write>(
    output: W,
    level: i32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut encoder = zstd::stream::write::Encoder::new(output, level)?;
    encoder.multithread(ZSTD_WORKERS)?;
    // zstd's default jobs (8 MB at level 3) hold about 40 MB per encoder, and two
    // layers are read at once; 4 MB jobs that each start from the full window before
    // them hold about 18 MB and wrote 0.6% less on the Debian base.
    encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_BYTES))?;
    encoder.set_parameter(zstd::stream::raw::CParameter::OverlapSizeLog(9))?;
    Ok(encoder)
}

impl ZstdProbe {
    /// `timed`: time decompression of both formats on a sample of this layer.
    pub fn new(timed: bool) -> io::Result<Self> {
        Ok(Self {
            encoder: encoder(Counter::default(), ZSTD_LEVEL)?,
            timed,
            sample: Vec::new(),
            batch: Vec::with_capacity(BATCH_BYTES),
        })
    }

    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let take = (BATCH_BYTES - self.batch.len()).min(bytes.len());
            self.batch.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.batch.len() == BATCH_BYTES {
                self.hand_over()?;
            }
        }
        Ok(())
    }

    /// The gathered batch, into zstd.
    fn hand_over(&mut self) -> io::Result<()> {
        self.encoder.write_all(&self.batch)?;
        if self.timed {
            keep_sample(&mut self.sample, &self.batch);
        }
        self.batch.clear();
        Ok(())
    }

    /// The measurement, once every byte is compressed.
    pub fn finish(mut self) -> io::Result<ZstdMeasurement> {
        self.hand_over()?;
        let compressed_bytes = self.encoder.finish()?.0;
        measurement(&self.sample, compressed_bytes)
    }
}

/// The measurement of `compressed_bytes`, timed on `sample` when there is one.
fn measurement(sample: &[u8], compressed_bytes: u64) -> io::Result<ZstdMeasurement> {
    if sample.is_empty() {
        return Ok(ZstdMeasurement {
            level: ZSTD_LEVEL,
            compressed_bytes,
            sample_bytes: 0,
            gzip_decompress_s: 0.0,
            zstd_decompress_s: 0.0,
        });
    }
    time_decompression(sample, compressed_bytes)
}

/// Times decompressing the same sample compressed both ways, best of three.
fn time_decompression(sample: &[u8], zstd_bytes: u64) -> io::Result<ZstdMeasurement> {
    let gzip = crate::layer::compress(sample, Compression::Gzip, Some(SAMPLE_GZIP_LEVEL))?;
    let zstd = crate::layer::compress(sample, Compression::Zstd, Some(ZSTD_LEVEL))?;
    let best = |decode: &dyn Fn() -> io::Result<u64>| -> io::Result<f64> {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            decode()?;
            best = best.min(started.elapsed().as_secs_f64());
        }
        Ok(best)
    };
    let gzip_decompress_s = best(&|| {
        io::copy(
            &mut flate2::read::GzDecoder::new(gzip.as_slice()),
            &mut io::sink(),
        )
    })?;
    let zstd_decompress_s = best(&|| {
        io::copy(
            &mut zstd::stream::read::Decoder::new(zstd.as_slice())?,
            &mut io::sink(),
        )
    })?;
    Ok(ZstdMeasurement {
        level: ZSTD_LEVEL,
        compressed_bytes: zstd_bytes,
        sample_bytes: sample.len() as u64,
        gzip_decompress_s,
        zstd_decompress_s,
    })
}
