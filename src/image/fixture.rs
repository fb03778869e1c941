//! In-memory image models for unit tests of the analyses and renderers: layers of
//! entries and forensic records put together as `read` would, without a source.

use std::sync::Arc;

use super::ImageAnalysis;
use crate::binary::{
    Anatomy, AnatomyGroup, AnatomyPart, BinaryReport, ElfClass, ElfKind, ElfType, Endian, Language,
    Linkage, Machine, StripPrediction,
};
use crate::digest::Digest;
use crate::layer::{Compression, Entry, EntryKind, LayerScan};
use crate::source::manifest::{HistoryEntry, ImageConfig, LayerDescriptor, Platform};
use crate::source::ResolvedImage;

pub(crate) const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub(crate) fn file(path: &str, size: u64) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File,
        size,
        mode: 0o644,
        link_target: None,
        elf: None,
    }
}

pub(crate) fn dir(path: &str) -> Entry {
    Entry {
        kind: EntryKind::Dir,
        ..file(path, 0)
    }
}

pub(crate) fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        kind: EntryKind::Symlink,
        link_target: Some(target.into()),
        ..file(path, 0)
    }
}

pub(crate) fn whiteout(path: &str) -> Entry {
    Entry {
        kind: EntryKind::Whiteout,
        ..file(path, 0)
    }
}

pub(crate) fn elf(path: &str, size: u64, kind: ElfKind) -> Entry {
    Entry {
        mode: 0o755,
        elf: Some(kind),
        ..file(path, size)
    }
}

/// A forensic record as `binary::analyze` writes one for a linked program, with a
/// strip prediction that removes `debug + symbols` bytes.
pub(crate) fn program(
    path: &str,
    size: u64,
    language: Language,
    linkage: Linkage,
    debug_and_symbols: (u64, u64),
) -> BinaryReport {
    let (debug, symbols) = debug_and_symbols;
    let mut report = BinaryReport::empty(path, size);
    report.class = Some(ElfClass::Elf64);
    report.endian = Some(Endian::Little);
    report.machine = Some(Machine::X86_64);
    report.elf_type = if linkage == Linkage::Dynamic {
        ElfType::Pie
    } else {
        ElfType::Exec
    };
    report.language = language;
    report.linkage = linkage;
    report.has_debug_info = debug > 0;
    report.has_symbol_table = symbols > 0;
    if linkage == Linkage::Dynamic {
        report.interpreter = Some("/lib64/ld-linux-x86-64.so.2".into());
        report.needed = vec!["libc.so.6".into()];
        report.glibc_version_needed = Some("GLIBC_2.34".into());
    }
    let code = size.saturating_sub(debug + symbols) * 3 / 4;
    let rest = size.saturating_sub(debug + symbols + code);
    report.anatomy = Some(Anatomy {
        groups: [
            (AnatomyPart::Code, code),
            (AnatomyPart::Symbols, symbols),
            (AnatomyPart::Dwarf, debug),
            (AnatomyPart::HeadersAndPadding, rest),
        ]
        .into_iter()
        .filter(|(part, bytes)| *bytes > 0 || *part == AnatomyPart::HeadersAndPadding)
        .map(|(group, bytes)| AnatomyGroup { group, bytes })
        .collect(),
        dwarf_compressed: false,
    });
    report.strip = Some(StripPrediction {
        size_after_strip_debug: size - debug,
        size_after_strip_all: size - debug - symbols,
        saved_by_strip_debug: debug,
        saved_by_strip_all: debug + symbols,
    });
    report
}

/// A shared library's record.
pub(crate) fn library(path: &str, size: u64, soname: &str) -> BinaryReport {
    let mut report = program(path, size, Language::C, Linkage::Dynamic, (0, 0));
    report.elf_type = ElfType::Shared;
    report.soname = Some(soname.into());
    report.interpreter = None;
    report.needed = vec![];
    report.glibc_version_needed = None;
    report
}

/// One layer: its blob is named by `blob`, so two images built with the same name
/// share it.
pub(crate) struct LayerFixture {
    pub blob: &'static str,
    pub created_by: &'static str,
    pub entries: Vec<Entry>,
    pub binaries: Vec<BinaryReport>,
}

pub(crate) fn layer(
    blob: &'static str,
    created_by: &'static str,
    entries: Vec<Entry>,
    binaries: Vec<BinaryReport>,
) -> LayerFixture {
    LayerFixture {
        blob,
        created_by,
        entries,
        binaries,
    }
}

/// The image model of `layers`, with `entrypoint` as the config's.
pub(crate) fn analysis(
    reference: &str,
    layers: Vec<LayerFixture>,
    entrypoint: &[&str],
) -> ImageAnalysis {
    let scans: Vec<Arc<LayerScan>> = layers
        .iter()
        .map(|fixture| {
            // A tar block per entry plus the data, rounded as tar rounds it.
            let uncompressed: u64 = fixture
                .entries
                .iter()
                .map(|e| 512 + e.size.div_ceil(512) * 512)
                .sum::<u64>()
                + 1024;
            let compressed = uncompressed / 3 + 20;
            Arc::new(LayerScan {
                descriptor: LayerDescriptor {
                    digest: Digest::of_bytes(fixture.blob.as_bytes()),
                    media_type: GZIP_LAYER.into(),
                    size: compressed,
                },
                compression: Compression::Gzip,
                compressed_bytes: compressed,
                uncompressed_bytes: uncompressed,
                diff_id: Digest::of_bytes(format!("tar of {}", fixture.blob).as_bytes()),
                entries: fixture.entries.clone(),
                binaries: fixture.binaries.clone(),
                zstd: None,
                gzip_level: None,
            })
        })
        .collect();
    let config = ImageConfig {
        platform: Platform::default(),
        diff_ids: scans.iter().map(|s| s.diff_id.clone()).collect(),
        history: layers
            .iter()
            .map(|l| HistoryEntry {
                created_by: Some(l.created_by.into()),
                empty_layer: false,
            })
            .collect(),
        user: None,
        entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
        cmd: vec![],
    };
    let image = ResolvedImage {
        reference: reference.into(),
        manifest_digest: Digest::of_bytes(format!("manifest of {reference}").as_bytes()),
        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        platform: Platform::default(),
        config_digest: Digest::of_bytes(format!("config of {reference}").as_bytes()),
        config_size: 0,
        config,
        layers: scans.iter().map(|s| s.descriptor.clone()).collect(),
    };
    ImageAnalysis::from_scans(image, scans)
}

/// A Debian-like base: libc, a shell, CA certificates, apt lists later removed.
pub(crate) fn debian_base() -> LayerFixture {
    layer(
        "debian-base",
        "ADD rootfs.tar.xz /",
        vec![
            dir("etc"),
            file("etc/passwd", 900),
            file("etc/ssl/certs/ca-certificates.crt", 210_000),
            symlink("lib64", "usr/lib64"),
            dir("usr/lib64"),
            symlink(
                "usr/lib64/ld-linux-x86-64.so.2",
                "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            ),
            elf(
                "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                210_000,
                ElfKind::SharedLibrary,
            ),
            elf(
                "usr/lib/x86_64-linux-gnu/libc.so.6",
                1_900_000,
                ElfKind::SharedLibrary,
            ),
            elf("usr/bin/bash", 1_300_000, ElfKind::Executable),
            file("usr/share/doc/bash/copyright", 18_000),
            file(
                "var/lib/apt/lists/deb.debian.org_dists_bookworm_main_binary-amd64_Packages.lz4",
                8_700_000,
            ),
        ],
        vec![
            library("usr/lib/x86_64-linux-gnu/libc.so.6", 1_900_000, "libc.so.6"),
            library(
                "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                210_000,
                "ld-linux-x86-64.so.2",
            ),
            program(
                "usr/bin/bash",
                1_300_000,
                Language::C,
                Linkage::Dynamic,
                (0, 0),
            ),
        ],
    )
}
