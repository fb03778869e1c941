//! What the arguments mean, resolved once: the read options every command shares,
//! the output format, and the prices and profiles `compare`, `report` and `cost` use.

use std::io::{IsTerminal, Read};

use anyhow::Context;

use super::args::{CostChoice, OutputArgs, SourceArgs};
use super::UsageError;
use crate::advice::AdviseOptions;
use crate::cost;
use crate::image::InspectOptions;
use crate::layer::LayerLimits;
use crate::registry::{RegistryOptions, Secret};
use crate::report::Format;
use crate::source::Platform;

/// How images are read: platform, credentials, TLS, limits, retries, cache.
pub(crate) fn inspect_options(args: &SourceArgs) -> anyhow::Result<InspectOptions> {
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

/// How advice measures, under the limits the layers were read with; reads the
/// `--base-image` (once, for every image advised on).
pub(crate) async fn advise_options(
    args: &SourceArgs,
    options: &InspectOptions,
    measure_zstd: bool,
    progress: std::sync::Arc<dyn crate::image::Progress>,
) -> anyhow::Result<AdviseOptions> {
    let full_rebuild_bytes = crate::size::parse_size(&args.full_rebuild_size)
        .map_err(|e| UsageError(format!("--full-rebuild-size: {e}")))?;
    let base_image = match &args.base_image {
        Some(reference) => {
            let image = crate::reference::ImageRef::parse(reference)
                .map_err(|e| UsageError(format!("--base-image: {e}")))?;
            let mut base_options = options.clone();
            base_options.extras = Default::default();
            let base = crate::image::inspect(&image, &base_options, progress)
                .await
                .with_context(|| {
                    format!("--base-image {}", crate::text::escape_control(reference))
                })?;
            Some(std::sync::Arc::new(base))
        }
        None => None,
    };
    Ok(AdviseOptions {
        measure_zstd,
        limits: options.limits,
        full_rebuild_bytes,
        base_image,
        ..AdviseOptions::default()
    })
}

/// `--format`, else a table on a terminal and JSON otherwise.
pub(crate) fn output_format(args: &OutputArgs) -> Format {
    args.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    })
}

/// The pricing entry, usage and cold-start profile chosen with `--pricing`,
/// `--registry`, `--usage`, `--profiles` and `--profile`.
pub(crate) struct CostInputs {
    pub pricing: cost::PricingTable,
    pub usage: cost::Usage,
    pub profiles: cost::Profiles,
}

impl CostInputs {
    pub(crate) fn load(choice: &CostChoice) -> Result<Self, cost::CostError> {
        Ok(Self {
            pricing: cost::pricing::load(choice.pricing.as_deref())?,
            usage: cost::usage::load(choice.usage.as_deref())?,
            profiles: cost::coldstart::load(choice.profiles.as_deref())?,
        })
    }

    /// Prices a set of images with the chosen entry and profile.
    pub(crate) fn estimate(
        &self,
        choice: &CostChoice,
        images: &[cost::ImageSizes],
    ) -> Result<cost::CostEstimate, cost::CostError> {
        let pricing = self.pricing.select(choice.registry.as_deref())?;
        let profile = self.profiles.select(choice.profile.as_deref())?;
        cost::estimate(images, pricing, &self.usage, &self.profiles, profile)
    }
}
