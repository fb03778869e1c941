//! What the ELF files in an image are made of. (Forensics are filled in by the
//! binary analysis work; this is the interface the layer pipeline calls.)

use serde::Serialize;

use crate::layer::ElfKind;

/// The forensic record of one ELF file.
#[derive(Debug, Clone, Serialize)]
pub struct BinaryReport {
    pub path: String,
    pub size: u64,
    pub language: String,
    pub linkage: String,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
}

impl BinaryReport {
    pub fn skipped(path: &str, size: u64, reason: &str) -> Self {
        Self {
            path: path.to_string(),
            size,
            language: "unknown".into(),
            linkage: "unknown".into(),
            interpreter: None,
            needed: vec![],
            malformed: Some(format!("not analysed: {reason}")),
        }
    }
}

/// Recognises an ELF header from its first bytes and says what kind of file it is.
pub fn elf_kind(head: &[u8]) -> Option<ElfKind> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let little_endian = head[5] == 1;
    let e_type = if little_endian {
        u16::from_le_bytes([head[16], head[17]])
    } else {
        u16::from_be_bytes([head[16], head[17]])
    };
    match e_type {
        1 => Some(ElfKind::Object),
        2 => Some(ElfKind::Executable),
        // ET_DYN is both PIE executables and shared libraries; the binary analysis
        // tells them apart by PT_INTERP, the layer walk only needs a first guess.
        3 => Some(ElfKind::SharedLibrary),
        _ => None,
    }
}

pub fn analyze(path: &str, bytes: &[u8]) -> BinaryReport {
    BinaryReport {
        path: path.to_string(),
        size: bytes.len() as u64,
        language: "unknown".into(),
        linkage: "unknown".into(),
        interpreter: None,
        needed: vec![],
        malformed: None,
    }
}
