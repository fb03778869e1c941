//! One short function per command: read the images, run the analysis, render.

mod apply;
mod calibrate;
mod compare;
mod cost;
mod diff;
mod gate;
mod inspect;

use super::args::Command;
use super::ExitStatus;

pub(crate) async fn run(command: Command) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Inspect(args) => inspect::inspect(args).await,
        Command::Advise(args) => inspect::advise(args).await,
        Command::Apply(args) => apply::apply(args).await,
        Command::Cost(args) => cost::cost(args).await,
        Command::Diff(args) => diff::diff(args).await,
        Command::Compare(args) => compare::compare(args).await,
        Command::Report(args) => compare::report(args).await,
        Command::Gate(args) => gate::gate(args).await,
        Command::Calibrate(args) => calibrate::calibrate(args).await,
    }
}
