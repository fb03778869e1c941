//! The `gate` verdict: one line per check with its value, limit and verdict.

use std::fmt::Write as _;

use serde::Serialize;

use super::markdown::text;
use super::{new_table, MarkdownTable};
use crate::gate::{Baseline, Check};
use crate::image::ImageInfo;
use crate::image::SCHEMA_VERSION;

#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    pub schema_version: u32,
    pub image: ImageInfo,
    pub pass: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    pub checks: Vec<Check>,
}

impl GateReport {
    pub fn new(image: ImageInfo, baseline: Option<Baseline>, checks: Vec<Check>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            pass: checks.iter().all(|c| c.pass),
            image,
            baseline,
            checks,
        }
    }

    pub fn to_json(&self) -> String {
        super::json(self)
    }

    fn verdict(&self) -> String {
        let failed = self.checks.iter().filter(|c| !c.pass).count();
        if failed == 0 {
            format!("PASS: {} checks hold", self.checks.len())
        } else {
            format!("FAIL: {failed} of {} checks failed", self.checks.len())
        }
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ballast gate {}  {}",
            self.image.reference, self.image.digest
        );
        let mut table = new_table(&["rule", "value", "verdict"], &[]);
        for check in &self.checks {
            table.add_row(vec![
                check.rule.clone(),
                check.detail.clone(),
                if check.pass { "pass" } else { "FAIL" }.to_string(),
            ]);
        }
        let _ = writeln!(out, "{table}");
        let _ = writeln!(out, "{}", self.verdict());
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let icon = if self.pass { "✅" } else { "❌" };
        let _ = writeln!(out, "### {icon} ballast gate: {}\n", text(&self.verdict()));
        let _ = writeln!(
            out,
            "Image {} (`{}`)\n",
            text(&self.image.reference),
            self.image.digest
        );
        let mut table = MarkdownTable::new(&["rule", "value and limit", "verdict"]);
        for check in &self.checks {
            table.row(vec![
                format!("`{}`", check.rule),
                text(&check.detail),
                if check.pass {
                    "pass".into()
                } else {
                    "**FAIL**".into()
                },
            ]);
        }
        let _ = write!(out, "{}", table.render());
        out
    }

    /// GitHub Actions workflow commands: an `::error::` annotation per failed check,
    /// then the table for the log.
    pub fn to_github(&self) -> String {
        let mut out = String::new();
        for check in self.checks.iter().filter(|c| !c.pass) {
            let _ = writeln!(
                out,
                "::error title=ballast gate {}::{}",
                escape_workflow(&check.rule),
                escape_workflow(&format!("{}: {}", self.image.reference, check.detail))
            );
        }
        out.push_str(&self.to_table());
        out
    }
}

/// Workflow command data escaping (GitHub's `escapeData`).
fn escape_workflow(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
        .replace(':', "%3A")
        .replace(',', "%2C")
}
