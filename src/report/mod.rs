//! What commands print: one serialisable model per command, rendered as a table for a
//! terminal, JSON for scripts (with `schema_version`) or Markdown for pull requests.

pub mod advise;
pub mod apply;
pub mod chart;
pub mod compare;
pub mod cost;
pub mod diff;
pub mod document;
pub mod gate;
pub mod inspect;
pub mod markdown;
#[cfg(test)]
mod render_tests;

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

pub use markdown::MarkdownTable;

/// A command's result in the three formats every result-printing command offers.
pub trait Render {
    fn to_json(&self) -> String;
    fn to_table(&self) -> String;
    fn to_markdown(&self) -> String;
}

macro_rules! render_with_inherent_methods {
    ($($model:ty),* $(,)?) => {$(
        impl Render for $model {
            fn to_json(&self) -> String {
                <$model>::to_json(self)
            }
            fn to_table(&self) -> String {
                <$model>::to_table(self)
            }
            fn to_markdown(&self) -> String {
                <$model>::to_markdown(self)
            }
        }
    )*};
}

render_with_inherent_methods!(
    advise::AdviseReport,
    apply::ApplyReport,
    apply::MultiApplyReport,
    crate::compare::Comparison,
    cost::PricingList,
    crate::cost::CostEstimate,
    diff::DiffReport,
    gate::GateReport,
    inspect::InspectReport,
);

/// `value` rendered in `format`, safe to print (see [`safe`]).
pub fn render(value: &impl Render, format: Format) -> String {
    safe(
        format,
        match format {
            Format::Json => value.to_json(),
            Format::Table => value.to_table(),
            Format::Markdown => value.to_markdown(),
        },
    )
}

/// Output made safe for where it goes: no control character or raw name byte from
/// an image reaches a terminal or a Markdown page unescaped (`crate::text`).
pub fn safe(format: Format, text: String) -> String {
    let escaped = match format {
        Format::Json => crate::text::for_json(&text),
        Format::Table | Format::Markdown => crate::text::for_terminal(&text),
    };
    match escaped {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(escaped) => escaped,
    }
}

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
