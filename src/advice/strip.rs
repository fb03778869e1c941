//! Binaries that `strip --strip-all` would shrink, grouped by the fix their language
//! calls for: `-ldflags="-s -w"` for Go, `strip = true` for Rust, strip(1) otherwise.
//! The saving is exact: the ELF is rewritten in memory (`crate::binary::strip`).
//! `ballast apply --strip-debug` has them priced for `strip --strip-debug` instead.

use std::collections::{BTreeMap, BTreeSet};

use super::{Prose, Removal, StripMode, SuggestionKind};
use crate::binary::{AnatomyPart, BinaryReport, Language};
use crate::image::ImageAnalysis;

/// The fix a binary's language calls for.
#[derive(Debug, Clone, Copy)]
enum StripFix {
    GoLdflags,
    RustProfile,
    Strip,
}

impl StripFix {
    fn of(language: Language) -> Self {
        match language {
            Language::Go => StripFix::GoLdflags,
            Language::Rust => StripFix::RustProfile,
            Language::C | Language::Unknown => StripFix::Strip,
        }
    }

    fn kind(self) -> SuggestionKind {
        match self {
            StripFix::GoLdflags => SuggestionKind::GoLdflags,
            StripFix::RustProfile => SuggestionKind::RustStrip,
            StripFix::Strip => SuggestionKind::StripDebug,
        }
    }
}

/// Binaries (with their layer) that one fix applies to.
type Group<'a> = (StripFix, Vec<(usize, &'a BinaryReport)>);

pub(super) fn plan(analysis: &ImageAnalysis, mode: StripMode) -> Vec<Removal> {
    let mut by_kind: BTreeMap<&'static str, Group<'_>> = BTreeMap::new();
    for binary in analysis.visible_binaries() {
        let Some(strip) = &binary.report.strip else {
            continue;
        };
        if mode.saved(strip) == 0 {
            continue;
        }
        let fix = StripFix::of(binary.report.language);
        by_kind
            .entry(fix.kind().key())
            .or_insert_with(|| (fix, Vec::new()))
            .1
            .push((binary.layer, binary.report));
    }
    by_kind
        .into_values()
        .map(|(fix, binaries)| Removal {
            kind: fix.kind(),
            files: binaries
                .iter()
                .map(|(layer, report)| (report.path.clone(), report.size, *layer))
                .collect(),
            strip: true,
            prose: prose(fix, &binaries, mode),
        })
        .collect()
}

/// What each binary carries, what removing it costs, and the fix.
fn prose(fix: StripFix, binaries: &[(usize, &BinaryReport)], mode: StripMode) -> Prose {
    let mut evidence = Vec::new();
    let mut go_versions = BTreeSet::new();
    for (_, report) in binaries {
        let Some(strip) = &report.strip else { continue };
        let groups = report
            .anatomy
            .as_ref()
            .map(|a| {
                a.groups
                    .iter()
                    .filter(|g| matches!(g.group, AnatomyPart::Dwarf | AnatomyPart::Symbols))
                    .map(|g| format!("{} {} B", g.group, g.bytes))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        evidence.push(format!(
            "/{}: {} B; strip --strip-debug leaves {} B, --strip-all {} B (exact: the ELF rewritten in memory){}",
            report.path,
            report.size,
            strip.size_after_strip_debug,
            strip.size_after_strip_all,
            if groups.is_empty() { String::new() } else { format!("; carries {groups}") }
        ));
        if let Some(go) = &report.go {
            go_versions.insert(go.version.clone());
        }
    }
    let mut prose = prose_for(fix, evidence, &go_versions);
    if mode == StripMode::Debug {
        prose.notes.push(
            "priced for strip --strip-debug (debug info only, the symbol table stays): each binary's size after it, not the --strip-all figure".into(),
        );
    }
    prose
}

fn prose_for(fix: StripFix, evidence: Vec<String>, go_versions: &BTreeSet<String>) -> Prose {
    match fix {
        StripFix::GoLdflags => {
            let old_go = go_versions
                .iter()
                .any(|v| go_minor(v).is_some_and(|minor| minor < 22));
            Prose {
                title: "Build Go binaries without symbol table and DWARF".into(),
                fix: format!(
                    "go build -ldflags=\"-s -w\" -o app .\n# {}",
                    if old_go {
                        "this binary's Go is older than 1.22: pass both -s and -w"
                    } else {
                        "since Go 1.22 -s implies -w"
                    }
                ),
                side_effects: vec![
                    "-s drops the symbol table: external profilers (perf, eBPF tools) and govulncheck's binary/symbol mode lose function names; Go's own stack traces and pprof keep working (they use .gopclntab, which stays)".into(),
                    "-w drops DWARF: no source-level debugging of the shipped binary (keep an unstripped copy as a build artifact)".into(),
                ],
                evidence,
                notes: vec![
                    "the figure is what strip --strip-all leaves; go build -ldflags=\"-s -w\" links within a few dozen bytes of it (ballast's tests compare both on the sample service)".into(),
                ],
                paths: None,
            }
        }
        StripFix::RustProfile => Prose {
            title: "Strip Rust binaries in the release profile".into(),
            fix: "[profile.release]\nstrip = true        # or \"debuginfo\" to keep the symbol table for profilers".into(),
            side_effects: vec![
                "strip = true removes the symbol table: perf and other profilers show addresses, not names; panics still print messages, backtraces lose function names".into(),
            ],
            evidence,
            notes: vec![],
            paths: None,
        },
        StripFix::Strip => Prose {
            title: "Strip debug info and symbols from shipped binaries".into(),
            fix: "RUN strip --strip-all <binary>   # or link with -s; keep an unstripped copy for debugging".into(),
            side_effects: vec!["no symbols or source-level debugging in the image".into()],
            evidence,
            notes: vec![],
            paths: None,
        },
    }
}

/// `go1.21.5` → 21.
fn go_minor(version: &str) -> Option<u32> {
    version
        .strip_prefix("go1.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_minor_versions() {
        assert_eq!(go_minor("go1.21.5"), Some(21));
        assert_eq!(go_minor("go1.22"), Some(22));
        assert_eq!(go_minor("devel +abc"), None);
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::binary::{ElfKind, Linkage};
    use crate::image::fixture::{analysis, elf, layer, program};

    #[test]
    fn unstripped_binaries_are_grouped_by_their_language_fix() {
        let go = program(
            "srv/api",
            9_000_000,
            Language::Go,
            Linkage::Static,
            (2_000_000, 400_000),
        );
        let rust = program(
            "srv/worker",
            4_000_000,
            Language::Rust,
            Linkage::Dynamic,
            (0, 300_000),
        );
        let stripped = program("srv/tool", 1_000_000, Language::C, Linkage::Static, (0, 0));
        let image = analysis(
            "t",
            vec![layer(
                "app",
                "COPY . /srv",
                vec![
                    elf("srv/api", 9_000_000, ElfKind::Executable),
                    elf("srv/worker", 4_000_000, ElfKind::Executable),
                    elf("srv/tool", 1_000_000, ElfKind::Executable),
                ],
                vec![go, rust, stripped],
            )],
            &[],
        );
        let removals = plan(&image, StripMode::All);
        let kinds: Vec<SuggestionKind> = removals.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [SuggestionKind::GoLdflags, SuggestionKind::RustStrip]
        );
        assert!(removals.iter().all(|r| r.strip));
        assert!(removals[0]
            .prose
            .fix
            .starts_with("go build -ldflags=\"-s -w\""));
        assert!(removals[0].prose.evidence[0].contains("--strip-all 6600000 B"));
        assert!(removals[0].prose.evidence[0].contains("dwarf 2000000 B"));
        assert!(removals[1].prose.fix.contains("strip = true"));
    }
}
