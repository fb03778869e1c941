//! The `apply` report: what was (or would be) left out or stripped, and the image
//! before, as advise projected it, and as written and read back.

use std::fmt::Write as _;

use serde::Serialize;

use super::markdown::{code, text};
use super::{new_table, short_digest, MarkdownTable};
use crate::advice::{Confidence, StripMode, SuggestionKind};
use crate::image::ImageInfo;
use crate::size::human;

#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub schema_version: u32,
    /// The source image.
    pub image: ImageInfo,
    /// Where the new image goes (`oci:DIR[:TAG]`).
    pub target: String,
    pub dry_run: bool,
    /// The written image's manifest digest (`null` on a dry run).
    pub manifest_digest: Option<String>,
    pub applied: Vec<AppliedSuggestion>,
    pub layers: Vec<LayerChange>,
    pub before: Sizes,
    /// advise's figures for the chosen suggestions.
    pub projected: Sizes,
    /// The written image as ballast reads it back (`null` on a dry run).
    pub after: Option<Sizes>,
    /// What the figures stand on where that is not the default (e.g. the strip
    /// made), and what the change means beyond them (signatures, shared base layers).
    pub notes: Vec<String>,
}

/// `apply` over a multi-platform index: every platform's image, each reported as a
/// single-platform apply is, under the new index.
#[derive(Debug, Clone, Serialize)]
pub struct MultiApplyReport {
    pub schema_version: u32,
    /// Where the new index goes.
    pub target: String,
    /// The written index's digest (`null` on a dry run).
    pub index_digest: Option<String>,
    /// One report per platform, in the source index's order.
    pub platforms: Vec<ApplyReport>,
    /// What concerns the index as a whole: entries left out, the push.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppliedSuggestion {
    pub id: SuggestionKind,
    pub confidence: Confidence,
    /// Files left out, and their bytes (tar headers aside).
    pub files: usize,
    pub file_bytes: u64,
    pub layers: Vec<usize>,
    /// The largest files (at most 20).
    pub paths: Vec<String>,
    /// Strips: `all` (`strip --strip-all`) or `debug` (`strip --strip-debug`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strip_mode: Option<StripMode>,
    /// Strips: every binary rewritten.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binaries: Vec<StrippedBinary>,
    pub projected_saved_bytes: u64,
    pub projected_saved_compressed_bytes: u64,
    /// Tar bytes its entries took in the layers written (exact).
    pub saved_bytes: Option<u64>,
    /// Compressed bytes saved in its layers, when no other suggestion changed them.
    pub saved_compressed_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StrippedBinary {
    pub path: String,
    pub layer: usize,
    pub size: u64,
    /// The size the ELF rewrite predicted for the strip made (exact).
    pub projected_size: u64,
    /// The size written (`null` on a dry run).
    pub size_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerChange {
    pub layer: usize,
    pub digest: String,
    pub created_by: Option<String>,
    pub changed: bool,
    /// Tar entries the plan leaves out (files and whiteouts).
    pub entries_to_remove: usize,
    /// Binaries the plan strips.
    pub entries_to_strip: usize,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// `--squash`: the layer of the new image this one's entries went into (its
    /// `after` is on that layer's row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub squashed_into: Option<usize>,
    pub after: Option<LayerAfter>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerAfter {
    pub digest: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub written: WriteMethod,
    /// Tar bytes compressed again to write it (none for `copied`).
    pub recompressed_bytes: u64,
}

/// How a layer's blob was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMethod {
    /// The source's blob, byte for byte.
    Copied,
    /// Every kept byte compressed again.
    Recompressed,
    /// The source's deflate blocks copied where the change left them and the 32 KiB
    /// before them alone; the rest compressed again.
    Spliced,
}

impl LayerChange {
    /// What happened to the layer, and how its blob was written.
    fn change(&self) -> String {
        let out = match (self.entries_to_remove, self.entries_to_strip) {
            (out, 0) => format!("{out} entries out"),
            (0, stripped) => format!("{stripped} stripped"),
            (out, stripped) => format!("{out} entries out, {stripped} stripped"),
        };
        let out = match self.squashed_into {
            Some(into) => format!("squashed into layer {into}; {out}"),
            None => out,
        };
        match (&self.after, self.changed) {
            (Some(after), _) if after.written == WriteMethod::Spliced => format!(
                "{out}; spliced, {} compressed again",
                human(after.recompressed_bytes)
            ),
            (Some(after), true) if after.written == WriteMethod::Recompressed => {
                format!("{out}; recompressed")
            }
            (Some(after), false) if after.written == WriteMethod::Recompressed => {
                "recompressed".into()
            }
            (_, true) => out,
            (_, false) => "kept as is".into(),
        }
    }
}

fn opt(value: Option<u64>) -> String {
    value.map_or_else(|| "-".into(), human)
}

impl ApplyReport {
    pub fn to_json(&self) -> String {
        super::json(self)
    }

    fn headline(&self) -> String {
        if self.dry_run {
            format!(
                "{} -> {} (dry run: nothing written)",
                self.image.reference, self.target
            )
        } else {
            format!(
                "{} -> {} ({})",
                self.image.reference,
                self.target,
                self.manifest_digest.as_deref().unwrap_or("-")
            )
        }
    }

    fn totals(&self) -> [(String, String, String, String); 2] {
        [
            (
                "compressed (pull)".into(),
                human(self.before.compressed_bytes),
                human(self.projected.compressed_bytes),
                opt(self.after.map(|a| a.compressed_bytes)),
            ),
            (
                "uncompressed (disk)".into(),
                human(self.before.uncompressed_bytes),
                human(self.projected.uncompressed_bytes),
                opt(self.after.map(|a| a.uncompressed_bytes)),
            ),
        ]
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.headline());
        if self.applied.is_empty() {
            let _ = writeln!(
                out,
                "Nothing to apply: advise has no in-image suggestion this slice makes."
            );
        }
        let mut table = new_table(
            &[
                "suggestion",
                "files",
                "layers",
                "projected (pull)",
                "projected (disk)",
                "saved (pull)",
                "saved (disk)",
            ],
            &[1, 3, 4, 5, 6],
        );
        for s in &self.applied {
            table.add_row(vec![
                format!("{} ({})", s.id, s.confidence.as_str()),
                s.files.to_string(),
                s.layers
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                human(s.projected_saved_compressed_bytes),
                human(s.projected_saved_bytes),
                opt(s.saved_compressed_bytes),
                opt(s.saved_bytes),
            ]);
        }
        let _ = writeln!(out, "{table}");
        let mut layers = new_table(
            &[
                "layer",
                "digest",
                "change",
                "before (pull)",
                "after (pull)",
                "before (disk)",
                "after (disk)",
            ],
            &[0, 3, 4, 5, 6],
        );
        for l in &self.layers {
            layers.add_row(vec![
                l.layer.to_string(),
                match &l.after {
                    Some(after) if after.digest != l.digest => {
                        format!(
                            "{} -> {}",
                            short_digest(&l.digest),
                            short_digest(&after.digest)
                        )
                    }
                    _ => short_digest(&l.digest),
                },
                l.change(),
                human(l.compressed_bytes),
                opt(l.after.as_ref().map(|a| a.compressed_bytes)),
                human(l.uncompressed_bytes),
                opt(l.after.as_ref().map(|a| a.uncompressed_bytes)),
            ]);
        }
        let _ = writeln!(out, "{layers}");
        let mut totals = new_table(&["image", "before", "projected", "after"], &[1, 2, 3]);
        for (what, before, projected, after) in self.totals() {
            totals.add_row(vec![what, before, projected, after]);
        }
        let _ = writeln!(out, "{totals}");
        for s in &self.applied {
            // A strip's binaries get a line each, with their sizes.
            if !s.paths.is_empty() && s.binaries.is_empty() {
                let _ = writeln!(out, "{}: {}", s.id, s.paths.join(" "));
            }
            for b in &s.binaries {
                let _ = writeln!(out, "{}: {}", s.id, binary_line(b));
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        self.markdown_under("## ballast apply")
    }

    /// The Markdown report under `heading` (a platform's, inside an index's report).
    fn markdown_under(&self, heading: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{heading}\n\n{}\n", text(&self.headline()));
        let mut table = MarkdownTable::new(&[
            "suggestion",
            ">files",
            "layers",
            ">projected (pull)",
            ">projected (disk)",
            ">saved (pull)",
            ">saved (disk)",
        ]);
        for s in &self.applied {
            table.row(vec![
                code(s.id.key()),
                s.files.to_string(),
                s.layers
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                human(s.projected_saved_compressed_bytes),
                human(s.projected_saved_bytes),
                opt(s.saved_compressed_bytes),
                opt(s.saved_bytes),
            ]);
        }
        out.push_str(&table.render());
        out.push('\n');
        let mut totals = MarkdownTable::new(&["image", ">before", ">projected", ">after"]);
        for (what, before, projected, after) in self.totals() {
            totals.row(vec![what, before, projected, after]);
        }
        out.push_str(&totals.render());
        let binaries: Vec<(SuggestionKind, &StrippedBinary)> = self
            .applied
            .iter()
            .flat_map(|s| s.binaries.iter().map(move |b| (s.id, b)))
            .collect();
        if !binaries.is_empty() {
            out.push('\n');
            for (id, b) in binaries {
                let _ = writeln!(out, "- {}: {}", code(id.key()), text(&binary_line(b)));
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n> {}", text(note));
        }
        out
    }
}

impl MultiApplyReport {
    pub fn to_json(&self) -> String {
        super::json(self)
    }

    fn headline(&self) -> String {
        let source = self
            .platforms
            .first()
            .map_or("-", |p| p.image.reference.as_str());
        let platforms = self
            .platforms
            .iter()
            .map(|p| p.image.platform.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match &self.index_digest {
            None => format!(
                "{source} -> {} (dry run: nothing written): an index of {} platforms ({platforms})",
                self.target,
                self.platforms.len()
            ),
            Some(digest) => format!(
                "{source} -> {} ({digest}): an index of {} platforms ({platforms})",
                self.target,
                self.platforms.len()
            ),
        }
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.headline());
        for platform in &self.platforms {
            let _ = writeln!(out, "\n== {} ==", platform.image.platform);
            out.push_str(&platform.to_table());
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## ballast apply\n\n{}", text(&self.headline()));
        for platform in &self.platforms {
            out.push('\n');
            out.push_str(
                &platform.markdown_under(&format!("### {}", code(&platform.image.platform))),
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n> {}", text(note));
        }
        out
    }
}

/// `/app (layer 1): 9.1 MB -> 5.8 MB (projected 5.8 MB)`.
fn binary_line(b: &StrippedBinary) -> String {
    format!(
        "{} (layer {}): {} -> {} (projected {})",
        b.path,
        b.layer,
        human(b.size),
        opt(b.size_after),
        human(b.projected_size)
    )
}
