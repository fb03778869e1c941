//! `calibrate`: measure this machine and a registry into a cold-start profile.

use std::io::Write as _;

use crate::cli::args::CalibrateArgs;
use crate::cli::settings::inspect_options;
use crate::cli::{ExitStatus, UsageError};
use crate::cost;
use crate::reference::ImageRef;

pub(crate) async fn calibrate(args: CalibrateArgs) -> anyhow::Result<ExitStatus> {
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
