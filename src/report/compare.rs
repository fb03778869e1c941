//! The `compare` report: one column per image, one row per figure, then the shared
//! layers, the categories and binary anatomy side by side, and the verdict.

use super::{short_digest, truncate};
use std::fmt::Write as _;

use super::markdown::{code, text, unbreak_units};
use super::{json, new_table, MarkdownTable};
use crate::binary::attribution::summary::AttributionSummary;
use crate::binary::attribution::Unit;
use crate::binary::AnatomyPart;
use crate::binary::StripPrediction;
use crate::compare::{
    anatomy_groups, image_labels, AdviceSide, Comparison, CostSide, ImageSide, MainBinary,
};
use crate::image::FoundBy;
use crate::size::human;

/// A cell's content and how Markdown must quote it.
enum Cell {
    /// Figures and fixed words: safe as they are.
    Plain(String),
    /// Paths, digests, ids: a code span.
    Code(String),
    /// Anything else from the image: escaped text.
    Text(String),
}

impl Cell {
    fn raw(&self) -> &str {
        match self {
            Cell::Plain(s) | Cell::Code(s) | Cell::Text(s) => s,
        }
    }

    fn markdown(&self) -> String {
        match self {
            Cell::Plain(s) => s.clone(),
            Cell::Code(s) if s == "-" => s.clone(),
            Cell::Code(s) => code(s),
            Cell::Text(s) => text(s),
        }
    }
}

fn usd(value: f64) -> String {
    format!("${value:.4}")
}

fn seconds(value: f64) -> String {
    format!("{value:.2} s")
}

fn dash() -> Cell {
    Cell::Plain("-".into())
}

impl Comparison {
    pub fn to_json(&self) -> String {
        json(self)
    }

    /// The side-by-side rows: a label and one cell per image.
    fn rows(&self) -> Vec<Row> {
        let images = &self.images;
        let mut rows = size_rows(images);
        rows.extend(main_binary_rows(images));
        rows.extend(waste_rows(images));
        rows.extend(advice_rows(images));
        if images.iter().any(|i| i.cost.is_some()) {
            rows.extend(cost_rows(images));
        }
        rows
    }

    /// Categories with bytes in any image, one row each.
    fn category_rows(&self) -> Vec<(&'static str, Vec<u64>)> {
        let Some(first) = self.images.first() else {
            return Vec::new();
        };
        first
            .categories
            .iter()
            .map(|row| {
                let bytes = self
                    .images
                    .iter()
                    .map(|i| {
                        i.categories
                            .iter()
                            .find(|c| c.category == row.category)
                            .map_or(0, |c| c.bytes)
                    })
                    .collect::<Vec<u64>>();
                (row.label, bytes)
            })
            .filter(|(_, bytes)| bytes.iter().any(|b| *b > 0))
            .collect()
    }

    /// Anatomy groups of the main binaries, in the analyser's order.
    fn anatomy_rows(&self) -> Vec<(AnatomyPart, Vec<Option<u64>>)> {
        anatomy_groups(&self.images)
            .into_iter()
            .map(|name| {
                let bytes = self
                    .images
                    .iter()
                    .map(|i| {
                        i.main_binary.as_ref().map(|b| {
                            b.anatomy
                                .iter()
                                .find(|g| g.group == name)
                                .map_or(0, |g| g.bytes)
                        })
                    })
                    .collect();
                (name, bytes)
            })
            .collect()
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let labels = image_labels(&self.images);
        for (label, image) in labels.iter().zip(&self.images) {
            if label != &image.image.reference {
                let _ = writeln!(out, "{label}: {}", image.image.reference);
            }
        }
        if labels
            .iter()
            .zip(&self.images)
            .any(|(l, i)| l != &i.image.reference)
        {
            out.push('\n');
        }
        let mut header = vec![""];
        header.extend(labels.iter().map(String::as_str));
        let right: Vec<usize> = (1..header.len()).collect();
        let mut table = new_table(&header, &right);
        for (label, cells) in self.rows() {
            let mut row = vec![label.to_string()];
            row.extend(cells.iter().map(|c| c.raw().to_string()));
            table.add_row(row);
        }
        let _ = writeln!(out, "{table}\n");

        if !self.shared_layers.is_empty() {
            let mut shared = new_table(&["layer", "compressed", "images", "created by"], &[1]);
            for layer in &self.shared_layers {
                shared.add_row(vec![
                    short_digest(&layer.digest),
                    human(layer.compressed_bytes),
                    layer
                        .images
                        .iter()
                        .filter_map(|i| labels.get(*i).cloned())
                        .collect::<Vec<_>>()
                        .join(", "),
                    truncate(layer.created_by.as_deref().unwrap_or("-"), 60),
                ]);
            }
            let _ = writeln!(
                out,
                "Shared layers (counted once: {} for the set instead of {})\n{shared}\n",
                human(self.set.unique_compressed_bytes),
                human(self.set.total_compressed_bytes)
            );
        }

        let mut categories = new_table(&header, &right);
        for (label, bytes) in self.category_rows() {
            let mut row = vec![label.to_string()];
            row.extend(bytes.iter().map(|b| human(*b)));
            categories.add_row(row);
        }
        let _ = writeln!(out, "Bytes by category (visible files)\n{categories}\n");

        let anatomy_rows = self.anatomy_rows();
        if !anatomy_rows.is_empty() {
            let mut anatomy = new_table(&header, &right);
            for (name, bytes) in anatomy_rows {
                let mut row = vec![name.label().to_string()];
                row.extend(bytes.iter().map(|b| b.map_or("-".to_string(), human)));
                anatomy.add_row(row);
            }
            let _ = writeln!(out, "Main binary anatomy\n{anatomy}\n");
        }

        if let Some(code) = self.code_rows(&labels, |s| s.to_string()) {
            let header: Vec<&str> = code.header.iter().map(String::as_str).collect();
            let right: Vec<usize> = (1..header.len()).filter(|i| i % 3 != 1).collect();
            let mut table = new_table(&header, &right);
            for row in code.rows {
                table.add_row(row);
            }
            let _ = writeln!(out, "Main binary code, largest {}\n{table}", code.what);
            if let Some(line) = std_line(&self.images, &labels) {
                let _ = writeln!(out, "{line}");
            }
            out.push('\n');
        }

        let _ = writeln!(out, "Verdict");
        for line in &self.verdict.summary {
            let _ = writeln!(out, "  {line}");
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let labels = image_labels(&self.images);
        let _ = writeln!(out, "## Comparison\n");
        for (label, image) in labels.iter().zip(&self.images) {
            let _ = writeln!(out, "- {}: {}", code(label), code(&image.image.reference));
        }
        out.push('\n');
        let header = self.markdown_header(&labels);
        let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();

        let mut table = MarkdownTable::new(&header_refs);
        for (label, cells) in self.rows() {
            let mut row = vec![label.to_string()];
            row.extend(cells.iter().map(Cell::markdown));
            table.row(row);
        }
        let _ = writeln!(out, "{}", table.render());

        if !self.shared_layers.is_empty() {
            let _ = writeln!(
                out,
                "### Shared layers\n\nCounted once: the set is {} compressed instead of {} ({} saved by sharing).\n",
                human(self.set.unique_compressed_bytes),
                human(self.set.total_compressed_bytes),
                human(self.set.sharing_saved_bytes)
            );
            let mut shared = MarkdownTable::new(&[
                "layer",
                ">compressed",
                ">uncompressed",
                "images",
                "created by",
            ]);
            for layer in &self.shared_layers {
                shared.row(vec![
                    code(&short_digest(&layer.digest)),
                    human(layer.compressed_bytes),
                    human(layer.uncompressed_bytes),
                    layer
                        .images
                        .iter()
                        .filter_map(|i| labels.get(*i).map(|l| code(l)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    text(&truncate(layer.created_by.as_deref().unwrap_or("-"), 90)),
                ]);
            }
            let _ = writeln!(out, "{}", shared.render());
        }

        let _ = writeln!(out, "### Bytes by category (visible files)\n");
        let mut categories = MarkdownTable::new(&header_refs);
        for (label, bytes) in self.category_rows() {
            let mut row = vec![label.to_string()];
            row.extend(bytes.iter().map(|b| human(*b)));
            categories.row(row);
        }
        let _ = writeln!(out, "{}", categories.render());

        let anatomy_rows = self.anatomy_rows();
        if !anatomy_rows.is_empty() {
            let _ = writeln!(out, "### Main binary anatomy\n");
            let mut anatomy = MarkdownTable::new(&header_refs);
            for (name, bytes) in anatomy_rows {
                let mut row = vec![name.label().to_string()];
                row.extend(bytes.iter().map(|b| b.map_or("-".to_string(), human)));
                anatomy.row(row);
            }
            let _ = writeln!(out, "{}", anatomy.render());
        }

        if let Some(code) = self.code_markdown(&labels) {
            out.push_str(&code);
        }

        let _ = writeln!(out, "### Verdict\n");
        for line in &self.verdict.summary {
            let _ = writeln!(out, "- {}", text(line));
        }
        unbreak_units(&out)
    }

    /// A blank first column, then one right-aligned column per image.
    fn markdown_header(&self, labels: &[String]) -> Vec<String> {
        let mut header = vec![String::new()];
        header.extend(labels.iter().map(|l| format!(">{}", code(l))));
        header
    }
}

/// The main binaries' largest items side by side: a rank, then name, bytes and
/// share for each image.
struct CodeRows {
    /// `packages`, `crates`, `symbols` or a mix of them.
    what: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Comparison {
    /// `None` when no main binary has a measured attribution. `name` quotes a name
    /// for the format (a code span in Markdown).
    fn code_rows(&self, labels: &[String], name: impl Fn(&str) -> String) -> Option<CodeRows> {
        let summaries: Vec<Option<&AttributionSummary>> = self
            .images
            .iter()
            .map(|i| i.main_binary.as_ref()?.attribution_summary.as_ref())
            .collect();
        if summaries.iter().all(Option::is_none) {
            return None;
        }
        let mut units: Vec<&str> = summaries.iter().flatten().map(|s| units(s.unit)).collect();
        units.dedup();
        let mut header = vec!["#".to_string()];
        for (label, summary) in labels.iter().zip(&summaries) {
            header.push(match summary {
                Some(s) => format!("{} {}", name(label), unit_name(s.unit)),
                None => name(label),
            });
            header.push("bytes".into());
            header.push("share".into());
        }
        let ranks = summaries.iter().flatten().map(|s| s.top.len()).max()?;
        let percent = |share: f64| format!("{:.1}%", share * 100.0);
        let mut rows = Vec::new();
        for rank in 0..ranks {
            let mut row = vec![(rank + 1).to_string()];
            for summary in &summaries {
                match summary.and_then(|s| s.top.get(rank)) {
                    Some(item) => {
                        let mut shown = name(&item.name);
                        if let Some(version) = &item.version {
                            shown.push(' ');
                            shown.push_str(&name(version));
                        }
                        if item.std && item.name != "std" {
                            shown.push_str(" (std)");
                        }
                        row.extend([shown, human(item.bytes), percent(item.share)]);
                    }
                    None => row.extend(["".into(), "".into(), "".into()]),
                }
            }
            rows.push(row);
        }
        let mut rest = vec!["".to_string()];
        let mut total = vec!["".to_string()];
        for summary in &summaries {
            match summary {
                Some(s) if s.rest_items == 0 => {
                    rest.extend(["".into(), "".into(), "".into()]);
                    total.extend([".text".into(), human(s.code_bytes), "100.0%".into()]);
                }
                Some(s) => {
                    rest.extend([
                        format!("{} more", s.rest_items),
                        human(s.rest_bytes),
                        percent(s.rest_bytes as f64 / s.code_bytes.max(1) as f64),
                    ]);
                    total.extend([".text".into(), human(s.code_bytes), "100.0%".into()]);
                }
                None => {
                    rest.extend(["-".into(), "".into(), "".into()]);
                    total.extend(["-".into(), "".into(), "".into()]);
                }
            }
        }
        rows.push(rest);
        rows.push(total);
        Some(CodeRows {
            what: units.join(" / "),
            header,
            rows,
        })
    }
}

impl Comparison {
    /// The main binaries' largest items as a Markdown table, one column per image
    /// (name · bytes · share, so it fits a page), then the standard library's share.
    pub fn code_markdown(&self, labels: &[String]) -> Option<String> {
        let code = self.code_rows(labels, code)?;
        let mut out = format!("### Main binary code, largest {}\n\n", code.what);
        let mut header = vec!["#".to_string()];
        header.extend(code.header.iter().skip(1).step_by(3).cloned());
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut table = MarkdownTable::new(&header);
        for row in code.rows {
            let mut cells = vec![row.first().cloned().unwrap_or_default()];
            for triple in row.get(1..).unwrap_or_default().chunks(3) {
                let parts: Vec<&str> = triple
                    .iter()
                    .map(String::as_str)
                    .filter(|c| !c.is_empty())
                    .collect();
                cells.push(parts.join(" · "));
            }
            table.row(cells);
        }
        let _ = writeln!(out, "{}", table.render());
        if let Some(line) = std_line(&self.images, labels) {
            let _ = writeln!(out, "{}.\n", text(&line));
        }
        Some(out)
    }
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Package => "package",
        Unit::Crate => "crate",
        Unit::Symbol => "symbol",
    }
}

fn units(unit: Unit) -> &'static str {
    match unit {
        Unit::Package => "packages",
        Unit::Crate => "crates",
        Unit::Symbol => "symbols",
    }
}

/// The standard library's share of each main binary's code in one line:
/// "Standard library share of .text: Go std (runtime included) 18.0% (go) vs Rust
/// std/core/alloc 31.0% (rs)".
pub fn std_line(images: &[ImageSide], labels: &[String]) -> Option<String> {
    let parts: Vec<String> = images
        .iter()
        .zip(labels)
        .filter_map(|(image, label)| {
            let summary = image.main_binary.as_ref()?.attribution_summary.as_ref()?;
            let with_maybe = if summary.maybe_std_bytes > 0 {
                format!(
                    " to {:.1}% (with the crates std links in privately, which may be the program's own)",
                    (summary.std_bytes + summary.maybe_std_bytes) as f64 * 100.0
                        / summary.code_bytes.max(1) as f64
                )
            } else {
                String::new()
            };
            Some(format!(
                "{} {:.1}%{with_maybe} ({label})",
                summary.std_label()?,
                summary.std_share * 100.0
            ))
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "Standard library share of .text: {}",
        parts.join(" vs ")
    ))
}

/// A label and one cell per image.
type Row = (&'static str, Vec<Cell>);

fn each(images: &[ImageSide], cell: impl Fn(&ImageSide) -> Cell) -> Vec<Cell> {
    images.iter().map(cell).collect()
}

fn size_rows(images: &[ImageSide]) -> Vec<Row> {
    vec![
        (
            "manifest digest",
            each(images, |i| Cell::Code(short_digest(&i.image.digest))),
        ),
        (
            "platform",
            each(images, |i| Cell::Code(i.image.platform.clone())),
        ),
        (
            "compressed (pull)",
            each(images, |i| Cell::Plain(human(i.compressed_bytes))),
        ),
        (
            "uncompressed (disk)",
            each(images, |i| Cell::Plain(human(i.uncompressed_bytes))),
        ),
        (
            "layers (shared)",
            each(images, |i| {
                Cell::Plain(format!("{} ({})", i.layers, i.shared_layers))
            }),
        ),
        (
            "in shared layers",
            each(images, |i| Cell::Plain(human(i.shared_compressed_bytes))),
        ),
        (
            "in own layers",
            each(images, |i| Cell::Plain(human(i.unique_compressed_bytes))),
        ),
    ]
}

/// Rows about each image's main binary (a dash where an image has none).
fn main_binary_rows(images: &[ImageSide]) -> Vec<Row> {
    let binary = |cell: &dyn Fn(&MainBinary) -> Cell| {
        each(images, |i| i.main_binary.as_ref().map_or_else(dash, cell))
    };
    let strip = |saved: &dyn Fn(&StripPrediction) -> u64| {
        binary(&|b| {
            b.strip
                .as_ref()
                .map_or_else(dash, |s| Cell::Plain(human(saved(s))))
        })
    };
    vec![
        ("main binary", binary(&|b| Cell::Code(b.path.clone()))),
        (
            "found by",
            binary(&|b| {
                Cell::Plain(
                    match b.found_by {
                        FoundBy::Entrypoint => "entrypoint",
                        FoundBy::Cmd => "cmd",
                        FoundBy::LargestExecutable => "largest executable",
                    }
                    .into(),
                )
            }),
        ),
        ("language", binary(&|b| Cell::Text(b.language.to_string()))),
        (
            "toolchain",
            binary(&|b| b.toolchain.clone().map_or_else(dash, Cell::Text)),
        ),
        ("linkage", binary(&|b| Cell::Text(b.linkage.to_string()))),
        ("binary size", binary(&|b| Cell::Plain(human(b.size)))),
        (
            "debug info / symbols",
            binary(&|b| {
                Cell::Plain(format!(
                    "{} / {}",
                    if b.has_debug_info { "yes" } else { "no" },
                    if b.has_symbol_table { "yes" } else { "no" }
                ))
            }),
        ),
        ("strip --strip-all saves", strip(&|s| s.saved_by_strip_all)),
        (
            "strip --strip-debug saves",
            strip(&|s| s.saved_by_strip_debug),
        ),
    ]
}

fn waste_rows(images: &[ImageSide]) -> Vec<Row> {
    vec![
        (
            "hidden bytes",
            each(images, |i| Cell::Plain(human(i.waste.hidden_bytes))),
        ),
        (
            "package caches",
            each(images, |i| Cell::Plain(human(i.waste.package_cache_bytes))),
        ),
        (
            "dive efficiency",
            each(images, |i| {
                Cell::Plain(format!("{:.2}%", i.waste.dive_efficiency * 100.0))
            }),
        ),
    ]
}

/// The suggestion count, the top suggestions and the projection.
fn advice_rows(images: &[ImageSide]) -> Vec<Row> {
    let advice = |cell: &dyn Fn(&AdviceSide) -> Cell| {
        each(images, |i| i.advice.as_ref().map_or_else(dash, cell))
    };
    let mut rows = vec![(
        "suggestions",
        advice(&|a| Cell::Plain(a.suggestions.to_string())),
    )];
    let top = images
        .iter()
        .map(|i| i.advice.as_ref().map_or(0, |a| a.top.len()))
        .max()
        .unwrap_or(0);
    const TOP_LABELS: [&str; 3] = ["top suggestion 1", "top suggestion 2", "top suggestion 3"];
    for (rank, label) in TOP_LABELS.iter().enumerate().take(top) {
        rows.push((
            label,
            advice(&|a| {
                a.top.get(rank).map_or_else(dash, |s| {
                    Cell::Text(format!(
                        "{}: {} ({})",
                        s.id,
                        human(s.saved_compressed_bytes),
                        s.confidence.as_str()
                    ))
                })
            }),
        ));
    }
    rows.push((
        "after suggestions, compressed",
        advice(&|a| Cell::Plain(human(a.projected_compressed_bytes))),
    ));
    rows.push((
        "after suggestions, uncompressed",
        advice(&|a| Cell::Plain(human(a.projected_uncompressed_bytes))),
    ));
    rows
}

fn cost_rows(images: &[ImageSide]) -> Vec<Row> {
    let cost = |cell: &dyn Fn(&CostSide) -> Cell| {
        each(images, |i| i.cost.as_ref().map_or_else(dash, cell))
    };
    vec![
        (
            "monthly cost",
            cost(&|c| Cell::Plain(usd(c.total_usd_month))),
        ),
        (
            "storage / transfer",
            cost(&|c| {
                Cell::Plain(format!(
                    "{} / {}",
                    usd(c.storage_usd_month),
                    usd(c.transfer_usd_month)
                ))
            }),
        ),
        (
            "cold start",
            cost(&|c| Cell::Plain(seconds(c.cold_start_s))),
        ),
        (
            "rtt / download / unpack / start",
            cost(&|c| {
                let p = &c.cold_start_parts;
                Cell::Plain(format!(
                    "{:.2} / {:.2} / {:.2} / {:.2}",
                    p.rtt_s, p.download_s, p.unpack_s, p.start_s
                ))
            }),
        ),
    ]
}
