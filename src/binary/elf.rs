//! One pass over an ELF file with `object`'s low-level reader, collecting the facts
//! the rest of the analysis needs. Every table is read through `object`, which checks
//! offsets and counts against the file before handing out slices, so nothing here
//! allocates from a count in the file without that count having been bounded by the
//! file's size first. Names and strings copied out are additionally capped, because a
//! hostile file can point thousands of entries at one huge string.

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader, Sym};
use object::read::StringTable;
use object::Endianness;

/// Longest section name, library name or comment string kept; longer ones are cut.
const MAX_NAME: usize = 512;
/// Most `DT_NEEDED`/version-need entries kept; real binaries have dozens.
const MAX_ENTRIES: usize = 4096;
/// Most `.comment` strings kept.
const MAX_COMMENTS: usize = 64;

#[derive(Debug, Clone)]
pub(crate) struct Section<'a> {
    pub name: String,
    pub sh_type: u32,
    pub flags: u64,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    /// `None` for `SHT_NOBITS` and for sections whose range lies outside the file.
    pub data: Option<&'a [u8]>,
}

impl Section<'_> {
    pub fn is_alloc(&self) -> bool {
        self.flags & elf::SHF_ALLOC.0 != 0
    }

    pub fn is_write(&self) -> bool {
        self.flags & elf::SHF_WRITE.0 != 0
    }

    pub fn is_exec(&self) -> bool {
        self.flags & elf::SHF_EXECINSTR.0 != 0
    }

    pub fn is_compressed(&self) -> bool {
        self.flags & elf::SHF_COMPRESSED.0 != 0
    }

    pub fn occupies_file(&self) -> bool {
        self.sh_type != elf::SHT_NOBITS.0
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub p_type: u32,
    pub flags: u32,
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
}

/// What the symbol tables say, without keeping the names.
#[derive(Debug, Clone, Default)]
pub(crate) struct SymbolFacts {
    pub symtab_symbols: usize,
    pub dynsym_symbols: usize,
    pub rust_mangled: Option<String>,
    /// A symbol of the `panic_unwind` / `panic_abort` runtime crates was seen.
    pub panic_unwind_crate: bool,
    pub panic_abort_crate: bool,
    /// `_Unwind_RaiseException` imported from a shared unwinder (only the
    /// unwinding panic runtime calls it in a Rust program).
    pub imports_unwind_raise: bool,
    /// Any other `_Unwind_*` import: the unwinder is a shared library, so a
    /// `_Unwind_RaiseException` call would have shown up as an import too.
    pub imports_unwinder: bool,
    pub go_runtime: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Parsed<'a> {
    pub is_64: bool,
    pub big_endian: bool,
    pub machine: u16,
    pub e_type: u16,
    pub segments: Vec<Segment>,
    pub sections: Vec<Section<'a>>,
    pub section_headers_ok: bool,
    pub interpreter: Option<String>,
    pub has_dynamic: bool,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    pub flags_1: u64,
    /// (library, version name) pairs from `.gnu.version_r`.
    pub version_needs: Vec<(String, String)>,
    pub symbols: SymbolFacts,
    pub build_id: Option<String>,
    pub go_build_id: Option<String>,
    pub comments: Vec<String>,
    /// Structural problems met on the way (the first few); the first becomes the
    /// `malformed` reason.
    pub problems: Vec<String>,
    pub problem_count: usize,
}

impl<'a> Parsed<'a> {
    /// Records a problem; a hostile file can have one per section, so only the
    /// first few are kept.
    pub fn problem(&mut self, problem: String) {
        self.problem_count += 1;
        if self.problems.len() < 16 {
            self.problems.push(problem);
        }
    }

    pub fn section(&self, name: &str) -> Option<&Section<'a>> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Bytes at virtual address `addr`, at most `len` of them, from the `PT_LOAD`
    /// segment holding it (mirrors Go's `debug/buildinfo` `ReadData`).
    pub fn read_vaddr(&self, data: &'a [u8], addr: u64, len: u64) -> Option<&'a [u8]> {
        for segment in &self.segments {
            if segment.p_type != elf::PT_LOAD.0 || segment.filesz == 0 {
                continue;
            }
            let end = segment.vaddr.checked_add(segment.filesz)?;
            if addr < segment.vaddr || addr >= end {
                continue;
            }
            let delta = addr - segment.vaddr;
            let n = (end - addr).min(len);
            let start = segment.offset.checked_add(delta)?;
            let stop = start.checked_add(n)?;
            let start = usize::try_from(start).ok()?;
            let stop = usize::try_from(stop).ok()?;
            return data
                .get(start..stop.min(data.len()))
                .filter(|s| !s.is_empty());
        }
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("unsupported ELF header: {0}")]
    Header(String),
}

pub(crate) fn parse(data: &[u8]) -> Result<Parsed<'_>, ElfError> {
    if data.len() < 16 || &data[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    match data[4] {
        1 => parse_generic::<elf::FileHeader32<Endianness>>(data),
        2 => parse_generic::<elf::FileHeader64<Endianness>>(data),
        other => Err(ElfError::Header(format!("unknown ELF class {other}"))),
    }
}

fn lossy(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_NAME)];
    String::from_utf8_lossy(cut).into_owned()
}

fn parse_generic<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> Result<Parsed<'_>, ElfError> {
    let header = Elf::parse(data).map_err(|e| ElfError::Header(e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|e| ElfError::Header(e.to_string()))?;
    let mut parsed = Parsed {
        is_64: header.is_type_64(),
        big_endian: endian == Endianness::Big,
        machine: header.e_machine(endian).0,
        e_type: header.e_type(endian).0,
        segments: Vec::new(),
        sections: Vec::new(),
        section_headers_ok: false,
        interpreter: None,
        has_dynamic: false,
        needed: Vec::new(),
        soname: None,
        rpath: Vec::new(),
        runpath: Vec::new(),
        flags_1: 0,
        version_needs: Vec::new(),
        symbols: SymbolFacts::default(),
        build_id: None,
        go_build_id: None,
        comments: Vec::new(),
        problems: Vec::new(),
        problem_count: 0,
    };

    let program_headers = match header.program_headers(endian, data) {
        Ok(headers) => headers,
        Err(e) => {
            parsed.problem(format!("program headers: {e}"));
            &[]
        }
    };
    for ph in program_headers {
        parsed.segments.push(Segment {
            p_type: ph.p_type(endian).0,
            flags: ph.p_flags(endian).0,
            vaddr: ph.p_vaddr(endian).into(),
            offset: ph.p_offset(endian).into(),
            filesz: ph.p_filesz(endian).into(),
        });
        match ph.interpreter(endian, data) {
            Ok(Some(interp)) => parsed.interpreter = Some(lossy(interp)),
            Ok(None) => {}
            Err(e) => parsed.problem(format!("PT_INTERP: {e}")),
        }
    }

    let loadable = [elf::ET_EXEC, elf::ET_DYN].contains(&header.e_type(endian));
    if loadable && !parsed.segments.iter().any(|s| s.p_type == elf::PT_LOAD.0) {
        parsed.problem("an executable or shared object without PT_LOAD segments".into());
    }

    let table = match header.sections(endian, data) {
        // No table at all (e_shoff 0, as some packers and hand-stripped binaries
        // leave them): the file still runs, but nothing section-based can be said
        // of it, and GNU strip refuses it.
        Ok(table) if table.is_empty() => None,
        Ok(table) => {
            parsed.section_headers_ok = true;
            Some(table)
        }
        Err(e) => {
            parsed.problem(format!("section headers: {e}"));
            None
        }
    };

    if let Some(table) = &table {
        for section in table.iter() {
            let name = match table.section_name(endian, section) {
                Ok(name) => lossy(name),
                Err(_) => String::new(),
            };
            let section_data = if section.sh_type(endian) == elf::SHT_NOBITS {
                None
            } else {
                match section.data(endian, data) {
                    Ok(bytes) => Some(bytes),
                    Err(_) => {
                        parsed.problem(format!("section {name:?} lies outside the file"));
                        None
                    }
                }
            };
            parsed.sections.push(Section {
                name,
                sh_type: section.sh_type(endian).0,
                flags: section.sh_flags(endian).0,
                addr: section.sh_addr(endian).into(),
                offset: section.sh_offset(endian).into(),
                size: section.sh_size(endian).into(),
                data: section_data,
            });
        }
        check_tables_overlap::<Elf>(&mut parsed, header, endian, data);
        read_section_dynamic::<Elf>(&mut parsed, table, endian, data);
        read_versions::<Elf>(&mut parsed, table, endian, data);
        read_symbols::<Elf>(&mut parsed, table, endian, data);
        read_section_notes::<Elf>(&mut parsed, table, endian, data);
    }
    if !parsed.has_dynamic {
        read_segment_dynamic::<Elf>(&mut parsed, program_headers, endian, data);
    }
    if parsed.build_id.is_none() && parsed.go_build_id.is_none() {
        read_segment_notes::<Elf>(&mut parsed, program_headers, endian, data);
    }
    if let Some(comment) = parsed.section(".comment").and_then(|s| s.data) {
        parsed.comments = comment
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .take(MAX_COMMENTS)
            .map(|s| lossy(s).trim().to_string())
            .collect();
    }
    Ok(parsed)
}

/// A header table inside a section's bytes means one of them is lying (e.g. a huge
/// `e_phnum` reading code as program headers), though `object` accepts both.
fn check_tables_overlap<Elf: FileHeader<Endian = Endianness>>(
    parsed: &mut Parsed<'_>,
    header: &Elf,
    endian: Endianness,
    data: &[u8],
) {
    let table_range = |offset: u64, count: u32, entsize: u16| -> Option<(u64, u64)> {
        let len = u64::from(count).checked_mul(u64::from(entsize))?;
        (len > 0).then_some((offset, offset.checked_add(len)?))
    };
    let phnum = header.phnum(endian, data).unwrap_or(0);
    let shnum = header.shnum(endian, data).unwrap_or(0);
    let tables = [
        (
            "program header table",
            table_range(
                header.e_phoff(endian).into(),
                phnum,
                header.e_phentsize(endian),
            ),
        ),
        (
            "section header table",
            table_range(
                header.e_shoff(endian).into(),
                shnum,
                header.e_shentsize(endian),
            ),
        ),
    ];
    for (what, range) in tables {
        let Some((start, end)) = range else { continue };
        let clash = parsed.sections.iter().find(|s| {
            s.occupies_file()
                && s.size > 0
                && s.data.is_some()
                && s.offset < end
                && s.offset.saturating_add(s.size) > start
        });
        if let Some(section) = clash {
            let problem = format!("{what} overlaps section {:?}", section.name);
            parsed.problem(problem);
        }
    }
}

enum DynString {
    Needed,
    Soname,
    Rpath,
    Runpath,
}

fn dyn_string_kind(tag: i64) -> Option<DynString> {
    match tag {
        t if t == elf::DT_NEEDED.0 => Some(DynString::Needed),
        t if t == elf::DT_SONAME.0 => Some(DynString::Soname),
        t if t == elf::DT_RPATH.0 => Some(DynString::Rpath),
        t if t == elf::DT_RUNPATH.0 => Some(DynString::Runpath),
        _ => None,
    }
}

fn record_dyn_string(parsed: &mut Parsed<'_>, kind: DynString, value: &[u8]) {
    let value = lossy(value);
    match kind {
        DynString::Needed => {
            if parsed.needed.len() < MAX_ENTRIES {
                parsed.needed.push(value);
            }
        }
        DynString::Soname => parsed.soname = Some(value),
        DynString::Rpath => push_search_dirs(&mut parsed.rpath, &value),
        DynString::Runpath => push_search_dirs(&mut parsed.runpath, &value),
    }
}

fn push_search_dirs(dirs: &mut Vec<String>, value: &str) {
    for dir in value.split(':').filter(|s| !s.is_empty()) {
        if dirs.len() >= MAX_ENTRIES {
            return;
        }
        dirs.push(dir.to_string());
    }
}

fn read_section_dynamic<'a, Elf: FileHeader<Endian = Endianness>>(
    parsed: &mut Parsed<'a>,
    table: &object::read::elf::SectionTable<'a, Elf, &'a [u8]>,
    endian: Endianness,
    data: &'a [u8],
) {
    let (dyns, link) = match table.dynamic(endian, data) {
        Ok(Some(found)) => found,
        Ok(None) => return,
        Err(e) => {
            parsed.problem(format!("dynamic section: {e}"));
            return;
        }
    };
    parsed.has_dynamic = true;
    let strings = match table.strings(endian, data, link) {
        Ok(strings) => strings,
        Err(e) => {
            parsed.problem(format!("dynamic string table: {e}"));
            StringTable::default()
        }
    };
    for d in dyns {
        let tag = d.tag(endian).0;
        if tag == elf::DT_NULL.0 {
            break;
        }
        if tag == elf::DT_FLAGS_1.0 {
            parsed.flags_1 = d.val(endian);
            continue;
        }
        if let Some(kind) = dyn_string_kind(tag) {
            match d.string(endian, strings) {
                Ok(value) => record_dyn_string(parsed, kind, value),
                Err(_) => parsed.problem("dynamic entry names a string outside .dynstr".into()),
            }
        }
    }
}

/// Without section headers the dynamic table is found through `PT_DYNAMIC`, and its
/// strings through the `DT_STRTAB` address.
fn read_segment_dynamic<'a, Elf: FileHeader<Endian = Endianness>>(
    parsed: &mut Parsed<'a>,
    program_headers: &'a [Elf::ProgramHeader],
    endian: Endianness,
    data: &'a [u8],
) {
    let Some(dyns) = program_headers
        .iter()
        .find_map(|ph| ph.dynamic(endian, data).ok().flatten())
    else {
        return;
    };
    parsed.has_dynamic = true;
    let mut strtab_addr = None;
    let mut strsz = 0u64;
    for d in dyns {
        let tag = d.tag(endian).0;
        if tag == elf::DT_NULL.0 {
            break;
        }
        if tag == elf::DT_STRTAB.0 {
            strtab_addr = Some(d.val(endian));
        } else if tag == elf::DT_STRSZ.0 {
            strsz = d.val(endian);
        } else if tag == elf::DT_FLAGS_1.0 {
            parsed.flags_1 = d.val(endian);
        }
    }
    let strtab = strtab_addr.and_then(|addr| parsed.read_vaddr(data, addr, strsz));
    for d in dyns {
        let tag = d.tag(endian).0;
        if tag == elf::DT_NULL.0 {
            break;
        }
        let Some(kind) = dyn_string_kind(tag) else {
            continue;
        };
        let value = strtab.and_then(|strtab| {
            let start = usize::try_from(d.val(endian)).ok()?;
            let rest = strtab.get(start..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            Some(&rest[..end])
        });
        match value {
            Some(value) => record_dyn_string(parsed, kind, value),
            None => parsed.problem("dynamic entry names a string outside DT_STRTAB".into()),
        }
    }
}

fn read_versions<'a, Elf: FileHeader<Endian = Endianness>>(
    parsed: &mut Parsed<'a>,
    table: &object::read::elf::SectionTable<'a, Elf, &'a [u8]>,
    endian: Endianness,
    data: &'a [u8],
) {
    let (mut needs, link) = match table.gnu_verneed(endian, data) {
        Ok(Some(found)) => found,
        Ok(None) => return,
        Err(e) => {
            parsed.problem(format!("version needs: {e}"));
            return;
        }
    };
    let Ok(strings) = table.strings(endian, data, link) else {
        parsed.problem("version needs: bad string table link".into());
        return;
    };
    loop {
        let (need, mut auxes) = match needs.next() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => {
                parsed.problem(format!("version needs: {e}"));
                break;
            }
        };
        let file = need.file(endian, strings).map(lossy).unwrap_or_default();
        loop {
            match auxes.next() {
                Ok(Some(aux)) => {
                    if parsed.version_needs.len() >= MAX_ENTRIES {
                        return;
                    }
                    if let Ok(name) = aux.name(endian, strings) {
                        parsed.version_needs.push((file.clone(), lossy(name)));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    parsed.problem(format!("version needs: {e}"));
                    break;
                }
            }
        }
    }
}

/// Legacy Rust mangling: `_ZN` ... `17h` + 16 hex digits + `E`.
fn is_rust_legacy(name: &[u8]) -> bool {
    if !name.starts_with(b"_ZN") || name.len() < 3 + 20 || !name.ends_with(b"E") {
        return false;
    }
    let tail = &name[name.len() - 20..name.len() - 1];
    tail.starts_with(b"17h") && tail[3..].iter().all(u8::is_ascii_hexdigit)
}

/// v0 Rust mangling: `_R` followed by an uppercase tag (`_RNv…`, `_RINv…`, …).
fn is_rust_v0(name: &[u8]) -> bool {
    name.len() > 3 && name.starts_with(b"_R") && name[2].is_ascii_uppercase()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut start = 0;
    while start + needle.len() <= haystack.len() {
        let offset = haystack[start..].iter().position(|&b| b == first)?;
        let at = start + offset;
        if haystack.get(at..at + needle.len()) == Some(needle) {
            return Some(at);
        }
        start = at + 1;
    }
    None
}

fn read_symbols<'a, Elf: FileHeader<Endian = Endianness>>(
    parsed: &mut Parsed<'a>,
    table: &object::read::elf::SectionTable<'a, Elf, &'a [u8]>,
    endian: Endianness,
    data: &'a [u8],
) {
    for (kind, dynamic) in [(elf::SHT_SYMTAB, false), (elf::SHT_DYNSYM, true)] {
        let symbols = match table.symbols(endian, data, kind) {
            Ok(symbols) => symbols,
            Err(e) => {
                parsed.problem(format!("symbol table: {e}"));
                continue;
            }
        };
        if dynamic {
            parsed.symbols.dynsym_symbols = symbols.len();
        } else {
            parsed.symbols.symtab_symbols = symbols.len();
        }
        let strings = symbols.strings();
        let facts = &mut parsed.symbols;
        for symbol in symbols.iter() {
            let Ok(name) = symbol.name(endian, strings) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            if facts.rust_mangled.is_none() && (is_rust_legacy(name) || is_rust_v0(name)) {
                facts.rust_mangled = Some(lossy(name));
            }
            if name.starts_with(b"_ZN") || name.starts_with(b"_R") {
                if contains(name, b"12panic_unwind") {
                    facts.panic_unwind_crate = true;
                }
                if contains(name, b"11panic_abort") {
                    facts.panic_abort_crate = true;
                }
            }
            if dynamic && symbol.is_undefined(endian) && name.starts_with(b"_Unwind_") {
                if name == b"_Unwind_RaiseException" {
                    facts.imports_unwind_raise = true;
                } else {
                    facts.imports_unwinder = true;
                }
            }
            if !facts.go_runtime && (name == b"runtime.main" || name == b"runtime.goexit") {
                facts.go_runtime = true;
            }
        }
    }
}

fn record_note(parsed: &mut Parsed<'_>, name: &[u8], n_type: u32, desc: &[u8]) {
    if name == b"GNU" && n_type == elf::NT_GNU_BUILD_ID.0 && parsed.build_id.is_none() {
        let desc = &desc[..desc.len().min(64)];
        parsed.build_id = Some(desc.iter().map(|b| format!("{b:02x}")).collect());
    } else if name == b"Go" && n_type == 4 && parsed.go_build_id.is_none() {
        // ELF_NOTE_GOBUILDID_TAG (cmd/link/internal/ld/elf.go).
        parsed.go_build_id = Some(lossy(desc));
    }
}

fn read_section_notes<'a, Elf: FileHeader<Endian = Endianness>>(
    parsed: &mut Parsed<'a>,
    table: &object::read::elf::SectionTable<'a, Elf, &'a [u8]>,
    endian: Endianness,
    data: &'a [u8],
) {
    for section in table.iter() {
        let Ok(Some(mut notes)) = section.notes(endian, data) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            record_note(parsed, note.name(), note.n_type(endian).0, note.desc());
        }
    }
}

fn read_segment_notes<'a, Elf: FileHeader<Endian = Endianness>>(
    parsed: &mut Parsed<'a>,
    program_headers: &'a [Elf::ProgramHeader],
    endian: Endianness,
    data: &'a [u8],
) {
    for ph in program_headers {
        let Ok(Some(mut notes)) = ph.notes(endian, data) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            record_note(parsed, note.name(), note.n_type(endian).0, note.desc());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_rust_manglings() {
        assert!(is_rust_legacy(b"_ZN4core3fmt5write17h0123456789abcdefE"));
        assert!(!is_rust_legacy(b"_ZN4core3fmt5writeE"));
        assert!(!is_rust_legacy(b"_ZNSt6vectorIiSaIiEE9push_backERKi"));
        assert!(is_rust_v0(b"_RNvCs1234_7mycrate4main"));
        assert!(!is_rust_v0(b"_Rfoo"));
    }

    #[test]
    fn finds_substrings() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"abc", b""), None);
    }
}
