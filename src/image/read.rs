//! Reading an image: resolve it, run every layer through the pipeline (concurrently,
//! each distinct layer once) and stack the results into the image model.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::ImageAnalysis;
use crate::digest::Digest;
use crate::layer::{self, LayerError, LayerLimits, LayerScan};
use crate::reference::ImageRef;
use crate::registry::RegistryOptions;
use crate::source::{
    BlobReader, Cancel, LayerDescriptor, Platform, ResolvedImage, Source, SourceError,
};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Stream(#[from] crate::source::save_stream::StreamError),
    #[error(
        "{reference}: the manifest lists {layers} layers but the config has {diff_ids} diff_ids"
    )]
    LayerCountMismatch {
        reference: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("{reference}: more than {limit} layers (--max-layers raises the limit)")]
    TooManyLayers { reference: String, limit: usize },
    #[error("internal error: a layer task failed: {0}")]
    Task(String),
}

impl crate::error::Fault for InspectError {
    fn is_bad_input(&self) -> bool {
        !matches!(self, InspectError::Task(_))
    }
}

#[derive(Debug, Clone)]
pub struct InspectOptions {
    pub platform: Platform,
    /// Whether the user named the platform (then an index must have it exactly).
    pub explicit_platform: bool,
    pub registry: RegistryOptions,
    pub limits: LayerLimits,
    pub max_layers: usize,
    /// Layers analysed at once; the CPU-bound part decides, so one per core.
    pub concurrency: usize,
    /// Shared by every image a command reads.
    pub layer_memo: LayerMemo,
    /// What else to measure on the way past (zstd, when advice follows).
    pub extras: layer::ScanExtras,
}

/// Layers already analysed by this process, by blob digest and media type: the images
/// of one command (compare, report, a gate against its baseline) that share base
/// layers read each shared layer once.
#[derive(Debug, Clone, Default)]
pub struct LayerMemo(Arc<Mutex<HashMap<LayerKey, Arc<LayerScan>>>>);

/// A blob digest and the media type it was read as.
type LayerKey = (Digest, String);

impl LayerMemo {
    /// The earlier analysis of this layer, if it was read under the same diff_id.
    fn get(
        &self,
        descriptor: &LayerDescriptor,
        diff_id: Option<&Digest>,
    ) -> Option<Arc<LayerScan>> {
        let memo = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let scan = memo.get(&(descriptor.digest.clone(), descriptor.media_type.clone()))?;
        let same = scan.descriptor.size == descriptor.size
            && diff_id.is_none_or(|expected| expected == &scan.diff_id);
        same.then(|| Arc::clone(scan))
    }

    pub(crate) fn insert(&self, scan: &Arc<LayerScan>) {
        let mut memo = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        memo.insert(
            (
                scan.descriptor.digest.clone(),
                scan.descriptor.media_type.clone(),
            ),
            Arc::clone(scan),
        );
    }
}

impl Default for InspectOptions {
    fn default() -> Self {
        Self {
            platform: Platform::default(),
            explicit_platform: false,
            registry: RegistryOptions::default(),
            limits: LayerLimits::default(),
            max_layers: 1000,
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            layer_memo: LayerMemo::default(),
            extras: layer::ScanExtras::default(),
        }
    }
}

/// Progress callbacks, so the CLI can draw a bar without the library knowing about TTYs.
/// What a long command is doing, for a progress display: phases (reading an image's
/// layers, measuring suggestions), each with the stored bytes it reads, and those
/// bytes as they are read.
pub trait Progress: Send + Sync {
    fn resolved(&self, _image: &ResolvedImage) {}
    fn layer_done(&self, _scan: &LayerScan) {}
    /// A new phase, in words, and the bytes it will read (0 when it reads none).
    fn phase(&self, _what: &str, _total_bytes: u64) {}
    /// Stored bytes of the current phase read since the last call.
    fn advance(&self, _bytes: u64) {}
    /// What the phase is working on now (a layer and what is measured on it).
    fn detail(&self, _what: &str) {}
}

/// `blob`, telling `progress` how many of its bytes have been read.
pub fn counted(blob: BlobReader, progress: Arc<dyn Progress>) -> BlobReader {
    Box::new(CountedReader {
        inner: blob,
        progress,
    })
}

struct CountedReader {
    inner: BlobReader,
    progress: Arc<dyn Progress>,
}

impl std::io::Read for CountedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        if read > 0 {
            self.progress.advance(read as u64);
        }
        Ok(read)
    }
}

pub struct NoProgress;
impl Progress for NoProgress {}

pub async fn inspect(
    image: &ImageRef,
    options: &InspectOptions,
    progress: Arc<dyn Progress>,
) -> Result<ImageAnalysis, InspectError> {
    Ok(inspect_keeping_source(image, options, progress).await?.1)
}

/// As `inspect`, also returning the opened source so that a layer can be read again
/// (advice rebuilds layers to measure changes).
pub async fn inspect_keeping_source(
    image: &ImageRef,
    options: &InspectOptions,
    progress: Arc<dyn Progress>,
) -> Result<(Arc<Source>, ImageAnalysis), InspectError> {
    let source = Arc::new(Source::open(image, &options.registry).await?);
    let streamed = source
        .stream_scan(&crate::source::save_stream::StreamOptions {
            platform: options.platform.clone(),
            explicit_platform: options.explicit_platform,
            limits: options.limits,
            max_blobs: options.max_layers.saturating_mul(2).max(16),
        })
        .await;
    let resolved = match streamed {
        // Read front to back already: the scans go where later lookups find them.
        Some(streamed) => {
            let streamed = streamed?;
            for scan in streamed.scans {
                options.layer_memo.insert(&Arc::new(scan));
            }
            streamed.image
        }
        None => {
            source
                .resolve(&options.platform, options.explicit_platform)
                .await?
        }
    };
    // An explicit platform is a promise about what is analysed: a single-platform
    // image of another platform is refused, not read instead.
    if options.explicit_platform && !options.platform.satisfied_by(&resolved.platform) {
        return Err(crate::source::manifest::no_matching_platform(
            &resolved.reference,
            &options.platform,
            vec![resolved.platform.to_string()],
        )
        .into());
    }
    if resolved.layers.len() > options.max_layers {
        return Err(InspectError::TooManyLayers {
            reference: resolved.reference.clone(),
            limit: options.max_layers,
        });
    }
    if resolved.layers.len() != resolved.config.diff_ids.len() {
        return Err(InspectError::LayerCountMismatch {
            reference: resolved.reference.clone(),
            layers: resolved.layers.len(),
            diff_ids: resolved.config.diff_ids.len(),
        });
    }
    progress.resolved(&resolved);
    let to_read: u64 = {
        let mut distinct = std::collections::HashSet::new();
        resolved
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| distinct.insert(&l.digest))
            .filter(|(index, l)| {
                options
                    .layer_memo
                    .get(l, resolved.config.diff_ids.get(*index))
                    .is_none()
            })
            .map(|(_, l)| l.size)
            .sum()
    };
    progress.phase(
        &format!(
            "reading {}",
            crate::text::escape_control(&resolved.reference)
        ),
        to_read,
    );

    let semaphore = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let cancel = Cancel::default();
    let mut seen = HashMap::new();
    let mut scans: HashMap<usize, Arc<LayerScan>> = HashMap::new();
    // Decompression is timed on one layer's sample, the largest's.
    let largest = resolved
        .layers
        .iter()
        .enumerate()
        .max_by_key(|(index, l)| (l.size, std::cmp::Reverse(*index)))
        .map(|(index, _)| index);
    for (index, descriptor) in resolved.layers.iter().enumerate() {
        if seen.contains_key(&descriptor.digest) {
            continue;
        }
        seen.insert(descriptor.digest.clone(), index);
        let diff_id = resolved.config.diff_ids.get(index);
        if let Some(scan) = options.layer_memo.get(descriptor, diff_id) {
            progress.layer_done(&scan);
            scans.insert(index, scan);
            continue;
        }
        let source = Arc::clone(&source);
        let semaphore = Arc::clone(&semaphore);
        let progress = Arc::clone(&progress);
        let descriptor = descriptor.clone();
        let diff_id = resolved.config.diff_ids.get(index).cloned();
        let limits = options.limits;
        let mut extras = options.extras;
        extras.zstd_timing = Some(index) == largest;
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let _permit = semaphore
                .acquire_owned()
                .await
                .map_err(|e| InspectError::Task(e.to_string()))?;
            if cancel.is_cancelled() {
                return Err(InspectError::Task("cancelled".into()));
            }
            let blob = counted(
                cancel.wrap(source.open_blob(&descriptor).await?),
                Arc::clone(&progress),
            );
            let scan = tokio::task::spawn_blocking(move || {
                layer::scan_layer(blob, &descriptor, diff_id.as_ref(), &limits, extras)
            })
            .await
            .map_err(|e| InspectError::Task(e.to_string()))??;
            progress.layer_done(&scan);
            Ok::<_, InspectError>((index, scan))
        });
    }
    for (index, scan) in crate::source::join_all(tasks, &cancel, InspectError::Task).await? {
        let scan = Arc::new(scan);
        options.layer_memo.insert(&scan);
        scans.insert(index, scan);
    }
    let mut layers = Vec::with_capacity(resolved.layers.len());
    for descriptor in &resolved.layers {
        let first = seen[&descriptor.digest];
        layers.push(Arc::clone(&scans[&first]));
    }
    Ok((source, ImageAnalysis::from_scans(resolved, layers)))
}
