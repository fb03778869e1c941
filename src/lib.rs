//! ballast: finds the dead weight in container images and says what it costs.
//!
//! The crate is split by domain: where an image comes from (`reference`, `source`,
//! `registry`), how a layer is read (`layer`), what the stacked filesystem looks like
//! (`fs`), what the binaries in it are made of (`binary`), how results are shown
//! (`report`) and the command line on top (`cli`).

pub mod advice;
pub mod binary;
pub mod cache;
pub mod category;
pub mod cli;
pub mod compare;
pub mod cost;
pub mod diff;
pub mod digest;
pub mod fs;
pub mod gate;
pub mod input;
pub mod inspect;
pub mod layer;
pub mod reference;
pub mod registry;
pub mod report;
pub mod size;
pub mod source;
pub mod text;
