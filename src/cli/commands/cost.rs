//! `cost`: registry storage, transfer and cold start of one image or a set.

use crate::cli::args::CostArgs;
use crate::cli::progress::progress_reporter;
use crate::cli::settings::{inspect_options, output_format, CostInputs};
use crate::cli::{write_stdout, ExitStatus};
use crate::image;
use crate::reference::ImageRef;
use crate::report::cost::PricingList;

pub(crate) async fn cost(args: CostArgs) -> anyhow::Result<ExitStatus> {
    let format = output_format(&args.output);
    let mut inputs = CostInputs::load(&args.cost)?;
    if args.list_pricing {
        let list = PricingList::new(inputs.pricing.entries.clone());
        write_stdout(&crate::report::render(&list, format))?;
        return Ok(ExitStatus::Success);
    }
    let usage = &mut inputs.usage;
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
    let options = inspect_options(&args.source)?;
    let progress = progress_reporter();
    let mut images = Vec::with_capacity(args.images.len());
    for image in &args.images {
        let image = ImageRef::parse(image)?;
        let analysis = image::inspect(&image, &options, progress.clone()).await?;
        images.push(analysis.sizes());
    }
    progress.finish();
    let estimate = inputs.estimate(&args.cost, &images)?;
    write_stdout(&crate::report::render(&estimate, format))?;
    Ok(ExitStatus::Success)
}
