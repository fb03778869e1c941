//! `ballast apply`: the image with advise's in-image suggestions made, written as an
//! OCI layout, read back and compared with what advise projected.
//!
//! The planner takes advise's own removal and strip sets
//! ([`crate::advice::layer_removals`], [`crate::advice::layer_strips`]) and figures;
//! the writer (`writer`) streams each changed layer once and copies the others byte
//! for byte.

mod push;
mod rebase;
mod splice;
mod squash;
mod target;
mod writer;

pub use squash::SquashScope;
use target::LayoutTarget;
pub use target::Target;

use writer::EntryChange;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{FutureExt, StreamExt, TryStreamExt};
use serde_json::json;

use crate::advice::{self, AdviceError, AdviseOptions, Confidence, StripMode, SuggestionKind};
use crate::digest::Digest;
use crate::image::{self, ImageAnalysis, InspectError, InspectOptions, Progress};
use crate::layer::LayerError;
use crate::reference::ImageRef;
use crate::report::apply::{
    AppliedSuggestion, ApplyReport, LayerAfter, LayerChange, MultiApplyReport, Sizes,
    StrippedBinary, WriteMethod,
};
use crate::source::manifest::{OCI_INDEX, OCI_MANIFEST};
use crate::source::{LayerDescriptor, Platform, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Refused(String),
    #[error("{0} (not made by `ballast apply` yet)")]
    NotYet(String),
    #[error("cannot strip {path} in layer {layer}: {reason}")]
    Strip {
        path: String,
        layer: Digest,
        reason: String,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the written image does not read back: {0}")]
    Verify(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error(transparent)]
    Advice(#[from] AdviceError),
    #[error("internal error: {0}")]
    Task(String),
}

impl ApplyError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        ApplyError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl crate::error::Fault for ApplyError {
    fn is_bad_input(&self) -> bool {
        match self {
            ApplyError::Task(_) | ApplyError::Verify(_) => false,
            ApplyError::Inspect(e) => e.is_bad_input(),
            ApplyError::Advice(e) => e.is_bad_input(),
            ApplyError::Layer(e) => e.is_bad_input(),
            _ => true,
        }
    }
}

/// The suggestions this slice applies: those that leave files out of the image's
/// own layers, and those that strip its binaries.
pub const APPLICABLE: &[SuggestionKind] = &[
    SuggestionKind::DropDeletedFiles,
    SuggestionKind::DropOverwrittenFiles,
    SuggestionKind::DropPackageCaches,
    SuggestionKind::DropDocs,
    SuggestionKind::GoLdflags,
    SuggestionKind::RustStrip,
    SuggestionKind::StripDebug,
];

/// Which suggestions to apply: `--only` and `--skip`, by advise's ids.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    pub only: Vec<String>,
    pub skip: Vec<String>,
}

impl Choice {
    /// The kinds `--only` names (`None`: every applicable one) and those `--skip`
    /// leaves out; an unknown id, or `--only` of a kind not applied yet, is refused.
    fn resolve(
        &self,
    ) -> Result<(Option<BTreeSet<SuggestionKind>>, BTreeSet<SuggestionKind>), ApplyError> {
        let parse = |id: &str| -> Result<SuggestionKind, ApplyError> {
            SuggestionKind::ALL
                .iter()
                .copied()
                .find(|k| k.key() == id.trim())
                .ok_or_else(|| {
                    ApplyError::Refused(format!(
                        "unknown suggestion id {:?} (advise's ids: {})",
                        crate::text::escape_control(id),
                        SuggestionKind::ALL
                            .iter()
                            .map(|k| k.key())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
        };
        let mut only = BTreeSet::new();
        for id in self.only.iter().filter(|id| !id.trim().is_empty()) {
            let kind = parse(id)?;
            if kind == SuggestionKind::SquashLayers || kind.replaces_base() {
                return Err(ApplyError::Refused(format!(
                    "--only {}: that one is made with {}",
                    kind.key(),
                    if kind.replaces_base() {
                        "--base REF (the base to move onto)"
                    } else {
                        "--squash [yours|all|N]"
                    }
                )));
            }
            if !APPLICABLE.contains(&kind) && kind != SuggestionKind::ZstdLayers {
                return Err(ApplyError::NotYet(format!(
                    "--only {}: apply makes {} and zstd-layers (with --squash and --base, squash-layers and the base changes)",
                    kind.key(),
                    APPLICABLE
                        .iter()
                        .map(|k| k.key())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            only.insert(kind);
        }
        let mut skip = BTreeSet::new();
        for id in self.skip.iter().filter(|id| !id.trim().is_empty()) {
            skip.insert(parse(id)?);
        }
        Ok(((!only.is_empty()).then_some(only), skip))
    }
}

pub struct ApplyOptions {
    pub choice: Choice,
    /// Every layer recompressed with this (`--zstd`, `--gzip`), not as it was.
    pub recompress: Option<(crate::layer::Compression, i32)>,
    pub dry_run: bool,
    pub force: bool,
    /// `--squash`: the last layers written as one.
    pub squash: Option<SquashScope>,
    /// `--base REF`: the application binaries moved onto this base.
    pub base: Option<ImageRef>,
    /// What the strips take out (`--strip-all`, the default, or `--strip-debug`);
    /// advise prices them for it.
    pub strip_mode: StripMode,
    pub inspect: InspectOptions,
    pub advise: AdviseOptions,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Refuses a target that would lose data: the source layout itself, a non-empty
/// directory that is not an OCI layout, a tag already there (without `--force`).
/// Returns the target's index.json entries, to keep.
fn check_target(
    image: &ImageRef,
    target: &LayoutTarget,
    force: bool,
) -> Result<Vec<serde_json::Value>, ApplyError> {
    let dir = &target.dir;
    let shown = crate::text::escape_control(&dir.display().to_string()).into_owned();
    if let ImageRef::OciLayout { dir: source, .. } = image {
        if let (Ok(a), Ok(b)) = (source.canonicalize(), dir.canonicalize()) {
            if a == b {
                return Err(ApplyError::Refused(format!(
                    "--to {shown}: that is the source layout; apply never modifies its source"
                )));
            }
        }
    }
    let metadata = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(ApplyError::io(dir, e)),
    };
    if !metadata.is_dir() {
        return Err(ApplyError::Refused(format!(
            "--to {shown}: not a directory"
        )));
    }
    let empty = std::fs::read_dir(dir)
        .map_err(|e| ApplyError::io(dir, e))?
        .next()
        .is_none();
    if empty {
        return Ok(vec![]);
    }
    if !dir.join("oci-layout").is_file() || !dir.join("index.json").is_file() {
        return Err(ApplyError::Refused(format!(
            "--to {shown}: a non-empty directory that is not an OCI layout (no oci-layout and index.json); give an empty or new directory"
        )));
    }
    let bytes = crate::source::read_metadata_file(&dir.join("index.json"), "index.json")?;
    let index: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| SourceError::malformed(format!("{shown}/index.json"), e))?;
    let entries = index
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    let Some(tag) = &target.tag else {
        return Ok(entries);
    };
    let named = |entry: &serde_json::Value| {
        entry
            .get("annotations")
            .and_then(|a| a.get(REF_NAME))
            .and_then(|n| n.as_str())
            == Some(tag.as_str())
    };
    if entries.iter().any(named) && !force {
        return Err(ApplyError::Refused(format!(
            "--to {}: the tag {tag:?} already exists there (--force replaces it)",
            crate::text::escape_control(&target.display())
        )));
    }
    Ok(entries.into_iter().filter(|e| !named(e)).collect())
}

/// What one chosen suggestion does.
struct Chosen {
    kind: SuggestionKind,
    confidence: Confidence,
    saved_bytes: u64,
    saved_compressed_bytes: u64,
    /// Per layer, the tar paths it leaves out or strips.
    layers: BTreeMap<usize, HashSet<String>>,
    /// Root-relative path, size, layer (whiteouts aside).
    files: Vec<(String, u64, usize)>,
    /// The binaries a strip rewrites; `None` for a removal.
    strip: Option<Vec<advice::StripFile>>,
}

/// What `apply` made: one image, or (from a multi-platform index, no `--platform`)
/// one per platform under a new index.
pub enum ApplyOutcome {
    Single(ApplyReport),
    Multi(MultiApplyReport),
}

pub async fn apply(
    image: &ImageRef,
    target: &Target,
    options: &ApplyOptions,
    progress: Arc<dyn Progress>,
) -> Result<ApplyOutcome, ApplyError> {
    let choice = options.choice.resolve()?;
    target.check_archive(image, options.force)?;
    let pusher = match target {
        Target::Registry { reference } => {
            let shown = crate::text::escape_control(&reference.whole()).into_owned();
            if let ImageRef::Registry(source) = image {
                if source.whole() == reference.whole() {
                    return Err(ApplyError::Refused(format!(
                        "--to {shown}: that is the source image; apply never modifies its source"
                    )));
                }
            }
            let push = push::Push::connect(reference, &options.inspect.registry).await?;
            if !options.force && push.tag_exists().await? {
                return Err(ApplyError::Refused(format!(
                    "--to {shown}: the tag already exists in the registry (--force replaces it)"
                )));
            }
            Some(push)
        }
        _ => None,
    };
    let kept_entries = match target {
        Target::Layout { dir, tag } => check_target(
            image,
            &LayoutTarget {
                dir: dir.clone(),
                tag: tag.clone(),
            },
            options.force,
        )?,
        _ => vec![],
    };
    // `--platform` is a promise of one image; without it an index is made whole.
    let platforms = if options.inspect.explicit_platform {
        None
    } else {
        index_platforms(image, &options.inspect).await?
    };
    let Some((platforms, index_notes)) = platforms else {
        return apply_single(
            image,
            target,
            options,
            &choice,
            pusher.as_ref(),
            kept_entries,
            progress,
        )
        .await
        .map(ApplyOutcome::Single);
    };
    if matches!(target, Target::DockerArchive { .. }) {
        return Err(ApplyError::Refused(format!(
            "--to {}: docker load takes one platform and {} is an index of {} ({}); choose one with --platform, or write oci-archive: or a registry for them all",
            crate::text::escape_control(&target.display()),
            crate::text::escape_control(&image.to_string()),
            platforms.len(),
            crate::text::escape_control(&listed(&platforms))
        )));
    }
    apply_multi(
        image,
        target,
        options,
        &choice,
        pusher.as_ref(),
        kept_entries,
        platforms,
        index_notes,
        progress,
    )
    .await
    .map(ApplyOutcome::Multi)
}

/// The first platforms, for a one-line message: an index may list hundreds.
fn listed(platforms: &[Platform]) -> String {
    const SHOWN: usize = 12;
    let mut names: Vec<String> = platforms
        .iter()
        .take(SHOWN)
        .map(Platform::to_string)
        .collect();
    if platforms.len() > SHOWN {
        names.push(format!("and {} more", platforms.len() - SHOWN));
    }
    names.join(", ")
}

/// The platforms of the index `image` names, in its order, and what was left out of
/// it; `None` when it names one image (or an index with a single one).
async fn index_platforms(
    image: &ImageRef,
    options: &InspectOptions,
) -> Result<Option<(Vec<Platform>, Vec<String>)>, ApplyError> {
    // Only these hold indexes; an engine or a pipe is not opened twice.
    match image {
        ImageRef::Registry(_) | ImageRef::OciLayout { .. } => {}
        ImageRef::OciArchive { file, .. } if !crate::source::is_stream(file) => {}
        _ => return Ok(None),
    }
    let source = crate::source::Source::open(image, &options.registry)
        .await
        .map_err(InspectError::from)?;
    let Some(entries) = source.index_entries().await.map_err(InspectError::from)? else {
        return Ok(None);
    };
    let mut platforms: Vec<Platform> = Vec::new();
    let (mut attestations, mut unnamed, mut repeated) = (0, 0, 0);
    for entry in entries {
        match entry.platform {
            Some(p) if p.os == "unknown" || p.architecture == "unknown" => attestations += 1,
            None => unnamed += 1,
            // The platform is how each image is found again; a second entry for the
            // same one could not be.
            Some(p)
                if platforms
                    .iter()
                    .any(|q| q.satisfied_by(&p) || p.satisfied_by(q)) =>
            {
                repeated += 1
            }
            Some(p) => platforms.push(p),
        }
    }
    if platforms.len() < 2 {
        return Ok(None);
    }
    let mut notes = Vec::new();
    if attestations > 0 {
        notes.push(format!(
            "left out {attestations} attestation {} (platform unknown/unknown): what they attest is the source's images, not these",
            if attestations == 1 { "manifest" } else { "manifests" }
        ));
    }
    if unnamed > 0 {
        notes.push(format!(
            "left out {unnamed} index {} without a platform",
            if unnamed == 1 { "entry" } else { "entries" }
        ));
    }
    if repeated > 0 {
        notes.push(format!(
            "left out {repeated} index {} repeating a platform already listed",
            if repeated == 1 { "entry" } else { "entries" }
        ));
    }
    Ok(Some((platforms, notes)))
}

/// Which suggestions `--only` and `--skip` leave (see [`Choice::resolve`]).
type Resolved = (Option<BTreeSet<SuggestionKind>>, BTreeSet<SuggestionKind>);

/// One image planned: read, advised, and the report before anything is written.
struct Plan {
    source: Arc<crate::source::Source>,
    analysis: ImageAnalysis,
    /// The layers advise priced stretch by stretch, written that way.
    spliced: BTreeSet<usize>,
    chosen: Vec<Chosen>,
    per_layer: BTreeMap<usize, HashMap<String, EntryChange>>,
    recompress: Option<(crate::layer::Compression, i32)>,
    /// `--squash` (or `--base`): the first layer squashed and how it is compressed.
    squash: Option<(usize, (crate::layer::Compression, i32))>,
    /// `--base`: the base read.
    rebase: Option<rebase::Rebase>,
    report: ApplyReport,
}

/// One image: today's `apply`, a manifest the tag names.
async fn apply_single(
    image: &ImageRef,
    target: &Target,
    options: &ApplyOptions,
    choice: &Resolved,
    pusher: Option<&push::Push>,
    kept_entries: Vec<serde_json::Value>,
    progress: Arc<dyn Progress>,
) -> Result<ApplyReport, ApplyError> {
    let mut early = EarlyWrites::new(target, options, choice);
    let planned = plan(
        image,
        target,
        options,
        &options.inspect,
        choice,
        early.as_mut(),
        Arc::clone(&progress),
    )
    .await;
    let early_written = match &mut early {
        // Settled before anything returns, so that no write is still going into the
        // early directory as it is removed.
        Some(early) => early.settle().await,
        None => WrittenLayers::new(),
    };
    let plan = planned?;
    if options.dry_run {
        return Ok(plan.report);
    }
    let (layout, staging) = target.layout()?;
    let written = write_image(
        &plan,
        &layout,
        options,
        &early_written,
        Arc::clone(&progress),
    )
    .await?;
    // The early blobs taken were moved into the layout.
    let taken: Vec<String> = plan
        .analysis
        .layers
        .iter()
        .enumerate()
        .filter(|(_, layer)| {
            early_written.iter().any(|(key, done)| {
                key.0 == layer.descriptor.digest
                    && done.staged.as_ref().is_some_and(|p| !p.exists())
            })
        })
        .map(|(index, _)| index.to_string())
        .collect();
    drop(early);
    let mut entry = manifest_entry(&written, &plan.analysis.image.platform);
    if let Some(tag) = &layout.tag {
        entry["annotations"] = json!({ REF_NAME: tag });
    }
    write_index_json(&layout, kept_entries, entry)?;
    target.export(
        &layout,
        Some((&written.config_digest, &written.layer_digests)),
    )?;
    let mut notes = Vec::new();
    if let (Some(push), Target::Registry { reference }) = (pusher, target) {
        let mount_from = mount_source(image, reference);
        push.authorize().await?;
        let stats = push
            .push_blobs(
                &layout.dir,
                &written.blobs,
                mount_from,
                options.advise.concurrency,
                Arc::clone(&progress),
            )
            .await?;
        push.push_manifest(None, &written.manifest_bytes, OCI_MANIFEST)
            .await?;
        notes.push(format!(
            "{}; the manifest last",
            push_note(&stats, mount_from)
        ));
    }
    drop(staging);
    let reread = read_back(target, options, None).await?;
    // A docker-archive has no registry manifest (its digest is that of its
    // manifest.json entry); its config is what names the image.
    if matches!(target, Target::DockerArchive { .. })
        && reread.image.config_digest != written.config_digest
    {
        return Err(ApplyError::Verify(format!(
            "{} holds config {}, not the {} written",
            target.display(),
            reread.image.config_digest,
            written.config_digest
        )));
    }
    let mut report = finish(plan, &written, &reread, target)?;
    report.notes.extend(notes);
    if !taken.is_empty() {
        report.notes.push(format!(
            "{} {} {} written while advise measured (the changes the default choice makes were known from the first read; the figures confirmed them)",
            if taken.len() == 1 { "layer" } else { "layers" },
            taken.join(", "),
            if taken.len() == 1 { "was" } else { "were" }
        ));
    }
    Ok(report)
}

/// Every platform of an index, each as `apply_single` makes one, under a new index
/// the tag names. Written in the index's order, so the same input gives the same
/// index digest.
#[allow(clippy::too_many_arguments)]
async fn apply_multi(
    image: &ImageRef,
    target: &Target,
    options: &ApplyOptions,
    choice: &Resolved,
    pusher: Option<&push::Push>,
    kept_entries: Vec<serde_json::Value>,
    platforms: Vec<Platform>,
    mut notes: Vec<String>,
    progress: Arc<dyn Progress>,
) -> Result<MultiApplyReport, ApplyError> {
    let mut plans = Vec::with_capacity(platforms.len());
    for platform in &platforms {
        let mut inspect = options.inspect.clone();
        inspect.platform = platform.clone();
        inspect.explicit_platform = true;
        plans.push(
            plan(
                image,
                target,
                options,
                &inspect,
                choice,
                None,
                Arc::clone(&progress),
            )
            .await?,
        );
    }
    if options.dry_run {
        return Ok(MultiApplyReport {
            schema_version: image::SCHEMA_VERSION,
            target: target.display(),
            index_digest: None,
            platforms: plans.into_iter().map(|p| p.report).collect(),
            notes,
        });
    }
    let (layout, staging) = target.layout()?;
    // A layer the platforms share, changed the same way, is written once.
    let mut layers = WrittenLayers::new();
    let mut written = Vec::with_capacity(plans.len());
    for plan in &plans {
        let one = write_image(plan, &layout, options, &layers, Arc::clone(&progress)).await?;
        layers.extend(one.layers.iter().cloned());
        written.push(one);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": written
            .iter()
            .zip(&platforms)
            .map(|(w, platform)| manifest_entry(w, platform))
            .collect::<Vec<_>>(),
    });
    let index_bytes = serde_json::to_vec_pretty(&index)
        .map_err(|e| ApplyError::Task(format!("serialising the index: {e}")))?;
    let index_digest = Digest::of_bytes(&index_bytes);
    let blobs = layout.dir.join("blobs").join("sha256");
    writer::write_small(&blobs, &blobs.join(index_digest.hex()), &index_bytes)?;
    let mut entry = json!({
        "mediaType": OCI_INDEX,
        "digest": index_digest.to_string(),
        "size": index_bytes.len(),
    });
    if let Some(tag) = &layout.tag {
        entry["annotations"] = json!({ REF_NAME: tag });
    }
    write_index_json(&layout, kept_entries, entry)?;
    target.export(&layout, None)?;
    if let (Some(push), Target::Registry { reference }) = (pusher, target) {
        let mount_from = mount_source(image, reference);
        push.authorize().await?;
        // A layer two platforms share is one blob, sent once.
        let mut seen = HashSet::new();
        let all: Vec<(Digest, u64)> = written
            .iter()
            .flat_map(|w| w.blobs.iter().cloned())
            .filter(|(digest, _)| seen.insert(digest.clone()))
            .collect();
        let stats = push
            .push_blobs(
                &layout.dir,
                &all,
                mount_from,
                options.advise.concurrency,
                Arc::clone(&progress),
            )
            .await?;
        // Manifests by digest first: the tag names the index only once all it lists is there.
        for w in &written {
            push.push_manifest(Some(&w.manifest_digest), &w.manifest_bytes, OCI_MANIFEST)
                .await?;
        }
        push.push_manifest(None, &index_bytes, OCI_INDEX).await?;
        notes.push(format!(
            "{}; then the {} manifests by digest, the index last",
            push_note(&stats, mount_from),
            written.len()
        ));
        let tagged = push.tag_digest().await?;
        if tagged != index_digest {
            return Err(ApplyError::Verify(format!(
                "{} names {tagged}, not the index {index_digest} pushed",
                target.display()
            )));
        }
    }
    drop(staging);
    notes.push(
        "the new index has a new digest: signatures and attestations made for the source's index (cosign, notation) do not apply to it; sign it again".into(),
    );
    let mut reports = Vec::with_capacity(plans.len());
    for ((plan, written), platform) in plans.into_iter().zip(&written).zip(&platforms) {
        let reread = read_back(target, options, Some(platform)).await?;
        reports.push(finish(plan, written, &reread, target)?);
    }
    Ok(MultiApplyReport {
        schema_version: image::SCHEMA_VERSION,
        target: target.display(),
        index_digest: Some(index_digest.to_string()),
        platforms: reports,
        notes,
    })
}

/// Blobs the source repository holds on the same registry are mounted, not sent.
fn mount_source<'a>(
    image: &'a ImageRef,
    reference: &oci_client::Reference,
) -> Option<&'a oci_client::Reference> {
    match image {
        ImageRef::Registry(source)
            if source.resolve_registry() == reference.resolve_registry()
                && source.repository() != reference.repository() =>
        {
            Some(source)
        }
        _ => None,
    }
}

/// An index entry for a written manifest.
fn manifest_entry(written: &Written, platform: &Platform) -> serde_json::Value {
    let mut platform_json = json!({"architecture": platform.architecture, "os": platform.os});
    if let Some(variant) = &platform.variant {
        platform_json["variant"] = json!(variant);
    }
    json!({
        "mediaType": OCI_MANIFEST,
        "digest": written.manifest_digest.to_string(),
        "size": written.manifest_bytes.len(),
        "platform": platform_json,
    })
}

/// `index.json`: the entries kept and the new one. Written last: until it names the
/// new image, the image is not in the layout.
fn write_index_json(
    layout: &LayoutTarget,
    mut entries: Vec<serde_json::Value>,
    entry: serde_json::Value,
) -> Result<(), ApplyError> {
    let dir = &layout.dir;
    let layout_file = dir.join("oci-layout");
    if !layout_file.is_file() {
        writer::write_small(dir, &layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    entries.push(entry);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    let bytes = serde_json::to_vec_pretty(&index)
        .map_err(|e| ApplyError::Task(format!("serialising index.json: {e}")))?;
    writer::write_small(dir, &dir.join("index.json"), &bytes)
}

/// The target read as inspect would; `platform`: the one image of an index to read.
/// A layer copied unchanged was verified against its digest as it was copied, so its
/// first read stands (the memo is keyed by digest); a layer written anew was read in
/// full by inspect's layer reader from its bytes on their way to disk
/// (`writer::ReadBack`, zstd aside), so that read stands too; what is left is read
/// here: manifest, config, and a zstd layer's blob.
async fn read_back(
    target: &Target,
    options: &ApplyOptions,
    platform: Option<&Platform>,
) -> Result<ImageAnalysis, ApplyError> {
    let mut verify_options = options.inspect.clone();
    verify_options.extras = Default::default();
    if let Some(platform) = platform {
        verify_options.platform = platform.clone();
        verify_options.explicit_platform = true;
    }
    image::inspect(
        &target.image_ref(),
        &verify_options,
        Arc::new(image::NoProgress),
    )
    .await
    .map_err(|e| ApplyError::Verify(e.to_string()))
}

/// Reads, advises and plans one image (`inspect` names its platform).
#[allow(clippy::too_many_arguments)]
async fn plan(
    image: &ImageRef,
    target: &Target,
    options: &ApplyOptions,
    inspect: &InspectOptions,
    choice: &Resolved,
    early: Option<&mut EarlyWrites>,
    progress: Arc<dyn Progress>,
) -> Result<Plan, ApplyError> {
    let (only, skip) = choice;
    let (source, analysis) =
        image::inspect_keeping_source(image, inspect, Arc::clone(&progress)).await?;
    if let Some(early) = early {
        early.start(&source, &analysis, options, choice);
    }
    // Strips priced for the strip that is made; only what can be made measured (each
    // on its own: apply adds them up itself).
    let base_kinds = [
        SuggestionKind::StaticBase,
        SuggestionKind::StaticMusl,
        SuggestionKind::DistrolessCc,
        SuggestionKind::DistrolessBase,
    ];
    let measure_only: BTreeSet<SuggestionKind> = APPLICABLE
        .iter()
        .copied()
        .chain(base_kinds.into_iter().filter(|_| options.base.is_some()))
        .filter(|kind| {
            (kind.replaces_base() || only.as_ref().is_none_or(|o| o.contains(kind)))
                && !skip.contains(kind)
        })
        .collect();
    let advise_options = AdviseOptions {
        strip_mode: options.strip_mode,
        measure_only: Some(measure_only),
        ..options.advise.clone()
    };
    let advice = advice::advise(
        Arc::clone(&source),
        &analysis,
        &advise_options,
        Arc::clone(&progress),
    )
    .await?;
    let mut removals: HashMap<SuggestionKind, advice::LayerRemovals> =
        advice::layer_removals(&analysis)
            .into_iter()
            .map(|r| (r.kind, r))
            .collect();
    let recompress = match options.recompress {
        None if only
            .as_ref()
            .is_some_and(|o| o.contains(&SuggestionKind::ZstdLayers)) =>
        {
            Some((
                crate::layer::Compression::Zstd,
                crate::recompress::ZSTD_LEVEL,
            ))
        }
        other => other,
    };
    let mut strips: HashMap<SuggestionKind, advice::LayerStrips> =
        advice::layer_strips(&analysis, options.strip_mode)
            .into_iter()
            .map(|s| (s.kind, s))
            .collect();
    let mut chosen = Vec::new();
    for suggestion in &advice.suggestions {
        let kind = suggestion.id;
        if kind == SuggestionKind::ZstdLayers {
            // Its figure is for every layer at advise's level; another level is an
            // estimate from it.
            let Some((crate::layer::Compression::Zstd, level)) = recompress else {
                continue;
            };
            if skip.contains(&kind) {
                continue;
            }
            chosen.push(Chosen {
                kind,
                confidence: if level == crate::recompress::ZSTD_LEVEL {
                    suggestion.confidence
                } else {
                    Confidence::Estimate
                },
                saved_bytes: 0,
                saved_compressed_bytes: suggestion.saved_compressed_bytes,
                layers: BTreeMap::new(),
                files: vec![],
                strip: None,
            });
            continue;
        }
        let wanted = match &only {
            Some(only) => only.contains(&kind),
            None => {
                APPLICABLE.contains(&kind)
                    && matches!(
                        suggestion.confidence,
                        Confidence::Exact | Confidence::Measured
                    )
            }
        };
        if !wanted || skip.contains(&kind) {
            continue;
        }
        if let Some(removal) = removals.remove(&kind) {
            chosen.push(Chosen {
                kind,
                confidence: suggestion.confidence,
                saved_bytes: suggestion.saved_bytes,
                saved_compressed_bytes: suggestion.saved_compressed_bytes,
                layers: removal.layers,
                files: removal.files,
                strip: None,
            });
        } else if let Some(strip) = strips.remove(&kind) {
            // The tar bytes from each binary's predicted size in the mode asked for
            // (`size_after_strip_all` or `size_after_strip_debug`): the same figure
            // advise's rebuild measures, read from the ELF rewrite directly.
            let saved_bytes = strip
                .files
                .iter()
                .map(advice::StripFile::tar_bytes_saved)
                .sum();
            chosen.push(Chosen {
                kind,
                confidence: suggestion.confidence,
                saved_bytes,
                saved_compressed_bytes: suggestion.saved_compressed_bytes,
                layers: strip.layers,
                files: strip
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), f.size, f.layer))
                    .collect(),
                strip: Some(strip.files),
            });
        }
    }
    // --base: advise's base-image suggestion, made onto the base given. Its removal
    // leaves out every file but the binaries, so the other removals are part of it.
    let rebase = match &options.base {
        Some(base) => Some(rebase::open(base, &analysis, &options.inspect).await?),
        None => None,
    };
    let mut rebase_notes = Vec::new();
    if let Some(rebase) = &rebase {
        let suggestion = advice
            .suggestions
            .iter()
            .find(|s| s.id.replaces_base())
            .ok_or_else(|| {
                ApplyError::Refused(format!(
                    "--base: advise makes no base-image suggestion for {} (it needs application binaries, and more than 1 MiB of other files to leave behind)",
                    crate::text::escape_control(&analysis.image.reference)
                ))
            })?;
        let subsumed: Vec<&str> = chosen
            .iter()
            .filter(|c| c.strip.is_none() && c.kind != SuggestionKind::ZstdLayers)
            .map(|c| c.kind.key())
            .collect();
        if !subsumed.is_empty() {
            rebase_notes.push(format!(
                "{} {} part of the base change: the files are not carried over",
                subsumed.join(", "),
                if subsumed.len() == 1 { "is" } else { "are" }
            ));
        }
        chosen.retain(|c| c.strip.is_some() || c.kind == SuggestionKind::ZstdLayers);
        let apps = advice::application_binaries(&analysis);
        let layers = rebase::plan(&analysis, &apps);
        let files = analysis
            .layers
            .iter()
            .enumerate()
            .flat_map(|(index, layer)| {
                let dropped = layers.get(&index);
                layer
                    .entries
                    .iter()
                    .filter(move |e| {
                        e.kind == crate::layer::EntryKind::File
                            && dropped.is_some_and(|d| d.contains(&e.path))
                    })
                    .map(move |e| (e.path.clone(), e.size, index))
            })
            .collect();
        rebase_notes.push(format!(
            "rebased onto {} ({}): its {} layers as they are, then one layer with {}; the projection is advise's {} figure, measured with each layer rebuilt, and the layers written differ (one layer, no directories but those above the binaries), so it is an estimate",
            crate::text::escape_control(&rebase.name),
            rebase.digest,
            rebase.analysis.layers.len(),
            apps.iter()
                .map(|a| format!("/{}", crate::text::escape_control(a)))
                .collect::<Vec<_>>()
                .join(", "),
            suggestion.id.key()
        ));
        chosen.push(Chosen {
            kind: suggestion.id,
            confidence: Confidence::Estimate,
            saved_bytes: suggestion.saved_bytes,
            saved_compressed_bytes: suggestion.saved_compressed_bytes,
            layers,
            files,
            strip: None,
        });
    }
    let offset = rebase.as_ref().map_or(0, |r| r.analysis.layers.len());
    if let Some(only) = &only {
        for kind in only {
            if !chosen.iter().any(|c| c.kind == *kind) {
                // One platform of an index: the reference alone does not say which.
                let platform = if inspect.explicit_platform && !options.inspect.explicit_platform {
                    format!(" ({})", analysis.image.platform)
                } else {
                    String::new()
                };
                return Err(ApplyError::Refused(format!(
                    "--only {}: advise makes no such suggestion for {}{}",
                    kind.key(),
                    crate::text::escape_control(&analysis.image.reference),
                    crate::text::escape_control(&platform)
                )));
            }
        }
    }
    // Per layer: every path to leave out or strip, and the suggestion it is for. A
    // file both removed and stripped is removed, as advise's combined rebuild has it.
    let mut per_layer = layer_changes(&chosen);
    // A binary a removal leaves out is not stripped as well: the strip saves nothing
    // on it. Its compressed figure was measured for all its binaries at once, so what
    // is left of it is prorated by tar bytes, and is then an estimate.
    let mut notes = rebase_notes;
    for c in chosen.iter_mut() {
        let Some(files) = &mut c.strip else { continue };
        let planned = files.len();
        files.retain(|f| {
            matches!(
                per_layer.get(&f.layer).and_then(|p| p.get(&f.path)),
                Some(EntryChange::Strip(_))
            )
        });
        if files.len() == planned {
            continue;
        }
        let kept: u64 = files.iter().map(advice::StripFile::tar_bytes_saved).sum();
        c.saved_compressed_bytes = if c.saved_bytes == 0 {
            0
        } else {
            (u128::from(c.saved_compressed_bytes) * u128::from(kept) / u128::from(c.saved_bytes))
                as u64
        };
        c.saved_bytes = kept;
        c.confidence = Confidence::Estimate;
        c.files
            .retain(|(path, _, layer)| files.iter().any(|f| f.layer == *layer && f.path == *path));
        notes.push(format!(
            "{}: {} of its {planned} binaries are left out by a removal, not stripped; its compressed saving is advise's prorated by the tar bytes still stripped (an estimate)",
            c.kind.key(),
            planned - files.len()
        ));
    }
    // --squash: what the squash leaves out that no suggestion above already does is
    // its own, and so is its saving.
    let squash = match options.squash {
        _ if rebase.is_some() => Some(0),
        Some(scope) => {
            let range = squash::range(&analysis, scope)?;
            let plan = squash::plan(&analysis, range.from)?;
            let index = chosen.len();
            let sizes: HashMap<(usize, &str), u64> = plan
                .entries
                .iter()
                .map(|(layer, path, size)| ((*layer, path.as_str()), *size))
                .collect();
            let mut saved_bytes = 0u64;
            for (layer, paths) in &plan.layers {
                let slot = per_layer.entry(*layer).or_default();
                for path in paths {
                    if slot.contains_key(path) {
                        continue;
                    }
                    slot.insert(path.clone(), EntryChange::Remove(index));
                    let size = sizes.get(&(*layer, path.as_str())).copied().unwrap_or(0);
                    saved_bytes += 512 + size.div_ceil(512) * 512;
                }
            }
            let squashed = &analysis.layers[range.from..];
            // One end marker for all of them.
            saved_bytes += 1024 * (squashed.len() as u64 - 1);
            let compressed: u64 = squashed.iter().map(|l| l.compressed_bytes).sum();
            let uncompressed: u64 = squashed.iter().map(|l| l.uncompressed_bytes).sum();
            let files = plan
                .files
                .into_iter()
                .filter(|(path, _, layer)| {
                    per_layer.get(layer).and_then(|p| p.get(path))
                        == Some(&EntryChange::Remove(index))
                })
                .collect();
            chosen.push(Chosen {
                kind: SuggestionKind::SquashLayers,
                confidence: Confidence::Estimate,
                saved_bytes,
                saved_compressed_bytes: (u128::from(saved_bytes) * u128::from(compressed)
                    / u128::from(uncompressed.max(1)))
                    as u64,
                layers: plan.layers,
                files,
                strip: None,
            });
            notes.push(format!(
                "squashed {}. Its saving is an estimate: from the sizes of the entries it leaves out (a header block each, data in 512-byte blocks, one end marker for all), compressed at the squashed layers' ratio",
                range.why
            ));
            Some(range.from)
        }
        None => None,
    };
    let before = Sizes {
        compressed_bytes: analysis.compressed_bytes(),
        uncompressed_bytes: analysis.uncompressed_bytes(),
    };
    // zstd's figure is for the layers as they are; with files left out as well, it
    // is scaled to what is left of them (an estimate, and marked so).
    let removal_saved: u64 = chosen
        .iter()
        .filter(|c| c.kind != SuggestionKind::ZstdLayers)
        .map(|c| c.saved_compressed_bytes)
        .sum();
    let left = before.compressed_bytes.saturating_sub(removal_saved);
    for c in chosen.iter_mut() {
        if c.kind == SuggestionKind::ZstdLayers && removal_saved > 0 {
            c.saved_compressed_bytes = (c.saved_compressed_bytes as u128 * left as u128
                / before.compressed_bytes.max(1) as u128)
                as u64;
            c.confidence = Confidence::Estimate;
        }
    }
    let projected = Sizes {
        compressed_bytes: before
            .compressed_bytes
            .saturating_sub(chosen.iter().map(|c| c.saved_compressed_bytes).sum()),
        uncompressed_bytes: before
            .uncompressed_bytes
            .saturating_sub(chosen.iter().map(|c| c.saved_bytes).sum()),
    };
    let created_by = analysis.created_by();
    let report = ApplyReport {
        schema_version: image::SCHEMA_VERSION,
        image: analysis.info(),
        target: target.display(),
        dry_run: options.dry_run,
        manifest_digest: None,
        applied: chosen
            .iter()
            .map(|c| {
                let mut files = c.files.clone();
                files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                AppliedSuggestion {
                    id: c.kind,
                    confidence: c.confidence,
                    files: files.len(),
                    file_bytes: files.iter().map(|f| f.1).sum(),
                    layers: c.layers.keys().copied().collect(),
                    paths: files.iter().take(20).map(|f| format!("/{}", f.0)).collect(),
                    strip_mode: c.strip.as_ref().map(|_| options.strip_mode),
                    binaries: c
                        .strip
                        .iter()
                        .flatten()
                        .map(|f| StrippedBinary {
                            path: format!("/{}", f.path),
                            layer: f.layer,
                            size: f.size,
                            projected_size: f.size_after,
                            size_after: None,
                        })
                        .collect(),
                    projected_saved_bytes: c.saved_bytes,
                    projected_saved_compressed_bytes: c.saved_compressed_bytes,
                    saved_bytes: None,
                    saved_compressed_bytes: None,
                }
            })
            .collect(),
        layers: analysis
            .layers
            .iter()
            .enumerate()
            .map(|(index, layer)| LayerChange {
                layer: index,
                digest: layer.descriptor.digest.to_string(),
                created_by: created_by.get(index).cloned().flatten(),
                changed: per_layer.contains_key(&index),
                entries_to_remove: per_layer.get(&index).map_or(0, |p| {
                    p.values()
                        .filter(|c| matches!(c, EntryChange::Remove(_)))
                        .count()
                }),
                entries_to_strip: per_layer.get(&index).map_or(0, |p| {
                    p.values()
                        .filter(|c| matches!(c, EntryChange::Strip(_)))
                        .count()
                }),
                compressed_bytes: layer.compressed_bytes,
                uncompressed_bytes: layer.uncompressed_bytes,
                squashed_into: squash
                    .filter(|from| index >= *from)
                    .map(|from| from + offset),
                after: None,
            })
            .collect(),
        before,
        projected,
        after: None,
        notes: strip_notes(&chosen, options.strip_mode)
            .into_iter()
            .chain(notes)
            .chain(change_notes(&analysis, recompress, options.dry_run))
            .collect(),
    };
    // Where advise priced a layer stretch by stretch, the layer is written that way.
    let spliced: BTreeSet<usize> = advice
        .measurements
        .iter()
        .filter(|m| m.method == advice::rebuild::Method::Segments)
        .map(|m| m.layer)
        .collect();
    let squash = squash.map(|from| (from, squash_compression(&analysis, from, recompress)));
    Ok(Plan {
        source,
        analysis,
        spliced,
        chosen,
        per_layer,
        recompress,
        squash,
        rebase,
        report,
    })
}

/// The plan's report with what was written and read back, once that is checked.
fn finish(
    plan: Plan,
    written: &Written,
    reread: &ImageAnalysis,
    target: &Target,
) -> Result<ApplyReport, ApplyError> {
    let Plan {
        analysis,
        per_layer,
        recompress,
        squash,
        rebase,
        mut report,
        ..
    } = plan;
    let offset = offset_of(rebase.as_ref());
    let squash = squash.map(|(from, _)| from);
    if !matches!(target, Target::DockerArchive { .. })
        && reread.image.manifest_digest != written.manifest_digest
    {
        return Err(ApplyError::Verify(format!(
            "{} names manifest {}, not the {} written",
            target.display(),
            reread.image.manifest_digest,
            written.manifest_digest
        )));
    }
    reread_check(
        &analysis,
        reread,
        &per_layer,
        recompress.is_some(),
        squash,
        rebase.as_ref().map(|r| &r.analysis),
    )?;
    report.manifest_digest = Some(written.manifest_digest.to_string());
    report.after = Some(Sizes {
        compressed_bytes: reread.compressed_bytes(),
        uncompressed_bytes: reread.uncompressed_bytes(),
    });
    for (index, change) in report.layers.iter_mut().enumerate() {
        // A squashed range's figures are on its first row.
        let out = match squash {
            Some(from) if index > from => continue,
            _ => index + offset,
        };
        if let (Some(after), Some((written, recompressed))) =
            (reread.layers.get(out), written.methods.get(out))
        {
            change.after = Some(LayerAfter {
                digest: after.descriptor.digest.to_string(),
                compressed_bytes: after.compressed_bytes,
                uncompressed_bytes: after.uncompressed_bytes,
                written: *written,
                recompressed_bytes: *recompressed,
            });
        }
    }
    for applied in report.applied.iter_mut() {
        for binary in applied.binaries.iter_mut() {
            binary.size_after = written
                .stripped
                .get(&(binary.layer, binary.path.clone()))
                .copied();
        }
    }
    // What each suggestion saved: its entries' tar bytes exactly; compressed bytes
    // where its layers are its alone.
    for (index, applied) in report.applied.iter_mut().enumerate() {
        applied.saved_bytes = Some(
            written
                .removed
                .values()
                .filter_map(|by| by.get(&index))
                .sum(),
        );
        // A squash also saves the end markers (and any padding after them) of all
        // but one of its layers: what the range was, less what it became and what
        // the other suggestions left out of it.
        if let (Some(from), SuggestionKind::SquashLayers) = (squash, applied.id) {
            let out = from + offset;
            let range: u64 = analysis.layers[from..]
                .iter()
                .map(|l| l.uncompressed_bytes)
                .sum();
            let became = reread.layers.get(out).map_or(0, |l| l.uncompressed_bytes);
            let others: u64 = written.removed.get(&out).map_or(0, |by| {
                by.iter()
                    .filter(|(suggestion, _)| **suggestion != index)
                    .map(|(_, bytes)| *bytes)
                    .sum()
            });
            applied.saved_bytes = Some(range.saturating_sub(became).saturating_sub(others));
        }
        let alone = applied.layers.iter().all(|layer| {
            per_layer
                .get(layer)
                .is_some_and(|paths| paths.values().all(|c| c.suggestion() == index))
        });
        if alone && !applied.id.replaces_base() {
            let before_bytes: u64 = applied
                .layers
                .iter()
                .filter_map(|l| analysis.layers.get(*l))
                .map(|l| l.compressed_bytes)
                .sum();
            // The layers written for them: a squashed range is one.
            let mut out: Vec<usize> = applied
                .layers
                .iter()
                .map(|l| squash.map_or(*l, |from| (*l).min(from)) + offset)
                .collect();
            out.dedup();
            let after_bytes: u64 = out
                .iter()
                .filter_map(|l| reread.layers.get(*l))
                .map(|l| l.compressed_bytes)
                .sum();
            applied.saved_compressed_bytes = Some(before_bytes.saturating_sub(after_bytes));
        }
    }
    Ok(report)
}

/// The history of a squashed image: the squashed layers' entries kept (as empty
/// ones, saying where they went) and one entry for the layer they became, so the
/// non-empty entries still match the layers one to one.
fn squash_history(
    config: &mut serde_json::Map<String, serde_json::Value>,
    from: usize,
    into: usize,
    layers: usize,
) {
    let Some(history) = config.get_mut("history").and_then(|h| h.as_array_mut()) else {
        return;
    };
    let mut layer = 0usize;
    for entry in history.iter_mut() {
        let empty = entry
            .get("empty_layer")
            .and_then(|e| e.as_bool())
            .unwrap_or(false);
        if empty {
            continue;
        }
        if layer >= from {
            if let Some(entry) = entry.as_object_mut() {
                entry.insert("empty_layer".into(), json!(true));
                entry.insert(
                    "comment".into(),
                    json!(format!("squashed into layer {into} by ballast apply")),
                );
            }
        }
        layer += 1;
    }
    history.push(json!({
        "created_by": format!("ballast apply --squash: layers {from} to {} as one", layers - 1),
        "comment": "the entries above marked squashed are in this layer",
    }));
}

fn offset_of(rebase: Option<&rebase::Rebase>) -> usize {
    rebase.map_or(0, |r| r.analysis.layers.len())
}

/// The config of a rebased image: the image's own (entrypoint, user, labels), its
/// environment with what the base sets besides, and the base's history before its
/// own, so the history's layers are the base's and then the new one.
fn rebase_config(config: &mut serde_json::Map<String, serde_json::Value>, rebase: &rebase::Rebase) {
    let image = serde_json::Value::Object(config.clone());
    let env = rebase::merged_env(&image, &rebase.config);
    if let Some(inner) = config.get_mut("config").and_then(|c| c.as_object_mut()) {
        inner.insert("Env".into(), json!(env));
    }
    let base_history = rebase
        .config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    let own = config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    config.insert(
        "history".into(),
        json!(base_history.into_iter().chain(own).collect::<Vec<_>>()),
    );
}

/// How the squashed layer is compressed: as asked (`--zstd`, `--gzip`), else as the
/// largest of the squashed layers is, at its matched gzip level.
fn squash_compression(
    analysis: &ImageAnalysis,
    from: usize,
    recompress: Option<(crate::layer::Compression, i32)>,
) -> (crate::layer::Compression, i32) {
    if let Some(output) = recompress {
        return output;
    }
    let largest = analysis.layers[from..]
        .iter()
        .max_by_key(|l| l.uncompressed_bytes);
    match largest {
        Some(layer) if layer.compression == crate::layer::Compression::Zstd => (
            crate::layer::Compression::Zstd,
            crate::recompress::ZSTD_LEVEL,
        ),
        Some(layer) if layer.compression == crate::layer::Compression::None => {
            (crate::layer::Compression::None, 0)
        }
        Some(layer) => (
            crate::layer::Compression::Gzip,
            layer
                .gzip_level
                .as_ref()
                .map_or(advice::gzip_level::DEFAULT_LEVEL, |m| m.level) as i32,
        ),
        None => (
            crate::layer::Compression::Gzip,
            advice::gzip_level::DEFAULT_LEVEL as i32,
        ),
    }
}

/// How the push went: what was sent, what the registry had or took from the source.
fn push_note(stats: &push::PushStats, mount_from: Option<&oci_client::Reference>) -> String {
    let mut parts = vec![format!(
        "pushed {} {} ({})",
        stats.uploaded,
        if stats.uploaded == 1 { "blob" } else { "blobs" },
        crate::size::human(stats.uploaded_bytes)
    )];
    if stats.mounted > 0 {
        parts.push(format!(
            "{} mounted from {}",
            stats.mounted,
            crate::text::escape_control(mount_from.map(|r| r.repository()).unwrap_or(""))
        ));
    }
    if stats.present > 0 {
        parts.push(format!("{} already in the repository", stats.present));
    }
    parts.join(", ")
}

/// What a person must know besides the sizes.
fn change_notes(
    analysis: &ImageAnalysis,
    recompress: Option<(crate::layer::Compression, i32)>,
    dry_run: bool,
) -> Vec<String> {
    let mut notes = vec![format!(
        "the new image has a new manifest digest: signatures and attestations made for {} (cosign, notation) do not apply to it; sign it again",
        crate::text::escape_control(&analysis.image.manifest_digest.to_string())
    )];
    if recompress.is_some() {
        notes.push(
            "every layer is recompressed: the base layers no longer share blobs with other images in the registry or on the node".into(),
        );
    }
    if dry_run {
        notes.clear();
    }
    notes
}

/// Layers apply did not change must come out with the same digest.
fn reread_check(
    before: &ImageAnalysis,
    after: &ImageAnalysis,
    changed: &BTreeMap<usize, HashMap<String, EntryChange>>,
    recompressed: bool,
    squash: Option<usize>,
    base: Option<&ImageAnalysis>,
) -> Result<(), ApplyError> {
    if let Some(base) = base {
        // The base's layers first, its blobs as they are; then the one new layer.
        if after.layers.len() != base.layers.len() + 1 {
            return Err(ApplyError::Verify(format!(
                "{} layers written for {}",
                after.layers.len(),
                base.layers.len() + 1
            )));
        }
        for (index, (a, b)) in base.layers.iter().zip(&after.layers).enumerate() {
            if a.descriptor.digest != b.descriptor.digest {
                return Err(ApplyError::Verify(format!(
                    "base layer {index} came out as {}, not {}",
                    b.descriptor.digest, a.descriptor.digest
                )));
            }
        }
        return Ok(());
    }
    let expected = squash.map_or(before.layers.len(), |from| from + 1);
    if after.layers.len() != expected {
        return Err(ApplyError::Verify(format!(
            "{} layers written for {expected}",
            after.layers.len(),
        )));
    }
    for (index, (a, b)) in before.layers.iter().zip(&after.layers).enumerate() {
        if changed.contains_key(&index) || squash.is_some_and(|from| index >= from) {
            continue;
        }
        if recompressed && a.diff_id != b.diff_id {
            return Err(ApplyError::Verify(format!(
                "recompressed layer {index} holds {}, not {}",
                b.diff_id, a.diff_id
            )));
        }
        if !recompressed && a.descriptor.digest != b.descriptor.digest {
            return Err(ApplyError::Verify(format!(
                "untouched layer {index} came out as {}, not {}",
                b.descriptor.digest, a.descriptor.digest
            )));
        }
    }
    Ok(())
}

struct Written {
    manifest_digest: Digest,
    manifest_bytes: Vec<u8>,
    /// The config's and the layers' blobs, with their sizes.
    blobs: Vec<(Digest, u64)>,
    config_digest: Digest,
    layer_digests: Vec<Digest>,
    /// Per layer, the tar bytes left out (or stripped off) per chosen suggestion.
    removed: BTreeMap<usize, HashMap<usize, u64>>,
    /// Per layer, how its blob was written and the tar bytes compressed again.
    methods: Vec<(WriteMethod, u64)>,
    /// The size each stripped binary came out at, by layer and `/path`.
    stripped: HashMap<(usize, String), u64>,
    /// Each layer as written, for another platform's image to reuse.
    layers: Vec<(LayerKey, LayerWritten)>,
}

/// A layer by its source blob, how it is compressed and every change made to it
/// (path, whether a strip, for which suggestion).
type LayerKey = (Digest, String, Vec<(String, bool, Option<SuggestionKind>)>);

/// The layers written so far in this run.
type WrittenLayers = HashMap<LayerKey, LayerWritten>;

/// A layer written: its blob, and what the rewrite did by suggestion.
#[derive(Clone)]
struct LayerWritten {
    descriptor: LayerDescriptor,
    diff_id: Digest,
    /// Tar bytes left out or stripped off, per suggestion (`None`: copied).
    removed: Option<HashMap<SuggestionKind, u64>>,
    /// Binaries stripped: path, size before, size after.
    stripped: Vec<(String, u64, u64)>,
    method: (WriteMethod, u64),
    /// Written early (`EarlyWrites`): where the blob is until it is taken.
    staged: Option<std::path::PathBuf>,
}

/// Per layer: every path to leave out or strip, and the index in `chosen` of the
/// suggestion it is for; removals first.
fn layer_changes(chosen: &[Chosen]) -> BTreeMap<usize, HashMap<String, EntryChange>> {
    let mut per_layer: BTreeMap<usize, HashMap<String, EntryChange>> = BTreeMap::new();
    for removals_first in [true, false] {
        for (index, c) in chosen.iter().enumerate() {
            if c.strip.is_none() != removals_first {
                continue;
            }
            for (layer, paths) in &c.layers {
                let slot = per_layer.entry(*layer).or_default();
                for path in paths {
                    slot.entry(path.clone()).or_insert(if removals_first {
                        EntryChange::Remove(index)
                    } else {
                        EntryChange::Strip(index)
                    });
                }
            }
        }
    }
    per_layer
}

/// The large layers of one image, written while advise measures it.
///
/// Which files a suggestion leaves out or strips is known once the image is read;
/// only whether it is made waits for advise's figures. advise's rebuild leaves a
/// core idle for much of its time, so each layer above `full_rebuild_bytes` that the
/// default choice would change is written then, into a directory beside the target.
/// Once the plan is made, a layer whose changes and method came out the same (the
/// same [`LayerKey`]) takes that blob; any other is written again as usual and the
/// early one is thrown away with the directory. Nothing the user sees depends on
/// which happened.
struct EarlyWrites {
    dir: target::Staging,
    tasks: tokio::task::JoinSet<Option<(LayerKey, LayerWritten)>>,
}

impl EarlyWrites {
    /// For one image without `--squash`, `--base`, `--zstd`/`--gzip` or `--dry-run`
    /// (whose layers are written another way, or not at all).
    fn new(target: &Target, options: &ApplyOptions, (only, _): &Resolved) -> Option<Self> {
        if options.dry_run
            || options.squash.is_some()
            || options.base.is_some()
            || options.recompress.is_some()
            || only
                .as_ref()
                .is_some_and(|o| o.contains(&SuggestionKind::ZstdLayers))
        {
            return None;
        }
        let beside = match target {
            Target::Layout { dir, .. } => dir.parent().map(std::path::Path::to_path_buf),
            Target::OciArchive { file, .. } | Target::DockerArchive { file, .. } => {
                file.parent().map(std::path::Path::to_path_buf)
            }
            Target::Registry { .. } => Some(std::env::temp_dir()),
        };
        let beside = beside
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| std::path::PathBuf::from("."));
        let dir = target::Staging::create_in(&beside, ".ballast-apply-early-").ok()?;
        Some(Self {
            dir,
            tasks: tokio::task::JoinSet::new(),
        })
    }

    /// Starts the writes, as `plan` would choose them by default.
    fn start(
        &mut self,
        source: &Arc<crate::source::Source>,
        analysis: &ImageAnalysis,
        options: &ApplyOptions,
        (only, skip): &Resolved,
    ) {
        let wanted = |kind: SuggestionKind| {
            only.as_ref()
                .map_or(APPLICABLE.contains(&kind), |o| o.contains(&kind))
                && !skip.contains(&kind)
        };
        let chosen = |kind, layers, strip| Chosen {
            kind,
            confidence: Confidence::Exact,
            saved_bytes: 0,
            saved_compressed_bytes: 0,
            layers,
            files: Vec::new(),
            strip,
        };
        let guess: Vec<Chosen> = advice::layer_removals(analysis)
            .into_iter()
            .filter(|r| wanted(r.kind))
            .map(|r| chosen(r.kind, r.layers, None))
            .chain(
                advice::layer_strips(analysis, options.strip_mode)
                    .into_iter()
                    .filter(|s| wanted(s.kind))
                    .map(|s| chosen(s.kind, s.layers, Some(s.files))),
            )
            .collect();
        let kinds: Vec<SuggestionKind> = guess.iter().map(|c| c.kind).collect();
        for (index, changes) in layer_changes(&guess) {
            let Some(layer) = analysis.layers.get(index) else {
                continue;
            };
            // Above this advise prices the layer stretch by stretch, and apply splices it.
            if layer.compression != crate::layer::Compression::Gzip
                || layer.uncompressed_bytes <= options.advise.full_rebuild_bytes
            {
                continue;
            }
            let output = writer::Output::Spliced;
            let key = layer_key(&layer.descriptor.digest, Some(output), &changes, &kinds);
            let rewrite = LayerRewrite {
                index,
                descriptor: layer.descriptor.clone(),
                diff_id: layer.diff_id.clone(),
                changes,
                kinds: kinds.clone(),
                output,
                strip_mode: options.strip_mode,
                limits: options.inspect.limits,
                blobs: self.dir.path().to_path_buf(),
                memo: options.inspect.layer_memo.clone(),
            };
            let source = Arc::clone(source);
            let staged = self.dir.path().to_path_buf();
            self.tasks.spawn(async move {
                // A failure here is met again, and reported, when the layer is written.
                let mut done = rewrite
                    .run(&source, Arc::new(image::NoProgress))
                    .await
                    .ok()?;
                done.staged = Some(staged.join(done.descriptor.digest.hex()));
                Some((key, done))
            });
        }
    }

    /// The layers written, each still in the early directory (`LayerWritten::staged`)
    /// until a job takes it; the directory goes when `self` does.
    async fn settle(&mut self) -> WrittenLayers {
        let mut written = WrittenLayers::new();
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok(Some((key, done))) = joined {
                written.insert(key, done);
            }
        }
        written
    }
}

/// Moves an early-written blob into the layout (copied when the two are on different
/// filesystems).
fn take_staged(staged: &std::path::Path, to: &std::path::Path) -> Result<(), ApplyError> {
    // Already there: the same blob taken for another layer of the image (it is named
    // by its digest).
    if std::fs::rename(staged, to).is_ok() || to.exists() {
        return Ok(());
    }
    let parent = to.parent().unwrap_or(to);
    let mut temp = writer::TempFile::create(parent)?;
    let mut file = temp.take_file()?;
    let mut from = std::fs::File::open(staged).map_err(|e| ApplyError::io(staged, e))?;
    std::io::copy(&mut from, &mut file).map_err(|e| ApplyError::io(to, e))?;
    drop(file);
    temp.persist(to)
}

/// What makes two writes of a layer the same blob: the source layer, how it is
/// written, and each change with the suggestion it is for.
fn layer_key(
    digest: &Digest,
    output: Option<writer::Output>,
    changes: &HashMap<String, EntryChange>,
    kinds: &[SuggestionKind],
) -> LayerKey {
    let mut listed: Vec<(String, bool, Option<SuggestionKind>)> = changes
        .iter()
        .map(|(path, change)| {
            (
                path.clone(),
                matches!(change, EntryChange::Strip(_)),
                kinds.get(change.suggestion()).copied(),
            )
        })
        .collect();
    listed.sort();
    (digest.clone(), format!("{output:?}"), listed)
}

/// One layer to rewrite: its source blob, the changes, and how to write it.
struct LayerRewrite {
    index: usize,
    descriptor: LayerDescriptor,
    diff_id: Digest,
    changes: HashMap<String, EntryChange>,
    /// The suggestion each change's index names.
    kinds: Vec<SuggestionKind>,
    output: writer::Output,
    strip_mode: StripMode,
    limits: crate::layer::LayerLimits,
    blobs: std::path::PathBuf,
    memo: image::LayerMemo,
}

impl LayerRewrite {
    async fn run(
        self,
        source: &crate::source::Source,
        progress: Arc<dyn Progress>,
    ) -> Result<LayerWritten, ApplyError> {
        let LayerRewrite {
            index,
            descriptor,
            diff_id,
            changes,
            kinds,
            output,
            strip_mode,
            limits,
            blobs,
            memo,
        } = self;
        if !changes.is_empty() {
            let strips = changes
                .values()
                .filter(|c| matches!(c, EntryChange::Strip(_)))
                .count();
            progress.detail(&format!(
                "layer {index}: {} entries left out, {strips} stripped",
                changes.len() - strips
            ));
        }
        let blob = image::counted(source.open_blob(&descriptor).await?, Arc::clone(&progress));
        let source_descriptor = descriptor.clone();
        let rewritten = tokio::task::spawn_blocking(move || {
            writer::rewrite_layer(
                blob,
                &source_descriptor,
                &diff_id,
                &changes,
                strip_mode,
                &limits,
                &blobs,
                output,
            )
        })
        .await
        .map_err(|e| ApplyError::Task(e.to_string()))??;
        let method = match rewritten.splice {
            Some(stats) => (WriteMethod::Spliced, stats.recompressed_bytes),
            None => (WriteMethod::Recompressed, rewritten.kept_bytes),
        };
        let media_type = match output {
            writer::Output::Recompressed(compression, _) => {
                layer_media_type(compression).to_string()
            }
            _ => oci_media_type(&descriptor.media_type),
        };
        let written = LayerDescriptor {
            digest: rewritten.digest.clone(),
            media_type,
            size: rewritten.size,
        };
        remember_read_back(
            &memo,
            rewritten.read_back,
            &written,
            &rewritten.diff_id,
            &format!("layer {index}"),
        )?;
        Ok(LayerWritten {
            descriptor: written,
            diff_id: rewritten.diff_id.clone(),
            removed: Some(
                rewritten
                    .removed_bytes
                    .iter()
                    .filter_map(|(index, bytes)| Some((*kinds.get(*index)?, *bytes)))
                    .collect(),
            ),
            stripped: rewritten.stripped,
            method,
            staged: None,
        })
    }
}

async fn write_image(
    plan: &Plan,
    target: &LayoutTarget,
    options: &ApplyOptions,
    written_before: &WrittenLayers,
    progress: Arc<dyn Progress>,
) -> Result<Written, ApplyError> {
    let Plan {
        source,
        analysis,
        spliced,
        chosen,
        per_layer,
        recompress,
        squash,
        rebase,
        ..
    } = plan;
    let recompress = *recompress;
    let squash = *squash;
    let rebase = rebase.as_ref();
    let dir = &target.dir;
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| ApplyError::io(&blobs, e))?;
    progress.phase(
        &format!("writing {}", crate::text::escape_control(&target.display())),
        analysis.compressed_bytes(),
    );
    // Layers are written `concurrency` at a time, in order of the manifest.
    let empty = HashMap::new();
    let kinds: Vec<SuggestionKind> = chosen.iter().map(|c| c.kind).collect();
    let squash_from = squash.map_or(usize::MAX, |(from, _)| from);
    let jobs = analysis
        .layers
        .iter()
        .enumerate()
        .take(squash_from)
        .map(|(index, layer)| {
            let remove = per_layer.get(&index);
            let source = Arc::clone(source);
            let progress = Arc::clone(&progress);
            let blobs = blobs.clone();
            let limits = options.inspect.limits;
            let output = match recompress {
                Some((compression, level)) => {
                    Some(writer::Output::Recompressed(compression, level))
                }
                None if remove.is_none() => None,
                None if spliced.contains(&index) => Some(writer::Output::Spliced),
                None => Some(writer::Output::Matched),
            };
            let remove = remove.unwrap_or(&empty).clone();
            let memo = options.inspect.layer_memo.clone();
            let strip_mode = options.strip_mode;
            let descriptor = layer.descriptor.clone();
            let diff_id = layer.diff_id.clone();
            let kinds = kinds.clone();
            let key = layer_key(&descriptor.digest, output, &remove, &kinds);
            // Another platform's image holds this layer changed the same way: its blob is
            // written already.
            let reused = written_before.get(&key).cloned();
            async move {
                if let Some(mut done) = reused {
                    if let Some(staged) = done.staged.take() {
                        take_staged(&staged, &blobs.join(done.descriptor.digest.hex()))?;
                    }
                    progress.advance(descriptor.size);
                    return Ok::<_, ApplyError>((key, done));
                }
                let Some(output) = output else {
                    let blob =
                        image::counted(source.open_blob(&descriptor).await?, Arc::clone(&progress));
                    let copied = descriptor.clone();
                    tokio::task::spawn_blocking(move || writer::copy_blob(blob, &copied, &blobs))
                        .await
                        .map_err(|e| ApplyError::Task(e.to_string()))??;
                    let done = LayerWritten {
                        descriptor: LayerDescriptor {
                            media_type: oci_media_type(&descriptor.media_type),
                            ..descriptor
                        },
                        diff_id,
                        removed: None,
                        stripped: Vec::new(),
                        method: (WriteMethod::Copied, 0),
                        staged: None,
                    };
                    return Ok((key, done));
                };
                let rewrite = LayerRewrite {
                    index,
                    descriptor,
                    diff_id,
                    changes: remove,
                    kinds,
                    output,
                    strip_mode,
                    limits,
                    blobs,
                    memo,
                };
                Ok((key, rewrite.run(&source, progress).await?))
            }
            .boxed()
        });

    // The squashed range: one job, its layers read one after another.
    let squash_job = squash.map(|(from, output)| {
        let inputs: Vec<writer::SquashInput> = analysis.layers[from..]
            .iter()
            .enumerate()
            .map(|(offset, layer)| writer::SquashInput {
                descriptor: layer.descriptor.clone(),
                diff_id: layer.diff_id.clone(),
                changes: per_layer.get(&(from + offset)).cloned().unwrap_or_default(),
            })
            .collect();
        let key: LayerKey = (
            analysis.layers[from].descriptor.digest.clone(),
            format!(
                "squash {output:?} {:?}",
                analysis.layers[from..]
                    .iter()
                    .map(|l| l.descriptor.digest.to_string())
                    .collect::<Vec<_>>()
            ),
            Vec::new(),
        );
        let source = Arc::clone(source);
        let progress = Arc::clone(&progress);
        let blobs = blobs.clone();
        let limits = options.inspect.limits;
        let strip_mode = options.strip_mode;
        let kinds = kinds.clone();
        let memo = options.inspect.layer_memo.clone();
        async move {
            let handle = tokio::runtime::Handle::current();
            let rewritten = tokio::task::spawn_blocking(move || {
                writer::squash_layers(
                    &inputs,
                    |descriptor| {
                        let blob = handle.block_on(source.open_blob(descriptor))?;
                        Ok(image::counted(blob, Arc::clone(&progress)))
                    },
                    strip_mode,
                    &limits,
                    &blobs,
                    output,
                )
            })
            .await
            .map_err(|e| ApplyError::Task(e.to_string()))??;
            let written = LayerDescriptor {
                digest: rewritten.digest.clone(),
                media_type: layer_media_type(output.0).to_string(),
                size: rewritten.size,
            };
            remember_read_back(
                &memo,
                rewritten.read_back,
                &written,
                &rewritten.diff_id,
                &format!("the squash of layers {from} on"),
            )?;
            let done = LayerWritten {
                descriptor: written,
                diff_id: rewritten.diff_id.clone(),
                removed: Some(
                    rewritten
                        .removed_bytes
                        .iter()
                        .filter_map(|(index, bytes)| Some((*kinds.get(*index)?, *bytes)))
                        .collect(),
                ),
                stripped: rewritten.stripped,
                method: (WriteMethod::Recompressed, rewritten.kept_bytes),
                staged: None,
            };
            Ok::<_, ApplyError>((key, done))
        }
        .boxed()
    });
    // The base's layers, copied as they are (and verified as they are copied).
    let base_jobs = rebase.into_iter().flat_map(|rebase| {
        rebase.analysis.layers.iter().map(|layer| {
            let source = Arc::clone(&rebase.source);
            let progress = Arc::clone(&progress);
            let blobs = blobs.clone();
            let descriptor = layer.descriptor.clone();
            let diff_id = layer.diff_id.clone();
            let key: LayerKey = (descriptor.digest.clone(), "base".into(), Vec::new());
            let reused = written_before.get(&key).cloned();
            async move {
                if let Some(done) = reused {
                    progress.advance(descriptor.size);
                    return Ok::<_, ApplyError>((key, done));
                }
                let blob =
                    image::counted(source.open_blob(&descriptor).await?, Arc::clone(&progress));
                let copied = descriptor.clone();
                tokio::task::spawn_blocking(move || writer::copy_blob(blob, &copied, &blobs))
                    .await
                    .map_err(|e| ApplyError::Task(e.to_string()))??;
                let done = LayerWritten {
                    descriptor: LayerDescriptor {
                        media_type: oci_media_type(&descriptor.media_type),
                        ..descriptor
                    },
                    diff_id,
                    removed: None,
                    stripped: Vec::new(),
                    method: (WriteMethod::Copied, 0),
                    staged: None,
                };
                Ok((key, done))
            }
            .boxed()
        })
    });
    // A zstd layer's encoder has a worker thread of its own and holds about 18 MB:
    // one such layer at a time keeps the cores busy and the memory bounded.
    let concurrency = match recompress {
        Some((crate::layer::Compression::Zstd, _)) => 1,
        _ => options.advise.concurrency.max(1),
    };
    let results: Vec<(LayerKey, LayerWritten)> =
        futures_util::stream::iter(base_jobs.chain(jobs).chain(squash_job))
            .buffered(concurrency)
            .try_collect()
            .await?;
    let mut descriptors: Vec<LayerDescriptor> = Vec::with_capacity(results.len());
    let mut diff_ids: Vec<Digest> = Vec::with_capacity(results.len());
    let mut removed = BTreeMap::new();
    let mut methods = Vec::with_capacity(results.len());
    let mut stripped = HashMap::new();
    for (index, (_, done)) in results.iter().enumerate() {
        descriptors.push(done.descriptor.clone());
        diff_ids.push(done.diff_id.clone());
        if let Some(by_kind) = &done.removed {
            removed.insert(
                index,
                by_kind
                    .iter()
                    .filter_map(|(kind, bytes)| {
                        Some((kinds.iter().position(|k| k == kind)?, *bytes))
                    })
                    .collect(),
            );
        }
        // Stripped binaries are keyed by the source layer that holds them; a squashed
        // layer's come from the layer of its range whose entry was stripped.
        let source_layer = index.saturating_sub(offset_of(rebase));
        for (path, _, after) in &done.stripped {
            let layer = match squash {
                Some((from, _)) if source_layer == from => (from..analysis.layers.len())
                    .rev()
                    .find(|l| {
                        per_layer
                            .get(l)
                            .and_then(|p| p.get(path.trim_start_matches('/')))
                            .is_some_and(|c| matches!(c, EntryChange::Strip(_)))
                    })
                    .unwrap_or(from),
                _ => source_layer,
            };
            stripped.insert((layer, path.clone()), *after);
        }
        methods.push(done.method);
    }

    // The config: the source's, with the new diff_ids and one history entry.
    let config_bytes = read_config(source, analysis).await?;
    let mut config: serde_json::Value = serde_json::from_slice(&config_bytes).map_err(|e| {
        SourceError::malformed(format!("config {}", analysis.image.config_digest), e)
    })?;
    let object = config.as_object_mut().ok_or_else(|| {
        SourceError::malformed(
            format!("config {}", analysis.image.config_digest),
            "not a JSON object",
        )
    })?;
    let rootfs = object
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers"}));
    if let Some(rootfs) = rootfs.as_object_mut() {
        rootfs.insert(
            "diff_ids".into(),
            json!(diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()),
        );
    }
    if let Some((from, _)) = squash {
        squash_history(
            object,
            from,
            from + offset_of(rebase),
            analysis.layers.len(),
        );
    }
    if let Some(rebase) = rebase {
        rebase_config(object, rebase);
    }
    let ids: Vec<&str> = chosen
        .iter()
        .map(|c| c.kind.key())
        .filter(|id| {
            *id != SuggestionKind::ZstdLayers.key() && *id != SuggestionKind::SquashLayers.key()
        })
        .collect();
    let mut created_by = format!("ballast apply: {}", ids.join(","));
    if let Some((from, _)) = squash {
        created_by.push_str(&format!(" --squash {from}"));
    }
    let layers_note = match recompress {
        Some((compression, level)) => {
            let name = match compression {
                crate::layer::Compression::Zstd => "zstd",
                crate::layer::Compression::Gzip => "gzip",
                crate::layer::Compression::None => "none",
            };
            created_by.push_str(&format!(" --{name} {level}"));
            format!("every layer recompressed with {name} at level {level}")
        }
        None => "untouched layers are byte-identical".into(),
    };
    let key_list = |strip: bool| {
        chosen
            .iter()
            .filter(|c| {
                c.strip.is_some() == strip
                    && c.kind != SuggestionKind::ZstdLayers
                    && c.kind != SuggestionKind::SquashLayers
            })
            .map(|c| c.kind.key())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut done = Vec::new();
    let removed_ids = key_list(false);
    if !removed_ids.is_empty() {
        done.push(format!("left out what {removed_ids} advised"));
    }
    let stripped_ids = key_list(true);
    if !stripped_ids.is_empty() {
        done.push(format!(
            "stripped {} {} (strip {}) as {stripped_ids} advised",
            stripped.len(),
            if stripped.len() == 1 {
                "binary"
            } else {
                "binaries"
            },
            options.strip_mode.flag()
        ));
    }
    if let Some((from, _)) = squash {
        done.push(format!(
            "squashed layers {from} to {} into one",
            analysis.layers.len() - 1
        ));
    }
    if done.is_empty() {
        done.push("left out nothing".into());
    }
    let entry = json!({
        "created_by": created_by,
        "comment": format!(
            "ballast {} {}; {layers_note}",
            env!("CARGO_PKG_VERSION"),
            done.join("; ")
        ),
        "empty_layer": true,
    });
    match object.get_mut("history").and_then(|h| h.as_array_mut()) {
        Some(history) => history.push(entry),
        None => {
            object.insert("history".into(), json!([entry]));
        }
    }
    let config_out = serde_json::to_vec(&config)
        .map_err(|e| ApplyError::Task(format!("serialising the config: {e}")))?;
    let config_digest = Digest::of_bytes(&config_out);
    writer::write_small(&blobs, &blobs.join(config_digest.hex()), &config_out)?;

    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config_out.len(),
        },
        "layers": descriptors.iter().map(|d| json!({
            "mediaType": d.media_type,
            "digest": d.digest.to_string(),
            "size": d.size,
        })).collect::<Vec<_>>(),
    });
    if let Some(rebase) = rebase {
        manifest["annotations"] = json!({
            "org.opencontainers.image.base.name": rebase.name,
            "org.opencontainers.image.base.digest": rebase.digest.to_string(),
        });
    }
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ApplyError::Task(format!("serialising the manifest: {e}")))?;
    let manifest_digest = Digest::of_bytes(&manifest_bytes);
    writer::write_small(&blobs, &blobs.join(manifest_digest.hex()), &manifest_bytes)?;

    let blobs = std::iter::once((config_digest.clone(), config_out.len() as u64))
        .chain(descriptors.iter().map(|d| (d.digest.clone(), d.size)))
        .collect();
    Ok(Written {
        manifest_digest,
        manifest_bytes,
        blobs,
        config_digest,
        layer_digests: descriptors.iter().map(|d| d.digest.clone()).collect(),
        removed,
        methods,
        stripped,
        layers: results,
    })
}

/// The OCI media type of a layer the manifest lists (the manifest written is an
/// OCI one): Docker's names for the same bytes are renamed, the blob is not touched.
/// A layer's read-back, made as it was written (`writer::ReadBack`): checked against
/// what the writer hashed, then kept where the image's read-back finds it, so that
/// the layer is not read a second time.
fn remember_read_back(
    memo: &image::LayerMemo,
    scan: Option<crate::layer::LayerScan>,
    written: &LayerDescriptor,
    diff_id: &Digest,
    what: &str,
) -> Result<(), ApplyError> {
    let Some(mut scan) = scan else {
        return Ok(());
    };
    if scan.descriptor.digest != written.digest || scan.descriptor.size != written.size {
        return Err(ApplyError::Verify(format!(
            "{what}: the blob written hashes to {} ({} bytes) as the writer saw it, to {} ({} bytes) as it was read back",
            written.digest, written.size, scan.descriptor.digest, scan.descriptor.size
        )));
    }
    if &scan.diff_id != diff_id {
        return Err(ApplyError::Verify(format!(
            "{what}: the tar written hashes to {diff_id}, the blob {} decompresses to {}",
            written.digest, scan.diff_id
        )));
    }
    scan.descriptor.media_type = written.media_type.clone();
    memo.insert(&Arc::new(scan));
    Ok(())
}

fn oci_media_type(media_type: &str) -> String {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            layer_media_type(crate::layer::Compression::Gzip).into()
        }
        "application/vnd.docker.image.rootfs.diff.tar" => {
            layer_media_type(crate::layer::Compression::None).into()
        }
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            layer_media_type(crate::layer::Compression::Zstd).into()
        }
        other => other.into(),
    }
}

fn layer_media_type(compression: crate::layer::Compression) -> &'static str {
    match compression {
        crate::layer::Compression::None => "application/vnd.oci.image.layer.v1.tar",
        crate::layer::Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        crate::layer::Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

impl EntryChange {
    fn suggestion(self) -> usize {
        match self {
            EntryChange::Remove(index) | EntryChange::Strip(index) => index,
        }
    }
}

/// What the report says about the strips: which strip was made and what its figures
/// stand on.
fn strip_notes(chosen: &[Chosen], mode: StripMode) -> Vec<String> {
    if !chosen.iter().any(|c| c.strip.is_some()) {
        return vec![];
    }
    vec![match mode {
        StripMode::All => "strips: strip --strip-all (debug info and the symbol table), what advise prices; projected from each binary's size after it (size_after_strip_all), compressed as advise measured it".into(),
        StripMode::Debug => "strips: strip --strip-debug (debug info only, the symbol table stays); projected from each binary's size_after_strip_debug, not the --strip-all figure advise shows by default, and compressed as advise measured it in that mode".into(),
    }]
}

/// The source's config as stored (what `inspect` parsed), verified by digest.
async fn read_config(
    source: &Arc<crate::source::Source>,
    analysis: &ImageAnalysis,
) -> Result<Vec<u8>, ApplyError> {
    let digest = analysis.image.config_digest.clone();
    let descriptor = LayerDescriptor {
        digest: digest.clone(),
        media_type: "application/vnd.oci.image.config.v1+json".into(),
        size: analysis.image.config_size,
    };
    let blob = source.open_blob(&descriptor).await?;
    let bytes = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        let mut blob = blob;
        std::io::Read::read_to_end(&mut blob, &mut bytes).map(|_| bytes)
    })
    .await
    .map_err(|e| ApplyError::Task(e.to_string()))?
    .map_err(|e| LayerError::Read {
        digest: digest.clone(),
        reason: e.to_string(),
    })?;
    crate::source::verify_digest(&format!("config {digest}"), &bytes, &digest)?;
    Ok(bytes)
}
