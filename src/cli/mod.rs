//! The command line: clap arguments (`args`), resolved once into settings
//! (`settings`), dispatched to one short function per command (`commands`). Errors
//! become one line on stderr and an exit code, decided in one place
//! ([`exit_status_for`]) from what each error enum says about itself.

mod args;
mod commands;
mod progress;
mod settings;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use crate::error::Fault;
use args::Cli;

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
/// only failures of ballast itself are "unexpected" (exit 3). The first error in the
/// chain that knows (see [`Fault`]) decides.
fn exit_status_for(error: &anyhow::Error) -> ExitStatus {
    for cause in error.chain() {
        if let Some(bad_input) = fault_of(cause) {
            return if bad_input {
                ExitStatus::BadInput
            } else {
                ExitStatus::Unexpected
            };
        }
    }
    ExitStatus::Unexpected
}

/// What an error of one of ballast's enums says about itself.
fn fault_of(cause: &(dyn std::error::Error + 'static)) -> Option<bool> {
    macro_rules! faults {
        ($($error:ty),* $(,)?) => {$(
            if let Some(error) = cause.downcast_ref::<$error>() {
                return Some(error.is_bad_input());
            }
        )*};
    }
    faults!(
        crate::image::InspectError,
        crate::advice::AdviceError,
        crate::apply::ApplyError,
        crate::cost::CostError,
        crate::cost::calibrate::CalibrateError,
        crate::gate::GateError,
        crate::source::SourceError,
        crate::reference::ReferenceError,
        UsageError,
        OutputError,
    );
    None
}

/// A flag's value that makes no sense: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

impl Fault for UsageError {
    fn is_bad_input(&self) -> bool {
        true
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(commands::run(cli.command));
    // A reader a failure left blocked on a hostile peer must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
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
pub(crate) fn write_file(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|source| OutputError {
        what: crate::text::escape_control(&path.display().to_string()).into_owned(),
        source,
    })?;
    Ok(())
}

pub(crate) fn append_summary(path: &std::path::Path, markdown: &str) -> std::io::Result<()> {
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

impl Fault for OutputError {
    /// A path that is a directory, a missing directory, a full disk: the user's to fix.
    fn is_bad_input(&self) -> bool {
        true
    }
}
