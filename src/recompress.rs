//! What a layer's tar would weigh compressed with zstd, measured on the tar as it
//! streams past (in the layer scan when advice is wanted, else in the rebuild), with
//! the decompression time of both on a sample of it.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::layer::Compression;

/// zstd level for the what-if: the level `docker buildx --compression zstd` defaults to.
pub const ZSTD_LEVEL: i32 = 3;
/// Bytes of the layer's tar used to time gzip against zstd decompression.
const TIMING_SAMPLE_BYTES: usize = 2 * 1024 * 1024;
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
/// timing sample. It runs inline, or on a thread of its own a few chunks behind
/// the reader: zstd costs about as much as inflating the layer, and an image's
/// largest layer would otherwise bear both on one core while the others sit idle.
/// A threaded probe goes on after the layer's read ends ([`ZstdProbe::finish_later`]):
/// advice needs its figure last, so the rebuilds run while it compresses.
/// (Threaded everywhere measured slower on the benchmark image, whose six layers
/// keep every core busy: the hand-off costs a copy of every chunk.)
pub struct ZstdProbe {
    compressor: Compressor,
    /// Whether to time decompression on a sample (one layer of an image is enough).
    timed: bool,
    sample: Vec<u8>,
}

enum Compressor {
    Inline(Box<zstd::stream::write::Encoder<'static, Counter>>),
    Thread {
        chunks: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
        worker: Option<std::thread::JoinHandle<io::Result<ZstdMeasurement>>>,
    },
}

/// Chunks in flight between the reader and a compressor thread: what the pipeline
/// holds in memory (a few MB at the readers' chunk sizes).
const CHUNKS_IN_FLIGHT: usize = 16;

/// Keeps the first [`TIMING_SAMPLE_BYTES`] of what passes.
fn keep_sample(sample: &mut Vec<u8>, bytes: &[u8]) {
    if sample.len() < TIMING_SAMPLE_BYTES {
        let take = (TIMING_SAMPLE_BYTES - sample.len()).min(bytes.len());
        sample.extend_from_slice(&bytes[..take]);
    }
}

impl ZstdProbe {
    /// `threaded`: compress on a thread of its own; `timed`: time decompression of
    /// both formats on a sample of this layer.
    pub fn new(threaded: bool, timed: bool) -> io::Result<Self> {
        let mut encoder = zstd::stream::write::Encoder::new(Counter::default(), ZSTD_LEVEL)?;
        let compressor = if threaded {
            let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
            let worker = std::thread::Builder::new()
                .name("zstd-measure".into())
                .spawn(move || -> io::Result<ZstdMeasurement> {
                    let mut sample = Vec::new();
                    for chunk in received {
                        encoder.write_all(&chunk)?;
                        if timed {
                            keep_sample(&mut sample, &chunk);
                        }
                    }
                    let compressed_bytes = encoder.finish()?.0;
                    measurement(&sample, compressed_bytes)
                })?;
            Compressor::Thread {
                chunks: Some(chunks),
                worker: Some(worker),
            }
        } else {
            Compressor::Inline(Box::new(encoder))
        };
        Ok(Self {
            compressor,
            timed,
            sample: Vec::new(),
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match &mut self.compressor {
            Compressor::Inline(encoder) => {
                encoder.write_all(bytes)?;
                if self.timed {
                    keep_sample(&mut self.sample, bytes);
                }
            }
            Compressor::Thread { chunks, .. } => {
                let sent = chunks
                    .as_ref()
                    .is_some_and(|chunks| chunks.send(bytes.to_vec()).is_ok());
                if !sent {
                    // The compressor stopped: its error comes out of `finish`.
                    *chunks = None;
                }
            }
        }
        Ok(())
    }

    /// The measurement, once every byte is compressed.
    pub fn finish(self) -> io::Result<ZstdMeasurement> {
        self.finish_later()?.wait()
    }

    /// The measurement, or for a threaded probe a handle to it: the thread goes on
    /// compressing what it was sent.
    pub fn finish_later(mut self) -> io::Result<PendingZstd> {
        let state = match &mut self.compressor {
            Compressor::Inline(encoder) => {
                let encoder = std::mem::replace(
                    encoder,
                    Box::new(zstd::stream::write::Encoder::new(Counter::default(), 1)?),
                );
                let compressed_bytes = encoder.finish()?.0;
                PendingState::Done(
                    measurement(&self.sample, compressed_bytes).map_err(|e| e.to_string()),
                )
            }
            Compressor::Thread { chunks, worker } => {
                *chunks = None;
                PendingState::Running(
                    worker
                        .take()
                        .ok_or_else(|| io::Error::other("zstd measurement finished twice"))?,
                )
            }
        };
        Ok(PendingZstd(Arc::new(Mutex::new(state))))
    }
}

impl Drop for ZstdProbe {
    fn drop(&mut self) {
        // Abandoned (the layer failed): let the thread run out and end.
        if let Compressor::Thread { chunks, worker } = &mut self.compressor {
            *chunks = None;
            if let Some(worker) = worker.take() {
                let _ = worker.join();
            }
        }
    }
}

/// A zstd measurement that may still be running on its thread; shared by every
/// copy of the layer's scan.
#[derive(Clone)]
pub struct PendingZstd(Arc<Mutex<PendingState>>);

enum PendingState {
    Running(std::thread::JoinHandle<io::Result<ZstdMeasurement>>),
    Done(Result<ZstdMeasurement, String>),
}

impl PendingZstd {
    /// The measurement, waiting for its thread if it is still compressing.
    pub fn wait(&self) -> io::Result<ZstdMeasurement> {
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let PendingState::Running(_) = &*state {
            let running = std::mem::replace(
                &mut *state,
                PendingState::Done(Err("zstd measurement abandoned".into())),
            );
            if let PendingState::Running(worker) = running {
                *state = PendingState::Done(match worker.join() {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err("the zstd measurement thread panicked".into()),
                });
            }
        }
        match &*state {
            PendingState::Done(result) => result.clone().map_err(io::Error::other),
            PendingState::Running(_) => Err(io::Error::other("zstd measurement still running")),
        }
    }
}

impl std::fmt::Debug for PendingZstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*state {
            PendingState::Running(_) => f.write_str("PendingZstd(running)"),
            PendingState::Done(result) => write!(f, "PendingZstd({result:?})"),
        }
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
