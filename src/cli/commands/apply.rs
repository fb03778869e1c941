//! `apply`: advise's in-image suggestions made, written as an OCI layout, read back.

use crate::advice::StripMode;
use crate::apply::{self, ApplyOptions, Choice, Target};
use crate::cli::args::ApplyArgs;
use crate::cli::progress::progress_reporter;
use crate::cli::settings::{advise_options, inspect_options, output_format};
use crate::cli::{write_stdout, ExitStatus};
use crate::reference::ImageRef;
use crate::report;

pub(crate) async fn apply(args: ApplyArgs) -> anyhow::Result<ExitStatus> {
    let image = ImageRef::parse(&args.image)?;
    let target = Target::parse(&args.to)?;
    let mut source_args = args.source;
    // --base is also the base advise prices the base change against.
    let base = match &args.base {
        Some(reference) => {
            if source_args
                .base_image
                .as_ref()
                .is_some_and(|given| given != reference)
            {
                return Err(crate::cli::UsageError(
                    "--base and --base-image name different images; --base alone is enough".into(),
                )
                .into());
            }
            source_args.base_image = Some(reference.clone());
            Some(
                ImageRef::parse(reference)
                    .map_err(|e| crate::cli::UsageError(format!("--base: {e}")))?,
            )
        }
        None => None,
    };
    let mut inspect = inspect_options(&source_args)?;
    let progress = progress_reporter();
    // zstd is measured (advise's figure, the projection) only when it is wanted.
    let zstd = args.zstd.is_some() || args.only.iter().any(|id| id.trim() == "zstd-layers");
    inspect.extras.zstd = zstd;
    let advise = advise_options(&source_args, &inspect, zstd, progress.clone()).await?;
    let recompress = match (args.zstd, args.gzip) {
        (Some(level), _) => Some((crate::layer::Compression::Zstd, level)),
        (None, Some(level)) => Some((crate::layer::Compression::Gzip, level)),
        (None, None) => None,
    };
    let options = ApplyOptions {
        choice: Choice {
            only: args.only,
            skip: args.skip,
        },
        recompress,
        dry_run: args.dry_run,
        force: args.force,
        squash: args.squash,
        base,
        strip_mode: if args.strip_debug {
            StripMode::Debug
        } else {
            StripMode::All
        },
        inspect,
        advise,
    };
    let result = apply::apply(&image, &target, &options, progress.clone()).await;
    progress.finish();
    let format = output_format(&args.output);
    write_stdout(&match result? {
        apply::ApplyOutcome::Single(report) => report::render(&report, format),
        apply::ApplyOutcome::Multi(report) => report::render(&report, format),
    })?;
    Ok(ExitStatus::Success)
}
