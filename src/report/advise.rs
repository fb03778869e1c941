//! The `advise` report.

use std::fmt::Write as _;

use serde::Serialize;

use super::markdown::{code, fence_for, text};
use super::{new_table, MarkdownTable};
use crate::advice::{Advice, Mention, Projection, Suggestion};
use crate::image::ImageAnalysis;
use crate::image::ImageInfo;
use crate::image::SCHEMA_VERSION;
use crate::size::human;

#[derive(Debug, Clone, Serialize)]
pub struct AdviseReport {
    pub schema_version: u32,
    pub image: ImageInfo,
    pub current: Current,
    pub suggestions: Vec<Suggestion>,
    pub projected: Projection,
    pub measurements: Vec<crate::advice::LayerMeasurement>,
    /// Changes named with their costs but left out of the ranking.
    pub not_ranked: Vec<Mention>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Current {
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

/// The rows a suggestion overlaps with, as `#2, #5` (empty when it adds up with all).
pub fn overlap_rows(suggestions: &[Suggestion], s: &Suggestion) -> String {
    suggestions
        .iter()
        .enumerate()
        .filter(|(_, other)| s.overlaps_with.contains(&other.id))
        .map(|(index, _)| format!("#{}", index + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the table's column means, said once under it.
pub const OVERLAP_NOTE: &str = "Rows that name others in *not with* save some of the same bytes: they are alternatives, and their savings do not add up. The projection counts every byte once.";

/// The ranked list as a Markdown table (also used by `ballast report`).
pub fn suggestions_table(suggestions: &[Suggestion]) -> String {
    let mut table = MarkdownTable::new(&[
        ">#",
        "suggestion",
        "id",
        ">saves (pull)",
        ">saves (disk)",
        "confidence",
        "not with",
    ]);
    for (index, s) in suggestions.iter().enumerate() {
        table.row(vec![
            (index + 1).to_string(),
            text(&s.title),
            code(s.id.key()),
            human(s.saved_compressed_bytes),
            human(s.saved_bytes),
            s.confidence.as_str().to_string(),
            overlap_rows(suggestions, s),
        ]);
    }
    let mut out = table.render();
    if suggestions.iter().any(|s| !s.overlaps_with.is_empty()) {
        out.push('\n');
        out.push_str(OVERLAP_NOTE);
        out.push('\n');
    }
    out
}

/// A suggestion's evidence, source, side effects and fix, as Markdown (also used by
/// `ballast report`).
pub fn suggestion_details_markdown(s: &Suggestion) -> String {
    let mut out = String::new();
    for line in &s.evidence {
        let _ = writeln!(out, "- {}", text(line));
    }
    if let Some(source) = &s.source {
        let _ = writeln!(out, "- source: {}", text(source));
    }
    for effect in &s.side_effects {
        let _ = writeln!(out, "- side effect: {}", text(effect));
    }
    let fence = fence_for(&s.fix);
    let _ = writeln!(out, "\n{fence}\n{}\n{fence}\n", s.fix.trim_end());
    out
}

/// Changes named but not ranked, with what they cost (also used by `ballast report`).
pub fn not_ranked_markdown(mentions: &[Mention], heading: &str) -> String {
    let mut out = String::new();
    for m in mentions {
        let _ = writeln!(
            out,
            "{heading} Not ranked: {} ({})
",
            text(&m.title),
            code(m.id.key())
        );
        let _ = writeln!(
            out,
            "Not ranked because {}.
",
            text(&m.why_not_ranked)
        );
        if !m.paths.is_empty() {
            let paths: Vec<String> = m.paths.iter().map(|p| code(p)).collect();
            let _ = writeln!(out, "- files: {}", paths.join(", "));
        }
        for line in &m.evidence {
            let _ = writeln!(out, "- {}", text(line));
        }
        for effect in &m.side_effects {
            let _ = writeln!(out, "- cost: {}", text(effect));
        }
        let _ = writeln!(
            out,
            "- source: {}
",
            text(&m.source)
        );
    }
    out
}

impl AdviseReport {
    pub fn build(analysis: &ImageAnalysis, advice: Advice) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            image: analysis.info(),
            current: Current {
                compressed_bytes: analysis.compressed_bytes(),
                uncompressed_bytes: analysis.uncompressed_bytes(),
            },
            suggestions: advice.suggestions,
            projected: advice.projected,
            measurements: advice.measurements,
            not_ranked: advice.not_ranked,
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
            self.not_ranked_text(&mut out);
            return out;
        }
        let mut table = new_table(
            &[
                "#",
                "suggestion",
                "saves (pull)",
                "saves (disk)",
                "confidence",
                "not with",
            ],
            &[0, 2, 3],
        );
        for (index, s) in self.suggestions.iter().enumerate() {
            table.add_row(vec![
                (index + 1).to_string(),
                format!("{} ({})", s.title, s.id),
                human(s.saved_compressed_bytes),
                human(s.saved_bytes),
                s.confidence.as_str().to_string(),
                overlap_rows(&self.suggestions, s),
            ]);
        }
        let _ = writeln!(out, "{table}\n");
        if self.suggestions.iter().any(|s| !s.overlaps_with.is_empty()) {
            let _ = writeln!(out, "{}\n", OVERLAP_NOTE.replace('*', ""));
        }
        for (index, s) in self.suggestions.iter().enumerate() {
            let _ = writeln!(out, "{}. {} [{}]", index + 1, s.title, s.id);
            let _ = writeln!(
                out,
                "   saves {} compressed ({}), {} uncompressed ({})",
                human(s.saved_compressed_bytes),
                s.saved_compressed_confidence.as_str(),
                human(s.saved_bytes),
                s.saved_bytes_confidence.as_str()
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
            "Now {} compressed / {} uncompressed; with {}: {} / {}.",
            human(self.current.compressed_bytes),
            human(self.current.uncompressed_bytes),
            self.projected.basis(),
            human(self.projected.compressed_bytes),
            human(self.projected.uncompressed_bytes)
        );
        self.not_ranked_text(&mut out);
        out
    }

    fn not_ranked_text(&self, out: &mut String) {
        for m in &self.not_ranked {
            let _ = writeln!(out, "\nNot ranked: {} [{}]", m.title, m.id);
            let _ = writeln!(out, "   why: {}", m.why_not_ranked);
            if !m.paths.is_empty() {
                let _ = writeln!(out, "   files: {}", m.paths.join(", "));
            }
            for line in &m.evidence {
                let _ = writeln!(out, "   evidence: {line}");
            }
            for effect in &m.side_effects {
                let _ = writeln!(out, "   cost: {effect}");
            }
            let _ = writeln!(out, "   source: {}", m.source);
        }
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## Suggestions for {}\n", code(&self.image.reference));
        if self.suggestions.is_empty() {
            let _ = writeln!(
                out,
                "No suggestions: nothing in this image shows a saving ballast can stand behind.\n"
            );
            out.push_str(&not_ranked_markdown(&self.not_ranked, "###"));
            return out;
        }
        let _ = writeln!(out, "{}", suggestions_table(&self.suggestions));
        let _ = writeln!(
            out,
            "Projected with {}: **{}** compressed, **{}** uncompressed (now {} / {}).\n",
            text(&self.projected.basis()),
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
                code(s.id.key())
            );
            let _ = writeln!(
                out,
                "Saves {} compressed ({}), {} uncompressed ({}).\n",
                human(s.saved_compressed_bytes),
                s.saved_compressed_confidence.as_str(),
                human(s.saved_bytes),
                s.saved_bytes_confidence.as_str()
            );
            out.push_str(&suggestion_details_markdown(s));
        }
        out.push_str(&not_ranked_markdown(&self.not_ranked, "###"));
        out
    }
}
