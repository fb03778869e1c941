//! The `compare` report: one column per image, one row per figure, then the shared
//! layers, the categories and binary anatomy side by side, and the verdict.

use super::{short_digest, truncate};
use std::fmt::Write as _;

use super::markdown::{code, text, unbreak_units};
use super::{json, new_table, MarkdownTable};
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
