//! The `diff` report.

use std::fmt::Write as _;

use super::markdown::{code, code as code_span, text};
use super::{new_table, MarkdownTable};
use crate::binary::attribution::summary::{AttributionDiff, MoreChanges};
use crate::binary::attribution::Unit;
use crate::diff::LayerChangeKind;
use crate::diff::{ImageDiff, Totals};
use crate::image::SCHEMA_VERSION;
use crate::size::{human, human_delta};

#[derive(Debug, Clone, serde::Serialize)]
pub struct DiffReport {
    pub schema_version: u32,
    #[serde(flatten)]
    pub diff: ImageDiff,
}

fn totals_line(t: &Totals) -> String {
    format!(
        "{} → {} ({}, {:+.2}%)",
        human(t.before),
        human(t.after),
        human_delta(t.delta),
        t.percent
    )
}

impl DiffReport {
    pub fn new(diff: ImageDiff, top: usize) -> Self {
        let mut diff = diff;
        diff.files.truncate(top);
        for code in diff.binaries.iter_mut().filter_map(|b| b.code.as_mut()) {
            code.truncate(top);
        }
        Self {
            schema_version: SCHEMA_VERSION,
            diff,
        }
    }

    pub fn to_json(&self) -> String {
        super::json(self)
    }

    pub fn to_table(&self) -> String {
        let d = &self.diff;
        let mut out = String::new();
        let _ = writeln!(out, "{} → {}", d.base, d.new);
        let _ = writeln!(out, "compressed    {}", totals_line(&d.compressed));
        let _ = writeln!(out, "uncompressed  {}", totals_line(&d.uncompressed));
        let _ = writeln!(out, "visible files {}", totals_line(&d.visible_files));
        let _ = writeln!(out, "hidden bytes  {}\n", totals_line(&d.wasted));
        let mut layers = new_table(
            &[
                "change",
                "digest",
                "compressed",
                "base #",
                "new #",
                "created by",
            ],
            &[2, 3, 4],
        );
        for layer in d
            .layers
            .iter()
            .filter(|l| l.change != LayerChangeKind::Shared)
        {
            layers.add_row(vec![
                layer.change_label(),
                layer
                    .digest
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect(),
                human(layer.compressed_bytes),
                layer.base_index.map_or("-".into(), |i| i.to_string()),
                layer.new_index.map_or("-".into(), |i| i.to_string()),
                layer
                    .created_by
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(60)
                    .collect(),
            ]);
        }
        let shared = d
            .layers
            .iter()
            .filter(|l| l.change == LayerChangeKind::Shared)
            .count();
        let _ = writeln!(out, "Layers ({shared} shared)\n{layers}\n");
        let mut files = new_table(&["change", "path", "before", "after", "delta"], &[2, 3, 4]);
        for file in &d.files {
            files.add_row(vec![
                file.change.to_string(),
                file.path.clone(),
                human(file.before),
                human(file.after),
                human_delta(file.delta),
            ]);
        }
        let _ = writeln!(out, "Files, by impact\n{files}");
        if !d.binaries.is_empty() {
            let mut binaries = new_table(&["binary", "before", "after", "what changed"], &[1, 2]);
            for binary in &d.binaries {
                binaries.add_row(vec![
                    binary.path.clone(),
                    human(binary.before),
                    human(binary.after),
                    binary.changes.join("; "),
                ]);
            }
            let _ = writeln!(out, "\nBinaries\n{binaries}");
        }
        for (binary, code) in d
            .binaries
            .iter()
            .filter_map(|b| Some((b, b.code.as_ref()?)))
        {
            let mut table = new_table(
                &[
                    "change",
                    unit_name(code.unit),
                    "version",
                    "before",
                    "after",
                    "delta",
                ],
                &[3, 4, 5],
            );
            for item in &code.items {
                table.add_row(vec![
                    item.change.to_string(),
                    item.name.clone(),
                    item.version_label(),
                    human(item.bytes_before),
                    human(item.bytes_after),
                    human_delta(item.delta),
                ]);
            }
            if let Some(more) = &code.more {
                table.add_row(more_row(more));
            }
            let _ = writeln!(out, "\n{}\n{table}", code_title(&binary.path, code));
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let d = &self.diff;
        let mut out = String::new();
        let _ = writeln!(out, "## {} → {}\n", code(&d.base), code(&d.new));
        let mut totals = MarkdownTable::new(&["", ">before", ">after", ">delta", ">%"]);
        for (label, t) in [
            ("compressed", &d.compressed),
            ("uncompressed", &d.uncompressed),
            ("visible files", &d.visible_files),
            ("hidden bytes", &d.wasted),
        ] {
            totals.row(vec![
                label.into(),
                human(t.before),
                human(t.after),
                human_delta(t.delta),
                format!("{:+.2}", t.percent),
            ]);
        }
        let _ = writeln!(out, "{}", totals.render());
        let mut layers = MarkdownTable::new(&["change", "digest", ">compressed", "created by"]);
        for layer in d
            .layers
            .iter()
            .filter(|l| l.change != LayerChangeKind::Shared)
        {
            layers.row(vec![
                layer.change_label(),
                code(
                    &layer
                        .digest
                        .trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect::<String>(),
                ),
                human(layer.compressed_bytes),
                text(&layer.created_by.clone().unwrap_or_default()),
            ]);
        }
        let _ = writeln!(out, "### Layers\n\n{}", layers.render());
        let mut files = MarkdownTable::new(&["change", "path", ">before", ">after", ">delta"]);
        for file in &d.files {
            files.row(vec![
                file.change.to_string(),
                code(&file.path),
                human(file.before),
                human(file.after),
                human_delta(file.delta),
            ]);
        }
        let _ = writeln!(out, "### Files, by impact\n\n{}", files.render());
        if !d.binaries.is_empty() {
            let mut binaries = MarkdownTable::new(&["binary", ">before", ">after", "what changed"]);
            for binary in &d.binaries {
                binaries.row(vec![
                    code(&binary.path),
                    human(binary.before),
                    human(binary.after),
                    text(&binary.changes.join("; ")),
                ]);
            }
            let _ = writeln!(out, "### Binaries\n\n{}", binaries.render());
        }
        for (binary, code) in d
            .binaries
            .iter()
            .filter_map(|b| Some((b, b.code.as_ref()?)))
        {
            let mut table = MarkdownTable::new(&[
                "change",
                unit_name(code.unit),
                "version",
                ">before",
                ">after",
                ">delta",
            ]);
            for item in &code.items {
                table.row(vec![
                    item.change.to_string(),
                    code_span(&item.name),
                    text(&item.version_label()),
                    human(item.bytes_before),
                    human(item.bytes_after),
                    human_delta(item.delta),
                ]);
            }
            if let Some(more) = &code.more {
                table.row(more_row(more));
            }
            let title = code_title(&code_span(&binary.path), code);
            let _ = writeln!(out, "#### {title}\n\n{}", table.render());
        }
        out
    }
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Package => "package",
        Unit::Crate => "crate",
        Unit::Symbol => "symbol",
    }
}

/// "Code of /app by package: .text 1.2 MB → 1.3 MB (+100 kB)".
fn code_title(path: &str, code: &AttributionDiff) -> String {
    format!(
        "Code of {path} by {}: .text {} → {} ({})",
        unit_name(code.unit),
        human(code.code_bytes_before),
        human(code.code_bytes_after),
        human_delta(code.code_bytes_after as i64 - code.code_bytes_before as i64)
    )
}

fn more_row(more: &MoreChanges) -> Vec<String> {
    vec![
        String::new(),
        format!("{} more changed", more.items),
        String::new(),
        human(more.bytes_before),
        human(more.bytes_after),
        human_delta(more.delta),
    ]
}
