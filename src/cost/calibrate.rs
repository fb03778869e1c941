//! `ballast calibrate`: turns measured numbers into a platform profile TOML that
//! `ballast cost --profiles FILE` reads back.
//!
//! Parameters the measurement does not cover (node bandwidth, process start, the plain
//! tar rate) are copied from a base profile with their sources, so the written file says
//! which numbers were measured and which were not.

use std::path::Path;

use super::coldstart::{CacheMode, Param, Profile};
use super::CostError;

/// What a calibration run measured, all in seconds and bytes per second.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurements {
    /// One registry round trip.
    pub rtt_s: f64,
    /// Download throughput of a single connection.
    pub connection_bytes_per_s: f64,
    /// Aggregate download throughput with several connections, when measured.
    pub node_bandwidth_bytes_per_s: Option<f64>,
    /// Decompress-and-walk throughput of this machine, uncompressed bytes per second.
    pub gzip_bytes_per_s: f64,
    pub zstd_bytes_per_s: f64,
    pub tar_bytes_per_s: Option<f64>,
    /// The image measured against (`localhost:5000/app:1`).
    pub against: String,
    /// `YYYY-MM-DD`.
    pub measured_at: String,
}

/// A profile named `name` with the measured values and `base`'s for the rest.
pub fn calibrated_profile(name: &str, measured: &Measurements, base: &Profile) -> Profile {
    let source = |what: &str| {
        format!(
            "measured by ballast calibrate against {} on {} ({what})",
            measured.against, measured.measured_at
        )
    };
    let measured_or_base = |value: Option<f64>, what: &str, base: &Param| match value {
        Some(v) => Param::new(v, source(what)),
        None => base.clone(),
    };
    Profile {
        name: name.to_string(),
        description: format!(
            "calibrated against {} on {}; unmeasured parameters from {}",
            measured.against, measured.measured_at, base.name
        ),
        cache: CacheMode::None,
        app_layers: base.app_layers,
        rtt_s: Param::new(
            measured.rtt_s,
            source("fastest blob request, to its first byte"),
        ),
        node_bandwidth_bytes_per_s: measured_or_base(
            measured.node_bandwidth_bytes_per_s,
            "aggregate download throughput",
            &base.node_bandwidth_bytes_per_s,
        ),
        connection_bandwidth_bytes_per_s: Param::new(
            measured.connection_bytes_per_s,
            source("single-connection blob download"),
        ),
        max_concurrent_downloads: base.max_concurrent_downloads.clone(),
        unpack_gzip_bytes_per_s: Param::new(
            measured.gzip_bytes_per_s,
            source("gzip decompress and tar walk, uncompressed bytes/s"),
        ),
        unpack_zstd_bytes_per_s: Param::new(
            measured.zstd_bytes_per_s,
            source("zstd decompress and tar walk, uncompressed bytes/s"),
        ),
        unpack_tar_bytes_per_s: measured_or_base(
            measured.tar_bytes_per_s,
            "tar walk, bytes/s",
            &base.unpack_tar_bytes_per_s,
        ),
        start_s: base.start_s.clone(),
        origin: String::new(),
    }
}

/// The profiles as a TOML file in the shape `coldstart::parse` reads.
pub fn profiles_to_toml(profiles: &[Profile]) -> String {
    let string = |s: &str| toml::Value::String(s.to_string()).to_string();
    let number = |v: f64| {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            format!("{}", v as i64)
        } else {
            toml::Value::Float(v).to_string()
        }
    };
    let mut out = String::from(
        "# Platform profiles for `ballast cost --profiles FILE`, written by ballast calibrate.\n",
    );
    for profile in profiles {
        out.push_str("\n[[profile]]\n");
        out.push_str(&format!("name = {}\n", string(&profile.name)));
        out.push_str(&format!("description = {}\n", string(&profile.description)));
        let cache = match profile.cache {
            CacheMode::None => "none",
            CacheMode::Base => "base",
        };
        out.push_str(&format!("cache = {}\n", string(cache)));
        out.push_str(&format!("app_layers = {}\n", profile.app_layers));
        for (key, param) in profile.params() {
            out.push_str(&format!(
                "{key} = {{ value = {}, source = {} }}\n",
                number(param.value),
                string(&param.source)
            ));
        }
    }
    out
}

/// Writes `profiles` to `path`, checking first that the text reads back.
pub fn write_profiles(path: &Path, profiles: &[Profile]) -> Result<(), CostError> {
    let text = profiles_to_toml(profiles);
    let origin = path.display().to_string();
    super::coldstart::parse(&text, &origin).map_err(|e| CostError::Write {
        origin: origin.clone(),
        message: format!("the generated profile does not read back: {e}"),
    })?;
    std::fs::write(path, text).map_err(|source| CostError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Today's date in UTC as `YYYY-MM-DD`, for `Measurements::measured_at`.
pub fn today_utc() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cost::coldstart;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }

    #[test]
    fn calibrated_profile_reads_back() {
        let base = coldstart::builtin().unwrap();
        let base = base.get("k8s-cold").unwrap();
        let measured = Measurements {
            rtt_s: 0.0012,
            connection_bytes_per_s: 312_500_000.5,
            node_bandwidth_bytes_per_s: None,
            gzip_bytes_per_s: 410e6,
            zstd_bytes_per_s: 1.2e9,
            tar_bytes_per_s: None,
            against: "localhost:5000/\"quoted\"".into(),
            measured_at: "2026-03-01".into(),
        };
        let profile = calibrated_profile("local", &measured, base);
        let text = profiles_to_toml(std::slice::from_ref(&profile));
        let read = coldstart::parse(&text, "x.toml").unwrap();
        let back = &read.profiles[0];
        assert_eq!(back.rtt_s.value, 0.0012);
        assert_eq!(back.connection_bandwidth_bytes_per_s.value, 312_500_000.5);
        assert_eq!(back.unpack_zstd_bytes_per_s.value, 1.2e9);
        assert!(back.rtt_s.source.contains("measured by ballast calibrate"));
        assert_eq!(back.start_s, base.start_s);
        assert_eq!(back.params().len(), profile.params().len());
    }
}

/// Layers larger than this are not held in memory to time the unpack rate.
const MAX_TIMED_LAYER_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error(transparent)]
    Inspect(#[from] crate::image::InspectError),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    #[error("{0}: reading a blob failed: {1}")]
    Read(String, String),
    #[error("{0}: has no layer small enough (under 256 MiB) to time unpacking in memory")]
    NoLayer(String),
    #[error("internal error: {0}")]
    Task(String),
}

impl crate::error::Fault for CalibrateError {
    fn is_bad_input(&self) -> bool {
        !matches!(self, CalibrateError::Task(_))
    }
}

/// Measures, against a real registry image: the round trip (the fastest blob request
/// to its first byte), one connection's download throughput (every blob read raw,
/// one after another), and this machine's decompress-and-walk throughput for gzip,
/// zstd and plain tar (the layers held in memory and run through the layer pipeline).
pub async fn measure(
    image: &crate::reference::ImageRef,
    options: &crate::image::InspectOptions,
) -> Result<Measurements, CalibrateError> {
    use std::time::Instant;

    use crate::layer::{self, Compression};
    use crate::source::{LayerDescriptor, Source};

    let source = Source::open(image, &options.registry).await?;
    let resolved = source
        .resolve(&options.platform, options.explicit_platform)
        .await?;
    let mut rtts = Vec::new();
    let mut downloaded = 0u64;
    let mut download_s = 0.0;
    let mut held: Vec<(LayerDescriptor, Vec<u8>)> = Vec::new();
    for descriptor in &resolved.layers {
        let started = Instant::now();
        let mut blob = source.open_blob(descriptor).await?;
        let keep = descriptor.size <= MAX_TIMED_LAYER_BYTES;
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<(f64, Vec<u8>, u64)> {
            use std::io::Read;
            let mut first = [0u8; 1];
            let n = blob.read(&mut first)?;
            let first_byte = started.elapsed().as_secs_f64();
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&first[..n]);
            let total = if keep {
                blob.read_to_end(&mut bytes)?;
                bytes.len() as u64
            } else {
                n as u64 + std::io::copy(&mut blob, &mut std::io::sink())?
            };
            Ok((first_byte, bytes, total))
        })
        .await
        .map_err(|e| CalibrateError::Task(e.to_string()))?
        .map_err(|e| CalibrateError::Read(descriptor.digest.to_string(), e.to_string()))?;
        let (first_byte, bytes, total) = read;
        rtts.push(first_byte);
        downloaded += total;
        download_s += started.elapsed().as_secs_f64();
        if keep {
            held.push((descriptor.clone(), bytes));
        }
    }
    // Aggregate throughput: the same blobs, three at a time, as dockerd and
    // containerd download them.
    let node_bandwidth = {
        let started = Instant::now();
        let mut total = 0u64;
        for chunk in resolved.layers.chunks(3) {
            let mut tasks = tokio::task::JoinSet::new();
            for descriptor in chunk {
                let mut blob = source.open_blob(descriptor).await?;
                tasks.spawn_blocking(move || std::io::copy(&mut blob, &mut std::io::sink()));
            }
            while let Some(joined) = tasks.join_next().await {
                total += joined
                    .map_err(|e| CalibrateError::Task(e.to_string()))?
                    .map_err(|e| CalibrateError::Read(resolved.reference.clone(), e.to_string()))?;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        (seconds > 0.0).then(|| total as f64 / seconds)
    };
    rtts.sort_by(|a, b| a.total_cmp(b));
    let rtt_s = rtts.first().copied().unwrap_or(0.0);
    let reference = resolved.reference.clone();
    let limits = options.limits;
    let rates = tokio::task::spawn_blocking(move || -> Result<(f64, f64, f64), CalibrateError> {
        let time_scan = |descriptor: &LayerDescriptor,
                         bytes: &[u8]|
         -> Result<(f64, u64), CalibrateError> {
            let mut best = f64::MAX;
            let mut uncompressed = 0;
            for _ in 0..3 {
                let started = Instant::now();
                let scan = layer::scan_layer(bytes, descriptor, None, &limits, Default::default())?;
                best = best.min(started.elapsed().as_secs_f64());
                uncompressed = scan.uncompressed_bytes;
            }
            Ok((best, uncompressed))
        };
        let (mut gzip, mut zstd, mut tar) = ((0.0, 0u64), (0.0, 0u64), (0.0, 0u64));
        for (descriptor, bytes) in &held {
            let compression = layer::compression_of(&descriptor.media_type);
            // Each layer is timed as stored and in the other two forms, so the three
            // rates describe the same data.
            let mut tar_bytes = Vec::new();
            {
                use std::io::Read;
                let mut decoder =
                    layer::decoder(bytes.as_slice(), compression.unwrap_or(Compression::None))
                        .map_err(|e| {
                            CalibrateError::Read(descriptor.digest.to_string(), e.to_string())
                        })?;
                decoder.read_to_end(&mut tar_bytes).map_err(|e| {
                    CalibrateError::Read(descriptor.digest.to_string(), e.to_string())
                })?;
            }
            for (form, slot) in [
                (Compression::Gzip, &mut gzip),
                (Compression::Zstd, &mut zstd),
                (Compression::None, &mut tar),
            ] {
                let blob = if Some(form) == compression {
                    bytes.clone()
                } else {
                    crate::layer::compress(&tar_bytes, form, None).map_err(|e| {
                        CalibrateError::Read(descriptor.digest.to_string(), e.to_string())
                    })?
                };
                let media_type = match form {
                    Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                    Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                    Compression::None => "application/vnd.oci.image.layer.v1.tar",
                };
                let descriptor = LayerDescriptor {
                    digest: crate::digest::Digest::of_bytes(&blob),
                    media_type: media_type.to_string(),
                    size: blob.len() as u64,
                };
                let (seconds, uncompressed) = time_scan(&descriptor, &blob)?;
                slot.0 += seconds;
                slot.1 += uncompressed;
            }
        }
        let rate = |(seconds, bytes): (f64, u64)| {
            if seconds > 0.0 {
                bytes as f64 / seconds
            } else {
                0.0
            }
        };
        Ok((rate(gzip), rate(zstd), rate(tar)))
    })
    .await
    .map_err(|e| CalibrateError::Task(e.to_string()))??;
    if rates.0 <= 0.0 {
        return Err(CalibrateError::NoLayer(reference));
    }
    Ok(Measurements {
        rtt_s,
        connection_bytes_per_s: if download_s > 0.0 {
            downloaded as f64 / download_s
        } else {
            0.0
        },
        node_bandwidth_bytes_per_s: node_bandwidth,
        gzip_bytes_per_s: rates.0,
        zstd_bytes_per_s: rates.1,
        tar_bytes_per_s: Some(rates.2),
        against: reference,
        measured_at: today_utc(),
    })
}
