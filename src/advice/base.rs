//! A smaller base: the image reduced to what its application binaries need (the
//! binaries, the libraries they load, CA certificates, tzdata, passwd), and the
//! distroless or scratch base that provides it. The saving is measured by rebuilding
//! every layer with only those files.

use std::collections::BTreeSet;

use super::{BaseAddition, Confidence, Prose, Removal, SuggestionKind};
use crate::binary::{BinaryReport, Language};
use crate::category;
use crate::image::ImageAnalysis;
use crate::layer::{Compression, EntryKind};

/// The base a planner picks for the binaries.
#[derive(Debug, Clone, Copy)]
enum Base {
    StaticMusl,
    Static,
    DistrolessCc,
    DistrolessGlibc,
}

impl Base {
    /// The image the fix names and whose published size the estimate uses.
    fn published(self) -> Published {
        match self {
            Base::StaticMusl | Base::Static => Published {
                image: "gcr.io/distroless/static-debian12:nonroot",
                uncompressed_bytes: 2_400_000,
            },
            Base::DistrolessCc => Published {
                image: "gcr.io/distroless/cc-debian12:nonroot",
                uncompressed_bytes: 22_600_000,
            },
            Base::DistrolessGlibc => Published {
                image: "gcr.io/distroless/base-debian12:nonroot",
                uncompressed_bytes: 20_000_000,
            },
        }
    }

    /// The Dockerfile lines that move `apps` onto this base (or onto `from`, the
    /// base the user named).
    fn fix(self, apps: &[String], from: Option<&str>) -> String {
        let copies: Vec<String> = apps
            .iter()
            .map(|p| format!("COPY --from=build {p} {p}"))
            .collect();
        let copies = copies.join("\n");
        let from = from.unwrap_or(self.published().image);
        match self {
            Base::StaticMusl => format!(
                "# a musl binary links statically without trouble:\n\
                 #   Rust: cargo build --release --target x86_64-unknown-linux-musl (static by default)\n\
                 #   Go:   CGO_ENABLED=0 go build\n\
                 #   C:    cc -static\n\
                 FROM {from}\n{copies}"
            ),
            Base::Static => format!(
                "FROM {from}   # CA certificates, tzdata, passwd\n{copies}\n\
                 # or FROM scratch, copying /etc/ssl/certs and /usr/share/zoneinfo too"
            ),
            Base::DistrolessCc => format!(
                "FROM {from}   # glibc, libgcc_s, libstdc++, CA certificates, tzdata\n{copies}\n\
                 # Rust: -C target-feature=+crt-static (or a musl target) makes the binary static, then distroless/static or scratch"
            ),
            Base::DistrolessGlibc => format!(
                "FROM {from}   # glibc, libssl, CA certificates, tzdata\n{copies}\n\
                 # Go: CGO_ENABLED=0 go build makes the binary static, then distroless/static or scratch"
            ),
        }
    }

    fn kind(self) -> SuggestionKind {
        match self {
            Base::StaticMusl => SuggestionKind::StaticMusl,
            Base::Static => SuggestionKind::StaticBase,
            Base::DistrolessCc => SuggestionKind::DistrolessCc,
            Base::DistrolessGlibc => SuggestionKind::DistrolessBase,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Base::Static => {
                "Ship the static binary on a minimal base (distroless/static or scratch)"
            }
            Base::DistrolessCc => {
                "Move to distroless/cc: the binary needs glibc and libgcc_s, not a distribution"
            }
            Base::StaticMusl => "Link the musl binary statically and ship it on a minimal base",
            Base::DistrolessGlibc => {
                "Move to distroless/base: the binary needs glibc, not a distribution"
            }
        }
    }
}

/// A published base: the image a fix names, and its size as published.
struct Published {
    image: &'static str,
    uncompressed_bytes: u64,
}

/// Where the published sizes come from.
const PUBLISHED_SOURCE: &str = "published uncompressed sizes of the distroless debian12 images: static ~2.4 MB, base ~20 MB, cc ~22.6 MB (GoogleContainerTools/distroless README; third-party measurements such as keptn/lifecycle-toolkit#1087: base 20.4 MB, static 2.43 MB); pass --base-image REF to measure against the real one";

/// The newest glibc a distroless debian12 base has.
const DISTROLESS_GLIBC: (u32, u32) = (2, 36);

/// A base change: the image reduced to its application binaries (measured by the
/// rebuild) and what the new base adds back.
pub(super) struct BasePlan {
    pub removal: Removal,
    pub addition: BaseAddition,
}

/// The application binaries: executables outside the system and toolchain paths.
pub(super) fn applications(analysis: &ImageAnalysis) -> Vec<&BinaryReport> {
    analysis
        .visible_binaries()
        .into_iter()
        .map(|b| b.report)
        .filter(|r| r.elf_type.is_executable())
        .filter(|r| !category::is_system_path(&r.path))
        .filter(|r| !category::is_toolchain(&r.path))
        .collect()
}

/// The image reduced to its application binaries: every other file is removed
/// from every layer (the new base brings the libraries, certificates and tzdata
/// instead), the rebuild measures that, and the base's own size is added back:
/// read from `given` (`--base-image`) when there is one, else the published size.
pub(super) fn plan(analysis: &ImageAnalysis, given: Option<&ImageAnalysis>) -> Option<BasePlan> {
    let apps = applications(analysis);
    if apps.is_empty() || apps.iter().any(|a| a.malformed.is_some()) {
        return None;
    }
    let all_static = apps.iter().all(|a| a.linkage.is_static());
    let needs = if all_static {
        Needs::default()
    } else {
        let needs = libraries(analysis, &apps)?;
        let too_new = apps.iter().any(|app| {
            app.glibc_version_needed
                .as_deref()
                .and_then(glibc_version)
                .is_some_and(|needed| needed > DISTROLESS_GLIBC)
        });
        if too_new && given.is_none() {
            return None;
        }
        needs
    };
    let kept: BTreeSet<&str> = apps.iter().map(|a| a.path.as_str()).collect();
    let mut remove = Vec::new();
    for (index, layer) in analysis.layers.iter().enumerate() {
        for entry in &layer.entries {
            if entry.kind == EntryKind::File && !kept.contains(entry.path.as_str()) {
                remove.push((entry.path.clone(), entry.size, index));
            }
        }
    }
    let removed_bytes: u64 = remove.iter().map(|(_, size, _)| size).sum();
    if removed_bytes < 1024 * 1024 {
        // Already minimal: the base is not where the bytes are.
        return None;
    }
    let app_list: Vec<String> = apps.iter().map(|a| format!("/{}", a.path)).collect();
    let mut evidence = app_evidence(&apps);
    let runtime = RuntimeFiles::of(analysis);
    evidence.push(format!(
        "the new base provides what the binaries use besides themselves: {} {} here ({}{}libraries the binaries load, passwd/group when present)",
        needs.files.len() + runtime.files.len(),
        if needs.files.len() + runtime.files.len() == 1 { "file" } else { "files" },
        if runtime.certs { "CA certificates, " } else { "" },
        if runtime.tzdata { "tzdata, " } else { "" },
    ));
    let base = if needs.uses_musl {
        Base::StaticMusl
    } else if all_static {
        Base::Static
    } else if needs.libgcc {
        Base::DistrolessCc
    } else {
        Base::DistrolessGlibc
    };
    let given_name = given.map(|g| g.info().reference);
    let mut side_effects = vec![
        "no shell or package manager in the image: debug with `kubectl debug` / an ephemeral container".to_string(),
    ];
    let addition = match given {
        Some(given) => {
            let missing = missing_in(given, &apps);
            if missing.is_empty() {
                if !all_static {
                    evidence.push(format!(
                        "{} has every library the binaries load",
                        given.info().reference
                    ));
                }
            } else {
                let line = format!(
                    "{} lacks what the binaries load: {}: they would not start on it as it is",
                    given.info().reference,
                    missing.join(", ")
                );
                evidence.push(line.clone());
                side_effects.insert(0, line);
            }
            BaseAddition {
                image: given.info().reference,
                compressed_bytes: given.compressed_bytes(),
                uncompressed_bytes: given.uncompressed_bytes(),
                confidence: Confidence::Exact,
                source: "read here (--base-image): its layers' stored and unpacked sizes".into(),
                gross_saved_bytes: 0,
                gross_saved_compressed_bytes: 0,
            }
        }
        None => {
            let published = base.published();
            let (ratio, ratio_source) = compression_ratio(analysis);
            BaseAddition {
                image: published.image.into(),
                compressed_bytes: (published.uncompressed_bytes as f64 * ratio).round() as u64,
                uncompressed_bytes: published.uncompressed_bytes,
                confidence: Confidence::Estimate,
                source: format!("{PUBLISHED_SOURCE}; compressed at {ratio_source}"),
                gross_saved_bytes: 0,
                gross_saved_compressed_bytes: 0,
            }
        }
    };
    Some(BasePlan {
        removal: Removal {
            kind: base.kind(),
            files: remove,
            strip: false,
            prose: Prose {
                title: base.title().into(),
                fix: base.fix(&app_list, given_name.as_deref()),
                side_effects,
                evidence,
                notes: vec![],
                paths: Some(app_list),
            },
        },
        addition,
    })
}

/// What the binaries load that `base` does not have: the interpreter and the
/// `DT_NEEDED` libraries, looked up in its filesystem the way the loader would.
fn missing_in(base: &ImageAnalysis, apps: &[&BinaryReport]) -> Vec<String> {
    let exists = |path: &str| base.fs.lookup(path).is_some();
    let mut missing = BTreeSet::new();
    for app in apps {
        if let Some(interpreter) = &app.interpreter {
            if !exists(interpreter) {
                missing.insert(interpreter.clone());
            }
        }
        for (name, found) in crate::binary::resolve_needed(app, exists) {
            if found.is_none() {
                missing.insert(name);
            }
        }
    }
    missing.into_iter().collect()
}

/// How well this image's own files compress, to turn a published uncompressed
/// size into a compressed one: the first sizeable compressed layer's ratio (the
/// distribution base, as a rule, whose kind of files a distroless base holds).
fn compression_ratio(analysis: &ImageAnalysis) -> (f64, String) {
    analysis
        .layers
        .iter()
        .enumerate()
        .find(|(_, l)| l.compression != Compression::None && l.uncompressed_bytes >= 1024 * 1024)
        .map(|(index, l)| {
            let ratio = l.compressed_bytes as f64 / l.uncompressed_bytes as f64;
            (
                ratio,
                format!(
                    "this image's layer {index} ratio ({:.0}%), an estimate",
                    ratio * 100.0
                ),
            )
        })
        .unwrap_or((
            0.5,
            "half the size, an estimate (no compressed layer of 1 MiB or more here to judge from)"
                .into(),
        ))
}

/// What dynamically linked programs load, found in the image.
#[derive(Debug, Default)]
struct Needs {
    /// The loaders and libraries (root-relative, links resolved).
    files: BTreeSet<String>,
    libgcc: bool,
    uses_musl: bool,
}

/// Every library the apps load, and what those load in turn; `None` when one is
/// missing (the image does not run as it is, so no smaller base is planned).
fn libraries(analysis: &ImageAnalysis, apps: &[&BinaryReport]) -> Option<Needs> {
    let binaries = analysis.visible_binaries();
    // The file a path leads to, through the image's symlinks and hard links.
    let resolve = |path: &str| analysis.fs.lookup(path).map(|(resolved, _)| resolved);
    let exists = |path: &str| resolve(path).is_some();
    let mut needs = Needs::default();
    let mut queue: Vec<&BinaryReport> = apps.to_vec();
    let mut seen = BTreeSet::new();
    while let Some(report) = queue.pop() {
        if let Some(interpreter) = &report.interpreter {
            if interpreter.contains("ld-musl") {
                needs.uses_musl = true;
            }
            if let Some(found) = resolve(interpreter) {
                needs.files.insert(found);
            }
        }
        for (name, found) in crate::binary::resolve_needed(report, exists) {
            if name.starts_with("libgcc_s") || name.starts_with("libstdc++") {
                needs.libgcc = true;
            }
            let found = found.and_then(|p| resolve(&p))?;
            needs.files.insert(found.clone());
            if seen.insert(found.clone()) {
                if let Some(library) = binaries.iter().find(|b| b.report.path == found) {
                    queue.push(library.report);
                }
            }
        }
    }
    Some(needs)
}

/// Files a minimal base must keep, when the image has them.
struct RuntimeFiles {
    files: Vec<String>,
    certs: bool,
    tzdata: bool,
}

impl RuntimeFiles {
    fn of(analysis: &ImageAnalysis) -> Self {
        let files: Vec<String> = analysis
            .fs
            .visible_files()
            .map(|(p, _)| p.clone())
            .filter(|p| {
                p.starts_with("etc/ssl/certs/")
                    || p.starts_with("usr/share/zoneinfo/")
                    || ["etc/passwd", "etc/group", "etc/nsswitch.conf"].contains(&p.as_str())
            })
            .collect();
        Self {
            certs: files.iter().any(|p| p.starts_with("etc/ssl/certs/")),
            tzdata: files.iter().any(|p| p.starts_with("usr/share/zoneinfo/")),
            files,
        }
    }
}

/// What each application is and loads, in a line (two for a Go binary cgo links).
fn app_evidence(apps: &[&BinaryReport]) -> Vec<String> {
    let mut evidence = Vec::new();
    for app in apps {
        evidence.push(format!(
            "/{}: {} {}, {}{}",
            app.path,
            app.language,
            app.linkage,
            app.interpreter
                .as_deref()
                .map_or("no interpreter".to_string(), |i| format!("interpreter {i}")),
            if app.needed.is_empty() {
                String::new()
            } else {
                format!(
                    ", needs {} (all present in the image)",
                    app.needed.join(", ")
                )
            }
        ));
        if app.language == Language::Go && !app.linkage.is_static() {
            let cgo = app
                .go
                .as_ref()
                .and_then(|g| g.settings.get("CGO_ENABLED"))
                .unwrap_or("?");
            evidence.push(format!(
                "/{}: a Go binary linked dynamically (CGO_ENABLED={cgo}) that needs only {}: CGO_ENABLED=0 would make it static, unless a dependency needs cgo",
                app.path,
                app.needed.join(", ")
            ));
        }
    }
    evidence
}

fn glibc_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.strip_prefix("GLIBC_")?.split_once('.')?;
    Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::{ElfKind, Linkage};
    use crate::image::fixture::{analysis, debian_base, elf, file, layer, program};

    fn image_with(linkage: Linkage) -> ImageAnalysis {
        analysis(
            "t",
            vec![
                debian_base(),
                layer(
                    "app",
                    "COPY app /usr/local/bin/app",
                    vec![elf("usr/local/bin/app", 6_000_000, ElfKind::Executable)],
                    vec![program(
                        "usr/local/bin/app",
                        6_000_000,
                        Language::Rust,
                        linkage,
                        (0, 0),
                    )],
                ),
            ],
            &["/usr/local/bin/app"],
        )
    }

    #[test]
    fn a_static_binary_moves_to_a_static_base() {
        let plan = plan(&image_with(Linkage::Static), None).expect("a base plan");
        let removal = &plan.removal;
        assert_eq!(removal.kind, SuggestionKind::StaticBase);
        assert_eq!(
            removal.prose.paths.as_deref(),
            Some(&["/usr/local/bin/app".to_string()][..])
        );
        assert!(removal
            .prose
            .fix
            .starts_with("FROM gcr.io/distroless/static-debian12"));
        // Everything but the binary goes: the new base brings certificates and passwd.
        let removed: Vec<&str> = removal.files.iter().map(|(p, _, _)| p.as_str()).collect();
        assert!(removed.contains(&"usr/bin/bash"));
        assert!(removed.contains(&"etc/ssl/certs/ca-certificates.crt"));
        assert!(!removed.contains(&"usr/local/bin/app"));
        // The published size stands in for the base, compressed at the image's ratio.
        let addition = &plan.addition;
        assert_eq!(addition.confidence, Confidence::Estimate);
        assert_eq!(addition.uncompressed_bytes, 2_400_000);
        let base = &image_with(Linkage::Static).layers[0];
        let ratio = base.compressed_bytes as f64 / base.uncompressed_bytes as f64;
        assert_eq!(
            addition.compressed_bytes,
            (2_400_000.0 * ratio).round() as u64
        );
        assert!(addition.source.contains("--base-image"));
    }

    #[test]
    fn a_glibc_binary_needs_a_base_with_its_loader_and_libc() {
        let image = image_with(Linkage::Dynamic);
        let plan = plan(&image, None).expect("a base plan");
        assert_eq!(plan.removal.kind, SuggestionKind::DistrolessBase);
        // /lib64/ld-linux-x86-64.so.2 reaches the loader through two symlinks: found,
        // so the plan stands, and the loader is counted among what the base provides.
        assert!(plan
            .removal
            .prose
            .evidence
            .iter()
            .any(|line| line.contains("the new base provides")));
        let removed: Vec<&str> = plan
            .removal
            .files
            .iter()
            .map(|(p, _, _)| p.as_str())
            .collect();
        assert!(removed.contains(&"usr/lib/x86_64-linux-gnu/libc.so.6"));

        // A given base with the loader and libc is read for its sizes, exactly, and
        // names the FROM line; one without them is flagged.
        let given = analysis("oci:distroless-base:1", vec![debian_base()], &[]);
        let plan_on = super::plan(&image, Some(&given)).expect("a base plan");
        assert_eq!(plan_on.addition.confidence, Confidence::Exact);
        assert_eq!(plan_on.addition.compressed_bytes, given.compressed_bytes());
        assert_eq!(
            plan_on.addition.uncompressed_bytes,
            given.uncompressed_bytes()
        );
        assert!(plan_on
            .removal
            .prose
            .fix
            .starts_with("FROM oci:distroless-base:1"));
        assert!(plan_on
            .removal
            .prose
            .side_effects
            .iter()
            .all(|e| !e.contains("lacks")));
        let empty = analysis(
            "oci:empty:1",
            vec![layer("x", "ADD x /", vec![file("x", 10)], vec![])],
            &[],
        );
        let plan_empty = super::plan(&image, Some(&empty)).expect("a base plan");
        assert!(plan_empty.removal.prose.side_effects[0].contains("lacks"));
        assert!(plan_empty.removal.prose.side_effects[0].contains("libc.so.6"));
    }

    #[test]
    fn no_application_no_plan() {
        let image = analysis("t", vec![debian_base()], &[]);
        assert!(plan(&image, None).is_none());
    }
}
