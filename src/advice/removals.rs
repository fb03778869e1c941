//! Files to leave out of the image: bytes a later layer hides (deleted or
//! overwritten), package-manager caches, and toolchains a multi-stage build leaves
//! behind. The saving is measured by rebuilding the layers without them.

use super::{Prose, Removal, SuggestionKind};
use crate::category::{self, Category};
use crate::fs::WasteCause;
use crate::image::ImageAnalysis;

/// What a removal leaves out.
#[derive(Debug, Clone, Copy)]
enum Leave {
    Hidden(WasteCause),
    PackageCaches,
    Toolchains,
    Docs,
}

impl Leave {
    fn kind(self) -> SuggestionKind {
        match self {
            Leave::Hidden(WasteCause::Deleted) => SuggestionKind::DropDeletedFiles,
            Leave::Hidden(WasteCause::Overwritten) => SuggestionKind::DropOverwrittenFiles,
            Leave::PackageCaches => SuggestionKind::DropPackageCaches,
            Leave::Toolchains => SuggestionKind::MultiStageToolchain,
            Leave::Docs => SuggestionKind::DropDocs,
        }
    }
}

/// Files each removal would leave out, with the layer that adds them.
pub(super) fn plan(analysis: &ImageAnalysis) -> Vec<Removal> {
    let fs = &analysis.fs;
    let visible = |wanted: Category| -> Vec<(String, u64, usize)> {
        fs.visible_files()
            .filter(|(path, node)| category::classify(path, node.elf) == wanted)
            .map(|(path, node)| (path.clone(), node.size, node.layer))
            .collect()
    };
    let files = |leave: Leave| -> Vec<(String, u64, usize)> {
        match leave {
            Leave::Hidden(cause) => fs
                .wasted_files
                .iter()
                .filter(|f| f.cause == cause)
                .map(|f| (f.path.clone(), f.size, f.layer))
                .collect(),
            Leave::PackageCaches => visible(Category::PackageCaches),
            Leave::Toolchains => visible(Category::Toolchains),
            Leave::Docs => docs(analysis),
        }
    };
    [
        Leave::Hidden(WasteCause::Deleted),
        Leave::Hidden(WasteCause::Overwritten),
        Leave::PackageCaches,
        Leave::Toolchains,
        Leave::Docs,
    ]
    .into_iter()
    .filter_map(|leave| {
        let files = files(leave);
        if files.is_empty() {
            return None;
        }
        let (title, mut fix) = fix(leave, &files);
        let mut side_effects = Vec::new();
        let mut notes = Vec::new();
        if let Leave::Docs = leave {
            fix = docs_fix(package_manager(analysis));
            side_effects.push(
                "`man`, `info` and translated messages are gone from the image; copyright files stay".into(),
            );
            notes.push(
                "an alternative to a smaller base image, not an addition: a distroless base ships none of these".into(),
            );
        }
        Some(Removal {
            kind: leave.kind(),
            files,
            strip: false,
            prose: Prose {
                title,
                fix,
                side_effects,
                notes,
                ..Prose::default()
            },
        })
    })
    .collect()
}

/// What dpkg's `path-exclude` rules leave out, as Ubuntu's minimal images have them:
/// documentation, man and info pages, translations. Copyright files stay (licences
/// require them to ship), and so do `locale.alias` and the compiled locales in
/// `/usr/lib/locale` that `LANG=C.UTF-8` needs.
const DOC_DIRS: &[&str] = &[
    "usr/share/doc/",
    "usr/share/man/",
    "usr/share/info/",
    "usr/share/locale/",
    "usr/share/help/",
    "usr/share/gtk-doc/",
    "usr/share/groff/",
    "usr/share/lintian/",
    "usr/local/share/man/",
    "usr/local/share/doc/",
];
/// Below this the docs are not worth a Dockerfile change.
const DOCS_WORTH_BYTES: u64 = 512 * 1024;

/// A distribution's package database: where the docs come from, and the rules that
/// keep them out apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PackageManager {
    Dpkg,
    Apk,
    Rpm,
}

fn package_manager(analysis: &ImageAnalysis) -> Option<PackageManager> {
    let has = |path: &str| analysis.fs.lookup(path).is_some();
    if has("var/lib/dpkg/status") {
        Some(PackageManager::Dpkg)
    } else if has("lib/apk/db/installed") {
        Some(PackageManager::Apk)
    } else if has("var/lib/rpm") || has("usr/lib/sysimage/rpm") {
        Some(PackageManager::Rpm)
    } else {
        None
    }
}

fn docs(analysis: &ImageAnalysis) -> Vec<(String, u64, usize)> {
    if package_manager(analysis).is_none() {
        return vec![];
    }
    let files: Vec<(String, u64, usize)> = analysis
        .fs
        .visible_files()
        .filter(|(path, _)| DOC_DIRS.iter().any(|dir| path.starts_with(dir)))
        .filter(|(path, _)| {
            !(path.ends_with("/copyright") || path.as_str() == "usr/share/locale/locale.alias")
        })
        .map(|(path, node)| (path.clone(), node.size, node.layer))
        .collect();
    let total: u64 = files.iter().map(|f| f.1).sum();
    if total < DOCS_WORTH_BYTES {
        return vec![];
    }
    files
}

fn docs_fix(manager: Option<PackageManager>) -> String {
    match manager {
        Some(PackageManager::Dpkg) | None => "# Before any apt-get install (Ubuntu's minimal images ship these rules):
             RUN printf '%s\n' \
               'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
               'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
               'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/lintian/*' \
               'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
               > /etc/dpkg/dpkg.cfg.d/01-nodoc
             # Files the base image already has go in the same RUN as your install:
             RUN apt-get update && apt-get install -y --no-install-recommends <packages> \
               && find /usr/share/doc -depth -type f ! -name copyright -delete \
               && rm -rf /usr/share/man/* /usr/share/info/* /usr/share/locale/* /var/lib/apt/lists/*"
            .into(),
        Some(PackageManager::Apk) => "# Alpine ships docs in separate -doc packages: do not install them, and
             RUN apk add --no-cache <packages> && rm -rf /usr/share/man/* /usr/share/doc/* /usr/share/info/*"
            .into(),
        Some(PackageManager::Rpm) => "RUN dnf install -y --setopt=tsflags=nodocs --setopt=install_weak_deps=False <packages> && dnf clean all
             # microdnf: microdnf install -y --nodocs <packages>"
            .into(),
    }
}

fn fix(leave: Leave, files: &[(String, u64, usize)]) -> (String, String) {
    let has = |prefix: &str| {
        files
            .iter()
            .any(|(p, _, _)| p.starts_with(prefix) || p.contains(prefix))
    };
    match leave {
        Leave::Hidden(WasteCause::Deleted) => (
            "Delete temporary files in the step that creates them".into(),
            "Files removed by a later `RUN rm` still ship in the layer that added them. Remove them in the same step:\n\
             RUN <build or download> && <use> && rm -rf <the files>\n\
             or build in a separate stage and `COPY --from=build` only what the image runs."
                .into(),
        ),
        Leave::Hidden(WasteCause::Overwritten) => (
            "Stop shipping files that a later layer replaces".into(),
            "Write each file once: install the final version in the earlier step, or move the later step's change into it.\n\
             In a multi-stage build, assemble the files in a build stage and COPY the result once."
                .into(),
        ),
        Leave::PackageCaches => {
            let mut lines = Vec::new();
            if has("var/lib/apt/lists/") || has("var/cache/apt/") {
                lines.push("RUN apt-get update && apt-get install -y --no-install-recommends <packages> && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb");
            }
            if has("var/cache/apk/") {
                lines.push("RUN apk add --no-cache <packages>");
            }
            if has(".cache/pip/") {
                lines.push("RUN pip install --no-cache-dir <packages>");
            }
            if has(".npm/") || has(".cache/yarn/") {
                lines.push("RUN npm ci --omit=dev && npm cache clean --force");
            }
            if has("go-build/") || has("go/pkg/mod/") {
                lines.push("RUN --mount=type=cache,target=/root/.cache/go-build --mount=type=cache,target=/go/pkg/mod go build …");
            }
            if has("cargo/registry/") || has("cargo/git/") {
                lines.push("RUN --mount=type=cache,target=/usr/local/cargo/registry cargo build --release");
            }
            if has("tmp/") {
                lines.push("RUN … && rm -rf /tmp/* /var/tmp/*");
            }
            if lines.is_empty() {
                lines.push("Clean the package manager's cache in the step that fills it.");
            }
            ("Remove package-manager caches and indexes".into(), lines.join("\n"))
        }
        Leave::Docs => (
            "Leave out docs, man pages and translations".into(),
            String::new(),
        ),
        Leave::Toolchains => (
            "Build in one stage, run from another: the compiler and headers stay behind".into(),
            "FROM <toolchain image> AS build\n\
             WORKDIR /src\n\
             COPY . .\n\
             RUN <build command>\n\
             FROM gcr.io/distroless/cc-debian12   # or static-debian12 for a static binary\n\
             COPY --from=build /src/<binary> /usr/local/bin/<binary>"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::fixture::{analysis, debian_base, file, layer, whiteout};

    #[test]
    fn hidden_files_and_caches_each_get_a_removal_with_their_fix() {
        let image = analysis(
            "t",
            vec![
                debian_base(),
                layer(
                    "build",
                    "RUN make",
                    vec![file("tmp/build.tar", 5_000_000)],
                    vec![],
                ),
                layer(
                    "clean",
                    "RUN rm /tmp/build.tar",
                    vec![whiteout("tmp/build.tar")],
                    vec![],
                ),
            ],
            &[],
        );
        let removals = plan(&image);
        let kinds: Vec<SuggestionKind> = removals.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                SuggestionKind::DropDeletedFiles,
                SuggestionKind::DropPackageCaches
            ]
        );
        assert_eq!(
            removals[0].files,
            [("tmp/build.tar".to_string(), 5_000_000, 1)]
        );
        assert!(removals[0].prose.fix.contains("same step"));
        assert!(removals[1]
            .prose
            .fix
            .contains("rm -rf /var/lib/apt/lists/*"));
        assert!(removals.iter().all(|r| !r.strip));
    }

    #[test]
    fn docs_on_a_distribution_base_are_left_out_but_copyrights_stay() {
        let docs = |with_dpkg: bool| {
            let mut entries = vec![
                file("usr/share/doc/libc6/changelog.Debian.gz", 400_000),
                file("usr/share/doc/libc6/copyright", 30_000),
                file("usr/share/man/man1/bash.1.gz", 200_000),
                file("usr/share/locale/de/LC_MESSAGES/coreutils.mo", 300_000),
                file("usr/share/locale/locale.alias", 3_000),
                file("usr/lib/locale/C.utf8/LC_CTYPE", 350_000),
            ];
            if with_dpkg {
                entries.push(file("var/lib/dpkg/status", 90_000));
            }
            analysis(
                "t",
                vec![layer("base", "ADD rootfs.tar /", entries, vec![])],
                &[],
            )
        };
        let removals = plan(&docs(true));
        let removal = removals
            .iter()
            .find(|r| r.kind == SuggestionKind::DropDocs)
            .expect("a docs removal on a dpkg base");
        let mut paths: Vec<&str> = removal.files.iter().map(|f| f.0.as_str()).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "usr/share/doc/libc6/changelog.Debian.gz",
                "usr/share/locale/de/LC_MESSAGES/coreutils.mo",
                "usr/share/man/man1/bash.1.gz",
            ]
        );
        assert!(removal.prose.fix.contains("path-exclude /usr/share/doc/*"));
        assert!(removal
            .prose
            .fix
            .contains("path-include /usr/share/doc/*/copyright"));
        // Without a package database there is no distribution to configure.
        assert!(plan(&docs(false))
            .iter()
            .all(|r| r.kind != SuggestionKind::DropDocs));
    }

    #[test]
    fn overlapping_kinds_are_alternatives_both_ways() {
        use SuggestionKind::*;
        for (a, b) in [
            (DistrolessBase, DropDocs),
            (DistrolessCc, DropPackageCaches),
            (StaticBase, DistrolessBase),
            (SquashLayers, DropDeletedFiles),
            (SquashLayers, DropOverwrittenFiles),
        ] {
            assert!(a.overlaps(b) && b.overlaps(a), "{a} and {b}");
        }
        for (a, b) in [
            (DropDocs, DropPackageCaches),
            (GoLdflags, DropDeletedFiles),
            (DistrolessBase, DistrolessBase),
        ] {
            assert!(!a.overlaps(b), "{a} and {b}");
        }
    }

    #[test]
    fn a_clean_image_needs_no_removal() {
        let image = analysis(
            "t",
            vec![layer("app", "COPY app /", vec![file("app", 10)], vec![])],
            &[],
        );
        assert!(plan(&image).is_empty());
    }
}
