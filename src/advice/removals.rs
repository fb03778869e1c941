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
}

impl Leave {
    fn kind(self) -> SuggestionKind {
        match self {
            Leave::Hidden(WasteCause::Deleted) => SuggestionKind::DropDeletedFiles,
            Leave::Hidden(WasteCause::Overwritten) => SuggestionKind::DropOverwrittenFiles,
            Leave::PackageCaches => SuggestionKind::DropPackageCaches,
            Leave::Toolchains => SuggestionKind::MultiStageToolchain,
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
        }
    };
    [
        Leave::Hidden(WasteCause::Deleted),
        Leave::Hidden(WasteCause::Overwritten),
        Leave::PackageCaches,
        Leave::Toolchains,
    ]
    .into_iter()
    .filter_map(|leave| {
        let files = files(leave);
        if files.is_empty() {
            return None;
        }
        let (title, fix) = fix(leave, &files);
        Some(Removal {
            kind: leave.kind(),
            files,
            strip: false,
            prose: Prose {
                title,
                fix,
                ..Prose::default()
            },
        })
    })
    .collect()
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
    fn a_clean_image_needs_no_removal() {
        let image = analysis(
            "t",
            vec![layer("app", "COPY app /", vec![file("app", 10)], vec![])],
            &[],
        );
        assert!(plan(&image).is_empty());
    }
}
