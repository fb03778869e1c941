//! The `cost` report: the figures first, then every assumption they rest on (prices,
//! usage, platform parameters with their sources), so a reader can recompute each one.

use std::fmt::Write as _;

use comfy_table::Table;
use serde::Serialize;

use super::markdown::{code, text, unbreak_units};
use super::{json, new_table, MarkdownTable};
use crate::cost::pricing::{GbUnit, PricingEntry, Rate, Tier};
use crate::cost::{CostEstimate, ImageCost};
use crate::image::SCHEMA_VERSION;
use crate::size::human;

/// `ballast cost --list-pricing`.
#[derive(Debug, Clone, Serialize)]
pub struct PricingList {
    pub schema_version: u32,
    pub pricing: Vec<PricingEntry>,
}

impl PricingList {
    pub fn new(pricing: Vec<PricingEntry>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            pricing,
        }
    }

    pub fn to_json(&self) -> String {
        json(self)
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        for entry in &self.pricing {
            let _ = writeln!(out, "{}\n", entry_lines(entry).join("\n"));
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::from("## Pricing tables\n\n");
        let mut table = MarkdownTable::new(&[
            "id",
            "name",
            "GB",
            "fixed fee",
            "storage",
            "same region",
            "cross region",
            "internet",
            "effective",
            "source",
        ]);
        for e in &self.pricing {
            table.row(vec![
                code(&e.id),
                text(&e.name),
                gb_short(e.gb).to_string(),
                text(&fixed_text(e)),
                text(&tiers_text(&e.storage.tiers, e.gb, e.storage.unit.label())),
                text(&rate_text(&e.transfer.same_region, e.gb)),
                text(&rate_text(&e.transfer.cross_region, e.gb)),
                text(&rate_text(&e.transfer.internet, e.gb)),
                e.effective.clone(),
                text(&e.source),
            ]);
        }
        let _ = writeln!(out, "{}", table.render());
        for e in &self.pricing {
            if let Some(note) = &e.note {
                let _ = writeln!(out, "- {}: {}", code(&e.id), text(note));
            }
        }
        out
    }
}

impl CostEstimate {
    pub fn to_json(&self) -> String {
        json(self)
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Pricing {} ({}), effective {}; cold start on profile {}\n",
            self.pricing.id, self.pricing.name, self.pricing.effective, self.profile
        );
        let mut images = new_table(
            &[
                "image",
                "compressed",
                "unique",
                "shared",
                "stored",
                "pulled/month",
                "storage $/mo",
                "transfer $/mo",
                "cold start s",
                "zstd what-if s",
            ],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9],
        );
        for image in &self.images {
            let mut row = vec![image.reference.clone()];
            row.extend(image_figures(image));
            images.add_row(row);
        }
        let _ = writeln!(out, "Per image (each on its own)\n{images}\n");

        let _ = writeln!(
            out,
            "Set of {} image(s), shared layers counted once",
            self.set.images
        );
        let _ = writeln!(out, "{}\n", set_table(self));

        let mut cold = new_table(
            &[
                "image",
                "variant",
                "round trips",
                "download",
                "unpack",
                "start",
                "total s",
                "layers fetched",
                "download bound",
            ],
            &[2, 3, 4, 5, 6, 7],
        );
        for image in &self.images {
            for c in [&image.cold_start, &image.cold_start_zstd] {
                cold.add_row(vec![
                    image.reference.clone(),
                    variant(c.kind),
                    seconds(c.parts.rtt_s),
                    seconds(c.parts.download_s),
                    seconds(c.parts.unpack_s),
                    seconds(c.parts.start_s),
                    seconds(c.total_s),
                    format!(
                        "{} of {}",
                        c.layers_fetched,
                        c.layers_fetched + c.layers_cached
                    ),
                    c.download_bound.to_string(),
                ]);
            }
        }
        let _ = writeln!(out, "Cold start on {} (seconds)\n{cold}\n", self.profile);

        if let Some(first) = self.images.first() {
            let mut header = vec!["image"];
            header.extend(first.cold_start_profiles.iter().map(|p| p.profile.as_str()));
            let right: Vec<usize> = (1..header.len()).collect();
            let mut profiles = new_table(&header, &right);
            for image in &self.images {
                let mut row = vec![image.reference.clone()];
                row.extend(
                    image.cold_start_profiles.iter().map(|p| {
                        format!("{} ({} zstd)", seconds(p.total_s), seconds(p.zstd_total_s))
                    }),
                );
                profiles.add_row(row);
            }
            let _ = writeln!(
                out,
                "Cold start by profile, seconds (zstd what-if)\n{profiles}\n"
            );
        }

        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "Assumptions");
        for line in self.assumption_lines() {
            let _ = writeln!(out, "  {line}");
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## Cost\n");
        let _ = writeln!(
            out,
            "Pricing {} ({}), effective {}; cold start on profile {}.\n",
            code(&self.pricing.id),
            text(&self.pricing.name),
            self.pricing.effective,
            code(&self.profile)
        );
        // One column per image, one row per figure: ten figures side by side are
        // wider than a page, two or three images are not.
        let labels = self.labels();
        let mut header = vec![String::new()];
        header.extend(labels.iter().map(|l| format!(">{}", code(l))));
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut images = MarkdownTable::new(&header);
        let figures: Vec<Vec<String>> = self.images.iter().map(image_figures).collect();
        for (row, name) in FIGURE_NAMES.iter().enumerate() {
            let mut cells = vec![name.to_string()];
            cells.extend(
                figures
                    .iter()
                    .map(|f| f.get(row).cloned().unwrap_or_default()),
            );
            images.row(cells);
        }
        let _ = writeln!(out, "### Per image (each on its own)\n");
        for (image, label) in self.images.iter().zip(&labels) {
            if *label != image.reference {
                let _ = writeln!(out, "- {}: {}", code(label), code(&image.reference));
            }
        }
        if self
            .images
            .iter()
            .zip(&labels)
            .any(|(i, l)| *l != i.reference)
        {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", images.render());

        let _ = writeln!(
            out,
            "### Set of {} image(s), shared layers counted once\n",
            self.set.images
        );
        let mut set = MarkdownTable::new(&["", ">with sharing", ">without sharing"]);
        for (label, with, without) in set_rows(self) {
            set.row(vec![text(label), with, without]);
        }
        let _ = writeln!(out, "{}", set.render());

        // The cold-start parts and the assumptions are the proofs behind the figures
        // above: folded, so the figures stay on one screen.
        let mut proofs = String::new();
        let _ = writeln!(
            proofs,
            "### Cold start on {} (seconds)\n",
            code(&self.profile)
        );
        let mut cold = MarkdownTable::new(&[
            "image",
            "variant",
            ">round trips",
            ">download",
            ">unpack",
            ">start",
            ">total",
            ">layers fetched",
            "download bound",
        ]);
        for (image, label) in self.images.iter().zip(&labels) {
            for c in [&image.cold_start, &image.cold_start_zstd] {
                cold.row(vec![
                    code(label),
                    text(&variant(c.kind)),
                    seconds(c.parts.rtt_s),
                    seconds(c.parts.download_s),
                    seconds(c.parts.unpack_s),
                    seconds(c.parts.start_s),
                    seconds(c.total_s),
                    format!(
                        "{} of {}",
                        c.layers_fetched,
                        c.layers_fetched + c.layers_cached
                    ),
                    text(c.download_bound),
                ]);
            }
        }
        let _ = writeln!(proofs, "{}", cold.render());

        for warning in &self.warnings {
            let _ = writeln!(out, "> **Warning:** {}\n", text(warning));
        }
        let _ = writeln!(proofs, "### Assumptions\n");
        for line in self.assumption_lines() {
            // Indented lines belong to the line above: a nested list item.
            match line.strip_prefix("  ") {
                Some(detail) => {
                    let _ = writeln!(proofs, "  - {}", text(detail));
                }
                None => {
                    let _ = writeln!(proofs, "- {}", text(&line));
                }
            }
        }
        out.push_str(&super::markdown::details(
            "Cold start in parts, and every price, usage figure and parameter the estimate assumes",
            &proofs,
        ));
        unbreak_units(&out)
    }

    /// Short labels for the images (their references' distinguishing part), for
    /// table columns that full `oci:…` references would push past a page's width.
    fn labels(&self) -> Vec<String> {
        let references: Vec<&str> = self.images.iter().map(|i| i.reference.as_str()).collect();
        crate::compare::reference_labels(&references)
    }

    /// Every input and the model, in plain sentences with the numbers filled in.
    pub fn assumption_lines(&self) -> Vec<String> {
        let a = &self.assumptions;
        let u = &a.usage;
        let mut lines = entry_lines(&a.pricing);
        lines.push(format!(
            "usage: pulls_per_month {} (per image), cross_region_share {}, internet_share {}, \
             nodes {}, deploys_per_day {}, warm_cache_share {}, months_retained {}, tags_kept {}, \
             changed_layers {}, co_located {}; versions stored per image {}",
            trim_float(a.pulls_per_month),
            u.cross_region_share,
            u.internet_share,
            u.nodes,
            u.deploys_per_day,
            u.warm_cache_share,
            u.months_retained,
            u.tags_kept,
            u.changed_layers,
            u.co_located,
            a.versions_stored
        ));
        let p = &a.profile;
        lines.push(format!(
            "profile {} ({}): {}",
            p.name,
            p.description,
            match p.cache {
                crate::cost::coldstart::CacheMode::None => "no layers cached".to_string(),
                crate::cost::coldstart::CacheMode::Base =>
                    format!("all layers but the top {} cached", p.app_layers),
            }
        ));
        for (key, param) in p.params() {
            lines.push(format!(
                "  {key} = {} ({})",
                trim_float(param.value),
                param.source
            ));
        }
        lines.extend(a.notes.iter().cloned());
        for image in &self.images {
            lines.push(recompute_line(
                image,
                &a.pricing,
                a.bytes_per_gb,
                a.versions_stored.saturating_sub(1),
            ));
        }
        lines
    }
}

fn recompute_line(
    image: &ImageCost,
    pricing: &PricingEntry,
    bytes_per_gb: f64,
    older_versions: u32,
) -> String {
    let unit = gb_short(pricing.gb);
    format!(
        "{}: stored {} B = {} + {} older version(s) x {} B changed; {:.6} {unit} -> ${:.6}/mo storage; \
         pulled {} B/month = {:.6} {unit} ({:.6} same region, {:.6} cross region, {:.6} internet) -> ${:.6}/mo transfer",
        image.reference,
        image.stored_bytes,
        image.compressed_bytes,
        older_versions,
        image.changed_compressed_bytes,
        image.stored_bytes as f64 / bytes_per_gb,
        image.storage_usd_month,
        image.pulled_bytes_month,
        image.pulled_bytes_month as f64 / bytes_per_gb,
        image.transfer.same_region_gb,
        image.transfer.cross_region_gb,
        image.transfer.internet_gb,
        image.transfer_usd_month,
    )
}

fn set_rows(estimate: &CostEstimate) -> Vec<(&'static str, String, String)> {
    let s = &estimate.set;
    vec![
        (
            "current versions, compressed",
            human(s.unique_compressed_bytes),
            human(s.total_compressed_bytes),
        ),
        (
            "stored (with older versions)",
            human(s.stored_bytes),
            human(s.stored_bytes_without_sharing),
        ),
        (
            "pulled per month",
            human(s.pulled_bytes_month),
            human(s.pulled_bytes_month_without_sharing),
        ),
        (
            "storage $/month",
            usd(s.storage_usd_month),
            usd(s.storage_usd_month_without_sharing),
        ),
        (
            "transfer $/month",
            usd(s.transfer_usd_month),
            usd(s.transfer_usd_month_without_sharing),
        ),
        (
            "fixed fee $/month",
            usd(s.fixed_usd_month),
            usd(s.fixed_usd_month),
        ),
        (
            "total $/month",
            usd(s.total_usd_month),
            usd(s.total_usd_month + s.sharing_saved_usd_month),
        ),
        (
            "sharing saved",
            format!(
                "{}, {}/month",
                human(s.sharing_saved_bytes),
                usd(s.sharing_saved_usd_month)
            ),
            "-".to_string(),
        ),
    ]
}

fn set_table(estimate: &CostEstimate) -> Table {
    let mut table = new_table(&["", "with sharing", "without sharing"], &[1, 2]);
    for (label, with, without) in set_rows(estimate) {
        table.add_row(vec![label.to_string(), with, without]);
    }
    table
}

/// The entry in a few lines: id, prices with units and tiers, effective date, source, note.
fn entry_lines(e: &PricingEntry) -> Vec<String> {
    let mut lines = vec![
        format!(
            "pricing {}: {}, {} {}; GB = {}; effective {}; source {}{}",
            e.id,
            e.name,
            e.provider,
            e.region,
            e.gb.label(),
            e.effective,
            e.source,
            if e.origin.is_empty() {
                String::new()
            } else {
                format!(" [{}]", e.origin)
            }
        ),
        format!("  fixed fee: {}", fixed_text(e)),
        format!(
            "  storage: {}",
            tiers_text(&e.storage.tiers, e.gb, e.storage.unit.label())
        ),
        format!(
            "  transfer same region: {}",
            rate_text(&e.transfer.same_region, e.gb)
        ),
        format!(
            "  transfer cross region: {}",
            rate_text(&e.transfer.cross_region, e.gb)
        ),
        format!(
            "  transfer internet: {}",
            rate_text(&e.transfer.internet, e.gb)
        ),
    ];
    for limit in &e.pull_limits {
        lines.push(format!(
            "  pull limit ({}): {} pulls/hour per {}",
            limit.plan, limit.pulls_per_hour, limit.per
        ));
    }
    if let Some(note) = &e.note {
        lines.push(format!("  note: {note}"));
    }
    lines
}

fn fixed_text(e: &PricingEntry) -> String {
    match &e.fixed {
        None => "none".to_string(),
        Some(fixed) => format!(
            "${} {} (${:.4}/month)",
            fixed.usd,
            fixed.unit.label(),
            fixed.usd_per_month()
        ),
    }
}

fn rate_text<U>(rate: &Rate<U>, gb: GbUnit) -> String {
    tiers_text(&rate.tiers, gb, gb_short(gb))
}

/// `0-10 GiB $0, 10+ GiB $0.003 per GB-Day`.
fn tiers_text(tiers: &[Tier], gb: GbUnit, unit: &str) -> String {
    let unit_gb = gb_short(gb);
    let ranges: Vec<String> = tiers
        .iter()
        .map(|t| {
            let range = match t.to {
                Some(to) => format!("{}-{} {unit_gb}", trim_float(t.from), trim_float(to)),
                None if t.from == 0.0 => "all".to_string(),
                None => format!("{}+ {unit_gb}", trim_float(t.from)),
            };
            format!("{range} ${}", trim_float(t.usd))
        })
        .collect();
    format!("{} per {unit}", ranges.join(", "))
}

fn gb_short(gb: GbUnit) -> &'static str {
    match gb {
        GbUnit::Decimal => "GB",
        GbUnit::Binary => "GiB",
    }
}

fn variant(kind: &str) -> String {
    if kind == "what-if" {
        "zstd what-if (estimate)".to_string()
    } else {
        "as stored".to_string()
    }
}

fn usd(value: f64) -> String {
    format!("${value:.4}")
}

fn seconds(value: f64) -> String {
    format!("{value:.2}")
}

/// `0.5`, `10`, `125000000`: no trailing zeros, no exponent for whole numbers.
fn trim_float(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// What [`image_figures`] lists, as the Markdown table's row names.
const FIGURE_NAMES: [&str; 9] = [
    "compressed",
    "unique (in no other image)",
    "shared",
    "stored",
    "pulled/month",
    "storage $/mo",
    "transfer $/mo",
    "cold start s",
    "zstd what-if s",
];

/// One image's figures in the per-image table, the same in every format.
fn image_figures(image: &crate::cost::ImageCost) -> Vec<String> {
    vec![
        human(image.compressed_bytes),
        human(image.unique_compressed_bytes),
        human(image.shared_compressed_bytes),
        human(image.stored_bytes),
        human(image.pulled_bytes_month),
        usd(image.storage_usd_month),
        usd(image.transfer_usd_month),
        seconds(image.cold_start.total_s),
        seconds(image.cold_start_zstd.total_s),
    ]
}
