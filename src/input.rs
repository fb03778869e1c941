//! Files a user or an image points ballast at (manifests and blobs of a layout, a
//! baseline report, ballast.toml, pricing tables, credentials, certificates): regular
//! files only, so a FIFO cannot hang a run and `/dev/zero` cannot fill memory, and
//! read no further than a limit fixed before reading.

use std::io::{self, Read};
use std::path::Path;

/// Refuses what is not a regular file; `metadata` follows symlinks, so a link to a
/// device or a FIFO is refused before anything is opened.
pub fn check_regular(path: &Path) -> io::Result<u64> {
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a directory, pipe or device is never read)",
        ));
    }
    Ok(metadata.len())
}

/// The whole file, at most `limit` bytes of it; a longer one is refused.
pub fn read_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let size = check_regular(path)?;
    let too_large = |size: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{size} bytes, more than the {limit}-byte limit for this file"),
        )
    };
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// As `read_capped`, as UTF-8 text.
pub fn read_text_capped(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_capped(path, limit)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()))
}

/// Limits for the small files users hand ballast.
pub const CONFIG_LIMIT: u64 = 4 * 1024 * 1024;
/// A saved `inspect --format json`: large for an image with thousands of binaries,
/// never near this.
pub const BASELINE_LIMIT: u64 = 64 * 1024 * 1024;
