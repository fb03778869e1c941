//! What a file is for, from its path and whether it is ELF: the buckets users ask about
//! when an image is too big.

use serde::Serialize;

use crate::binary::ElfKind;

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

/// A directory a tool fills and re-creates on demand, so a runtime image can go
/// without it. Each entry says what re-creates it and where that is documented: only
/// what its owner documents as disposable is listed, never a database.
pub struct CacheRule {
    pub prefix: &'static str,
    pub recreated_by: &'static str,
    pub source: &'static str,
}

const fn rule(prefix: &'static str, recreated_by: &'static str, source: &'static str) -> CacheRule {
    CacheRule {
        prefix,
        recreated_by,
        source,
    }
}

pub const CACHE_RULES: &[CacheRule] = &[
    rule("var/lib/apt/lists/", "apt-get update", "https://docs.docker.com/build/building/best-practices/#apt-get (rm -rf /var/lib/apt/lists/*)"),
    rule("var/cache/apt/", "apt-get install (downloaded .debs, pkgcache.bin); apt-get clean empties it", "apt-get(8) clean; apt.conf(5) Dir::Cache"),
    rule("var/cache/apk/", "apk add (apk add --no-cache never fills it)", "https://wiki.alpinelinux.org/wiki/Local_APK_cache"),
    rule("var/cache/yum/", "yum makecache; yum clean all empties it", "yum(8) clean"),
    rule("var/cache/dnf/", "dnf makecache; dnf clean all empties it", "https://dnf.readthedocs.io/en/latest/command_ref.html#clean-command"),
    rule("var/cache/zypp/", "zypper refresh; zypper clean --all empties it", "zypper(8) clean"),
    rule("root/.cache/pip/", "pip install (pip install --no-cache-dir never fills it)", "https://pip.pypa.io/en/stable/topics/caching/"),
    rule("root/.npm/", "npm install; npm cache clean --force empties it", "https://docs.npmjs.com/cli/commands/npm-cache"),
    rule("usr/local/share/.cache/yarn/", "yarn install (the node image's root cache); yarn cache clean", "https://classic.yarnpkg.com/en/docs/cli/cache"),
    rule("root/.cache/yarn/", "yarn install; yarn cache clean", "https://classic.yarnpkg.com/en/docs/cli/cache"),
    rule("root/.cache/go-build/", "go build; go clean -cache empties it", "go help cache (GOCACHE)"),
    rule("root/go/pkg/mod/", "go mod download; go clean -modcache empties it", "go help modules (GOMODCACHE)"),
    rule("go/pkg/mod/", "go mod download (GOPATH=/go in the golang image); go clean -modcache", "go help modules (GOMODCACHE)"),
    rule("root/.cargo/registry/", "cargo fetch (registry index, .crate files, sources)", "https://doc.rust-lang.org/cargo/guide/cargo-home.html#caching-the-cargo-home-in-ci"),
    rule("usr/local/cargo/registry/", "cargo fetch (CARGO_HOME=/usr/local/cargo in the rust image)", "https://doc.rust-lang.org/cargo/guide/cargo-home.html#caching-the-cargo-home-in-ci"),
    rule("root/.cargo/git/", "cargo fetch (git dependencies)", "https://doc.rust-lang.org/cargo/guide/cargo-home.html#caching-the-cargo-home-in-ci"),
    rule("usr/local/cargo/git/", "cargo fetch (git dependencies)", "https://doc.rust-lang.org/cargo/guide/cargo-home.html#caching-the-cargo-home-in-ci"),
    rule("root/.m2/repository/", "mvn (downloaded artifacts)", "https://maven.apache.org/guides/introduction/introduction-to-repositories.html"),
    rule("root/.gradle/caches/", "gradle (downloaded artifacts, build caches)", "https://docs.gradle.org/current/userguide/directory_layout.html"),
    rule("tmp/", "nothing needs it back: programs must not expect files in /tmp to persist", "FHS 3.0 §3.18 /tmp"),
];

// Left out on purpose:
// * var/cache/debconf/: debconf's database (config.dat holds the answers, templates.dat
//   the templates; debconf.conf(5)). Deleting it breaks dpkg-reconfigure and later
//   installs in derived images: package state, not a cache.
// * var/tmp/: FHS 3.0 §5.15 says its files are preserved between reboots.

/// The rule that makes `path` a disposable cache, if one does.
pub fn cache_rule(path: &str) -> Option<&'static CacheRule> {
    CACHE_RULES
        .iter()
        .find(|rule| path.starts_with(rule.prefix))
}

/// Whether a path sits in a cache a runtime image does not need (also used by advice).
pub fn is_package_cache(path: &str) -> bool {
    cache_rule(path).is_some()
        // Python re-creates bytecode on import (PEP 3147); the official python image
        // deletes it too.
        || path.contains("/__pycache__/")
        || path.contains("/.cache/pip/")
        || path.contains("/.cache/go-build/")
}

const PACKAGE_STATE: &[&str] = &[
    "var/lib/dpkg/",
    "var/cache/debconf/",
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

/// Directories whose programs and libraries belong to the distribution (or a
/// toolchain), not to the service the image was built to run. One list, so that every
/// analysis (the main binary, applications, base-image advice) draws the line at the
/// same place. Root-relative, with the trailing slash.
pub const SYSTEM_DIRS: &[&str] = &[
    "bin/",
    "sbin/",
    "lib/",
    "lib32/",
    "lib64/",
    "libx32/",
    "usr/bin/",
    "usr/sbin/",
    "usr/lib/",
    "usr/lib32/",
    "usr/lib64/",
    "usr/libx32/",
    "usr/libexec/",
    "usr/local/lib/",
    "usr/share/",
    "usr/include/",
    "etc/",
    "var/lib/",
];

/// Whether `path` (root-relative or absolute) is under one of [`SYSTEM_DIRS`].
pub fn is_system_path(path: &str) -> bool {
    let path = path.trim_start_matches('/');
    SYSTEM_DIRS.iter().any(|dir| path.starts_with(dir))
}

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
        // debconf's database, not a cache: deleting it breaks dpkg-reconfigure.
        for database in [
            "config.dat",
            "templates.dat",
            "passwords.dat",
            "config.dat-old",
        ] {
            let path = format!("var/cache/debconf/{database}");
            assert_eq!(classify(&path, None), Category::PackageState, "{path}");
            assert!(!is_package_cache(&path), "{path}");
        }
        assert_eq!(classify("var/tmp/keep", None), Category::Other);
        assert_eq!(classify("tmp/build.log", None), Category::PackageCaches);
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
