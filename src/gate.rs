//! `ballast gate`: budgets a CI job checks an image against, from flags or the
//! `[gate]` table of `ballast.toml`, with a baseline from a registry image or from
//! the JSON report of an earlier `ballast inspect`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::binary::attribution::summary::{self as attribution_summary, SavedAttribution};
use crate::binary::Attribution;
use crate::size::{human, human_delta, parse_size};

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{what}: {reason}")]
    Budget { what: String, reason: String },
    #[error("baseline {path}: {reason}")]
    Baseline { path: PathBuf, reason: String },
}

impl crate::error::Fault for GateError {
    /// Budget files, flags and baselines are all the user's.
    fn is_bad_input(&self) -> bool {
        true
    }
}

/// A growth budget: relative or absolute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Growth {
    Percent(f64),
    Bytes(u64),
}

impl Growth {
    pub fn parse(text: &str) -> Result<Self, GateError> {
        Self::parse_for("--max-growth", text)
    }

    /// As [`Growth::parse`], errors naming `flag`.
    pub fn parse_for(flag: &str, text: &str) -> Result<Self, GateError> {
        let trimmed = text.trim();
        if let Some(number) = trimmed.strip_suffix('%') {
            let value: f64 = number.trim().parse().map_err(|_| GateError::Budget {
                what: flag.into(),
                reason: format!("{text:?} is not a percentage such as 10%"),
            })?;
            if !value.is_finite() || value < 0.0 {
                return Err(GateError::Budget {
                    what: flag.into(),
                    reason: format!("{text:?} must be zero or more"),
                });
            }
            return Ok(Growth::Percent(value));
        }
        parse_size(trimmed)
            .map(Growth::Bytes)
            .map_err(|e| GateError::Budget {
                what: flag.into(),
                reason: format!("{e}, or a percentage such as 10%"),
            })
    }
}

/// Every budget, all optional.
#[derive(Debug, Clone, Default)]
pub struct Budgets {
    pub baseline: Option<String>,
    pub max_size: Option<u64>,
    pub max_uncompressed_size: Option<u64>,
    pub max_growth: Vec<Growth>,
    /// Growth of the main binary (file bytes) against the baseline's.
    pub max_binary_growth: Vec<Growth>,
    pub max_wasted: Option<u64>,
    pub min_efficiency: Option<f64>,
    pub max_cold_start: Option<f64>,
    pub profile: Option<String>,
    pub max_monthly_cost: Option<f64>,
    pub no_unstripped: bool,
}

impl Budgets {
    pub fn is_empty(&self) -> bool {
        self.max_size.is_none()
            && self.max_uncompressed_size.is_none()
            && self.max_growth.is_empty()
            && self.max_binary_growth.is_empty()
            && self.max_wasted.is_none()
            && self.min_efficiency.is_none()
            && self.max_cold_start.is_none()
            && self.max_monthly_cost.is_none()
            && !self.no_unstripped
    }

    /// Flags win over the file, key by key.
    pub fn overlay(mut self, flags: Budgets) -> Budgets {
        if flags.baseline.is_some() {
            self.baseline = flags.baseline;
        }
        self.max_size = flags.max_size.or(self.max_size);
        self.max_uncompressed_size = flags.max_uncompressed_size.or(self.max_uncompressed_size);
        if !flags.max_growth.is_empty() {
            self.max_growth = flags.max_growth;
        }
        if !flags.max_binary_growth.is_empty() {
            self.max_binary_growth = flags.max_binary_growth;
        }
        self.max_wasted = flags.max_wasted.or(self.max_wasted);
        self.min_efficiency = flags.min_efficiency.or(self.min_efficiency);
        self.max_cold_start = flags.max_cold_start.or(self.max_cold_start);
        self.profile = flags.profile.or(self.profile);
        self.max_monthly_cost = flags.max_monthly_cost.or(self.max_monthly_cost);
        self.no_unstripped |= flags.no_unstripped;
        self
    }

    pub fn validate(&self) -> Result<(), GateError> {
        if let Some(efficiency) = self.min_efficiency {
            if !(0.0..=1.0).contains(&efficiency) {
                return Err(GateError::Budget {
                    what: "--min-efficiency".into(),
                    reason: format!("{efficiency} is not between 0 and 1"),
                });
            }
        }
        for (what, value) in [
            ("--max-cold-start", self.max_cold_start),
            ("--max-monthly-cost", self.max_monthly_cost),
        ] {
            if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(GateError::Budget {
                    what: what.into(),
                    reason: "must be zero or more".into(),
                });
            }
        }
        for (flag, growth) in [
            ("--max-growth", &self.max_growth),
            ("--max-binary-growth", &self.max_binary_growth),
        ] {
            let percents = growth
                .iter()
                .filter(|g| matches!(g, Growth::Percent(_)))
                .count();
            let bytes = growth.len() - percents;
            if percents > 1 || bytes > 1 {
                return Err(GateError::Budget {
                    what: flag.into(),
                    reason: "give at most one percentage and one absolute budget".into(),
                });
            }
            if !growth.is_empty() && self.baseline.is_none() {
                return Err(GateError::Budget {
                    what: flag.into(),
                    reason:
                        "needs --baseline (an image or a saved `ballast inspect --format json` report)"
                            .into(),
                });
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateTable {
    baseline: Option<String>,
    max_size: Option<SizeValue>,
    max_uncompressed_size: Option<SizeValue>,
    max_growth: Option<GrowthValue>,
    max_binary_growth: Option<GrowthValue>,
    max_wasted: Option<SizeValue>,
    min_efficiency: Option<f64>,
    max_cold_start: Option<f64>,
    profile: Option<String>,
    max_monthly_cost: Option<f64>,
    no_unstripped: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GrowthValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct ConfigFile {
    gate: Option<GateTable>,
}

/// Reads the `[gate]` table of a `ballast.toml`; other tables (`[[pricing]]`, `[usage]`,
/// `[[profile]]`) are the cost command's.
pub fn load_config(path: &Path) -> Result<Budgets, GateError> {
    let config_error = |reason: String| GateError::Config {
        path: path.to_path_buf(),
        reason,
    };
    let text = crate::input::read_text_capped(path, crate::input::CONFIG_LIMIT)
        .map_err(|e| config_error(e.to_string()))?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|span| {
            text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        });
        config_error(match line {
            Some(line) => format!("line {line}: {}", e.message()),
            None => e.message().to_string(),
        })
    })?;
    let Some(table) = file.gate else {
        return Ok(Budgets::default());
    };
    let size = |key: &str, value: Option<SizeValue>| -> Result<Option<u64>, GateError> {
        match value {
            None => Ok(None),
            Some(SizeValue::Bytes(bytes)) => Ok(Some(bytes)),
            Some(SizeValue::Text(text)) => parse_size(&text)
                .map(Some)
                .map_err(|e| config_error(format!("gate.{key}: {e}"))),
        }
    };
    let growth = |key: &str, value: Option<GrowthValue>| -> Result<Vec<Growth>, GateError> {
        let list = match value {
            None => vec![],
            Some(GrowthValue::One(text)) => vec![text],
            Some(GrowthValue::Many(list)) => list,
        };
        list.iter()
            .map(|text| Growth::parse(text).map_err(|e| config_error(format!("gate.{key}: {e}"))))
            .collect()
    };
    Ok(Budgets {
        baseline: table.baseline,
        max_size: size("max_size", table.max_size)?,
        max_uncompressed_size: size("max_uncompressed_size", table.max_uncompressed_size)?,
        max_growth: growth("max_growth", table.max_growth)?,
        max_binary_growth: growth("max_binary_growth", table.max_binary_growth)?,
        max_wasted: size("max_wasted", table.max_wasted)?,
        min_efficiency: table.min_efficiency,
        max_cold_start: table.max_cold_start,
        profile: table.profile,
        max_monthly_cost: table.max_monthly_cost,
        no_unstripped: table.no_unstripped.unwrap_or(false),
    })
}

/// The baseline's sizes, from an image or a saved report.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub reference: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// The binary the binary-growth budget compares with: the one at the image's
    /// main binary's path, else the baseline's own main binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_binary: Option<BinarySide>,
}

/// A main binary as the binary-growth budget sees it.
#[derive(Debug, Clone, Serialize)]
pub struct BinarySide {
    /// Absolute path inside the image.
    pub path: String,
    pub size: u64,
    /// Only to name what grew; the inspect report holds it all.
    #[serde(skip)]
    pub attribution: Option<Attribution>,
}

impl BinarySide {
    fn of(path: &str, report: &crate::binary::BinaryReport) -> Self {
        BinarySide {
            path: format!("/{}", path.trim_start_matches('/')),
            size: report.size,
            attribution: report.attribution.clone(),
        }
    }
}

/// Reads the sizes out of a saved `ballast inspect --format json` report, and the
/// binary at `main_path` (absolute), else its largest application executable.
pub fn baseline_from_report(path: &Path, main_path: Option<&str>) -> Result<Baseline, GateError> {
    let baseline_error = |reason: String| GateError::Baseline {
        path: path.to_path_buf(),
        reason,
    };
    let text = crate::input::read_capped(path, crate::input::BASELINE_LIMIT)
        .map_err(|e| baseline_error(e.to_string()))?;
    let report: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| baseline_error(format!("not JSON: {e}")))?;
    match report["schema_version"].as_u64() {
        Some(version) if version == u64::from(crate::image::SCHEMA_VERSION) => {}
        Some(version) => {
            return Err(baseline_error(format!(
                "schema_version {version}; this ballast reads {}",
                crate::image::SCHEMA_VERSION
            )))
        }
        None => {
            return Err(baseline_error(
                "no schema_version: not a ballast inspect report".into(),
            ))
        }
    }
    let number = |key: &str| {
        let value = &report["totals"][key];
        value.as_u64().ok_or_else(|| {
            baseline_error(if value.is_null() {
                format!("totals.{key} is missing: not a ballast inspect report")
            } else {
                format!(
                    "totals.{key} is {}, not a byte count (a whole number >= 0)",
                    crate::text::escape_control(&value.to_string())
                )
            })
        })
    };
    Ok(Baseline {
        reference: report["image"]["reference"]
            .as_str()
            .unwrap_or("(saved report)")
            .to_string(),
        compressed_bytes: number("compressed_bytes")?,
        uncompressed_bytes: number("uncompressed_bytes")?,
        main_binary: saved_main_binary(&report, main_path).map_err(baseline_error)?,
    })
}

/// The saved report's binary at `main_path`, else the largest executable outside the
/// system directories (as `inspect` picks a main program with no config to go by).
fn saved_main_binary(
    report: &serde_json::Value,
    main_path: Option<&str>,
) -> Result<Option<BinarySide>, String> {
    let Some(binaries) = report["binaries"].as_array() else {
        return Ok(None);
    };
    let application = |b: &&serde_json::Value| {
        matches!(b["elf_type"].as_str(), Some("exec" | "pie"))
            && b["path"]
                .as_str()
                .is_some_and(|p| !crate::category::is_system_path(p.trim_start_matches('/')))
    };
    let size = |b: &serde_json::Value| b["size"].as_u64().unwrap_or(0);
    let chosen = main_path
        .and_then(|main| binaries.iter().find(|b| b["path"].as_str() == Some(main)))
        .or_else(|| binaries.iter().filter(application).max_by_key(|b| size(b)));
    let Some(binary) = chosen else {
        return Ok(None);
    };
    let path = binary["path"]
        .as_str()
        .ok_or("a binary without a path: not a ballast inspect report")?;
    let shown = crate::text::escape_control(path);
    let bytes = binary["size"]
        .as_u64()
        .ok_or_else(|| format!("binary {shown}: size is not a byte count"))?;
    let attribution = match &binary["attribution"] {
        serde_json::Value::Null => None,
        value => Some(Attribution::from(
            SavedAttribution::deserialize(value)
                .map_err(|e| format!("binary {shown}: attribution: {e}"))?,
        )),
    };
    Ok(Some(BinarySide {
        path: path.to_string(),
        size: bytes,
        attribution,
    }))
}

/// Where the baseline comes from: a saved report (a `.json` name or an existing
/// file) or an image reference.
pub enum BaselineSource<'a> {
    Report(&'a Path),
    Image(&'a str),
}

impl<'a> BaselineSource<'a> {
    pub fn of(text: &'a str) -> Self {
        if text.ends_with(".json") || Path::new(text).is_file() {
            BaselineSource::Report(Path::new(text))
        } else {
            BaselineSource::Image(text)
        }
    }
}

impl Baseline {
    /// The sizes of an image read as the baseline, and its binary at `main_path`
    /// (absolute) when it has one there, else its own main binary.
    pub fn of_image(analysis: &crate::image::ImageAnalysis, main_path: Option<&str>) -> Self {
        let same_path = main_path
            .map(|p| p.trim_start_matches('/'))
            .and_then(|p| Some((p, analysis.visible_binary(p)?)))
            .filter(|(_, report)| report.elf_type.is_executable());
        let main_binary = same_path
            .map(|(path, report)| BinarySide::of(path, report))
            .or_else(|| {
                analysis
                    .main_program()
                    .map(|m| BinarySide::of(&m.path, m.report))
            });
        Self {
            reference: analysis.image.reference.clone(),
            compressed_bytes: analysis.compressed_bytes(),
            uncompressed_bytes: analysis.uncompressed_bytes(),
            main_binary,
        }
    }
}

impl Measured {
    /// What the image's own bytes say: sizes, waste, dive's efficiency and the
    /// binaries strip would shrink (largest first).
    pub fn of(analysis: &crate::image::ImageAnalysis) -> Self {
        let mut measured = Measured {
            compressed_bytes: analysis.compressed_bytes(),
            uncompressed_bytes: analysis.uncompressed_bytes(),
            wasted_bytes: analysis.fs.wasted_bytes(),
            dive_efficiency: analysis.fs.dive.efficiency,
            main_binary: analysis
                .main_program()
                .map(|m| BinarySide::of(&m.path, m.report)),
            ..Default::default()
        };
        let mut binaries = analysis.visible_binaries();
        binaries.sort_by(|a, b| {
            b.report
                .size
                .cmp(&a.report.size)
                .then_with(|| a.report.path.cmp(&b.report.path))
        });
        for binary in binaries {
            let path = format!("/{}", binary.report.path);
            match &binary.report.strip {
                Some(strip) if strip.saved_by_strip_all == 0 => {}
                Some(strip) => measured.unstripped.push((path, strip.saved_by_strip_all)),
                None => measured.unknown_strip.push(path),
            }
        }
        measured
    }

    /// Adds the modelled cold start and monthly cost, priced with the pricing, usage
    /// and profiles of `config` (the budget file) on top of the built-in ones.
    pub fn price(
        &mut self,
        analysis: &crate::image::ImageAnalysis,
        budgets: &Budgets,
        config: Option<&Path>,
    ) -> Result<(), crate::cost::CostError> {
        use crate::cost;
        let pricing_table = cost::pricing::load(config)?;
        let pricing = pricing_table.select(None)?;
        let usage = cost::usage::load(config)?;
        let profiles = cost::coldstart::load(config)?;
        let profile = profiles.select(budgets.profile.as_deref())?;
        let estimate = cost::estimate(&[analysis.sizes()], pricing, &usage, &profiles, profile)?;
        if let Some(image_cost) = estimate.images.first() {
            self.cold_start_s = Some(image_cost.cold_start.total_s);
            self.cold_start_profile = Some(profile.name.clone());
            self.monthly_cost_usd = Some(estimate.set.total_usd_month);
        }
        Ok(())
    }
}

/// What the gate measured of the image.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub wasted_bytes: u64,
    pub dive_efficiency: f64,
    pub cold_start_s: Option<f64>,
    pub cold_start_profile: Option<String>,
    pub monthly_cost_usd: Option<f64>,
    /// Binaries carrying debug info or symbols: (path, bytes strip would remove).
    pub unstripped: Vec<(String, u64)>,
    /// Binaries whose strip figures could not be computed.
    pub unknown_strip: Vec<String>,
    /// The service's binary (see `ImageAnalysis::main_program`).
    pub main_binary: Option<BinarySide>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub rule: String,
    /// The image's value (bytes, a ratio, seconds or USD, as the rule says).
    pub value: f64,
    pub limit: f64,
    pub pass: bool,
    /// The value and limit as a person reads them.
    pub detail: String,
}

pub fn evaluate(budgets: &Budgets, measured: &Measured, baseline: Option<&Baseline>) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut bytes_rule = |rule: &str, value: u64, limit: Option<u64>| {
        if let Some(limit) = limit {
            checks.push(Check {
                rule: rule.into(),
                value: value as f64,
                limit: limit as f64,
                pass: value <= limit,
                detail: format!("{} (limit {})", human(value), human(limit)),
            });
        }
    };
    bytes_rule("max_size", measured.compressed_bytes, budgets.max_size);
    bytes_rule(
        "max_uncompressed_size",
        measured.uncompressed_bytes,
        budgets.max_uncompressed_size,
    );
    bytes_rule("max_wasted", measured.wasted_bytes, budgets.max_wasted);
    if let Some(baseline) = baseline {
        let delta = measured.compressed_bytes as i64 - baseline.compressed_bytes as i64;
        for growth in &budgets.max_growth {
            match growth {
                Growth::Bytes(limit) => checks.push(Check {
                    rule: "max_growth_bytes".into(),
                    value: delta as f64,
                    limit: *limit as f64,
                    pass: delta <= *limit as i64,
                    detail: format!(
                        "{} against {} ({} → {}; limit +{})",
                        crate::size::human_delta(delta),
                        baseline.reference,
                        human(baseline.compressed_bytes),
                        human(measured.compressed_bytes),
                        human(*limit)
                    ),
                }),
                Growth::Percent(limit) => {
                    let percent = if baseline.compressed_bytes == 0 {
                        if delta > 0 {
                            f64::INFINITY
                        } else {
                            0.0
                        }
                    } else {
                        delta as f64 / baseline.compressed_bytes as f64 * 100.0
                    };
                    checks.push(Check {
                        rule: "max_growth_percent".into(),
                        value: (percent * 1000.0).round() / 1000.0,
                        limit: *limit,
                        pass: percent <= *limit,
                        detail: format!(
                            "{percent:+.2}% against {} ({} → {}; limit +{limit}%)",
                            baseline.reference,
                            human(baseline.compressed_bytes),
                            human(measured.compressed_bytes)
                        ),
                    });
                }
            }
        }
    }
    if let Some(baseline) = baseline {
        for growth in &budgets.max_binary_growth {
            checks.push(binary_growth(*growth, measured, baseline));
        }
    }
    if let Some(limit) = budgets.min_efficiency {
        checks.push(Check {
            rule: "min_efficiency".into(),
            value: measured.dive_efficiency,
            limit,
            pass: measured.dive_efficiency >= limit,
            detail: format!(
                "{:.4} (dive's efficiency; minimum {limit})",
                measured.dive_efficiency
            ),
        });
    }
    if let (Some(limit), Some(value)) = (budgets.max_cold_start, measured.cold_start_s) {
        checks.push(Check {
            rule: "max_cold_start".into(),
            value,
            limit,
            pass: value <= limit,
            detail: format!(
                "{value:.2} s on profile {} (limit {limit} s; modelled, see ballast cost)",
                measured.cold_start_profile.as_deref().unwrap_or("?")
            ),
        });
    }
    if let (Some(limit), Some(value)) = (budgets.max_monthly_cost, measured.monthly_cost_usd) {
        checks.push(Check {
            rule: "max_monthly_cost".into(),
            value,
            limit,
            pass: value <= limit,
            detail: format!("${value:.4}/month (limit ${limit}; estimated, see ballast cost)"),
        });
    }
    if budgets.no_unstripped {
        let strippable: u64 = measured.unstripped.iter().map(|(_, b)| b).sum();
        let mut detail = if measured.unstripped.is_empty() {
            "no binary carries debug info or symbols".to_string()
        } else {
            format!(
                "{} unstripped: {} ({} strip would remove)",
                measured.unstripped.len(),
                measured
                    .unstripped
                    .iter()
                    .map(|(p, _)| p.as_str())
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(", "),
                human(strippable)
            )
        };
        if !measured.unknown_strip.is_empty() {
            detail.push_str(&format!(
                "; {} not analysable",
                measured.unknown_strip.len()
            ));
        }
        checks.push(Check {
            rule: "no_unstripped".into(),
            value: measured.unstripped.len() as f64,
            limit: 0.0,
            pass: measured.unstripped.is_empty(),
            detail,
        });
    }
    checks
}

/// Growers named in a binary-growth check's detail.
const TOP_GROWERS: usize = 3;

/// The main binary's growth against the baseline's, naming the packages or crates
/// that grew most. A budget that cannot be checked (the image has no main binary)
/// fails: a CI job must not pass on nothing measured.
fn binary_growth(growth: Growth, measured: &Measured, baseline: &Baseline) -> Check {
    let (rule, limit, limit_text) = match growth {
        Growth::Bytes(limit) => (
            "max_binary_growth_bytes",
            limit as f64,
            format!("+{}", human(limit)),
        ),
        Growth::Percent(limit) => ("max_binary_growth_percent", limit, format!("+{limit}%")),
    };
    let Some(now) = &measured.main_binary else {
        return Check {
            rule: rule.into(),
            value: 0.0,
            limit,
            pass: false,
            detail: "no main binary: the config runs no ELF program and the image has no \
                     application executable"
                .into(),
        };
    };
    let before = baseline.main_binary.as_ref();
    let before_size = before.map_or(0, |b| b.size);
    let delta = now.size as i64 - before_size as i64;
    let percent = if before_size == 0 {
        if delta > 0 {
            f64::INFINITY
        } else {
            0.0
        }
    } else {
        delta as f64 / before_size as f64 * 100.0
    };
    let (value, pass) = match growth {
        Growth::Bytes(limit) => (delta as f64, delta <= limit as i64),
        Growth::Percent(limit) => ((percent * 1000.0).round() / 1000.0, percent <= limit),
    };
    let path = crate::text::escape_control(&now.path);
    let reference = crate::text::escape_control(&baseline.reference);
    let mut detail = match before {
        None => format!(
            "main binary {path} is new ({}; not in {reference}; limit {limit_text})",
            human(now.size)
        ),
        Some(b) => {
            let moved = if b.path == now.path {
                String::new()
            } else {
                format!(", was {}", crate::text::escape_control(&b.path))
            };
            let verb = if delta < 0 { "shrank" } else { "grew" };
            format!(
                "main binary {path} {verb} {} ({percent:+.2}%) against {reference} ({} → {}{moved}; limit {limit_text})",
                human(delta.unsigned_abs()),
                human(b.size),
                human(now.size),
            )
        }
    };
    let changes = match (
        before.and_then(|b| b.attribution.as_ref()),
        &now.attribution,
    ) {
        (Some(b), Some(a)) => attribution_summary::diff(b, a),
        _ => None,
    };
    if let Some(changes) = changes.filter(|_| delta > 0) {
        let growers: Vec<String> = changes
            .growers()
            .take(TOP_GROWERS)
            .map(|item| {
                let version = match (&item.version_before, &item.version_after) {
                    (Some(b), Some(a)) if b != a => format!(" {b}→{a}"),
                    _ if item.bytes_before == 0 => " added".to_string(),
                    _ => String::new(),
                };
                format!(
                    "{}{version} {}",
                    crate::text::escape_control(&item.name),
                    human_delta(item.delta)
                )
            })
            .collect();
        if !growers.is_empty() {
            detail.push_str(": ");
            detail.push_str(&growers.join(", "));
        }
    }
    Check {
        rule: rule.into(),
        value,
        limit,
        pass,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_budgets() {
        assert_eq!(Growth::parse("10%").ok(), Some(Growth::Percent(10.0)));
        assert_eq!(Growth::parse("5MB").ok(), Some(Growth::Bytes(5_000_000)));
        assert!(Growth::parse("-3%").is_err());
        assert!(Growth::parse("lots").is_err());
    }

    #[test]
    fn growth_against_baseline() {
        let budgets = Budgets {
            baseline: Some("base".into()),
            max_growth: vec![Growth::Percent(10.0), Growth::Bytes(1000)],
            ..Default::default()
        };
        let baseline = Baseline {
            reference: "base".into(),
            compressed_bytes: 10_000,
            uncompressed_bytes: 20_000,
            main_binary: None,
        };
        let grown = Measured {
            compressed_bytes: 11_500,
            ..Default::default()
        };
        let checks = evaluate(&budgets, &grown, Some(&baseline));
        assert_eq!(checks.len(), 2);
        assert!(checks.iter().all(|c| !c.pass), "{checks:?}");
        assert_eq!(checks[0].value, 15.0);
        let shrunk = Measured {
            compressed_bytes: 9_000,
            ..Default::default()
        };
        assert!(evaluate(&budgets, &shrunk, Some(&baseline))
            .iter()
            .all(|c| c.pass));
    }

    #[test]
    fn binary_growth_names_the_top_growers() {
        use crate::binary::attribution::{AttributionItem, Source, Unit};
        let item = |name: &str, version: Option<&str>, bytes: u64| AttributionItem {
            name: name.into(),
            module: version.map(|_| "golang.org/x/net".to_string()),
            version: version.map(str::to_string),
            bytes: Some(bytes),
            functions: Some(1),
            std: version.is_none(),
            maybe_std: false,
        };
        let binary = |size: u64, items: Vec<AttributionItem>| BinarySide {
            path: "/app".into(),
            size,
            attribution: Some(Attribution {
                unit: Unit::Package,
                source: Source::Pclntab,
                code_bytes: items.iter().filter_map(|i| i.bytes).sum(),
                attributed_bytes: 0,
                functions: 0,
                padding_bytes: None,
                pclntab_layout: None,
                items,
                error: None,
            }),
        };
        let baseline = Baseline {
            reference: "main.json".into(),
            compressed_bytes: 0,
            uncompressed_bytes: 0,
            main_binary: Some(binary(
                15_000_000,
                vec![
                    item("runtime", None, 1_000_000),
                    item("golang.org/x/net/http2", Some("v0.20.0"), 400_000),
                ],
            )),
        };
        let measured = Measured {
            main_binary: Some(binary(
                16_200_000,
                vec![
                    item("runtime", None, 1_100_000),
                    item("golang.org/x/net/http2", Some("v0.23.0"), 1_000_000),
                    item("runtime/cgo", None, 20_000),
                ],
            )),
            ..Default::default()
        };
        let budgets = Budgets {
            baseline: Some("main.json".into()),
            max_binary_growth: vec![Growth::Percent(5.0), Growth::Bytes(2_000_000)],
            ..Default::default()
        };
        let checks = evaluate(&budgets, &measured, Some(&baseline));
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].rule, "max_binary_growth_percent");
        assert!(!checks[0].pass);
        assert_eq!(checks[0].value, 8.0);
        assert_eq!(
            checks[0].detail,
            "main binary /app grew 1.2 MB (+8.00%) against main.json (15.0 MB → 16.2 MB; \
             limit +5%): golang.org/x/net/http2 v0.20.0→v0.23.0 +600.0 kB, runtime +100.0 kB, \
             runtime/cgo added +20.0 kB"
        );
        assert!(checks[1].pass, "{:?}", checks[1]);
        // Nothing to measure fails rather than passes.
        let none = evaluate(&budgets, &Measured::default(), Some(&baseline));
        assert!(none.iter().all(|c| !c.pass));
    }

    #[test]
    fn validation() {
        let missing_baseline = Budgets {
            max_growth: vec![Growth::Percent(5.0)],
            ..Default::default()
        };
        assert!(missing_baseline.validate().is_err());
        let bad_efficiency = Budgets {
            min_efficiency: Some(1.5),
            ..Default::default()
        };
        assert!(bad_efficiency.validate().is_err());
    }
}
