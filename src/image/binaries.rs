//! The binaries of the image as a container sees them: which copy of each ELF file
//! is visible, which program the image runs, and which libraries a program needs that
//! the image lacks.

use serde::Serialize;

use super::ImageAnalysis;
use crate::binary::{BinaryReport, ElfKind, ElfType};
use crate::fs::Node;
use crate::layer::EntryKind;

/// An ELF file a container sees: the copy in the layer its path comes from.
#[derive(Debug, Clone, Copy)]
pub struct VisibleBinary<'a> {
    pub layer: usize,
    pub report: &'a BinaryReport,
}

/// A library a program needs (`DT_NEEDED`) that the image does not have: the
/// program will not start.
#[derive(Debug, Clone, Serialize)]
pub struct MissingLibrary {
    /// Absolute path of the program.
    pub binary: String,
    pub library: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// The config's entrypoint (or a wrapper's argument) names it.
    Entrypoint,
    /// The config's cmd names it (no entrypoint).
    Cmd,
    /// No ELF program is named: the largest ELF executable outside system directories.
    LargestExecutable,
}

/// The program the image was built to run.
#[derive(Debug, Clone)]
pub struct MainProgram<'a> {
    /// Root-relative, symlinks resolved.
    pub path: String,
    /// The path as the config names it, when it differs from `path`.
    pub named_as: Option<String>,
    pub found_by: FoundBy,
    pub report: &'a BinaryReport,
}

/// Programs that run another program named in their arguments: the service is the
/// argument, not the wrapper.
const WRAPPERS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "ash",
    "zsh",
    "busybox",
    "env",
    "tini",
    "tini-static",
    "dumb-init",
    "catatonit",
    "s6-svscan",
    "gosu",
    "su-exec",
    "exec",
];

/// Where an unqualified command is looked up (Docker's default PATH).
const DEFAULT_PATH: &[&str] = &[
    "usr/local/sbin",
    "usr/local/bin",
    "usr/sbin",
    "usr/bin",
    "sbin",
    "bin",
];

impl ImageAnalysis {
    /// Visible ELF files, in layer order, with the layer each comes from.
    pub fn visible_binaries(&self) -> Vec<VisibleBinary<'_>> {
        let mut found = Vec::new();
        for (index, layer) in self.layers.iter().enumerate() {
            for report in &layer.binaries {
                if self.is_visible_copy(&report.path, index) {
                    found.push(VisibleBinary {
                        layer: index,
                        report,
                    });
                }
            }
        }
        found
    }

    /// Whether the file at `path` in layer `layer` is the copy a container sees.
    fn is_visible_copy(&self, path: &str, layer: usize) -> bool {
        self.fs
            .merged
            .get(path)
            .is_some_and(|node| node.layer == layer && node.kind == EntryKind::File)
    }

    /// The forensic record of the visible file at the root-relative `path`.
    pub fn visible_binary(&self, path: &str) -> Option<&BinaryReport> {
        let node = self.fs.merged.get(path)?;
        if node.kind != EntryKind::File {
            return None;
        }
        self.layers
            .get(node.layer)?
            .binaries
            .iter()
            .find(|r| r.path == path)
    }

    /// Libraries the visible programs and libraries need that the image lacks, in
    /// the order of `binaries` (absolute paths in `binary`).
    pub fn missing_libraries<'a>(
        &self,
        binaries: impl IntoIterator<Item = &'a BinaryReport>,
    ) -> Vec<MissingLibrary> {
        let exists = |path: &str| self.fs.lookup(path).is_some();
        let mut missing = Vec::new();
        for report in binaries {
            for (library, found) in crate::binary::resolve_needed(report, exists) {
                if found.is_none() {
                    missing.push(MissingLibrary {
                        binary: format!("/{}", report.path),
                        library,
                    });
                }
            }
        }
        missing
    }

    /// The service's binary: the ELF program the config runs (through symlinks and
    /// wrappers such as `sh -c` or `tini --`), else the largest ELF executable outside
    /// the system directories.
    pub fn main_program(&self) -> Option<MainProgram<'_>> {
        let config = &self.image.config;
        let (argv, found_by) = if config.entrypoint.is_empty() {
            (config.cmd.clone(), FoundBy::Cmd)
        } else {
            let mut argv = config.entrypoint.clone();
            argv.extend(config.cmd.iter().cloned());
            (argv, FoundBy::Entrypoint)
        };
        for token in argv.iter().flat_map(|arg| arg.split_whitespace()) {
            if token.starts_with('-') || token.contains('=') {
                continue;
            }
            let token = token.trim_matches(|c| c == '"' || c == '\'' || c == ';' || c == '&');
            let Some((path, node)) = self.resolve_command(token) else {
                continue;
            };
            if node.elf.is_none() {
                continue;
            }
            let name = path.rsplit('/').next().unwrap_or(&path);
            let token_name = token.rsplit('/').next().unwrap_or(token);
            if WRAPPERS.contains(&name) || WRAPPERS.contains(&token_name) {
                continue;
            }
            if let Some(report) = self.visible_binary(&path) {
                let named_as = (token.trim_start_matches('/') != path).then(|| token.to_string());
                return Some(MainProgram {
                    path,
                    named_as,
                    found_by,
                    report,
                });
            }
        }
        // Nothing named: the largest program a user put there.
        self.fs
            .visible_files()
            .filter(|(path, _)| !crate::category::is_system_path(path))
            .filter_map(|(path, node)| {
                node.elf?;
                let report = self.visible_binary(path)?;
                is_program(report, node).then_some((path, report))
            })
            .max_by(|a, b| a.1.size.cmp(&b.1.size).then_with(|| b.0.cmp(a.0)))
            .map(|(path, report)| MainProgram {
                path: path.clone(),
                named_as: None,
                found_by: FoundBy::LargestExecutable,
                report,
            })
    }

    /// The regular file a command names: `/abs/path`, `rel/path` (from the root) or a
    /// bare name looked up in the default PATH.
    fn resolve_command(&self, command: &str) -> Option<(String, &Node)> {
        if command.is_empty() {
            return None;
        }
        let file = |path: &str| {
            self.fs
                .lookup(path)
                .filter(|(_, node)| node.kind == EntryKind::File)
        };
        if command.contains('/') {
            return file(command);
        }
        DEFAULT_PATH
            .iter()
            .find_map(|dir| file(&format!("{dir}/{command}")))
    }
}

fn is_program(report: &BinaryReport, node: &Node) -> bool {
    match report.elf_type {
        ElfType::Exec | ElfType::Pie => true,
        ElfType::Unknown => node.elf == Some(ElfKind::Executable),
        _ => false,
    }
}
