//! What a file is for, from its path and whether it is ELF: the buckets users ask about
//! when an image is too big.

use serde::Serialize;

use crate::layer::ElfKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Executables,
    SharedLibraries,
    PackageState,
    PackageCaches,
    Docs,
    CertsTzdata,
    Toolchains,
    Other,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Executables,
        Category::SharedLibraries,
        Category::PackageState,
        Category::PackageCaches,
        Category::Docs,
        Category::CertsTzdata,
        Category::Toolchains,
        Category::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Category::Executables => "ELF executables",
            Category::SharedLibraries => "shared libraries",
            Category::PackageState => "package-manager state",
            Category::PackageCaches => "package caches and lists",
            Category::Docs => "docs, man pages, locales",
            Category::CertsTzdata => "certificates and tzdata",
            Category::Toolchains => "toolchains and headers",
            Category::Other => "other",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Category::Executables => "executables",
            Category::SharedLibraries => "shared_libraries",
            Category::PackageState => "package_state",
            Category::PackageCaches => "package_caches",
            Category::Docs => "docs",
            Category::CertsTzdata => "certs_tzdata",
            Category::Toolchains => "toolchains",
            Category::Other => "other",
        }
    }
}

/// Caches and indexes a package manager re-creates on demand: removable from a runtime image.
const PACKAGE_CACHES: &[&str] = &[
    "var/lib/apt/lists/",
    "var/cache/apt/",
    "var/cache/debconf/",
    "var/cache/apk/",
    "var/cache/yum/",
    "var/cache/dnf/",
    "var/cache/zypp/",
    "root/.cache/pip/",
    "root/.npm/",
    "usr/local/share/.cache/yarn/",
    "root/.cache/yarn/",
    "root/.cache/go-build/",
    "root/go/pkg/mod/",
    "go/pkg/mod/",
    "root/.cargo/registry/",
    "usr/local/cargo/registry/",
    "root/.cargo/git/",
    "usr/local/cargo/git/",
    "root/.m2/repository/",
    "root/.gradle/caches/",
    "tmp/",
    "var/tmp/",
];

/// Whether a path sits in a cache a runtime image does not need (also used by advice).
pub fn is_package_cache(path: &str) -> bool {
    PACKAGE_CACHES.iter().any(|prefix| path.starts_with(prefix))
        || path.contains("/__pycache__/")
        || path.contains("/.cache/pip/")
        || path.contains("/.cache/go-build/")
}

const PACKAGE_STATE: &[&str] = &[
    "var/lib/dpkg/",
    "var/lib/apt/",
    "var/lib/rpm/",
    "var/lib/dnf/",
    "var/lib/yum/",
    "lib/apk/db/",
    "var/log/",
];

const TOOLCHAINS: &[&str] = &[
    "usr/lib/gcc/",
    "usr/libexec/gcc/",
    "usr/include/",
    "usr/local/include/",
    "usr/lib/go/",
    "usr/local/go/",
    "usr/lib/go-",
    "root/.rustup/",
    "usr/local/rustup/",
    "usr/local/cargo/bin/",
    "root/.cargo/bin/",
    "usr/lib/llvm-",
    "usr/lib/jvm/",
    "opt/java/",
    "usr/lib/node_modules/npm/",
    "usr/local/lib/node_modules/npm/",
];

const TOOLCHAIN_BINARIES: &[&str] = &[
    "gcc", "g++", "cc", "c++", "cpp", "ld", "ld.bfd", "ld.gold", "as", "go", "gofmt", "rustc",
    "cargo", "clang", "make", "cmake",
];

pub fn is_toolchain(path: &str) -> bool {
    if TOOLCHAINS.iter().any(|prefix| path.starts_with(prefix)) {
        return true;
    }
    let Some(name) = path
        .strip_prefix("usr/bin/")
        .or_else(|| path.strip_prefix("usr/local/bin/"))
    else {
        return false;
    };
    let base = name.split_once('-').map_or(name, |(head, _)| head);
    TOOLCHAIN_BINARIES.contains(&name)
        || (name.starts_with("x86_64-linux-gnu-")
            && TOOLCHAIN_BINARIES.contains(&name.trim_start_matches("x86_64-linux-gnu-")))
        || (TOOLCHAIN_BINARIES.contains(&base) && name[base.len()..].starts_with("-1"))
}

const DOCS: &[&str] = &[
    "usr/share/doc/",
    "usr/share/man/",
    "usr/share/info/",
    "usr/share/locale/",
    "usr/share/i18n/",
    "usr/share/help/",
    "usr/share/gtk-doc/",
    "usr/local/share/man/",
    "usr/local/share/doc/",
    "usr/lib/locale/",
];

const CERTS_TZDATA: &[&str] = &[
    "etc/ssl/",
    "etc/pki/",
    "usr/share/ca-certificates/",
    "usr/local/share/ca-certificates/",
    "usr/share/zoneinfo/",
    "usr/lib/ssl/",
];

pub fn classify(path: &str, elf: Option<ElfKind>) -> Category {
    if is_package_cache(path) {
        Category::PackageCaches
    } else if is_toolchain(path) {
        Category::Toolchains
    } else if DOCS.iter().any(|p| path.starts_with(p)) {
        Category::Docs
    } else if CERTS_TZDATA.iter().any(|p| path.starts_with(p)) {
        Category::CertsTzdata
    } else if PACKAGE_STATE.iter().any(|p| path.starts_with(p)) {
        Category::PackageState
    } else {
        match elf {
            Some(ElfKind::Executable) => Category::Executables,
            Some(ElfKind::SharedLibrary) if is_shared_library_name(path) => {
                Category::SharedLibraries
            }
            // ET_DYN without a library name: a PIE executable.
            Some(ElfKind::SharedLibrary) => Category::Executables,
            Some(ElfKind::Object) => Category::Other,
            None => Category::Other,
        }
    }
}

fn is_shared_library_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".so") || name.contains(".so.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(
            classify("var/lib/apt/lists/deb.debian.org_dists", None),
            Category::PackageCaches
        );
        assert_eq!(
            classify("var/lib/dpkg/status", None),
            Category::PackageState
        );
        assert_eq!(
            classify("usr/share/doc/libc6/copyright", None),
            Category::Docs
        );
        assert_eq!(
            classify("usr/share/zoneinfo/UTC", None),
            Category::CertsTzdata
        );
        assert_eq!(
            classify("usr/bin/gcc-12", Some(ElfKind::Executable)),
            Category::Toolchains
        );
        assert_eq!(classify("usr/include/stdio.h", None), Category::Toolchains);
        assert_eq!(
            classify("app/server", Some(ElfKind::Executable)),
            Category::Executables
        );
        assert_eq!(
            classify("app/server", Some(ElfKind::SharedLibrary)),
            Category::Executables
        );
        assert_eq!(
            classify(
                "lib/x86_64-linux-gnu/libc.so.6",
                Some(ElfKind::SharedLibrary)
            ),
            Category::SharedLibraries
        );
        assert_eq!(classify("etc/hostname", None), Category::Other);
    }
}
