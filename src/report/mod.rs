//! What commands print: one serialisable model per command, rendered as a table for a
//! terminal, JSON for scripts (with `schema_version`) or Markdown for pull requests.

pub mod inspect;
pub mod markdown;

use clap::ValueEnum;

/// Bumped when a stable JSON field changes meaning or name (adding fields does not).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

pub use markdown::MarkdownTable;
