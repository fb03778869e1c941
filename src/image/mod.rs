//! The image model: everything ballast knows about one image once its layers are
//! read (`read`): the resolved manifest and config, one scan per layer, and the merged
//! filesystem with its one path resolver (`crate::fs`). Every analysis (advice, diff,
//! compare, cost, gate) reads the image through this model; none reads a renderer's.

mod binaries;
#[cfg(test)]
pub(crate) mod fixture;
mod read;

use std::sync::Arc;

use serde::Serialize;

use crate::fs::FsAnalysis;
use crate::layer::LayerScan;
use crate::source::ResolvedImage;

pub use binaries::{FoundBy, MainProgram, MissingLibrary, VisibleBinary};
pub use read::{
    counted, inspect, inspect_keeping_source, InspectError, InspectOptions, LayerMemo, NoProgress,
    Progress,
};

/// Bumped when a stable JSON field changes meaning or name (adding fields does not).
pub const SCHEMA_VERSION: u32 = 1;

/// Everything ballast knows about one image after reading it.
#[derive(Debug, Clone)]
pub struct ImageAnalysis {
    pub image: ResolvedImage,
    /// One per manifest layer, in order (a layer listed twice appears twice).
    pub layers: Vec<Arc<LayerScan>>,
    pub fs: FsAnalysis,
}

/// Which image this is, as every report names it.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    pub reference: String,
    pub digest: String,
    pub platform: String,
    pub media_type: String,
    pub config_digest: String,
}

impl ImageAnalysis {
    /// The model of an image from its layers' scans, in manifest order: the merged
    /// filesystem is stacked here.
    pub fn from_scans(image: ResolvedImage, layers: Vec<Arc<LayerScan>>) -> Self {
        let refs: Vec<&LayerScan> = layers.iter().map(|l| l.as_ref()).collect();
        let fs = crate::fs::analyse(&refs);
        Self { image, layers, fs }
    }

    pub fn compressed_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.compressed_bytes).sum()
    }

    pub fn uncompressed_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.uncompressed_bytes).sum()
    }

    pub fn info(&self) -> ImageInfo {
        let image = &self.image;
        ImageInfo {
            reference: image.reference.clone(),
            digest: image.manifest_digest.to_string(),
            platform: image.platform.to_string(),
            media_type: image.manifest_media_type.clone(),
            config_digest: image.config_digest.to_string(),
        }
    }

    /// The history's `created_by` of each layer (`None` where the history has none).
    pub fn created_by(&self) -> Vec<Option<String>> {
        self.image.config.created_by_per_layer(self.layers.len())
    }

    /// The sizes the cost model prices.
    pub fn sizes(&self) -> crate::cost::ImageSizes {
        crate::cost::ImageSizes {
            reference: self.image.reference.clone(),
            layers: self
                .layers
                .iter()
                .map(|layer| crate::cost::LayerSize {
                    digest: layer.descriptor.digest.to_string(),
                    compressed_bytes: layer.compressed_bytes,
                    uncompressed_bytes: layer.uncompressed_bytes,
                    compression: layer.compression,
                })
                .collect(),
        }
    }
}
