//! Measuring a change to a large gzip layer without recompressing all of it.
//!
//! deflate looks back at most 32 KiB, so two tar streams that differ only in some
//! entries compress alike, but for block boundaries, once both have seen 32 KiB of the
//! same bytes again. The rebuild therefore compresses only the *stretches* around
//! changed entries: each starts from the 32 KiB of the layer before it (fed to the
//! compressor and flushed, so the first changed bytes see the window they see in the
//! real stream) and ends after [`QUIET_BYTES`] of unchanged entries. Everything
//! between stretches is the same in every variant and cancels out of the difference.
//!
//! What the original costs over a stretch is read two ways:
//! - *stored*: for a variant that leaves files out, the compressed bytes the stretch
//!   takes in the blob itself (`inflate::PositionedGzDecoder` knows them), against the
//!   variant's own stretch compressed here. Only the variant's kept bytes are
//!   compressed, so dropping 200 MB of a base layer costs the compression of what stays.
//! - *compressed*: for a variant that rewrites a file (a strip), the original's stretch
//!   is compressed here too and the variant forks that compressor at the rewritten
//!   entry (miniz_oxide's `CompressorOxide` is `Clone`), so the two differ only by the
//!   rewrite, not by a compressor that is not the one that built the layer.
//!
//! A variant that first leaves files out and later, in the same stretch, rewrites one
//! (the combination of every suggestion) stays *stored*: its rewrite is then priced
//! against the stored compressor, within the gap between the two (`gzip_level`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush,
};

/// deflate's window: what a changed entry can reach back into.
const WINDOW_BYTES: usize = 32 * 1024;
/// Unchanged bytes after the last changed entry before a stretch ends: twice the
/// window, so matches that reached into the changed bytes are paid for in the
/// stretch and the variants' windows are the original's again.
pub const QUIET_BYTES: u64 = 2 * WINDOW_BYTES as u64;

struct Deflate {
    state: Box<CompressorOxide>,
    out: u64,
    fed: u64,
}

impl Deflate {
    fn new(level: u32) -> Self {
        let flags = create_comp_flags_from_zip_params(level.min(10) as i32, -15, 0);
        Self {
            state: Box::new(CompressorOxide::new(flags)),
            out: 0,
            fed: 0,
        }
    }

    /// A compressor that has seen `context` (and flushed it): what follows is
    /// compressed as if it came after it in one stream.
    fn after(level: u32, context: &[u8]) -> Self {
        let mut deflate = Self::new(level);
        deflate.feed(context, TDEFLFlush::Sync);
        deflate.fed = 0;
        deflate
    }

    fn feed(&mut self, mut bytes: &[u8], flush: TDEFLFlush) {
        self.fed += bytes.len() as u64;
        loop {
            let mut produced = 0u64;
            let (status, consumed) = compress_to_output(&mut self.state, bytes, flush, |out| {
                produced += out.len() as u64;
                true
            });
            self.out += produced;
            bytes = bytes.get(consumed..).unwrap_or_default();
            // The callback takes everything, so one call consumes all input; the loop
            // only guards against a compressor that returns early.
            if bytes.is_empty() || consumed == 0 || (status as i32) < 0 {
                return;
            }
        }
    }
}

/// What a variant does with the entry about to be written. Two rewrites with the
/// same key write the same bytes (the same stripped binary, the same replacement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Keep,
    Leave,
    Rewrite(usize),
}

#[derive(Clone, Copy)]
enum Pricing {
    /// Forked from the original's compressor: priced against it.
    Compressed,
    /// Priced against the stored bytes from `from` (a position in the blob) on;
    /// `start` is where this compressor's own output began.
    Stored { start: u64, from: u64 },
}

/// Variants inside a stretch that have written the same bytes since they diverged
/// (a suggestion and the combination of all of them, typically): one compressor for
/// all of them, copied when their entries part.
struct Group {
    members: Vec<usize>,
    deflate: Deflate,
    pricing: Pricing,
    /// Bytes of entries the group keeps, since its last changed entry.
    quiet: u64,
}

impl Group {
    fn copy(&self, members: Vec<usize>) -> Group {
        Group {
            members,
            deflate: Deflate {
                state: self.deflate.state.clone(),
                out: self.deflate.out,
                fed: 0,
            },
            pricing: self.pricing,
            quiet: self.quiet,
        }
    }
}

/// The last [`WINDOW_BYTES`] of a stream, as a ring.
struct Window {
    ring: Vec<u8>,
    end: usize,
    full: bool,
}

impl Window {
    fn new() -> Self {
        Self {
            ring: vec![0; WINDOW_BYTES],
            end: 0,
            full: false,
        }
    }

    fn contents(&self) -> Vec<u8> {
        if self.full {
            let mut bytes = self.ring[self.end..].to_vec();
            bytes.extend_from_slice(&self.ring[..self.end]);
            bytes
        } else {
            self.ring[..self.end].to_vec()
        }
    }

    fn remember(&mut self, mut bytes: &[u8]) {
        if bytes.len() >= WINDOW_BYTES {
            bytes = &bytes[bytes.len() - WINDOW_BYTES..];
        }
        while !bytes.is_empty() {
            let room = WINDOW_BYTES - self.end;
            let take = room.min(bytes.len());
            self.ring[self.end..self.end + take].copy_from_slice(&bytes[..take]);
            self.end += take;
            if self.end == WINDOW_BYTES {
                self.end = 0;
                self.full = true;
            }
            bytes = &bytes[take..];
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SegmentStats {
    pub stretches: u64,
    /// Bytes fed to a compressor (forks included): the work done.
    pub recompressed_bytes: u64,
}

/// The stretch bookkeeping shared by every output's writer. Each variant's stretch
/// is its own: it opens at the variant's first changed entry and closes once the
/// variant has kept [`QUIET_BYTES`] since its last one, whatever the other variants
/// do, so a variant that drops most of a layer never makes another one compress it.
pub struct Segmenter {
    level: u32,
    /// The stored-byte position of the blob being read, when it can be known.
    position: Option<Rc<Cell<u64>>>,
    /// The position where the entry being written started in the blob.
    entry_start: u64,
    /// The last [`WINDOW_BYTES`] of the original.
    context: Window,
    /// The original, compressed here while a variant is forked from it.
    baseline: Option<Deflate>,
    groups: Vec<Group>,
    /// Per variant: its group, and whether it is the member whose writes feed it.
    group_of: Vec<Option<usize>>,
    /// What each variant does with the entry being written.
    current: Vec<Change>,
    /// Per variant: compressed bytes of the original's stretches minus its own.
    saved: Vec<i64>,
    stats: SegmentStats,
}

pub type Shared = Rc<RefCell<Segmenter>>;

impl Segmenter {
    pub fn new(level: u32, variants: usize, position: Option<Rc<Cell<u64>>>) -> Self {
        Self {
            level,
            position,
            entry_start: 0,
            context: Window::new(),
            baseline: None,
            groups: Vec::new(),
            group_of: vec![None; variants],
            current: vec![Change::Keep; variants],
            saved: vec![0; variants],
            stats: SegmentStats::default(),
        }
    }

    fn regroup(&mut self) {
        self.group_of.iter_mut().for_each(|g| *g = None);
        for (index, group) in self.groups.iter().enumerate() {
            for member in &group.members {
                self.group_of[*member] = Some(index);
            }
        }
    }

    /// Called before an entry is written, with what each variant does with it.
    pub fn begin_entry(&mut self, changes: &[Change]) {
        self.close_quiet(self.entry_start);
        self.current.clear();
        self.current.extend_from_slice(changes);
        self.current.resize(self.saved.len(), Change::Keep);
        if changes.iter().all(|c| *c == Change::Keep) {
            return;
        }
        // Groups whose members part at this entry split, each part with a copy.
        let mut parted = Vec::new();
        for group in &mut self.groups {
            let first = self.current[group.members[0]];
            if group.members.iter().all(|m| self.current[*m] == first) {
                continue;
            }
            let mut by_change: Vec<(Change, Vec<usize>)> = Vec::new();
            for member in &group.members {
                let change = self.current[*member];
                match by_change.iter_mut().find(|(c, _)| *c == change) {
                    Some((_, members)) => members.push(*member),
                    None => by_change.push((change, vec![*member])),
                }
            }
            let mut parts = by_change.into_iter();
            if let Some((_, members)) = parts.next() {
                group.members = members;
            }
            for (_, members) in parts {
                parted.push(group.copy(members));
            }
        }
        self.groups.extend(parted);
        for group in &mut self.groups {
            if self.current[group.members[0]] != Change::Keep {
                group.quiet = 0;
            }
        }
        self.regroup();
        // Variants not in a stretch open one, together when they change alike.
        let context = self.context_bytes();
        let mut opening: Vec<(Change, Vec<usize>)> = Vec::new();
        for (index, change) in self.current.iter().enumerate() {
            if *change == Change::Keep || self.group_of[index].is_some() {
                continue;
            }
            match opening.iter_mut().find(|(c, _)| c == change) {
                Some((_, members)) => members.push(index),
                None => opening.push((*change, vec![index])),
            }
        }
        for (change, members) in opening {
            // Not in a stretch: these variants kept the original's last 32 KiB, so
            // the ring is their window too.
            self.stats.stretches += 1;
            let group = if change == Change::Leave && self.position.is_some() {
                let deflate = Deflate::after(self.level, &context);
                Group {
                    members,
                    pricing: Pricing::Stored {
                        start: deflate.out,
                        from: self.entry_start,
                    },
                    deflate,
                    quiet: 0,
                }
            } else {
                let level = self.level;
                let baseline = self
                    .baseline
                    .get_or_insert_with(|| Deflate::after(level, &context));
                Group {
                    members,
                    deflate: Deflate {
                        state: baseline.state.clone(),
                        out: baseline.out,
                        fed: 0,
                    },
                    pricing: Pricing::Compressed,
                    quiet: 0,
                }
            };
            self.groups.push(group);
        }
        self.regroup();
    }

    /// Called once an entry's data has been read from the blob.
    pub fn end_entry(&mut self) {
        if let Some(position) = &self.position {
            self.entry_start = position.get();
        }
    }

    fn context_bytes(&self) -> Vec<u8> {
        self.context.contents()
    }

    /// Bytes one output wrote: output 0 is the original, `1 + i` variant `i`. A
    /// group is fed by its first member's writes; the others write the same bytes.
    pub fn write(&mut self, output: usize, bytes: &[u8]) {
        if output == 0 {
            self.context.remember(bytes);
            if let Some(baseline) = self.baseline.as_mut() {
                baseline.feed(bytes, TDEFLFlush::None);
            }
            return;
        }
        let index = output - 1;
        let Some(Some(group)) = self.group_of.get(index).copied() else {
            return;
        };
        let keeps = self.current[index] == Change::Keep;
        let group = &mut self.groups[group];
        if group.members[0] != index {
            return;
        }
        group.deflate.feed(bytes, TDEFLFlush::None);
        if keeps {
            group.quiet += bytes.len() as u64;
        }
    }

    /// One chunk of an entry that some variant rewrites, at the same offset in every
    /// output: the original's bytes, and what each variant writes there (`None`:
    /// it leaves the entry out). A rewrite that keeps most of a file where it was (a
    /// strip leaves the loaded segments in place and drops what follows them) then
    /// costs what it changes: its stretch closes once its bytes have matched the
    /// original's for [`QUIET_BYTES`], where `closable` says (for each variant) that
    /// a long run of equal bytes follows, and opens again where they part. Closing
    /// a stretch costs a little accuracy (the two streams' deflate blocks no longer
    /// end together), so it is only worth it before bytes that would cost more to
    /// compress twice.
    pub fn aligned_chunk(&mut self, original: &[u8], written: &[Option<&[u8]>], closable: &[bool]) {
        // Variants parting from the original here open a stretch, forked from it as
        // it stands before this chunk.
        let mut opening: Vec<(Change, Vec<usize>)> = Vec::new();
        for (index, bytes) in written.iter().enumerate() {
            let parts = matches!(bytes, Some(b) if *b != original);
            if !parts || self.group_of.get(index).copied().flatten().is_some() {
                continue;
            }
            let change = self.current.get(index).copied().unwrap_or(Change::Keep);
            match opening.iter_mut().find(|(c, _)| *c == change) {
                Some((_, members)) => members.push(index),
                None => opening.push((change, vec![index])),
            }
        }
        if !opening.is_empty() {
            let context = self.context_bytes();
            let level = self.level;
            for (_, members) in opening {
                self.stats.stretches += 1;
                let baseline = self
                    .baseline
                    .get_or_insert_with(|| Deflate::after(level, &context));
                let group = Group {
                    members,
                    deflate: Deflate {
                        state: baseline.state.clone(),
                        out: baseline.out,
                        fed: 0,
                    },
                    pricing: Pricing::Compressed,
                    quiet: 0,
                };
                self.groups.push(group);
            }
            self.regroup();
        }
        self.write(0, original);
        for group in &mut self.groups {
            let Some(Some(bytes)) = written.get(group.members[0]) else {
                continue;
            };
            group.deflate.feed(bytes, TDEFLFlush::None);
            if *bytes == original {
                group.quiet += bytes.len() as u64;
            } else {
                group.quiet = 0;
            }
        }
        // Only a stretch priced against this compressor can end inside an entry: one
        // priced against the stored bytes ends where an entry does in the blob.
        let mut index = 0;
        while index < self.groups.len() {
            let group = &self.groups[index];
            let closes = closable.get(group.members[0]).copied().unwrap_or(false);
            if closes && group.quiet >= QUIET_BYTES && matches!(group.pricing, Pricing::Compressed)
            {
                self.close(index, self.entry_start);
            } else {
                index += 1;
            }
        }
    }

    /// Called between chunks of an entry, once every output has had the chunk: a
    /// long kept file ends a stretch inside it.
    pub fn between_chunks(&mut self) {
        let position = self.position.as_ref().map_or(0, |p| p.get());
        self.close_quiet(position);
    }

    /// Closes the stretch of every group that has been quiet long enough.
    fn close_quiet(&mut self, to: u64) {
        let mut index = 0;
        while index < self.groups.len() {
            let group = &self.groups[index];
            if group.quiet >= QUIET_BYTES && self.current[group.members[0]] == Change::Keep {
                self.close(index, to);
            } else {
                index += 1;
            }
        }
    }

    /// Ends group `index`'s stretch, `to` being where it ends in the blob, and books
    /// its difference for each member.
    fn close(&mut self, index: usize, to: u64) {
        let mut group = self.groups.swap_remove(index);
        group.deflate.feed(&[], TDEFLFlush::Finish);
        self.stats.recompressed_bytes += group.deflate.fed;
        let own = group.deflate.out;
        let saved = match group.pricing {
            Pricing::Stored { start, from } => {
                to.saturating_sub(from) as i64 - (own - start) as i64
            }
            Pricing::Compressed => {
                // The original up to here, finished on a copy: the original's
                // compressor goes on for the other forks.
                let finished = self.baseline.as_ref().map(|baseline| {
                    let mut copy = Deflate {
                        state: baseline.state.clone(),
                        out: baseline.out,
                        fed: 0,
                    };
                    copy.feed(&[], TDEFLFlush::Finish);
                    copy.out
                });
                finished.unwrap_or(own) as i64 - own as i64
            }
        };
        for member in &group.members {
            self.saved[*member] += saved;
        }
        let forked = self
            .groups
            .iter()
            .any(|g| matches!(g.pricing, Pricing::Compressed));
        if !forked {
            if let Some(baseline) = self.baseline.take() {
                self.stats.recompressed_bytes += baseline.fed;
            }
        }
        self.regroup();
    }

    /// Per variant, the compressed bytes it saves; and the work done. `end` is the
    /// blob's size, where a stretch still open ends.
    pub fn finish(mut self, end: u64) -> (Vec<i64>, SegmentStats) {
        while !self.groups.is_empty() {
            self.close(0, end);
        }
        (self.saved, self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip_len(data: &[u8], level: u32) -> i64 {
        let mut d = Deflate::new(level);
        d.feed(data, TDEFLFlush::Finish);
        d.out as i64
    }

    fn text(lines: usize, seed: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut x = seed;
        for i in 0..lines {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(
                format!(
                    "{i} level=info id={:x} path=/v1/{}\n",
                    x >> 20,
                    (x >> 50) % 977
                )
                .as_bytes(),
            );
        }
        out
    }

    /// Entries as (bytes, removed in the variant); the segmented saving against
    /// compressing both streams whole.
    fn compare(entries: &[(Vec<u8>, bool)], level: u32) -> (i64, i64) {
        let mut segmenter = Segmenter::new(level, 1, None);
        let (mut whole_base, mut whole_variant) = (Vec::new(), Vec::new());
        for (bytes, removed) in entries {
            segmenter.begin_entry(&[if *removed {
                Change::Leave
            } else {
                Change::Keep
            }]);
            for chunk in bytes.chunks(64 * 1024) {
                segmenter.write(0, chunk);
                if !removed {
                    segmenter.write(1, chunk);
                }
                segmenter.between_chunks();
            }
            segmenter.end_entry();
            whole_base.extend_from_slice(bytes);
            if !removed {
                whole_variant.extend_from_slice(bytes);
            }
        }
        let (saved, _) = segmenter.finish(0);
        (
            saved[0],
            gzip_len(&whole_base, level) - gzip_len(&whole_variant, level),
        )
    }

    #[test]
    fn a_removed_stretch_costs_what_it_costs_in_the_whole_stream() {
        for level in [1, 6, 9] {
            let entries: Vec<(Vec<u8>, bool)> = (0..40)
                .map(|i| (text(2_000 + i * 300, i as u64), i % 7 == 3))
                .collect();
            let (segmented, whole) = compare(&entries, level);
            let gap = (segmented - whole).abs() as f64 / whole as f64;
            assert!(gap < 0.01, "level {level}: {segmented} vs {whole}");
        }
    }

    /// A rewrite that leaves most of a file in place (as strip does: a patched
    /// header, the loaded bytes where they were, the tail gone), then a kept entry:
    /// the saving of compressing both streams whole, for the
    /// compression of the ranges that changed, then the stretch closed.
    #[test]
    fn a_rewrite_in_place_costs_only_what_it_changes() {
        let original: Vec<u8> = [text(12_000, 1), text(4_000, 2)].concat();
        let loaded = text(12_000, 1).len();
        let mut rewritten = original[..loaded].to_vec();
        rewritten[100..108].copy_from_slice(b"patched!");
        let kept = text(6_000, 3);
        let mut segmenter = Segmenter::new(6, 1, Some(Rc::new(Cell::new(0))));
        segmenter.begin_entry(&[Change::Rewrite(0)]);
        let mut at = 0;
        while at < original.len() {
            let piece = |b: &[u8]| b[at.min(b.len())..(at + 4096).min(b.len())].to_vec();
            let (here, written) = (piece(&original), piece(&rewritten));
            segmenter.aligned_chunk(&here, &[Some(&written)], &[true]);
            at += 4096;
        }
        segmenter.end_entry();
        segmenter.begin_entry(&[Change::Keep]);
        for chunk in kept.chunks(64 * 1024) {
            segmenter.write(0, chunk);
            segmenter.write(1, chunk);
            segmenter.between_chunks();
        }
        segmenter.end_entry();
        let (saved, stats) = segmenter.finish(0);
        let whole = gzip_len(&[original.as_slice(), &kept].concat(), 6)
            - gzip_len(&[rewritten.as_slice(), &kept].concat(), 6);
        let gap = (saved[0] - whole).abs() as f64 / whole as f64;
        assert!(gap < 0.01, "{} vs {whole}", saved[0]);
        // The patched start and the dropped tail, each with the quiet bytes after
        // it, not the whole file twice.
        let changed = (original.len() - loaded) as u64 + 4 * QUIET_BYTES + 2 * 4096;
        assert!(
            stats.recompressed_bytes <= 2 * changed,
            "{} bytes recompressed for a change of {changed}",
            stats.recompressed_bytes
        );
        assert!(stats.recompressed_bytes < original.len() as u64);
    }

    #[test]
    fn nothing_changed_saves_nothing_and_compresses_nothing() {
        let mut segmenter = Segmenter::new(6, 2, None);
        for i in 0..10 {
            segmenter.begin_entry(&[Change::Keep, Change::Keep]);
            let bytes = text(1000, i);
            for output in 0..3 {
                segmenter.write(output, &bytes);
            }
        }
        let (saved, stats) = segmenter.finish(0);
        assert_eq!(saved, vec![0, 0]);
        assert_eq!(stats.stretches, 0);
        assert_eq!(stats.recompressed_bytes, 0);
    }
}
