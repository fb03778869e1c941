//! Content digests: parsing `sha256:<hex>` strings and hashing bytes as they stream past.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    Invalid(String),
    #[error("unsupported digest algorithm in {0:?}: only sha256 is supported")]
    Unsupported(String),
}

/// A validated sha256 content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    pub fn parse(text: &str) -> Result<Self, DigestError> {
        let Some((algorithm, hex)) = text.split_once(':') else {
            return Err(DigestError::Invalid(text.to_string()));
        };
        if algorithm != "sha256" {
            return Err(DigestError::Unsupported(text.to_string()));
        }
        let well_formed = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(DigestError::Invalid(text.to_string()));
        }
        Ok(Self {
            hex: hex.to_string(),
        })
    }

    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self {
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as `docker images` shows them.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Counts and hashes every byte read through it, so verification costs no second pass.
pub struct HashingReader<R> {
    inner: R,
    /// `None` counts without hashing, for a stream whose digest is known to equal
    /// another's (an uncompressed layer's diff_id is its blob digest).
    hasher: Option<Hasher>,
    bytes: u64,
}

enum Hasher {
    Inline(Sha256),
    Background(BackgroundHasher),
}

/// sha256 on a thread of its own: a stream read front to back (a local engine's
/// export, a pipe) is otherwise hashed and walked on one core while the other idles.
struct BackgroundHasher {
    chunks: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    worker: Option<std::thread::JoinHandle<Sha256>>,
}

impl BackgroundHasher {
    fn start() -> Self {
        let (chunks, incoming) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let worker = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                for chunk in incoming {
                    hasher.update(&chunk);
                    let _ = give_back.send(chunk);
                }
                hasher
            })
            .ok();
        Self {
            chunks: Some(chunks),
            spare,
            worker,
        }
    }

    /// Hands bytes to the worker; false when there is no worker (hash inline then).
    fn update(&self, bytes: &[u8]) -> bool {
        let (Some(chunks), Some(_)) = (&self.chunks, &self.worker) else {
            return false;
        };
        let mut chunk = self.spare.try_recv().unwrap_or_default();
        chunk.clear();
        chunk.extend_from_slice(bytes);
        chunks.send(chunk).is_ok()
    }

    fn finish(mut self) -> Option<Sha256> {
        self.chunks = None;
        self.worker.take()?.join().ok()
    }
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Some(Hasher::Inline(Sha256::new())),
            bytes: 0,
        }
    }

    /// As `new`, hashing on a second thread.
    pub fn new_background(inner: R) -> Self {
        Self {
            inner,
            hasher: Some(Hasher::Background(BackgroundHasher::start())),
            bytes: 0,
        }
    }

    pub fn counting_only(inner: R) -> Self {
        Self {
            inner,
            hasher: None,
            bytes: 0,
        }
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Reads whatever is left (trailing bytes the consumer never asked for still count
    /// towards the digest), then returns the digest and byte count.
    pub fn finish(self) -> io::Result<(Digest, u64)> {
        let (digest, bytes) = self.finish_optional()?;
        // A counting-only reader's digest is the empty-input digest; callers that made
        // one know to use the other stream's digest instead.
        Ok((digest.unwrap_or_else(|| Digest::of_bytes(b"")), bytes))
    }

    pub fn finish_optional(mut self) -> io::Result<(Option<Digest>, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let hasher = match self.hasher {
            None => return Ok((None, self.bytes)),
            Some(Hasher::Inline(hasher)) => hasher,
            Some(Hasher::Background(background)) => background
                .finish()
                .ok_or_else(|| io::Error::other("the hashing thread failed"))?,
        };
        let digest = Digest {
            hex: hex::encode(hasher.finalize()),
        };
        Ok((Some(digest), self.bytes))
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match &mut self.hasher {
            Some(Hasher::Inline(hasher)) => hasher.update(&buf[..n]),
            Some(Hasher::Background(background)) if !background.update(&buf[..n]) => {
                return Err(io::Error::other("the hashing thread failed"));
            }
            Some(Hasher::Background(_)) => {}
            None => {}
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            Digest::parse(empty).map(|d| d.to_string()).ok(),
            Some(empty.to_string())
        );
        assert_eq!(Digest::of_bytes(b"").to_string(), empty);
        assert!(matches!(
            Digest::parse("sha256:abc"),
            Err(DigestError::Invalid(_))
        ));
        assert!(matches!(
            Digest::parse("md5:abc"),
            Err(DigestError::Unsupported(_))
        ));
        assert!(Digest::parse(&empty.to_uppercase()).is_err());
    }

    #[test]
    fn hashing_reader_counts_trailing_bytes() {
        let mut reader = HashingReader::new(&b"hello world"[..]);
        let mut first = [0u8; 5];
        reader.read_exact(&mut first).ok();
        let (digest, bytes) = reader.finish().expect("in-memory read");
        assert_eq!(bytes, 11);
        assert_eq!(digest, Digest::of_bytes(b"hello world"));
    }
}
