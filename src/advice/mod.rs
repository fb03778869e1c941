//! `ballast advise`: what to change, what it saves (uncompressed and compressed), and
//! how sure that number is. Savings are `exact` (computed from the bytes), `measured`
//! (the affected layers were rebuilt in memory and recompressed) or `estimate` (with
//! the published range it comes from). Nothing is suggested that the image does not
//! show a reason for.

pub mod gzip_level;
pub mod rebuild;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::category::{self, Category};
use crate::fs::WasteCause;
use crate::inspect::ImageAnalysis;
use crate::layer::{Compression, LayerError};
use crate::source::{Source, SourceError};
use rebuild::{RebuildRequest, RebuildResult, Variant};

#[derive(Debug, thiserror::Error)]
pub enum AdviceError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("internal error: a rebuild task failed: {0}")]
    Task(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Exact,
    Measured,
    Estimate,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Exact => "exact",
            Confidence::Measured => "measured",
            Confidence::Estimate => "estimate",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub id: String,
    pub title: String,
    /// Files concerned (largest first, at most 20) and the layers they are in.
    pub paths: Vec<String>,
    pub layers: Vec<usize>,
    pub saved_bytes: u64,
    pub saved_compressed_bytes: u64,
    /// The weaker of the two figures' confidences.
    pub confidence: Confidence,
    pub saved_bytes_confidence: Confidence,
    pub saved_compressed_confidence: Confidence,
    pub evidence: Vec<String>,
    pub fix: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub side_effects: Vec<String>,
    /// Where an estimate's range comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A change worth knowing about that ballast will not rank, because what it costs
/// (start-up time, memory) cannot be read from the image.
#[derive(Debug, Clone, Serialize)]
pub struct Mention {
    pub id: String,
    pub title: String,
    pub paths: Vec<String>,
    pub why_not_ranked: String,
    pub evidence: Vec<String>,
    pub side_effects: Vec<String>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    /// The image with every `exact` and `measured` suggestion applied (zstd aside).
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// What `estimate` suggestions might save on top, as a range.
    pub estimate_low_compressed_bytes: u64,
    pub estimate_high_compressed_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerMeasurement {
    pub layer: usize,
    pub digest: String,
    pub compression: Compression,
    pub compressed_bytes: u64,
    pub rebuilt_compressed_bytes: u64,
    /// The original tar recompressed here reproduces the stored size exactly.
    pub reproducible: bool,
    /// gzip layers: the level judged from the stored bytes, which the layer was
    /// rebuilt at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gzip_level: Option<gzip_level::GzipLevelMatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    pub suggestions: Vec<Suggestion>,
    pub projected: Projection,
    /// How each rebuilt layer's recompression compares with the stored blob.
    pub measurements: Vec<LayerMeasurement>,
    pub not_ranked: Vec<Mention>,
}

#[derive(Debug, Clone)]
pub struct AdviseOptions {
    pub measure_zstd: bool,
    /// The limits the layers were read under; a binary is rewritten in memory to
    /// measure a strip only up to `max_binary_bytes` (`--max-binary-size`).
    pub limits: crate::layer::LayerLimits,
    pub concurrency: usize,
}

impl Default for AdviseOptions {
    fn default() -> Self {
        Self {
            measure_zstd: true,
            limits: crate::layer::LayerLimits::default(),
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Files a suggestion changes: left out of their layer, or stripped in it.
struct Removal {
    id: &'static str,
    files: Vec<(String, u64, usize)>,
    strip: bool,
}

const COMBINED: &str = "all";

/// Base-image suggestions replace the whole image, so they stay out of the combined
/// projection (which adds up changes made within the current image).
const BASE_IDS: [&str; 4] = [
    "static-base",
    "static-musl",
    "distroless-cc",
    "distroless-base",
];

/// An image reduced to what its application binaries need.
struct BasePlan {
    id: &'static str,
    binaries: Vec<String>,
    kept: Vec<String>,
    remove: Vec<(String, u64, usize)>,
    evidence: Vec<String>,
    fix: String,
}

const SYSTEM_DIRS: [&str; 10] = [
    "bin/",
    "sbin/",
    "usr/bin/",
    "usr/sbin/",
    "lib/",
    "lib64/",
    "usr/lib/",
    "usr/lib64/",
    "usr/libexec/",
    "usr/local/lib/",
];

/// The newest glibc a distroless debian12 base has.
const DISTROLESS_GLIBC: (u32, u32) = (2, 36);

fn plan_base(analysis: &ImageAnalysis) -> Option<BasePlan> {
    let binaries = visible_binaries(analysis);
    let apps: Vec<&crate::binary::BinaryReport> = binaries
        .iter()
        .map(|(_, r)| *r)
        .filter(|r| r.elf_type == "exec" || r.elf_type == "pie")
        .filter(|r| !SYSTEM_DIRS.iter().any(|d| r.path.starts_with(d)))
        .filter(|r| !category::is_toolchain(&r.path))
        .collect();
    if apps.is_empty() || apps.iter().any(|a| a.malformed.is_some()) {
        return None;
    }
    let merged = &analysis.fs.merged;
    let resolve = |path: &str| -> Option<String> {
        // Follow symlinks inside the image (absolute or relative), a few hops at most.
        let mut current = path.trim_start_matches('/').to_string();
        for _ in 0..8 {
            let node = merged.get(&current)?;
            match (&node.kind, &node.link_target) {
                (crate::layer::EntryKind::Symlink, Some(target)) => {
                    current = if let Some(absolute) = target.strip_prefix('/') {
                        absolute.to_string()
                    } else {
                        let dir = current.rsplit_once('/').map_or("", |(d, _)| d);
                        crate::layer::normalise_path(&format!("{dir}/{target}")).ok()?
                    };
                }
                _ => return Some(current),
            }
        }
        None
    };
    let exists = |path: &str| resolve(path).is_some();
    let mut kept: BTreeSet<String> = apps.iter().map(|a| a.path.clone()).collect();
    let mut evidence = Vec::new();
    let all_static = apps.iter().all(|a| a.linkage.starts_with("static"));
    let mut needs_libgcc = false;
    let mut uses_musl = false;
    if !all_static {
        // Every library the apps load, and what those load in turn.
        let mut queue: Vec<&crate::binary::BinaryReport> = apps.clone();
        let mut seen = BTreeSet::new();
        while let Some(report) = queue.pop() {
            if let Some(interpreter) = &report.interpreter {
                if report
                    .interpreter
                    .as_deref()
                    .is_some_and(|i| i.contains("ld-musl"))
                {
                    uses_musl = true;
                }
                if let Some(found) = resolve(interpreter) {
                    kept.insert(found);
                }
            }
            for (name, found) in crate::binary::resolve_needed(report, exists) {
                if name.starts_with("libgcc_s") || name.starts_with("libstdc++") {
                    needs_libgcc = true;
                }
                let Some(found) = found.and_then(|p| resolve(&p)) else {
                    evidence.push(format!(
                        "/{}: needs {name}, which the image lacks",
                        report.path
                    ));
                    return None;
                };
                kept.insert(found.clone());
                if seen.insert(found.clone()) {
                    if let Some((_, library)) = binaries.iter().find(|(_, r)| r.path == found) {
                        queue.push(library);
                    }
                }
            }
        }
        for app in &apps {
            if let Some(needed) = app.glibc_version_needed.as_deref().and_then(glibc_version) {
                if needed > DISTROLESS_GLIBC {
                    return None;
                }
            }
        }
    }
    // Files a minimal base must keep, when the image has them.
    let runtime_files: Vec<String> = merged
        .iter()
        .filter(|(_, n)| n.kind == crate::layer::EntryKind::File)
        .map(|(p, _)| p.clone())
        .filter(|p| {
            p.starts_with("etc/ssl/certs/")
                || p.starts_with("usr/share/zoneinfo/")
                || ["etc/passwd", "etc/group", "etc/nsswitch.conf"].contains(&p.as_str())
        })
        .collect();
    let certs = runtime_files
        .iter()
        .any(|p| p.starts_with("etc/ssl/certs/"));
    let tzdata = runtime_files
        .iter()
        .any(|p| p.starts_with("usr/share/zoneinfo/"));
    kept.extend(runtime_files);
    let mut remove = Vec::new();
    for (index, layer) in analysis.layers.iter().enumerate() {
        for entry in &layer.entries {
            if entry.kind == crate::layer::EntryKind::File && !kept.contains(&entry.path) {
                remove.push((entry.path.clone(), entry.size, index));
            }
        }
    }
    let removed_bytes: u64 = remove.iter().map(|(_, size, _)| size).sum();
    if removed_bytes < 1024 * 1024 {
        // Already minimal: the base is not where the bytes are.
        return None;
    }
    let app_list: Vec<String> = apps.iter().map(|a| format!("/{}", a.path)).collect();
    for app in &apps {
        evidence.push(format!(
            "/{}: {} {}, {}{}",
            app.path,
            app.language,
            app.linkage,
            app.interpreter
                .as_deref()
                .map_or("no interpreter".to_string(), |i| format!("interpreter {i}")),
            if app.needed.is_empty() {
                String::new()
            } else {
                format!(
                    ", needs {} (all present in the image)",
                    app.needed.join(", ")
                )
            }
        ));
        if app.language == "go" && !app.linkage.starts_with("static") {
            let cgo = app
                .go
                .as_ref()
                .and_then(|g| g.settings.get("CGO_ENABLED"))
                .unwrap_or("?");
            evidence.push(format!(
                "/{}: a Go binary linked dynamically (CGO_ENABLED={cgo}) that needs only {}: CGO_ENABLED=0 would make it static, unless a dependency needs cgo",
                app.path,
                app.needed.join(", ")
            ));
        }
    }
    evidence.push(format!(
        "kept besides the binaries: {} files ({}{}{})",
        kept.len() - apps.len(),
        if certs { "CA certificates, " } else { "" },
        if tzdata { "tzdata, " } else { "" },
        "libraries the binaries load, passwd/group when present"
    ));
    let copies: Vec<String> = app_list
        .iter()
        .map(|p| format!("COPY --from=build {p} {p}"))
        .collect();
    let (id, fix) = if uses_musl {
        (
            "static-musl",
            format!(
                "# a musl binary links statically without trouble:\n\
                 #   Rust: cargo build --release --target x86_64-unknown-linux-musl (static by default)\n\
                 #   Go:   CGO_ENABLED=0 go build\n\
                 #   C:    cc -static\n\
                 FROM gcr.io/distroless/static-debian12:nonroot\n{}",
                copies.join("\n")
            ),
        )
    } else if all_static {
        (
            "static-base",
            format!(
                "FROM gcr.io/distroless/static-debian12:nonroot   # CA certificates, tzdata, passwd (~2.4 MB)
{}
# or FROM scratch, copying /etc/ssl/certs and /usr/share/zoneinfo too",
                copies.join("
")
            ),
        )
    } else if needs_libgcc {
        (
            "distroless-cc",
            format!(
                "FROM gcr.io/distroless/cc-debian12:nonroot   # glibc, libgcc_s, libstdc++, CA certificates, tzdata
{}
# Rust: -C target-feature=+crt-static (or a musl target) makes the binary static, then distroless/static or scratch",
                copies.join("
")
            ),
        )
    } else {
        (
            "distroless-base",
            format!(
                "FROM gcr.io/distroless/base-debian12:nonroot   # glibc, libssl, CA certificates, tzdata
{}
# Go: CGO_ENABLED=0 go build makes the binary static, then distroless/static or scratch",
                copies.join("
")
            ),
        )
    };
    Some(BasePlan {
        id,
        binaries: app_list,
        kept: kept.into_iter().map(|p| format!("/{p}")).collect(),
        remove,
        evidence,
        fix,
    })
}

fn glibc_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.strip_prefix("GLIBC_")?.split_once('.')?;
    Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
}

fn describe_base(suggestion: &mut Suggestion, plan: &BasePlan) {
    suggestion.title = match plan.id {
        "static-base" => {
            "Ship the static binary on a minimal base (distroless/static or scratch)".into()
        }
        "distroless-cc" => {
            "Move to distroless/cc: the binary needs glibc and libgcc_s, not a distribution".into()
        }
        "static-musl" => "Link the musl binary statically and ship it on a minimal base".into(),
        _ => "Move to distroless/base: the binary needs glibc, not a distribution".into(),
    };
    suggestion.paths = plan.binaries.clone();
    let mut evidence = plan.evidence.clone();
    evidence.push(format!(
        "measured: every layer rebuilt with only the {} files the binaries need; a distroless base adds its own files on top (static ~2.4 MB, base ~20 MB, cc ~22.6 MB uncompressed, third-party measurements), so the saving on distroless is lower by about that",
        plan.kept.len()
    ));
    evidence.append(&mut suggestion.evidence);
    suggestion.evidence = evidence;
    suggestion.fix = plan.fix.clone();
    suggestion.side_effects = vec![
        "no shell or package manager in the image: debug with `kubectl debug` / an ephemeral container".into(),
    ];
}

pub async fn advise(
    source: Arc<Source>,
    analysis: &ImageAnalysis,
    options: &AdviseOptions,
) -> Result<Advice, AdviceError> {
    let mut removals = plan_removals(analysis);
    removals.extend(plan_strips(analysis));
    let base_plan = plan_base(analysis);
    if let Some(plan) = &base_plan {
        removals.push(Removal {
            id: plan.id,
            files: plan.remove.clone(),
            strip: false,
        });
    }

    // One rebuild per affected layer, measuring every suggestion's variant and the
    // combination of all of them (for the projection).
    let mut requests: BTreeMap<usize, RebuildRequest> = BTreeMap::new();
    for removal in &removals {
        let mut per_layer: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (path, _, layer) in &removal.files {
            per_layer.entry(*layer).or_default().push(path.clone());
        }
        for (layer, paths) in per_layer {
            let request = requests.entry(layer).or_default();
            let paths: std::collections::HashSet<String> = paths.into_iter().collect();
            request.variants.push(if removal.strip {
                Variant {
                    id: removal.id.to_string(),
                    strip: paths,
                    ..Default::default()
                }
            } else {
                Variant {
                    id: removal.id.to_string(),
                    remove: paths,
                    ..Default::default()
                }
            });
        }
    }
    for request in requests.values_mut() {
        let mut combined = Variant {
            id: COMBINED.to_string(),
            ..Default::default()
        };
        for variant in request
            .variants
            .iter()
            .filter(|v| !BASE_IDS.contains(&v.id.as_str()))
        {
            combined.remove.extend(variant.remove.iter().cloned());
            combined.replace.extend(
                variant
                    .replace
                    .iter()
                    .map(|(k, v)| (k.clone(), Arc::clone(v))),
            );
            combined.strip.extend(variant.strip.iter().cloned());
        }
        request.variants.push(combined);
    }
    if options.measure_zstd {
        for (index, layer) in analysis.layers.iter().enumerate() {
            if layer.compression == Compression::Gzip && layer.compressed_bytes > 0 {
                requests.entry(index).or_default().measure_zstd = true;
            }
        }
    }
    let results = run_rebuilds(&source, analysis, requests, options).await?;

    let mut suggestions = Vec::new();
    for removal in &removals {
        let mut suggestion = removal_suggestion(removal, analysis, &results);
        if removal.strip {
            describe_strip(&mut suggestion, removal, analysis);
        }
        if let Some(plan) = base_plan.as_ref().filter(|p| p.id == removal.id) {
            describe_base(&mut suggestion, plan);
        }
        suggestions.push(suggestion);
    }
    suggestions.extend(rust_profile_estimates(analysis));
    if let Some(squash) = squash_suggestion(analysis, &suggestions) {
        suggestions.push(squash);
    }
    if let Some(zstd) = zstd_suggestion(&results) {
        suggestions.push(zstd);
    }
    suggestions.retain(|s| s.saved_bytes > 0 || s.saved_compressed_bytes > 0);
    suggestions.sort_by(|a, b| {
        b.saved_compressed_bytes
            .cmp(&a.saved_compressed_bytes)
            .then_with(|| b.saved_bytes.cmp(&a.saved_bytes))
            .then_with(|| a.id.cmp(&b.id))
    });

    let mut compressed = analysis.compressed_bytes();
    let mut uncompressed = analysis.uncompressed_bytes();
    let mut measurements = Vec::new();
    for (layer, result) in &results {
        measurements.push(LayerMeasurement {
            layer: *layer,
            digest: analysis.layers[*layer].descriptor.digest.to_string(),
            compression: result.compression,
            compressed_bytes: result.original_compressed_bytes,
            rebuilt_compressed_bytes: result.rebuilt_bytes,
            reproducible: result.reproducible(),
            gzip_level: result.gzip_level.clone(),
        });
        compressed = compressed.saturating_sub(result.saved_compressed(COMBINED));
        uncompressed = uncompressed.saturating_sub(result.saved_uncompressed(COMBINED));
    }
    let (low, high) = suggestions
        .iter()
        .filter(|s| s.confidence == Confidence::Estimate)
        .fold((0, 0), |(low, high), s| {
            (
                low + s.saved_compressed_bytes / 2,
                high + s.saved_compressed_bytes,
            )
        });
    Ok(Advice {
        not_ranked: upx_mention(analysis).into_iter().collect(),
        suggestions,
        projected: Projection {
            compressed_bytes: compressed,
            uncompressed_bytes: uncompressed,
            estimate_low_compressed_bytes: compressed.saturating_sub(high),
            estimate_high_compressed_bytes: compressed.saturating_sub(low),
        },
        measurements,
    })
}

async fn run_rebuilds(
    source: &Arc<Source>,
    analysis: &ImageAnalysis,
    requests: BTreeMap<usize, RebuildRequest>,
    options: &AdviseOptions,
) -> Result<BTreeMap<usize, RebuildResult>, AdviceError> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let cancel = crate::source::Cancel::default();
    for (layer, request) in requests {
        let cancel = cancel.clone();
        let source = Arc::clone(source);
        let semaphore = Arc::clone(&semaphore);
        let descriptor = analysis.layers[layer].descriptor.clone();
        let limits = options.limits;
        tasks.spawn(async move {
            let _permit = semaphore
                .acquire_owned()
                .await
                .map_err(|e| AdviceError::Task(e.to_string()))?;
            if cancel.is_cancelled() {
                return Err(AdviceError::Task("cancelled".into()));
            }
            let blob = cancel.wrap(source.open_blob(&descriptor).await?);
            let result = tokio::task::spawn_blocking(move || {
                rebuild::rebuild(blob, &descriptor, &request, &limits)
            })
            .await
            .map_err(|e| AdviceError::Task(e.to_string()))??;
            Ok::<_, AdviceError>((layer, result))
        });
    }
    let mut results = BTreeMap::new();
    for (layer, result) in crate::source::join_all(tasks, &cancel, AdviceError::Task).await? {
        results.insert(layer, result);
    }
    Ok(results)
}

/// Files a suggestion would leave out, with the layer that adds them.
fn plan_removals(analysis: &ImageAnalysis) -> Vec<Removal> {
    let fs = &analysis.fs;
    let hidden = |cause: WasteCause| Removal {
        strip: false,
        id: match cause {
            WasteCause::Deleted => "drop-deleted-files",
            WasteCause::Overwritten => "drop-overwritten-files",
        },
        files: fs
            .wasted_files
            .iter()
            .filter(|f| f.cause == cause)
            .map(|f| (f.path.clone(), f.size, f.layer))
            .collect(),
    };
    let visible = |id: &'static str, wanted: Category| Removal {
        id,
        strip: false,
        files: fs
            .visible_files()
            .filter(|(path, node)| category::classify(path, node.elf) == wanted)
            .map(|(path, node)| (path.clone(), node.size, node.layer))
            .collect(),
    };
    let mut removals = vec![
        hidden(WasteCause::Deleted),
        hidden(WasteCause::Overwritten),
        visible("drop-package-caches", Category::PackageCaches),
        visible("multi-stage-toolchain", Category::Toolchains),
    ];
    removals.retain(|r| !r.files.is_empty());
    removals
}

/// Visible ELF files with their layer, as the container sees them.
fn visible_binaries(analysis: &ImageAnalysis) -> Vec<(usize, &crate::binary::BinaryReport)> {
    let mut found = Vec::new();
    for (index, layer) in analysis.layers.iter().enumerate() {
        for report in &layer.binaries {
            let visible = analysis.fs.merged.get(&report.path).is_some_and(|node| {
                node.layer == index && node.kind == crate::layer::EntryKind::File
            });
            if visible {
                found.push((index, report));
            }
        }
    }
    found
}

/// Binaries that `strip --strip-all` would shrink, grouped by the fix their
/// language calls for.
fn plan_strips(analysis: &ImageAnalysis) -> Vec<Removal> {
    let mut by_id: BTreeMap<&'static str, Vec<(String, u64, usize)>> = BTreeMap::new();
    for (layer, report) in visible_binaries(analysis) {
        let Some(strip) = &report.strip else { continue };
        if strip.saved_by_strip_all == 0 {
            continue;
        }
        let id = match report.language.as_str() {
            "go" => "go-ldflags-s-w",
            "rust" => "rust-strip",
            _ => "strip-debug",
        };
        by_id
            .entry(id)
            .or_default()
            .push((report.path.clone(), report.size, layer));
    }
    by_id
        .into_iter()
        .map(|(id, files)| Removal {
            id,
            files,
            strip: true,
        })
        .collect()
}

/// Strip suggestions say what each binary carries and what removing it costs.
fn describe_strip(suggestion: &mut Suggestion, removal: &Removal, analysis: &ImageAnalysis) {
    let binaries = visible_binaries(analysis);
    let mut evidence = Vec::new();
    let mut go_versions = BTreeSet::new();
    for (path, _, layer) in &removal.files {
        let Some((_, report)) = binaries.iter().find(|(l, r)| l == layer && &r.path == path) else {
            continue;
        };
        let Some(strip) = &report.strip else { continue };
        let groups = report
            .anatomy
            .as_ref()
            .map(|a| {
                a.groups
                    .iter()
                    .filter(|g| g.group == "dwarf" || g.group == "symbols")
                    .map(|g| format!("{} {} B", g.group, g.bytes))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        evidence.push(format!(
            "/{path}: {} B; strip --strip-debug leaves {} B, --strip-all {} B (exact: the ELF rewritten in memory){}",
            report.size,
            strip.size_after_strip_debug,
            strip.size_after_strip_all,
            if groups.is_empty() { String::new() } else { format!("; carries {groups}") }
        ));
        if let Some(go) = &report.go {
            go_versions.insert(go.version.clone());
        }
    }
    evidence.append(&mut suggestion.evidence);
    suggestion.evidence = evidence;
    match removal.id {
        "go-ldflags-s-w" => {
            suggestion.title = "Build Go binaries without symbol table and DWARF".into();
            let old_go = go_versions
                .iter()
                .any(|v| go_minor(v).is_some_and(|minor| minor < 22));
            suggestion.fix = format!(
                "go build -ldflags=\"-s -w\" -o app .\n# {}",
                if old_go {
                    "this binary's Go is older than 1.22: pass both -s and -w"
                } else {
                    "since Go 1.22 -s implies -w"
                }
            );
            suggestion.side_effects = vec![
                "-s drops the symbol table: external profilers (perf, eBPF tools) and govulncheck's binary/symbol mode lose function names; Go's own stack traces and pprof keep working (they use .gopclntab, which stays)".into(),
                "-w drops DWARF: no source-level debugging of the shipped binary (keep an unstripped copy as a build artifact)".into(),
            ];
            suggestion.evidence.push(
                "the figure is what strip --strip-all leaves; go build -ldflags=\"-s -w\" links within a few dozen bytes of it (ballast's tests compare both on the sample service)".into(),
            );
        }
        "rust-strip" => {
            suggestion.title = "Strip Rust binaries in the release profile".into();
            suggestion.fix = "[profile.release]\nstrip = true        # or \"debuginfo\" to keep the symbol table for profilers".into();
            suggestion.side_effects = vec![
                "strip = true removes the symbol table: perf and other profilers show addresses, not names; panics still print messages, backtraces lose function names".into(),
            ];
        }
        _ => {
            suggestion.title = "Strip debug info and symbols from shipped binaries".into();
            suggestion.fix = "RUN strip --strip-all <binary>   # or link with -s; keep an unstripped copy for debugging".into();
            suggestion.side_effects =
                vec!["no symbols or source-level debugging in the image".into()];
        }
    }
}

/// Many layers rewriting the same paths: flattening them drops every hidden copy at
/// once. Its saving is the hidden-file suggestions' measured savings together, so it
/// is an alternative to them, not an addition.
fn squash_suggestion(analysis: &ImageAnalysis, suggestions: &[Suggestion]) -> Option<Suggestion> {
    let hiders: BTreeSet<usize> = analysis
        .fs
        .wasted_files
        .iter()
        .map(|f| f.hidden_by_layer)
        .collect();
    if hiders.len() < 2 || analysis.layers.len() < 4 {
        return None;
    }
    let hidden: Vec<&Suggestion> = suggestions
        .iter()
        .filter(|s| s.id == "drop-deleted-files" || s.id == "drop-overwritten-files")
        .collect();
    if hidden.is_empty() {
        return None;
    }
    let confidence = hidden
        .iter()
        .map(|s| s.saved_compressed_confidence)
        .max()
        .unwrap_or(Confidence::Measured);
    Some(Suggestion {
        id: "squash-layers".into(),
        title: "Flatten the layers that keep rewriting the same paths".into(),
        paths: hidden.iter().flat_map(|s| s.paths.iter().cloned()).take(20).collect(),
        layers: hiders.iter().copied().collect(),
        saved_bytes: hidden.iter().map(|s| s.saved_bytes).sum(),
        saved_compressed_bytes: hidden.iter().map(|s| s.saved_compressed_bytes).sum(),
        confidence,
        saved_bytes_confidence: Confidence::Exact,
        saved_compressed_confidence: confidence,
        evidence: vec![format!(
            "{} of {} layers hide files that earlier layers added; the saving is that of {} together (an alternative to them, not on top)",
            hiders.len(),
            analysis.layers.len(),
            hidden.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(" and ")
        )],
        fix: "FROM <current image> AS full\nFROM scratch\nCOPY --from=full / /\n# or keep the base layers and flatten only yours: build them in one RUN, or in a stage copied once".into(),
        side_effects: vec![
            "a fully flattened image shares no layers with its base: every node pulls all of it on each change".into(),
        ],
        source: None,
    })
}

fn go_minor(version: &str) -> Option<u32> {
    version
        .strip_prefix("go1.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Cargo profile settings that no binary records: only ever an estimate, with the
/// published range it comes from.
fn rust_profile_estimates(analysis: &ImageAnalysis) -> Vec<Suggestion> {
    let rust: Vec<(usize, &crate::binary::BinaryReport)> = visible_binaries(analysis)
        .into_iter()
        .filter(|(_, r)| r.language == "rust" && r.elf_type != "shared")
        // The unwinding runtime linked in is the one sign that the profile was not
        // tuned for size (a size profile sets panic = "abort"); without it, say nothing.
        .filter(|(_, r)| r.rust.as_ref().is_some_and(|info| info.panic == "unwind"))
        .collect();
    if rust.is_empty() {
        return vec![];
    }
    let mut paths = Vec::new();
    let mut layers = BTreeSet::new();
    let (mut low, mut high, mut low_compressed, mut high_compressed) = (0u64, 0u64, 0u64, 0u64);
    for (layer, report) in &rust {
        // The savings apply to the code that stays after stripping.
        let base = report
            .strip
            .as_ref()
            .map_or(report.size, |s| s.size_after_strip_all);
        low += base * 15 / 100;
        high += base * 30 / 100;
        let scan = &analysis.layers[*layer];
        let ratio = if scan.uncompressed_bytes > 0 {
            scan.compressed_bytes as f64 / scan.uncompressed_bytes as f64
        } else {
            1.0
        };
        low_compressed += (base as f64 * 0.15 * ratio) as u64;
        high_compressed += (base as f64 * 0.30 * ratio) as u64;
        paths.push(format!("/{}", report.path));
        layers.insert(*layer);
    }
    vec![Suggestion {
        id: "rust-profile-size".into(),
        title: "Size-oriented Cargo release profile (LTO, one codegen unit, panic = abort)".into(),
        paths,
        layers: layers.into_iter().collect(),
        saved_bytes: low,
        saved_compressed_bytes: low_compressed,
        confidence: Confidence::Estimate,
        saved_bytes_confidence: Confidence::Estimate,
        saved_compressed_confidence: Confidence::Estimate,
        evidence: vec![
            format!("estimate: 15–30% of the stripped binaries ({low}–{high} B uncompressed, {low_compressed}–{high_compressed} B compressed at their layers' ratio); the figures above are the low end"),
            "the binaries link Rust's unwinding panic runtime, so panic = \"abort\" is not set; LTO, codegen-units and opt-level are not recorded in a binary, so ballast cannot tell whether they are".into(),
        ],
        fix: "[profile.release]\nlto = true\ncodegen-units = 1\npanic = \"abort\"   # only if nothing relies on catching panics\n# opt-level = \"s\" or \"z\" trades speed for size: measure before adopting".into(),
        side_effects: vec![
            "longer release builds (LTO and a single codegen unit)".into(),
            "panic = \"abort\" ends the process on a panic instead of unwinding (no catch_unwind, no cleanup)".into(),
        ],
        source: Some("~30% smaller with lto + codegen-units=1 (Debian rust-team, salsa.debian.org/rust-team/rust merge request 41); 16% on ballast's own sample service (hello-rs, release vs lto + codegen-units=1 + panic=abort, both debuginfo-stripped, tests/binary_forensics.rs)".into()),
    }]
}

fn removal_suggestion(
    removal: &Removal,
    analysis: &ImageAnalysis,
    results: &BTreeMap<usize, RebuildResult>,
) -> Suggestion {
    let layers: BTreeSet<usize> = removal.files.iter().map(|(_, _, layer)| *layer).collect();
    let saved_bytes: u64 = layers
        .iter()
        .filter_map(|l| results.get(l))
        .map(|r| r.saved_uncompressed(removal.id))
        .sum();
    let saved_compressed_bytes: u64 = layers
        .iter()
        .filter_map(|l| results.get(l))
        .map(|r| r.saved_compressed(removal.id))
        .sum();
    let all_reproducible = layers
        .iter()
        .filter_map(|l| results.get(l))
        .all(RebuildResult::reproducible);
    let compressed_confidence = if all_reproducible {
        Confidence::Exact
    } else {
        Confidence::Measured
    };
    let mut files = removal.files.clone();
    files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let file_bytes: u64 = files.iter().map(|f| f.1).sum();
    let created_by = analysis
        .image
        .config
        .created_by_per_layer(analysis.layers.len());
    let layer_line = |layer: usize| {
        format!(
            "layer {layer} ({})",
            created_by
                .get(layer)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "no history".into())
        )
    };
    let mut evidence = vec![format!(
        "{} {}, {} bytes of file data, in {}",
        files.len(),
        if files.len() == 1 { "file" } else { "files" },
        file_bytes,
        layers
            .iter()
            .map(|l| layer_line(*l))
            .collect::<Vec<_>>()
            .join("; ")
    )];
    if removal.id == "drop-deleted-files" || removal.id == "drop-overwritten-files" {
        // One lookup per hidden file: a set of the removal's files, not a scan of
        // them for each (200,000 deleted files made that 40 billion comparisons).
        let removed: HashSet<(&str, usize)> = removal
            .files
            .iter()
            .map(|(p, _, l)| (p.as_str(), *l))
            .collect();
        let hiders: BTreeSet<usize> = analysis
            .fs
            .wasted_files
            .iter()
            .filter(|f| removed.contains(&(f.path.as_str(), f.layer)))
            .map(|f| f.hidden_by_layer)
            .collect();
        evidence.push(format!(
            "hidden by {}: no container sees these bytes, every node pulls them",
            hiders
                .iter()
                .map(|l| layer_line(*l))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    evidence.push(compression_evidence(&layers, results));
    let paths: Vec<String> = files
        .iter()
        .take(20)
        .map(|(p, _, _)| format!("/{p}"))
        .collect();
    let (title, fix) = removal_fix(removal.id, &files);
    Suggestion {
        id: removal.id.to_string(),
        title,
        paths,
        layers: layers.into_iter().collect(),
        saved_bytes,
        saved_compressed_bytes,
        confidence: compressed_confidence,
        saved_bytes_confidence: Confidence::Exact,
        saved_compressed_confidence: compressed_confidence,
        evidence,
        fix,
        side_effects: vec![],
        source: None,
    }
}

fn compression_evidence(
    layers: &BTreeSet<usize>,
    results: &BTreeMap<usize, RebuildResult>,
) -> String {
    let parts: Vec<String> = layers
        .iter()
        .filter_map(|l| results.get(l).map(|r| (l, r)))
        .map(|(layer, r)| match r.compression {
            Compression::Gzip if r.reproducible() => format!(
                "layer {layer}: stored {} B; re-gzipped here at level {} ({}): the same size, so the compressed saving is exact",
                r.original_compressed_bytes,
                r.gzip_rebuild_level(),
                level_evidence(r.gzip_level.as_ref()),
            ),
            Compression::Gzip => format!(
                "layer {layer}: stored {} B; re-gzipped here at level {} ({}): {} B, so the compressed saving is measured with this compressor at the closest level, not with the one that built the image",
                r.original_compressed_bytes,
                r.gzip_rebuild_level(),
                level_evidence(r.gzip_level.as_ref()),
                r.recompressed_original_bytes.unwrap_or(0),
            ),
            Compression::Zstd => format!(
                "layer {layer}: zstd, rebuilt at level {} to measure the saving",
                rebuild::ZSTD_LEVEL
            ),
            Compression::None => format!("layer {layer}: uncompressed, so the saving is exact"),
        })
        .collect();
    parts.join("; ")
}

fn level_evidence(found: Option<&gzip_level::GzipLevelMatch>) -> String {
    let Some(found) = found else {
        return "the default: too little data to judge the level".into();
    };
    let hint = found
        .header_hint
        .map(|h| format!("; its header says {h}"))
        .unwrap_or_default();
    let scope = if found.whole_layer {
        "the whole layer".to_string()
    } else {
        format!("its first {} B", found.probe_compressed_bytes)
    };
    if found.same_compressor {
        format!("{scope} re-deflates byte for byte at that level{hint}")
    } else {
        format!(
            "the closest of levels 1-9 to the stored bytes: {scope} within {:.2}%{hint}",
            found.probe_gap_percent().abs()
        )
    }
}

fn removal_fix(id: &str, files: &[(String, u64, usize)]) -> (String, String) {
    let has = |prefix: &str| {
        files
            .iter()
            .any(|(p, _, _)| p.starts_with(prefix) || p.contains(prefix))
    };
    match id {
        "drop-deleted-files" => (
            "Delete temporary files in the step that creates them".into(),
            "Files removed by a later `RUN rm` still ship in the layer that added them. Remove them in the same step:\n\
             RUN <build or download> && <use> && rm -rf <the files>\n\
             or build in a separate stage and `COPY --from=build` only what the image runs."
                .into(),
        ),
        "drop-overwritten-files" => (
            "Stop shipping files that a later layer replaces".into(),
            "Write each file once: install the final version in the earlier step, or move the later step's change into it.\n\
             In a multi-stage build, assemble the files in a build stage and COPY the result once."
                .into(),
        ),
        "drop-package-caches" => {
            let mut lines = Vec::new();
            if has("var/lib/apt/lists/") || has("var/cache/apt/") {
                lines.push("RUN apt-get update && apt-get install -y --no-install-recommends <packages> && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb");
            }
            if has("var/cache/apk/") {
                lines.push("RUN apk add --no-cache <packages>");
            }
            if has(".cache/pip/") {
                lines.push("RUN pip install --no-cache-dir <packages>");
            }
            if has(".npm/") || has(".cache/yarn/") {
                lines.push("RUN npm ci --omit=dev && npm cache clean --force");
            }
            if has("go-build/") || has("go/pkg/mod/") {
                lines.push("RUN --mount=type=cache,target=/root/.cache/go-build --mount=type=cache,target=/go/pkg/mod go build …");
            }
            if has("cargo/registry/") || has("cargo/git/") {
                lines.push("RUN --mount=type=cache,target=/usr/local/cargo/registry cargo build --release");
            }
            if has("tmp/") {
                lines.push("RUN … && rm -rf /tmp/* /var/tmp/*");
            }
            if lines.is_empty() {
                lines.push("Clean the package manager's cache in the step that fills it.");
            }
            ("Remove package-manager caches and indexes".into(), lines.join("\n"))
        }
        _ => (
            "Build in one stage, run from another: the compiler and headers stay behind".into(),
            "FROM <toolchain image> AS build\n\
             WORKDIR /src\n\
             COPY . .\n\
             RUN <build command>\n\
             FROM gcr.io/distroless/cc-debian12   # or static-debian12 for a static binary\n\
             COPY --from=build /src/<binary> /usr/local/bin/<binary>"
                .into(),
        ),
    }
}

/// Binaries smaller than this gain too little from an executable packer to mention it.
const UPX_MENTION_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// UPX shrinks executables a lot on disk and little on the wire (layers are gzipped
/// already), and it is paid for at every start; so it is named, with its costs, and
/// left out of the ranking.
fn upx_mention(analysis: &ImageAnalysis) -> Option<Mention> {
    let binaries: Vec<&crate::binary::BinaryReport> = visible_binaries(analysis)
        .into_iter()
        .map(|(_, report)| report)
        .filter(|r| r.is_application() && r.size >= UPX_MENTION_MIN_BYTES)
        .collect();
    if binaries.is_empty() {
        return None;
    }
    let total: u64 = binaries.iter().map(|r| r.size).sum();
    let after_strip: u64 = binaries
        .iter()
        .map(|r| r.strip.as_ref().map_or(r.size, |s| s.size_after_strip_all))
        .sum();
    Some(Mention {
        id: "upx".into(),
        title: "Pack executables with UPX".into(),
        paths: binaries.iter().map(|r| format!("/{}", r.path)).collect(),
        why_not_ranked: "its saving is an estimate and it is paid for at every container start, in time and memory, which ballast cannot measure from the image".into(),
        evidence: vec![
            format!(
                "{} application {} of {} B ({} B once stripped as suggested above: UPX comes on top of stripping, not instead of it)",
                binaries.len(),
                if binaries.len() == 1 { "binary" } else { "binaries" },
                total,
                after_strip
            ),
            "published results: filebeat 12 MB -> 3.5 MB for +60 ms start-up; k0s -25% for +420 ms".into(),
            "the layer holding a binary is gzipped already, so what nodes pull shrinks far less than the file does".into(),
        ],
        side_effects: vec![
            "start-up: the whole executable is decompressed before main runs (+60 ms to +420 ms in the cases cited)".into(),
            "memory: the unpacked program lives in anonymous memory, so containers on one node no longer share its pages, and under memory pressure they cannot be dropped and read back from the file".into(),
            "some scanners and endpoint-security tools flag packed executables; `go version -m` and ballast's own forensics cannot read a packed binary".into(),
        ],
        source: "elastic/beats#1822 (filebeat), k0sproject/k0s#5470 (k0s)".into(),
    })
}

fn zstd_suggestion(results: &BTreeMap<usize, RebuildResult>) -> Option<Suggestion> {
    let mut saved = 0u64;
    let mut gzip_total = 0u64;
    let mut zstd_total = 0u64;
    let mut layers = Vec::new();
    let (mut gzip_time, mut zstd_time, mut sample) = (0.0, 0.0, 0u64);
    for (layer, result) in results {
        let Some(zstd) = &result.zstd else { continue };
        gzip_total += result.original_compressed_bytes;
        zstd_total += zstd.compressed_bytes;
        saved += result
            .original_compressed_bytes
            .saturating_sub(zstd.compressed_bytes);
        layers.push(*layer);
        gzip_time += zstd.gzip_decompress_s;
        zstd_time += zstd.zstd_decompress_s;
        sample += zstd.sample_bytes;
    }
    if layers.is_empty() || saved == 0 && zstd_time >= gzip_time {
        return None;
    }
    let speedup = if zstd_time > 0.0 {
        gzip_time / zstd_time
    } else {
        0.0
    };
    Some(Suggestion {
        id: "zstd-layers".into(),
        title: "Compress layers with zstd".into(),
        paths: vec![],
        layers,
        saved_bytes: 0,
        saved_compressed_bytes: saved,
        confidence: Confidence::Measured,
        saved_bytes_confidence: Confidence::Exact,
        saved_compressed_confidence: Confidence::Measured,
        evidence: vec![
            format!(
                "gzip layers: {gzip_total} B stored; recompressed here with zstd level {}: {zstd_total} B",
                rebuild::ZSTD_LEVEL
            ),
            format!(
                "decompression on this machine, on a {sample}-byte sample of the same layers: gzip {gzip_time:.3} s, zstd {zstd_time:.3} s ({speedup:.1}x faster)"
            ),
        ],
        fix: "docker buildx build --output type=image,name=<ref>,push=true,compression=zstd,compression-level=3,force-compression=true .".into(),
        side_effects: vec![
            "pulling needs containerd 1.5+ / Docker 23+ / Podman 3+; older clients cannot unpack zstd layers".into(),
            "a zstd image shares no layer blobs with gzip images of the same base: the base is stored and pulled again".into(),
        ],
        source: None,
    })
}
