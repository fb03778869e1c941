//! What commands print: one serialisable model per command, rendered as a table for a
//! terminal, JSON for scripts (with `schema_version`) or Markdown for pull requests.

pub mod advise;
pub mod compare;
pub mod cost;
pub mod diff;
pub mod document;
pub mod gate;
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

/// Pretty JSON with a trailing newline; serialising our own report types cannot fail.
pub fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")) + "\n"
}

/// A terminal table with the given columns right-aligned.
pub fn new_table(header: &[&str], right: &[usize]) -> comfy_table::Table {
    use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for index in right {
        if let Some(column) = table.column_mut(*index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// The first 12 hex digits of a digest, as `docker images` shows them.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// One line of at most `max` characters, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    let single_line = text.replace(['\n', '\t'], " ");
    if single_line.chars().count() <= max {
        single_line
    } else {
        let mut cut: String = single_line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}
