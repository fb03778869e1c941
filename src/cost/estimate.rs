//! The arithmetic: storage, transfer and cold start per image and for the set.

use std::collections::HashMap;

use serde::Serialize;

use super::coldstart::{self, ColdStart, Profile, Profiles};
use super::pricing::PricingEntry;
use super::usage::Usage;
use super::{round_to, CostError, ImageSizes, DAYS_PER_MONTH, HOURS_PER_MONTH};

/// The `cost` result: the stable JSON fields (`schema_version`, `pricing.{id, source,
/// effective}`, `images[].{reference, storage_usd_month, transfer_usd_month,
/// cold_start.{total_s, parts}}`, `set.{unique_compressed_bytes, storage_usd_month}`)
/// plus the detail a reader needs to recompute them.
#[derive(Debug, Clone, Serialize)]
pub struct CostEstimate {
    pub schema_version: u32,
    pub pricing: PricingRef,
    /// The platform profile `images[].cold_start` uses.
    pub profile: String,
    pub images: Vec<ImageCost>,
    pub set: SetCost,
    pub assumptions: Assumptions,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PricingRef {
    pub id: String,
    pub name: String,
    pub source: String,
    pub effective: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub origin: String,
}

/// One image on its own (as if it were the only image in the registry).
#[derive(Debug, Clone, Serialize)]
pub struct ImageCost {
    pub reference: String,
    pub layers: usize,
    /// Distinct layer blobs of this image.
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// Bytes in layers no other image of the set has.
    pub unique_compressed_bytes: u64,
    /// Bytes in layers at least one other image of the set also has.
    pub shared_compressed_bytes: u64,
    /// The top `changed_layers` layers: what a new version adds.
    pub changed_compressed_bytes: u64,
    /// Current version plus the older versions retention keeps.
    pub stored_bytes: u64,
    pub pulled_bytes_month: u64,
    pub storage_usd_month: f64,
    pub transfer_usd_month: f64,
    /// Storage + transfer; a fixed registry fee is counted once, in `set`.
    pub total_usd_month: f64,
    pub transfer: TransferSplit,
    pub cold_start: ColdStart,
    /// What-if: the same image with zstd layers (an estimate).
    pub cold_start_zstd: ColdStart,
    /// Every loaded profile, for comparison.
    pub cold_start_profiles: Vec<ProfileSummary>,
}

/// Monthly transfer by where the pull comes from, in the entry's GB unit and USD.
#[derive(Debug, Clone, Serialize)]
pub struct TransferSplit {
    pub same_region_gb: f64,
    pub cross_region_gb: f64,
    pub internet_gb: f64,
    pub same_region_usd: f64,
    pub cross_region_usd: f64,
    pub internet_usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProfileSummary {
    pub profile: String,
    pub total_s: f64,
    pub zstd_total_s: f64,
}

/// The images together, with each distinct blob counted once.
#[derive(Debug, Clone, Serialize)]
pub struct SetCost {
    pub images: usize,
    /// Σ of each image's compressed bytes, as if nothing were shared.
    pub total_compressed_bytes: u64,
    /// Each distinct layer blob once: what the registry stores for the current versions.
    pub unique_compressed_bytes: u64,
    pub sharing_saved_bytes: u64,
    pub stored_bytes: u64,
    pub stored_bytes_without_sharing: u64,
    pub storage_usd_month: f64,
    pub storage_usd_month_without_sharing: f64,
    pub pulled_bytes_month: u64,
    pub pulled_bytes_month_without_sharing: u64,
    pub transfer_usd_month: f64,
    pub transfer_usd_month_without_sharing: f64,
    pub transfer: TransferSplit,
    /// Storage and transfer saved by sharing layers.
    pub sharing_saved_usd_month: f64,
    /// The registry's fixed fee (ACR), once for the set.
    pub fixed_usd_month: f64,
    pub total_usd_month: f64,
}

/// Everything the figures depend on, printed under them.
#[derive(Debug, Clone, Serialize)]
pub struct Assumptions {
    pub pricing: PricingEntry,
    pub usage: Usage,
    pub pulls_per_month: f64,
    pub versions_stored: u32,
    pub bytes_per_gb: f64,
    pub hours_per_month: f64,
    pub days_per_month: f64,
    pub profile: Profile,
    /// The model in words, with the numbers filled in.
    pub notes: Vec<String>,
}

/// Costs `images` (in the order given, which is the order nodes pull them) with one
/// pricing entry, one usage profile and `profile` for the cold start.
pub fn estimate(
    images: &[ImageSizes],
    pricing: &PricingEntry,
    usage: &Usage,
    profiles: &Profiles,
    profile: &Profile,
) -> Result<CostEstimate, CostError> {
    if images.is_empty() {
        return Err(CostError::NoImages);
    }
    usage.validate()?;
    let pulls = usage.pulls_per_month();
    let versions = usage.versions_stored();
    let blobs = Blobs::of(images, usage);
    let image_costs: Vec<ImageCost> = images
        .iter()
        .enumerate()
        .map(|(index, image)| image_cost(index, image, &blobs, pricing, usage, profiles, profile))
        .collect();
    let set = set_cost(images, &image_costs, &blobs, pricing, usage);
    let warnings = warnings(images, pricing, usage, pulls);
    let notes = notes(pricing, usage, profile, pulls, versions);
    Ok(CostEstimate {
        schema_version: crate::image::SCHEMA_VERSION,
        pricing: PricingRef {
            id: pricing.id.clone(),
            name: pricing.name.clone(),
            source: pricing.source.clone(),
            effective: pricing.effective.clone(),
            note: pricing.note.clone(),
            origin: pricing.origin.clone(),
        },
        profile: profile.name.clone(),
        images: image_costs,
        set,
        assumptions: Assumptions {
            pricing: pricing.clone(),
            usage: usage.clone(),
            pulls_per_month: round_to(pulls, 6),
            versions_stored: versions,
            bytes_per_gb: pricing.gb.bytes(),
            hours_per_month: HOURS_PER_MONTH,
            days_per_month: round_to(DAYS_PER_MONTH, 6),
            profile: profile.clone(),
            notes,
        },
        warnings,
    })
}

impl TransferSplit {
    fn total(&self) -> f64 {
        self.same_region_usd + self.cross_region_usd + self.internet_usd
    }

    fn rounded(&self) -> Self {
        Self {
            same_region_gb: round_to(self.same_region_gb, 6),
            cross_region_gb: round_to(self.cross_region_gb, 6),
            internet_gb: round_to(self.internet_gb, 6),
            same_region_usd: round_to(self.same_region_usd, 6),
            cross_region_usd: round_to(self.cross_region_usd, 6),
            internet_usd: round_to(self.internet_usd, 6),
        }
    }
}

fn transfer_split(pricing: &PricingEntry, usage: &Usage, bytes: f64) -> TransferSplit {
    let gb = bytes / pricing.gb.bytes();
    let same = gb * usage.same_region_share();
    let cross = gb * usage.cross_region_share;
    let internet = gb * usage.internet_share;
    TransferSplit {
        same_region_gb: same,
        cross_region_gb: cross,
        internet_gb: internet,
        same_region_usd: pricing.transfer.same_region.cost(same),
        cross_region_usd: pricing.transfer.cross_region.cost(cross),
        internet_usd: pricing.transfer.internet.cost(internet),
    }
}

/// Each image's distinct layer blobs (digest → compressed bytes), the blobs a new
/// version changes, and how many images hold each blob.
struct Blobs<'a> {
    distinct: Vec<HashMap<&'a str, u64>>,
    changed: Vec<HashMap<&'a str, u64>>,
    holders: HashMap<&'a str, usize>,
}

impl<'a> Blobs<'a> {
    fn of(images: &'a [ImageSizes], usage: &Usage) -> Self {
        let distinct: Vec<HashMap<&str, u64>> = images
            .iter()
            .map(|image| {
                image
                    .layers
                    .iter()
                    .map(|l| (l.digest.as_str(), l.compressed_bytes))
                    .collect()
            })
            .collect();
        let changed = images
            .iter()
            .map(|image| {
                let from = image
                    .layers
                    .len()
                    .saturating_sub(usage.changed_layers as usize);
                image.layers[from..]
                    .iter()
                    .map(|l| (l.digest.as_str(), l.compressed_bytes))
                    .collect()
            })
            .collect();
        let mut holders: HashMap<&str, usize> = HashMap::new();
        for layers in &distinct {
            for digest in layers.keys() {
                *holders.entry(digest).or_default() += 1;
            }
        }
        Self {
            distinct,
            changed,
            holders,
        }
    }

    /// Bytes stored for image `index` alone: this version whole, older ones by
    /// their changed layers.
    fn stored_alone(&self, index: usize, older_versions: f64) -> f64 {
        self.distinct[index].values().sum::<u64>() as f64
            + older_versions * self.changed[index].values().sum::<u64>() as f64
    }

    /// Bytes pulled per month for image `index` alone: cold nodes pull it whole,
    /// warm ones its changed layers.
    fn pulled_alone(&self, index: usize, pulls: f64, warm: f64) -> f64 {
        pulls
            * ((1.0 - warm) * self.distinct[index].values().sum::<u64>() as f64
                + warm * self.changed[index].values().sum::<u64>() as f64)
    }
}

/// One image on its own, as if it were the only image.
fn image_cost(
    index: usize,
    image: &ImageSizes,
    blobs: &Blobs<'_>,
    pricing: &PricingEntry,
    usage: &Usage,
    profiles: &Profiles,
    profile: &Profile,
) -> ImageCost {
    let older_versions = f64::from(usage.versions_stored() - 1);
    let compressed: u64 = blobs.distinct[index].values().sum();
    let unique: u64 = blobs.distinct[index]
        .iter()
        .filter(|(digest, _)| blobs.holders.get(*digest) == Some(&1))
        .map(|(_, bytes)| bytes)
        .sum();
    let changed_bytes: u64 = blobs.changed[index].values().sum();
    let stored = compressed as f64 + older_versions * changed_bytes as f64;
    let pulled = blobs.pulled_alone(index, usage.pulls_per_month(), usage.warm_cache_share);
    let transfer = transfer_split(pricing, usage, pulled);
    let storage_usd = pricing.storage_usd_month(stored);
    let transfer_usd = transfer.total();
    let summaries = profiles
        .profiles
        .iter()
        .map(|p| ProfileSummary {
            profile: p.name.clone(),
            total_s: coldstart::cold_start(&image.layers, p, false).total_s,
            zstd_total_s: coldstart::cold_start(&image.layers, p, true).total_s,
        })
        .collect();
    ImageCost {
        reference: image.reference.clone(),
        layers: image.layers.len(),
        compressed_bytes: compressed,
        uncompressed_bytes: image.layers.iter().map(|l| l.uncompressed_bytes).sum(),
        unique_compressed_bytes: unique,
        shared_compressed_bytes: compressed - unique,
        changed_compressed_bytes: changed_bytes,
        stored_bytes: stored.round() as u64,
        pulled_bytes_month: pulled.round() as u64,
        storage_usd_month: round_to(storage_usd, 6),
        transfer_usd_month: round_to(transfer_usd, 6),
        total_usd_month: round_to(storage_usd + transfer_usd, 6),
        transfer: transfer.rounded(),
        cold_start: coldstart::cold_start(&image.layers, profile, false),
        cold_start_zstd: coldstart::cold_start(&image.layers, profile, true),
        cold_start_profiles: summaries,
    }
}

/// The set deduplicated (each blob stored once; pulled once per node when the
/// images are co-located), beside the same bytes billed without sharing.
fn set_cost(
    images: &[ImageSizes],
    image_costs: &[ImageCost],
    blobs: &Blobs<'_>,
    pricing: &PricingEntry,
    usage: &Usage,
) -> SetCost {
    let pulls = usage.pulls_per_month();
    let warm = usage.warm_cache_share;
    let older_versions = f64::from(usage.versions_stored() - 1);
    let mut union: HashMap<&str, u64> = HashMap::new();
    for layers in &blobs.distinct {
        union.extend(layers.iter().map(|(d, b)| (*d, *b)));
    }
    let mut changed_union: HashMap<&str, u64> = HashMap::new();
    for layers in &blobs.changed {
        changed_union.extend(layers.iter().map(|(d, b)| (*d, *b)));
    }
    let unique_compressed: u64 = union.values().sum();
    let total_compressed: u64 = image_costs.iter().map(|i| i.compressed_bytes).sum();
    let changed_total: u64 = changed_union.values().sum();
    let stored = unique_compressed as f64 + older_versions * changed_total as f64;
    let stored_alone: f64 = (0..images.len())
        .map(|i| blobs.stored_alone(i, older_versions))
        .sum();
    let pulled_alone: f64 = (0..images.len())
        .map(|i| blobs.pulled_alone(i, pulls, warm))
        .sum();
    let pulled = if usage.co_located {
        pulls * ((1.0 - warm) * unique_compressed as f64 + warm * changed_total as f64)
    } else {
        pulled_alone
    };
    let storage_usd = pricing.storage_usd_month(stored);
    let storage_alone_usd = pricing.storage_usd_month(stored_alone);
    let transfer = transfer_split(pricing, usage, pulled);
    let transfer_usd = transfer.total();
    let transfer_alone_usd = transfer_split(pricing, usage, pulled_alone).total();
    let fixed = pricing.fixed_usd_month();
    SetCost {
        images: images.len(),
        total_compressed_bytes: total_compressed,
        unique_compressed_bytes: unique_compressed,
        sharing_saved_bytes: total_compressed - unique_compressed,
        stored_bytes: stored.round() as u64,
        stored_bytes_without_sharing: stored_alone.round() as u64,
        storage_usd_month: round_to(storage_usd, 6),
        storage_usd_month_without_sharing: round_to(storage_alone_usd, 6),
        pulled_bytes_month: pulled.round() as u64,
        pulled_bytes_month_without_sharing: pulled_alone.round() as u64,
        transfer_usd_month: round_to(transfer_usd, 6),
        transfer_usd_month_without_sharing: round_to(transfer_alone_usd, 6),
        transfer: transfer.rounded(),
        sharing_saved_usd_month: round_to(
            (storage_alone_usd - storage_usd) + (transfer_alone_usd - transfer_usd),
            6,
        ),
        fixed_usd_month: round_to(fixed, 6),
        total_usd_month: round_to(storage_usd + transfer_usd + fixed, 6),
    }
}

fn warnings(
    images: &[ImageSizes],
    pricing: &PricingEntry,
    usage: &Usage,
    pulls: f64,
) -> Vec<String> {
    let mut out = Vec::new();
    // Docker Hub counts a pull per manifest request, even when the node has the layers.
    let burst = usage.nodes as usize * images.len();
    let per_hour = pulls * images.len() as f64 / HOURS_PER_MONTH;
    for limit in &pricing.pull_limits {
        let allowed = f64::from(limit.pulls_per_hour);
        if burst as f64 > allowed {
            out.push(format!(
                "{}: a deploy of {} image(s) to {} node(s) makes {burst} pulls within minutes; \
                 the {} plan allows {} pulls/hour per {}",
                pricing.id,
                images.len(),
                usage.nodes,
                limit.plan,
                limit.pulls_per_hour,
                limit.per
            ));
        } else if per_hour > allowed {
            out.push(format!(
                "{}: {per_hour:.1} pulls/hour on average exceeds the {} plan's {} per {}",
                pricing.id, limit.plan, limit.pulls_per_hour, limit.per
            ));
        }
    }
    out
}

fn notes(
    pricing: &PricingEntry,
    usage: &Usage,
    profile: &Profile,
    pulls: f64,
    versions: u32,
) -> Vec<String> {
    let gb = pricing.gb.label();
    let k = usage.changed_layers;
    let mut notes = vec![
        format!(
            "GB means {gb} for {}; a month is {HOURS_PER_MONTH} hours ({DAYS_PER_MONTH:.4} days); \
             tiers are graduated (each range at its own price).",
            pricing.id
        ),
        format!(
            "Storage: each distinct layer blob is stored once across all images and tags. \
             Each image keeps {versions} version(s) = min(tags_kept {}, ceil(deploys_per_day {} \
             x {DAYS_PER_MONTH:.4} x months_retained {})), at least 1; an older version adds only \
             its top {k} layer(s). Manifests and configs (a few kB) are not counted. \
             Storage $ = {} tiers applied to stored GB{}.",
            usage.tags_kept,
            usage.deploys_per_day,
            usage.months_retained,
            pricing.storage.unit.label(),
            if pricing.storage.unit.label() == "GB-Day" {
                format!(" x {DAYS_PER_MONTH:.4} days")
            } else {
                String::new()
            }
        ),
        format!(
            "Transfer: each image is pulled {pulls:.2} times a month{}. A share of {} of pulls \
             lands on a node that holds the previous version and fetches only the top {k} \
             layer(s); the rest fetch every layer. Pulled GB are split {:.2} same region, \
             {:.2} cross region, {:.2} internet, each priced by its own tiers.",
            if usage.pulls_per_month.is_some() {
                String::new()
            } else {
                format!(
                    " (nodes {} x deploys_per_day {} x {DAYS_PER_MONTH:.4} days)",
                    usage.nodes, usage.deploys_per_day
                )
            },
            usage.warm_cache_share,
            usage.same_region_share(),
            usage.cross_region_share,
            usage.internet_share
        ),
        if usage.co_located {
            "Nodes: the images run on the same nodes, so a node fetches a layer they share \
             once (a second image on the same base only pulls its own layers)."
                .to_string()
        } else {
            "Nodes: the images run on different nodes (co_located = false), so each pulls \
             its shared layers too."
                .to_string()
        },
        "Per-image figures price each image alone; set figures deduplicate shared layers; \
         'without sharing' bills the same bytes with nothing shared, and the difference is \
         what sharing saved. A fixed registry fee is counted once, for the set."
            .to_string(),
        format!(
            "Cold start on {}: T = (4 + 2 x fetched layers) x rtt + max(fetched bytes / \
             min(node_bw, {} x conn_bw), largest layer / conn_bw) + sum(uncompressed / unpack \
             rate of its compression) + start. ballast's model, not a published formula; \
             download and unpack are summed although runtimes overlap them in part.",
            profile.name, profile.max_concurrent_downloads.value
        ),
    ];
    if let Some(fixed) = &pricing.fixed {
        notes.push(format!(
            "Fixed fee: ${} per {} x {} = ${:.4}/month.",
            fixed.usd,
            match fixed.unit {
                super::pricing::FeeUnit::PerDay => "day",
                super::pricing::FeeUnit::PerMonth => "month",
            },
            round_to(fixed.unit.periods_per_month(), 4),
            fixed.usd_per_month()
        ));
    }
    notes
}
