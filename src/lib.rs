//! ballast: finds the dead weight in container images and says what it costs.
//!
//! One way through the code: **source → layer scan → image model → analyses →
//! renderers**, with the command line on top.
//!
//! - Where an image comes from: `reference`, `registry`, `source` (and `cache`).
//! - How a layer is read: `layer` (one pass: verify, decompress, walk the tar), with
//!   `binary` for the ELF files in it and `category` for what a path is for.
//! - The image model every analysis reads: `image` (`ImageAnalysis`, read by
//!   `image::inspect`), over `fs` (the merged filesystem and its one path resolver).
//! - Analyses: `advice`, `diff`, `compare`, `cost`, `gate`.
//! - Renderers: `report` (JSON, table and Markdown of every analysis).
//! - The command line: `cli` (arguments, settings, one function per command), with
//!   `error::Fault` deciding the exit code.

pub mod advice;
pub mod apply;
pub mod binary;
pub mod cache;
pub mod category;
pub mod cli;
pub mod compare;
pub mod cost;
pub mod diff;
pub mod digest;
pub mod error;
pub mod fs;
pub mod gate;
pub mod image;
pub mod input;
pub mod layer;
pub mod recompress;
pub mod reference;
pub mod registry;
pub mod report;
pub mod size;
pub mod source;
pub mod text;
mod vocabulary;
