//! Rewriting a large gzip layer without recompressing all of it.
//!
//! deflate looks back at most 32 KiB, and a deflate block needs nothing from the
//! blocks before it but that window. So where the new tar stream is the old one, and
//! has been for at least 32 KiB, the old blocks decode to the same bytes in the new
//! stream: their bits are copied as they are (shifted to the new bit position).
//! Only the blocks that hold, or come within 32 KiB after, a change are compressed
//! again, at the level the layer was written at, from a compressor primed with the
//! 32 KiB before them. That is the stretch by stretch cost advise's `segments`
//! method prices, so the written layer lands where advise projected it, in the
//! time it takes to inflate the layer once.
//!
//! The two sides meet in [`Blocks`]: the [`BlockReader`] inflates the stored layer
//! (for the tar walk) and records every deflate block it ends (its place in the
//! original tar stream, its compressed bits, its inflated bytes), and the
//! [`Splicer`] is written the new tar stream, told where it leaves the original
//! ([`Splicer::skip_original`], [`Splicer::write_new`]), and decides block by block.
//! A block is copied only if the bytes written for it are byte for byte its own and
//! nothing changed in the 32 KiB before it; anything else (the final block, a later
//! gzip member, a block too long to hold) is compressed again, so a hostile layer
//! can cost time, never a wrong layer. The read-back verifies the result anyway.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use flate2::Crc;
use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush,
};
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

use crate::advice::gzip_level::parse_header;

/// deflate's window: how far back a block's matches can reach.
const WINDOW_BYTES: usize = 32 * 1024;
/// A block that inflates to more than this is not held to be copied: it is
/// compressed again, in pieces of this size, so that memory stays flat.
const MAX_HELD_BLOCK_BYTES: usize = 4 * 1024 * 1024;
const INPUT_BUFFER_BYTES: usize = 256 * 1024;
/// A gzip member header longer than this (name and comment fields) is refused.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// One deflate block of the original stream, or a piece of one.
struct Block {
    /// Where it is in the original tar stream.
    start: u64,
    end: u64,
    /// Its compressed bits and inflated bytes, when it may be copied.
    copyable: Option<Copyable>,
}

struct Copyable {
    /// The stored bytes the block's bits lie in: from bit `first_bit` of the first
    /// byte, `bit_len` bits.
    bits: Vec<u8>,
    first_bit: u8,
    bit_len: u64,
    inflated: Vec<u8>,
}

impl Copyable {
    /// BTYPE 00: the block holds its bytes as they are.
    fn is_stored(&self) -> bool {
        let bit = |i: u64| {
            let at = u64::from(self.first_bit) + i;
            self.bits
                .get((at / 8) as usize)
                .map_or(0, |byte| (byte >> (at % 8)) & 1)
        };
        bit(1) == 0 && bit(2) == 0
    }
}

/// What the reader has found and the splicer has not decided yet.
#[derive(Default)]
pub(crate) struct Blocks {
    ended: VecDeque<Block>,
    /// The first member's header, as stored: the new layer begins with it.
    header: Option<Vec<u8>>,
}

/// Shared by the reader (which may run on the thread that inflates) and the splicer.
pub(crate) type SharedBlocks = Arc<Mutex<Blocks>>;

/// The blocks, whatever a panicking holder left (the layer then fails on its own).
fn locked(blocks: &SharedBlocks) -> MutexGuard<'_, Blocks> {
    blocks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn invalid(reason: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("gzip: {}", reason.into()),
    )
}

enum ReadState {
    Header,
    Body,
    Trailer,
    Done,
}

/// A gzip decoder that records deflate block boundaries into [`Blocks`].
/// Multi-member streams are read as `MultiGzDecoder` reads them, every member's
/// CRC-32 and length checked; blocks after the first member are never copied.
pub(crate) struct BlockReader<R> {
    inner: R,
    input: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    state: ReadState,
    members: u64,
    inflater: Box<DecompressorOxide>,
    dict: Vec<u8>,
    dict_start: usize,
    dict_available: usize,
    crc: Crc,
    /// Inflated bytes produced so far (all members).
    produced: u64,
    block_start: u64,
    /// The current block's stored bytes and inflated bytes, while it may be copied.
    block_bits: Vec<u8>,
    block_first_bit: u8,
    block_inflated: Vec<u8>,
    block_copyable: bool,
    /// The last stored byte consumed: a block that ends inside it starts the next.
    last_byte: Option<u8>,
    /// What the last inflate call ended at, acted on once its output is handed out
    /// (so that a block ends where its bytes do).
    event: Option<Event>,
    blocks: SharedBlocks,
}

enum Event {
    /// A block ended; the next begins `held_bits` from the end of the last byte.
    Boundary {
        held_bits: u8,
    },
    Done,
}

impl<R: Read> BlockReader<R> {
    pub(crate) fn new(inner: R, blocks: SharedBlocks) -> Self {
        Self {
            inner,
            input: vec![0; INPUT_BUFFER_BYTES],
            start: 0,
            end: 0,
            eof: false,
            state: ReadState::Header,
            members: 0,
            inflater: Box::default(),
            dict: vec![0; WINDOW_BYTES],
            dict_start: 0,
            dict_available: 0,
            crc: Crc::new(),
            produced: 0,
            block_start: 0,
            block_bits: Vec::new(),
            block_first_bit: 0,
            block_inflated: Vec::new(),
            block_copyable: true,
            last_byte: None,
            event: None,
            blocks,
        }
    }

    /// Reads more stored bytes; false at the end of the input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.start > 0 {
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.input.len() {
            return Ok(true);
        }
        loop {
            match self.inner.read(&mut self.input[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn read_header(&mut self) -> io::Result<()> {
        loop {
            let buffered = &self.input[self.start..self.end];
            if let Some(header) = parse_header(buffered) {
                let bytes = buffered[..header.deflate_offset].to_vec();
                self.start += header.deflate_offset;
                let mut blocks = locked(&self.blocks);
                if blocks.header.is_none() {
                    blocks.header = Some(bytes);
                }
                return Ok(());
            }
            if buffered.len() >= 2 && (buffered[0] != 0x1f || buffered[1] != 0x8b) {
                return Err(invalid("invalid header"));
            }
            if self.end - self.start >= MAX_HEADER_BYTES {
                return Err(invalid("a member header longer than 64 KiB"));
            }
            if !self.fill()? {
                return Err(invalid("the stream ends inside a member header"));
            }
        }
    }

    fn read_trailer(&mut self) -> io::Result<()> {
        while self.end - self.start < 8 {
            if !self.fill()? {
                return Err(invalid("the stream ends inside a member trailer"));
            }
        }
        let trailer = &self.input[self.start..self.start + 8];
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let length = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc != self.crc.sum() || length != self.crc.amount() {
            return Err(invalid(
                "a member's CRC-32 or length does not match its data",
            ));
        }
        self.start += 8;
        self.crc.reset();
        self.members += 1;
        Ok(())
    }

    /// Records the block that ends at what has been produced so far; the next
    /// one starts `held_bits` before the end of the last byte consumed.
    fn end_block(&mut self, copyable: bool, held_bits: u8) {
        let copyable = (copyable && self.block_copyable).then(|| {
            let bit_len = (self.block_bits.len() as u64 * 8)
                .saturating_sub(u64::from(held_bits))
                .saturating_sub(u64::from(self.block_first_bit));
            Copyable {
                bits: std::mem::take(&mut self.block_bits),
                first_bit: self.block_first_bit,
                bit_len,
                inflated: std::mem::take(&mut self.block_inflated),
            }
        });
        locked(&self.blocks).ended.push_back(Block {
            start: self.block_start,
            end: self.produced,
            copyable,
        });
        self.block_start = self.produced;
        self.block_bits.clear();
        self.block_inflated.clear();
        self.block_copyable = self.members == 0;
        self.block_first_bit = 0;
        if held_bits > 0 {
            if let Some(byte) = self.last_byte {
                self.block_bits.push(byte);
                self.block_first_bit = 8 - held_bits;
            }
        }
    }

    fn settle_event(&mut self) {
        match self.event.take() {
            Some(Event::Boundary { held_bits }) => self.end_block(true, held_bits),
            Some(Event::Done) => {
                // The final block is always compressed again: it carries the
                // end-of-stream flag.
                self.end_block(false, 0);
                self.state = ReadState::Trailer;
            }
            None => {}
        }
    }

    /// Hands out inflated bytes held in the dictionary.
    fn give(&mut self, out: &mut [u8]) -> usize {
        let n = self.dict_available.min(out.len());
        let bytes = &self.dict[self.dict_start..self.dict_start + n];
        out[..n].copy_from_slice(bytes);
        self.crc.update(bytes);
        if self.block_copyable {
            self.block_inflated.extend_from_slice(bytes);
        }
        self.produced += n as u64;
        self.dict_start = (self.dict_start + n) & (WINDOW_BYTES - 1);
        self.dict_available -= n;
        if self.produced - self.block_start >= MAX_HELD_BLOCK_BYTES as u64 {
            // Cut here, not copyable, and neither is the rest of this block: what is
            // held for a block stays bounded.
            self.end_block(false, 0);
            self.block_copyable = false;
            self.block_bits.clear();
        }
        n
    }
}

impl<R: Read> Read for BlockReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.dict_available > 0 {
                let n = self.give(out);
                if self.dict_available == 0 {
                    self.settle_event();
                }
                return Ok(n);
            }
            match self.state {
                ReadState::Done => return Ok(0),
                ReadState::Header => {
                    if self.start == self.end && !self.fill()? {
                        if self.members == 0 {
                            return Err(invalid("an empty stream"));
                        }
                        self.state = ReadState::Done;
                        continue;
                    }
                    self.read_header()?;
                    *self.inflater = DecompressorOxide::new();
                    self.dict_start = 0;
                    self.block_start = self.produced;
                    self.block_bits.clear();
                    self.block_inflated.clear();
                    self.block_first_bit = 0;
                    self.block_copyable = self.members == 0;
                    self.state = ReadState::Body;
                }
                ReadState::Trailer => {
                    self.read_trailer()?;
                    self.state = ReadState::Header;
                }
                ReadState::Body => {
                    if self.start == self.end && !self.eof {
                        self.fill()?;
                    }
                    let mut flags = inflate_flags::TINFL_FLAG_STOP_ON_BLOCK_BOUNDARY;
                    if !self.eof {
                        flags |= inflate_flags::TINFL_FLAG_HAS_MORE_INPUT;
                    }
                    let (status, consumed, produced) = decompress(
                        &mut self.inflater,
                        &self.input[self.start..self.end],
                        &mut self.dict,
                        self.dict_start,
                        flags,
                    );
                    let taken = &self.input[self.start..self.start + consumed];
                    if let Some(byte) = taken.last() {
                        self.last_byte = Some(*byte);
                    }
                    if self.block_copyable {
                        self.block_bits.extend_from_slice(taken);
                        if self.block_bits.len() > MAX_HELD_BLOCK_BYTES {
                            self.block_copyable = false;
                            self.block_bits.clear();
                            self.block_inflated.clear();
                        }
                    }
                    self.start += consumed;
                    self.dict_available = produced;
                    match status {
                        TINFLStatus::BlockBoundary => {
                            let held = self
                                .inflater
                                .block_boundary_state()
                                .map_or(0, |state| state.num_bits);
                            self.event = Some(Event::Boundary { held_bits: held });
                        }
                        TINFLStatus::Done => self.event = Some(Event::Done),
                        TINFLStatus::NeedsMoreInput => {
                            if self.eof && produced == 0 && consumed == 0 {
                                return Err(invalid("the stream ends inside a deflate block"));
                            }
                        }
                        TINFLStatus::HasMoreOutput => {}
                        _ => return Err(invalid("corrupt deflate data")),
                    }
                    if self.dict_available == 0 {
                        self.settle_event();
                    }
                }
            }
        }
    }
}

/// Bits appended least significant first, as deflate packs them.
struct BitWriter<W> {
    out: W,
    buffer: Vec<u8>,
    bits: u64,
    held: u32,
}

const BIT_BUFFER_BYTES: usize = 64 * 1024;

impl<W: Write> BitWriter<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            buffer: Vec::with_capacity(BIT_BUFFER_BYTES + 16),
            bits: 0,
            held: 0,
        }
    }

    fn put(&mut self, value: u64, count: u32) -> io::Result<()> {
        self.bits |= value << self.held;
        self.held += count;
        while self.held >= 8 {
            self.buffer.push(self.bits as u8);
            self.bits >>= 8;
            self.held -= 8;
        }
        if self.buffer.len() >= BIT_BUFFER_BYTES {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    /// Bytes that start on a byte boundary (the compressor's output).
    fn aligned(&mut self, bytes: &[u8]) -> io::Result<()> {
        debug_assert_eq!(self.held, 0);
        if self.buffer.len() + bytes.len() > BIT_BUFFER_BYTES {
            self.drain()?;
            return self.out.write_all(bytes);
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }

    /// `bit_len` bits of `bytes`, from bit `first_bit` of its first byte.
    fn copy_bits(&mut self, bytes: &[u8], first_bit: u8, bit_len: u64) -> io::Result<()> {
        let mut position = u64::from(first_bit);
        let end = position + bit_len;
        // Up to a byte boundary of the source, then whole bytes.
        while position < end && position % 8 != 0 {
            let take = (8 - position % 8).min(end - position);
            let byte = bytes[(position / 8) as usize] >> (position % 8);
            self.put(u64::from(byte) & ((1 << take) - 1), take as u32)?;
            position += take;
        }
        let whole = ((end - position) / 8) as usize;
        let from = (position / 8) as usize;
        if self.held == 0 {
            self.aligned(&bytes[from..from + whole])?;
        } else {
            for chunk in bytes[from..from + whole].chunks(4) {
                let mut value = 0u64;
                for (i, byte) in chunk.iter().enumerate() {
                    value |= u64::from(*byte) << (8 * i);
                }
                self.put(value, 8 * chunk.len() as u32)?;
            }
        }
        position += 8 * whole as u64;
        if position < end {
            let take = end - position;
            let byte = bytes[(position / 8) as usize];
            self.put(u64::from(byte) & ((1 << take) - 1), take as u32)?;
        }
        Ok(())
    }

    /// A non-final stored block of `bytes` (at most 65,535 of them).
    fn stored_block(&mut self, bytes: &[u8]) -> io::Result<()> {
        let length = u16::try_from(bytes.len())
            .map_err(|_| io::Error::other("a stored block longer than 65,535 bytes"))?;
        self.put(0, 3)?;
        if self.held > 0 {
            self.put(0, 8 - self.held)?;
        }
        self.aligned(&length.to_le_bytes())?;
        self.aligned(&(!length).to_le_bytes())?;
        self.aligned(bytes)
    }

    /// Back to a byte boundary with an empty stored block (3 header bits, padding,
    /// LEN 0, NLEN 0xffff), which decoders skip.
    fn align(&mut self) -> io::Result<()> {
        if self.held == 0 {
            return Ok(());
        }
        self.put(0, 3)?;
        if self.held > 0 {
            self.put(0, 8 - self.held)?;
        }
        self.aligned(&[0, 0, 0xff, 0xff])
    }

    fn finish(mut self) -> io::Result<W> {
        debug_assert_eq!(self.held, 0);
        self.drain()?;
        Ok(self.out)
    }
}

/// A raw deflate compressor at a gzip level, whose output goes to the bit writer.
struct Deflate {
    state: Box<CompressorOxide>,
}

impl Deflate {
    /// A compressor that has seen `window` (its output thrown away): what follows
    /// may refer back into it, as it does in the stream the decoder reads.
    fn primed(level: u32, window: &[u8]) -> io::Result<Self> {
        let flags = create_comp_flags_from_zip_params(level.min(10) as i32, -15, 0);
        let mut deflate = Self {
            state: Box::new(CompressorOxide::new(flags)),
        };
        if !window.is_empty() {
            deflate.run(window, TDEFLFlush::Sync, &mut |_| Ok(()))?;
        }
        Ok(deflate)
    }

    fn run(
        &mut self,
        mut bytes: &[u8],
        flush: TDEFLFlush,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        loop {
            let mut failed = None;
            let (status, consumed) =
                compress_to_output(&mut self.state, bytes, flush, |out| match sink(out) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                });
            if let Some(e) = failed {
                return Err(e);
            }
            if (status as i32) < 0 {
                return Err(io::Error::other("deflate failed"));
            }
            bytes = &bytes[consumed..];
            if bytes.is_empty() {
                return Ok(());
            }
            if consumed == 0 {
                return Err(io::Error::other("deflate made no progress"));
            }
        }
    }
}

/// How much of a spliced layer was copied and how much compressed again.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SpliceStats {
    pub copied_blocks: u64,
    pub copied_bytes: u64,
    pub recompressed_bytes: u64,
}

enum Piece {
    /// Bytes of the original, from this offset on.
    Original(u64),
    /// Bytes that are not (a rewritten header or file), placed before this offset.
    New(u64),
}

/// The writing side: the new tar stream in, the spliced gzip member out.
pub(crate) struct Splicer<W: Write> {
    out: Option<BitWriter<W>>,
    blocks: SharedBlocks,
    level: u32,
    /// Where in the original the next byte written comes from.
    original: u64,
    /// Where the output last resumed after leaving the original.
    resumed: Option<u64>,
    /// Written bytes not yet decided, in pieces.
    pending: Vec<u8>,
    pieces: VecDeque<(usize, Piece)>,
    deflate: Option<Deflate>,
    /// The last 32 KiB written (at most 64 KiB held), to prime a compressor.
    window: Vec<u8>,
    crc: Crc,
    header_written: bool,
    stats: SpliceStats,
}

impl<W: Write> Splicer<W> {
    pub(crate) fn new(out: W, blocks: SharedBlocks, level: u32) -> Self {
        Self {
            out: Some(BitWriter::new(out)),
            blocks,
            level,
            original: 0,
            resumed: None,
            pending: Vec::new(),
            pieces: VecDeque::new(),
            deflate: None,
            window: Vec::with_capacity(2 * WINDOW_BYTES),
            crc: Crc::new(),
            header_written: false,
            stats: SpliceStats::default(),
        }
    }

    fn writer(&mut self) -> io::Result<&mut BitWriter<W>> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("the spliced layer is already finished"))
    }

    /// The next `n` bytes of the original are left out.
    pub(crate) fn skip_original(&mut self, n: u64) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.original += n;
        self.resumed = Some(self.original);
        self.settle()
    }

    /// Bytes the original does not have at this point.
    pub(crate) fn write_new(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.resumed = Some(self.original);
        self.push_piece(Piece::New(self.original));
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn push_piece(&mut self, piece: Piece) {
        let at = self.pending.len();
        let same = match (self.pieces.back(), &piece) {
            (Some((start, Piece::Original(from))), Piece::Original(next)) => {
                *from + (at - start) as u64 == *next
            }
            (Some((_, Piece::New(a))), Piece::New(b)) => a == b,
            _ => false,
        };
        if !same {
            self.pieces.push_back((at, piece));
        }
    }

    fn write_original(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let front_end = locked(&self.blocks).ended.front().map(|b| b.end);
            let take = match front_end {
                Some(end) if end > self.original => {
                    ((end - self.original) as usize).min(bytes.len())
                }
                _ => bytes.len(),
            };
            self.push_piece(Piece::Original(self.original));
            self.pending.extend_from_slice(&bytes[..take]);
            self.original += take as u64;
            bytes = &bytes[take..];
            self.settle()?;
        }
        Ok(())
    }

    /// Decides every block the output has gone past.
    fn settle(&mut self) -> io::Result<()> {
        loop {
            let block = {
                let mut blocks = locked(&self.blocks);
                match blocks.ended.front() {
                    Some(b) if b.end <= self.original => blocks.ended.pop_front(),
                    _ => None,
                }
            };
            let Some(block) = block else { return Ok(()) };
            self.decide(block)?;
        }
    }

    /// How many pending bytes belong to original offsets before `end`.
    fn cut_at(&mut self, end: u64) -> usize {
        let mut cut = self.pending.len();
        for (i, (start, piece)) in self.pieces.iter().enumerate() {
            let belongs = match piece {
                Piece::Original(from) => *from < end,
                Piece::New(at) => *at < end,
            };
            if !belongs {
                cut = *start;
                break;
            }
            if let Piece::Original(from) = piece {
                let next = self.pieces.get(i + 1).map_or(self.pending.len(), |p| p.0);
                let len = (next - start) as u64;
                if from + len > end {
                    cut = start + (end - from) as usize;
                    break;
                }
            }
        }
        cut
    }

    fn decide(&mut self, block: Block) -> io::Result<()> {
        if !self.header_written {
            let header = locked(&self.blocks)
                .header
                .clone()
                .ok_or_else(|| invalid("no member header"))?;
            self.writer()?.aligned(&header)?;
            self.header_written = true;
        }
        let cut = self.cut_at(block.end);
        let quiet = self
            .resumed
            .is_none_or(|at| block.start >= at + WINDOW_BYTES as u64);
        let copy = match &block.copyable {
            Some(c) if quiet => c.inflated.as_slice() == &self.pending[..cut],
            _ => false,
        };
        let bytes: Vec<u8> = self.pending.drain(..cut).collect();
        // Pieces now start `cut` bytes earlier; the one straddling the cut keeps
        // its remainder.
        let mut pieces = VecDeque::with_capacity(self.pieces.len());
        for (start, piece) in self.pieces.drain(..) {
            if start >= cut {
                pieces.push_back((start - cut, piece));
            } else {
                let advanced = match piece {
                    Piece::Original(from) => Piece::Original(from + (cut - start) as u64),
                    Piece::New(at) => Piece::New(at),
                };
                pieces.push_back((0, advanced));
            }
        }
        // Keep only the last of the pieces that start at 0 (a cut mid-piece).
        while pieces.len() > 1 && pieces[1].0 == 0 {
            pieces.pop_front();
        }
        if self.pending.is_empty() {
            pieces.clear();
        }
        self.pieces = pieces;
        self.crc.update(&bytes);
        match (copy, block.copyable) {
            (true, Some(c)) => {
                if let Some(mut deflate) = self.deflate.take() {
                    let out = self.writer()?;
                    deflate.run(&[], TDEFLFlush::Sync, &mut |b| out.aligned(b))?;
                }
                if c.is_stored() {
                    // A stored block pads to a byte boundary after its header, so its
                    // bits only mean the same at the same bit position: it is written
                    // again around its bytes, as they are.
                    self.writer()?.stored_block(&c.inflated)?;
                } else {
                    self.writer()?.copy_bits(&c.bits, c.first_bit, c.bit_len)?;
                }
                self.stats.copied_blocks += 1;
                self.stats.copied_bytes += bytes.len() as u64;
            }
            _ => self.compress(&bytes)?,
        }
        self.remember(&bytes);
        Ok(())
    }

    fn compress(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.deflate.is_none() {
            self.writer()?.align()?;
            let start = self.window.len().saturating_sub(WINDOW_BYTES);
            self.deflate = Some(Deflate::primed(self.level, &self.window[start..])?);
        }
        self.stats.recompressed_bytes += bytes.len() as u64;
        let mut deflate = self.deflate.take();
        if let Some(d) = deflate.as_mut() {
            let out = self.writer()?;
            d.run(bytes, TDEFLFlush::None, &mut |b| out.aligned(b))?;
        }
        self.deflate = deflate;
        Ok(())
    }

    fn remember(&mut self, bytes: &[u8]) {
        if bytes.len() >= WINDOW_BYTES {
            self.window.clear();
            self.window
                .extend_from_slice(&bytes[bytes.len() - WINDOW_BYTES..]);
            return;
        }
        self.window.extend_from_slice(bytes);
        if self.window.len() > 2 * WINDOW_BYTES {
            let drop = self.window.len() - WINDOW_BYTES;
            self.window.drain(..drop);
        }
    }

    /// Decides what is left, ends the deflate stream and writes the trailer.
    pub(crate) fn finish(mut self) -> io::Result<(W, SpliceStats)> {
        self.settle()?;
        // Whatever no block claimed (there should be nothing) is compressed.
        let rest: Vec<u8> = std::mem::take(&mut self.pending);
        self.pieces.clear();
        if !self.header_written {
            let header = locked(&self.blocks)
                .header
                .clone()
                .ok_or_else(|| invalid("no member header"))?;
            self.writer()?.aligned(&header)?;
            self.header_written = true;
        }
        self.crc.update(&rest);
        self.compress(&rest)?;
        if let Some(mut deflate) = self.deflate.take() {
            let out = self.writer()?;
            deflate.run(&[], TDEFLFlush::Finish, &mut |b| out.aligned(b))?;
        }
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("the spliced layer is already finished"))?;
        out.aligned(&self.crc.sum().to_le_bytes())?;
        out.aligned(&self.crc.amount().to_le_bytes())?;
        Ok((out.finish()?, self.stats))
    }
}

impl<W: Write> Write for Splicer<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_original(bytes)?;
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The splice tests and what they share.
#[cfg(test)]
mod tests_support {
    pub(super) use super::*;

    pub(super) fn noise(bytes: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..bytes)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    pub(super) fn text(bytes: usize, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut out = Vec::with_capacity(bytes + 64);
        let mut line = 0u64;
        while out.len() < bytes {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(
                format!(
                    "{line:07} key {:06x} value {}\n",
                    state % 0xff_ffff,
                    state % 1000
                )
                .as_bytes(),
            );
            line += 1;
        }
        out.truncate(bytes);
        out
    }

    pub(super) fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        encoder.write_all(data).expect("gzip");
        encoder.finish().expect("gzip")
    }

    pub(super) fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .expect("the spliced stream inflates");
        out
    }

    /// Streams `stored` through the reader into the splicer, leaving out the
    /// original ranges in `skips` and inserting `new` bytes at original offsets.
    pub(super) fn splice(
        stored: &[u8],
        skips: &[(u64, u64)],
        inserts: &[(u64, &[u8])],
    ) -> io::Result<(Vec<u8>, Vec<u8>, SpliceStats)> {
        let blocks = SharedBlocks::default();
        let mut reader = BlockReader::new(stored, blocks.clone());
        let mut splicer = Splicer::new(Vec::new(), blocks, 6);
        let mut expected = Vec::new();
        let mut offset = 0u64;
        let mut chunk = vec![0u8; 10_000];
        loop {
            let n = reader.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            for byte in &chunk[..n] {
                for (at, bytes) in inserts {
                    if *at == offset {
                        splicer.write_new(bytes)?;
                        expected.extend_from_slice(bytes);
                    }
                }
                let skipped = skips
                    .iter()
                    .find(|(from, to)| offset >= *from && offset < *to);
                match skipped {
                    Some((from, to)) if offset == *from => splicer.skip_original(to - from)?,
                    Some(_) => {}
                    None => {
                        splicer.write_all(std::slice::from_ref(byte))?;
                        expected.push(*byte);
                    }
                }
                offset += 1;
            }
        }
        let (out, stats) = splicer.finish()?;
        Ok((out, expected, stats))
    }

    #[test]
    fn untouched_blocks_are_copied_and_the_stream_inflates_to_the_new_bytes() {
        let original = text(3_000_000, 1);
        let stored = gzip(&original, 6);
        let (out, expected, stats) = splice(
            &stored,
            &[(700_001, 900_003), (2_000_000, 2_000_700)],
            &[(1_500_000, b"a rewritten header")],
        )
        .expect("splice");
        assert_eq!(gunzip(&out), expected);
        assert!(stats.copied_bytes > 2_000_000, "{stats:?}");
        assert!(stats.recompressed_bytes < 1_000_000, "{stats:?}");
        // Close to what recompressing everything at the same level gives.
        let whole = gzip(&expected, 6).len() as f64;
        assert!(
            (out.len() as f64 - whole).abs() / whole < 0.01,
            "{} vs {whole}",
            out.len()
        );
    }

    #[test]
    fn an_unchanged_stream_is_copied_but_for_its_final_block() {
        let original = text(1_000_000, 2);
        let stored = gzip(&original, 9);
        let (out, expected, stats) = splice(&stored, &[], &[]).expect("splice");
        assert_eq!(expected, original);
        assert_eq!(gunzip(&out), original);
        assert!(stats.copied_bytes > 800_000, "{stats:?}");
    }

    #[test]
    fn later_members_and_stored_blocks_are_compressed_again_and_still_right() {
        let first = text(400_000, 3);
        let second = text(300_000, 4);
        let mut stored = gzip(&first, 0);
        stored.extend_from_slice(&gzip(&second, 6));
        let (out, expected, stats) = splice(&stored, &[(100_000, 150_000)], &[]).expect("splice");
        assert_eq!(gunzip(&out), expected);
        assert!(stats.recompressed_bytes >= second.len() as u64, "{stats:?}");
    }

    #[test]
    fn damaged_streams_are_errors_not_panics() {
        let stored = gzip(&text(500_000, 5), 6);
        let truncated = &stored[..stored.len() / 2];
        assert!(splice(truncated, &[], &[]).is_err());
        let mut flipped = stored.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x55;
        assert!(splice(&flipped, &[], &[]).is_err());
        let mut trailer = stored.clone();
        let last = trailer.len() - 1;
        trailer[last] ^= 1;
        assert!(splice(&trailer, &[], &[]).is_err());
        assert!(splice(b"not gzip at all", &[], &[]).is_err());
        assert!(splice(&[], &[], &[]).is_err());
    }
}

#[cfg(test)]
mod more_tests {
    use super::tests_support::*;

    #[test]
    fn a_long_entry_replaced_by_long_new_bytes() {
        let mut original = text(2_000_000, 7);
        original.extend_from_slice(&noise(3_000_000, 3));
        original.extend_from_slice(&text(2_000_000, 8));
        let stored = gzip(&original, 6);
        let new = noise(1_500_000, 9);
        let (out, expected, _) =
            splice(&stored, &[(1_000_000, 5_000_000)], &[(5_000_000, &new)]).expect("splice");
        assert_eq!(gunzip(&out).len(), expected.len());
        assert_eq!(gunzip(&out), expected);
    }
}

#[cfg(test)]
mod stored_blocks {
    use super::tests_support::*;

    /// Incompressible bytes are stored blocks, which pad to a byte boundary: moved to
    /// another bit position they must be written again, not shifted.
    #[test]
    fn stored_blocks_at_a_new_bit_position_still_inflate() {
        for cut in [13u64, 1, 7, 4096] {
            let mut original = text(300_000, 11);
            original.extend_from_slice(&noise(2_000_000, 5));
            original.extend_from_slice(&text(300_000, 12));
            let stored = gzip(&original, 6);
            let (out, expected, stats) =
                splice(&stored, &[(100_000, 100_000 + cut)], &[]).expect("splice");
            assert_eq!(gunzip(&out), expected, "cut {cut}");
            assert!(stats.copied_bytes > 2_000_000, "{stats:?}");
        }
    }
}
