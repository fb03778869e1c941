//! Go's function table (`.gopclntab`), read the way `debug/gosym` reads it (golang/go
//! `src/debug/gosym/pclntab.go`): every layout since Go 1.2, either byte order, 4- or
//! 8-byte pointers. The runtime needs this table, so it survives `-ldflags="-s -w"`.
//!
//! A function's size is where its `pcsp` table ends: the compiler and assembler write
//! that table up to the function's last byte (`cmd/internal/obj/pcln.go`), so it is
//! the size `go tool nm -size` prints. The gap to the next function's entry is
//! alignment padding. A function without a `pcsp` table (C code linked in by cgo) only
//! has the distance to the next entry, padding included.
//!
//! The table is hostile input: every offset is checked against the section, the
//! function count against the bytes the function table occupies, and the name and
//! `pcsp` bytes read over all functions against a budget proportional to the section
//! (real tables read each byte about once), so a table pointing every entry at the
//! same long string or `pcsp` program costs no more than a real one.

/// Longest function name read; longer names are cut (the package is at the front).
pub(crate) const MAX_NAME: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Magic `0xfffffffb`.
    Go12,
    /// Magic `0xfffffffa`.
    Go116,
    /// Magic `0xfffffff0`.
    Go118,
    /// Magic `0xfffffff1`: the 1.18 layout with a new magic.
    Go120,
}

impl Version {
    pub fn key(self) -> &'static str {
        match self {
            Version::Go12 => "go1.2",
            Version::Go116 => "go1.16",
            Version::Go118 => "go1.18",
            Version::Go120 => "go1.20",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PclntabError {
    #[error("shorter than a pclntab header")]
    Short,
    #[error("unknown pclntab magic {0:#010x}")]
    Magic(u32),
    #[error("bad pclntab header: {0}")]
    Header(&'static str),
    #[error("the pclntab {0} lies outside the section")]
    Outside(&'static str),
}

/// One function of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoFunc<'a> {
    pub entry: u64,
    /// The entry of the next function (the table's end address for the last one).
    pub next: u64,
    /// Bytes of code: from `pcsp`, else `next - entry`.
    pub size: u64,
    /// Whether `size` came from the function's own `pcsp` table.
    pub exact: bool,
    /// Cut at `MAX_NAME` bytes; empty when the name lies outside the table.
    pub name: &'a [u8],
}

#[derive(Debug, Clone)]
pub struct Pclntab<'a> {
    pub version: Version,
    pub big_endian: bool,
    pub pointer_size: u8,
    quantum: u64,
    count: usize,
    text_start: u64,
    functab: &'a [u8],
    field: usize,
    funcdata: &'a [u8],
    funcnametab: &'a [u8],
    pctab: &'a [u8],
}

impl<'a> Pclntab<'a> {
    /// `text_addr` is the `.text` address: Go 1.18+ tables store entries relative to
    /// `runtime.text`, whose address the header carries, but that word may hold 0 in
    /// a file that is relocated at load time.
    pub fn parse(data: &'a [u8], text_addr: u64) -> Result<Self, PclntabError> {
        if data.len() < 16 {
            return Err(PclntabError::Short);
        }
        let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let magic_version = |magic: u32| match magic {
            0xffff_fffb => Some(Version::Go12),
            0xffff_fffa => Some(Version::Go116),
            0xffff_fff0 => Some(Version::Go118),
            0xffff_fff1 => Some(Version::Go120),
            _ => None,
        };
        let (version, big_endian) = match (magic_version(le), magic_version(be)) {
            (Some(v), _) => (v, false),
            (None, Some(v)) => (v, true),
            (None, None) => return Err(PclntabError::Magic(le)),
        };
        if data[4] != 0 || data[5] != 0 {
            return Err(PclntabError::Header("nonzero padding after the magic"));
        }
        let quantum = data[6];
        if !matches!(quantum, 1 | 2 | 4) {
            return Err(PclntabError::Header("pc quantum not 1, 2 or 4"));
        }
        let pointer_size = data[7];
        if !matches!(pointer_size, 4 | 8) {
            return Err(PclntabError::Header("pointer size not 4 or 8"));
        }
        let ps = usize::from(pointer_size);
        let word = |i: usize| -> Result<u64, PclntabError> {
            read_uint(data, 8 + i * ps, ps, big_endian).ok_or(PclntabError::Short)
        };
        let from = |offset: u64, what: &'static str| -> Result<&'a [u8], PclntabError> {
            usize::try_from(offset)
                .ok()
                .and_then(|o| data.get(o..))
                .ok_or(PclntabError::Outside(what))
        };
        let count = word(0)?;
        let (functab, funcdata, funcnametab, pctab, text_start) = match version {
            Version::Go118 | Version::Go120 => {
                let header_text = word(2)?;
                let funcdata = from(word(7)?, "function data")?;
                (
                    funcdata,
                    funcdata,
                    from(word(3)?, "name table")?,
                    from(word(6)?, "pc tables")?,
                    if header_text != 0 {
                        header_text
                    } else {
                        text_addr
                    },
                )
            }
            Version::Go116 => {
                let funcdata = from(word(6)?, "function data")?;
                (
                    funcdata,
                    funcdata,
                    from(word(2)?, "name table")?,
                    from(word(5)?, "pc tables")?,
                    0,
                )
            }
            Version::Go12 => (from(8 + ps as u64, "function table")?, data, data, data, 0),
        };
        let field = match version {
            Version::Go118 | Version::Go120 => 4,
            Version::Go12 | Version::Go116 => ps,
        };
        // n pairs and the end address; the bound keeps any later allocation or loop
        // proportional to the bytes the table really has.
        let needed = count
            .checked_mul(2)
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(field as u64))
            .ok_or(PclntabError::Outside("function table"))?;
        if needed > functab.len() as u64 {
            return Err(PclntabError::Outside("function table"));
        }
        Ok(Pclntab {
            version,
            big_endian,
            pointer_size,
            quantum: u64::from(quantum),
            count: count as usize,
            text_start,
            functab,
            field,
            funcdata,
            funcnametab,
            pctab,
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn pc(&self, i: usize) -> u64 {
        let raw = read_uint(
            self.functab,
            2 * i * self.field,
            self.field,
            self.big_endian,
        )
        .unwrap_or(0);
        match self.version {
            Version::Go118 | Version::Go120 => raw.wrapping_add(self.text_start),
            Version::Go12 | Version::Go116 => raw,
        }
    }

    fn func_offset(&self, i: usize) -> Option<usize> {
        let raw = read_uint(
            self.functab,
            (2 * i + 1) * self.field,
            self.field,
            self.big_endian,
        )?;
        usize::try_from(raw).ok()
    }

    /// The `_func` field `n` (1-based after the entry, as `debug/gosym` counts).
    fn func_field(&self, func: usize, n: usize) -> Option<u32> {
        let first = match self.version {
            Version::Go118 | Version::Go120 => 4,
            Version::Go12 | Version::Go116 => usize::from(self.pointer_size),
        };
        let at = func.checked_add(first + (n - 1) * 4)?;
        let bytes = self.funcdata.get(at..at + 4)?;
        let bytes = [bytes[0], bytes[1], bytes[2], bytes[3]];
        Some(if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    }

    /// Calls `each` for every function in table order, in one pass.
    pub fn for_each(&self, mut each: impl FnMut(GoFunc<'a>)) {
        let mut budget = Budget::new(
            self.funcnametab.len() + self.pctab.len() + self.funcdata.len() + (1 << 20),
        );
        let mut next = if self.count > 0 { self.pc(0) } else { 0 };
        for i in 0..self.count {
            let entry = next;
            next = self.pc(i + 1);
            let span = next.saturating_sub(entry);
            let func = self.func_offset(i);
            let name = func
                .and_then(|f| self.func_field(f, 1))
                .and_then(|off| self.name(off, &mut budget))
                .unwrap_or_default();
            let walked = func
                .and_then(|f| self.func_field(f, 4))
                .filter(|&pcsp| pcsp != 0)
                .and_then(|pcsp| self.pcsp_end(pcsp, &mut budget))
                .filter(|&size| size > 0 && size <= span);
            each(GoFunc {
                entry,
                next,
                size: walked.unwrap_or(span),
                exact: walked.is_some(),
                name,
            });
        }
    }

    fn name(&self, offset: u32, budget: &mut Budget) -> Option<&'a [u8]> {
        let rest = self.funcnametab.get(usize::try_from(offset).ok()?..)?;
        let window = &rest[..rest.len().min(MAX_NAME)];
        let len = window.iter().position(|&b| b == 0).unwrap_or(window.len());
        budget.spend(len + 1).then_some(&window[..len])
    }

    /// The pc offset at which the `pcsp` program at `offset` ends (`step` in
    /// `debug/gosym`: a value delta, then a pc delta in quanta; a zero value delta
    /// after the first pair ends the table).
    fn pcsp_end(&self, offset: u32, budget: &mut Budget) -> Option<u64> {
        let mut p = self.pctab.get(usize::try_from(offset).ok()?..)?;
        let mut pc = 0u64;
        let mut first = true;
        loop {
            let (value_delta, n) = uvarint32(p)?;
            if value_delta == 0 && !first {
                return Some(pc);
            }
            p = &p[n..];
            let (pc_delta, m) = uvarint32(p)?;
            p = &p[m..];
            if !budget.spend(n + m) {
                return None;
            }
            pc = pc.checked_add(u64::from(pc_delta) * self.quantum)?;
            first = false;
        }
    }
}

/// Bytes any one table may have read on its behalf.
struct Budget(usize);

impl Budget {
    fn new(bytes: usize) -> Self {
        Budget(bytes.saturating_mul(2))
    }

    fn spend(&mut self, bytes: usize) -> bool {
        match self.0.checked_sub(bytes) {
            Some(left) => {
                self.0 = left;
                true
            }
            None => false,
        }
    }
}

fn read_uint(data: &[u8], at: usize, size: usize, big_endian: bool) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(size)?)?;
    let mut value = 0u64;
    for i in 0..size {
        let b = if big_endian {
            bytes[i]
        } else {
            bytes[size - 1 - i]
        };
        value = value << 8 | u64::from(b);
    }
    Some(value)
}

/// `readvarint` of `debug/gosym`: at most five bytes for a `uint32`.
fn uvarint32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value = 0u32;
    for (i, &b) in bytes.iter().enumerate().take(5) {
        value |= u32::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Where a function's name puts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// An import path (`net/http`, `main`, `vendor/golang.org/x/net/idna`).
    Package(&'a [u8]),
    /// Compiler-made wrappers of unnamed types (`go.struct { … }.Read`,
    /// `type..eq.[2]interface {}`): Go's rule gives them no package.
    Autogenerated,
    /// No dot at all: assembly without a package-qualified name (`cmpbody`,
    /// `_rt0_amd64_linux`), or C code cgo linked in.
    Unqualified,
}

/// `(*Sym).PackageName` of `debug/gosym` (Go 1.20's, which knows both the `type.`/`go.`
/// and the `type:`/`go:` prefixes), with one change: the equality and hash functions
/// the compiler writes for a named type (`type..eq.net/http.Header`,
/// `type:.hash.main.T`) go to that type's package, since they exist because of it.
pub fn owner(name: &[u8]) -> Owner<'_> {
    let mut name = name;
    let mut generated = false;
    for prefix in [
        &b"type..eq."[..],
        b"type:.eq.",
        b"type..hash.",
        b"type:.hash.",
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = rest;
            generated = true;
            break;
        }
    }
    if !generated
        && [&b"go."[..], b"type.", b"go:", b"type:"]
            .iter()
            .any(|p| name.starts_with(p))
    {
        return Owner::Autogenerated;
    }
    // `nameWithoutInst`: type arguments may hold dots and slashes of their own. Their
    // text is cut here rather than copied: only the part before `[` matters, unless
    // the package path itself ends after a `]` (it cannot: brackets follow a name).
    let bare = match name.iter().position(|&b| b == b'[') {
        Some(start) if name.iter().rposition(|&b| b == b']').is_some() => &name[..start],
        _ => name,
    };
    let path_end = bare.iter().rposition(|&b| b == b'/').unwrap_or(0);
    match bare[path_end..].iter().position(|&b| b == b'.') {
        Some(dot) if path_end + dot > 0 => Owner::Package(&bare[..path_end + dot]),
        _ if generated => Owner::Autogenerated,
        _ => Owner::Unqualified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str) -> Option<&str> {
        match owner(name.as_bytes()) {
            Owner::Package(p) => std::str::from_utf8(p).ok(),
            _ => None,
        }
    }

    #[test]
    fn packages_follow_go_rules() {
        assert_eq!(package("main.main"), Some("main"));
        assert_eq!(package("main.main.func1"), Some("main"));
        assert_eq!(package("net/http.(*Server).Serve"), Some("net/http"));
        assert_eq!(
            package("net/http.(*Server).Serve.func2.1"),
            Some("net/http")
        );
        assert_eq!(
            package("vendor/golang.org/x/net/idna.(*Profile).process"),
            Some("vendor/golang.org/x/net/idna")
        );
        assert_eq!(
            package("golang.org/x/text/unicode/norm.Form.String"),
            Some("golang.org/x/text/unicode/norm")
        );
        assert_eq!(
            package("example.com/m/v2/lib.Map[go.shape.string_0,example.com/x.T]"),
            Some("example.com/m/v2/lib")
        );
        assert_eq!(
            package("sync/atomic.(*Pointer[...]).Load"),
            Some("sync/atomic")
        );
        assert_eq!(
            package("type..eq.net/http.Header"),
            Some("net/http"),
            "equality of a named type"
        );
        assert_eq!(package("type:.hash.main.T"), Some("main"));
        assert_eq!(
            owner(b"type..eq.[2]interface {}"),
            Owner::Autogenerated,
            "equality of an unnamed type"
        );
        assert_eq!(
            owner(b"go.(*struct { io.Reader; io.WriterTo }).Read"),
            Owner::Autogenerated
        );
        assert_eq!(owner(b"go:buildid"), Owner::Autogenerated);
        assert_eq!(owner(b"cmpbody"), Owner::Unqualified);
        assert_eq!(owner(b"x_cgo_init"), Owner::Unqualified);
        assert_eq!(owner(b".weird"), Owner::Unqualified);
        assert_eq!(owner(b""), Owner::Unqualified);
    }

    /// A table in a given layout: functions at their entries, each with a name and
    /// an optional `pcsp` program giving its size; `end` closes the last one.
    /// Laid out as header | function table | `_func` records | names | pc tables,
    /// which every layout allows (1.2 fixes the function table after the header and
    /// addresses all else from the table start; later layouts from sub-tables).
    fn build(
        version: Version,
        big_endian: bool,
        pointer_size: usize,
        text: u64,
        funcs: &[(u64, &str, Option<u32>)],
        end: u64,
    ) -> Vec<u8> {
        let put = |out: &mut Vec<u8>, value: u64, size: usize| {
            let bytes = value.to_be_bytes();
            let mut word = bytes[8 - size..].to_vec();
            if !big_endian {
                word.reverse();
            }
            out.extend_from_slice(&word);
        };
        let magic: u32 = match version {
            Version::Go12 => 0xffff_fffb,
            Version::Go116 => 0xffff_fffa,
            Version::Go118 => 0xffff_fff0,
            Version::Go120 => 0xffff_fff1,
        };
        let ps = pointer_size;
        let new_layout = matches!(version, Version::Go118 | Version::Go120);
        let field = if new_layout { 4 } else { ps };
        let header_words = match version {
            Version::Go12 => 1,
            Version::Go116 => 7,
            Version::Go118 | Version::Go120 => 8,
        };
        let functab_at = 8 + header_words * ps;
        let functab_len = (2 * funcs.len() + 1) * field + 4;
        let record_len = if new_layout { 4 } else { ps } + 8 * 4;
        let records_at = functab_at + functab_len;
        let names_at = records_at + funcs.len() * record_len;
        let mut names = Vec::new();
        let mut name_offsets = Vec::new();
        for (_, name, _) in funcs {
            name_offsets.push(names.len());
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        let pcs_at = names_at + names.len();
        let mut pcs = vec![0u8]; // offset 0 means "no table"
        let mut pc_offsets = Vec::new();
        for (_, _, size) in funcs {
            pc_offsets.push(size.map(|size| {
                let at = pcs.len();
                // sp +8 over the first half, back to 0 over the rest, then the end.
                let half = size / 2;
                pcs.push(0x10);
                pcs.extend_from_slice(&varint(half));
                pcs.push(0x0f);
                pcs.extend_from_slice(&varint(size - half));
                pcs.push(0);
                at
            }));
        }
        let (name_base, pc_base, func_base) = if version == Version::Go12 {
            (0, 0, 0)
        } else {
            (names_at, pcs_at, functab_at)
        };
        let mut out = Vec::new();
        put(&mut out, u64::from(magic), 4);
        out.extend_from_slice(&[0, 0, 1, ps as u8]);
        put(&mut out, funcs.len() as u64, ps);
        let mut words = match version {
            Version::Go12 => vec![],
            Version::Go116 => vec![0, names_at, 0, 0, pcs_at, functab_at],
            Version::Go118 | Version::Go120 => {
                vec![0, text as usize, names_at, 0, 0, pcs_at, functab_at]
            }
        };
        for word in words.drain(..) {
            put(&mut out, word as u64, ps);
        }
        assert_eq!(out.len(), functab_at);
        let rel = |pc: u64| if new_layout { pc - text } else { pc };
        for (i, (entry, _, _)) in funcs.iter().enumerate() {
            put(&mut out, rel(*entry), field);
            put(
                &mut out,
                (records_at + i * record_len - func_base) as u64,
                field,
            );
        }
        put(&mut out, rel(end), field);
        put(&mut out, 0, 4); // 1.2's file table offset; unread padding otherwise
        for (i, (entry, _, _)) in funcs.iter().enumerate() {
            put(&mut out, rel(*entry), if new_layout { 4 } else { ps });
            put(&mut out, (names_at + name_offsets[i] - name_base) as u64, 4);
            put(&mut out, 0, 4); // args
            put(&mut out, 0, 4); // deferreturn (frame in 1.2)
            let pcsp = pc_offsets[i].map_or(0, |o| pcs_at + o - pc_base);
            put(&mut out, pcsp as u64, 4);
            for _ in 0..4 {
                put(&mut out, 0, 4);
            }
        }
        out.extend_from_slice(&names);
        out.extend_from_slice(&pcs);
        out
    }

    fn varint(mut v: u32) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    fn read(table: &[u8], text: u64) -> Vec<(u64, u64, bool, String)> {
        let table = Pclntab::parse(table, text).expect("parses");
        let mut out = Vec::new();
        table.for_each(|f| {
            out.push((
                f.entry,
                f.size,
                f.exact,
                String::from_utf8_lossy(f.name).into_owned(),
            ))
        });
        out
    }

    /// Go 1.19 is the only toolchain here, so the older layouts and the other byte
    /// order and pointer size are built by hand, field by field as `debug/gosym`
    /// reads them.
    #[test]
    fn every_layout_byte_order_and_pointer_size() {
        let funcs = [
            (0x1000, "runtime.main", Some(0x50)),
            (0x1060, "main.main", Some(0x31)),
            (0x10a0, "x_cgo_init", None),
        ];
        let expected = vec![
            (0x1000, 0x50, true, "runtime.main".to_string()),
            (0x1060, 0x31, true, "main.main".to_string()),
            (0x10a0, 0x20, false, "x_cgo_init".to_string()),
        ];
        for version in [
            Version::Go12,
            Version::Go116,
            Version::Go118,
            Version::Go120,
        ] {
            for big_endian in [false, true] {
                for ps in [4, 8] {
                    let table = build(version, big_endian, ps, 0x1000, &funcs, 0x10c0);
                    let parsed = Pclntab::parse(&table, 0x1000).expect("parses");
                    assert_eq!(
                        (parsed.version, parsed.big_endian, parsed.pointer_size),
                        (version, big_endian, ps as u8)
                    );
                    assert_eq!(
                        read(&table, 0x1000),
                        expected,
                        "{version:?} big-endian {big_endian} pointer {ps}"
                    );
                }
            }
        }
    }

    #[test]
    fn text_start_falls_back_to_the_section_when_the_header_has_none() {
        let funcs = [(0x2000, "main.main", Some(0x10))];
        let table = build(Version::Go120, false, 8, 0, &funcs, 0x2020);
        // Entries are stored relative to 0, so the section address shifts them.
        let got = read(&table, 0x400000);
        assert_eq!(got[0].0, 0x402000);
    }

    #[test]
    fn hostile_tables_are_errors_not_panics() {
        assert_eq!(Pclntab::parse(b"", 0).err(), Some(PclntabError::Short));
        assert!(matches!(
            Pclntab::parse(&[0u8; 64], 0).err(),
            Some(PclntabError::Magic(_))
        ));
        let funcs = [(0x1000, "main.main", Some(0x10))];
        let mut table = build(Version::Go118, false, 8, 0x1000, &funcs, 0x1020);
        // A function count far beyond the table's bytes.
        table[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Pclntab::parse(&table, 0x1000).err(),
            Some(PclntabError::Outside("function table"))
        );
        table[8..16].copy_from_slice(&1000u64.to_le_bytes());
        assert!(Pclntab::parse(&table, 0x1000).is_err());
        // Every truncation parses or fails cleanly, and never reads past the end.
        let table = build(Version::Go116, true, 4, 0x1000, &funcs, 0x1020);
        for cut in 0..table.len() {
            if let Ok(parsed) = Pclntab::parse(&table[..cut], 0x1000) {
                parsed.for_each(|_| {});
            }
        }
    }

    #[test]
    fn a_pcsp_table_longer_than_the_gap_is_not_believed() {
        let funcs = [(0x1000, "main.a", Some(0x100)), (0x1010, "main.b", Some(8))];
        let table = build(Version::Go120, false, 8, 0x1000, &funcs, 0x1020);
        let got = read(&table, 0x1000);
        assert_eq!((got[0].1, got[0].2), (0x10, false));
        assert_eq!((got[1].1, got[1].2), (8, true));
    }
}
