//! `compare` and `report`: a set of images, each inspected and advised on, priced
//! together.

use std::io::Write as _;

use crate::advice;
use crate::cli::args::{CompareArgs, CostChoice, ReportArgs, SourceArgs};
use crate::cli::progress::progress_reporter;
use crate::cli::settings::{advise_options, inspect_options, output_format, CostInputs};
use crate::cli::{write_file, write_stdout, ExitStatus};
use crate::compare::{self, ImageBundle};
use crate::cost::CostEstimate;
use crate::image;
use crate::reference::ImageRef;
use crate::report::{self, Format};

pub(crate) async fn compare(args: CompareArgs) -> anyhow::Result<ExitStatus> {
    let (bundles, estimate) =
        analyse_set(&args.images, &args.source, &args.cost, !args.no_advice).await?;
    let comparison = compare::compare(&bundles, Some(&estimate));
    write_stdout(&report::render(&comparison, output_format(&args.output)))?;
    Ok(ExitStatus::Success)
}

pub(crate) async fn report(args: ReportArgs) -> anyhow::Result<ExitStatus> {
    let (mut bundles, estimate) = analyse_set(&args.images, &args.source, &args.cost, true).await?;
    if args.stable {
        for advice in bundles.iter_mut().filter_map(|b| b.advice.as_mut()) {
            for suggestion in &mut advice.suggestions {
                suggestion.drop_run_dependent();
            }
        }
    }
    let comparison = compare::compare(&bundles, Some(&estimate));
    let markdown = report::safe(
        Format::Markdown,
        report::document::render(&bundles, &comparison, Some(&estimate)),
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

/// Inspects (and advises on) every image, then prices the set.
async fn analyse_set(
    images: &[String],
    source: &SourceArgs,
    choice: &CostChoice,
    with_advice: bool,
) -> anyhow::Result<(Vec<ImageBundle>, CostEstimate)> {
    let mut options = inspect_options(source)?;
    options.extras.zstd = with_advice;
    let progress = progress_reporter();
    let advise = if with_advice {
        advise_options(source, &options, true, progress.clone()).await?
    } else {
        Default::default()
    };
    let mut bundles = Vec::with_capacity(images.len());
    for image in images {
        let image = ImageRef::parse(image)?;
        let (source, analysis) =
            image::inspect_keeping_source(&image, &options, progress.clone()).await?;
        let advice = if with_advice {
            Some(advice::advise(source, &analysis, &advise, progress.clone()).await?)
        } else {
            None
        };
        bundles.push(ImageBundle { analysis, advice });
    }
    progress.finish();
    let sizes: Vec<_> = bundles.iter().map(|b| b.analysis.sizes()).collect();
    let estimate = CostInputs::load(choice)?.estimate(choice, &sizes)?;
    Ok((bundles, estimate))
}
