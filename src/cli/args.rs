//! The command line as clap sees it: arguments only. What they mean is resolved
//! once, in `settings`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::layer::LayerLimits;
use crate::report::Format;

#[derive(Parser, Debug)]
#[command(
    name = "ballast",
    version,
    about = "Finds the dead weight in container images and says what it costs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Layers, files, waste and binaries of one image
    Inspect(InspectArgs),
    /// Ranked suggestions with the bytes each saves and how sure that figure is
    Advise(AdviseArgs),
    /// Write the image with advise's in-image suggestions applied, then read it back
    /// and compare with the projection
    Apply(ApplyArgs),
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
pub struct CostChoice {
    /// Pricing table (TOML) adding to or overriding the built-in entries
    #[arg(long, value_name = "FILE")]
    pub pricing: Option<PathBuf>,
    /// Pricing entry (see `ballast cost --list-pricing`; default aws-ecr-private)
    #[arg(long, value_name = "ID")]
    pub registry: Option<String>,
    /// Usage profile: a TOML file with a [usage] table
    #[arg(long, value_name = "FILE")]
    pub usage: Option<PathBuf>,
    /// Cold-start platform profiles (TOML) adding to the built-in ones
    #[arg(long, value_name = "FILE")]
    pub profiles: Option<PathBuf>,
    /// Cold-start profile (default k8s-cold)
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Two or more images (e.g. the Go and the Rust build of one service)
    #[arg(required = true, num_args = 2..)]
    pub images: Vec<String>,
    /// Skip the suggestions (faster: no layer is read twice)
    #[arg(long)]
    pub no_advice: bool,
    #[command(flatten)]
    pub cost: CostChoice,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// One or more images
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write the report here instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Leave out figures that vary from run to run (decompression timings), for
    /// reports kept under version control
    #[arg(long)]
    pub stable: bool,
    #[command(flatten)]
    pub cost: CostChoice,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The image before
    pub base: String,
    /// The image after
    pub new: String,
    /// How many changed files, and changed packages or crates per binary, to list
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct CostArgs {
    /// Images (layers shared between them are stored and pulled once)
    #[arg(required_unless_present = "list_pricing")]
    pub images: Vec<String>,
    /// Print the built-in pricing entries (and those of --pricing FILE) and exit
    #[arg(long)]
    pub list_pricing: bool,
    /// Pulls per month (default: nodes × deploys per day × 30.4)
    #[arg(long)]
    pub pulls_per_month: Option<f64>,
    /// Nodes that pull the image
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Deploys per day
    #[arg(long)]
    pub deploys_per_day: Option<f64>,
    /// Share of pulls that cross regions (0..1)
    #[arg(long)]
    pub cross_region_share: Option<f64>,
    /// Share of pulls that leave the cloud (0..1)
    #[arg(long)]
    pub internet_share: Option<f64>,
    /// Share of pulls served from a warm node cache (0..1)
    #[arg(long)]
    pub warm_cache_share: Option<f64>,
    /// Months old versions are kept
    #[arg(long)]
    pub months_retained: Option<f64>,
    /// Tags kept per repository
    #[arg(long)]
    pub tags_kept: Option<u32>,
    #[command(flatten)]
    pub cost: CostChoice,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GateFormat {
    Table,
    Json,
    Markdown,
    /// The table plus `::error::` annotations for GitHub Actions
    Github,
}

#[derive(Args, Debug)]
pub struct GateArgs {
    /// The image to check
    pub image: String,
    /// Budget file (TOML with a [gate] table; default: ./ballast.toml when present)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Baseline: an image reference, or a report saved with `ballast inspect --format json`
    #[arg(long, value_name = "REF|FILE.json")]
    pub baseline: Option<String>,
    /// Largest compressed size allowed (e.g. 50MB)
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// Largest uncompressed size allowed
    #[arg(long, value_name = "SIZE")]
    pub max_uncompressed_size: Option<String>,
    /// Growth allowed against the baseline: N% or a size; repeat for both
    #[arg(long, value_name = "N%|SIZE")]
    pub max_growth: Vec<String>,
    /// Growth of the main binary allowed against the baseline's: N% or a size; repeat
    /// for both. A failure names the packages or crates that grew most
    #[arg(long, value_name = "N%|SIZE")]
    pub max_binary_growth: Vec<String>,
    /// Hidden bytes allowed (deleted or overwritten by later layers)
    #[arg(long, value_name = "SIZE")]
    pub max_wasted: Option<String>,
    /// Lowest dive efficiency allowed (0..1)
    #[arg(long, value_name = "0..1")]
    pub min_efficiency: Option<f64>,
    /// Longest modelled cold start allowed, in seconds (see --profile)
    #[arg(long, value_name = "SECONDS")]
    pub max_cold_start: Option<f64>,
    /// Cold-start profile for --max-cold-start
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Highest estimated monthly registry cost, in USD
    #[arg(long, value_name = "USD")]
    pub max_monthly_cost: Option<f64>,
    /// Fail when any ELF binary carries debug info or a symbol table
    #[arg(long)]
    pub no_unstripped: bool,
    /// Output format (default: table on a terminal, JSON otherwise)
    #[arg(long, value_enum)]
    pub format: Option<GateFormat>,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// A registry image to measure against (a few layers, some tens of MB)
    pub image: String,
    /// Where to write the profile (TOML)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The profile's name
    #[arg(long, default_value = "calibrated")]
    pub name: String,
    /// Built-in profile to take unmeasured parameters from
    #[arg(long, default_value = "k8s-cold")]
    pub base: String,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Args, Debug)]
pub struct AdviseArgs {
    /// Image: registry reference, docker://REF, oci:DIR[:TAG] or docker-archive:FILE[:REF]
    pub image: String,
    /// Skip recompressing gzip layers with zstd (the slowest measurement)
    #[arg(long)]
    pub no_zstd: bool,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// Platform to pick from a multi-platform index: os/arch[/variant]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Registry user name (with --password-stdin)
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the registry password from standard input
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Plain HTTP and unverified TLS for every registry (loopback registries always use HTTP)
    #[arg(long)]
    pub insecure: bool,
    /// Extra CA certificate (PEM or DER) to trust for registry TLS; repeatable. A
    /// self-signed server certificate given here is trusted as it is.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Read registry certificates from DIR (`*.crt` CAs, `NAME.cert` + `NAME.key`
    /// client certificates) instead of the certs.d/HOST[:PORT] directories docker and
    /// podman use
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Decompressed bytes allowed per layer (e.g. 64GiB)
    #[arg(long, value_name = "SIZE", default_value = "64GiB")]
    pub max_layer_size: String,
    /// Highest decompression ratio accepted for a layer, checked while streaming
    /// (off by default: zero-filled layers legitimately pass 1000:1; --max-layer-size
    /// is what bounds a bomb's cost)
    #[arg(long, value_name = "N")]
    pub max_ratio: Option<u64>,
    /// Largest ELF file analysed (read into memory whole, one at a time) and rewritten
    /// in memory to measure a strip; larger ones are listed, not analysed
    #[arg(long, value_name = "SIZE", default_value = "48MiB")]
    pub max_binary_size: String,
    /// Advice: a gzip layer is recompressed whole, so that its savings can be exact,
    /// when its tar times the variants measured is at most SIZE; larger layers are
    /// recompressed only around the changed files (measured)
    #[arg(long, value_name = "SIZE", default_value = "48MiB")]
    pub full_rebuild_size: String,
    /// Advice: the base a base-image suggestion would move to (any image reference,
    /// e.g. an `oci:` copy of gcr.io/distroless/base-debian12), read to take its real
    /// size off the saving and check it has the libraries the binaries load; without
    /// it, the published size of the suggested distroless base is used (an estimate)
    #[arg(long, value_name = "REF")]
    pub base_image: Option<String>,
    /// Tar entries allowed per layer
    #[arg(long, value_name = "N", default_value_t = LayerLimits::default().max_entries)]
    pub max_entries: u64,
    /// Longest path accepted in a layer, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = LayerLimits::default().max_path_bytes)]
    pub max_path_length: usize,
    /// Layers allowed per image
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_layers: usize,
    /// Attempts per registry request and per blob (429, 5xx, refused, cut or stalled transfers)
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,
    /// Seconds to wait for a registry connection
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub connect_timeout: f64,
    /// Seconds a registry response may stay silent before the transfer is retried
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub read_timeout: f64,
    /// Keep registry blobs (as stored: compressed layers, configs) in DIR between
    /// runs; every entry is verified by digest before use. Safe to share between
    /// concurrent runs.
    #[arg(long, value_name = "DIR", env = "BALLAST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Output format (default: table on a terminal, JSON otherwise)
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Image: registry reference, docker://REF, oci:DIR[:TAG] or docker-archive:FILE[:REF]
    pub image: String,
    /// How many of the largest and hidden files to list
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Add ballast's suggestions (as `ballast advise` gives them)
    #[arg(long)]
    pub advise: bool,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Image: registry reference, docker://REF, oci:DIR[:TAG] or docker-archive:FILE[:REF]
    pub image: String,
    /// Where to write the new image: oci:DIR[:TAG] (a new or empty directory, or a
    /// layout the tag is added to), oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG]
    /// (what docker load and podman load read), or REGISTRY/REPO:TAG (pushed with the
    /// credentials reading uses; blobs first, the manifest last)
    #[arg(long, value_name = "DEST")]
    pub to: String,
    /// Apply only these suggestions (advise's ids, comma-separated)
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Apply every default suggestion but these
    #[arg(
        long,
        value_name = "ID,...",
        value_delimiter = ',',
        conflicts_with = "only"
    )]
    pub skip: Vec<String>,
    /// Strip binaries as `strip --strip-all` does: debug info and the symbol table
    /// (the default, and what advise prices)
    #[arg(long, conflicts_with = "strip_debug")]
    pub strip_all: bool,
    /// Strip only debug info, as `strip --strip-debug` does (the symbol table stays,
    /// for profilers); the projection then uses each binary's size after that strip
    #[arg(long)]
    pub strip_debug: bool,
    /// Print the plan (layers changed, files left out, projected sizes); write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Write the last layers as one: `yours` (the default: the layers after the base
    /// image's, found from the history), `all` (the base's too), or N (layer N and
    /// every one after it). What a later layer hides is left out
    #[arg(long, value_name = "yours|all|N", num_args = 0..=1, default_missing_value = "yours",
          value_parser = parse_squash)]
    pub squash: Option<crate::apply::SquashScope>,
    /// Move the application binaries onto this base (any image reference, e.g. an
    /// `oci:` copy of gcr.io/distroless/static-debian12): its layers as they are, then
    /// one layer with the binaries advise's base-image suggestion keeps
    #[arg(long, value_name = "REF", conflicts_with = "squash")]
    pub base: Option<String>,
    /// Replace the tag (or archive file) when the target already has it
    #[arg(long)]
    pub force: bool,
    /// Recompress every layer with zstd (level 3 unless given; OCI media types). Base
    /// layers then no longer share blobs with other images
    #[arg(long, value_name = "LEVEL", num_args = 0..=1, default_missing_value = "3",
          value_parser = clap::value_parser!(i32).range(1..=22), conflicts_with = "gzip")]
    pub zstd: Option<i32>,
    /// Recompress every layer with gzip (level 6 unless given) instead of at the
    /// level each layer was written at
    #[arg(long, value_name = "LEVEL", num_args = 0..=1, default_missing_value = "6",
          value_parser = clap::value_parser!(i32).range(1..=9))]
    pub gzip: Option<i32>,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_squash(text: &str) -> Result<crate::apply::SquashScope, String> {
    crate::apply::SquashScope::parse(text)
}
