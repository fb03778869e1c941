//! `apply --to REGISTRY/REPO:TAG`: the staged layout pushed with the user's
//! credentials (found as reading finds them). Blobs go first, the manifest last (for
//! an index: its manifests by digest, then the index), so the tag never names an
//! image with a blob missing. A blob the repository already
//! holds is not sent again; one the source repository on the same registry holds is
//! mounted from it, as docker and crane do, so an untouched base layer costs no
//! upload at all.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::ApplyError;
use crate::digest::Digest;
use crate::image::Progress;
use crate::registry::retry::{retry, RetryPolicy};
use crate::registry::{self, AuthSources, RegistryError, RegistryOptions};
use crate::source::SourceError;

pub(crate) struct Push {
    client: Client,
    reference: Reference,
    auth: RegistryAuth,
    policy: RetryPolicy,
    deadline: Duration,
}

/// How each blob reached the registry.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PushStats {
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub mounted: usize,
    pub present: usize,
}

impl Push {
    pub(crate) async fn connect(
        reference: &Reference,
        options: &RegistryOptions,
    ) -> Result<Self, ApplyError> {
        let host = reference.resolve_registry().to_string();
        let explicit = match (&options.username, &options.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            _ => None,
        };
        let credentials = AuthSources::from_env(explicit)
            .credentials_for(reference.registry())
            .map_err(SourceError::from)?;
        let client = registry::build_push_client(&host, options).map_err(SourceError::from)?;
        Ok(Self {
            client,
            reference: reference.clone(),
            auth: registry::registry_auth(&credentials),
            policy: options.retry,
            deadline: options.connect_timeout.unwrap_or(Duration::from_secs(30))
                + options.read_timeout.unwrap_or(Duration::from_secs(60)),
        })
    }

    fn fail(&self, gave_up: registry::retry::GaveUp, what: &str) -> ApplyError {
        ApplyError::Source(SourceError::from(registry::classify_gave_up(
            gave_up,
            self.reference.registry(),
            what,
        )))
    }

    /// Whether the tag already names a manifest there.
    pub(crate) async fn tag_exists(&self) -> Result<bool, ApplyError> {
        let found = retry(&self.policy, || {
            crate::source::registry::within(
                self.deadline,
                self.client
                    .fetch_manifest_digest(&self.reference, &self.auth),
            )
        })
        .await;
        match found {
            Ok(_) => Ok(true),
            Err(gave_up) => match self.fail(gave_up, &self.reference.whole()) {
                ApplyError::Source(SourceError::Registry(RegistryError::NotFound { .. })) => {
                    Ok(false)
                }
                other => Err(other),
            },
        }
    }

    /// The digest the tag names now.
    pub(crate) async fn tag_digest(&self) -> Result<Digest, ApplyError> {
        let digest = retry(&self.policy, || {
            crate::source::registry::within(
                self.deadline,
                self.client
                    .fetch_manifest_digest(&self.reference, &self.auth),
            )
        })
        .await
        .map_err(|e| self.fail(e, &self.reference.whole()))?;
        Ok(Digest::parse(&digest).map_err(SourceError::from)?)
    }

    /// Asks for push rights before anything is sent: a refusal is one clear error
    /// before any upload.
    pub(crate) async fn authorize(&self) -> Result<(), ApplyError> {
        retry(&self.policy, || {
            crate::source::registry::within(
                self.deadline,
                self.client
                    .auth(&self.reference, &self.auth, RegistryOperation::Push),
            )
        })
        .await
        .map_err(|e| self.fail(e, &self.reference.whole()))?;
        Ok(())
    }

    /// Pushes `blobs` (digest and size, each a file under the layout's
    /// `blobs/sha256/`).
    pub(crate) async fn push_blobs(
        &self,
        layout: &Path,
        blobs: &[(Digest, u64)],
        mount_from: Option<&Reference>,
        concurrency: usize,
        progress: Arc<dyn Progress>,
    ) -> Result<PushStats, ApplyError> {
        progress.phase(
            &format!(
                "pushing {}",
                crate::text::escape_control(&self.reference.whole())
            ),
            blobs.iter().map(|b| b.1).sum(),
        );
        let outcomes: Vec<(Sent, u64)> =
            futures_util::stream::iter(blobs.iter().map(|(digest, size)| {
                let progress = Arc::clone(&progress);
                async move {
                    let sent = self
                        .push_blob(layout, digest, *size, mount_from, progress.as_ref())
                        .await?;
                    Ok::<_, ApplyError>((sent, *size))
                }
            }))
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        let mut stats = PushStats::default();
        for (sent, size) in outcomes {
            match sent {
                Sent::Uploaded => {
                    stats.uploaded += 1;
                    stats.uploaded_bytes += size;
                }
                Sent::Mounted => stats.mounted += 1,
                Sent::Present => stats.present += 1,
            }
        }
        Ok(stats)
    }

    /// Pushes a manifest (or index) by `digest`, or under the tag when `None`.
    pub(crate) async fn push_manifest(
        &self,
        digest: Option<&Digest>,
        manifest: &[u8],
        media_type: &str,
    ) -> Result<(), ApplyError> {
        let reference = match digest {
            Some(digest) => self.reference.clone_with_digest(digest.to_string()),
            None => self.reference.clone(),
        };
        let content_type = media_type
            .parse()
            .map_err(|_| ApplyError::Task(format!("media type {media_type:?} is no header")))?;
        retry(&self.policy, || {
            crate::source::registry::within(
                self.deadline,
                self.client.push_manifest_raw(
                    &reference,
                    manifest.to_vec(),
                    std::clone::Clone::clone(&content_type),
                ),
            )
        })
        .await
        .map_err(|e| self.fail(e, &format!("{} (manifest)", reference.whole())))?;
        Ok(())
    }

    async fn push_blob(
        &self,
        layout: &Path,
        digest: &Digest,
        size: u64,
        mount_from: Option<&Reference>,
        progress: &dyn Progress,
    ) -> Result<Sent, ApplyError> {
        let what = format!("{} (blob {digest})", self.reference.whole());
        let digest_text = digest.to_string();
        let exists = retry(&self.policy, || {
            crate::source::registry::within(
                self.deadline,
                self.client.blob_exists(&self.reference, &digest_text),
            )
        })
        .await
        .map_err(|e| self.fail(e, &what))?;
        if exists {
            progress.advance(size);
            return Ok(Sent::Present);
        }
        if let Some(source) = mount_from {
            // A refused mount (another registry's rules, a blob the source no longer
            // has) only means the blob is sent instead.
            let mounted = crate::source::registry::within(
                self.deadline,
                self.client
                    .mount_blob(&self.reference, source, &digest_text),
            )
            .await;
            if mounted.is_ok() {
                progress.advance(size);
                return Ok(Sent::Mounted);
            }
        }
        let path = layout.join("blobs").join("sha256").join(digest.hex());
        // The whole upload is one request, so its deadline grows with the blob: at
        // least 1 MB/s on top of the usual one.
        let deadline = self.deadline + Duration::from_secs(size / 1_000_000);
        let digest_text = &digest_text;
        retry(&self.policy, || {
            let path = path.clone();
            async move {
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(oci_client::errors::OciDistributionError::IoError)?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
                    .map_err(oci_client::errors::OciDistributionError::IoError);
                crate::source::registry::within(
                    deadline,
                    self.client
                        .push_blob_stream(&self.reference, stream, digest_text, Some(size)),
                )
                .await
            }
        })
        .await
        .map_err(|e| self.fail(e, &what))?;
        progress.advance(size);
        Ok(Sent::Uploaded)
    }
}

enum Sent {
    Uploaded,
    Mounted,
    Present,
}
