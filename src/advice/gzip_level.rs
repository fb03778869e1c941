//! Which gzip level a stored layer was written at, as closely as this compressor can
//! tell. gzip does not record its level (the header's XFL byte only marks "best" and
//! "fastest"), so the start of the layer is inflated and deflated again at every level,
//! and the level whose output comes closest to the stored bytes wins. Rebuilding at
//! that level keeps a measured saving from being skewed by a compression-level
//! mismatch (level 1 against level 9 moves sizes by 10-20% on typical layers).

use std::io::Write;

use flate2::{Decompress, FlushDecompress, Status};
use serde::Serialize;

/// Compressed bytes of the layer read ahead to judge the level: enough deflate blocks
/// to be representative, small enough to keep memory bounded.
pub const PROBE_COMPRESSED_BYTES: usize = 384 * 1024;
/// Inflated bytes the levels are compared on. Nine deflates of a 2 MB probe took up
/// to 1.2 s on a text-heavy layer another compressor wrote (levels 7-9 the slowest);
/// a quarter of a megabyte already tells neighbouring levels apart.
const SEARCH_LIMIT: usize = 256 * 1024;
/// zlib's default, and what docker/buildkit/containerd (Go's compress/gzip) use.
pub const DEFAULT_LEVEL: u32 = 6;

#[derive(Debug, Clone, Serialize)]
pub struct GzipLevelMatch {
    /// The level the layer is rebuilt at.
    pub level: u32,
    /// Deflate bytes of the stored layer the probe covered (gzip header excluded).
    pub probe_compressed_bytes: u64,
    pub probe_uncompressed_bytes: u64,
    /// What this compressor made of the same data at `level`.
    pub probe_recompressed_bytes: u64,
    /// This compressor at `level` reproduces the stored bytes themselves, not just
    /// their size: the layer was written by the same implementation.
    pub same_compressor: bool,
    /// The probe covered the whole layer, so the comparison is of the full stream.
    pub whole_layer: bool,
    /// What the header's XFL byte says, when it says anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_hint: Option<&'static str>,
}

impl GzipLevelMatch {
    /// How far this compressor's output at `level` is from the stored bytes, in percent.
    pub fn probe_gap_percent(&self) -> f64 {
        if self.probe_compressed_bytes == 0 {
            return 0.0;
        }
        (self.probe_recompressed_bytes as f64 - self.probe_compressed_bytes as f64) * 100.0
            / self.probe_compressed_bytes as f64
    }
}

pub(crate) struct GzipHeader {
    pub(crate) deflate_offset: usize,
    hint: Option<&'static str>,
    /// The level the XFL byte names (9 or 1), tried first.
    hint_level: Option<u32>,
}

/// RFC 1952 member header; `None` when `bytes` does not hold a complete one (the
/// main pass then reports the layer as corrupt with the decoder's own words).
pub(crate) fn parse_header(bytes: &[u8]) -> Option<GzipHeader> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if bytes.len() < 10 || bytes[0] != 0x1f || bytes[1] != 0x8b || bytes[2] != 8 {
        return None;
    }
    let flags = bytes[3];
    let hint = match bytes[8] {
        2 => Some("maximum compression (level 9)"),
        4 => Some("fastest compression (level 1)"),
        _ => None,
    };
    let mut offset = 10usize;
    if flags & FEXTRA != 0 {
        let length = u16::from_le_bytes([*bytes.get(offset)?, *bytes.get(offset + 1)?]);
        offset = offset.checked_add(2 + usize::from(length))?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = bytes.get(offset..)?.iter().position(|b| *b == 0)?;
            offset += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        offset += 2;
    }
    (offset <= bytes.len()).then_some(GzipHeader {
        deflate_offset: offset,
        hint,
        hint_level: match bytes[8] {
            2 => Some(9),
            4 => Some(1),
            _ => None,
        },
    })
}

/// Inflates as much of `deflate` as it holds, up to the probe limit: the output and
/// how many input bytes produced it, and whether the stream ended inside the probe.
fn inflate_prefix(deflate: &[u8], limit: usize) -> (Vec<u8>, u64, bool) {
    let mut inflater = Decompress::new(false);
    let mut output = Vec::with_capacity(limit);
    loop {
        let consumed = inflater.total_in() as usize;
        let produced = output.len();
        let input = deflate.get(consumed..).unwrap_or_default();
        // A decoding error past the first blocks is the main pass's to report; what
        // was inflated before it is still a fair sample.
        let Ok(status) = inflater.decompress_vec(input, &mut output, FlushDecompress::None) else {
            break;
        };
        if status == Status::StreamEnd {
            return (output, inflater.total_in(), true);
        }
        let stalled = inflater.total_in() as usize == consumed && output.len() == produced;
        if stalled || output.len() >= limit {
            break;
        }
    }
    (output, inflater.total_in(), false)
}

/// `data` deflated at `level`, through the same writer path as the gzip sinks that
/// rebuild layers: a one-call deflate ended its blocks elsewhere at level 1 (five
/// bytes apart on 200 kB), which would hide a byte-for-byte match.
fn deflated(data: &[u8], level: u32) -> Option<Vec<u8>> {
    let output = Vec::with_capacity(data.len() / 2 + 1024);
    let mut encoder = flate2::write::DeflateEncoder::new(output, flate2::Compression::new(level));
    encoder.write_all(data).ok()?;
    encoder.finish().ok()
}

#[cfg(test)]
fn deflated_size(data: &[u8], level: u32) -> Option<u64> {
    deflated(data, level).map(|bytes| bytes.len() as u64)
}

struct Candidate {
    level: u32,
    size: u64,
    /// Leading bytes identical to the stored stream's.
    shared: u64,
}

impl Candidate {
    fn of(inflated: &[u8], stored: &[u8], level: u32) -> Option<Self> {
        let bytes = deflated(inflated, level)?;
        let shared = bytes
            .iter()
            .zip(stored)
            .take_while(|(ours, theirs)| ours == theirs)
            .count() as u64;
        Some(Self {
            level,
            size: bytes.len() as u64,
            shared,
        })
    }

    fn gap(&self, consumed: u64) -> u64 {
        self.size.abs_diff(consumed)
    }

    /// Byte for byte the stored stream (up to where the probe cut it): this
    /// compressor at this level wrote the layer. A different level or implementation
    /// diverges within the first block, whose Huffman tables follow from its parse.
    fn reproduces(&self, consumed: u64) -> bool {
        self.shared * 2 >= consumed
    }
}

/// Judges the level from the first bytes of a stored gzip layer. `None` when the probe
/// is not gzip or holds too little to judge; the caller then uses the default level.
pub fn match_level(probe: &[u8]) -> Option<GzipLevelMatch> {
    match_level_within(probe, SEARCH_LIMIT)
}

/// As [`match_level`], inflating at most `limit` bytes (the fuzz target keeps it
/// small to stay fast; the parsing is the same).
pub fn match_level_within(probe: &[u8], limit: usize) -> Option<GzipLevelMatch> {
    let header = parse_header(probe)?;
    let deflate = probe.get(header.deflate_offset..)?;
    // This compressor at the default level reproducing the probe's start byte for
    // byte wrote the layer: no other level would.
    let (small, small_consumed, small_ended) = inflate_prefix(deflate, limit.min(SEARCH_LIMIT));
    let small_stored = deflate.get(..small_consumed as usize)?;
    if small.is_empty() || small_consumed == 0 {
        return None;
    }
    let found = search_levels(&small, small_stored, small_consumed, header.hint_level)?;
    Some(GzipLevelMatch {
        level: found.level,
        probe_compressed_bytes: small_consumed,
        probe_uncompressed_bytes: small.len() as u64,
        probe_recompressed_bytes: found.size,
        same_compressor: found.reproduces(small_consumed),
        whole_layer: small_ended,
        header_hint: header.hint,
    })
}

/// The level closest to the stored bytes, deflating as few levels as it can. The
/// level the header names, then the default, are tried first: one that reproduces
/// the stored bytes (this compressor wrote the layer) ends the search. Otherwise
/// sizes mostly fall as levels rise, so the stored size is bracketed from the
/// default level outwards: four or five deflates, where trying all nine cost half
/// a second per layer on the Debian service image (the slow levels 7-9 every time).
/// A layer another implementation wrote is matched by size only, and sizes are not
/// strictly monotone in the level, so the bracket can settle one level off the
/// closest: the rebuild then says "measured", never "exact".
fn search_levels(
    inflated: &[u8],
    stored: &[u8],
    consumed: u64,
    hint: Option<u32>,
) -> Option<Candidate> {
    let mut tried: Vec<Candidate> = Vec::new();
    for level in hint.into_iter().chain([DEFAULT_LEVEL]) {
        if tried.iter().any(|c| c.level == level) {
            continue;
        }
        let candidate = Candidate::of(inflated, stored, level)?;
        if candidate.reproduces(consumed) {
            return Some(candidate);
        }
        tried.push(candidate);
    }
    let of = |level: u32, tried: &mut Vec<Candidate>| -> Option<(u64, bool)> {
        if let Some(known) = tried.iter().find(|c| c.level == level) {
            return Some((known.size, false));
        }
        let candidate = Candidate::of(inflated, stored, level)?;
        let result = (candidate.size, candidate.reproduces(consumed));
        tried.push(candidate);
        Some(result)
    };
    let (default_size, _) = of(DEFAULT_LEVEL, &mut tried)?;
    // Bracketed: `above` deflates to more than the stored size, `below` to less.
    let (mut above, mut below) = if default_size > consumed {
        let (size, reproduces) = of(9, &mut tried)?;
        if reproduces || size >= consumed {
            return tried.into_iter().find(|c| c.level == 9);
        }
        (DEFAULT_LEVEL, 9)
    } else {
        let (size, reproduces) = of(1, &mut tried)?;
        if reproduces || size <= consumed {
            return tried.into_iter().find(|c| c.level == 1);
        }
        (1, DEFAULT_LEVEL)
    };
    while below.abs_diff(above) > 1 {
        let middle = (above + below) / 2;
        let (size, reproduces) = of(middle, &mut tried)?;
        if reproduces {
            return tried.into_iter().find(|c| c.level == middle);
        }
        if size > consumed {
            above = middle;
        } else {
            below = middle;
        }
    }
    // The closest of those tried; ties go to the default level, then the lowest.
    tried
        .into_iter()
        .min_by_key(|c| (c.gap(consumed), c.level != DEFAULT_LEVEL, c.level))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_text(bytes: usize) -> Vec<u8> {
        // Varied but compressible, like a tar of text files: levels differ on it.
        let mut data = Vec::with_capacity(bytes);
        let mut state: u32 = 12345;
        while data.len() < bytes {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let word = ["alpha", "beta", "gamma", "delta", "layer", "image", "tar"]
                [(state >> 16) as usize % 7];
            data.extend_from_slice(word.as_bytes());
            data.extend_from_slice(format!(" {} ", (state >> 8) % 1000).as_bytes());
        }
        data
    }

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        encoder.write_all(data).expect("in memory");
        encoder.finish().expect("in memory")
    }

    #[test]
    fn finds_the_level_a_whole_small_layer_was_written_at() {
        let data = sample_text(200_000);
        for level in [1, 6, 9] {
            let stored = gzip(&data, level);
            let found = match_level(&stored).expect("judged");
            assert!(found.whole_layer);
            assert!(found.same_compressor, "level {level}: {found:?}");
            // Streaming through GzEncoder and deflating in one call may end blocks a
            // few bytes apart; neighbouring levels differ by far more.
            assert!(
                found.probe_gap_percent().abs() < 0.05,
                "level {level}: {found:?}"
            );
            // Levels that produce identical output are indistinguishable; what matters
            // is that the chosen one reproduces the stored size.
            assert_eq!(
                deflated_size(&data, found.level),
                deflated_size(&data, level)
            );
        }
    }

    #[test]
    fn judges_a_large_layer_from_its_first_megabyte() {
        let data = sample_text(8 * 1024 * 1024);
        let stored = gzip(&data, 1);
        let found = match_level(&stored[..PROBE_COMPRESSED_BYTES]).expect("judged");
        assert!(!found.whole_layer);
        assert!(found.same_compressor, "{found:?}");
        // Judged on the search sample (not the default level): its first part.
        assert!(
            found.probe_uncompressed_bytes >= SEARCH_LIMIT as u64 / 2,
            "{found:?}"
        );
        assert!(found.probe_gap_percent().abs() < 1.0, "{found:?}");
        assert_eq!(
            deflated_size(&data[..1 << 20], found.level),
            deflated_size(&data[..1 << 20], 1)
        );
    }

    #[test]
    fn reads_header_hints_and_skips_optional_fields() {
        let mut stored = vec![0x1f, 0x8b, 8, 8 | 16, 0, 0, 0, 0, 2, 3];
        stored.extend_from_slice(b"name\0comment\0");
        let body = gzip(b"hello hello hello", 9);
        stored.extend_from_slice(&body[10..]);
        let found = match_level(&stored).expect("judged");
        assert_eq!(found.header_hint, Some("maximum compression (level 9)"));
        assert_eq!(found.probe_uncompressed_bytes, 17);
        assert!(match_level(b"not gzip at all").is_none());
        assert!(match_level(&[0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 3, b'x']).is_none());
    }
}
