//! An attribution read for people comparing builds: the top items with their share of
//! `.text` and the standard library's share (`compare`, `report`), and what came,
//! went, grew or shrank between two builds of one binary (`diff`, `gate`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Attribution, AttributionItem, Source, Unit};
use crate::vocabulary::vocabulary;

/// Items a summary lists; the rest are summed.
pub const TOP_ITEMS: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct AttributionSummary {
    pub unit: Unit,
    pub source: Source,
    /// Size of `.text`, the whole every share is of.
    pub code_bytes: u64,
    pub attributed_bytes: u64,
    /// Bytes of the items flagged `std`: for Go every standard-library package (the
    /// runtime, its internals and std's vendored `golang.org/x` copies included); for
    /// Rust std, core, alloc and their kin (see `Attribution`). Symbols: 0.
    pub std_bytes: u64,
    /// `std_bytes / code_bytes`, 0..1.
    pub std_share: f64,
    /// Bytes of crates std links in privately that may as well be the program's own
    /// (`maybe_std`: no `.dep-v0` to tell); counted in neither `std_bytes` nor the
    /// program's share, so a reader sees the range.
    #[serde(skip_serializing_if = "is_zero")]
    pub maybe_std_bytes: u64,
    /// The largest items, largest first.
    pub top: Vec<SummaryItem>,
    /// The items past `top`, counted and summed.
    pub rest_items: usize,
    pub rest_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryItem {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub bytes: u64,
    /// `bytes / code_bytes`, 0..1.
    pub share: f64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub std: bool,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl AttributionSummary {
    /// `None` when nothing was measured (no symbols: names without sizes say
    /// nothing about shares).
    pub fn of(attribution: &Attribution, top: usize) -> Option<Self> {
        if attribution.source == Source::None {
            return None;
        }
        let code = attribution.code_bytes;
        let std_bytes: u64 = attribution
            .items
            .iter()
            .filter(|i| i.std)
            .filter_map(|i| i.bytes)
            .sum();
        let maybe_std_bytes: u64 = attribution
            .items
            .iter()
            .filter(|i| i.maybe_std && !i.std)
            .filter_map(|i| i.bytes)
            .sum();
        let items = attribution.items.iter().take(top).map(|i| {
            let bytes = i.bytes.unwrap_or(0);
            SummaryItem {
                name: i.name.clone(),
                module: i.module.clone(),
                version: i.version.clone(),
                bytes,
                share: share(bytes, code),
                std: i.std,
            }
        });
        let rest = attribution.items.get(top..).unwrap_or_default();
        Some(AttributionSummary {
            unit: attribution.unit,
            source: attribution.source,
            code_bytes: code,
            attributed_bytes: attribution.attributed_bytes,
            std_bytes,
            std_share: share(std_bytes, code),
            maybe_std_bytes,
            top: items.collect(),
            rest_items: rest.len(),
            rest_bytes: rest.iter().filter_map(|i| i.bytes).sum(),
        })
    }

    /// What `std_bytes` counts, as the one-line comparison names it; `None` for
    /// symbols, which have no standard-library split.
    pub fn std_label(&self) -> Option<&'static str> {
        match self.unit {
            Unit::Package => Some("Go std (runtime included)"),
            Unit::Crate => Some("Rust std/core/alloc"),
            Unit::Symbol => None,
        }
    }
}

vocabulary! {
    /// What became of one package, crate or symbol between two builds.
    pub enum ItemChangeKind {
        Added => "added", "added";
        Removed => "removed", "removed";
        Grown => "grown", "grown";
        Shrunk => "shrunk", "shrunk";
        /// The same size, another version.
        Version => "version", "version changed";
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemChange {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    pub version_before: Option<String>,
    pub version_after: Option<String>,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub change: ItemChangeKind,
    pub delta: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub std: bool,
}

impl ItemChange {
    /// `v0.20.0 → v0.23.0`, `v0.20.0` when unchanged, `-` without any.
    pub fn version_label(&self) -> String {
        match (&self.version_before, &self.version_after) {
            (Some(b), Some(a)) if b == a => a.clone(),
            (Some(b), Some(a)) => format!("{b} → {a}"),
            (None, Some(a)) => a.clone(),
            (Some(b), None) => b.clone(),
            (None, None) => "-".into(),
        }
    }
}

/// The changes past the listed ones, summed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MoreChanges {
    pub items: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub delta: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttributionDiff {
    pub unit: Unit,
    pub code_bytes_before: u64,
    pub code_bytes_after: u64,
    /// Sorted by the size of the change, largest first; version-only changes last.
    pub items: Vec<ItemChange>,
    /// What `truncate` left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more: Option<MoreChanges>,
}

impl AttributionDiff {
    /// Keeps the `top` largest changes and sums the rest into `more`.
    pub fn truncate(&mut self, top: usize) {
        if self.items.len() <= top {
            return;
        }
        let rest = self.items.split_off(top);
        let more = self.more.get_or_insert_with(MoreChanges::default);
        for item in rest {
            more.items += 1;
            more.bytes_before += item.bytes_before;
            more.bytes_after += item.bytes_after;
            more.delta += item.delta;
        }
    }

    /// The items that grew or came, largest first.
    pub fn growers(&self) -> impl Iterator<Item = &ItemChange> {
        self.items.iter().filter(|i| i.delta > 0)
    }
}

/// The fold `finish` makes past its item cap: its name changes with its count, so
/// two builds' folds are not one item.
fn is_fold(name: &str) -> bool {
    name.starts_with('(') && name.ends_with(')') && name.contains(" more ")
}

/// Item by item, keyed by name. `None` when the two are not comparable: another unit
/// (the language changed) or either side unmeasured.
pub fn diff(before: &Attribution, after: &Attribution) -> Option<AttributionDiff> {
    if before.unit != after.unit || before.source == Source::None || after.source == Source::None {
        return None;
    }
    // Symbols may repeat a name (static functions of two files); their bytes add up.
    let index = |items: &[AttributionItem]| {
        let mut by_name: BTreeMap<String, AttributionItem> = BTreeMap::new();
        for item in items.iter().filter(|i| !is_fold(&i.name)) {
            by_name
                .entry(item.name.clone())
                .and_modify(|seen| {
                    seen.bytes = Some(seen.bytes.unwrap_or(0) + item.bytes.unwrap_or(0));
                })
                .or_insert_with(|| item.clone());
        }
        by_name
    };
    let (b, a) = (index(&before.items), index(&after.items));
    let mut names: Vec<&String> = b.keys().chain(a.keys()).collect();
    names.sort();
    names.dedup();
    let mut items: Vec<ItemChange> = names
        .into_iter()
        .filter_map(|name| {
            let (old, new) = (b.get(name), a.get(name));
            let bytes_before = old.and_then(|i| i.bytes).unwrap_or(0);
            let bytes_after = new.and_then(|i| i.bytes).unwrap_or(0);
            let version_before = old.and_then(|i| i.version.clone());
            let version_after = new.and_then(|i| i.version.clone());
            let change = match (old, new) {
                (None, Some(_)) => ItemChangeKind::Added,
                (Some(_), None) => ItemChangeKind::Removed,
                _ if bytes_after > bytes_before => ItemChangeKind::Grown,
                _ if bytes_after < bytes_before => ItemChangeKind::Shrunk,
                _ if version_before != version_after => ItemChangeKind::Version,
                _ => return None,
            };
            let either = new.or(old)?;
            Some(ItemChange {
                name: name.clone(),
                module: either.module.clone(),
                version_before,
                version_after,
                bytes_before,
                bytes_after,
                change,
                delta: bytes_after as i64 - bytes_before as i64,
                std: either.std,
            })
        })
        .collect();
    items.sort_by(|x, y| {
        y.delta
            .unsigned_abs()
            .cmp(&x.delta.unsigned_abs())
            .then_with(|| x.name.cmp(&y.name))
    });
    Some(AttributionDiff {
        unit: after.unit,
        code_bytes_before: before.code_bytes,
        code_bytes_after: after.code_bytes,
        items,
        more: None,
    })
}

/// The shape of `attribution` in a saved `inspect` JSON report.
#[derive(Debug, Deserialize)]
pub struct SavedAttribution {
    unit: Unit,
    source: Source,
    #[serde(default)]
    code_bytes: u64,
    #[serde(default)]
    attributed_bytes: u64,
    #[serde(default)]
    functions: u64,
    #[serde(default)]
    items: Vec<AttributionItem>,
}

impl From<SavedAttribution> for Attribution {
    fn from(saved: SavedAttribution) -> Self {
        Attribution {
            unit: saved.unit,
            source: saved.source,
            code_bytes: saved.code_bytes,
            attributed_bytes: saved.attributed_bytes,
            functions: saved.functions,
            padding_bytes: None,
            pclntab_layout: None,
            items: saved.items,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, bytes: u64, version: Option<&str>) -> AttributionItem {
        AttributionItem {
            name: name.into(),
            module: version.map(|_| "example.com/m".to_string()),
            version: version.map(str::to_string),
            bytes: Some(bytes),
            functions: Some(1),
            std: name == "runtime",
            maybe_std: false,
        }
    }

    fn attribution(items: Vec<AttributionItem>) -> Attribution {
        Attribution {
            unit: Unit::Package,
            source: Source::Pclntab,
            code_bytes: items.iter().filter_map(|i| i.bytes).sum(),
            attributed_bytes: 0,
            functions: 0,
            padding_bytes: None,
            pclntab_layout: None,
            items,
            error: None,
        }
    }

    #[test]
    fn summary_counts_std_and_folds_the_rest() {
        let a = attribution(vec![
            item("runtime", 600, None),
            item("main", 300, None),
            item("example.com/m/x", 100, Some("v1.0.0")),
        ]);
        let summary = AttributionSummary::of(&a, 2).expect("measured");
        assert_eq!(summary.std_bytes, 600);
        assert!((summary.std_share - 0.6).abs() < 1e-9);
        assert_eq!(summary.top.len(), 2);
        assert_eq!((summary.rest_items, summary.rest_bytes), (1, 100));
        assert_eq!(summary.std_label(), Some("Go std (runtime included)"));
    }

    #[test]
    fn changes_came_went_grew_and_versions() {
        let before = attribution(vec![
            item("runtime", 600, None),
            item("example.com/m/x", 100, Some("v1.0.0")),
            item("gone", 50, None),
            item("(3 more packages)", 10, None),
        ]);
        let after = attribution(vec![
            item("runtime", 700, None),
            item("example.com/m/x", 100, Some("v1.1.0")),
            item("runtime/cgo", 40, None),
            item("(4 more packages)", 20, None),
        ]);
        let mut d = diff(&before, &after).expect("comparable");
        let summary: Vec<(&str, ItemChangeKind, i64)> = d
            .items
            .iter()
            .map(|i| (i.name.as_str(), i.change, i.delta))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("runtime", ItemChangeKind::Grown, 100),
                ("gone", ItemChangeKind::Removed, -50),
                ("runtime/cgo", ItemChangeKind::Added, 40),
                ("example.com/m/x", ItemChangeKind::Version, 0),
            ]
        );
        assert_eq!(d.items[3].version_label(), "v1.0.0 → v1.1.0");
        d.truncate(2);
        let more = d.more.as_ref().expect("more");
        assert_eq!((more.items, more.delta), (2, 40));
        assert_eq!(d.growers().count(), 1);
    }
}
