//! `gate`: budgets from flags over `ballast.toml`, the image measured (and priced
//! when a budget needs it) against its baseline, the verdict printed and appended to
//! `$GITHUB_STEP_SUMMARY`. Exit 1 when a budget fails.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};

use crate::cli::args::{GateArgs, GateFormat};
use crate::cli::progress::progress_reporter;
use crate::cli::settings::inspect_options;
use crate::cli::{append_summary, write_stdout, ExitStatus, UsageError};
use crate::gate::{self, Baseline, BaselineSource, Budgets, Growth, Measured};
use crate::image;
use crate::reference::ImageRef;
use crate::report::gate::GateReport;
use crate::report::{self, Format};

pub(crate) async fn gate(args: GateArgs) -> anyhow::Result<ExitStatus> {
    let config = match &args.config {
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from("ballast.toml")).filter(|p| p.is_file()),
    };
    let budgets = budgets(&args, config.as_deref())?;
    let image = ImageRef::parse(&args.image)?;
    let options = inspect_options(&args.source)?;
    let progress = progress_reporter();
    let analysis = image::inspect(&image, &options, progress.clone()).await?;
    let mut measured = Measured::of(&analysis);
    let main_path = measured.main_binary.as_ref().map(|b| b.path.as_str());
    let baseline = match budgets.baseline.as_deref().map(BaselineSource::of) {
        None => None,
        Some(BaselineSource::Report(path)) => Some(gate::baseline_from_report(path, main_path)?),
        Some(BaselineSource::Image(text)) => {
            let base = image::inspect(&ImageRef::parse(text)?, &options, progress.clone()).await?;
            Some(Baseline::of_image(&base, main_path))
        }
    };
    progress.finish();
    if budgets.max_cold_start.is_some() || budgets.max_monthly_cost.is_some() {
        measured.price(&analysis, &budgets, config.as_deref())?;
    }
    let checks = gate::evaluate(&budgets, &measured, baseline.as_ref());
    let verdict = GateReport::new(analysis.info(), baseline, checks);
    write_step_summary(&verdict);
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        GateFormat::Table
    } else {
        GateFormat::Json
    });
    let (kind, text) = match format {
        GateFormat::Table => (Format::Table, verdict.to_table()),
        GateFormat::Json => (Format::Json, verdict.to_json()),
        GateFormat::Markdown => (Format::Markdown, verdict.to_markdown()),
        GateFormat::Github => (Format::Table, verdict.to_github()),
    };
    write_stdout(&report::safe(kind, text))?;
    Ok(if verdict.pass {
        ExitStatus::Success
    } else {
        ExitStatus::GateFailed
    })
}

/// The flags' budgets over the budget file's, checked.
fn budgets(args: &GateArgs, config: Option<&Path>) -> anyhow::Result<Budgets> {
    let flags = Budgets {
        baseline: args.baseline.clone(),
        max_size: size_flag("--max-size", &args.max_size)?,
        max_uncompressed_size: size_flag("--max-uncompressed-size", &args.max_uncompressed_size)?,
        max_growth: args
            .max_growth
            .iter()
            .map(|g| Growth::parse(g))
            .collect::<Result<_, _>>()?,
        max_binary_growth: args
            .max_binary_growth
            .iter()
            .map(|g| Growth::parse_for("--max-binary-growth", g))
            .collect::<Result<_, _>>()?,
        max_wasted: size_flag("--max-wasted", &args.max_wasted)?,
        min_efficiency: args.min_efficiency,
        max_cold_start: args.max_cold_start,
        profile: args.profile.clone(),
        max_monthly_cost: args.max_monthly_cost,
        no_unstripped: args.no_unstripped,
    };
    let budgets = match config {
        Some(path) => gate::load_config(path)?.overlay(flags),
        None => flags,
    };
    budgets.validate()?;
    if budgets.is_empty() {
        return Err(UsageError("no budgets: give flags such as --max-size, --max-growth or --max-binary-growth, or a ballast.toml with a [gate] table".into()).into());
    }
    Ok(budgets)
}

fn size_flag(flag: &str, value: &Option<String>) -> anyhow::Result<Option<u64>> {
    value
        .as_deref()
        .map(|text| crate::size::parse_size(text).map_err(|e| UsageError(format!("{flag}: {e}"))))
        .transpose()
        .map_err(Into::into)
}

/// The summary is a courtesy; the verdict is the job. A summary that cannot be
/// written is a warning, never a different exit code.
fn write_step_summary(verdict: &GateReport) {
    let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return;
    };
    let summary = PathBuf::from(summary);
    let markdown = report::safe(Format::Markdown, verdict.to_markdown());
    if let Err(error) = append_summary(&summary, &markdown) {
        let _ = writeln!(
            std::io::stderr(),
            "warning: cannot append the verdict to $GITHUB_STEP_SUMMARY ({}): {error}",
            crate::text::escape_control(&summary.display().to_string())
        );
    }
}
