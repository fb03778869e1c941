//! Exact strip prediction: the file is rebuilt with `object`'s ELF builder minus what
//! binutils `strip` would drop, and the bytes the writer emits are counted. The
//! writer streams into a counting sink, so no copy of the file is held, and the total
//! it announces up front is checked against a bound before any padding is produced.

use object::build::elf::{Builder, SectionData};
use object::build::Id;
use object::elf;
use object::write::WritableBuffer;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StripPrediction {
    pub size_after_strip_debug: u64,
    pub size_after_strip_all: u64,
    /// `size - size_after_strip_debug`, negative never (a rewrite that grew is clamped).
    pub saved_by_strip_debug: u64,
    pub saved_by_strip_all: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Debug,
    All,
}

/// Sections BFD flags `SEC_DEBUGGING` by name when they are not `SHF_ALLOC`
/// (binutils `bfd/elf.c`, `_bfd_elf_make_section_from_shdr`); `strip --strip-debug`
/// removes exactly those.
pub(crate) fn is_debug_section_name(name: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b".debug",
        b".zdebug",
        b".gnu.debuglto_.debug_",
        b".gnu.linkonce.wi.",
        b".line",
        b".stab",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || name == b".gdb_index"
}

pub(crate) fn predict(data: &[u8]) -> Result<StripPrediction, String> {
    let size = data.len() as u64;
    let debug = rewritten_size(data, Mode::Debug)?;
    let all = rewritten_size(data, Mode::All)?;
    Ok(StripPrediction {
        size_after_strip_debug: debug,
        size_after_strip_all: all,
        saved_by_strip_debug: size.saturating_sub(debug),
        saved_by_strip_all: size.saturating_sub(all),
    })
}

/// The file as `strip --strip-all` (`all`) or `strip --strip-debug` would leave it,
/// for rebuilding a layer with the stripped binary in it.
pub fn stripped(data: &[u8], all: bool) -> Result<Vec<u8>, String> {
    let mode = if all { Mode::All } else { Mode::Debug };
    let expected = rewritten_size(data, mode)?;
    let mut out = Vec::with_capacity(expected as usize);
    let builder = prepared_builder(data, mode)?;
    builder
        .write(&mut out)
        .map_err(|e| format!("ELF writer: {e}"))?;
    Ok(out)
}

fn rewritten_size(data: &[u8], mode: Mode) -> Result<u64, String> {
    let builder = prepared_builder(data, mode)?;
    let mut sink = CountingSink {
        limit: size_limit(data.len() as u64),
        reserved: None,
        written: 0,
    };
    builder.write(&mut sink).map_err(|e| match sink.reserved {
        None => format!("rewrite would be larger than {} bytes ({e})", sink.limit),
        Some(_) => format!("ELF writer: {e}"),
    })?;
    match sink.reserved {
        Some(reserved) if reserved != sink.written => Err(format!(
            "ELF writer announced {reserved} bytes but wrote {}",
            sink.written
        )),
        _ => Ok(sink.written),
    }
}

/// The builder with everything `strip` would drop marked deleted.
fn prepared_builder(data: &[u8], mode: Mode) -> Result<Builder<'_>, String> {
    let mut builder = Builder::read(data).map_err(|e| format!("ELF builder: {e}"))?;
    if builder.header.e_type == elf::ET_REL {
        // binutils keeps the symbols relocations refer to in objects; not modelled.
        return Err("relocatable objects are not predicted".into());
    }
    sanitise(&mut builder)?;
    for section in builder.sections.iter_mut() {
        let remove = match &section.data {
            SectionData::Symbol | SectionData::SymbolSectionIndex | SectionData::String => {
                mode == Mode::All
            }
            // Static relocations left in a linked file (`--emit-relocs`).
            SectionData::Relocation(_) => mode == Mode::All && !section.is_alloc(),
            _ => !section.is_alloc() && is_debug_section_name(section.name.as_slice()),
        };
        if remove {
            section.delete = true;
        }
    }
    // Relocations for a removed section go with it.
    let orphaned: Vec<_> = builder
        .sections
        .iter()
        .filter(|s| matches!(s.data, SectionData::Relocation(_)))
        .filter(|s| {
            s.sh_info_section
                .is_some_and(|t| builder.sections.get(t).delete)
        })
        .map(|s| s.id())
        .collect();
    for id in orphaned {
        builder.sections.get_mut(id).delete = true;
    }
    for symbol in builder.symbols.iter_mut() {
        if mode == Mode::All || symbol.st_type() == elf::STT_FILE {
            symbol.delete = true;
        }
    }
    builder.delete_orphans();
    if mode == Mode::Debug && keeps_unused_section_symbols(builder.header.e_machine) {
        add_section_symbols(&mut builder);
    }
    Ok(builder)
}

/// Largest alignment taken at face value; real files stop at huge pages (2 MiB).
const MAX_ALIGN: u64 = 1 << 30;

/// The builder's layout arithmetic trusts alignments and hash-table parameters from
/// the file (`align(x, 0)` underflows, a zero bucket count divides by zero, a zero
/// bloom count indexes an empty table), so they are checked, or, where the ELF spec
/// gives two spellings of one meaning, normalised, before it runs.
fn sanitise(builder: &mut Builder<'_>) -> Result<(), String> {
    for section in builder.sections.iter_mut() {
        // "Values 0 and 1 mean the section has no alignment constraints" (gABI).
        if section.sh_addralign == 0 {
            section.sh_addralign = 1;
        }
        if !section.sh_addralign.is_power_of_two() || section.sh_addralign > MAX_ALIGN {
            return Err(format!(
                "section {:?} has alignment {:#x}",
                String::from_utf8_lossy(section.name.as_slice()),
                section.sh_addralign
            ));
        }
    }
    for segment in builder.segments.iter_mut() {
        if segment.p_align == 0 {
            segment.p_align = 1;
        }
        if !segment.p_align.is_power_of_two() || segment.p_align > MAX_ALIGN {
            return Err(format!("segment alignment {:#x}", segment.p_align));
        }
    }
    if builder.load_align == 0
        || !builder.load_align.is_power_of_two()
        || builder.load_align > MAX_ALIGN
    {
        return Err(format!("PT_LOAD alignment {:#x}", builder.load_align));
    }
    let has = |kind: fn(&SectionData<'_>) -> bool| builder.sections.iter().any(|s| kind(&s.data));
    if has(|d| matches!(d, SectionData::Hash)) && builder.hash_bucket_count == 0 {
        return Err(".hash has no buckets".into());
    }
    if has(|d| matches!(d, SectionData::GnuHash)) {
        let word_bits = if builder.is_64 { 64 } else { 32 };
        if builder.gnu_hash_bucket_count == 0
            || !builder.gnu_hash_bloom_count.is_power_of_two()
            || builder.gnu_hash_bloom_shift >= word_bits
        {
            return Err(".gnu.hash parameters are invalid".into());
        }
    }
    Ok(())
}

/// BFD drops unused section symbols only for x86 targets
/// (`TARGET_KEEP_UNUSED_SECTION_SYMBOLS` in `bfd/elf64-x86-64.c`, `elf32-i386.c`);
/// everywhere else `strip` writes a `STT_SECTION` symbol for every section that lacks
/// one (`elf_map_symbols` in `bfd/elf.c`).
fn keeps_unused_section_symbols(machine: elf::Machine) -> bool {
    !matches!(machine, elf::EM_X86_64 | elf::EM_386 | elf::EM_IAMCU)
}

fn add_section_symbols(builder: &mut Builder<'_>) {
    let has_symtab = builder
        .sections
        .iter()
        .any(|s| !s.delete && matches!(s.data, SectionData::Symbol));
    if !has_symtab {
        return;
    }
    let covered: std::collections::HashSet<usize> = builder
        .symbols
        .iter()
        .filter(|sym| !sym.delete && sym.st_type() == elf::STT_SECTION)
        .filter_map(|sym| sym.section.map(|id| id.index()))
        .collect();
    let wanted: Vec<_> = builder
        .sections
        .iter()
        .filter(|s| !s.delete)
        // Tables BFD synthesises itself are not sections in its model.
        .filter(|s| {
            !matches!(
                s.data,
                SectionData::Symbol
                    | SectionData::SymbolSectionIndex
                    | SectionData::String
                    | SectionData::SectionString
            )
        })
        .filter(|s| !covered.contains(&s.id().index()))
        .map(|s| (s.id(), s.sh_addr))
        .collect();
    for (id, addr) in wanted {
        let symbol = builder.symbols.add();
        symbol.section = Some(id);
        symbol.set_st_info(elf::STB_LOCAL, elf::STT_SECTION);
        symbol.st_value = addr;
    }
}

/// Stripping only removes; a rewrite far larger than the input means the header
/// values were hostile (e.g. a segment at a huge offset), not a real layout.
fn size_limit(input: u64) -> u64 {
    input.saturating_mul(2).saturating_add(1 << 20)
}

struct CountingSink {
    limit: u64,
    reserved: Option<u64>,
    written: u64,
}

impl WritableBuffer for CountingSink {
    fn reserve(&mut self, size: u64) -> Result<(), ()> {
        if size > self.limit {
            return Err(());
        }
        self.reserved = Some(size);
        Ok(())
    }

    fn write_bytes(&mut self, val: &[u8]) {
        self.written = self.written.saturating_add(val.len() as u64);
    }

    fn write_zeros(&mut self, additional: u64) {
        self.written = self.written.saturating_add(additional);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_follow_bfd() {
        for name in [
            ".debug_info",
            ".debug",
            ".zdebug_line",
            ".stab",
            ".stabstr",
            ".line",
            ".gdb_index",
        ] {
            assert!(is_debug_section_name(name.as_bytes()), "{name}");
        }
        for name in [
            ".comment",
            ".note.gnu.build-id",
            ".symtab",
            ".gnu_debuglink",
            ".text",
        ] {
            assert!(!is_debug_section_name(name.as_bytes()), "{name}");
        }
    }

    /// The real samples, compiled here (testkit caches them by source and flags).
    fn sample(build: impl FnOnce(&testkit::samples::Samples) -> std::path::PathBuf) -> Vec<u8> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), std::path::PathBuf::from);
        let samples =
            testkit::samples::Samples::new(root.join("testdata"), target.join("ballast-samples"));
        std::fs::read(build(&samples)).expect("read sample")
    }

    /// Section names, and whether each is loaded.
    fn names(data: &[u8]) -> Vec<(String, bool)> {
        use object::{Object, ObjectSection};
        let file = object::read::elf::ElfFile64::<object::Endianness>::parse(data).expect("ELF");
        file.sections()
            .filter_map(|s| {
                let alloc = matches!(s.flags(), object::SectionFlags::Elf { sh_flags, .. } if sh_flags.0 & elf::SHF_ALLOC.0 != 0);
                Some((s.name().ok()?.to_string(), alloc))
            })
            .collect()
    }

    /// What the programs need at run time, and what identifies the build, survives
    /// either strip: Go's function table and build info, and every note (build ids).
    #[test]
    fn stripped_keeps_go_tables_and_build_ids() {
        use testkit::samples::{GoBuild, RustBuild};
        let go = sample(|s| s.go(GoBuild::Default).expect("go sample"));
        let rust = sample(|s| s.rust(RustBuild::DebugInfo).expect("rust sample"));
        for (label, data, needed) in [
            (
                "go",
                &go,
                &[".gopclntab", ".go.buildinfo", ".note.go.buildid"][..],
            ),
            ("rust", &rust, &[".note.gnu.build-id"][..]),
        ] {
            let before = names(data);
            let dwarf = |sections: &[(String, bool)]| {
                sections
                    .iter()
                    .filter(|(n, alloc)| !alloc && is_debug_section_name(n.as_bytes()))
                    .count()
            };
            assert!(dwarf(&before) > 0, "{label}: no DWARF to strip");
            let has =
                |sections: &[(String, bool)], name: &str| sections.iter().any(|(n, _)| n == name);
            for all in [true, false] {
                let after = names(&stripped(data, all).expect("strip"));
                let notes = before
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| n.starts_with(".note"));
                for name in needed.iter().copied().chain(notes) {
                    assert!(has(&before, name), "{label}: no {name}");
                    assert!(has(&after, name), "{label}: {name} stripped");
                }
                assert_eq!(has(&after, ".symtab"), !all, "{label}");
                assert_eq!(dwarf(&after), 0, "{label}: {after:?}");
            }
        }
    }
}
