//! `ballast cost`: what images cost to keep in a registry and to ship to nodes, and how
//! long they take to start on a cold node.
//!
//! Every figure comes from three inputs the user can see and change: a pricing entry
//! ([`pricing`]), a usage profile ([`usage`]) and a platform profile ([`coldstart`]).
//! The arithmetic lives in [`estimate`]; rendering is in `crate::report::cost`.
//!
//! Deduplication follows what registries and nodes do:
//! - a registry stores each distinct blob digest once, however many images or tags
//!   reference it, so the set's storage counts the union of layer digests;
//! - a node that already holds a layer does not fetch it again. The images given together
//!   are assumed to run on the same nodes (`usage.co_located`, default true), so a cold
//!   node fetches each distinct layer of the set once: a second image that shares base
//!   layers with the first only pulls its own layers.
//!
//! Per-image figures are each image on its own (as if it were the only image); the set's
//! figures are deduplicated; "without sharing" figures bill the same bytes as if no
//! layer were shared, and the difference is what sharing saved.

pub mod calibrate;
pub mod coldstart;
mod estimate;
pub mod pricing;
pub mod usage;

use std::path::{Path, PathBuf};

pub use coldstart::{ColdStart, ColdStartParts, Profile, Profiles};
pub use estimate::{
    estimate, Assumptions, CostEstimate, ImageCost, PricingRef, ProfileSummary, SetCost,
};
pub use pricing::{list_pricing, PricingEntry, PricingTable};
pub use usage::Usage;

/// Hours in a billing month, as the AWS and Azure price calculators count them.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// Days in a billing month (730 h / 24).
pub const DAYS_PER_MONTH: f64 = HOURS_PER_MONTH / 24.0;

/// One image's layers, as the cost engine needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSizes {
    pub reference: String,
    /// In manifest order, base first.
    pub layers: Vec<LayerSize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSize {
    /// `sha256:…`: the identity registries and nodes deduplicate by.
    pub digest: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Decides the unpack rate (gzip, zstd or plain tar), as the layer scan found it.
    pub compression: crate::layer::Compression,
}

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML could not be read into the expected shape (syntax, type, missing or
    /// unknown key). `line` and `column` are 1-based; 0 when toml gave no position.
    #[error("{origin}:{line}:{column}: {}{message}", key_prefix(key))]
    Toml {
        origin: String,
        line: usize,
        column: usize,
        key: Option<String>,
        message: String,
    },
    /// The shape is right but a value is not (a gap between tiers, a share above 1).
    #[error("{origin}:{line}: `{key}`: {message}")]
    Invalid {
        origin: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("unknown pricing entry {id:?}; available: {available}")]
    UnknownPricing { id: String, available: String },
    #[error("unknown platform profile {name:?}; available: {available}")]
    UnknownProfile { name: String, available: String },
    #[error("no images to cost")]
    NoImages,
    #[error("{origin}: {message}")]
    Write { origin: String, message: String },
}

impl crate::error::Fault for CostError {
    /// Every cost error comes from what the user gave (files, flags, names), except
    /// a profile that cannot be written.
    fn is_bad_input(&self) -> bool {
        !matches!(self, CostError::Write { .. })
    }
}

fn key_prefix(key: &Option<String>) -> String {
    key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default()
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    (line, column)
}

pub(crate) fn line_of(text: &str, span: &std::ops::Range<usize>) -> usize {
    line_col(text, span.start).0
}

/// Turns a toml error into one line naming the file, line, column and dotted key.
pub(crate) fn toml_error(origin: &str, text: &str, error: toml::de::Error) -> CostError {
    let (line, column) = error
        .span()
        .map_or((0, 0), |span| line_col(text, span.start));
    // toml keeps the dotted key path private but prints it as "in `a.b`" when the error
    // carries no input text; that is the only way to name the key.
    let mut bare = error.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let key = shown.lines().find_map(|l| {
        l.strip_prefix("in `")
            .and_then(|rest| rest.strip_suffix('`'))
            .map(str::to_string)
    });
    let message = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    CostError::Toml {
        origin: origin.to_string(),
        line,
        column,
        key,
        message,
    }
}

pub(crate) fn read_text(path: &Path) -> Result<String, CostError> {
    crate::input::read_text_capped(path, crate::input::CONFIG_LIMIT).map_err(|source| {
        CostError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Rounds money to a millionth of a dollar and seconds to a millisecond in the output,
/// so the JSON shows what a reader recomputes rather than float noise.
pub(crate) fn round_to(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 9), (2, 4));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn toml_errors_name_key_and_line() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            usd: f64,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            price: Inner,
        }
        let text = "[price]\nusd = \"cheap\"\n";
        let error = toml::from_str::<Outer>(text).map(|_| ()).unwrap_err();
        let error = toml_error("test.toml", text, error);
        let shown = error.to_string();
        assert!(shown.starts_with("test.toml:2:"), "{shown}");
        assert!(shown.contains("price.usd"), "{shown}");
    }
}
