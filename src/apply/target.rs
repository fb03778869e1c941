//! Where `apply` writes: an OCI layout directory, or a tar of one (`oci-archive:`),
//! or what `docker save` writes (`docker-archive:`: manifest.json beside the same
//! OCI layout, as Docker 25 and later write it, so docker load, podman load and
//! skopeo all read it). An archive is staged as a layout in a hidden directory next
//! to the file, tarred into a temporary file, renamed into place, and the staging
//! directory removed whatever happens.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::writer::TempFile;
use super::ApplyError;
use crate::reference::ImageRef;

/// Where the new image goes.
#[derive(Debug, Clone)]
pub enum Target {
    Layout {
        dir: PathBuf,
        tag: Option<String>,
    },
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    DockerArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// A registry repository and tag, pushed to (`push.rs`).
    Registry {
        reference: oci_client::Reference,
    },
}

/// The layout the image is written into: the target itself, or the staging one.
#[derive(Debug, Clone)]
pub(crate) struct LayoutTarget {
    pub dir: PathBuf,
    pub tag: Option<String>,
}

impl LayoutTarget {
    pub(crate) fn display(&self) -> String {
        ImageRef::OciLayout {
            dir: self.dir.clone(),
            tag: self.tag.clone(),
        }
        .to_string()
    }
}

/// Removes the staging directory when dropped.
pub(crate) struct Staging(PathBuf);

impl Staging {
    /// A new directory of its own in `parent`, named from `prefix`, removed when
    /// dropped.
    pub(crate) fn create_in(parent: &Path, prefix: &str) -> Result<Self, ApplyError> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = parent.join(format!("{prefix}{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| ApplyError::io(&dir, e))?;
        Ok(Self(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, ApplyError> {
        match ImageRef::parse(text) {
            Ok(ImageRef::OciLayout { dir, tag }) => Ok(Target::Layout { dir, tag }),
            Ok(ImageRef::OciArchive { file, reference }) => {
                Ok(Target::OciArchive { file, reference })
            }
            Ok(ImageRef::DockerArchive { file, reference }) => {
                let reference = match reference {
                    Some(r) if r.contains('@') || r.starts_with('@') => {
                        return Err(ApplyError::Refused(format!(
                            "--to {}: a docker-archive is tagged by name:tag, not by digest or index",
                            crate::text::escape_control(text)
                        )))
                    }
                    // docker's rule: a name without a tag is name:latest.
                    Some(r) if !r.rsplit('/').next().unwrap_or("").contains(':') => {
                        Some(format!("{r}:latest"))
                    }
                    other => other,
                };
                Ok(Target::DockerArchive { file, reference })
            }
            Ok(ImageRef::Registry(reference)) => {
                if reference.digest().is_some() {
                    return Err(ApplyError::Refused(format!(
                        "--to {}: a registry target is named by tag; the new image's digest is known only once it is written",
                        crate::text::escape_control(text)
                    )));
                }
                Ok(Target::Registry { reference })
            }
            Ok(_) => Err(ApplyError::NotYet(format!(
                "--to {}: writes oci:DIR[:TAG], oci-archive:FILE[:REF], docker-archive:FILE[:REF] and REGISTRY/REPO:TAG; loading into an engine",
                crate::text::escape_control(text)
            ))),
            Err(e) => Err(ApplyError::Refused(format!("--to: {e}"))),
        }
    }

    pub(crate) fn display(&self) -> String {
        self.image_ref().to_string()
    }

    /// The target as an image reference, to read it back.
    pub(crate) fn image_ref(&self) -> ImageRef {
        match self {
            Target::Layout { dir, tag } => ImageRef::OciLayout {
                dir: dir.clone(),
                tag: tag.clone(),
            },
            Target::OciArchive { file, reference } => ImageRef::OciArchive {
                file: file.clone(),
                reference: reference.clone(),
            },
            Target::DockerArchive { file, reference } => ImageRef::DockerArchive {
                file: file.clone(),
                reference: reference.clone(),
            },
            Target::Registry { reference } => ImageRef::Registry(reference.clone()),
        }
    }

    fn archive(&self) -> Option<(&Path, &Option<String>)> {
        match self {
            Target::Layout { .. } | Target::Registry { .. } => None,
            Target::OciArchive { file, reference } | Target::DockerArchive { file, reference } => {
                Some((file, reference))
            }
        }
    }

    /// Refuses an archive target that would lose data: the source file itself, a
    /// file already there (without `--force`), a directory.
    pub(crate) fn check_archive(&self, image: &ImageRef, force: bool) -> Result<(), ApplyError> {
        let Some((file, _)) = self.archive() else {
            return Ok(());
        };
        let shown = crate::text::escape_control(&file.display().to_string()).into_owned();
        let source = match image {
            ImageRef::OciArchive { file, .. } | ImageRef::DockerArchive { file, .. } => Some(file),
            _ => None,
        };
        if let Some(source) = source {
            if let (Ok(a), Ok(b)) = (source.canonicalize(), file.canonicalize()) {
                if a == b {
                    return Err(ApplyError::Refused(format!(
                        "--to {shown}: that is the source archive; apply never modifies its source"
                    )));
                }
            }
        }
        match std::fs::metadata(file) {
            Ok(m) if m.is_dir() => Err(ApplyError::Refused(format!(
                "--to {shown}: a directory; an archive target is a file"
            ))),
            Ok(_) if !force => Err(ApplyError::Refused(format!(
                "--to {shown}: the file already exists (--force replaces it)"
            ))),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ApplyError::io(file, e)),
        }
    }

    /// The layout to write into: the target's own, or a staging one beside the
    /// archive (removed when the guard drops).
    pub(crate) fn layout(&self) -> Result<(LayoutTarget, Option<Staging>), ApplyError> {
        match self {
            Target::Layout { dir, tag } => Ok((
                LayoutTarget {
                    dir: dir.clone(),
                    tag: tag.clone(),
                },
                None,
            )),
            Target::OciArchive { file, reference } | Target::DockerArchive { file, reference } => {
                let parent = match file.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image".into());
                let dir = parent.join(format!(".{name}.ballast-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).map_err(|e| ApplyError::io(&dir, e))?;
                let staging = Staging(dir.clone());
                // A docker-archive's OCI side names the image too: podman loads that
                // side, and takes the name from it.
                Ok((
                    LayoutTarget {
                        dir,
                        tag: reference.clone(),
                    },
                    Some(staging),
                ))
            }
            // Staged where temporary files go; only the compressed blobs, as they
            // will be pushed, are ever on disk.
            Target::Registry { reference } => {
                let dir =
                    std::env::temp_dir().join(format!("ballast-apply-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).map_err(|e| ApplyError::io(&dir, e))?;
                let staging = Staging(dir.clone());
                Ok((
                    LayoutTarget {
                        dir,
                        tag: reference.tag().map(str::to_string),
                    },
                    Some(staging),
                ))
            }
        }
    }

    /// Turns the staged layout into the archive, atomically. `image`: the config and
    /// layers a docker-archive's manifest.json names (it holds one image).
    pub(crate) fn export(
        &self,
        layout: &LayoutTarget,
        image: Option<(&crate::digest::Digest, &[crate::digest::Digest])>,
    ) -> Result<(), ApplyError> {
        let Some((file, reference)) = self.archive() else {
            return Ok(());
        };
        let parent = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut temp = TempFile::create(&parent)?;
        let out = temp.take_file()?;
        let mut builder = tar::Builder::new(BufWriter::with_capacity(256 * 1024, out));
        let fail = |e: io::Error| ApplyError::io(file, e);
        let append_bytes = |builder: &mut tar::Builder<_>, name: &str, bytes: &[u8]| {
            let mut header = header_for(bytes.len() as u64, false);
            builder.append_data(&mut header, name, bytes)
        };
        if let Target::DockerArchive { .. } = self {
            let Some((config_digest, layers)) = image else {
                return Err(ApplyError::Task(
                    "a docker-archive holds one image, and none was given".into(),
                ));
            };
            let manifest = json!([{
                "Config": format!("blobs/sha256/{}", config_digest.hex()),
                "RepoTags": reference.iter().collect::<Vec<_>>(),
                "Layers": layers
                    .iter()
                    .map(|d| format!("blobs/sha256/{}", d.hex()))
                    .collect::<Vec<_>>(),
            }]);
            let bytes = serde_json::to_vec(&manifest)
                .map_err(|e| ApplyError::Task(format!("serialising manifest.json: {e}")))?;
            append_bytes(&mut builder, "manifest.json", &bytes).map_err(fail)?;
        }
        for name in ["oci-layout", "index.json"] {
            let bytes = std::fs::read(layout.dir.join(name))
                .map_err(|e| ApplyError::io(&layout.dir.join(name), e))?;
            append_bytes(&mut builder, name, &bytes).map_err(fail)?;
        }
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut header = header_for(0, true);
            builder
                .append_data(&mut header, dir, io::empty())
                .map_err(fail)?;
        }
        let blobs = layout.dir.join("blobs").join("sha256");
        let mut names: Vec<String> = std::fs::read_dir(&blobs)
            .map_err(|e| ApplyError::io(&blobs, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in names {
            let path = blobs.join(&name);
            let blob = std::fs::File::open(&path).map_err(|e| ApplyError::io(&path, e))?;
            let size = blob.metadata().map_err(|e| ApplyError::io(&path, e))?.len();
            let mut header = header_for(size, false);
            // Each blob is hashed again as it goes in: the archive holds what the
            // layout's read-back verified, or the export fails.
            let mut hashed = crate::digest::HashingReader::new(blob);
            builder
                .append_data(&mut header, format!("blobs/sha256/{name}"), &mut hashed)
                .map_err(fail)?;
            let (digest, _) = hashed.finish().map_err(|e| ApplyError::io(&path, e))?;
            if digest.hex() != name {
                return Err(ApplyError::Verify(format!(
                    "{} hashes to {digest} as it is archived",
                    path.display()
                )));
            }
        }
        let mut buffered = builder.into_inner().map_err(fail)?;
        buffered.flush().map_err(fail)?;
        buffered
            .into_inner()
            .map_err(|e| ApplyError::io(file, e.into_error()))?;
        temp.persist(file)
    }
}

/// A header that says nothing about who made the archive or when: the same image
/// gives the same archive.
fn header_for(size: u64, dir: bool) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(if dir { 0o755 } else { 0o644 });
    header.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    header
}
