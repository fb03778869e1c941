//! A `docker save` stream read in one pass: what the Docker Engine API's
//! `GET /images/{name}/get` sends (and podman's compatible endpoint), in either
//! format: classic (`<id>/layer.tar`, `<hex>.json`, `manifest.json`) or the OCI layout
//! Docker 25+ writes with the containerd store (`blobs/sha256/…`, `index.json`,
//! `manifest.json`); a bare OCI layout tar (`index.json` only) too.
//!
//! The stream lists its manifest and often the config *after* the layers, and cannot
//! be rewound. So every blob is scanned as it goes by (hashed, decompressed, walked,
//! never written anywhere), small JSON members are kept, and once the stream ends
//! the manifest says which scans are the image's layers, in which order; every blob
//! digest and diff_id is then checked against it. Memory is what `inspect` holds for
//! any image (the entry lists) plus the small members, each capped.

use std::collections::HashMap;
use std::io::{self, Read};

use super::archive::{choose_manifest, content_address, ArchiveManifest};
use super::archive::{DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, OCI_LAYER_ZSTD};
use super::layout::LayoutSource;
use super::manifest::{self, OCI_MANIFEST};
use super::{ResolvedImage, SourceError, MAX_METADATA_BYTES};
use crate::digest::Digest;
use crate::layer::{self, LayerError, LayerLimits, LayerScan};
use crate::source::{LayerDescriptor, Platform};

/// All small members together may take this much: a save of one image holds a
/// manifest, a config, an index and a few small files per layer.
const MAX_METADATA_TOTAL: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{what}: member {member}: {source}")]
    Layer {
        what: String,
        member: String,
        #[source]
        source: Box<LayerError>,
    },
}

impl StreamError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            StreamError::Source(_) => true,
            StreamError::Layer { source, .. } => source.is_bad_input(),
        }
    }
}

/// An image read from a save stream: resolved, with every layer already scanned.
pub struct StreamedImage {
    pub image: ResolvedImage,
    /// One per distinct layer; each descriptor is the one `image.layers` lists.
    pub scans: Vec<LayerScan>,
    /// Which member holds each layer blob, to find it again in a later stream.
    pub members: HashMap<Digest, String>,
}

/// What the stream left behind, before the manifest picks from it.
#[derive(Default)]
struct Members {
    small: HashMap<String, Vec<u8>>,
    /// Blob members by name: their scan, or why they are not a layer.
    blobs: HashMap<String, Result<LayerScan, LayerError>>,
    /// `docker save` of old links identical layers to one copy.
    links: HashMap<String, String>,
}

impl Members {
    fn target<'a>(&'a self, name: &'a str) -> &'a str {
        let mut current = name;
        for _ in 0..8 {
            match self.links.get(current) {
                Some(next) => current = next,
                None => break,
            }
        }
        current
    }
}

/// How a command reads images front to back.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub platform: Platform,
    pub explicit_platform: bool,
    pub limits: LayerLimits,
    /// Blob members scanned at most (a stream of junk costs no more than this).
    pub max_blobs: usize,
}

#[derive(Debug, Clone)]
pub struct StreamRequest {
    /// How errors name the stream (`docker-daemon:app:1`).
    pub what: String,
    /// The image to pick: a tag of manifest.json, or index.json's `ref.name`.
    pub wanted: Option<String>,
    pub options: StreamOptions,
}

/// `read_save_stream` on a blocking thread, the stream buffered.
pub async fn read_in_background(
    stream: impl Read + Send + 'static,
    request: StreamRequest,
) -> Result<StreamedImage, StreamError> {
    let what = request.what.clone();
    tokio::task::spawn_blocking(move || {
        read_save_stream(io::BufReader::with_capacity(256 * 1024, stream), &request)
    })
    .await
    .map_err(|e| SourceError::malformed(what, e))?
}

pub fn read_save_stream(
    stream: impl Read,
    request: &StreamRequest,
) -> Result<StreamedImage, StreamError> {
    let members = read_members(stream, request)?;
    if members.small.contains_key("manifest.json") {
        resolve_docker(members, request)
    } else if members.small.contains_key("index.json") {
        resolve_oci(members, request)
    } else {
        Err(SourceError::malformed(
            &request.what,
            "the stream holds neither manifest.json nor index.json: not a docker save or OCI layout",
        )
        .into())
    }
}

fn read_members(stream: impl Read, request: &StreamRequest) -> Result<Members, StreamError> {
    let what = request.what.as_str();
    let malformed = |e: io::Error| StreamError::from(SourceError::malformed(what, e));
    // Member names are short; an extension entry claiming megabytes is hostile.
    let mut archive = layer::tar_archive(stream, &LayerLimits::default());
    let mut members = Members::default();
    let mut small_total = 0u64;
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        let name = member_name(&entry.path_bytes());
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            if let Some(target) = entry.link_name_bytes() {
                let target = member_name(&target);
                let resolved = if kind == tar::EntryType::Symlink {
                    crate::fs::resolve_link(&name, &target)
                } else {
                    target
                };
                members.links.insert(name, resolved);
            }
            continue;
        }
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            continue;
        }
        let size = entry.size();
        let could_be_json = size <= MAX_METADATA_BYTES && !is_layer_name(&name);
        if is_metadata_name(&name) || could_be_json {
            if size > MAX_METADATA_BYTES {
                return Err(SourceError::TooLarge {
                    what: format!("{name} in {what}"),
                    size,
                    limit: MAX_METADATA_BYTES,
                }
                .into());
            }
            let mut bytes = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(MAX_METADATA_BYTES)
                .read_to_end(&mut bytes)
                .map_err(malformed)?;
            if is_metadata_name(&name) || looks_like_json(&bytes) {
                small_total += size;
                if small_total > MAX_METADATA_TOTAL {
                    return Err(SourceError::malformed(
                        what,
                        "more than 64 MiB of manifests and configs",
                    )
                    .into());
                }
                members.small.insert(name, bytes);
            } else {
                check_blob_count(&members, request)?;
                let scan = scan_member(&bytes[..], &name, size, request)?;
                members.blobs.insert(name, scan);
            }
            continue;
        }
        check_blob_count(&members, request)?;
        let scan = scan_member(&mut entry, &name, size, request)?;
        members.blobs.insert(name, scan);
    }
    Ok(members)
}

fn check_blob_count(members: &Members, request: &StreamRequest) -> Result<(), StreamError> {
    if members.blobs.len() >= request.options.max_blobs {
        return Err(SourceError::malformed(
            &request.what,
            format!(
                "more than {} blobs (--max-layers raises the limit)",
                request.options.max_blobs
            ),
        )
        .into());
    }
    Ok(())
}

/// Scans one blob member as a layer; a blob that is not one (a signature, an SBOM)
/// keeps the reason, which matters only if the manifest lists it as a layer.
fn scan_member(
    mut blob: impl Read,
    name: &str,
    size: u64,
    request: &StreamRequest,
) -> Result<Result<LayerScan, LayerError>, StreamError> {
    let mut magic = [0u8; 4];
    let mut filled = 0;
    while filled < magic.len() {
        let n = blob
            .read(&mut magic[filled..])
            .map_err(|e| SourceError::malformed(&request.what, e))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let media_type = match magic {
        [0x1f, 0x8b, ..] => DOCKER_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => OCI_LAYER_ZSTD,
        _ => DOCKER_LAYER_TAR,
    };
    let label = LayerDescriptor {
        digest: label_digest(name),
        media_type: media_type.to_string(),
        size,
    };
    let blob = io::Cursor::new(magic[..filled].to_vec()).chain(blob);
    Ok(layer::scan_unverified(
        blob,
        &label,
        &request.options.limits,
    ))
}

/// The manifest.json route: classic saves and Docker 25+'s OCI-layout saves.
fn resolve_docker(
    mut members: Members,
    request: &StreamRequest,
) -> Result<StreamedImage, StreamError> {
    let what = request.what.as_str();
    let manifest_bytes = members.small.remove("manifest.json").unwrap_or_default();
    let manifests: Vec<ArchiveManifest> = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| SourceError::malformed(format!("manifest.json in {what}"), e))?;
    let chosen = choose_manifest(&manifests, request.wanted.as_deref(), what)?;
    let config_name = member_name(chosen.config.as_bytes());
    let config_bytes = members
        .small
        .get(members.target(&config_name))
        .ok_or_else(|| SourceError::NotFound {
            what: format!("config {config_name} in {what}"),
            hint: String::new(),
        })?;
    let config_what = format!("config {config_name} in {what}");
    let config_digest = Digest::of_bytes(config_bytes);
    let config_len = config_bytes.len() as u64;
    if let Some(expected) = content_address(&config_name) {
        super::verify_digest(&config_what, config_bytes, &expected)?;
    }
    let config = manifest::parse_config(config_bytes, &config_what)?;
    if config.diff_ids.len() != chosen.layers.len() {
        return Err(SourceError::malformed(
            format!("manifest.json in {what}"),
            format!(
                "{} layers listed but the config has {} diff_ids",
                chosen.layers.len(),
                config.diff_ids.len()
            ),
        )
        .into());
    }
    let mut image_layers = Vec::with_capacity(chosen.layers.len());
    let mut scans: HashMap<Digest, LayerScan> = HashMap::new();
    let mut found = HashMap::new();
    for (path, diff_id) in chosen.layers.iter().zip(&config.diff_ids) {
        let name = member_name(path.as_bytes());
        let target = members.target(&name).to_string();
        let scan = take_scan(&members, &target, what)?;
        if let Some(expected) = content_address(&name) {
            if expected != scan.descriptor.digest {
                return Err(layer_error(
                    what,
                    &target,
                    LayerError::DigestMismatch {
                        digest: expected,
                        actual: scan.descriptor.digest.clone(),
                    },
                ));
            }
        }
        check_diff_id(&scan, diff_id, what, &target)?;
        image_layers.push(scan.descriptor.clone());
        found.insert(scan.descriptor.digest.clone(), target);
        scans.insert(scan.descriptor.digest.clone(), scan);
    }
    let reference = what.to_string();
    Ok(StreamedImage {
        image: ResolvedImage {
            reference,
            // As for a docker-archive: no registry manifest exists; the manifest.json
            // entry identifies this export.
            manifest_digest: Digest::of_bytes(&manifest_bytes),
            manifest_media_type: OCI_MANIFEST.to_string(),
            platform: config.platform.clone(),
            config_digest,
            config_size: config_len,
            config,
            layers: image_layers,
        },
        scans: scans.into_values().collect(),
        members: found,
    })
}

/// The index.json route: a bare OCI layout, resolved as `oci:` resolves a directory.
fn resolve_oci(
    mut members: Members,
    request: &StreamRequest,
) -> Result<StreamedImage, StreamError> {
    let what = request.what.as_str();
    let small = std::mem::take(&mut members.small);
    let layout = LayoutSource::streamed(small, what.to_string(), request.wanted.clone());
    let image = layout.resolve(&request.options.platform, request.options.explicit_platform)?;
    let mut scans: HashMap<Digest, LayerScan> = HashMap::new();
    let mut found = HashMap::new();
    for (descriptor, diff_id) in image.layers.iter().zip(&image.config.diff_ids) {
        let name = LayoutSource::blob_name(&descriptor.digest);
        let mut scan = take_scan(&members, &name, what)?;
        if scan.descriptor.digest != descriptor.digest {
            return Err(layer_error(
                what,
                &name,
                LayerError::DigestMismatch {
                    digest: descriptor.digest.clone(),
                    actual: scan.descriptor.digest.clone(),
                },
            ));
        }
        if scan.compressed_bytes != descriptor.size {
            return Err(layer_error(
                what,
                &name,
                LayerError::SizeMismatch {
                    digest: descriptor.digest.clone(),
                    expected: descriptor.size,
                    actual: scan.compressed_bytes,
                },
            ));
        }
        let declared = layer::compression_of(&descriptor.media_type).ok_or_else(|| {
            layer_error(
                what,
                &name,
                LayerError::UnsupportedMediaType {
                    digest: descriptor.digest.clone(),
                    media_type: descriptor.media_type.clone(),
                },
            )
        })?;
        if declared != scan.compression {
            return Err(layer_error(
                what,
                &name,
                LayerError::Corrupt {
                    digest: descriptor.digest.clone(),
                    compression: declared,
                    reason: format!("the blob holds {} data", scan.compression),
                },
            ));
        }
        check_diff_id(&scan, diff_id, what, &name)?;
        scan.descriptor = descriptor.clone();
        found.insert(descriptor.digest.clone(), name);
        scans.insert(descriptor.digest.clone(), scan);
    }
    Ok(StreamedImage {
        image,
        scans: scans.into_values().collect(),
        members: found,
    })
}

fn take_scan(members: &Members, name: &str, what: &str) -> Result<LayerScan, StreamError> {
    match members.blobs.get(name) {
        Some(Ok(scan)) => Ok(scan.clone()),
        Some(Err(error)) => Err(layer_error(what, name, error.clone())),
        None => Err(SourceError::NotFound {
            what: format!("layer {name} in {what}"),
            hint: if members.small.contains_key(name) {
                " (that member is JSON, not a layer)".into()
            } else {
                String::new()
            },
        }
        .into()),
    }
}

fn check_diff_id(
    scan: &LayerScan,
    expected: &Digest,
    what: &str,
    member: &str,
) -> Result<(), StreamError> {
    if &scan.diff_id != expected {
        return Err(layer_error(
            what,
            member,
            LayerError::DiffIdMismatch {
                digest: scan.descriptor.digest.clone(),
                expected: expected.clone(),
                actual: scan.diff_id.clone(),
            },
        ));
    }
    Ok(())
}

fn layer_error(what: &str, member: &str, source: LayerError) -> StreamError {
    StreamError::Layer {
        what: what.to_string(),
        member: member.to_string(),
        source: Box::new(source),
    }
}

/// Names that are metadata in either save format (kept, never scanned).
fn is_metadata_name(name: &str) -> bool {
    matches!(
        name,
        "manifest.json" | "index.json" | "oci-layout" | "repositories"
    ) || name.ends_with(".json")
        || name.ends_with("/json")
        || name.ends_with("/VERSION")
}

/// Names that only a layer has (classic `<id>/layer.tar`, podman's `<hex>.tar`).
fn is_layer_name(name: &str) -> bool {
    name.ends_with(".tar")
}

fn looks_like_json(bytes: &[u8]) -> bool {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    first == Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// A digest to name a blob by in errors before its own is known: the content address
/// its member name carries, else a hash of the name.
fn label_digest(name: &str) -> Digest {
    let hex = name
        .strip_prefix("blobs/sha256/")
        .or_else(|| name.strip_suffix("/layer.tar"))
        .or_else(|| name.strip_suffix(".tar"))
        .unwrap_or("");
    Digest::parse(&format!("sha256:{hex}")).unwrap_or_else(|_| Digest::of_bytes(name.as_bytes()))
}

fn member_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .trim_start_matches("./")
        .to_string()
}

/// Reads a tar stream up to the data of member `wanted` and returns how long it is;
/// the stream is then positioned at its first byte. For reading a layer of a
/// save stream again; `None` when the stream ends without it.
pub fn seek_member(stream: &mut impl Read, wanted: &str) -> io::Result<Option<u64>> {
    const MAX_EXTENSION: u64 = 1024 * 1024;
    let mut block = [0u8; 512];
    let mut long_name: Option<String> = None;
    loop {
        if !read_block(stream, &mut block)? || block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let header = tar::Header::from_byte_slice(&block);
        let size = header.entry_size()?;
        let padded = size.div_ceil(512) * 512;
        let kind = header.entry_type();
        if kind.is_gnu_longname() || kind.is_pax_local_extensions() {
            if size > MAX_EXTENSION {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "tar extension header over 1 MiB",
                ));
            }
            let mut data = vec![0u8; padded as usize];
            stream.read_exact(&mut data)?;
            data.truncate(size as usize);
            if kind.is_gnu_longname() {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                long_name = Some(member_name(&data[..end]));
            } else {
                for extension in tar::PaxExtensions::new(&data).flatten() {
                    if extension.key() == Ok("path") {
                        long_name = Some(member_name(extension.value_bytes()));
                    }
                }
            }
            continue;
        }
        let name = long_name
            .take()
            .unwrap_or_else(|| member_name(&header.path_bytes()));
        if name == wanted && matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            return Ok(Some(size));
        }
        io::copy(&mut stream.by_ref().take(padded), &mut io::sink())?;
    }
}

fn read_block(stream: &mut impl Read, block: &mut [u8; 512]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < block.len() {
        let n = stream.read(&mut block[filled..])?;
        if n == 0 {
            return if filled == 0 {
                Ok(false)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        filled += n;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names() {
        assert!(is_metadata_name("manifest.json"));
        assert!(is_metadata_name("0123/json"));
        assert!(is_layer_name("0123/layer.tar"));
        assert_eq!(
            crate::fs::resolve_link("a/layer.tar", "../b/layer.tar"),
            "b/layer.tar"
        );
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(label_digest(&format!("blobs/sha256/{hex}")).hex(), hex);
        assert_eq!(label_digest(&format!("{hex}/layer.tar")).hex(), hex);
    }

    #[test]
    fn seeks_to_a_member() {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [("a/json", &b"{}"[..]), ("b/layer.tar", b"layer bytes")] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, data)
                .expect("append");
        }
        let bytes = builder.into_inner().expect("tar");
        let mut stream = &bytes[..];
        assert_eq!(
            seek_member(&mut stream, "b/layer.tar").ok().flatten(),
            Some(11)
        );
        let mut data = vec![0u8; 11];
        stream.read_exact(&mut data).expect("read");
        assert_eq!(&data, b"layer bytes");
        let mut stream = &bytes[..];
        assert_eq!(seek_member(&mut stream, "missing").ok().flatten(), None);
    }
}
