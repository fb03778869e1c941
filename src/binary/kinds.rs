//! What an ELF file is, in closed vocabularies: the JSON keys of `BinaryReport` and
//! `Anatomy` are these enums' keys, so a test compares variants, not strings.

use crate::vocabulary::vocabulary;

/// The first guess the layer walk makes from an ELF header (`e_type`), before the
/// binary analysis tells PIE executables from shared libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ElfKind {
    Executable,
    SharedLibrary,
    Object,
}

vocabulary! {
    /// What the ELF file is for (from `e_type`, `DF_1_PIE`, `PT_INTERP`, `DT_SONAME`).
    pub enum ElfType {
        Exec => "exec", "executable";
        Pie => "pie", "position-independent executable";
        Shared => "shared", "shared library";
        Relocatable => "relocatable", "relocatable object";
        Core => "core", "core dump";
        Unknown => "unknown", "unknown";
    }
}

impl ElfType {
    /// A program (as opposed to a library or an object file).
    pub fn is_executable(self) -> bool {
        matches!(self, ElfType::Exec | ElfType::Pie)
    }
}

vocabulary! {
    /// The language the binary was written in, as its evidence shows.
    pub enum Language {
        Go => "go", "Go";
        Rust => "rust", "Rust";
        C => "c/c++", "C/C++";
        Unknown => "unknown", "unknown";
    }
}

vocabulary! {
    /// How the program is linked.
    pub enum Linkage {
        Static => "static", "static";
        StaticPie => "static-pie", "static PIE";
        Dynamic => "dynamic", "dynamic";
        Unknown => "unknown", "unknown";
    }
}

impl Linkage {
    /// Needs no loader and no shared library.
    pub fn is_static(self) -> bool {
        matches!(self, Linkage::Static | Linkage::StaticPie)
    }
}

vocabulary! {
    pub enum ElfClass {
        Elf32 => "elf32", "32-bit";
        Elf64 => "elf64", "64-bit";
    }
}

vocabulary! {
    pub enum Endian {
        Little => "little", "little-endian";
        Big => "big", "big-endian";
    }
}

/// `e_machine`: the architectures ballast names, and the number of any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Machine {
    X86_64,
    I386,
    Aarch64,
    Arm,
    Riscv,
    Ppc64,
    Ppc,
    S390,
    Mips,
    Loongarch,
    Sparcv9,
    Unknown(u16),
}

impl Machine {
    pub fn from_e_machine(machine: u16) -> Self {
        use object::elf;
        match object::elf::Machine(machine) {
            elf::EM_X86_64 => Machine::X86_64,
            elf::EM_386 => Machine::I386,
            elf::EM_AARCH64 => Machine::Aarch64,
            elf::EM_ARM => Machine::Arm,
            elf::EM_RISCV => Machine::Riscv,
            elf::EM_PPC64 => Machine::Ppc64,
            elf::EM_PPC => Machine::Ppc,
            elf::EM_S390 => Machine::S390,
            elf::EM_MIPS => Machine::Mips,
            elf::EM_LOONGARCH => Machine::Loongarch,
            elf::EM_SPARCV9 => Machine::Sparcv9,
            _ => Machine::Unknown(machine),
        }
    }

    /// Debian's multiarch triplet, where the loader looks for libraries.
    pub fn debian_triplet(self) -> Option<&'static str> {
        Some(match self {
            Machine::X86_64 => "x86_64-linux-gnu",
            Machine::Aarch64 => "aarch64-linux-gnu",
            Machine::I386 => "i386-linux-gnu",
            Machine::Arm => "arm-linux-gnueabihf",
            Machine::Riscv => "riscv64-linux-gnu",
            Machine::Ppc64 => "powerpc64le-linux-gnu",
            Machine::S390 => "s390x-linux-gnu",
            _ => return None,
        })
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Machine::X86_64 => "x86_64",
            Machine::I386 => "i386",
            Machine::Aarch64 => "aarch64",
            Machine::Arm => "arm",
            Machine::Riscv => "riscv",
            Machine::Ppc64 => "ppc64",
            Machine::Ppc => "ppc",
            Machine::S390 => "s390",
            Machine::Mips => "mips",
            Machine::Loongarch => "loongarch",
            Machine::Sparcv9 => "sparcv9",
            Machine::Unknown(number) => return write!(f, "unknown({number})"),
        };
        f.write_str(name)
    }
}

impl serde::Serialize for Machine {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

vocabulary! {
    /// Where an ELF file's bytes go, in the order reports list the parts.
    pub enum AnatomyPart {
        Code => "code", "machine code";
        Rodata => "rodata", "read-only data";
        Data => "data", "data and bss";
        Gopclntab => "gopclntab", "Go pc-line table";
        Symbols => "symbols", "symbol tables";
        Dwarf => "dwarf", "DWARF debug info";
        Unwind => "unwind", "unwind tables";
        DynamicLinking => "dynamic_linking", "dynamic linking";
        Other => "other", "other sections";
        HeadersAndPadding => "headers_and_padding", "headers and padding";
    }
}
