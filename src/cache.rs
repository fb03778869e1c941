//! An opt-in cache of registry blobs (`--cache-dir`), laid out like an OCI layout's
//! `blobs/sha256/<hex>`. Only blobs as the registry stores them are kept (compressed
//! layers and configs), never an uncompressed layer.
//!
//! Safe to share between processes without locks: a blob is written to a temporary
//! file of its own and renamed into place only once every byte has been hashed and
//! found to match its digest, so a reader sees a whole blob or none; and every entry
//! is hashed again before use, so one damaged on disk is removed and fetched again
//! rather than trusted.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
#[error("--cache-dir {path}: {source}")]
pub struct CacheError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

#[derive(Debug, Clone)]
pub struct BlobCache {
    blobs: PathBuf,
}

/// Distinguishes the temporary files of one process's concurrent downloads.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl BlobCache {
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|source| CacheError {
            path: dir.to_path_buf(),
            source,
        })?;
        remove_stale_temporaries(&blobs);
        Ok(Self { blobs })
    }

    /// A parsed digest's hex part is 64 hex digits: a safe file name.
    fn entry(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// The cached blob, checked against its size and digest first. An entry that
    /// fails the check is deleted, and the caller fetches the blob again.
    pub fn get(&self, digest: &Digest, size: u64) -> Option<File> {
        let path = self.entry(digest);
        let mut file = File::open(&path).ok()?;
        let intact = file.metadata().is_ok_and(|m| m.len() == size)
            && hash_file(&mut file).is_ok_and(|actual| actual == digest.hex())
            && file.rewind().is_ok();
        if intact {
            Some(file)
        } else {
            // Another process may have replaced it meanwhile with a good copy; losing
            // that is only a refetch.
            let _ = fs::remove_file(&path);
            None
        }
    }

    /// `blob` as it streams past, copied into the cache when (and only when) it ends
    /// with exactly `size` bytes that hash to `digest`. A cache that cannot be written
    /// (full disk, permissions) costs the copy, never the run.
    pub fn tee<R: Read>(&self, digest: &Digest, size: u64, blob: R) -> CachingReader<R> {
        let path = self.entry(digest);
        let temp = {
            let name = format!(
                ".tmp-{}-{}-{}",
                digest.hex(),
                std::process::id(),
                TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let temp_path = self.blobs.join(name);
            let file = File::options()
                .write(true)
                .create_new(true)
                .open(&temp_path)
                .ok();
            file.map(|file| TempEntry {
                file,
                temp_path,
                final_path: path,
            })
        };
        CachingReader {
            inner: blob,
            temp,
            hasher: Sha256::new(),
            bytes: 0,
            passed: 0,
            digest: digest.clone(),
            size,
        }
    }
}

/// A run killed mid-download (SIGKILL, power loss) leaves its temporary file behind;
/// one a day old belongs to no live download.
fn remove_stale_temporaries(blobs: &Path) {
    const STALE: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);
    let Ok(entries) = fs::read_dir(blobs) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(".tmp-")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > STALE));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The file's sha256, in hex.
fn hash_file(file: &mut File) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

struct TempEntry {
    file: File,
    temp_path: PathBuf,
    final_path: PathBuf,
}

pub struct CachingReader<R> {
    inner: R,
    temp: Option<TempEntry>,
    hasher: Sha256,
    /// Bytes written to the temporary entry.
    bytes: u64,
    /// Bytes handed to the reader, cached or not.
    passed: u64,
    digest: Digest,
    size: u64,
}

impl<R> CachingReader<R> {
    fn abandon(&mut self) {
        if let Some(temp) = self.temp.take() {
            drop(temp.file);
            let _ = fs::remove_file(&temp.temp_path);
        }
    }

    fn finish(&mut self) {
        let Some(temp) = self.temp.take() else { return };
        let hash = std::mem::take(&mut self.hasher).finalize();
        let complete = self.bytes == self.size && hex::encode(hash) == self.digest.hex();
        drop(temp.file);
        // rename(2) replaces atomically: a concurrent reader opens the old complete
        // copy or the new one, never a part.
        if !complete || fs::rename(&temp.temp_path, &temp.final_path).is_err() {
            let _ = fs::remove_file(&temp.temp_path);
        }
    }
}

impl<R: Read> Read for CachingReader<R> {
    /// Never reads past the descriptor's size (the rest of an endless body is not
    /// ours), and commits the entry the moment that many bytes have passed.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.size.saturating_sub(self.passed);
        if remaining == 0 {
            self.finish();
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(error) => {
                self.abandon();
                return Err(error);
            }
        };
        if n == 0 {
            self.finish();
            return Ok(0);
        }
        self.passed += n as u64;
        if let Some(temp) = self.temp.as_mut() {
            if temp.file.write_all(&buf[..n]).is_err() {
                self.abandon();
            } else {
                self.hasher.update(&buf[..n]);
                self.bytes += n as u64;
            }
        }
        if self.passed == self.size {
            self.finish();
        }
        Ok(n)
    }
}

impl<R> Drop for CachingReader<R> {
    fn drop(&mut self) {
        // Dropped before its end (an error elsewhere, a cancelled command): no entry.
        self.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(data: &[u8]) -> (Digest, u64) {
        (Digest::of_bytes(data), data.len() as u64)
    }

    #[test]
    fn a_blob_read_to_its_end_is_cached_and_checked_on_the_way_out() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = BlobCache::open(dir.path()).expect("cache");
        let data = b"layer bytes".repeat(1000);
        let (digest, size) = blob(&data);
        assert!(cache.get(&digest, size).is_none());
        let mut copy = Vec::new();
        cache
            .tee(&digest, size, data.as_slice())
            .read_to_end(&mut copy)
            .expect("read");
        assert_eq!(copy, data);
        let mut cached = Vec::new();
        cache
            .get(&digest, size)
            .expect("cached")
            .read_to_end(&mut cached)
            .expect("read");
        assert_eq!(cached, data);

        // Damaged on disk: refused and removed.
        let path = cache.entry(&digest);
        let mut damaged = data.clone();
        damaged[10] ^= 1;
        fs::write(&path, &damaged).expect("write");
        assert!(cache.get(&digest, size).is_none());
        assert!(!path.exists());
    }

    #[test]
    fn temporaries_left_by_a_killed_run_are_cleared_when_a_day_old() {
        let dir = tempfile::tempdir().expect("dir");
        let blobs = dir.path().join("blobs/sha256");
        fs::create_dir_all(&blobs).expect("dirs");
        let old = blobs.join(".tmp-abc-1-0");
        let fresh = blobs.join(".tmp-abc-2-0");
        fs::write(&old, b"partial").expect("write");
        fs::write(&fresh, b"in progress").expect("write");
        let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(172_800);
        File::options()
            .write(true)
            .open(&old)
            .and_then(|f| f.set_modified(two_days_ago))
            .expect("age it");
        BlobCache::open(dir.path()).expect("cache");
        assert!(!old.exists());
        assert!(fresh.exists(), "a live download's file stays");
    }

    #[test]
    fn wrong_partial_or_abandoned_blobs_are_not_cached() {
        let dir = tempfile::tempdir().expect("dir");
        let cache = BlobCache::open(dir.path()).expect("cache");
        let data = b"config".repeat(100);
        let (digest, size) = blob(&data);
        // Different bytes under this digest.
        let other = b"not-it".repeat(100);
        io::copy(
            &mut cache.tee(&digest, other.len() as u64, other.as_slice()),
            &mut io::sink(),
        )
        .expect("read");
        // Half read, then dropped.
        let mut reader = cache.tee(&digest, size, data.as_slice());
        let mut half = vec![0u8; data.len() / 2];
        reader.read_exact(&mut half).expect("read");
        drop(reader);
        assert!(cache.get(&digest, size).is_none());
        let left: Vec<_> = fs::read_dir(dir.path().join("blobs/sha256"))
            .expect("dir")
            .flatten()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
