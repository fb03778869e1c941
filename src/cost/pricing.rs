//! Registry pricing tables: TOML `[[pricing]]` entries, built in (`pricing.toml`,
//! embedded in the binary) and overridable with a user file.
//!
//! Tiers are graduated: each range is billed at its own price for the part of the
//! quantity that falls inside it (the AWS Price List's `startingRange`/`endingRange`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{line_of, read_text, toml_error, CostError, DAYS_PER_MONTH};

/// The built-in table, shipped inside the binary.
pub const BUILTIN_PRICING: &str = include_str!("pricing.toml");
/// The origin name errors and reports use for the built-in table.
pub const BUILTIN_ORIGIN: &str = "built-in pricing.toml";
/// The entry `ballast cost` uses when neither a file nor `--registry` picks one.
pub const DEFAULT_PRICING_ID: &str = "aws-ecr-private";

/// How many bytes the provider calls a GB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GbUnit {
    /// 10^9 bytes.
    #[serde(rename = "GB")]
    Decimal,
    /// 2^30 bytes.
    #[serde(rename = "GiB")]
    Binary,
}

impl GbUnit {
    pub fn bytes(self) -> f64 {
        match self {
            GbUnit::Decimal => 1e9,
            GbUnit::Binary => 1_073_741_824.0,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            GbUnit::Decimal => "GB (10^9 bytes)",
            GbUnit::Binary => "GiB (2^30 bytes)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageUnit {
    #[serde(rename = "GB-Mo")]
    GbMonth,
    #[serde(rename = "GB-Day")]
    GbDay,
}

impl StorageUnit {
    /// How many billing periods of this unit make a month.
    pub fn periods_per_month(self) -> f64 {
        match self {
            StorageUnit::GbMonth => 1.0,
            StorageUnit::GbDay => DAYS_PER_MONTH,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            StorageUnit::GbMonth => "GB-Mo",
            StorageUnit::GbDay => "GB-Day",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferUnit {
    #[serde(rename = "GB")]
    Gb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeeUnit {
    #[serde(rename = "1/Day")]
    PerDay,
    #[serde(rename = "1/Mo")]
    PerMonth,
}

impl FeeUnit {
    pub fn periods_per_month(self) -> f64 {
        match self {
            FeeUnit::PerDay => DAYS_PER_MONTH,
            FeeUnit::PerMonth => 1.0,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FeeUnit::PerDay => "1/Day",
            FeeUnit::PerMonth => "1/Mo",
        }
    }
}

/// One price range: `usd` per unit for the quantity between `from` and `to` (in the
/// entry's GB unit); `to = None` is open-ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub from: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<f64>,
    pub usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate<U> {
    pub unit: U,
    pub tiers: Vec<Tier>,
}

impl<U> Rate<U> {
    /// Graduated cost of `quantity` units.
    pub fn cost(&self, quantity: f64) -> f64 {
        tiered_cost(&self.tiers, quantity)
    }
}

/// Graduated tiers: the part of `quantity` inside each range at that range's price.
pub fn tiered_cost(tiers: &[Tier], quantity: f64) -> f64 {
    if quantity <= 0.0 {
        return 0.0;
    }
    tiers
        .iter()
        .map(|tier| {
            let top = tier.to.map_or(quantity, |to| to.min(quantity));
            (top - tier.from).max(0.0) * tier.usd
        })
        .sum()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transfer {
    pub same_region: Rate<TransferUnit>,
    pub cross_region: Rate<TransferUnit>,
    pub internet: Rate<TransferUnit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedFee {
    pub unit: FeeUnit,
    pub usd: f64,
}

impl FixedFee {
    pub fn usd_per_month(&self) -> f64 {
        self.usd * self.unit.periods_per_month()
    }
}

/// A rate limit instead of a price (Docker Hub).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullLimit {
    pub plan: String,
    pub pulls_per_hour: u32,
    pub per: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PricingEntry {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub region: String,
    pub gb: GbUnit,
    /// `YYYY-MM-DD`: when the prices were read.
    pub effective: String,
    /// Where the prices come from (URL).
    pub source: String,
    /// Where sources disagree or something is not modelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<FixedFee>,
    pub storage: Rate<StorageUnit>,
    pub transfer: Transfer,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pull_limits: Vec<PullLimit>,
    /// The file the entry came from (or the built-in table).
    pub origin: String,
}

impl PricingEntry {
    /// Monthly storage charge for `bytes` stored all month (fixed fee excluded).
    pub fn storage_usd_month(&self, bytes: f64) -> f64 {
        self.storage.cost(bytes / self.gb.bytes()) * self.storage.unit.periods_per_month()
    }

    pub fn fixed_usd_month(&self) -> f64 {
        self.fixed.as_ref().map_or(0.0, FixedFee::usd_per_month)
    }
}

/// Entries in file order; a user file's entries replace built-in ones with the same id.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PricingTable {
    pub entries: Vec<PricingEntry>,
    /// The first entry of the user's file: the default when one is given.
    #[serde(skip)]
    pub user_default: Option<String>,
}

impl PricingTable {
    pub fn get(&self, id: &str) -> Option<&PricingEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The entry named by `id`, else the user file's first entry, else the default.
    pub fn select(&self, id: Option<&str>) -> Result<&PricingEntry, CostError> {
        let wanted = id
            .or(self.user_default.as_deref())
            .unwrap_or(DEFAULT_PRICING_ID);
        self.get(wanted).ok_or_else(|| CostError::UnknownPricing {
            id: wanted.to_string(),
            available: self
                .entries
                .iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Adds `other`'s entries, replacing same-id ones in place.
    pub fn merge(&mut self, other: PricingTable) {
        for entry in other.entries {
            match self.entries.iter_mut().find(|e| e.id == entry.id) {
                Some(existing) => *existing = entry,
                None => self.entries.push(entry),
            }
        }
        if other.user_default.is_some() {
            self.user_default = other.user_default;
        }
    }
}

/// The built-in entries (what `ballast cost --list-pricing` prints).
pub fn list_pricing() -> Result<Vec<PricingEntry>, CostError> {
    Ok(builtin()?.entries)
}

pub fn builtin() -> Result<PricingTable, CostError> {
    parse(BUILTIN_PRICING, BUILTIN_ORIGIN)
}

/// The built-in table with `file`'s entries merged over it; the file's first entry
/// becomes the default.
pub fn load(file: Option<&Path>) -> Result<PricingTable, CostError> {
    let mut table = builtin()?;
    if let Some(path) = file {
        let text = read_text(path)?;
        let mut user = parse(&text, &path.display().to_string())?;
        user.user_default = user.entries.first().map(|e| e.id.clone());
        table.merge(user);
    }
    Ok(table)
}

#[derive(Deserialize)]
struct RawFile {
    pricing: Option<Spanned<Vec<RawEntry>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: Spanned<String>,
    name: String,
    provider: String,
    region: String,
    gb: GbUnit,
    effective: Spanned<String>,
    source: Spanned<String>,
    note: Option<String>,
    fixed: Option<Spanned<FixedFee>>,
    storage: RawRate<StorageUnit>,
    transfer: RawTransfer,
    #[serde(default)]
    pull_limits: Vec<PullLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate<U> {
    unit: U,
    tiers: Spanned<Vec<Spanned<Tier>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransfer {
    same_region: RawRate<TransferUnit>,
    cross_region: RawRate<TransferUnit>,
    internet: RawRate<TransferUnit>,
}

/// Parses a pricing file (`origin` names it in errors). Other top-level tables
/// (`[usage]`, `[[profile]]`) are left to their own readers, so one file can hold all.
pub fn parse(text: &str, origin: &str) -> Result<PricingTable, CostError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(origin, text, e))?;
    let Some(raw_entries) = raw.pricing else {
        return Err(CostError::Invalid {
            origin: origin.to_string(),
            line: 1,
            key: "pricing".into(),
            message: "no [[pricing]] entries".into(),
        });
    };
    let invalid =
        |span: &std::ops::Range<usize>, key: String, message: String| CostError::Invalid {
            origin: origin.to_string(),
            line: line_of(text, span),
            key,
            message,
        };
    if raw_entries.get_ref().is_empty() {
        return Err(invalid(
            &raw_entries.span(),
            "pricing".into(),
            "no [[pricing]] entries".into(),
        ));
    }
    let mut entries: Vec<PricingEntry> = Vec::new();
    for raw in raw_entries.into_inner() {
        let id = raw.id.get_ref().trim().to_string();
        let key = |suffix: &str| format!("pricing[{id}].{suffix}");
        if id.is_empty() {
            return Err(invalid(
                &raw.id.span(),
                "pricing.id".into(),
                "empty id".into(),
            ));
        }
        if entries.iter().any(|e| e.id == id) {
            return Err(invalid(
                &raw.id.span(),
                key("id"),
                "duplicate id in this file".into(),
            ));
        }
        if !is_date(raw.effective.get_ref()) {
            return Err(invalid(
                &raw.effective.span(),
                key("effective"),
                format!(
                    "{:?} is not a date (expected YYYY-MM-DD)",
                    raw.effective.get_ref()
                ),
            ));
        }
        if raw.source.get_ref().trim().is_empty() {
            return Err(invalid(
                &raw.source.span(),
                key("source"),
                "empty: say where the prices come from".into(),
            ));
        }
        if let Some(fixed) = &raw.fixed {
            check_price(fixed.get_ref().usd)
                .map_err(|m| invalid(&fixed.span(), key("fixed.usd"), m))?;
        }
        let storage = rate(raw.storage, &key("storage.tiers"), &invalid)?;
        let transfer = Transfer {
            same_region: rate(
                raw.transfer.same_region,
                &key("transfer.same_region.tiers"),
                &invalid,
            )?,
            cross_region: rate(
                raw.transfer.cross_region,
                &key("transfer.cross_region.tiers"),
                &invalid,
            )?,
            internet: rate(
                raw.transfer.internet,
                &key("transfer.internet.tiers"),
                &invalid,
            )?,
        };
        entries.push(PricingEntry {
            id,
            name: raw.name,
            provider: raw.provider,
            region: raw.region,
            gb: raw.gb,
            effective: raw.effective.into_inner(),
            source: raw.source.into_inner(),
            note: raw.note,
            fixed: raw.fixed.map(Spanned::into_inner),
            storage,
            transfer,
            pull_limits: raw.pull_limits,
            origin: origin.to_string(),
        });
    }
    Ok(PricingTable {
        entries,
        user_default: None,
    })
}

/// Tiers must start at 0, follow one another without gaps or overlaps and end
/// open-ended, so every quantity has exactly one price.
fn rate<U>(
    raw: RawRate<U>,
    key: &str,
    invalid: &dyn Fn(&std::ops::Range<usize>, String, String) -> CostError,
) -> Result<Rate<U>, CostError> {
    let list_span = raw.tiers.span();
    let spanned = raw.tiers.into_inner();
    if spanned.is_empty() {
        return Err(invalid(
            &list_span,
            key.to_string(),
            "no tiers: give at least `{ from = 0, usd = PRICE }`".into(),
        ));
    }
    let mut expected_from = 0.0;
    let last = spanned.len() - 1;
    let mut tiers = Vec::with_capacity(spanned.len());
    for (index, tier) in spanned.into_iter().enumerate() {
        let span = tier.span();
        let tier = tier.into_inner();
        let at = format!("{key}[{index}]");
        check_price(tier.usd).map_err(|m| invalid(&span, format!("{at}.usd"), m))?;
        if !tier.from.is_finite() || tier.from != expected_from {
            return Err(invalid(
                &span,
                format!("{at}.from"),
                if index == 0 {
                    format!("the first tier must start at 0, not {}", tier.from)
                } else {
                    format!(
                        "{} leaves a gap or overlap: the previous tier ends at {expected_from}",
                        tier.from
                    )
                },
            ));
        }
        match tier.to {
            Some(to) if !(to.is_finite() && to > tier.from) => {
                return Err(invalid(
                    &span,
                    format!("{at}.to"),
                    format!("{to} must be above `from` ({})", tier.from),
                ));
            }
            Some(_) if index == last => {
                return Err(invalid(
                    &span,
                    format!("{at}.to"),
                    "the last tier must be open-ended (no `to`), so every quantity has a price"
                        .into(),
                ));
            }
            None if index != last => {
                return Err(invalid(
                    &span,
                    format!("{at}.to"),
                    "only the last tier may be open-ended".into(),
                ));
            }
            Some(to) => expected_from = to,
            None => {}
        }
        tiers.push(tier);
    }
    Ok(Rate {
        unit: raw.unit,
        tiers,
    })
}

/// No registry charges anywhere near this per GB or per month; larger figures only
/// overflow the arithmetic into `inf`.
const MAX_PRICE_USD: f64 = 1e6;

fn check_price(usd: f64) -> Result<(), String> {
    if usd.is_finite() && (0.0..=MAX_PRICE_USD).contains(&usd) {
        Ok(())
    } else {
        Err(format!(
            "price {usd} must be a number from 0 to {MAX_PRICE_USD:e}"
        ))
    }
}

fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return false;
    };
    let number = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (number(year, 4), number(month, 2), number(day, 2))
    else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tier(from: f64, to: Option<f64>, usd: f64) -> Tier {
        Tier { from, to, usd }
    }

    #[test]
    fn graduated_tiers() {
        let tiers = [
            tier(0.0, Some(10.0), 0.0),
            tier(10.0, Some(20.0), 1.0),
            tier(20.0, None, 0.5),
        ];
        assert_eq!(tiered_cost(&tiers, 0.0), 0.0);
        assert_eq!(tiered_cost(&tiers, 5.0), 0.0);
        assert_eq!(tiered_cost(&tiers, 15.0), 5.0);
        // 10 free + 10 at $1 + 10 at $0.5
        assert_eq!(tiered_cost(&tiers, 30.0), 15.0);
    }

    #[test]
    fn builtin_parses_with_sources_and_dates() {
        let table = builtin().expect("built-in pricing parses");
        for id in [
            "aws-ecr-private",
            "gcp-artifact-registry",
            "azure-acr-basic",
            "azure-acr-standard",
            "azure-acr-premium",
            "ghcr",
            "docker-hub",
        ] {
            let entry = table.get(id).expect(id);
            assert!(entry.source.starts_with("https://"), "{id}");
            assert!(is_date(&entry.effective), "{id}");
        }
        assert!(table.select(None).is_ok());
    }

    #[test]
    fn dates() {
        assert!(is_date("2026-03-01"));
        assert!(!is_date("2026-3-1"));
        assert!(!is_date("2026-13-01"));
        assert!(!is_date("March 2026"));
    }
}
