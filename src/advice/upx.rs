//! UPX, named with its costs and left out of the ranking.

use super::{Mention, SuggestionKind};
use crate::binary::BinaryReport;
use crate::image::ImageAnalysis;

/// Binaries smaller than this gain too little from an executable packer to mention it.
const UPX_MENTION_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// UPX shrinks executables a lot on disk and little on the wire (layers are gzipped
/// already), and it is paid for at every start; so it is named, with its costs, and
/// left out of the ranking.
pub(super) fn plan(analysis: &ImageAnalysis) -> Option<Mention> {
    let binaries: Vec<&BinaryReport> = analysis
        .visible_binaries()
        .into_iter()
        .map(|b| b.report)
        .filter(|r| r.is_application() && r.size >= UPX_MENTION_MIN_BYTES)
        .collect();
    if binaries.is_empty() {
        return None;
    }
    let total: u64 = binaries.iter().map(|r| r.size).sum();
    let after_strip: u64 = binaries
        .iter()
        .map(|r| r.strip.as_ref().map_or(r.size, |s| s.size_after_strip_all))
        .sum();
    Some(Mention {
        id: SuggestionKind::Upx,
        title: "Pack executables with UPX".into(),
        paths: binaries.iter().map(|r| format!("/{}", r.path)).collect(),
        why_not_ranked: "its saving is an estimate and it is paid for at every container start, in time and memory, which ballast cannot measure from the image".into(),
        evidence: vec![
            format!(
                "{} application {} of {} B ({} B once stripped as suggested above: UPX comes on top of stripping, not instead of it)",
                binaries.len(),
                if binaries.len() == 1 { "binary" } else { "binaries" },
                total,
                after_strip
            ),
            "published results: filebeat 12 MB -> 3.5 MB for +60 ms start-up; k0s -25% for +420 ms".into(),
            "the layer holding a binary is gzipped already, so what nodes pull shrinks far less than the file does".into(),
        ],
        side_effects: vec![
            "start-up: the whole executable is decompressed before main runs (+60 ms to +420 ms in the cases cited)".into(),
            "memory: the unpacked program lives in anonymous memory, so containers on one node no longer share its pages, and under memory pressure they cannot be dropped and read back from the file".into(),
            "some scanners and endpoint-security tools flag packed executables; `go version -m` and ballast's own forensics cannot read a packed binary".into(),
        ],
        source: "elastic/beats#1822 (filebeat), k0sproject/k0s#5470 (k0s)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::{ElfKind, Language, Linkage};
    use crate::image::fixture::{analysis, elf, layer, program};

    #[test]
    fn large_applications_are_mentioned_not_ranked() {
        let big = program(
            "srv/app",
            8 << 20,
            Language::Go,
            Linkage::Static,
            (0, 1 << 20),
        );
        let image = analysis(
            "t",
            vec![layer(
                "app",
                "COPY app /srv",
                vec![elf("srv/app", 8 << 20, ElfKind::Executable)],
                vec![big],
            )],
            &[],
        );
        let mention = plan(&image).expect("a mention");
        assert_eq!(mention.id, SuggestionKind::Upx);
        assert_eq!(mention.paths, ["/srv/app"]);
        assert!(mention.evidence[0].contains(&format!("{} B once stripped", 7 << 20)));
        let small = analysis(
            "t",
            vec![layer(
                "app",
                "COPY",
                vec![elf("a", 10, ElfKind::Executable)],
                vec![],
            )],
            &[],
        );
        assert!(plan(&small).is_none());
    }
}
