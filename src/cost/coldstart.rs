//! Cold start per platform profile:
//! `T = T_rtt + T_download + T_unpack + T_start` with
//! - `T_rtt = (4 + 2·fetched layers)·rtt` (token, index, manifest, config, then a GET and
//!   a redirect per layer);
//! - `T_download = max(Σ compressed / min(node_bw, n·conn_bw), largest layer / conn_bw)`,
//!   `n` = max concurrent downloads (3 in containerd and dockerd);
//! - `T_unpack = Σ uncompressed / unpack rate` of each layer's compression, one layer at
//!   a time (containerd#8881, moby#32618);
//! - `T_start` from the profile.
//!
//! No published paper gives this exact formula; it is ballast's model, and `ballast
//! calibrate` measures its parameters. Download and unpack are summed although
//! containerd overlaps them in part, so it errs on the slow side.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use toml::Spanned;

use super::{line_of, read_text, round_to, toml_error, CostError, LayerSize};
use crate::layer::Compression;

pub const BUILTIN_PROFILES: &str = include_str!("profiles.toml");
pub const BUILTIN_ORIGIN: &str = "built-in profiles.toml";
pub const DEFAULT_PROFILE: &str = "k8s-cold";

/// A model parameter and where its value comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub value: f64,
    pub source: String,
}

impl Param {
    pub fn new(value: f64, source: impl Into<String>) -> Self {
        Self {
            value,
            source: source.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// The node holds none of the image's layers.
    None,
    /// The node holds every layer but the top `app_layers`.
    Base,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub cache: CacheMode,
    /// With `cache = "base"`: how many top layers the node lacks.
    pub app_layers: u32,
    pub rtt_s: Param,
    pub node_bandwidth_bytes_per_s: Param,
    pub connection_bandwidth_bytes_per_s: Param,
    pub max_concurrent_downloads: Param,
    pub unpack_gzip_bytes_per_s: Param,
    pub unpack_zstd_bytes_per_s: Param,
    pub unpack_tar_bytes_per_s: Param,
    pub start_s: Param,
    pub origin: String,
}

impl Profile {
    /// Every parameter by its TOML key, in model order (for the assumptions list).
    pub fn params(&self) -> [(&'static str, &Param); 8] {
        [
            ("rtt_s", &self.rtt_s),
            (
                "node_bandwidth_bytes_per_s",
                &self.node_bandwidth_bytes_per_s,
            ),
            (
                "connection_bandwidth_bytes_per_s",
                &self.connection_bandwidth_bytes_per_s,
            ),
            ("max_concurrent_downloads", &self.max_concurrent_downloads),
            ("unpack_gzip_bytes_per_s", &self.unpack_gzip_bytes_per_s),
            ("unpack_zstd_bytes_per_s", &self.unpack_zstd_bytes_per_s),
            ("unpack_tar_bytes_per_s", &self.unpack_tar_bytes_per_s),
            ("start_s", &self.start_s),
        ]
    }

    fn unpack_rate(&self, compression: Compression) -> f64 {
        match compression {
            Compression::Gzip => self.unpack_gzip_bytes_per_s.value,
            Compression::Zstd => self.unpack_zstd_bytes_per_s.value,
            Compression::None => self.unpack_tar_bytes_per_s.value,
        }
    }
}

/// Loaded profiles, in file order; a user file's profiles replace same-name built-ins.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Profiles {
    pub profiles: Vec<Profile>,
    #[serde(skip)]
    pub user_default: Option<String>,
}

impl Profiles {
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The profile named `name`, else the user file's first, else `k8s-cold`.
    pub fn select(&self, name: Option<&str>) -> Result<&Profile, CostError> {
        let wanted = name
            .or(self.user_default.as_deref())
            .unwrap_or(DEFAULT_PROFILE);
        self.get(wanted).ok_or_else(|| CostError::UnknownProfile {
            name: wanted.to_string(),
            available: self
                .profiles
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    pub fn merge(&mut self, other: Profiles) {
        for profile in other.profiles {
            match self.profiles.iter_mut().find(|p| p.name == profile.name) {
                Some(existing) => *existing = profile,
                None => self.profiles.push(profile),
            }
        }
        if other.user_default.is_some() {
            self.user_default = other.user_default;
        }
    }
}

pub fn builtin() -> Result<Profiles, CostError> {
    parse(BUILTIN_PROFILES, BUILTIN_ORIGIN)
}

/// The built-in profiles with `file`'s `[[profile]]` entries merged over them; the
/// file's first profile becomes the default.
pub fn load(file: Option<&Path>) -> Result<Profiles, CostError> {
    let mut profiles = builtin()?;
    if let Some(path) = file {
        let text = read_text(path)?;
        let mut user = parse(&text, &path.display().to_string())?;
        user.user_default = user.profiles.first().map(|p| p.name.clone());
        profiles.merge(user);
    }
    Ok(profiles)
}

/// A parameter as written: a bare number, or `{ value = N, source = "…" }`.
struct RawParam {
    value: f64,
    source: Option<String>,
}

impl<'de> Deserialize<'de> for RawParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamVisitor;
        impl<'de> Visitor<'de> for ParamVisitor {
            type Value = RawParam;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or { value = NUMBER, source = \"where it comes from\" }")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<RawParam, E> {
                Ok(RawParam {
                    value,
                    source: None,
                })
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawParam, E> {
                self.visit_f64(value as f64)
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawParam, E> {
                self.visit_f64(value as f64)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawParam, A::Error> {
                let mut value = None;
                let mut source = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "value" => value = Some(map.next_value::<f64>()?),
                        "source" => source = Some(map.next_value::<String>()?),
                        other => return Err(de::Error::unknown_field(other, &["value", "source"])),
                    }
                }
                Ok(RawParam {
                    value: value.ok_or_else(|| de::Error::missing_field("value"))?,
                    source,
                })
            }
        }
        deserializer.deserialize_any(ParamVisitor)
    }
}

#[derive(Deserialize)]
struct RawFile {
    profile: Option<Vec<RawProfile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    cache: CacheMode,
    app_layers: Option<u32>,
    rtt_s: Spanned<RawParam>,
    node_bandwidth_bytes_per_s: Spanned<RawParam>,
    connection_bandwidth_bytes_per_s: Spanned<RawParam>,
    max_concurrent_downloads: Spanned<RawParam>,
    unpack_gzip_bytes_per_s: Spanned<RawParam>,
    unpack_zstd_bytes_per_s: Spanned<RawParam>,
    unpack_tar_bytes_per_s: Spanned<RawParam>,
    start_s: Spanned<RawParam>,
}

#[derive(Clone, Copy)]
enum Bound {
    /// rtt and start may be zero.
    NonNegative,
    /// Rates divide: they must be above zero.
    Positive,
    /// A count of connections.
    AtLeastOne,
}

/// Parses the `[[profile]]` entries of a TOML file (other tables are ignored).
pub fn parse(text: &str, origin: &str) -> Result<Profiles, CostError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(origin, text, e))?;
    let raw_profiles = raw.profile.unwrap_or_default();
    if raw_profiles.is_empty() {
        return Err(CostError::Invalid {
            origin: origin.to_string(),
            line: 1,
            key: "profile".into(),
            message: "no [[profile]] entries".into(),
        });
    }
    let mut profiles: Vec<Profile> = Vec::new();
    for raw in raw_profiles {
        let name = raw.name.get_ref().trim().to_string();
        let invalid =
            |span: &std::ops::Range<usize>, key: &str, message: String| CostError::Invalid {
                origin: origin.to_string(),
                line: line_of(text, span),
                key: format!("profile[{name}].{key}"),
                message,
            };
        if name.is_empty() || profiles.iter().any(|p| p.name == name) {
            return Err(invalid(
                &raw.name.span(),
                "name",
                "empty or duplicate profile name".into(),
            ));
        }
        let param = |raw: Spanned<RawParam>, key: &str, bound: Bound| {
            let span = raw.span();
            let raw = raw.into_inner();
            let ok = raw.value.is_finite()
                && match bound {
                    Bound::NonNegative => raw.value >= 0.0,
                    Bound::Positive => raw.value > 0.0,
                    Bound::AtLeastOne => raw.value >= 1.0 && raw.value.fract() == 0.0,
                };
            if !ok {
                let wanted = match bound {
                    Bound::NonNegative => "a number >= 0",
                    Bound::Positive => "a number > 0",
                    Bound::AtLeastOne => "a whole number >= 1",
                };
                return Err(invalid(
                    &span,
                    key,
                    format!("{} must be {wanted}", raw.value),
                ));
            }
            let source = raw
                .source
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| format!("set in {origin} (no source given)"));
            Ok(Param::new(raw.value, source))
        };
        profiles.push(Profile {
            description: raw.description,
            cache: raw.cache,
            app_layers: raw.app_layers.unwrap_or(1),
            rtt_s: param(raw.rtt_s, "rtt_s", Bound::NonNegative)?,
            node_bandwidth_bytes_per_s: param(
                raw.node_bandwidth_bytes_per_s,
                "node_bandwidth_bytes_per_s",
                Bound::Positive,
            )?,
            connection_bandwidth_bytes_per_s: param(
                raw.connection_bandwidth_bytes_per_s,
                "connection_bandwidth_bytes_per_s",
                Bound::Positive,
            )?,
            max_concurrent_downloads: param(
                raw.max_concurrent_downloads,
                "max_concurrent_downloads",
                Bound::AtLeastOne,
            )?,
            unpack_gzip_bytes_per_s: param(
                raw.unpack_gzip_bytes_per_s,
                "unpack_gzip_bytes_per_s",
                Bound::Positive,
            )?,
            unpack_zstd_bytes_per_s: param(
                raw.unpack_zstd_bytes_per_s,
                "unpack_zstd_bytes_per_s",
                Bound::Positive,
            )?,
            unpack_tar_bytes_per_s: param(
                raw.unpack_tar_bytes_per_s,
                "unpack_tar_bytes_per_s",
                Bound::Positive,
            )?,
            start_s: param(raw.start_s, "start_s", Bound::NonNegative)?,
            name,
            origin: origin.to_string(),
        });
    }
    Ok(Profiles {
        profiles,
        user_default: None,
    })
}

/// The time split into the model's parts, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdStartParts {
    pub rtt_s: f64,
    pub download_s: f64,
    pub unpack_s: f64,
    pub start_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdStart {
    pub profile: String,
    /// The sum of the parts (each rounded to the millisecond).
    pub total_s: f64,
    pub parts: ColdStartParts,
    /// `model` for the image as stored; `what-if` for a hypothetical variant.
    pub kind: &'static str,
    /// What the figure assumes beyond the profile.
    pub basis: String,
    pub layers_fetched: usize,
    pub layers_cached: usize,
    pub fetched_compressed_bytes: u64,
    pub fetched_uncompressed_bytes: u64,
    pub largest_fetched_layer_bytes: u64,
    /// Which term of the download max() won: `bandwidth`, `largest layer` or `none`.
    pub download_bound: &'static str,
}

/// Cold start of an image's layers on `profile`. With `as_zstd`, gzip layers are
/// unpacked at the zstd rate with unchanged compressed sizes (a what-if estimate).
pub fn cold_start(layers: &[LayerSize], profile: &Profile, as_zstd: bool) -> ColdStart {
    let cached = match profile.cache {
        CacheMode::None => 0,
        CacheMode::Base => layers.len().saturating_sub(profile.app_layers as usize),
    };
    let fetched = &layers[cached..];
    // A blob listed twice is downloaded once, but the snapshotter applies it twice.
    let mut seen = HashSet::new();
    let mut download_bytes = 0u64;
    let mut largest = 0u64;
    let mut distinct = 0usize;
    for layer in fetched {
        if seen.insert(layer.digest.as_str()) {
            distinct += 1;
            download_bytes += layer.compressed_bytes;
            largest = largest.max(layer.compressed_bytes);
        }
    }
    let mut unpack_s = 0.0;
    let mut uncompressed = 0u64;
    for layer in fetched {
        let compression = match layer.compression {
            Compression::Gzip if as_zstd => Compression::Zstd,
            other => other,
        };
        unpack_s += layer.uncompressed_bytes as f64 / profile.unpack_rate(compression);
        uncompressed += layer.uncompressed_bytes;
    }

    let rtt_s = (4.0 + 2.0 * distinct as f64) * profile.rtt_s.value;
    let conn = profile.connection_bandwidth_bytes_per_s.value;
    let aggregate = profile
        .node_bandwidth_bytes_per_s
        .value
        .min(profile.max_concurrent_downloads.value * conn);
    let by_bandwidth = download_bytes as f64 / aggregate;
    let by_largest = largest as f64 / conn;
    let (download_s, download_bound) = if distinct == 0 {
        (0.0, "none")
    } else if by_largest > by_bandwidth {
        (by_largest, "largest layer")
    } else {
        (by_bandwidth, "bandwidth")
    };
    let parts = ColdStartParts {
        rtt_s: round_to(rtt_s, 3),
        download_s: round_to(download_s, 3),
        unpack_s: round_to(unpack_s, 3),
        start_s: round_to(profile.start_s.value, 3),
    };
    let total_s = round_to(
        parts.rtt_s + parts.download_s + parts.unpack_s + parts.start_s,
        3,
    );
    ColdStart {
        profile: profile.name.clone(),
        total_s,
        parts,
        kind: if as_zstd { "what-if" } else { "model" },
        basis: if as_zstd {
            "estimate: gzip layers recompressed with zstd, compressed sizes assumed unchanged"
                .to_string()
        } else {
            "layers as stored".to_string()
        },
        layers_fetched: fetched.len(),
        layers_cached: cached,
        fetched_compressed_bytes: download_bytes,
        fetched_uncompressed_bytes: uncompressed,
        largest_fetched_layer_bytes: largest,
        download_bound,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn layer(digest: &str, compressed: u64, uncompressed: u64) -> LayerSize {
        LayerSize {
            digest: digest.into(),
            compressed_bytes: compressed,
            uncompressed_bytes: uncompressed,
            compression: Compression::Gzip,
        }
    }

    #[test]
    fn builtin_profiles_parse_with_sources() {
        let profiles = builtin().unwrap();
        for name in ["k8s-cold", "fargate", "warm-base"] {
            let profile = profiles.get(name).expect(name);
            for (key, param) in profile.params() {
                assert!(!param.source.is_empty(), "{name}.{key}");
                assert!(!param.source.contains("no source given"), "{name}.{key}");
            }
        }
    }

    #[test]
    fn reproduces_the_containerd_reference_point() {
        // containerd#2886: 728 MB / 2.08 GB over 14 layers, ~28-30 s on a desktop.
        let profiles = builtin().unwrap();
        let layers: Vec<LayerSize> = (0..14)
            .map(|i| layer(&format!("sha256:{i}"), 52_000_000, 148_571_429))
            .collect();
        let k8s = cold_start(&layers, profiles.get("k8s-cold").unwrap(), false);
        assert!((k8s.total_s - 28.0).abs() < 0.1, "{k8s:?}");
        let zstd = cold_start(&layers, profiles.get("k8s-cold").unwrap(), true);
        let saved = 1.0 - zstd.total_s / k8s.total_s;
        assert!((0.25..0.30).contains(&saved), "{saved}");
    }

    #[test]
    fn bare_numbers_are_accepted_and_bad_values_named() {
        let text = "[[profile]]\nname = \"p\"\ncache = \"none\"\nrtt_s = 0.1\n\
            node_bandwidth_bytes_per_s = 1e8\nconnection_bandwidth_bytes_per_s = 1e7\n\
            max_concurrent_downloads = 3\nunpack_gzip_bytes_per_s = 0\n\
            unpack_zstd_bytes_per_s = 1e8\nunpack_tar_bytes_per_s = 1e8\nstart_s = 0\n";
        let error = parse(text, "p.toml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "p.toml:8: `profile[p].unpack_gzip_bytes_per_s`: 0 must be a number > 0"
        );
        let fixed = text.replace("gzip_bytes_per_s = 0", "gzip_bytes_per_s = 5e7");
        let profiles = parse(&fixed, "p.toml").unwrap();
        assert_eq!(profiles.profiles[0].rtt_s.value, 0.1);
        assert!(profiles.profiles[0].rtt_s.source.contains("p.toml"));
    }
}
