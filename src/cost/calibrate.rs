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
        rtt_s: Param::new(measured.rtt_s, source("median request round trip")),
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
