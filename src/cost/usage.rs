//! The usage profile: how often images are pulled, from where, and how long their
//! versions are kept. A `[usage]` table in a TOML file, with documented defaults; every
//! key is optional.
//!
//! ```toml
//! [usage]
//! pulls_per_month = 500        # default: nodes * deploys_per_day * 30.4167
//! cross_region_share = 0.1     # share of pulls from another region of the same cloud
//! internet_share = 0.0         # share of pulls leaving the cloud
//! nodes = 3
//! deploys_per_day = 1
//! warm_cache_share = 0.75      # share of pulls onto a node holding the previous version
//! months_retained = 3
//! tags_kept = 10               # per repository
//! changed_layers = 1           # top layers that differ between two versions
//! co_located = true            # the images given run on the same nodes
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{line_of, read_text, toml_error, CostError, DAYS_PER_MONTH};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// Pulls of each image per month; `None` derives it as one pull per node per deploy.
    pub pulls_per_month: Option<f64>,
    /// Share (0..=1) of pulls from another region of the same cloud.
    pub cross_region_share: f64,
    /// Share (0..=1) of pulls that leave the cloud (internet egress).
    pub internet_share: f64,
    pub nodes: u32,
    /// Each deploy is assumed to ship a new version (a new tag) of every image.
    pub deploys_per_day: f64,
    /// Share (0..=1) of pulls onto a node that holds the previous version, which then
    /// fetches only the `changed_layers` top layers. The rest are cold pulls.
    pub warm_cache_share: f64,
    /// How long a version is kept before retention deletes it.
    pub months_retained: f64,
    /// Versions kept per repository (a retention policy's count limit).
    pub tags_kept: u32,
    /// Top layers that differ between two versions of an image (the application layers);
    /// the ones below are shared by every version.
    pub changed_layers: u32,
    /// The images costed together run on the same nodes, so a node fetches a layer they
    /// share once.
    pub co_located: bool,
}

impl Default for Usage {
    /// Three nodes, one deploy a day, all pulls in the registry's region, three quarters
    /// of them onto nodes that ran the previous version, versions kept three months up to
    /// ten tags, only the top layer changing between versions.
    fn default() -> Self {
        Self {
            pulls_per_month: None,
            cross_region_share: 0.0,
            internet_share: 0.0,
            nodes: 3,
            deploys_per_day: 1.0,
            warm_cache_share: 0.75,
            months_retained: 3.0,
            tags_kept: 10,
            changed_layers: 1,
            co_located: true,
        }
    }
}

impl Usage {
    pub fn pulls_per_month(&self) -> f64 {
        self.pulls_per_month
            .unwrap_or_else(|| f64::from(self.nodes) * self.deploys_per_day * DAYS_PER_MONTH)
    }

    /// Versions of each image stored at once: one per deploy over the retention period,
    /// capped by `tags_kept`, at least the current one.
    pub fn versions_stored(&self) -> u32 {
        let by_age = (self.deploys_per_day * DAYS_PER_MONTH * self.months_retained).ceil();
        let by_age = if by_age.is_finite() && by_age >= 1.0 {
            by_age.min(f64::from(u32::MAX)) as u32
        } else {
            1
        };
        by_age.min(self.tags_kept).max(1)
    }

    pub fn same_region_share(&self) -> f64 {
        (1.0 - self.cross_region_share - self.internet_share).max(0.0)
    }

    /// Checks values set from flags (no file line to point at).
    pub fn validate(&self) -> Result<(), CostError> {
        let flag = |key: &str, message: String| CostError::Invalid {
            origin: "usage".into(),
            line: 0,
            key: key.to_string(),
            message,
        };
        for (key, value) in [
            ("cross_region_share", self.cross_region_share),
            ("internet_share", self.internet_share),
            ("warm_cache_share", self.warm_cache_share),
        ] {
            check_share(value).map_err(|m| flag(key, m))?;
        }
        for (key, value) in [
            ("pulls_per_month", self.pulls_per_month.unwrap_or(0.0)),
            ("deploys_per_day", self.deploys_per_day),
            ("months_retained", self.months_retained),
        ] {
            check_non_negative(value).map_err(|m| flag(key, m))?;
        }
        if self.cross_region_share + self.internet_share > 1.0 + 1e-9 {
            return Err(flag(
                "internet_share",
                "cross_region_share + internet_share exceeds 1".into(),
            ));
        }
        Ok(())
    }
}

fn check_share(value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("{value} is not a share between 0 and 1"))
    }
}

/// Far beyond any fleet (a trillion pulls a month); larger values only overflow the
/// money arithmetic into `inf`.
const MAX_AMOUNT: f64 = 1e12;

fn check_non_negative(value: f64) -> Result<(), String> {
    if value.is_finite() && (0.0..=MAX_AMOUNT).contains(&value) {
        Ok(())
    } else {
        Err(format!("{value} must be a number from 0 to {MAX_AMOUNT:e}"))
    }
}

#[derive(Deserialize)]
struct RawFile {
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsage {
    pulls_per_month: Option<Spanned<f64>>,
    cross_region_share: Option<Spanned<f64>>,
    internet_share: Option<Spanned<f64>>,
    nodes: Option<u32>,
    deploys_per_day: Option<Spanned<f64>>,
    warm_cache_share: Option<Spanned<f64>>,
    months_retained: Option<Spanned<f64>>,
    tags_kept: Option<u32>,
    changed_layers: Option<u32>,
    co_located: Option<bool>,
}

/// Reads the `[usage]` table of a TOML file (other tables are ignored); keys it omits
/// keep their defaults. A file without `[usage]` is refused.
pub fn parse(text: &str, origin: &str) -> Result<Usage, CostError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(origin, text, e))?;
    let mut usage = Usage::default();
    let Some(raw) = raw.usage else {
        // A file given as a usage profile that holds none is a mistake, not defaults.
        return Err(CostError::Invalid {
            origin: origin.to_string(),
            line: 0,
            key: "usage".into(),
            message: "the file has no [usage] table".into(),
        });
    };
    let invalid = |value: &Spanned<f64>, key: &str, message: String| CostError::Invalid {
        origin: origin.to_string(),
        line: line_of(text, &value.span()),
        key: format!("usage.{key}"),
        message,
    };
    let share = |value: Option<Spanned<f64>>, key: &str, default: f64| match value {
        None => Ok(default),
        Some(v) => check_share(*v.get_ref())
            .map(|()| *v.get_ref())
            .map_err(|m| invalid(&v, key, m)),
    };
    let amount = |value: Option<Spanned<f64>>, key: &str, default: f64| match value {
        None => Ok(default),
        Some(v) => check_non_negative(*v.get_ref())
            .map(|()| *v.get_ref())
            .map_err(|m| invalid(&v, key, m)),
    };
    if let Some(pulls) = raw.pulls_per_month {
        usage.pulls_per_month = Some(amount(Some(pulls), "pulls_per_month", 0.0)?);
    }
    let internet_span = raw.internet_share.clone();
    usage.cross_region_share = share(
        raw.cross_region_share,
        "cross_region_share",
        usage.cross_region_share,
    )?;
    usage.internet_share = share(raw.internet_share, "internet_share", usage.internet_share)?;
    if usage.cross_region_share + usage.internet_share > 1.0 + 1e-9 {
        let span = internet_span.unwrap_or_else(|| Spanned::new(0..0, 0.0));
        return Err(invalid(
            &span,
            "internet_share",
            "cross_region_share + internet_share exceeds 1".into(),
        ));
    }
    usage.warm_cache_share = share(
        raw.warm_cache_share,
        "warm_cache_share",
        usage.warm_cache_share,
    )?;
    usage.deploys_per_day = amount(
        raw.deploys_per_day,
        "deploys_per_day",
        usage.deploys_per_day,
    )?;
    usage.months_retained = amount(
        raw.months_retained,
        "months_retained",
        usage.months_retained,
    )?;
    if let Some(nodes) = raw.nodes {
        usage.nodes = nodes;
    }
    if let Some(tags) = raw.tags_kept {
        usage.tags_kept = tags;
    }
    if let Some(changed) = raw.changed_layers {
        usage.changed_layers = changed;
    }
    if let Some(co_located) = raw.co_located {
        usage.co_located = co_located;
    }
    Ok(usage)
}

/// The defaults, or the `[usage]` table of `file`.
pub fn load(file: Option<&Path>) -> Result<Usage, CostError> {
    match file {
        None => Ok(Usage::default()),
        Some(path) => parse(&read_text(path)?, &path.display().to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_derive_pulls_and_versions() {
        let usage = Usage::default();
        assert!((usage.pulls_per_month() - 3.0 * 730.0 / 24.0).abs() < 1e-9);
        // 1 deploy/day for 3 months is ~92 versions, capped at 10 tags.
        assert_eq!(usage.versions_stored(), 10);
        let rare = Usage {
            deploys_per_day: 0.0,
            ..Usage::default()
        };
        assert_eq!(rare.versions_stored(), 1);
    }

    #[test]
    fn partial_table_keeps_defaults() {
        let usage = parse("[usage]\npulls_per_month = 100\nnodes = 7\n", "u.toml").unwrap();
        assert_eq!(usage.pulls_per_month(), 100.0);
        assert_eq!(usage.nodes, 7);
        assert_eq!(usage.tags_kept, 10);
    }

    #[test]
    fn bad_share_names_key_and_line() {
        let error = parse("[usage]\nnodes = 2\ninternet_share = 1.5\n", "u.toml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "u.toml:3: `usage.internet_share`: 1.5 is not a share between 0 and 1"
        );
        let error = parse("[usage]\nnodez = 2\n", "u.toml").unwrap_err();
        let shown = error.to_string();
        assert!(shown.starts_with("u.toml:2:"), "{shown}");
        assert!(shown.contains("nodez"), "{shown}");
    }
}
