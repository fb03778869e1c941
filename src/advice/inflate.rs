//! A gzip decoder that knows how many stored bytes produced what it has returned, so
//! a stretch of the tar can be priced at what it costs in the blob itself. flate2's
//! readers buffer their input, which hides the position; this drives
//! `flate2::Decompress` over its own buffer. Multi-member streams are read like
//! `MultiGzDecoder` reads them; every member's CRC-32 and length are checked.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::gzip_level::parse_header;

/// A header longer than this (its name and comment fields) is refused.
const MAX_HEADER_BYTES: usize = 64 * 1024;
const BUFFER_BYTES: usize = 256 * 1024;

enum State {
    Header,
    Body,
    Trailer,
    Done,
}

pub struct PositionedGzDecoder<R> {
    inner: R,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    state: State,
    /// Members read to their trailer.
    members: u64,
    inflater: Decompress,
    crc: Crc,
    /// Stored bytes consumed for everything returned so far.
    position: Rc<Cell<u64>>,
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gzip: {reason}"))
}

impl<R: Read> PositionedGzDecoder<R> {
    /// `position` is kept up to date with the stored bytes consumed.
    pub fn new(inner: R, position: Rc<Cell<u64>>) -> Self {
        Self {
            inner,
            buffer: vec![0; BUFFER_BYTES],
            start: 0,
            end: 0,
            eof: false,
            state: State::Header,
            members: 0,
            inflater: Decompress::new(false),
            crc: Crc::new(),
            position,
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.position.set(self.position.get() + n as u64);
    }

    /// Reads more input, keeping what is unread; false at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buffer.len() {
            if self.buffer.len() >= MAX_HEADER_BYTES + BUFFER_BYTES {
                return Err(invalid("header too long"));
            }
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
        let n = self.inner.read(&mut self.buffer[self.end..])?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.end += n;
        Ok(true)
    }

    fn available(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }
}

impl<R: Read> Read for PositionedGzDecoder<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header => {
                    let members = self.members;
                    if let Some(header) = parse_header(self.available()) {
                        self.consume(header.deflate_offset);
                        self.inflater.reset(false);
                        self.crc.reset();
                        self.state = State::Body;
                        continue;
                    }
                    if self.available().len() > MAX_HEADER_BYTES {
                        return Err(invalid("header too long or not a gzip header"));
                    }
                    if !self.fill()? {
                        if members > 0 && self.available().is_empty() {
                            self.state = State::Done;
                            continue;
                        }
                        return Err(invalid(if members == 0 {
                            "not a gzip stream"
                        } else {
                            "trailing bytes after the last member"
                        }));
                    }
                }
                State::Body => {
                    let before_in = self.inflater.total_in();
                    let before_out = self.inflater.total_out();
                    let status = self
                        .inflater
                        .decompress(
                            &self.buffer[self.start..self.end],
                            out,
                            FlushDecompress::None,
                        )
                        .map_err(|e| invalid(&e.to_string()))?;
                    let consumed = (self.inflater.total_in() - before_in) as usize;
                    let produced = (self.inflater.total_out() - before_out) as usize;
                    self.consume(consumed);
                    self.crc.update(&out[..produced]);
                    if status == Status::StreamEnd {
                        self.state = State::Trailer;
                    }
                    if produced > 0 {
                        return Ok(produced);
                    }
                    if status != Status::StreamEnd && consumed == 0 && !self.fill()? {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "gzip: the stream ends inside a member",
                        ));
                    }
                }
                State::Trailer => {
                    if self.available().len() < 8 {
                        if !self.fill()? {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "gzip: the stream ends inside a member's trailer",
                            ));
                        }
                        continue;
                    }
                    let trailer = &self.buffer[self.start..self.start + 8];
                    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
                    let length =
                        u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
                    if crc != self.crc.sum() || length != self.crc.amount() {
                        return Err(invalid("CRC-32 or length does not match the data"));
                    }
                    self.consume(8);
                    self.members += 1;
                    self.state = State::Header;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        encoder.write_all(data).expect("write");
        encoder.finish().expect("finish")
    }

    #[test]
    fn decodes_members_and_counts_every_stored_byte() {
        let first: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let second = b"and a second member".repeat(1000);
        let mut stored = gzip(&first, 6);
        stored.extend(gzip(&second, 1));
        let position = Rc::new(Cell::new(0));
        let mut decoder = PositionedGzDecoder::new(stored.as_slice(), Rc::clone(&position));
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).expect("decode");
        assert_eq!(out.len(), first.len() + second.len());
        assert_eq!(&out[..first.len()], &first[..]);
        assert_eq!(position.get(), stored.len() as u64);
    }

    #[test]
    fn a_bad_crc_is_an_error() {
        let mut stored = gzip(b"hello hello hello", 6);
        let at = stored.len() - 6;
        stored[at] ^= 1;
        let mut out = Vec::new();
        assert!(PositionedGzDecoder::new(stored.as_slice(), Rc::default())
            .read_to_end(&mut out)
            .is_err());
        assert!(PositionedGzDecoder::new(&b"plain text"[..], Rc::default())
            .read_to_end(&mut out)
            .is_err());
    }
}
