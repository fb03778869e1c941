//! ballast's integration tests, one binary for every area: the crate and its
//! dependencies are linked once instead of once per file, and the harness in
//! `common` (the registries, the engines, the token server) is started once per run.
//! One area alone: `cargo test --test it hostile::`.

mod common;

mod advise;
mod apply;
mod apply_base;
mod apply_metadata;
mod apply_platforms;
mod apply_push;
mod apply_squash;
mod apply_strip;
mod apply_targets;
mod auth;
mod binary_forensics;
mod bombs;
mod compare_cli;
mod cost_arithmetic;
mod cost_cli;
mod diff;
mod engines;
mod errors;
mod faults;
mod gate;
mod hostile;
mod inspect;
mod report_render;
mod transport;
