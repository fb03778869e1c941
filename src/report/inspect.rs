//! The `inspect` report: the stable JSON model and its table and Markdown renderings.

use super::{short_digest, truncate};
use std::fmt::Write as _;

use serde::Serialize;

use super::markdown::{code, text};
use super::{new_table, MarkdownTable};
use crate::binary::attribution::{Attribution, AttributionItem, Source, Unit};
use crate::binary::BinaryReport;
use crate::fs::{DiveFigures, WastedFile};
use crate::image::{ImageAnalysis, ImageInfo, MissingLibrary, SCHEMA_VERSION};
use crate::layer::EntryKind;
use crate::size::human;

#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    pub schema_version: u32,
    pub image: ImageInfo,
    pub totals: Totals,
    pub layers: Vec<LayerRow>,
    pub waste: Waste,
    pub categories: Vec<CategoryRow>,
    pub binaries: Vec<BinaryRow>,
    /// Libraries a binary needs (`DT_NEEDED`) that the image does not have: it will
    /// not start.
    pub missing_libraries: Vec<MissingLibrary>,
    pub largest_files: Vec<FileRow>,
    /// With `inspect --advise`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<super::advise::AdviseReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub layers: usize,
    /// Regular files a container sees.
    pub files: usize,
    /// Bytes of those files.
    pub visible_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    pub index: usize,
    pub digest: String,
    pub media_type: String,
    pub compression: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub diff_id: String,
    pub files: usize,
    /// Bytes of the regular files in the layer's tar.
    pub file_bytes: u64,
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Waste {
    /// Bytes no container can see: `deleted_bytes + overwritten_bytes`.
    pub bytes: u64,
    pub deleted_bytes: u64,
    pub overwritten_bytes: u64,
    /// Visible bytes in package-manager caches and lists (removable, but seen).
    pub package_cache_bytes: u64,
    pub dive: DiveFigures,
    /// The largest hidden files.
    pub files: Vec<WastedFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryRow {
    pub category: &'static str,
    pub label: &'static str,
    pub bytes: u64,
    pub files: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BinaryRow {
    /// The layer the visible copy comes from.
    pub layer: usize,
    #[serde(flatten)]
    pub report: BinaryReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    pub path: String,
    pub size: u64,
    pub layer: usize,
}

impl InspectReport {
    pub fn build(analysis: &ImageAnalysis, top: usize) -> Self {
        let created_by = analysis.created_by();
        let layers = analysis
            .layers
            .iter()
            .enumerate()
            .map(|(index, scan)| LayerRow {
                index,
                digest: scan.descriptor.digest.to_string(),
                media_type: scan.descriptor.media_type.clone(),
                compression: scan.compression.to_string(),
                compressed_bytes: scan.compressed_bytes,
                uncompressed_bytes: scan.uncompressed_bytes,
                diff_id: scan.diff_id.to_string(),
                files: scan
                    .entries
                    .iter()
                    .filter(|e| e.kind == EntryKind::File)
                    .count(),
                file_bytes: scan.entries.iter().map(|e| e.size).sum(),
                created_by: created_by.get(index).cloned().flatten(),
            })
            .collect();
        let fs = &analysis.fs;
        let mut largest: Vec<FileRow> = fs
            .visible_files()
            .map(|(path, node)| FileRow {
                path: format!("/{path}"),
                size: node.size,
                layer: node.layer,
            })
            .collect();
        largest.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
        largest.truncate(top);
        let categories = fs
            .bytes_by_category()
            .into_iter()
            .map(|(category, (bytes, files))| CategoryRow {
                category: category.key(),
                label: category.label(),
                bytes,
                files,
            })
            .collect();
        let mut visible = analysis.visible_binaries();
        visible.sort_by(|a, b| {
            b.report
                .size
                .cmp(&a.report.size)
                .then_with(|| a.report.path.cmp(&b.report.path))
        });
        let missing_libraries = analysis.missing_libraries(visible.iter().map(|b| b.report));
        let binaries: Vec<BinaryRow> = visible
            .into_iter()
            .map(|binary| {
                let mut report = binary.report.clone();
                // What an image's own programs are made of is the question; the
                // base's libraries would only bury the answer (and the JSON).
                if !report.is_application() {
                    report.attribution = None;
                }
                report.path = format!("/{}", report.path);
                BinaryRow {
                    layer: binary.layer,
                    report,
                }
            })
            .collect();
        let mut wasted_files: Vec<WastedFile> = fs.wasted_files.iter().take(top).cloned().collect();
        for file in &mut wasted_files {
            file.path = format!("/{}", file.path);
        }
        InspectReport {
            schema_version: SCHEMA_VERSION,
            image: analysis.info(),
            totals: Totals {
                compressed_bytes: analysis.compressed_bytes(),
                uncompressed_bytes: analysis.uncompressed_bytes(),
                layers: analysis.layers.len(),
                files: fs.visible_files().count(),
                visible_bytes: fs.visible_bytes(),
            },
            layers,
            waste: Waste {
                bytes: fs.wasted_bytes(),
                deleted_bytes: fs.deleted_bytes,
                overwritten_bytes: fs.overwritten_bytes,
                package_cache_bytes: fs.package_cache_bytes(),
                dive: fs.dive.clone(),
                files: wasted_files,
            },
            categories,
            binaries,
            missing_libraries,
            largest_files: largest,
            advice: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
            + "\n"
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let t = &self.totals;
        let _ = writeln!(
            out,
            "{}  {}  {}",
            self.image.reference, self.image.platform, self.image.digest
        );
        let _ = writeln!(
            out,
            "{} compressed, {} uncompressed, {} layers, {} files visible ({})\n",
            human(t.compressed_bytes),
            human(t.uncompressed_bytes),
            t.layers,
            t.files,
            human(t.visible_bytes)
        );
        let mut layers = new_table(
            &[
                "#",
                "digest",
                "compressed",
                "uncompressed",
                "files",
                "created by",
            ],
            &[0, 2, 3, 4],
        );
        for layer in &self.layers {
            layers.add_row(vec![
                layer.index.to_string(),
                short_digest(&layer.digest),
                human(layer.compressed_bytes),
                human(layer.uncompressed_bytes),
                layer.files.to_string(),
                truncate(layer.created_by.as_deref().unwrap_or("-"), 70),
            ]);
        }
        let _ = writeln!(out, "Layers\n{layers}\n");

        let w = &self.waste;
        let _ = writeln!(
            out,
            "Waste: {} no container can see ({} deleted, {} overwritten); {} in package caches",
            human(w.bytes),
            human(w.deleted_bytes),
            human(w.overwritten_bytes),
            human(w.package_cache_bytes)
        );
        let _ = writeln!(
            out,
            "dive's figures: efficiency {:.4} ({:.2}%), wasted bytes {}\n",
            w.dive.efficiency,
            w.dive.efficiency * 100.0,
            human(w.dive.wasted_bytes)
        );
        if !w.files.is_empty() {
            let mut wasted = new_table(
                &["path", "size", "added in", "hidden by", "cause"],
                &[1, 2, 3],
            );
            for file in &w.files {
                wasted.add_row(vec![
                    truncate(&file.path, 70),
                    human(file.size),
                    file.layer.to_string(),
                    file.hidden_by_layer.to_string(),
                    format!("{:?}", file.cause).to_lowercase(),
                ]);
            }
            let _ = writeln!(out, "Hidden files\n{wasted}\n");
        }

        let mut categories = new_table(&["category", "bytes", "files"], &[1, 2]);
        for row in self.categories.iter().filter(|c| c.files > 0) {
            categories.add_row(vec![
                row.label.to_string(),
                human(row.bytes),
                row.files.to_string(),
            ]);
        }
        let _ = writeln!(out, "Bytes by category (visible files)\n{categories}\n");

        if !self.binaries.is_empty() {
            let mut binaries = new_table(
                &[
                    "path",
                    "size",
                    "language",
                    "toolchain",
                    "linkage",
                    "debug/symbols",
                    "strip saves",
                    "layer",
                ],
                &[1, 6, 7],
            );
            for binary in &self.binaries {
                let r = &binary.report;
                binaries.add_row(vec![
                    truncate(&r.path, 50),
                    human(r.size),
                    r.language.to_string(),
                    toolchain(r),
                    r.linkage.to_string(),
                    debug_flags(r),
                    r.strip
                        .as_ref()
                        .map_or("-".into(), |s| human(s.saved_by_strip_all)),
                    binary.layer.to_string(),
                ]);
            }
            let _ = writeln!(
                out,
                "ELF binaries (strip saves: exact, what strip --strip-all removes)\n{binaries}\n"
            );
            for binary in self
                .binaries
                .iter()
                .filter(|b| b.report.is_application())
                .take(3)
            {
                if let Some(anatomy) = &binary.report.anatomy {
                    let parts: Vec<String> = anatomy
                        .groups
                        .iter()
                        .map(|g| format!("{} {}", g.group, human(g.bytes)))
                        .collect();
                    let _ = writeln!(
                        out,
                        "Anatomy of {}: {}",
                        binary.report.path,
                        parts.join(", ")
                    );
                }
            }
            for binary in self
                .binaries
                .iter()
                .filter(|b| b.report.is_application())
                .take(3)
            {
                if let Some(attribution) = &binary.report.attribution {
                    let _ = writeln!(
                        out,
                        "\n{}",
                        attribution_title(&binary.report.path, attribution)
                    );
                    if attribution.source == Source::None {
                        let _ = writeln!(out, "{}", unmeasured(attribution));
                        continue;
                    }
                    let mut table = new_table(
                        &[
                            unit_label(attribution.unit),
                            "module",
                            "bytes",
                            "share",
                            "functions",
                        ],
                        &[2, 3, 4],
                    );
                    for item in attribution.items.iter().take(TOP_ITEMS) {
                        let row = attribution_row(attribution, item);
                        table.add_row(vec![
                            truncate(&row[0], 60),
                            truncate(&row[1], 40),
                            row[2].clone(),
                            row[3].clone(),
                            row[4].clone(),
                        ]);
                    }
                    let _ = writeln!(out, "{table}");
                    if let Some(more) = more_items(attribution) {
                        let _ = writeln!(out, "{more}");
                    }
                }
            }
            for missing in &self.missing_libraries {
                let _ = writeln!(
                    out,
                    "MISSING: {} needs {}, which the image does not have",
                    missing.binary, missing.library
                );
            }
            let _ = writeln!(out);
        }

        let mut largest = new_table(&["path", "size", "layer"], &[1, 2]);
        for file in &self.largest_files {
            largest.add_row(vec![
                truncate(&file.path, 70),
                human(file.size),
                file.layer.to_string(),
            ]);
        }
        let _ = writeln!(out, "Largest files\n{largest}");
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let t = &self.totals;
        let _ = writeln!(out, "## {}\n", code(&self.image.reference));
        let _ = writeln!(
            out,
            "Platform `{}`, manifest `{}`.\n",
            self.image.platform, self.image.digest
        );
        let mut summary = MarkdownTable::new(&["", ">value"]);
        summary.row(vec![
            "compressed (registry, pull)".into(),
            human(t.compressed_bytes),
        ]);
        summary.row(vec![
            "uncompressed (on disk)".into(),
            human(t.uncompressed_bytes),
        ]);
        summary.row(vec!["layers".into(), t.layers.to_string()]);
        summary.row(vec![
            "visible files".into(),
            format!("{} ({})", t.files, human(t.visible_bytes)),
        ]);
        summary.row(vec![
            "hidden bytes (deleted + overwritten)".into(),
            human(self.waste.bytes),
        ]);
        summary.row(vec![
            "package caches".into(),
            human(self.waste.package_cache_bytes),
        ]);
        summary.row(vec![
            "dive efficiency".into(),
            format!("{:.2}%", self.waste.dive.efficiency * 100.0),
        ]);
        summary.row(vec![
            "dive wasted bytes".into(),
            human(self.waste.dive.wasted_bytes),
        ]);
        let _ = writeln!(out, "{}", summary.render());

        let _ = writeln!(out, "### Layers\n");
        let mut layers = MarkdownTable::new(&[
            ">#",
            "digest",
            ">compressed",
            ">uncompressed",
            ">files",
            "created by",
        ]);
        for layer in &self.layers {
            layers.row(vec![
                layer.index.to_string(),
                code(&short_digest(&layer.digest)),
                human(layer.compressed_bytes),
                human(layer.uncompressed_bytes),
                layer.files.to_string(),
                text(&truncate(layer.created_by.as_deref().unwrap_or("-"), 90)),
            ]);
        }
        let _ = writeln!(out, "{}", layers.render());

        let _ = writeln!(out, "### Bytes by category\n");
        let mut categories = MarkdownTable::new(&["category", ">bytes", ">files"]);
        for row in self.categories.iter().filter(|c| c.files > 0) {
            categories.row(vec![
                row.label.to_string(),
                human(row.bytes),
                row.files.to_string(),
            ]);
        }
        let _ = writeln!(out, "{}", categories.render());

        if !self.waste.files.is_empty() {
            let _ = writeln!(out, "### Hidden files (no container can see these bytes)\n");
            let _ = writeln!(out, "{}", self.hidden_files_markdown());
        }

        if !self.binaries.is_empty() {
            let _ = writeln!(out, "### ELF binaries\n");
            let mut binaries = MarkdownTable::new(&[
                "path",
                ">size",
                "language",
                "toolchain",
                "linkage",
                "debug/symbols",
                ">strip saves",
                ">layer",
            ]);
            for binary in &self.binaries {
                let r = &binary.report;
                binaries.row(vec![
                    code(&r.path),
                    human(r.size),
                    text(r.language.key()),
                    text(&toolchain(r)),
                    text(r.linkage.key()),
                    text(&debug_flags(r)),
                    r.strip
                        .as_ref()
                        .map_or("-".into(), |s| human(s.saved_by_strip_all)),
                    binary.layer.to_string(),
                ]);
            }
            let _ = writeln!(out, "{}", binaries.render());
            let _ = writeln!(out, "*strip saves*: exact, what `strip --strip-all` removes (the ELF rewritten in memory).\n");
            for binary in self
                .binaries
                .iter()
                .filter(|b| b.report.is_application())
                .take(3)
            {
                if let Some(anatomy) = &binary.report.anatomy {
                    let _ = writeln!(out, "Anatomy of {}:\n", code(&binary.report.path));
                    let mut table = MarkdownTable::new(&["part", ">bytes", ">share"]);
                    for group in &anatomy.groups {
                        table.row(vec![
                            text(group.group.key()),
                            human(group.bytes),
                            format!(
                                "{:.1}%",
                                group.bytes as f64 * 100.0 / binary.report.size.max(1) as f64
                            ),
                        ]);
                    }
                    let _ = writeln!(out, "{}", table.render());
                }
            }
            for binary in self
                .binaries
                .iter()
                .filter(|b| b.report.is_application())
                .take(3)
            {
                if let Some(attribution) = &binary.report.attribution {
                    let _ = writeln!(
                        out,
                        "{}:\n",
                        attribution_title(&code(&binary.report.path), attribution)
                    );
                    if attribution.source == Source::None {
                        let _ = writeln!(out, "{}\n", text(&unmeasured(attribution)));
                        continue;
                    }
                    let mut table = MarkdownTable::new(&[
                        unit_label(attribution.unit),
                        "module",
                        ">bytes",
                        ">share",
                        ">functions",
                    ]);
                    for item in attribution.items.iter().take(TOP_ITEMS) {
                        let row = attribution_row(attribution, item);
                        table.row(vec![
                            code(&row[0]),
                            text(&row[1]),
                            row[2].clone(),
                            row[3].clone(),
                            row[4].clone(),
                        ]);
                    }
                    let _ = writeln!(out, "{}", table.render());
                    if let Some(more) = more_items(attribution) {
                        let _ = writeln!(out, "{}\n", text(&more));
                    }
                }
            }
            for missing in &self.missing_libraries {
                let _ = writeln!(
                    out,
                    "- **missing library**: {} needs {}, which the image does not have",
                    code(&missing.binary),
                    code(&missing.library)
                );
            }
        }

        let _ = writeln!(out, "### Largest files\n");
        let _ = write!(out, "{}", self.largest_files_markdown());
        out
    }

    /// The hidden files as a Markdown table (also in `ballast report`).
    pub fn hidden_files_markdown(&self) -> String {
        let mut table = MarkdownTable::new(&["path", ">size", ">added in", ">hidden by", "cause"]);
        for file in &self.waste.files {
            table.row(vec![
                code(&file.path),
                human(file.size),
                file.layer.to_string(),
                file.hidden_by_layer.to_string(),
                format!("{:?}", file.cause).to_lowercase(),
            ]);
        }
        table.render()
    }

    /// The largest files as a Markdown table (also in `ballast report`).
    pub fn largest_files_markdown(&self) -> String {
        let mut table = MarkdownTable::new(&["path", ">size", ">layer"]);
        for file in &self.largest_files {
            table.row(vec![
                code(&file.path),
                human(file.size),
                file.layer.to_string(),
            ]);
        }
        table.render()
    }
}

/// Items of a binary's code attribution shown in tables; JSON has them all.
const TOP_ITEMS: usize = 10;

fn unit_label(unit: Unit) -> &'static str {
    match unit {
        Unit::Package => "package",
        Unit::Crate => "crate",
        Unit::Symbol => "symbol",
    }
}

fn attribution_title(path: &str, attribution: &Attribution) -> String {
    let source = match attribution.source {
        Source::Pclntab => "Go's function table (.gopclntab)",
        Source::Symtab => "the symbol table (.symtab)",
        Source::Dynsym => "the dynamic symbols (.dynsym)",
        Source::None => "no symbols",
    };
    let share = attribution.attributed_bytes as f64 * 100.0 / attribution.code_bytes.max(1) as f64;
    format!(
        "Code of {path} by {}, from {source}: {share:.1}% of {} of .text attributed",
        unit_label(attribution.unit),
        human(attribution.code_bytes)
    )
}

/// Name, module (with version, or `std`), bytes, share of `.text`, functions.
fn attribution_row(attribution: &Attribution, item: &AttributionItem) -> [String; 5] {
    let module = match (&item.module, &item.version) {
        (Some(module), Some(version)) => format!("{module} {version}"),
        (Some(module), None) => module.clone(),
        (None, Some(version)) => version.clone(),
        (None, None) if item.std => "std".into(),
        (None, None) if item.maybe_std => "std's or yours".into(),
        (None, None) => "-".into(),
    };
    let bytes = item.bytes.unwrap_or(0);
    [
        item.name.clone(),
        module,
        human(bytes),
        format!(
            "{:.1}%",
            bytes as f64 * 100.0 / attribution.code_bytes.max(1) as f64
        ),
        item.functions.map_or("-".into(), |f| f.to_string()),
    ]
}

fn more_items(attribution: &Attribution) -> Option<String> {
    let rest = attribution.items.get(TOP_ITEMS..)?;
    if rest.is_empty() {
        return None;
    }
    let bytes: u64 = rest.iter().filter_map(|i| i.bytes).sum();
    Some(format!(
        "… and {} more ({}); the JSON lists them all",
        rest.len(),
        human(bytes)
    ))
}

/// A binary without symbols: only what `.dep-v0` lists, and no sizes.
fn unmeasured(attribution: &Attribution) -> String {
    if attribution.items.is_empty() {
        return "No symbol table and no cargo-auditable crate list: nothing says what the code is."
            .into();
    }
    let crates: Vec<String> = attribution
        .items
        .iter()
        .map(|i| match &i.version {
            Some(v) => format!("{} {v}", i.name),
            None => i.name.clone(),
        })
        .collect();
    format!(
        "No symbol table, so no sizes; cargo-auditable lists {}",
        crates.join(", ")
    )
}

fn toolchain(report: &BinaryReport) -> String {
    if let Some(go) = &report.go {
        return go.version.clone();
    }
    if let Some(version) = report.rust.as_ref().and_then(|r| r.rustc_version.clone()) {
        return format!(
            "rustc {}",
            version.split_whitespace().next().unwrap_or(&version)
        );
    }
    "-".into()
}

fn debug_flags(report: &BinaryReport) -> String {
    match (report.has_debug_info, report.has_symbol_table) {
        (true, true) => "debug+symbols".into(),
        (true, false) => "debug".into(),
        (false, true) => "symbols".into(),
        (false, false) => "stripped".into(),
    }
}
