//! Images in an OCI registry.

use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::manifest::{self, ManifestOrIndex, ACCEPTED_MANIFEST_TYPES};
use super::{verify_digest, BlobReader, ResolvedImage, SourceError, MAX_METADATA_BYTES};
use crate::cache::BlobCache;
use crate::digest::Digest;
use crate::registry::retry::{retry, GaveUp, ResumingBlob, RetryPolicy};
use crate::registry::{self, AuthSources, RegistryOptions};
use crate::source::{LayerDescriptor, Platform};

pub struct RegistrySource {
    client: Client,
    reference: Reference,
    auth: RegistryAuth,
    policy: RetryPolicy,
    cache: Option<BlobCache>,
    /// The whole of a small request (token, manifest, config, a blob's first answer)
    /// must be done within this, however slowly a server trickles its bytes.
    deadline: std::time::Duration,
}

impl RegistrySource {
    pub async fn new(reference: Reference, options: &RegistryOptions) -> Result<Self, SourceError> {
        let registry_host = reference.resolve_registry().to_string();
        let explicit = match (&options.username, &options.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            _ => None,
        };
        let credentials = AuthSources::from_env(explicit).credentials_for(reference.registry())?;
        let client = registry::build_client(&registry_host, options)?;
        Ok(Self {
            client,
            reference,
            auth: registry::registry_auth(&credentials),
            policy: options.retry,
            deadline: options
                .connect_timeout
                .unwrap_or(std::time::Duration::from_secs(30))
                + options
                    .read_timeout
                    .unwrap_or(std::time::Duration::from_secs(60)),
            cache: options
                .cache_dir
                .as_deref()
                .map(BlobCache::open)
                .transpose()?,
        })
    }

    fn classify(&self, gave_up: GaveUp, what: &str) -> SourceError {
        registry::classify_gave_up(gave_up, self.reference.registry(), what).into()
    }

    fn blob_what(&self, digest: &str) -> String {
        format!("{} (blob {digest})", self.reference.whole())
    }

    async fn pull_manifest(&self, reference: &Reference) -> Result<(Vec<u8>, Digest), SourceError> {
        let (bytes, digest) = retry(&self.policy, || {
            within(
                self.deadline,
                self.client
                    .pull_manifest_raw(reference, &self.auth, ACCEPTED_MANIFEST_TYPES),
            )
        })
        .await
        .map_err(|e| self.classify(e, &reference.whole()))?;
        let what = format!("manifest {}", reference.whole());
        if bytes.len() as u64 > MAX_METADATA_BYTES {
            return Err(SourceError::TooLarge {
                what,
                size: bytes.len() as u64,
                limit: MAX_METADATA_BYTES,
            });
        }
        let digest = Digest::parse(&digest)?;
        if let Some(expected) = reference.digest() {
            verify_digest(&what, &bytes, &Digest::parse(expected)?)?;
        } else {
            verify_digest(&what, &bytes, &digest)?;
        }
        Ok((bytes.to_vec(), digest))
    }

    /// The entries of the index the reference names, or `None` for a single manifest.
    pub async fn index_entries(&self) -> Result<Option<Vec<manifest::IndexEntry>>, SourceError> {
        let (bytes, _) = self.pull_manifest(&self.reference).await?;
        let what = format!("manifest {}", self.reference.whole());
        match manifest::parse_manifest_or_index(&bytes, None, &what)?.0 {
            ManifestOrIndex::Index(entries) => Ok(Some(entries)),
            ManifestOrIndex::Manifest(_) => Ok(None),
        }
    }

    pub async fn resolve(
        &self,
        platform: &Platform,
        explicit_platform: bool,
    ) -> Result<ResolvedImage, SourceError> {
        let display = self.reference.whole();
        let mut current = self.reference.clone();
        for _ in 0..3 {
            let (bytes, digest) = self.pull_manifest(&current).await?;
            let what = format!("manifest {}", current.whole());
            let (parsed, media_type) = manifest::parse_manifest_or_index(&bytes, None, &what)?;
            match parsed {
                ManifestOrIndex::Index(entries) => {
                    let chosen =
                        manifest::select_platform(&entries, platform, explicit_platform, &display)?;
                    current = self.reference.clone_with_digest(chosen.digest.to_string());
                }
                ManifestOrIndex::Manifest(doc) => {
                    let config_bytes = self
                        .pull_small_blob(&doc.config_digest, doc.config_size, "config")
                        .await?;
                    let config = manifest::parse_config(
                        &config_bytes,
                        &format!("config {}", doc.config_digest),
                    )?;
                    return Ok(ResolvedImage {
                        reference: display,
                        manifest_digest: digest,
                        manifest_media_type: media_type,
                        platform: config.platform.clone(),
                        config_digest: doc.config_digest,
                        config_size: config_bytes.len() as u64,
                        config,
                        layers: doc.layers,
                    });
                }
            }
        }
        Err(SourceError::malformed(
            display,
            "indexes nested more than 3 deep",
        ))
    }

    /// Configs are read through the same resuming reader as layers and verified here,
    /// so a corrupt one reads like any other digest mismatch.
    async fn pull_small_blob(
        &self,
        digest: &Digest,
        size: u64,
        what: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let what = format!("{what} {digest}");
        if size > MAX_METADATA_BYTES {
            return Err(SourceError::TooLarge {
                what,
                size,
                limit: MAX_METADATA_BYTES,
            });
        }
        let descriptor = OciDescriptor {
            digest: digest.to_string(),
            size: size as i64,
            ..Default::default()
        };
        let blob = self.fetch(descriptor, digest, size).await?;
        let read_what = what.clone();
        let read = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut bytes = Vec::with_capacity(size as usize);
            blob.take(size).read_to_end(&mut bytes).map(|_| bytes)
        });
        let bytes = tokio::time::timeout(self.deadline, read)
            .await
            .map_err(|_| {
                SourceError::malformed(
                    &read_what,
                    format!(
                        "not received within {} s (--connect-timeout + --read-timeout)",
                        self.deadline.as_secs()
                    ),
                )
            })?
            .map_err(|e| SourceError::malformed(&read_what, e))?
            .map_err(|e| SourceError::malformed(&read_what, format!("reading it failed: {e}")))?;
        if bytes.len() as u64 > MAX_METADATA_BYTES {
            return Err(SourceError::TooLarge {
                what,
                size: bytes.len() as u64,
                limit: MAX_METADATA_BYTES,
            });
        }
        verify_digest(&what, &bytes, digest)?;
        Ok(bytes)
    }

    /// Streams a layer through a reader that resumes cut transfers; the layer
    /// pipeline hashes every byte itself.
    pub async fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobReader, SourceError> {
        let descriptor = OciDescriptor {
            digest: layer.digest.to_string(),
            size: layer.size as i64,
            media_type: layer.media_type.clone(),
            ..Default::default()
        };
        self.fetch(descriptor, &layer.digest, layer.size).await
    }

    /// The blob from the cache when it holds an intact copy, else from the registry
    /// (copied into the cache on the way through, when there is one).
    async fn fetch(
        &self,
        descriptor: OciDescriptor,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobReader, SourceError> {
        if let Some(cache) = &self.cache {
            let (cache, key) = (cache.clone(), digest.clone());
            // Checking an entry hashes it: disk work, kept off the async threads.
            let cached = tokio::task::spawn_blocking(move || cache.get(&key, size))
                .await
                .ok()
                .flatten();
            if let Some(file) = cached {
                return Ok(Box::new(file));
            }
        }
        let blob = ResumingBlob::open(
            self.client.clone(),
            self.reference.clone(),
            descriptor,
            size,
            self.policy,
            self.deadline,
        )
        .await
        .map_err(|e| self.classify(e, &self.blob_what(&digest.to_string())))?;
        Ok(match &self.cache {
            Some(cache) => Box::new(cache.tee(digest, size, blob)),
            None => Box::new(blob),
        })
    }
}

/// `operation`, failed as a timeout (transient, so retried like one) when it takes
/// longer than `deadline` in all.
pub(crate) async fn within<T>(
    deadline: std::time::Duration,
    operation: impl std::future::Future<Output = Result<T, OciDistributionError>>,
) -> Result<T, OciDistributionError> {
    tokio::time::timeout(deadline, operation)
        .await
        .unwrap_or_else(|_| {
            Err(OciDistributionError::IoError(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no complete answer within {} s (--connect-timeout + --read-timeout)",
                    deadline.as_secs()
                ),
            )))
        })
}
