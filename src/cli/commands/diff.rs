//! `diff BASE NEW`.

use crate::cli::args::DiffArgs;
use crate::cli::progress::progress_reporter;
use crate::cli::settings::{inspect_options, output_format};
use crate::cli::{write_stdout, ExitStatus};
use crate::image;
use crate::reference::ImageRef;
use crate::report::{self, diff::DiffReport};

pub(crate) async fn diff(args: DiffArgs) -> anyhow::Result<ExitStatus> {
    let base = ImageRef::parse(&args.base)?;
    let new = ImageRef::parse(&args.new)?;
    let options = inspect_options(&args.source)?;
    let progress = progress_reporter();
    // One after the other: a failed image must not leave the other's readers running.
    let base = image::inspect(&base, &options, progress.clone()).await?;
    let new = image::inspect(&new, &options, progress.clone()).await?;
    progress.finish();
    let report = DiffReport::new(crate::diff::diff(&base, &new), args.top);
    write_stdout(&report::render(&report, output_format(&args.output)))?;
    Ok(ExitStatus::Success)
}
