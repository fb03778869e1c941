//! The `advise` report.

use std::fmt::Write as _;

use serde::Serialize;

use super::inspect::ImageInfo;
use super::markdown::{code, text};
use super::{new_table, MarkdownTable, SCHEMA_VERSION};
use crate::advice::{Advice, Confidence, Projection, Suggestion};
use crate::inspect::ImageAnalysis;
use crate::size::human;

#[derive(Debug, Clone, Serialize)]
pub struct AdviseReport {
    pub schema_version: u32,
    pub image: ImageInfo,
    pub current: Current,
    pub suggestions: Vec<Suggestion>,
    pub projected: Projection,
    pub measurements: Vec<crate::advice::LayerMeasurement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Current {
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

/// The ranked list as a Markdown table (also used by `ballast report`).
pub fn suggestions_table(suggestions: &[Suggestion]) -> String {
    let mut table = MarkdownTable::new(&[
        ">#",
        "suggestion",
        "id",
        ">saves (pull)",
        ">saves (disk)",
        "confidence",
    ]);
    for (index, s) in suggestions.iter().enumerate() {
        table.row(vec![
            (index + 1).to_string(),
            text(&s.title),
            code(&s.id),
            human(s.saved_compressed_bytes),
            human(s.saved_bytes),
            confidence(s.confidence).to_string(),
        ]);
    }
    table.render()
}

fn confidence(c: Confidence) -> &'static str {
    match c {
        Confidence::Exact => "exact",
        Confidence::Measured => "measured",
        Confidence::Estimate => "estimate",
    }
}

impl AdviseReport {
    pub fn build(analysis: &ImageAnalysis, advice: Advice) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            image: ImageInfo::of(analysis),
            current: Current {
                compressed_bytes: analysis.compressed_bytes(),
                uncompressed_bytes: analysis.uncompressed_bytes(),
            },
            suggestions: advice.suggestions,
            projected: advice.projected,
            measurements: advice.measurements,
        }
    }

    pub fn to_json(&self) -> String {
        super::json(self)
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}  {}", self.image.reference, self.image.platform);
        if self.suggestions.is_empty() {
            let _ = writeln!(
                out,
                "No suggestions: nothing in this image shows a saving ballast can stand behind."
            );
            return out;
        }
        let mut table = new_table(
            &[
                "#",
                "suggestion",
                "saves (pull)",
                "saves (disk)",
                "confidence",
            ],
            &[0, 2, 3],
        );
        for (index, s) in self.suggestions.iter().enumerate() {
            table.add_row(vec![
                (index + 1).to_string(),
                format!("{} ({})", s.title, s.id),
                human(s.saved_compressed_bytes),
                human(s.saved_bytes),
                confidence(s.confidence).to_string(),
            ]);
        }
        let _ = writeln!(out, "{table}\n");
        for (index, s) in self.suggestions.iter().enumerate() {
            let _ = writeln!(out, "{}. {} [{}]", index + 1, s.title, s.id);
            let _ = writeln!(
                out,
                "   saves {} compressed ({}), {} uncompressed ({})",
                human(s.saved_compressed_bytes),
                confidence(s.saved_compressed_confidence),
                human(s.saved_bytes),
                confidence(s.saved_bytes_confidence)
            );
            for line in &s.evidence {
                let _ = writeln!(out, "   evidence: {line}");
            }
            if let Some(source) = &s.source {
                let _ = writeln!(out, "   source: {source}");
            }
            if !s.paths.is_empty() {
                let shown: Vec<&str> = s.paths.iter().take(5).map(String::as_str).collect();
                let more = s.paths.len().saturating_sub(shown.len());
                let _ = writeln!(
                    out,
                    "   files: {}{}",
                    shown.join(", "),
                    if more > 0 {
                        format!(" (+{more})")
                    } else {
                        String::new()
                    }
                );
            }
            let _ = writeln!(out, "   fix:");
            for line in s.fix.lines() {
                let _ = writeln!(out, "     {line}");
            }
            for effect in &s.side_effects {
                let _ = writeln!(out, "   side effect: {effect}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "Now {} compressed / {} uncompressed; with every exact and measured suggestion (zstd aside): {} / {}.",
            human(self.current.compressed_bytes),
            human(self.current.uncompressed_bytes),
            human(self.projected.compressed_bytes),
            human(self.projected.uncompressed_bytes)
        );
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## Suggestions for {}\n", code(&self.image.reference));
        if self.suggestions.is_empty() {
            let _ = writeln!(
                out,
                "No suggestions: nothing in this image shows a saving ballast can stand behind."
            );
            return out;
        }
        let _ = writeln!(out, "{}", suggestions_table(&self.suggestions));
        let _ = writeln!(
            out,
            "Projected with every exact and measured suggestion applied (zstd aside): **{}** compressed, **{}** uncompressed (now {} / {}).\n",
            human(self.projected.compressed_bytes),
            human(self.projected.uncompressed_bytes),
            human(self.current.compressed_bytes),
            human(self.current.uncompressed_bytes)
        );
        for (index, s) in self.suggestions.iter().enumerate() {
            let _ = writeln!(
                out,
                "### {}. {} ({})\n",
                index + 1,
                text(&s.title),
                code(&s.id)
            );
            let _ = writeln!(
                out,
                "Saves {} compressed ({}), {} uncompressed ({}).\n",
                human(s.saved_compressed_bytes),
                confidence(s.saved_compressed_confidence),
                human(s.saved_bytes),
                confidence(s.saved_bytes_confidence)
            );
            for line in &s.evidence {
                let _ = writeln!(out, "- {}", text(line));
            }
            if let Some(source) = &s.source {
                let _ = writeln!(out, "- source: {}", text(source));
            }
            for effect in &s.side_effects {
                let _ = writeln!(out, "- side effect: {}", text(effect));
            }
            let _ = writeln!(out, "\n```\n{}\n```\n", s.fix.replace("```", "'''"));
        }
        out
    }
}
