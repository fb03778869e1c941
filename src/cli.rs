//! The command line: clap arguments, validated once into settings, then dispatched.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::advice::{self, AdviceError, AdviseOptions};
use crate::compare::{self, ImageBundle};
use crate::cost::{self, CostError};
use crate::gate::{self, Baseline, Budgets, GateError, Growth, Measured};
use crate::image::{self as inspect, InspectError, InspectOptions, Progress};
use crate::layer::{LayerLimits, LayerScan};
use crate::reference::{ImageRef, ReferenceError};
use crate::registry::{RegistryOptions, Secret};
use crate::report::advise::AdviseReport;
use crate::report::cost::PricingList;
use crate::report::diff::DiffReport;
use crate::report::gate::GateReport;
use crate::report::inspect::InspectReport;
use crate::report::Format;
use crate::source::{Platform, ResolvedImage, SourceError};

/// Documented exit codes (see DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    GateFailed = 1,
    BadInput = 2,
    Unexpected = 3,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status as u8)
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "ballast",
    version,
    about = "Finds the dead weight in container images and says what it costs"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Layers, files, waste and binaries of one image
    Inspect(InspectArgs),
    /// Ranked suggestions with the bytes each saves and how sure that figure is
    Advise(AdviseArgs),
    /// Side by side: sizes, shared layers, main binaries, waste, suggestions, cost
    Compare(CompareArgs),
    /// What changed between two images: layers, files and binaries, by impact
    Diff(DiffArgs),
    /// A Markdown report (tables, Mermaid charts) of all of the above, for a PR or a write-up
    Report(ReportArgs),
    /// Registry storage, transfer and cold-start estimates for one image or a set
    Cost(CostArgs),
    /// Check an image against size, growth, waste, cold-start and cost budgets (exit 1 when any fails)
    Gate(GateArgs),
    /// Measure round trip, download and unpack throughput against a real registry image
    /// and write a cold-start profile for `ballast cost --profiles`
    Calibrate(CalibrateArgs),
}

/// Which prices and platform profile `compare` and `report` use.
#[derive(Args, Debug, Clone)]
struct CostChoice {
    /// Pricing table (TOML) adding to or overriding the built-in entries
    #[arg(long, value_name = "FILE")]
    pricing: Option<PathBuf>,
    /// Pricing entry (see `ballast cost --list-pricing`; default aws-ecr-private)
    #[arg(long, value_name = "ID")]
    registry: Option<String>,
    /// Usage profile: a TOML file with a [usage] table
    #[arg(long, value_name = "FILE")]
    usage: Option<PathBuf>,
    /// Cold-start platform profiles (TOML) adding to the built-in ones
    #[arg(long, value_name = "FILE")]
    profiles: Option<PathBuf>,
    /// Cold-start profile (default k8s-cold)
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Two or more images (e.g. the Go and the Rust build of one service)
    #[arg(required = true, num_args = 2..)]
    images: Vec<String>,
    /// Skip the suggestions (faster: no layer is read twice)
    #[arg(long)]
    no_advice: bool,
    #[command(flatten)]
    cost: CostChoice,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// One or more images
    #[arg(required = true)]
    images: Vec<String>,
    /// Write the report here instead of standard output
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Leave out figures that vary from run to run (decompression timings), for
    /// reports kept under version control
    #[arg(long)]
    stable: bool,
    #[command(flatten)]
    cost: CostChoice,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Args, Debug)]
struct DiffArgs {
    /// The image before
    base: String,
    /// The image after
    new: String,
    /// How many changed files to list
    #[arg(long, default_value_t = 20)]
    top: usize,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args, Debug)]
struct CostArgs {
    /// Images (layers shared between them are stored and pulled once)
    #[arg(required_unless_present = "list_pricing")]
    images: Vec<String>,
    /// Print the built-in pricing entries (and those of --pricing FILE) and exit
    #[arg(long)]
    list_pricing: bool,
    /// Pricing table (TOML) adding to or overriding the built-in entries
    #[arg(long, value_name = "FILE")]
    pricing: Option<PathBuf>,
    /// Pricing entry to use (see --list-pricing; default aws-ecr-private)
    #[arg(long, value_name = "ID")]
    registry: Option<String>,
    /// Usage profile: a TOML file with a [usage] table
    #[arg(long, value_name = "FILE")]
    usage: Option<PathBuf>,
    /// Pulls per month (default: nodes × deploys per day × 30.4)
    #[arg(long)]
    pulls_per_month: Option<f64>,
    /// Nodes that pull the image
    #[arg(long)]
    nodes: Option<u32>,
    /// Deploys per day
    #[arg(long)]
    deploys_per_day: Option<f64>,
    /// Share of pulls that cross regions (0..1)
    #[arg(long)]
    cross_region_share: Option<f64>,
    /// Share of pulls that leave the cloud (0..1)
    #[arg(long)]
    internet_share: Option<f64>,
    /// Share of pulls served from a warm node cache (0..1)
    #[arg(long)]
    warm_cache_share: Option<f64>,
    /// Months old versions are kept
    #[arg(long)]
    months_retained: Option<f64>,
    /// Tags kept per repository
    #[arg(long)]
    tags_kept: Option<u32>,
    /// Cold-start platform profiles (TOML) adding to the built-in ones
    #[arg(long, value_name = "FILE")]
    profiles: Option<PathBuf>,
    /// Cold-start profile to use (k8s-cold, fargate, warm-base, or one from --profiles)
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GateFormat {
    Table,
    Json,
    Markdown,
    /// The table plus `::error::` annotations for GitHub Actions
    Github,
}

#[derive(Args, Debug)]
struct GateArgs {
    /// The image to check
    image: String,
    /// Budget file (TOML with a [gate] table; default: ./ballast.toml when present)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Baseline: an image reference, or a report saved with `ballast inspect --format json`
    #[arg(long, value_name = "REF|FILE.json")]
    baseline: Option<String>,
    /// Largest compressed size allowed (e.g. 50MB)
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
    /// Largest uncompressed size allowed
    #[arg(long, value_name = "SIZE")]
    max_uncompressed_size: Option<String>,
    /// Growth allowed against the baseline: N% or a size; repeat for both
    #[arg(long, value_name = "N%|SIZE")]
    max_growth: Vec<String>,
    /// Hidden bytes allowed (deleted or overwritten by later layers)
    #[arg(long, value_name = "SIZE")]
    max_wasted: Option<String>,
    /// Lowest dive efficiency allowed (0..1)
    #[arg(long, value_name = "0..1")]
    min_efficiency: Option<f64>,
    /// Longest modelled cold start allowed, in seconds (see --profile)
    #[arg(long, value_name = "SECONDS")]
    max_cold_start: Option<f64>,
    /// Cold-start profile for --max-cold-start
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Highest estimated monthly registry cost, in USD
    #[arg(long, value_name = "USD")]
    max_monthly_cost: Option<f64>,
    /// Fail when any ELF binary carries debug info or a symbol table
    #[arg(long)]
    no_unstripped: bool,
    /// Output format (default: table on a terminal, JSON otherwise)
    #[arg(long, value_enum)]
    format: Option<GateFormat>,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Args, Debug)]
struct CalibrateArgs {
    /// A registry image to measure against (a few layers, some tens of MB)
    image: String,
    /// Where to write the profile (TOML)
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// The profile's name
    #[arg(long, default_value = "calibrated")]
    name: String,
    /// Built-in profile to take unmeasured parameters from
    #[arg(long, default_value = "k8s-cold")]
    base: String,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Args, Debug)]
struct AdviseArgs {
    /// Image: registry reference, docker://REF, oci:DIR[:TAG] or docker-archive:FILE[:REF]
    image: String,
    /// Skip recompressing gzip layers with zstd (the slowest measurement)
    #[arg(long)]
    no_zstd: bool,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
struct SourceArgs {
    /// Platform to pick from a multi-platform index: os/arch[/variant]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Registry user name (with --password-stdin)
    #[arg(long, requires = "password_stdin")]
    username: Option<String>,
    /// Read the registry password from standard input
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Plain HTTP and unverified TLS for every registry (loopback registries always use HTTP)
    #[arg(long)]
    insecure: bool,
    /// Extra CA certificate (PEM or DER) to trust for registry TLS; repeatable. A
    /// self-signed server certificate given here is trusted as it is.
    #[arg(long, value_name = "FILE")]
    ca_cert: Vec<PathBuf>,
    /// Read registry certificates from DIR (`*.crt` CAs, `NAME.cert` + `NAME.key`
    /// client certificates) instead of the certs.d/HOST[:PORT] directories docker and
    /// podman use
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// Decompressed bytes allowed per layer (e.g. 64GiB)
    #[arg(long, value_name = "SIZE", default_value = "64GiB")]
    max_layer_size: String,
    /// Highest decompression ratio accepted for a layer, checked while streaming
    /// (off by default: zero-filled layers legitimately pass 1000:1; --max-layer-size
    /// is what bounds a bomb's cost)
    #[arg(long, value_name = "N")]
    max_ratio: Option<u64>,
    /// Largest ELF file analysed (read into memory whole, one at a time) and rewritten
    /// in memory to measure a strip; larger ones are listed, not analysed
    #[arg(long, value_name = "SIZE", default_value = "48MiB")]
    max_binary_size: String,
    /// Tar entries allowed per layer
    #[arg(long, value_name = "N", default_value_t = LayerLimits::default().max_entries)]
    max_entries: u64,
    /// Longest path accepted in a layer, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = LayerLimits::default().max_path_bytes)]
    max_path_length: usize,
    /// Layers allowed per image
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_layers: usize,
    /// Attempts per registry request and per blob (429, 5xx, refused, cut or stalled transfers)
    #[arg(long, value_name = "N", default_value_t = 5)]
    retries: u32,
    /// Seconds to wait for a registry connection
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    connect_timeout: f64,
    /// Seconds a registry response may stay silent before the transfer is retried
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    read_timeout: f64,
    /// Keep registry blobs (as stored: compressed layers, configs) in DIR between
    /// runs; every entry is verified by digest before use. Safe to share between
    /// concurrent runs.
    #[arg(long, value_name = "DIR", env = "BALLAST_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct OutputArgs {
    /// Output format (default: table on a terminal, JSON otherwise)
    #[arg(long, value_enum)]
    format: Option<Format>,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// Image: registry reference, docker://REF, oci:DIR[:TAG] or docker-archive:FILE[:REF]
    image: String,
    /// How many of the largest and hidden files to list
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Add ballast's suggestions (as `ballast advise` gives them)
    #[arg(long)]
    advise: bool,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Runs the CLI and turns the outcome into an exit code, printing errors as one line.
pub fn main_entry() -> ExitStatus {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version
            let _ = error.print();
            return ExitStatus::Success;
        }
        Err(error) => {
            // clap's report spans several lines (usage, hints); the contract is one.
            let rendered = error.render().to_string();
            let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut message = lines
                .next()
                .unwrap_or("error: invalid arguments")
                .to_string();
            if message.ends_with(':') {
                if let Some(next) = lines.next() {
                    message.push(' ');
                    message.push_str(next);
                }
            }
            let _ = writeln!(std::io::stderr(), "{message} (see ballast --help)");
            return ExitStatus::BadInput;
        }
    };
    match run(cli) {
        Ok(status) => status,
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitStatus::Success;
            }
            let mut message = String::from("error: ");
            let mut first = true;
            for cause in error.chain() {
                let text = cause.to_string();
                if !first && message.contains(&text) {
                    continue;
                }
                if !first {
                    message.push_str(": ");
                }
                message.push_str(&crate::text::escape_control(&text.replace('\n', " ")));
                first = false;
            }
            let _ = writeln!(std::io::stderr(), "{message}");
            exit_status_for(&error)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Bad input (exit 2) is anything wrong with what the user or the image gave us;
/// only failures of ballast itself are "unexpected" (exit 3).
fn exit_status_for(error: &anyhow::Error) -> ExitStatus {
    for cause in error.chain() {
        if let Some(inspect) = cause.downcast_ref::<InspectError>() {
            return match inspect {
                InspectError::Task(_) => ExitStatus::Unexpected,
                _ => ExitStatus::BadInput,
            };
        }
        if let Some(advice) = cause.downcast_ref::<AdviceError>() {
            return match advice {
                AdviceError::Task(_) => ExitStatus::Unexpected,
                _ => ExitStatus::BadInput,
            };
        }
        if let Some(cost) = cause.downcast_ref::<CostError>() {
            return if cost.is_bad_input() {
                ExitStatus::BadInput
            } else {
                ExitStatus::Unexpected
            };
        }
        if let Some(calibrate) = cause.downcast_ref::<cost::calibrate::CalibrateError>() {
            return match calibrate {
                cost::calibrate::CalibrateError::Task(_) => ExitStatus::Unexpected,
                _ => ExitStatus::BadInput,
            };
        }
        if cause.downcast_ref::<GateError>().is_some() {
            return ExitStatus::BadInput;
        }
        if cause.downcast_ref::<SourceError>().is_some()
            || cause.downcast_ref::<ReferenceError>().is_some()
            || cause.downcast_ref::<UsageError>().is_some()
            || cause.downcast_ref::<OutputError>().is_some()
        {
            return ExitStatus::BadInput;
        }
    }
    ExitStatus::Unexpected
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = match cli.command {
        Command::Inspect(args) => runtime.block_on(run_inspect(args)),
        Command::Advise(args) => runtime.block_on(run_advise(args)),
        Command::Cost(args) => runtime.block_on(run_cost(args)),
        Command::Diff(args) => runtime.block_on(run_diff(args)),
        Command::Compare(args) => runtime.block_on(run_compare(args)),
        Command::Report(args) => runtime.block_on(run_report(args)),
        Command::Gate(args) => runtime.block_on(run_gate(args)),
        Command::Calibrate(args) => runtime.block_on(run_calibrate(args)),
    };
    // A reader a failure left blocked on a hostile peer must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

fn inspect_options(args: &SourceArgs) -> anyhow::Result<InspectOptions> {
    let mut options = InspectOptions::default();
    if let Some(platform) = &args.platform {
        options.platform = platform
            .parse::<Platform>()
            .map_err(|e| UsageError(format!("--platform: {e}")))?;
        options.explicit_platform = true;
    }
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            UsageError(format!("--password-stdin: cannot read standard input: {e}"))
        })?;
        let trimmed = text.trim_end_matches(['\n', '\r']).to_string();
        if trimmed.is_empty() {
            return Err(UsageError("--password-stdin: standard input was empty".into()).into());
        }
        Some(Secret::new(trimmed))
    } else {
        None
    };
    let seconds = |flag: &str, value: f64| {
        if value.is_finite() && value > 0.0 {
            Ok(std::time::Duration::from_secs_f64(value))
        } else {
            Err(UsageError(format!(
                "{flag}: {value} is not a positive number of seconds"
            )))
        }
    };
    if args.retries == 0 {
        return Err(UsageError("--retries: at least 1 attempt".into()).into());
    }
    options.registry = RegistryOptions {
        username: args.username.clone(),
        password,
        insecure: args.insecure,
        ca_certs: args.ca_cert.clone(),
        cert_dir: args.cert_dir.clone(),
        connect_timeout: Some(seconds("--connect-timeout", args.connect_timeout)?),
        read_timeout: Some(seconds("--read-timeout", args.read_timeout)?),
        retry: crate::registry::retry::RetryPolicy {
            attempts: args.retries,
            ..Default::default()
        },
        cache_dir: args.cache_dir.clone(),
    };
    options.limits = LayerLimits {
        max_uncompressed_bytes: crate::size::parse_size(&args.max_layer_size)
            .map_err(|e| UsageError(format!("--max-layer-size: {e}")))?,
        max_ratio: args.max_ratio,
        max_entries: args.max_entries,
        max_path_bytes: args.max_path_length,
        max_binary_bytes: crate::size::parse_size(&args.max_binary_size)
            .map_err(|e| UsageError(format!("--max-binary-size: {e}")))?,
    };
    options.max_layers = args.max_layers;
    Ok(options)
}

fn advise_options(options: &InspectOptions, measure_zstd: bool) -> AdviseOptions {
    AdviseOptions {
        measure_zstd,
        limits: options.limits,
        ..AdviseOptions::default()
    }
}

fn output_format(args: &OutputArgs) -> Format {
    args.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    })
}

async fn run_inspect(args: InspectArgs) -> anyhow::Result<ExitStatus> {
    let image = ImageRef::parse(&args.image)?;
    let options = inspect_options(&args.source)?;
    let progress = progress_reporter();
    let (source, analysis) =
        inspect::inspect_keeping_source(&image, &options, progress.clone()).await?;
    let mut report = InspectReport::build(&analysis, args.top);
    let advice = if args.advise {
        let advice = advice::advise(source, &analysis, &advise_options(&options, true)).await?;
        Some(AdviseReport::build(&analysis, advice))
    } else {
        None
    };
    progress.finish();
    let format = output_format(&args.output);
    let mut text = match format {
        Format::Json => {
            report.advice = advice.clone();
            report.to_json()
        }
        Format::Table => report.to_table(),
        Format::Markdown => report.to_markdown(),
    };
    if let Some(advice) = advice {
        match format {
            Format::Json => {}
            Format::Table => text.push_str(&format!("\nSuggestions\n{}", advice.to_table())),
            Format::Markdown => text.push_str(&format!("\n{}", advice.to_markdown())),
        }
    }
    write_stdout(&crate::report::safe(format, text))?;
    Ok(ExitStatus::Success)
}

async fn run_advise(args: AdviseArgs) -> anyhow::Result<ExitStatus> {
    let image = ImageRef::parse(&args.image)?;
    let options = inspect_options(&args.source)?;
    let progress = progress_reporter();
    let (source, analysis) =
        inspect::inspect_keeping_source(&image, &options, progress.clone()).await?;
    let advise_options = advise_options(&options, !args.no_zstd);
    let advice = advice::advise(source, &analysis, &advise_options).await?;
    progress.finish();
    let report = AdviseReport::build(&analysis, advice);
    write_stdout(&crate::report::render(&report, output_format(&args.output)))?;
    Ok(ExitStatus::Success)
}

/// Inspects (and advises on) every image, then prices the set.
async fn analyse_set(
    images: &[String],
    source: &SourceArgs,
    choice: &CostChoice,
    with_advice: bool,
) -> anyhow::Result<(Vec<ImageBundle>, cost::CostEstimate)> {
    let options = inspect_options(source)?;
    let progress = progress_reporter();
    let mut bundles = Vec::with_capacity(images.len());
    for image in images {
        let image = ImageRef::parse(image)?;
        let (source, analysis) =
            inspect::inspect_keeping_source(&image, &options, progress.clone()).await?;
        let advice = if with_advice {
            Some(advice::advise(source, &analysis, &advise_options(&options, true)).await?)
        } else {
            None
        };
        bundles.push(ImageBundle { analysis, advice });
    }
    progress.finish();
    let table = cost::pricing::load(choice.pricing.as_deref())?;
    let pricing = table.select(choice.registry.as_deref())?;
    let usage = cost::usage::load(choice.usage.as_deref())?;
    let profiles = cost::coldstart::load(choice.profiles.as_deref())?;
    let profile = profiles.select(choice.profile.as_deref())?;
    let sizes: Vec<cost::ImageSizes> = bundles.iter().map(|b| b.analysis.sizes()).collect();
    let estimate = cost::estimate(&sizes, pricing, &usage, &profiles, profile)?;
    Ok((bundles, estimate))
}

async fn run_compare(args: CompareArgs) -> anyhow::Result<ExitStatus> {
    let (bundles, estimate) =
        analyse_set(&args.images, &args.source, &args.cost, !args.no_advice).await?;
    let comparison = compare::compare(&bundles, Some(&estimate));
    write_stdout(&crate::report::render(
        &comparison,
        output_format(&args.output),
    ))?;
    Ok(ExitStatus::Success)
}

async fn run_report(args: ReportArgs) -> anyhow::Result<ExitStatus> {
    let (mut bundles, estimate) = analyse_set(&args.images, &args.source, &args.cost, true).await?;
    if args.stable {
        for advice in bundles.iter_mut().filter_map(|b| b.advice.as_mut()) {
            for suggestion in &mut advice.suggestions {
                suggestion.drop_run_dependent();
            }
        }
    }
    let comparison = compare::compare(&bundles, Some(&estimate));
    let markdown = crate::report::safe(
        Format::Markdown,
        crate::report::document::render(&bundles, &comparison, Some(&estimate)),
    );
    match &args.output {
        Some(path) => {
            write_file(path, &markdown)?;
            let _ = writeln!(std::io::stderr(), "wrote {}", path.display());
        }
        None => write_stdout(&markdown)?,
    }
    Ok(ExitStatus::Success)
}

async fn run_diff(args: DiffArgs) -> anyhow::Result<ExitStatus> {
    let base = ImageRef::parse(&args.base)?;
    let new = ImageRef::parse(&args.new)?;
    let options = inspect_options(&args.source)?;
    let progress = progress_reporter();
    // One after the other: a failed image must not leave the other's readers running.
    let base = inspect::inspect(&base, &options, progress.clone()).await?;
    let new = inspect::inspect(&new, &options, progress.clone()).await?;
    progress.finish();
    let report = DiffReport::new(crate::diff::diff(&base, &new), args.top);
    write_stdout(&crate::report::render(&report, output_format(&args.output)))?;
    Ok(ExitStatus::Success)
}

async fn run_cost(args: CostArgs) -> anyhow::Result<ExitStatus> {
    let format = output_format(&args.output);
    let table = cost::pricing::load(args.pricing.as_deref())?;
    if args.list_pricing {
        let list = PricingList::new(table.entries.clone());
        write_stdout(&crate::report::render(&list, format))?;
        return Ok(ExitStatus::Success);
    }
    let pricing = table.select(args.registry.as_deref())?;
    let mut usage = cost::usage::load(args.usage.as_deref())?;
    if let Some(v) = args.pulls_per_month {
        usage.pulls_per_month = Some(v);
    }
    if let Some(v) = args.nodes {
        usage.nodes = v;
    }
    if let Some(v) = args.deploys_per_day {
        usage.deploys_per_day = v;
    }
    if let Some(v) = args.cross_region_share {
        usage.cross_region_share = v;
    }
    if let Some(v) = args.internet_share {
        usage.internet_share = v;
    }
    if let Some(v) = args.warm_cache_share {
        usage.warm_cache_share = v;
    }
    if let Some(v) = args.months_retained {
        usage.months_retained = v;
    }
    if let Some(v) = args.tags_kept {
        usage.tags_kept = v;
    }
    usage.validate()?;
    let profiles = cost::coldstart::load(args.profiles.as_deref())?;
    let profile = profiles.select(args.profile.as_deref())?;
    let options = inspect_options(&args.source)?;
    let progress = progress_reporter();
    let mut images = Vec::with_capacity(args.images.len());
    for image in &args.images {
        let image = ImageRef::parse(image)?;
        let analysis = inspect::inspect(&image, &options, progress.clone()).await?;
        images.push(analysis.sizes());
    }
    progress.finish();
    let estimate = cost::estimate(&images, pricing, &usage, &profiles, profile)?;
    write_stdout(&crate::report::render(&estimate, format))?;
    Ok(ExitStatus::Success)
}

fn size_flag(flag: &str, value: &Option<String>) -> anyhow::Result<Option<u64>> {
    value
        .as_deref()
        .map(|text| crate::size::parse_size(text).map_err(|e| UsageError(format!("{flag}: {e}"))))
        .transpose()
        .map_err(Into::into)
}

async fn run_gate(args: GateArgs) -> anyhow::Result<ExitStatus> {
    let flags = Budgets {
        baseline: args.baseline.clone(),
        max_size: size_flag("--max-size", &args.max_size)?,
        max_uncompressed_size: size_flag("--max-uncompressed-size", &args.max_uncompressed_size)?,
        max_growth: args
            .max_growth
            .iter()
            .map(|g| Growth::parse(g))
            .collect::<Result<_, _>>()?,
        max_wasted: size_flag("--max-wasted", &args.max_wasted)?,
        min_efficiency: args.min_efficiency,
        max_cold_start: args.max_cold_start,
        profile: args.profile.clone(),
        max_monthly_cost: args.max_monthly_cost,
        no_unstripped: args.no_unstripped,
    };
    let config = match &args.config {
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from("ballast.toml")).filter(|p| p.is_file()),
    };
    let budgets = match &config {
        Some(path) => gate::load_config(path)?.overlay(flags),
        None => flags,
    };
    budgets.validate()?;
    if budgets.is_empty() {
        return Err(UsageError("no budgets: give flags such as --max-size or --max-growth, or a ballast.toml with a [gate] table".into()).into());
    }
    let image = ImageRef::parse(&args.image)?;
    let options = inspect_options(&args.source)?;
    let progress = progress_reporter();
    let analysis = inspect::inspect(&image, &options, progress.clone()).await?;
    let baseline = match &budgets.baseline {
        None => None,
        Some(text) if text.ends_with(".json") || std::path::Path::new(text).is_file() => {
            Some(gate::baseline_from_report(std::path::Path::new(text))?)
        }
        Some(text) => {
            let base =
                inspect::inspect(&ImageRef::parse(text)?, &options, progress.clone()).await?;
            Some(Baseline {
                reference: base.image.reference.clone(),
                compressed_bytes: base.compressed_bytes(),
                uncompressed_bytes: base.uncompressed_bytes(),
            })
        }
    };
    progress.finish();
    let mut measured = Measured {
        compressed_bytes: analysis.compressed_bytes(),
        uncompressed_bytes: analysis.uncompressed_bytes(),
        wasted_bytes: analysis.fs.wasted_bytes(),
        dive_efficiency: analysis.fs.dive.efficiency,
        ..Default::default()
    };
    if budgets.max_cold_start.is_some() || budgets.max_monthly_cost.is_some() {
        let pricing_table = cost::pricing::load(config.as_deref())?;
        let pricing = pricing_table.select(None)?;
        let usage = cost::usage::load(config.as_deref())?;
        let profiles = cost::coldstart::load(config.as_deref())?;
        let profile = profiles.select(budgets.profile.as_deref())?;
        let estimate = cost::estimate(&[analysis.sizes()], pricing, &usage, &profiles, profile)?;
        if let Some(image_cost) = estimate.images.first() {
            measured.cold_start_s = Some(image_cost.cold_start.total_s);
            measured.cold_start_profile = Some(profile.name.clone());
            measured.monthly_cost_usd = Some(estimate.set.total_usd_month);
        }
    }
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
    let checks = gate::evaluate(&budgets, &measured, baseline.as_ref());
    let verdict = GateReport::new(analysis.info(), baseline, checks);
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        // The summary is a courtesy; the verdict is the job. A summary that cannot be
        // written is a warning, never a different exit code.
        let summary = PathBuf::from(summary);
        let markdown = crate::report::safe(Format::Markdown, verdict.to_markdown());
        if let Err(error) = append_summary(&summary, &markdown) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: cannot append the verdict to $GITHUB_STEP_SUMMARY ({}): {error}",
                crate::text::escape_control(&summary.display().to_string())
            );
        }
    }
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
    write_stdout(&crate::report::safe(kind, text))?;
    Ok(if verdict.pass {
        ExitStatus::Success
    } else {
        ExitStatus::GateFailed
    })
}

async fn run_calibrate(args: CalibrateArgs) -> anyhow::Result<ExitStatus> {
    let image = ImageRef::parse(&args.image)?;
    if !matches!(image, ImageRef::Registry(_)) {
        return Err(UsageError(format!("calibrate needs a registry image, not {image}")).into());
    }
    let mut options = inspect_options(&args.source)?;
    // Calibration times the network: a cache (say, BALLAST_CACHE_DIR set for a whole
    // CI job) would time the disk instead.
    options.registry.cache_dir = None;
    let profiles = cost::coldstart::builtin()?;
    let base = profiles.select(Some(&args.base))?;
    let measured = cost::calibrate::measure(&image, &options).await?;
    let profile = cost::calibrate::calibrated_profile(&args.name, &measured, base);
    cost::calibrate::write_profiles(&args.output, std::slice::from_ref(&profile))?;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "measured against {}: round trip {:.1} ms, one connection {:.1} MB/s, unpack gzip {:.1} MB/s, zstd {:.1} MB/s, tar {:.1} MB/s",
        measured.against,
        measured.rtt_s * 1000.0,
        measured.connection_bytes_per_s / 1e6,
        measured.gzip_bytes_per_s / 1e6,
        measured.zstd_bytes_per_s / 1e6,
        measured.tar_bytes_per_s.unwrap_or(0.0) / 1e6
    );
    let _ = writeln!(
        err,
        "wrote profile {:?} to {}",
        profile.name,
        args.output.display()
    );
    Ok(ExitStatus::Success)
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| OutputError {
            what: "standard output".into(),
            source,
        })?;
    Ok(())
}

/// Writes `-o FILE`: a directory, a missing parent or a full disk is the user's to fix.
fn write_file(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|source| OutputError {
        what: crate::text::escape_control(&path.display().to_string()).into_owned(),
        source,
    })?;
    Ok(())
}

fn append_summary(path: &std::path::Path, markdown: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(markdown.as_bytes())?;
    file.write_all(b"\n")
}

/// Output that could not be written: bad input (a path that is a directory, a
/// missing directory, a full disk), named, exit 2.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {what}: {source}")]
struct OutputError {
    what: String,
    #[source]
    source: std::io::Error,
}

/// A layer-count bar on stderr, only when stderr is a terminal.
struct BarProgress {
    bar: Option<indicatif::ProgressBar>,
}

impl BarProgress {
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for BarProgress {
    fn resolved(&self, image: &ResolvedImage) {
        if let Some(bar) = &self.bar {
            let distinct: std::collections::HashSet<_> =
                image.layers.iter().map(|l| &l.digest).collect();
            bar.set_length(distinct.len() as u64);
            bar.set_message(image.reference.clone());
        }
    }

    fn layer_done(&self, _scan: &LayerScan) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

fn progress_reporter() -> Arc<BarProgress> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr(),
        );
        let template = if std::env::var_os("NO_COLOR").is_some() {
            "{spinner} layers {pos}/{len} {msg}"
        } else {
            "{spinner:.cyan} layers {pos}/{len} {msg}"
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    Arc::new(BarProgress { bar })
}
