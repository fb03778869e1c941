//! Where the bytes of an ELF file go, by section group. Every byte of the file is
//! counted exactly once: section ranges are clipped to the file, overlaps are given
//! to the section that starts first, and whatever no section covers (ELF header,
//! program and section header tables, alignment padding) is its own line, so the
//! groups always add up to the file size.

use object::elf;
use serde::Serialize;

use super::elf::Section;
use super::kinds::AnatomyPart;
use super::strip::is_debug_section_name;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AnatomyGroup {
    pub group: AnatomyPart,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Anatomy {
    /// In a fixed order; groups with no bytes are left out except `headers_and_padding`.
    pub groups: Vec<AnatomyGroup>,
    /// DWARF stored zlib/zstd-compressed (`SHF_COMPRESSED` or `.zdebug_*`): its bytes
    /// are already the compressed size.
    pub dwarf_compressed: bool,
}

fn group_of(section: &Section<'_>) -> AnatomyPart {
    let name = section.name.as_str();
    let t = section.sh_type;
    if !section.is_alloc() && is_debug_section_name(name.as_bytes()) {
        return AnatomyPart::Dwarf;
    }
    if name == ".gopclntab" {
        return AnatomyPart::Gopclntab;
    }
    if t == elf::SHT_SYMTAB.0
        || t == elf::SHT_SYMTAB_SHNDX.0
        || name == ".strtab"
        || name == ".gosymtab"
    {
        return AnatomyPart::Symbols;
    }
    if name.starts_with(".eh_frame") || name == ".gcc_except_table" || name.starts_with(".ARM.ex") {
        return AnatomyPart::Unwind;
    }
    let dynamic_types = [
        elf::SHT_DYNSYM.0,
        elf::SHT_HASH.0,
        elf::SHT_GNU_HASH.0,
        elf::SHT_GNU_VERSYM.0,
        elf::SHT_GNU_VERDEF.0,
        elf::SHT_GNU_VERNEED.0,
        elf::SHT_REL.0,
        elf::SHT_RELA.0,
        elf::SHT_RELR.0,
        elf::SHT_DYNAMIC.0,
    ];
    if dynamic_types.contains(&t) || name == ".dynstr" || name == ".interp" {
        return AnatomyPart::DynamicLinking;
    }
    if t == elf::SHT_NOTE.0 || !section.is_alloc() {
        return AnatomyPart::Other;
    }
    if section.is_exec() {
        return AnatomyPart::Code;
    }
    if section.is_write() {
        return AnatomyPart::Data;
    }
    AnatomyPart::Rodata
}

pub(crate) fn anatomy(sections: &[Section<'_>], file_size: u64) -> Anatomy {
    let mut ranges: Vec<(u64, u64, usize)> = sections
        .iter()
        .filter(|s| s.occupies_file() && s.size > 0)
        .filter_map(|s| {
            let start = s.offset.min(file_size);
            let end = s.offset.saturating_add(s.size).min(file_size);
            let group = group_of(s) as usize;
            (end > start).then_some((start, end, group))
        })
        .collect();
    ranges.sort_unstable();
    let parts = AnatomyPart::ALL;
    let mut totals = vec![0u64; parts.len()];
    let mut covered = 0u64;
    for (start, end, group) in ranges {
        let start = start.max(covered);
        if end > start {
            totals[group] += end - start;
            covered = end;
        }
    }
    // Whatever no section covers is headers and padding (the last part).
    let counted: u64 = totals.iter().sum();
    totals[AnatomyPart::HeadersAndPadding as usize] = file_size - counted;
    let dwarf_compressed = sections.iter().any(|s| {
        !s.is_alloc()
            && (s.name.starts_with(".zdebug")
                || (s.name.starts_with(".debug") && s.is_compressed()))
    });
    Anatomy {
        groups: parts
            .iter()
            .zip(totals)
            .filter(|(g, bytes)| *bytes > 0 || **g == AnatomyPart::HeadersAndPadding)
            .map(|(group, bytes)| AnatomyGroup {
                group: *group,
                bytes,
            })
            .collect(),
        dwarf_compressed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, offset: u64, size: u64, flags: u64) -> Section<'static> {
        Section {
            name: name.into(),
            sh_type: elf::SHT_PROGBITS.0,
            flags,
            addr: 0,
            offset,
            size,
            data: None,
        }
    }

    #[test]
    fn overlaps_and_overruns_still_add_up() {
        let alloc_exec = elf::SHF_ALLOC.0 | elf::SHF_EXECINSTR.0;
        let sections = [
            section(".text", 64, 100, alloc_exec),
            section(".rodata", 100, 100, elf::SHF_ALLOC.0),
            section(".debug_info", 150, 1 << 40, 0),
            section(".comment", u64::MAX - 1, 10, 0),
        ];
        let anatomy = anatomy(&sections, 400);
        let total: u64 = anatomy.groups.iter().map(|g| g.bytes).sum();
        assert_eq!(total, 400);
        let get = |name| {
            anatomy
                .groups
                .iter()
                .find(|g| g.group == name)
                .map(|g| g.bytes)
        };
        assert_eq!(get(AnatomyPart::Code), Some(100));
        assert_eq!(get(AnatomyPart::Rodata), Some(36));
        assert_eq!(get(AnatomyPart::Dwarf), Some(200));
        assert_eq!(get(AnatomyPart::HeadersAndPadding), Some(64));
    }
}
