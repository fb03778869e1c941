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
    hasher: Option<Sha256>,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Some(Sha256::new()),
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
        let digest = self.hasher.map(|hasher| Digest {
            hex: hex::encode(hasher.finalize()),
        });
        Ok((digest, self.bytes))
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
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
