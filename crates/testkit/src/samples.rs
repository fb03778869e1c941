//! The sample Go, Rust and C programs (`testdata/hello-*`), compiled with the
//! machine's real toolchains and cached by source and flags, so that tests and the
//! demo look at real binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{tool} is not installed ({hint})")]
    MissingTool { tool: String, hint: String },
    #[error("building {what} failed: {detail}")]
    Failed { what: String, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A build of the Go sample service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoBuild {
    Default,
    StripFlags,
    Trimpath,
    CgoOff,
    CgoOn,
    Arm64,
}

impl GoBuild {
    pub const ALL: [GoBuild; 6] = [
        GoBuild::Default,
        GoBuild::StripFlags,
        GoBuild::Trimpath,
        GoBuild::CgoOff,
        GoBuild::CgoOn,
        GoBuild::Arm64,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GoBuild::Default => "default",
            GoBuild::StripFlags => "ldflags-s-w",
            GoBuild::Trimpath => "trimpath",
            GoBuild::CgoOff => "cgo-off",
            GoBuild::CgoOn => "cgo-on",
            GoBuild::Arm64 => "arm64",
        }
    }

    fn args_and_env(self) -> (Vec<&'static str>, Vec<(&'static str, &'static str)>) {
        match self {
            GoBuild::Default => (vec![], vec![]),
            GoBuild::StripFlags => (vec!["-ldflags=-s -w"], vec![]),
            GoBuild::Trimpath => (vec!["-trimpath"], vec![]),
            GoBuild::CgoOff => (vec![], vec![("CGO_ENABLED", "0")]),
            GoBuild::CgoOn => (vec![], vec![("CGO_ENABLED", "1")]),
            GoBuild::Arm64 => (vec![], vec![("GOARCH", "arm64"), ("CGO_ENABLED", "0")]),
        }
    }
}

/// A build of the Rust sample service, as `rustc` flags that mirror Cargo profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RustBuild {
    /// Cargo's release profile since 1.77: opt-level 3, debuginfo stripped, symbols kept.
    Release,
    /// Release with full debug info (`debug = true`).
    DebugInfo,
    /// `strip = true`.
    Stripped,
    /// `lto = true`, `codegen-units = 1`, `panic = "abort"`.
    LtoAbort,
    /// `-C target-feature=+crt-static`.
    Static,
}

impl RustBuild {
    pub const ALL: [RustBuild; 5] = [
        RustBuild::Release,
        RustBuild::DebugInfo,
        RustBuild::Stripped,
        RustBuild::LtoAbort,
        RustBuild::Static,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RustBuild::Release => "release",
            RustBuild::DebugInfo => "debuginfo",
            RustBuild::Stripped => "stripped",
            RustBuild::LtoAbort => "lto-abort",
            RustBuild::Static => "static",
        }
    }

    fn flags(self) -> Vec<&'static str> {
        let mut flags = vec!["-C", "opt-level=3", "--edition", "2021"];
        flags.extend(match self {
            RustBuild::Release => vec!["-C", "strip=debuginfo"],
            RustBuild::DebugInfo => vec!["-C", "debuginfo=2"],
            RustBuild::Stripped => vec!["-C", "strip=symbols"],
            RustBuild::LtoAbort => vec![
                "-C",
                "lto=fat",
                "-C",
                "codegen-units=1",
                "-C",
                "panic=abort",
                "-C",
                "strip=debuginfo",
            ],
            RustBuild::Static => vec!["-C", "target-feature=+crt-static", "-C", "strip=debuginfo"],
        });
        flags
    }
}

/// Compiles samples from `testdata` into `cache` (e.g. `target/ballast-samples`).
pub struct Samples {
    testdata: PathBuf,
    cache: PathBuf,
}

impl Samples {
    pub fn new(testdata: impl Into<PathBuf>, cache: impl Into<PathBuf>) -> Self {
        Self {
            testdata: testdata.into(),
            cache: cache.into(),
        }
    }

    pub fn go(&self, build: GoBuild) -> Result<PathBuf, SampleError> {
        let source_dir = self.testdata.join("hello-go");
        let (args, env) = build.args_and_env();
        let key = fingerprint(
            &[&source_dir.join("main.go"), &source_dir.join("go.mod")],
            &format!("{args:?}{env:?}{}", tool_version("go", &["version"])),
        )?;
        let output = self.cache.join(format!("hello-go-{}-{key}", build.name()));
        if output.exists() {
            return Ok(output);
        }
        require_tool("go", &["version"], "apt-get install -y golang-go")?;
        std::fs::create_dir_all(&self.cache)?;
        let gocache = self.cache.join("gocache");
        let gopath = self.cache.join("gopath");
        let partial = partial_path(&output);
        let mut command = Command::new("go");
        command
            .arg("build")
            // Stamping VCS state would tie the binary to the commit under test while
            // the cache key ignores it.
            .arg("-buildvcs=false")
            .args(&args)
            .arg("-o")
            .arg(&partial)
            .arg(".")
            .current_dir(&source_dir)
            .env("GOCACHE", &gocache)
            .env("GOPATH", &gopath)
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off");
        for (key, value) in env {
            command.env(key, value);
        }
        run(command, &format!("the Go sample ({})", build.name()))?;
        std::fs::rename(&partial, &output)?;
        Ok(output)
    }

    pub fn rust(&self, build: RustBuild) -> Result<PathBuf, SampleError> {
        let source = self.testdata.join("hello-rs").join("main.rs");
        let flags = build.flags();
        let key = fingerprint(
            &[&source],
            &format!("{flags:?}{}", tool_version("rustc", &["-vV"])),
        )?;
        let output = self.cache.join(format!("hello-rs-{}-{key}", build.name()));
        if output.exists() {
            return Ok(output);
        }
        std::fs::create_dir_all(&self.cache)?;
        let partial = partial_path(&output);
        let mut command = Command::new("rustc");
        command.args(&flags).arg("-o").arg(&partial).arg(&source);
        run(command, &format!("the Rust sample ({})", build.name()))?;
        std::fs::rename(&partial, &output)?;
        Ok(output)
    }

    pub fn c(&self) -> Result<PathBuf, SampleError> {
        let source = self.testdata.join("hello-c").join("hello.c");
        let key = fingerprint(&[&source], &tool_version("gcc", &["--version"]))?;
        let output = self.cache.join(format!("hello-c-{key}"));
        if output.exists() {
            return Ok(output);
        }
        require_tool("gcc", &["--version"], "apt-get install -y gcc")?;
        std::fs::create_dir_all(&self.cache)?;
        let partial = partial_path(&output);
        let mut command = Command::new("gcc");
        command.args(["-O2", "-g", "-o"]).arg(&partial).arg(&source);
        run(command, "the C sample")?;
        std::fs::rename(&partial, &output)?;
        Ok(output)
    }
}

impl Samples {
    /// The Go sample with a third-party module: `golang.org/x/text` from Debian's
    /// `golang-golang-x-text-dev` (`/usr/share/gocode/src`), through a `replace`.
    pub fn go_deps(&self) -> Result<PathBuf, SampleError> {
        let source_dir = self.testdata.join("hello-go-deps");
        let module = Path::new("/usr/share/gocode/src/golang.org/x/text/go.mod");
        if !module.exists() {
            return Err(SampleError::MissingTool {
                tool: "golang.org/x/text".into(),
                hint: "apt-get install -y golang-golang-x-text-dev".into(),
            });
        }
        let key = fingerprint(
            &[
                &source_dir.join("main.go"),
                &source_dir.join("go.mod"),
                module,
            ],
            &tool_version("go", &["version"]),
        )?;
        let output = self.cache.join(format!("hello-go-deps-{key}"));
        if output.exists() {
            return Ok(output);
        }
        require_tool("go", &["version"], "apt-get install -y golang-go")?;
        std::fs::create_dir_all(&self.cache)?;
        let partial = partial_path(&output);
        let mut command = Command::new("go");
        command
            .args(["build", "-buildvcs=false", "-o"])
            .arg(&partial)
            .arg(".")
            .current_dir(&source_dir)
            .env("GOCACHE", self.cache.join("gocache"))
            .env("GOPATH", self.cache.join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off");
        run(command, "the Go sample with dependencies")?;
        std::fs::rename(&partial, &output)?;
        Ok(output)
    }

    /// The Rust sample with crates.io dependencies (`testdata/hello-rs-deps`), built
    /// by Cargo in release mode, offline, against a copy of `lock` (ballast's own
    /// `Cargo.lock`, whose crates the registry cache holds once ballast is built).
    pub fn rust_deps(&self, lock: &Path) -> Result<PathBuf, SampleError> {
        let source_dir = self.testdata.join("hello-rs-deps");
        let key = fingerprint(
            &[
                &source_dir.join("Cargo.toml"),
                &source_dir.join("src/main.rs"),
                lock,
            ],
            &tool_version("rustc", &["-vV"]),
        )?;
        let output = self.cache.join(format!("hello-rs-deps-{key}"));
        if output.exists() {
            return Ok(output);
        }
        let build_dir = self.cache.join(format!("hello-rs-deps-src-{key}"));
        std::fs::create_dir_all(build_dir.join("src"))?;
        std::fs::copy(source_dir.join("Cargo.toml"), build_dir.join("Cargo.toml"))?;
        std::fs::copy(
            source_dir.join("src/main.rs"),
            build_dir.join("src/main.rs"),
        )?;
        // Cargo drops the entries this crate does not use and keeps the versions.
        std::fs::copy(lock, build_dir.join("Cargo.lock"))?;
        let target = self.cache.join("hello-rs-deps-target");
        let mut command = Command::new("cargo");
        command
            .args(["build", "--release", "--offline", "--quiet"])
            .arg("--manifest-path")
            .arg(build_dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
        run(command, "the Rust sample with dependencies")?;
        let partial = partial_path(&output);
        std::fs::copy(target.join("release/hello-deps"), &partial)?;
        std::fs::rename(&partial, &output)?;
        Ok(output)
    }
}

/// A temporary output path no other build (thread or process) uses at the same time.
fn partial_path(output: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".partial-{}-{n}", std::process::id()));
    output.with_file_name(name)
}

impl Samples {
    /// The C sample linked dynamically against musl (Debian's musl-tools): a binary
    /// whose interpreter is `/lib/ld-musl-x86_64.so.1`.
    pub fn c_musl(&self) -> Result<PathBuf, SampleError> {
        let source = self.testdata.join("hello-c").join("hello.c");
        let key = fingerprint(&[&source], &tool_version("musl-gcc", &["--version"]))?;
        let output = self.cache.join(format!("hello-c-musl-{key}"));
        if output.exists() {
            return Ok(output);
        }
        require_tool("musl-gcc", &["--version"], "apt-get install -y musl-tools")?;
        std::fs::create_dir_all(&self.cache)?;
        let partial = partial_path(&output);
        let mut command = Command::new("musl-gcc");
        command.args(["-O2", "-o"]).arg(&partial).arg(&source);
        run(command, "the C sample (musl)")?;
        std::fs::rename(&partial, &output)?;
        Ok(output)
    }
}

fn fingerprint(files: &[&Path], extra: &str) -> Result<String, SampleError> {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(std::fs::read(file)?);
    }
    hasher.update(extra.as_bytes());
    Ok(hex::encode(hasher.finalize())[..12].to_string())
}

fn tool_version(tool: &str, args: &[&str]) -> String {
    Command::new(tool)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn require_tool(tool: &str, args: &[&str], hint: &str) -> Result<(), SampleError> {
    match Command::new(tool).args(args).output() {
        Ok(output) if output.status.success() => Ok(()),
        _ => Err(SampleError::MissingTool {
            tool: tool.into(),
            hint: hint.into(),
        }),
    }
}

fn run(mut command: Command, what: &str) -> Result<(), SampleError> {
    let output = command.output().map_err(|e| SampleError::Failed {
        what: what.into(),
        detail: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(SampleError::Failed {
            what: what.into(),
            detail: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(())
}

use super::{ImageSpec, Item, LayerSpec};

/// Host files a Debian base image carries, copied from this (Debian) machine so the
/// sample images hold real libraries, certificates and package state.
const BASE_FILES: &[(&str, u32)] = &[
    ("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 0o755),
    ("lib/x86_64-linux-gnu/libc.so.6", 0o755),
    ("lib/x86_64-linux-gnu/libm.so.6", 0o644),
    ("lib/x86_64-linux-gnu/libgcc_s.so.1", 0o644),
    ("lib/x86_64-linux-gnu/libresolv.so.2", 0o644),
    ("etc/ssl/certs/ca-certificates.crt", 0o644),
    ("etc/os-release", 0o644),
    ("usr/share/zoneinfo/UTC", 0o644),
    ("usr/share/zoneinfo/Europe/Berlin", 0o644),
    ("usr/share/zoneinfo/America/New_York", 0o644),
    ("usr/share/doc/libc6/copyright", 0o644),
    ("usr/share/doc/libc6/changelog.Debian.gz", 0o644),
    ("var/lib/dpkg/status", 0o644),
];

/// The `debian-like` base layer: real files from this machine (those it has).
pub fn base_layer() -> LayerSpec {
    let mut items = vec![
        Item::dir("etc"),
        Item::dir("lib"),
        Item::dir("lib64"),
        Item::dir("tmp"),
        Item::dir("usr"),
        Item::dir("var"),
        Item::file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        Item::file("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        Item::Symlink {
            path: "lib64/ld-linux-x86-64.so.2".into(),
            target: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into(),
        },
    ];
    for (path, mode) in BASE_FILES {
        if let Ok(data) = std::fs::read(Path::new("/").join(path)) {
            items.push(Item::File {
                path: (*path).into(),
                data,
                mode: *mode,
            });
        }
    }
    LayerSpec::new(
        "ADD rootfs.tar.xz / # debian-like base from this machine's files",
        items,
    )
}

/// A distroless-like base, as `gcr.io/distroless/cc` is made: passwd, certificates,
/// tzdata, the loader, glibc and libgcc_s (this machine's files), and no shell,
/// package manager or docs.
pub fn distroless_like_base() -> LayerSpec {
    let mut items = vec![
        Item::dir("etc"),
        Item::dir("lib"),
        Item::dir("lib64"),
        Item::dir("tmp"),
        Item::file("etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"),
        Item::file("etc/group", "root:x:0:\nnonroot:x:65532:\n"),
        Item::Symlink {
            path: "lib64/ld-linux-x86-64.so.2".into(),
            target: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into(),
        },
    ];
    for (path, mode) in BASE_FILES {
        let wanted = path.starts_with("lib/")
            || path.starts_with("etc/ssl/")
            || path.starts_with("usr/share/zoneinfo/");
        if let (true, Ok(data)) = (wanted, std::fs::read(Path::new("/").join(path))) {
            items.push(Item::File {
                path: (*path).into(),
                data,
                mode: *mode,
            });
        }
    }
    LayerSpec::new("distroless-like base from this machine's files", items)
}

/// What `apt-get update && apt-get install` leaves behind when nobody cleans up:
/// the package lists this machine downloaded (real ones), in a layer of their own.
pub fn apt_lists_layer() -> LayerSpec {
    let mut items = Vec::new();
    let mut total = 0usize;
    if let Ok(dir) = std::fs::read_dir("/var/lib/apt/lists") {
        let mut names: Vec<_> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for path in names {
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            if total + data.len() > 32 * 1024 * 1024 {
                break;
            }
            total += data.len();
            if let Some(name) = path.file_name() {
                items.push(Item::file(
                    &format!("var/lib/apt/lists/{}", name.to_string_lossy()),
                    data,
                ));
            }
        }
    }
    if items.is_empty() {
        // A machine that never ran apt-get update: its dpkg status is the closest
        // real stand-in for a package index.
        if let Ok(data) = std::fs::read("/var/lib/dpkg/status") {
            items.push(Item::file(
                "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages",
                data,
            ));
        }
    }
    LayerSpec::new(
        "RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates",
        items,
    )
}

/// A service image in the usual shape: base, apt layer, the binary (plus a build log
/// that a later layer deletes: bytes every node still pulls).
pub fn service_image(
    binary: &Path,
    install_path: &str,
    with_waste: bool,
) -> std::io::Result<ImageSpec> {
    let data = std::fs::read(binary)?;
    let mut layers = vec![base_layer()];
    if with_waste {
        layers.push(apt_lists_layer());
    }
    let mut app = vec![Item::executable(install_path, data)];
    if with_waste {
        let log: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("step {i}: compiled\n").into_bytes())
            .collect();
        app.push(Item::file("tmp/build.log", log));
    }
    layers.push(LayerSpec::new(
        &format!("COPY app {install_path} # buildkit"),
        app,
    ));
    if with_waste {
        layers.push(LayerSpec::new(
            "RUN rm /tmp/build.log",
            vec![Item::Whiteout {
                path: "tmp/build.log".into(),
            }],
        ));
    }
    let mut spec = ImageSpec::new(layers);
    spec.entrypoint = vec![format!("/{install_path}")];
    spec.empty_history = vec![(0, "ENV LANG=C.UTF-8".into())];
    Ok(spec)
}
