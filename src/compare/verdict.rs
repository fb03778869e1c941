//! The comparison's verdict: which image is smallest and why, in figures and in
//! sentences made only of the figures the comparison holds.

use std::collections::BTreeSet;

use super::{AdviceSide, Difference, ImageSide, SetTotals, Verdict, TOP_DIFFERENCES};
use crate::binary::AnatomyPart;
use crate::category::Category;
use crate::size::human;

pub(super) fn verdict(images: &[ImageSide], set: &SetTotals) -> Verdict {
    let by_size = |a: &&ImageSide, b: &&ImageSide| {
        a.compressed_bytes
            .cmp(&b.compressed_bytes)
            .then(a.uncompressed_bytes.cmp(&b.uncompressed_bytes))
    };
    let index_of = |side: &ImageSide| {
        images
            .iter()
            .position(|i| std::ptr::eq(i, side))
            .unwrap_or(0)
    };
    let smallest = images.iter().min_by(by_size).map_or(0, index_of);
    let largest = images.iter().rev().max_by(by_size).map_or(0, index_of);
    let (small, large) = match (images.get(smallest), images.get(largest)) {
        (Some(s), Some(l)) => (s, l),
        _ => {
            return Verdict {
                smallest: 0,
                largest: 0,
                difference_compressed_bytes: 0,
                difference_uncompressed_bytes: 0,
                difference_share: 0.0,
                categories: vec![],
                anatomy: vec![],
                smallest_after_suggestions: None,
                summary: vec!["No images to compare.".into()],
            }
        }
    };
    let difference = large.compressed_bytes - small.compressed_bytes;
    let difference_share = if large.compressed_bytes == 0 {
        0.0
    } else {
        difference as f64 / large.compressed_bytes as f64
    };

    let categories = top_differences(Category::ALL.iter().map(|c| {
        (
            c.key().to_string(),
            c.label().to_string(),
            images
                .iter()
                .map(|i| {
                    i.categories
                        .iter()
                        .find(|row| row.category == c.key())
                        .map_or(0, |row| row.bytes)
                })
                .collect(),
        )
    }));
    let anatomy = if images.iter().all(|i| i.main_binary.is_some()) {
        top_differences(anatomy_groups(images).into_iter().map(|part| {
            (
                part.key().to_string(),
                part.label().to_string(),
                images.iter().map(|i| i.anatomy_bytes(part)).collect(),
            )
        }))
    } else {
        Vec::new()
    };
    let smallest_after_suggestions = if images.iter().all(|i| i.advice.is_some()) {
        images
            .iter()
            .enumerate()
            .filter_map(|(index, i)| i.advice.as_ref().map(|a| (index, a)))
            .min_by(|a, b| {
                a.1.projected_compressed_bytes
                    .cmp(&b.1.projected_compressed_bytes)
                    .then(a.0.cmp(&b.0))
            })
            .map(|(index, _)| index)
    } else {
        None
    };

    let mut verdict = Verdict {
        smallest,
        largest,
        difference_compressed_bytes: difference,
        difference_uncompressed_bytes: large.uncompressed_bytes as i64
            - small.uncompressed_bytes as i64,
        difference_share,
        categories,
        anatomy,
        smallest_after_suggestions,
        summary: Vec::new(),
    };
    verdict.summary = summary(images, set, &verdict);
    verdict
}

fn top_differences(rows: impl Iterator<Item = (String, String, Vec<u64>)>) -> Vec<Difference> {
    let mut out: Vec<Difference> = rows
        .map(|(name, label, bytes)| {
            let max = bytes.iter().copied().max().unwrap_or(0);
            let min = bytes.iter().copied().min().unwrap_or(0);
            Difference {
                name,
                label,
                bytes,
                spread: max - min,
            }
        })
        .filter(|d| d.spread > 0)
        .collect();
    out.sort_by(|a, b| b.spread.cmp(&a.spread).then_with(|| a.name.cmp(&b.name)));
    out.truncate(TOP_DIFFERENCES);
    out
}

/// The anatomy groups any of the main binaries has, in the analyser's order.
pub fn anatomy_groups(images: &[ImageSide]) -> Vec<AnatomyPart> {
    let parts: BTreeSet<AnatomyPart> = images
        .iter()
        .filter_map(|i| i.main_binary.as_ref())
        .flat_map(|binary| binary.anatomy.iter().map(|g| g.group))
        .collect();
    parts.into_iter().collect()
}

fn summary(images: &[ImageSide], set: &SetTotals, verdict: &Verdict) -> Vec<String> {
    let mut lines = Vec::new();
    let (Some(small), Some(large)) = (images.get(verdict.smallest), images.get(verdict.largest))
    else {
        return lines;
    };
    // Prose names images by their short labels; the references are listed beside them.
    let labels = image_labels(images);
    let name = |side: &ImageSide| -> String {
        images
            .iter()
            .position(|i| std::ptr::eq(i, side))
            .and_then(|index| labels.get(index).cloned())
            .unwrap_or_else(|| side.image.reference.clone())
    };
    if images.len() == 1 {
        lines.push(format!(
            "{} is the only image: {} compressed, {} uncompressed.",
            name(small),
            human(small.compressed_bytes),
            human(small.uncompressed_bytes)
        ));
    } else if verdict.difference_compressed_bytes == 0 {
        lines.push(format!(
            "{} and {} are the same size compressed ({}).",
            name(small),
            name(large),
            human(small.compressed_bytes)
        ));
    } else {
        lines.push(format!(
            "{} is the smallest: {} compressed vs {} for {} ({} or {:.1}% less); uncompressed {} vs {}.",
            name(small),
            human(small.compressed_bytes),
            human(large.compressed_bytes),
            name(large),
            human(verdict.difference_compressed_bytes),
            verdict.difference_share * 100.0,
            human(small.uncompressed_bytes),
            human(large.uncompressed_bytes)
        ));
    }
    if images.len() > 1 {
        if set.shared_layers > 0 {
            lines.push(format!(
                "{} layer(s) are shared (the same blobs, stored once and pulled once per node): \
                 the set is {} compressed instead of {}.",
                set.shared_layers,
                human(set.unique_compressed_bytes),
                human(set.total_compressed_bytes)
            ));
        }
        if set.same_content_layers > 0 {
            lines.push(format!(
                "{} layer(s) hold the same content (diff_id) in two images but are compressed \
                 differently: different blobs, so a registry stores and a node pulls each copy.",
                set.same_content_layers
            ));
        }
        if !verdict.categories.is_empty() {
            lines.push(format!(
                "Biggest differences by category (visible bytes): {}.",
                differences_text(&verdict.categories, images)
            ));
        }
        if !verdict.anatomy.is_empty() {
            lines.push(format!(
                "Inside the main binaries: {}.",
                differences_text(&verdict.anatomy, images)
            ));
        }
    }
    let stripped: Vec<Option<u64>> = images
        .iter()
        .map(|i| {
            i.main_binary
                .as_ref()
                .and_then(|b| b.strip.as_ref())
                .map(|s| s.size_after_strip_all)
        })
        .collect();
    if images.len() > 1 && stripped.iter().all(Option::is_some) {
        let parts: Vec<String> = stripped
            .iter()
            .zip(&labels)
            .map(|(size, label)| format!("{label} {}", human(size.unwrap_or(0))))
            .collect();
        lines.push(format!(
            "With debug info and symbols stripped (strip --strip-all), the main binaries would be {}.",
            parts.join(" vs ")
        ));
    }
    for side in images {
        if let Some(binary) = &side.main_binary {
            let mut line = format!(
                "{}: main binary {} ({}{}, {}, {})",
                name(side),
                binary.path,
                binary.language,
                binary
                    .toolchain
                    .as_ref()
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default(),
                binary.linkage,
                human(binary.size)
            );
            if let Some(strip) = &binary.strip {
                if strip.saved_by_strip_all > 0 {
                    line.push_str(&format!(
                        "; stripping would save {}",
                        human(strip.saved_by_strip_all)
                    ));
                }
            }
            line.push('.');
            lines.push(line);
        }
    }
    let with_advice: Vec<(&ImageSide, &AdviceSide)> = images
        .iter()
        .filter_map(|i| i.advice.as_ref().map(|a| (i, a)))
        .collect();
    if !with_advice.is_empty() {
        let parts: Vec<String> = with_advice
            .iter()
            .map(|(side, advice)| {
                format!(
                    "{} {} (from {})",
                    name(side),
                    human(advice.projected_compressed_bytes),
                    human(side.compressed_bytes)
                )
            })
            .collect();
        lines.push(format!(
            "After the exact and measured suggestions, compressed: {}.",
            parts.join("; ")
        ));
        if let Some(after) = verdict
            .smallest_after_suggestions
            .and_then(|i| images.get(i))
        {
            if images.len() > 1 {
                lines.push(if std::ptr::eq(after, small) {
                    format!("{} stays the smallest.", name(after))
                } else {
                    format!("{} would then be the smallest.", name(after))
                });
            }
        }
    }
    for side in images.iter().filter(|i| i.advice.is_none()) {
        lines.push(format!(
            "{}: no advice was computed, so no projection.",
            name(side)
        ));
    }
    lines
}

fn differences_text(differences: &[Difference], images: &[ImageSide]) -> String {
    differences
        .iter()
        .take(3)
        .map(|d| {
            let values: Vec<String> = d
                .bytes
                .iter()
                .zip(image_labels(images))
                .map(|(bytes, label)| format!("{label} {}", human(*bytes)))
                .collect();
            format!("{} ({})", d.label, values.join(" vs "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Short, distinct labels for the images (column headers, chart axes): the last
/// path component of each reference, numbered when two would read the same.
pub fn image_labels(images: &[ImageSide]) -> Vec<String> {
    let references: Vec<&str> = images.iter().map(|i| i.image.reference.as_str()).collect();
    reference_labels(&references)
}

/// Short labels for references, for table columns and chart axes: each reference's
/// last path component (`hello-go:1.0` for `oci:target/demo/hello-go:1.0`), with as
/// many components before it as it takes to tell the references apart
/// (`team-a/app:1` and `team-b/app:1`); references that differ only in their digest
/// keep its first 12 hex digits; references still alike are numbered.
pub fn reference_labels(references: &[&str]) -> Vec<String> {
    let parts: Vec<(Vec<&str>, Option<&str>)> = references
        .iter()
        .map(|reference| {
            let (name, digest) = match reference.split_once('@') {
                Some((name, digest)) => (name, Some(digest)),
                None => (*reference, None),
            };
            let components: Vec<&str> = name.split('/').filter(|c| !c.is_empty()).collect();
            (components, digest)
        })
        .collect();
    let tail = |components: &[&str], depth: usize| -> String {
        let start = components.len().saturating_sub(depth);
        components[start..].join("/")
    };
    let mut labels: Vec<String> = references
        .iter()
        .map(|r| short_name(r).to_string())
        .collect();
    let deepest = parts.iter().map(|(c, _)| c.len()).max().unwrap_or(1);
    for depth in 2..=deepest {
        let clashing = clashes(&labels);
        if clashing.is_empty() {
            break;
        }
        for index in clashing {
            let (components, _) = &parts[index];
            if components.len() >= depth {
                labels[index] = tail(components, depth);
            }
        }
    }
    for index in clashes(&labels) {
        if let Some(digest) = parts[index].1 {
            let hex = digest.rsplit(':').next().unwrap_or(digest);
            labels[index] = format!(
                "{}@{}",
                labels[index],
                hex.chars().take(12).collect::<String>()
            );
        }
    }
    let clashing = clashes(&labels);
    for index in clashing {
        labels[index] = format!("{} {}", index + 1, labels[index]);
    }
    labels
}

/// Indexes of labels some other label equals.
fn clashes(labels: &[String]) -> Vec<usize> {
    (0..labels.len())
        .filter(|i| labels.iter().filter(|l| **l == labels[*i]).count() > 1)
        .collect()
}

/// The last path component of a reference (`hello-go:1.0` for
/// `oci:target/demo/hello-go:1.0`), for labels where the whole reference is too long.
pub fn short_name(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    without_digest
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(short_name("oci:target/demo/hello-go:1.0"), "hello-go:1.0");
        assert_eq!(short_name("ghcr.io/org/app@sha256:abc"), "app");
        assert_eq!(short_name("alpine"), "alpine");
    }

    #[test]
    fn reference_labels_keep_what_tells_references_apart() {
        assert_eq!(
            reference_labels(&[
                "oci:target/demo/hello-go:1.0",
                "oci:target/demo/hello-rs:1.0"
            ]),
            ["hello-go:1.0", "hello-rs:1.0"]
        );
        assert_eq!(
            reference_labels(&["ghcr.io/team-a/app:1", "ghcr.io/team-b/app:1", "alpine"]),
            ["team-a/app:1", "team-b/app:1", "alpine"]
        );
        assert_eq!(
            reference_labels(&["app@sha256:0123456789abcdef", "app@sha256:fedcba9876543210"]),
            ["app@0123456789ab", "app@fedcba987654"]
        );
        assert_eq!(reference_labels(&["app", "app"]), ["1 app", "2 app"]);
    }
}
