//! Retrying what real registries and networks get wrong for a moment: 429 and 5xx
//! answers, refused or reset connections, bodies cut short or stalled. A blob cut
//! mid-transfer is resumed where it stopped with an HTTP `Range` request; the layer
//! pipeline hashes every byte across the pieces, so the digest still covers the whole.

use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::time::Duration;

use oci_client::client::BlobResponse;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::{Client, Reference};
use tokio_util::io::{StreamReader, SyncIoBridge};

/// Attempts and backoff. dockerd retries a failed layer download 5 times.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter (the AWS architecture blog's recommendation);
    /// a 429 waits at least a second, as registries that rate-limit ask for.
    pub fn delay(&self, failures: u32, rate_limited: bool) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(1u32 << failures.min(16))
            .min(self.max_delay);
        let jitter = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let fraction = (jitter % 1000) as f64 / 1000.0;
        let delay = exponential.mul_f64(0.5 + fraction / 2.0);
        if rate_limited {
            delay.max(Duration::from_secs(1))
        } else {
            delay
        }
    }
}

/// The longest `Retry-After` waited out: a registry asking for more is answered with
/// an error that says so, rather than a CI job hanging for it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What the registry asked for in `Retry-After`, when it asked.
pub fn retry_after(error: &OciDistributionError) -> Option<Duration> {
    match error {
        OciDistributionError::RetryAfter { after, .. } => Some(*after),
        _ => None,
    }
}

/// Whether an error is worth another attempt, and whether it was rate limiting.
pub fn transient(error: &OciDistributionError) -> Option<bool> {
    match error {
        OciDistributionError::RetryAfter { error, after } => {
            transient(error).filter(|_| *after <= MAX_RETRY_AFTER)
        }
        OciDistributionError::ServerError { code, .. } => match code {
            429 => Some(true),
            500..=599 => Some(false),
            _ => None,
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes = format!("{:?}", envelope.errors).to_ascii_uppercase();
            if codes.contains("TOOMANYREQUESTS") {
                Some(true)
            } else if codes.contains("UNAVAILABLE") {
                Some(false)
            } else {
                None
            }
        }
        // A certificate the client refuses stays refused: fail at once.
        OciDistributionError::RequestError(e) if super::tls::is_certificate_error(e) => None,
        OciDistributionError::RequestError(e) => {
            (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode())
                .then_some(false)
        }
        OciDistributionError::IoError(_) => Some(false),
        _ => None,
    }
}

/// The last error of a request given up on, and how many times it was tried.
#[derive(Debug)]
pub struct GaveUp {
    pub error: OciDistributionError,
    pub attempts: u32,
}

/// Runs `operation` until it succeeds, fails for good, or runs out of attempts.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut operation: F) -> Result<T, GaveUp>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, OciDistributionError>>,
{
    let mut failures = 0;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) => match transient(&error) {
                Some(rate_limited) if failures + 1 < policy.attempts.max(1) => {
                    let backoff = policy.delay(failures, rate_limited);
                    let wait = retry_after(&error).map_or(backoff, |asked| asked.max(backoff));
                    tokio::time::sleep(wait).await;
                    failures += 1;
                }
                _ => {
                    return Err(GaveUp {
                        error,
                        attempts: failures + 1,
                    })
                }
            },
        }
    }
}

/// A blob as one byte stream that survives cut and stalled transfers: on a read error
/// or a short body it reopens the blob at the offset reached, up to the policy's
/// attempts. Used from a blocking thread (the layer pipeline's), so it drives the
/// async client with the runtime handle it was created under.
pub struct ResumingBlob {
    client: Client,
    reference: Reference,
    descriptor: OciDescriptor,
    size: u64,
    handle: tokio::runtime::Handle,
    policy: RetryPolicy,
    current: Option<Box<dyn Read + Send>>,
    offset: u64,
    failures: u32,
    registry: String,
    deadline: Duration,
}

impl ResumingBlob {
    /// Opens the blob (retrying the request itself) so that a missing blob or refused
    /// credentials fail here, before any layer work starts.
    pub async fn open(
        client: Client,
        reference: Reference,
        descriptor: OciDescriptor,
        size: u64,
        policy: RetryPolicy,
        deadline: Duration,
    ) -> Result<Self, GaveUp> {
        let registry = reference.registry().to_string();
        let first = open_at(&client, &reference, &descriptor, 0, &policy, deadline).await?;
        Ok(Self {
            client,
            reference,
            descriptor,
            size,
            handle: tokio::runtime::Handle::current(),
            policy,
            current: Some(first),
            offset: 0,
            failures: 0,
            registry,
            deadline,
        })
    }

    fn give_up(&self, cause: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!(
                "{}: gave up after {} attempts at byte {} of {}: {cause}",
                self.registry, self.failures, self.offset, self.size
            ),
        )
    }
}

async fn open_at(
    client: &Client,
    reference: &Reference,
    descriptor: &OciDescriptor,
    offset: u64,
    policy: &RetryPolicy,
    deadline: Duration,
) -> Result<Box<dyn Read + Send>, GaveUp> {
    // The answer's head within the deadline; the body is then held to the idle
    // timeout, as a large blob may take long but must keep moving.
    let response = retry(policy, || {
        crate::source::within(
            deadline,
            client.pull_blob_stream_partial(reference, descriptor, offset, None),
        )
    })
    .await?;
    // Asking from byte 0 with a Range header also keeps oci-client from hashing the
    // stream a second time: the pipeline verifies every byte itself.
    let (stream, skip) = match response {
        BlobResponse::Partial(stream) => (stream.stream, 0),
        // A registry that ignores Range sends the whole blob again: skip what we have.
        BlobResponse::Full(stream) => (stream.stream, offset),
    };
    let mut reader: Box<dyn Read + Send> = Box::new(SyncIoBridge::new(StreamReader::new(stream)));
    if skip > 0 {
        let mut discard = reader.take(skip);
        std::io::copy(&mut discard, &mut std::io::sink()).map_err(|e| GaveUp {
            error: OciDistributionError::IoError(e),
            attempts: 1,
        })?;
        reader = discard.into_inner();
    }
    Ok(reader)
}

impl Read for ResumingBlob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.current.is_none() {
                let opened = self.handle.block_on(open_at(
                    &self.client,
                    &self.reference,
                    &self.descriptor,
                    self.offset,
                    &self.policy,
                    self.deadline,
                ));
                match opened {
                    Ok(reader) => self.current = Some(reader),
                    Err(gave_up) => {
                        self.failures += gave_up.attempts;
                        return Err(self.give_up(&gave_up.error.to_string()));
                    }
                }
            }
            let Some(reader) = self.current.as_mut() else {
                continue;
            };
            let cause = match reader.read(buf) {
                Ok(0) if self.offset < self.size => {
                    "the connection closed before the end of the blob".to_string()
                }
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(error) => error.to_string(),
            };
            self.failures += 1;
            self.current = None;
            if self.failures >= self.policy.attempts.max(1) {
                return Err(self.give_up(&cause));
            }
            std::thread::sleep(self.policy.delay(self.failures - 1, false));
        }
    }
}
