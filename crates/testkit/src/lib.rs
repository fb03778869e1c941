//! Assembling OCI images from files, for ballast's tests, examples and demo: the
//! sample images, the test fixtures (hostile ones included), layouts, `docker save`
//! archives and pushes to a registry. A dev-only crate: it shells out to go, rustc
//! and gcc, which the product never does.

pub mod samples;

/// The layer encoder lives in ballast (advice and calibration measure recompressed
/// layers with it); re-exported so fixtures build blobs exactly as ballast measures.
pub use ballast::layer::compress;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde_json::json;

use ballast::digest::Digest;
use ballast::layer::Compression;
use ballast::source::manifest::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use ballast::source::Platform;

/// One tar entry of a layer being built.
#[derive(Debug, Clone)]
pub enum Item {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    /// `.wh.NAME` for `path`.
    Whiteout {
        path: String,
    },
    /// `.wh..wh..opq` in `dir`.
    Opaque {
        dir: String,
    },
    /// A raw header path, for hostile fixtures (`../x`, `/abs`).
    RawFile {
        path: String,
        data: Vec<u8>,
    },
}

impl Item {
    pub fn file(path: &str, data: impl Into<Vec<u8>>) -> Self {
        Item::File {
            path: path.into(),
            data: data.into(),
            mode: 0o644,
        }
    }

    pub fn executable(path: &str, data: impl Into<Vec<u8>>) -> Self {
        Item::File {
            path: path.into(),
            data: data.into(),
            mode: 0o755,
        }
    }

    pub fn dir(path: &str) -> Self {
        Item::Dir { path: path.into() }
    }
}

#[derive(Debug, Clone)]
pub struct LayerSpec {
    pub items: Vec<Item>,
    pub compression: Compression,
    pub created_by: String,
    /// gzip/zstd level; `None` for the library default.
    pub level: Option<i32>,
    /// Compress with this program (tar on stdin, blob on stdout) instead of the
    /// library, to build a layer as another tool would (e.g. `gzip -9 -n`).
    pub compressor: Option<Vec<String>>,
}

impl LayerSpec {
    pub fn new(created_by: &str, items: Vec<Item>) -> Self {
        Self {
            items,
            compression: Compression::Gzip,
            created_by: created_by.into(),
            level: None,
            compressor: None,
        }
    }

    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
}

#[derive(Debug, Clone)]
pub struct BuiltLayer {
    pub blob: Vec<u8>,
    pub digest: Digest,
    pub diff_id: Digest,
    pub media_type: String,
}

/// Writes a layer's tar stream, then compresses it.
pub fn build_layer(spec: &LayerSpec, docker_media_types: bool) -> io::Result<BuiltLayer> {
    let tar = tar_bytes(&spec.items)?;
    let diff_id = Digest::of_bytes(&tar);
    let blob = match &spec.compressor {
        Some(command) => compress_with(command, &tar)?,
        None => compress(&tar, spec.compression, spec.level)?,
    };
    let media_type = match (spec.compression, docker_media_types) {
        (Compression::None, false) => "application/vnd.oci.image.layer.v1.tar",
        (Compression::Gzip, false) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (Compression::Zstd, _) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (Compression::None, true) => "application/vnd.docker.image.rootfs.diff.tar",
        (Compression::Gzip, true) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
    };
    Ok(BuiltLayer {
        digest: Digest::of_bytes(&blob),
        blob,
        diff_id,
        media_type: media_type.to_string(),
    })
}

fn compress_with(command: &[String], data: &[u8]) -> io::Result<Vec<u8>> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty compressor command"))?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("compressor stdin"))?;
    // Written from a thread: a compressor that fills its stdout pipe before reading
    // all of stdin would otherwise deadlock against us.
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| io::Error::other("compressor writer panicked"))??;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{program} exited with {}",
            output.status
        )));
    }
    Ok(output.stdout)
}

pub fn tar_bytes(items: &[Item]) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for item in items {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        match item {
            Item::File { path, data, mode } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_slice())?;
            }
            Item::Dir { path } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), io::empty())?;
            }
            Item::Symlink { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target)?;
            }
            Item::Hardlink { path, target } => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o644);
                header.set_size(0);
                builder.append_link(&mut header, path, target)?;
            }
            Item::Whiteout { path } => {
                let whiteout = match path.rsplit_once('/') {
                    Some((dir, name)) => format!("{dir}/.wh.{name}"),
                    None => format!(".wh.{path}"),
                };
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(0);
                builder.append_data(&mut header, whiteout, io::empty())?;
            }
            Item::Opaque { dir } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(0);
                builder.append_data(&mut header, format!("{dir}/.wh..wh..opq"), io::empty())?;
            }
            Item::RawFile { path, data } => {
                // `append_data` refuses `..` and absolute paths, which is the point of
                // this item: write the name bytes directly.
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                let name = path.as_bytes();
                let gnu = header
                    .as_gnu_mut()
                    .ok_or_else(|| io::Error::other("not a GNU header"))?;
                if name.len() > gnu.name.len() {
                    return Err(io::Error::other("raw path longer than 100 bytes"));
                }
                gnu.name[..name.len()].copy_from_slice(name);
                header.set_cksum();
                builder.append(&header, data.as_slice())?;
            }
        }
    }
    builder.into_inner()
}

/// An image being put together: layers first, then config and manifest.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub platform: Platform,
    pub layers: Vec<LayerSpec>,
    /// Extra history entries with `empty_layer: true`, inserted after the layer at
    /// the given index (ENV, CMD and friends).
    pub empty_history: Vec<(usize, String)>,
    pub entrypoint: Vec<String>,
    pub user: Option<String>,
    /// Docker v2 schema 2 media types instead of OCI ones.
    pub docker_media_types: bool,
}

impl ImageSpec {
    pub fn new(layers: Vec<LayerSpec>) -> Self {
        Self {
            platform: Platform::default(),
            layers,
            empty_history: Vec::new(),
            entrypoint: Vec::new(),
            user: None,
            docker_media_types: false,
        }
    }

    pub fn build(&self) -> io::Result<BuiltImage> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for spec in &self.layers {
            layers.push(build_layer(spec, self.docker_media_types)?);
        }
        self.assemble(layers)
    }

    /// Config and manifest around layers built elsewhere.
    pub fn assemble(&self, layers: Vec<BuiltLayer>) -> io::Result<BuiltImage> {
        let mut history = Vec::new();
        for (index, spec) in self.layers.iter().enumerate() {
            history.push(json!({"created": "2026-01-01T00:00:00Z", "created_by": spec.created_by}));
            for (after, line) in &self.empty_history {
                if *after == index {
                    history.push(json!({"created": "2026-01-01T00:00:00Z", "created_by": line, "empty_layer": true}));
                }
            }
        }
        let mut platform =
            json!({"architecture": self.platform.architecture, "os": self.platform.os});
        if let Some(variant) = &self.platform.variant {
            platform["variant"] = json!(variant);
        }
        let mut config = platform.clone();
        config["created"] = json!("2026-01-01T00:00:00Z");
        config["config"] = json!({
            "Entrypoint": if self.entrypoint.is_empty() { serde_json::Value::Null } else { json!(self.entrypoint) },
            "User": self.user.clone().unwrap_or_default(),
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        });
        config["rootfs"] = json!({"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()});
        config["history"] = json!(history);
        let config_bytes = serde_json::to_vec(&config).map_err(io::Error::other)?;
        let config_digest = Digest::of_bytes(&config_bytes);
        let (manifest_type, config_type) = if self.docker_media_types {
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
            )
        } else {
            (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json")
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest.to_string(), "size": config_bytes.len()},
            "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.blob.len()})).collect::<Vec<_>>(),
        });
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
        Ok(BuiltImage {
            platform: self.platform.clone(),
            manifest_digest: Digest::of_bytes(&manifest_bytes),
            manifest: manifest_bytes,
            manifest_media_type: manifest_type.to_string(),
            config_digest,
            config: config_bytes,
            layers,
        })
    }
}

#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub platform: Platform,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub layers: Vec<BuiltLayer>,
}

impl BuiltImage {
    pub fn compressed_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.blob.len() as u64).sum()
    }

    /// Every blob by digest: config and layers.
    pub fn blobs(&self) -> BTreeMap<Digest, &[u8]> {
        let mut blobs: BTreeMap<Digest, &[u8]> = BTreeMap::new();
        blobs.insert(self.config_digest.clone(), &self.config);
        for layer in &self.layers {
            blobs.insert(layer.digest.clone(), &layer.blob);
        }
        blobs
    }
}

/// An image index over several platform images.
pub fn index_bytes(images: &[&BuiltImage]) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|image| {
            let mut platform =
                json!({"architecture": image.platform.architecture, "os": image.platform.os});
            if let Some(variant) = &image.platform.variant {
                platform["variant"] = json!(variant);
            }
            json!({
                "mediaType": image.manifest_media_type,
                "digest": image.manifest_digest.to_string(),
                "size": image.manifest.len(),
                "platform": platform,
            })
        })
        .collect();
    serde_json::to_vec_pretty(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
    )
    .unwrap_or_default()
}

/// Writes an OCI image layout; `tag` becomes the `org.opencontainers.image.ref.name`.
/// Several images make an index.json with one entry each.
pub fn write_oci_layout(dir: &Path, images: &[(&BuiltImage, Option<&str>)]) -> io::Result<()> {
    let blobs_dir = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs_dir)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut entries = Vec::new();
    for (image, tag) in images {
        for (digest, bytes) in image.blobs() {
            std::fs::write(blobs_dir.join(digest.hex()), bytes)?;
        }
        std::fs::write(blobs_dir.join(image.manifest_digest.hex()), &image.manifest)?;
        let mut entry = json!({
            "mediaType": image.manifest_media_type,
            "digest": image.manifest_digest.to_string(),
            "size": image.manifest.len(),
            "platform": {"architecture": image.platform.architecture, "os": image.platform.os},
        });
        if let Some(tag) = tag {
            entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        }
        entries.push(entry);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec_pretty(&index).map_err(io::Error::other)?,
    )
}

/// Writes a `docker save` tarball in the classic layout (`<id>/layer.tar`,
/// `<config-hex>.json`, `manifest.json`) with uncompressed layers, as docker does.
pub fn write_docker_archive(file: &Path, image: &BuiltImage, repo_tag: &str) -> io::Result<()> {
    let mut builder = tar::Builder::new(std::fs::File::create(file)?);
    let mut append = |name: &str, data: &[u8]| -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        builder.append_data(&mut header, name, data)
    };
    let config_name = format!("{}.json", image.config_digest.hex());
    append(&config_name, &image.config)?;
    let mut layer_paths = Vec::new();
    for layer in &image.layers {
        let tar = decompress(&layer.blob, &layer.media_type)?;
        let path = format!("{}/layer.tar", layer.diff_id.hex());
        append(&path, &tar)?;
        layer_paths.push(path);
    }
    let manifest = json!([{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_paths}]);
    append(
        "manifest.json",
        &serde_json::to_vec(&manifest).map_err(io::Error::other)?,
    )?;
    builder.into_inner()?.flush()
}

fn decompress(blob: &[u8], media_type: &str) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    match ballast::layer::compression_of(media_type) {
        Some(Compression::Gzip) => {
            flate2::read::MultiGzDecoder::new(blob).read_to_end(&mut out)?;
        }
        Some(Compression::Zstd) => {
            out = zstd::stream::decode_all(blob)?;
        }
        _ => out = blob.to_vec(),
    }
    Ok(out)
}

/// Pushes an image (and, when given several platform images, an index over them) to a
/// registry under `reference`'s tag.
pub async fn push(
    client: &oci_client::Client,
    reference: &oci_client::Reference,
    images: &[&BuiltImage],
) -> Result<(), oci_client::errors::OciDistributionError> {
    for image in images {
        for (digest, bytes) in image.blobs() {
            client
                .push_blob(reference, bytes.to_vec(), &digest.to_string())
                .await?;
        }
    }
    let content_type = |media_type: &str| {
        http::HeaderValue::from_str(media_type).map_err(|e| {
            oci_client::errors::OciDistributionError::GenericError(Some(e.to_string()))
        })
    };
    if let [image] = images {
        client
            .push_manifest_raw(
                reference,
                image.manifest.clone(),
                content_type(&image.manifest_media_type)?,
            )
            .await?;
        return Ok(());
    }
    for image in images {
        let by_digest = reference.clone_with_digest(image.manifest_digest.to_string());
        client
            .push_manifest_raw(
                &by_digest,
                image.manifest.clone(),
                content_type(&image.manifest_media_type)?,
            )
            .await?;
    }
    client
        .push_manifest_raw(reference, index_bytes(images), content_type(OCI_INDEX)?)
        .await?;
    Ok(())
}
