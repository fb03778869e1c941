//! `inspect` (optionally with advice) and `advise`.

use crate::advice;
use crate::cli::args::{AdviseArgs, InspectArgs};
use crate::cli::progress::progress_reporter;
use crate::cli::settings::{advise_options, inspect_options, output_format};
use crate::cli::{write_stdout, ExitStatus};
use crate::image;
use crate::reference::ImageRef;
use crate::report::advise::AdviseReport;
use crate::report::inspect::InspectReport;
use crate::report::{self, Format};

pub(crate) async fn inspect(args: InspectArgs) -> anyhow::Result<ExitStatus> {
    let image = ImageRef::parse(&args.image)?;
    let mut options = inspect_options(&args.source)?;
    options.extras.zstd = args.advise;
    let progress = progress_reporter();
    let (source, analysis) =
        image::inspect_keeping_source(&image, &options, progress.clone()).await?;
    let mut report = InspectReport::build(&analysis, args.top);
    let advice = if args.advise {
        let advice = advice::advise(
            source,
            &analysis,
            &advise_options(&args.source, &options, true, progress.clone()).await?,
            progress.clone(),
        )
        .await?;
        Some(AdviseReport::build(&analysis, advice))
    } else {
        None
    };
    progress.finish();
    let format = output_format(&args.output);
    // JSON carries the advice inside the report; the other formats append it.
    let text = match (format, advice) {
        (Format::Json, advice) => {
            report.advice = advice;
            report.to_json()
        }
        (Format::Table, Some(advice)) => {
            format!("{}\nSuggestions\n{}", report.to_table(), advice.to_table())
        }
        (Format::Markdown, Some(advice)) => {
            format!("{}\n{}", report.to_markdown(), advice.to_markdown())
        }
        (Format::Table, None) => report.to_table(),
        (Format::Markdown, None) => report.to_markdown(),
    };
    write_stdout(&report::safe(format, text))?;
    Ok(ExitStatus::Success)
}

pub(crate) async fn advise(args: AdviseArgs) -> anyhow::Result<ExitStatus> {
    let image = ImageRef::parse(&args.image)?;
    let mut options = inspect_options(&args.source)?;
    options.extras.zstd = !args.no_zstd;
    let progress = progress_reporter();
    let (source, analysis) =
        image::inspect_keeping_source(&image, &options, progress.clone()).await?;
    let advice = advice::advise(
        source,
        &analysis,
        &advise_options(&args.source, &options, !args.no_zstd, progress.clone()).await?,
        progress.clone(),
    )
    .await?;
    progress.finish();
    let report = AdviseReport::build(&analysis, advice);
    write_stdout(&report::render(&report, output_format(&args.output)))?;
    Ok(ExitStatus::Success)
}
