//! Binary forensics on real binaries compiled at test time, checked against the
//! toolchains' own tools as oracles: `go version -m` for Go build info, binutils
//! `strip` for strip predictions, `rustc --version` for the Rust toolchain and
//! `readelf` for linking. The hostile-input tests start from the same real binaries
//! and damage them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ballast::binary::{analyze, resolve_needed, BinaryReport};
use testkit::samples::{GoBuild, RustBuild};

use crate::common::samples;

/// `Samples` builds into fixed `.partial` paths, so two tests building the same
/// sample at once collide; every sample is built once, here, under a lock.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let samples = samples();
        Built {
            go: GoBuild::ALL
                .map(|b| samples.go(b).expect("go sample"))
                .to_vec(),
            rust: RustBuild::ALL
                .map(|b| samples.rust(b).expect("rust sample"))
                .to_vec(),
            c: samples.c().expect("c sample"),
        }
    })
}

struct Built {
    go: Vec<PathBuf>,
    rust: Vec<PathBuf>,
    c: PathBuf,
}

impl Built {
    fn go(&self, build: GoBuild) -> &Path {
        let i = GoBuild::ALL
            .iter()
            .position(|b| *b == build)
            .expect("variant");
        &self.go[i]
    }

    fn rust(&self, build: RustBuild) -> &Path {
        let i = RustBuild::ALL
            .iter()
            .position(|b| *b == build)
            .expect("variant");
        &self.rust[i]
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/ballast-samples/forensics-scratch")
        .join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn report_for(path: &Path) -> BinaryReport {
    let bytes = std::fs::read(path).expect("read sample");
    analyze(&path.to_string_lossy(), &bytes)
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run tool");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Every sample the issue asks for, with a label.
fn all_samples() -> Vec<(String, PathBuf)> {
    let built = built();
    let mut all = Vec::new();
    for build in GoBuild::ALL {
        all.push((
            format!("go/{}", build.name()),
            built.go(build).to_path_buf(),
        ));
    }
    for build in RustBuild::ALL {
        all.push((
            format!("rust/{}", build.name()),
            built.rust(build).to_path_buf(),
        ));
    }
    all.push(("c/gcc".into(), built.c.clone()));
    for lib in [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
    ] {
        if Path::new(lib).exists() {
            all.push((format!("host{lib}"), PathBuf::from(lib)));
        }
    }
    all
}

// ---------------------------------------------------------------- Go build info

/// `strconv.Quote` for the characters `debug.BuildInfo.String` quotes on.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The report rendered the way `go version -m` prints (`debug.BuildInfo.String`),
/// so the oracle comparison covers every field, quoting included.
fn render_like_go_version_m(file: &str, report: &BinaryReport) -> String {
    let go = report.go.as_ref().expect("go build info");
    let mut out = format!("{file}: {}\n", go.version);
    if let Some(path) = &go.path {
        out.push_str(&format!("\tpath\t{path}\n"));
    }
    let module = |word: &str,
                  path: &str,
                  version: &str,
                  sum: &str,
                  replace: Option<&ballast::binary::GoModule>| {
        let mut line = format!("\t{word}\t{path}\t{version}");
        match replace {
            None => line.push_str(&format!("\t{sum}\n")),
            Some(r) => line.push_str(&format!("\n\t=>\t{}\t{}\t{}\n", r.path, r.version, r.sum)),
        }
        line
    };
    if let Some(main) = &go.main_module {
        out.push_str(&module(
            "mod",
            main,
            go.main_module_version.as_deref().unwrap_or(""),
            go.main_module_sum.as_deref().unwrap_or(""),
            go.main_module_replace.as_ref(),
        ));
    }
    for dep in &go.deps {
        out.push_str(&module(
            "dep",
            &dep.path,
            &dep.version,
            &dep.sum,
            dep.replace.as_deref(),
        ));
    }
    for (key, value) in &go.settings.0 {
        let key = if key.is_empty() || key.contains(|c| "= \t\r\n\"`".contains(c)) {
            go_quote(key)
        } else {
            key.clone()
        };
        let value = if value.contains(|c| " \t\r\n\"`".contains(c)) {
            go_quote(value)
        } else {
            value.clone()
        };
        out.push_str(&format!("\tbuild\t{key}={value}\n"));
    }
    out
}

fn assert_matches_go_version_m(binary: &Path) -> BinaryReport {
    let oracle = run(Command::new("go").arg("version").arg("-m").arg(binary));
    let report = report_for(binary);
    assert_eq!(report.language, "go", "{}", binary.display());
    // Go 1.19's `BuildInfo.String` prints a blank line after each `=>` line; later
    // releases do not. Blank lines carry no data either way.
    let oracle: String = oracle
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let mine = render_like_go_version_m(&binary.to_string_lossy(), &report);
    assert_eq!(
        mine,
        oracle,
        "build info of {} differs from go version -m",
        binary.display()
    );
    report
}

#[test]
fn every_go_build_agrees_with_go_version_m() {
    for build in GoBuild::ALL {
        let binary = built().go(build);
        let report = assert_matches_go_version_m(binary);
        let go = report.go.as_ref().expect("go info");
        assert_eq!(go.buildinfo_format, "inline");
        assert_eq!(go.found_in, "section");
        assert!(go.go_build_id.is_some());
        match build {
            GoBuild::StripFlags => {
                assert!(!go.has_symbol_table && !go.has_dwarf);
                assert_eq!(go.settings.get("-ldflags"), Some("-s -w"));
            }
            GoBuild::Trimpath => assert_eq!(go.settings.get("-trimpath"), Some("true")),
            GoBuild::CgoOff | GoBuild::Arm64 => {
                assert_eq!(go.settings.get("CGO_ENABLED"), Some("0"))
            }
            GoBuild::CgoOn | GoBuild::Default => {
                assert_eq!(go.settings.get("CGO_ENABLED"), Some("1"))
            }
        }
        if build == GoBuild::Arm64 {
            assert_eq!(
                report.machine.map(|m| m.to_string()).as_deref(),
                Some("aarch64")
            );
            assert_eq!(go.settings.get("GOARCH"), Some("arm64"));
        }
        // The JSON contract.
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["go"]["version"], go.version.as_str());
        assert_eq!(json["go"]["main_module"], "example.com/hello");
        assert!(json["go"]["settings"]["GOOS"].is_string());
    }
}

/// A module with a replaced dependency, built inside a git work tree so that the
/// `dep`, `=>` and `vcs.*` lines are exercised too.
#[test]
fn go_dependencies_replacements_and_vcs_agree_with_go_version_m() {
    let dir = scratch_dir("go-deps");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("greet")).expect("mkdir");
    std::fs::write(
        dir.join("go.mod"),
        "module example.com/app\n\ngo 1.19\n\nrequire example.com/greet v1.2.3\n\nreplace example.com/greet => ./greet\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("main.go"),
        "package main\n\nimport \"example.com/greet\"\n\nfunc main() { println(greet.Hello()) }\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("greet/go.mod"),
        "module example.com/greet\n\ngo 1.19\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("greet/greet.go"),
        "package greet\n\nfunc Hello() string { return \"hi\" }\n",
    )
    .expect("write");
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args(args)
            .current_dir(&dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &dir))
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "fixture"]);
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ballast-samples/gocache");
    let binary = dir.join("app");
    run(Command::new("go")
        .args(["build", "-buildvcs=true", "-ldflags=-X main.x=y", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&dir)
        .env("GOCACHE", &cache)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("HOME", &dir));
    let report = assert_matches_go_version_m(&binary);
    let go = report.go.expect("go info");
    assert_eq!(go.deps.len(), 1);
    assert_eq!(go.deps[0].path, "example.com/greet");
    assert_eq!(go.deps[0].version, "v1.2.3");
    assert_eq!(
        go.deps[0].replace.as_ref().map(|r| r.path.as_str()),
        Some("./greet")
    );
    assert_eq!(go.settings.get("vcs"), Some("git"));
    assert_eq!(go.settings.get("vcs.revision").map(str::len), Some(40));
    assert_eq!(go.settings.get("-ldflags"), Some("-X main.x=y"));
}

/// Zeroing the section header table (what `sstrip` does) leaves only the segments:
/// the build info must still be found by scanning the writable data segment.
#[test]
fn go_build_info_without_section_headers() {
    for build in [GoBuild::Default, GoBuild::Arm64] {
        let binary = built().go(build);
        let original = report_for(binary);
        let mut bytes = std::fs::read(binary).expect("read");
        bytes[0x28..0x30].fill(0); // e_shoff
        bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
        let report = analyze("no-sections", &bytes);
        let go = report.go.as_ref().expect("go info from the data segment");
        let want = original.go.as_ref().expect("go info");
        assert_eq!(go.found_in, "data-segment");
        assert_eq!(go.version, want.version);
        assert_eq!(go.settings, want.settings);
        assert_eq!(go.main_module, want.main_module);
        assert_eq!(report.language, "go");
        assert_eq!(report.interpreter, original.interpreter);
        assert_eq!(report.needed, original.needed, "needed via PT_DYNAMIC");
        assert_eq!(report.build_id, original.build_id, "notes via PT_NOTE");
        // No section table: nothing strip could remove can be named (GNU strip
        // refuses the file), so nothing is predicted.
        assert!(report.strip.is_none(), "{:?}", report.strip);
        assert!(report
            .strip_error
            .as_deref()
            .is_some_and(|e| e.contains("no section header table")));
        assert!(!report.has_symbol_table && !report.has_debug_info);
    }
}

// ---------------------------------------------------------------- strip

#[test]
fn strip_predictions_match_binutils() {
    let dir = scratch_dir("strip");
    let mut lines = Vec::new();
    for (label, binary) in all_samples() {
        let report = report_for(&binary);
        let strip = report
            .strip
            .as_ref()
            .unwrap_or_else(|| panic!("{label}: no strip prediction: {:?}", report.strip_error));
        for (flag, predicted) in [
            ("--strip-debug", strip.size_after_strip_debug),
            ("--strip-all", strip.size_after_strip_all),
        ] {
            let out = dir.join(format!("{}{flag}", label.replace('/', "_")));
            // Debian's binutils `strip` only knows the host architecture.
            let tool = if report.machine.map(|m| m.to_string()).as_deref() == Some("aarch64") {
                "aarch64-linux-gnu-strip"
            } else {
                "strip"
            };
            if Command::new(tool).arg("--version").output().is_err() {
                lines.push(format!(
                    "{label:32} {flag:14} skipped: {tool} is not installed"
                ));
                continue;
            }
            run(Command::new(tool)
                .arg(flag)
                .arg("-o")
                .arg(&out)
                .arg(&binary));
            let real = std::fs::metadata(&out).expect("stripped").len();
            let diff = predicted as i64 - real as i64;
            lines.push(format!(
                "{label:32} {flag:14} size {:>9} predicted {predicted:>9} strip {real:>9} diff {diff:+}",
                report.size
            ));
            assert!(
                (diff.unsigned_abs() as f64) <= real as f64 * 0.01,
                "{label} {flag}: predicted {predicted}, strip gave {real}"
            );
        }
    }
    println!("{}", lines.join("\n"));
}

// ---------------------------------------------------------------- Rust

#[test]
fn rust_samples_report_the_toolchain() {
    let version = run(Command::new("rustc").arg("--version"));
    let verbose = run(Command::new("rustc").arg("-vV"));
    let commit = verbose
        .lines()
        .find_map(|l| l.strip_prefix("commit-hash: "))
        .expect("commit hash")
        .to_string();
    for build in RustBuild::ALL {
        let report = report_for(built().rust(build));
        assert_eq!(report.language, "rust", "{build:?}");
        assert!(
            report.malformed.is_none(),
            "{build:?}: {:?}",
            report.malformed
        );
        let rust = report.rust.as_ref().expect("rust info");
        let rustc = rust.rustc_version.as_deref().expect("rustc version");
        assert_eq!(format!("rustc {rustc}"), version.trim(), "{build:?}");
        assert_eq!(
            rust.toolchain_commit.as_deref(),
            Some(commit.as_str()),
            "{build:?}"
        );
        assert_eq!(
            (rust.lto, rust.codegen_units, rust.opt_level),
            ("unknown", "unknown", "unknown")
        );
        let expected_panic = match build {
            RustBuild::LtoAbort => "abort",
            _ => "unwind",
        };
        assert_eq!(
            rust.panic, expected_panic,
            "{build:?}: {:?}",
            rust.panic_evidence
        );
        assert!(
            rust.crates.is_none(),
            "no cargo-auditable data in rustc builds"
        );
        match build {
            RustBuild::DebugInfo => assert!(report.has_debug_info && report.has_symbol_table),
            RustBuild::Stripped => assert!(!report.has_symbol_table),
            _ => assert!(report.has_symbol_table),
        }
    }
}

// ---------------------------------------------------------------- linking

/// `readelf -d`/`-l` as the oracle for NEEDED, SONAME and the interpreter.
fn readelf_linking(binary: &Path) -> (Vec<String>, Option<String>, Option<String>) {
    let dynamic = run(Command::new("readelf").args(["-d", "-W"]).arg(binary));
    let bracketed = |line: &str| {
        line.split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(v, _)| v.to_string())
    };
    let needed = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(bracketed)
        .collect();
    let soname = dynamic
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(bracketed);
    let program = run(Command::new("readelf").args(["-l", "-W"]).arg(binary));
    let interp = program
        .lines()
        .find_map(|l| l.trim().strip_prefix("[Requesting program interpreter: "))
        .map(|s| s.trim_end_matches(']').to_string());
    (needed, soname, interp)
}

#[test]
fn linking_matches_readelf() {
    for (label, binary) in all_samples() {
        let report = report_for(&binary);
        let (needed, soname, interp) = readelf_linking(&binary);
        assert_eq!(report.needed, needed, "{label}");
        assert_eq!(report.soname, soname, "{label}");
        assert_eq!(report.interpreter, interp, "{label}");
        let expected = match label.as_str() {
            "go/cgo-off" | "go/arm64" => "static",
            "rust/static" => "static-pie",
            _ => "dynamic",
        };
        assert_eq!(report.linkage, expected, "{label}");
        let elf_type = match label.as_str() {
            "go/cgo-off" | "go/arm64" | "go/ldflags-s-w" | "go/default" | "go/trimpath"
            | "go/cgo-on" => "exec",
            l if l.starts_with("host/") => "shared",
            _ => "pie",
        };
        assert_eq!(report.elf_type, elf_type, "{label}");
        if expected == "dynamic" && label != "host/lib/x86_64-linux-gnu/libgcc_s.so.1" {
            let glibc = report.glibc_version_needed.as_deref().unwrap_or("");
            assert!(glibc.starts_with("GLIBC_2."), "{label}: {glibc}");
        }
        assert!(
            report.malformed.is_none(),
            "{label}: {:?}",
            report.malformed
        );
        assert!(
            report.build_id.is_some() || label.starts_with("go/"),
            "{label} build id"
        );
    }
}

#[test]
fn c_and_host_libraries() {
    let c = report_for(&built().c);
    assert_eq!(c.language, "c/c++");
    assert!(c.language_evidence.iter().any(|e| e.contains("GCC:")));
    assert_eq!(c.needed, vec!["libc.so.6".to_string()]);
    assert!(c.has_debug_info);
    assert!(c.go.is_none() && c.rust.is_none());

    let libc = report_for(Path::new("/lib/x86_64-linux-gnu/libc.so.6"));
    assert_eq!(libc.elf_type, "shared");
    assert_eq!(libc.soname.as_deref(), Some("libc.so.6"));
    assert_eq!(
        libc.machine.map(|m| m.to_string()).as_deref(),
        Some("x86_64")
    );
    assert_eq!(libc.class.map(|c| c.key()), Some("elf64"));
}

#[test]
fn needed_libraries_resolve_against_an_image_tree() {
    let report = report_for(built().go(GoBuild::CgoOn));
    let mut report = report;
    report.path = "app/server".into();
    let image = ["lib/x86_64-linux-gnu/libc.so.6"];
    let resolved = resolve_needed(&report, |p| image.contains(&p));
    assert!(!resolved.is_empty());
    for (name, found) in &resolved {
        if name == "libc.so.6" {
            assert_eq!(found.as_deref(), Some("lib/x86_64-linux-gnu/libc.so.6"));
        } else {
            assert_eq!(found, &None, "{name} is absent from the image");
        }
    }
}

// ---------------------------------------------------------------- anatomy

#[test]
fn anatomy_adds_up_to_the_file_size() {
    for (label, binary) in all_samples() {
        let report = report_for(&binary);
        let anatomy = report.anatomy.as_ref().expect("anatomy");
        let total: u64 = anatomy.groups.iter().map(|g| g.bytes).sum();
        assert_eq!(total, report.size, "{label}");
        let group = |name: &str| {
            anatomy
                .groups
                .iter()
                .find(|g| g.group == name)
                .map_or(0, |g| g.bytes)
        };
        assert!(group("code") > 0, "{label}");
        if label.starts_with("go/") {
            assert!(group("gopclntab") > 0, "{label}");
            if label != "go/ldflags-s-w" {
                assert!(
                    group("dwarf") > 0 && anatomy.dwarf_compressed,
                    "{label}: Go zlib-compresses DWARF"
                );
            }
        }
        if label == "rust/debuginfo" || label == "c/gcc" {
            assert!(group("dwarf") > 0 && !anatomy.dwarf_compressed, "{label}");
        }
        // The strip prediction and the anatomy tell the same story.
        if let Some(strip) = &report.strip {
            assert!(strip.saved_by_strip_debug >= group("dwarf") / 2, "{label}");
        }
    }
}

// ---------------------------------------------------------------- hostile input

/// Deterministic xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn shoff(bytes: &[u8]) -> usize {
    u64::from_le_bytes(bytes[0x28..0x30].try_into().expect("8 bytes")) as usize
}

#[test]
fn truncated_files_are_malformed_not_panics() {
    for binary in [&built().c, built().rust(RustBuild::Release)] {
        let bytes = std::fs::read(binary).expect("read");
        let mut cuts: Vec<usize> = (0..300).collect();
        let mut rng = Rng(0x9e3779b97f4a7c15);
        cuts.extend((0..300).map(|_| (rng.next() % bytes.len() as u64) as usize));
        cuts.push(bytes.len() - 1);
        for cut in cuts {
            let report = analyze("truncated", &bytes[..cut]);
            assert_eq!(report.size, cut as u64);
            // The section header table sits at the end of these files, so every cut
            // damages it.
            assert!(report.malformed.is_some(), "cut at {cut} not reported");
            assert!(report.strip.is_none());
            if let Some(anatomy) = &report.anatomy {
                assert_eq!(
                    anatomy.groups.iter().map(|g| g.bytes).sum::<u64>(),
                    cut as u64
                );
            }
        }
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let c = std::fs::read(&built().c).expect("read");
    let go = std::fs::read(built().go(GoBuild::StripFlags)).expect("read");
    let mut rng = Rng(0x2545f4914f6cdd1d);
    for (bytes, rounds, header_only) in [(&c, 300, false), (&c, 300, true), (&go, 20, true)] {
        for _ in 0..rounds {
            let mut damaged = bytes.clone();
            for _ in 0..(1 + rng.next() % 16) {
                // Half the time aim at the headers and tables, where damage matters.
                let limit = if header_only {
                    0x40
                } else {
                    damaged.len() as u64
                };
                let at = if rng.next() % 2 == 0 {
                    (rng.next() % limit) as usize
                } else {
                    shoff(bytes) + (rng.next() % (bytes.len() - shoff(bytes)) as u64) as usize
                };
                damaged[at] ^= 1 << (rng.next() % 8);
            }
            let report = analyze("flipped", &damaged);
            if let Some(anatomy) = &report.anatomy {
                assert_eq!(
                    anatomy.groups.iter().map(|g| g.bytes).sum::<u64>(),
                    damaged.len() as u64
                );
            }
        }
    }
}

/// Patches one section header field of a little-endian ELF64 file.
fn patch_section(bytes: &mut [u8], index: usize, field_offset: usize, value: u64) {
    let at = shoff(bytes) + index * 64 + field_offset;
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn section_index(bytes: &[u8], name: &str) -> usize {
    let file = object::File::parse(bytes).expect("parse");
    use object::{Object, ObjectSection};
    file.section_by_name(name).expect("section").index().0
}

#[test]
fn hostile_headers_degrade_sensibly() {
    let original = std::fs::read(built().go(GoBuild::CgoOn)).expect("read");
    let reference = analyze("ok", &original);

    // A section header count far beyond the file.
    let mut huge_shnum = original.clone();
    huge_shnum[0x3c..0x3e].copy_from_slice(&0xffffu16.to_le_bytes());
    let report = analyze("huge-shnum", &huge_shnum);
    // Either the table runs past the end, or (Go puts it early) it reads garbage.
    assert!(report.malformed.is_some());
    assert_eq!(
        report.go.as_ref().map(|g| &g.version),
        reference.go.as_ref().map(|g| &g.version)
    );
    assert_eq!(report.needed, reference.needed, "PT_DYNAMIC still read");

    // Extended numbering: e_shnum 0 and a huge count in section 0's sh_size.
    let mut extended = original.clone();
    extended[0x3c..0x3e].fill(0);
    patch_section(&mut extended, 0, 0x20, u64::MAX / 2);
    assert!(analyze("extended", &extended).malformed.is_some());

    // A huge program header count, plain and as PN_XNUM (count in section 0).
    for phnum in [0xfff0u16, 0xffff] {
        let mut huge_phnum = original.clone();
        huge_phnum[0x38..0x3a].copy_from_slice(&phnum.to_le_bytes());
        let report = analyze("huge-phnum", &huge_phnum);
        assert!(report.malformed.is_some(), "e_phnum {phnum:#x}");
        assert_eq!(
            report.go.as_ref().map(|g| &g.version),
            reference.go.as_ref().map(|g| &g.version)
        );
    }

    // A section that starts past the end of the file.
    let mut past_eof = original.clone();
    let text = section_index(&original, ".text");
    patch_section(&mut past_eof, text, 0x18, u64::MAX - 8);
    let report = analyze("past-eof", &past_eof);
    assert!(report
        .malformed
        .as_deref()
        .unwrap_or("")
        .contains("outside the file"));
    assert_eq!(
        report
            .anatomy
            .as_ref()
            .map(|a| a.groups.iter().map(|g| g.bytes).sum::<u64>()),
        Some(report.size)
    );

    // A section size that runs past the end of the file.
    let mut too_long = original.clone();
    let rodata = section_index(&original, ".rodata");
    patch_section(&mut too_long, rodata, 0x20, 1 << 40);
    assert!(analyze("too-long", &too_long).malformed.is_some());

    // Overlapping sections: .rodata moved onto .text.
    let mut overlap = original.clone();
    let text_offset = {
        let at = shoff(&original) + text * 64 + 0x18;
        u64::from_le_bytes(original[at..at + 8].try_into().expect("8"))
    };
    patch_section(&mut overlap, rodata, 0x18, text_offset);
    let report = analyze("overlap", &overlap);
    let anatomy = report.anatomy.as_ref().expect("anatomy");
    assert_eq!(
        anatomy.groups.iter().map(|g| g.bytes).sum::<u64>(),
        report.size
    );
    assert_eq!(
        report.go.as_ref().map(|g| &g.version),
        reference.go.as_ref().map(|g| &g.version)
    );

    // The build info section pointing at garbage: no Go info, but still Go by its
    // other evidence, and no panic.
    let mut bad_buildinfo = original.clone();
    let buildinfo = section_index(&original, ".go.buildinfo");
    let at = {
        let at = shoff(&original) + buildinfo * 64 + 0x18;
        u64::from_le_bytes(original[at..at + 8].try_into().expect("8")) as usize
    };
    // Inline format, but the version length runs past the segment.
    bad_buildinfo[at + 32..at + 42].fill(0xff);
    let report = analyze("bad-buildinfo", &bad_buildinfo);
    assert!(report.go.is_none());
    assert_eq!(report.language, "go");
    assert!(report
        .malformed
        .as_deref()
        .unwrap_or("")
        .contains("Go build info"));

    // Not ELF at all, and ELF with an unknown class.
    assert!(analyze("empty", &[]).malformed.is_some());
    let mut bad_class = original[..64].to_vec();
    bad_class[4] = 9;
    assert!(analyze("bad-class", &bad_class).malformed.is_some());
}

#[test]
fn report_json_keeps_the_stable_field_names() {
    let report = report_for(built().go(GoBuild::Default));
    let json = serde_json::to_value(&report).expect("json");
    for key in [
        "path",
        "size",
        "language",
        "linkage",
        "interpreter",
        "needed",
        "go",
        "rust",
        "strip",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert!(json["strip"]["size_after_strip_debug"].is_u64());
    assert!(json["strip"]["size_after_strip_all"].is_u64());
    assert!(json["go"]["settings"].is_object());
    println!("{}", serde_json::to_string_pretty(&json).expect("json"));
}

// ---------------------------------------------------------------- Go layouts

/// Go 1.19 writes only the inline format, but in either byte order and pointer
/// size: cross-builds of the sample cover 4-byte little-endian (386), 4-byte
/// big-endian (mips) and 8-byte big-endian (s390x).
#[test]
fn go_cross_builds_in_both_byte_orders_and_pointer_sizes() {
    let _serial = built();
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ballast-samples/gocache");
    let dir = scratch_dir("go-cross");
    for (goarch, pointer_size, big_endian, machine) in [
        ("386", 4, false, "i386"),
        ("mips", 4, true, "mips"),
        ("s390x", 8, true, "s390"),
    ] {
        let binary = dir.join(format!("hello-{goarch}"));
        if !binary.exists() {
            run(Command::new("go")
                .args(["build", "-o"])
                .arg(&binary)
                .arg(".")
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/hello-go"))
                .env("GOCACHE", &cache)
                .env("GOFLAGS", "-mod=mod")
                .env("GOTOOLCHAIN", "local")
                .env("GOPROXY", "off")
                .env("CGO_ENABLED", "0")
                .env("GOARCH", goarch));
        }
        let report = assert_matches_go_version_m(&binary);
        let go = report.go.as_ref().expect("go info");
        assert_eq!(
            (go.pointer_size, go.big_endian),
            (pointer_size, big_endian),
            "{goarch}"
        );
        assert_eq!(
            report.machine.map(|m| m.to_string()).as_deref(),
            Some(machine)
        );
        assert_eq!(
            report.endian.map(|e| e.key()),
            Some(if big_endian { "big" } else { "little" })
        );
        assert_eq!(report.linkage, "static");
        let total: u64 = report
            .anatomy
            .as_ref()
            .expect("anatomy")
            .groups
            .iter()
            .map(|g| g.bytes)
            .sum();
        assert_eq!(total, report.size);
    }
}

/// The pre-1.18 pointer format: a header holding addresses of Go string headers.
/// No pre-1.18 Go toolchain is available here, so gcc lays the blob out exactly as
/// the old Go linker did (a `.go.buildinfo` section, 16-byte aligned, pointers
/// relocated by the real linker); `go version -m` reads it, and is the oracle.
const POINTER_FORMAT_C: &str = r#"
struct gostring { const char *p; long n; };
static const char version[] = "go1.16.15";
static const char modinfo[] =
    "0w\xaf\x0c\x92t\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6"
    "path\texample.com/old\nmod\texample.com/old\tv0.1.0\th1:abc=\n"
    "dep\tgolang.org/x/sys\tv0.0.0-2021\th1:def=\n=>\t../sys\t(devel)\t\n"
    "dep\texample.com/plain\tv1.0.0\th1:ghi=\n"
    "\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2";
struct gostring vs = { version, sizeof version - 1 };
struct gostring ms = { modinfo, sizeof modinfo - 1 };
struct header { char magic[14]; unsigned char ptrsize, flags; struct gostring *v, *m; }
    __attribute__((aligned(16)));
__attribute__((section(".go.buildinfo"), used)) struct header buildinfo = {
    "\xff Go buildinf:", sizeof(void *), 0, &vs, &ms };
int main(void) { return buildinfo.flags; }
"#;

#[test]
fn go_pointer_format_laid_out_by_gcc() {
    let dir = scratch_dir("go-pointer-format");
    let source = dir.join("buildinfo.c");
    std::fs::write(&source, POINTER_FORMAT_C).expect("write");
    // 8-byte pointers with glibc; 4-byte pointers freestanding (no 32-bit libc here).
    for (name, flags, pointer_size) in [
        ("ptr64", &["-O2", "-no-pie"][..], 8u8),
        (
            "ptr32",
            &[
                "-m32",
                "-O2",
                "-nostdlib",
                "-static",
                "-no-pie",
                "-Wl,-e,main",
            ][..],
            4,
        ),
    ] {
        let binary = dir.join(name);
        let status = Command::new("gcc")
            .args(flags)
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .status()
            .expect("gcc");
        assert!(status.success(), "gcc {flags:?}");
        let report = assert_matches_go_version_m(&binary);
        let go = report.go.as_ref().expect("go info");
        assert_eq!(go.buildinfo_format, "pointer");
        assert_eq!(go.pointer_size, pointer_size);
        assert_eq!(go.version, "go1.16.15");
        assert_eq!(go.deps.len(), 2);
        assert_eq!(
            go.deps[0].replace.as_ref().map(|r| r.path.as_str()),
            Some("../sys")
        );

        // Without section headers the blob is found by scanning the data segment.
        let mut bytes = std::fs::read(&binary).expect("read");
        if pointer_size == 8 {
            bytes[0x28..0x30].fill(0);
            bytes[0x3c..0x40].fill(0);
        } else {
            bytes[0x20..0x24].fill(0); // e_shoff
            bytes[0x30..0x34].fill(0); // e_shnum, e_shstrndx
        }
        let headerless = analyze("headerless", &bytes);
        let found = headerless
            .go
            .as_ref()
            .expect("go info from the data segment");
        assert_eq!(found.found_in, "data-segment");
        assert_eq!(found.deps, go.deps);
        assert_eq!(found.main_module, go.main_module);
    }
}

// ---------------------------------------------------------------- fuzz findings

/// Finding `zero-sh-addralign`: `sh_addralign` 0 made the ELF builder's `align()`
/// underflow. The gABI says 0 means the same as 1, and binutils agrees: the
/// prediction for such a file must still match `strip`.
#[test]
fn zero_section_alignment_still_predicts_exactly() {
    let original = std::fs::read(&built().c).expect("read");
    let mut bytes = original.clone();
    let text = section_index(&original, ".text");
    let comment = section_index(&original, ".comment");
    patch_section(&mut bytes, text, 0x30, 0);
    patch_section(&mut bytes, comment, 0x30, 0);
    let dir = scratch_dir("zero-align");
    let input = dir.join("hello-c-zero-align");
    std::fs::write(&input, &bytes).expect("write");
    let report = analyze("zero-align", &bytes);
    let strip = report.strip.as_ref().expect("prediction");
    for (flag, predicted) in [
        ("--strip-debug", strip.size_after_strip_debug),
        ("--strip-all", strip.size_after_strip_all),
    ] {
        let out = dir.join(format!("out{flag}"));
        run(Command::new("strip")
            .arg(flag)
            .arg("-o")
            .arg(&out)
            .arg(&input));
        assert_eq!(
            predicted,
            std::fs::metadata(&out).expect("stripped").len(),
            "{flag}"
        );
    }
}

/// cargo-auditable embeds its dependency list as a zlib-compressed JSON section named
/// `.dep-v0`. The section is added here the same way (a real linker-made Rust binary,
/// a section added by binutils' objcopy) with the JSON shape auditable-serde writes.
#[test]
fn cargo_auditable_dep_v0_crate_list() {
    use std::io::Write;
    let dir = scratch_dir("dep-v0");
    let json = br#"{"packages":[
        {"name":"hello","version":"0.1.0","source":"local","kind":"runtime","dependencies":[1,2],"root":true},
        {"name":"serde","version":"1.0.210","source":"crates.io","kind":"runtime"},
        {"name":"cc","version":"1.1.0","source":"crates.io","kind":"build"}]}"#;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(json).expect("compress");
    let section = dir.join("dep-v0.bin");
    std::fs::write(&section, encoder.finish().expect("finish")).expect("write");
    let output = dir.join("hello-auditable");
    run(Command::new("objcopy")
        .arg("--add-section")
        .arg(format!(".dep-v0={}", section.display()))
        .arg(built().rust(RustBuild::Release))
        .arg(&output));
    let report = report_for(&output);
    let rust = report.rust.as_ref().expect("rust info");
    let crates = rust.crates.as_ref().expect("crate list from .dep-v0");
    let names: Vec<(&str, &str, &str)> = crates
        .iter()
        .map(|c| (c.name.as_str(), c.version.as_str(), c.kind.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("hello", "0.1.0", "runtime"),
            ("serde", "1.0.210", "runtime"),
            ("cc", "1.1.0", "build")
        ]
    );
    assert!(crates[0].root);
    assert_eq!(crates[1].source, "crates.io");

    // A binary without the section has no list, and a corrupt one says why.
    assert!(report_for(built().rust(RustBuild::Release))
        .rust
        .as_ref()
        .expect("rust")
        .crates
        .is_none());
    std::fs::write(&section, b"not zlib").expect("write");
    let corrupt = dir.join("hello-corrupt");
    run(Command::new("objcopy")
        .arg("--add-section")
        .arg(format!(".dep-v0={}", section.display()))
        .arg(built().rust(RustBuild::Release))
        .arg(&corrupt));
    let corrupt_report = report_for(&corrupt);
    let rust = corrupt_report.rust.as_ref().expect("rust");
    assert!(rust.crates.is_none());
    assert!(
        rust.crates_error
            .as_deref()
            .is_some_and(|e| e.contains("inflate")),
        "{:?}",
        rust.crates_error
    );
}

// ---------------------------------------------------------------- code attribution

use ballast::binary::attribution::{
    crate_of, is_rust_symbol, owner, Attribution, CrateOf, Owner, AUTOGENERATED, C_CODE,
    GO_ASSEMBLY, PRIMITIVE_IMPLS, UNATTRIBUTED, UNKNOWN_CRATE,
};
use std::collections::BTreeMap;

/// The samples with third-party code, built once like the others.
fn built_with_deps() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let samples = samples();
        let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock");
        (
            samples.go_deps().expect("go sample with dependencies"),
            samples
                .rust_deps(&lock)
                .expect("rust sample with dependencies"),
        )
    })
}

/// `.text`'s address and size, as binutils' readelf prints them.
fn readelf_text(binary: &Path) -> (u64, u64) {
    let out = run(Command::new("readelf").arg("-SW").arg(binary));
    for line in out.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = tokens.iter().position(|t| *t == ".text") {
            let hex = |s: &str| u64::from_str_radix(s, 16).expect("hex");
            return (hex(tokens[i + 2]), hex(tokens[i + 4]));
        }
    }
    panic!("no .text in {}", binary.display());
}

fn attribution_of(binary: &Path) -> Attribution {
    let report = report_for(binary);
    report
        .attribution
        .unwrap_or_else(|| panic!("no attribution for {}", binary.display()))
}

/// Items by name, unattributed left out.
fn measured_items(attribution: &Attribution) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for item in &attribution.items {
        if item.name != UNATTRIBUTED {
            *out.entry(item.name.clone()).or_insert(0) += item.bytes.expect("measured");
        }
    }
    out
}

/// The oracle: `go tool nm -size` text symbols inside `.text`, grouped with Go's
/// package rule (`owner`), and each symbol's count of alignment padding after it
/// (to the next symbol). Symbols inside a host object's section symbol
/// (`runtime/cgo(.text)`, `net(.text.unlikely)`: nm's own word that cgo's C code
/// is there) are C; the section symbols themselves are left out.
fn go_nm_packages(binary: &Path) -> BTreeMap<String, (u64, u64)> {
    let (start, size) = readelf_text(binary);
    let out = run(Command::new("go")
        .args(["tool", "nm", "-size", "-sort", "address"])
        .arg(binary));
    let mut symbols: Vec<(u64, u64, String)> = Vec::new();
    let mut host: Vec<(u64, u64)> = Vec::new();
    for line in out.lines() {
        let mut rest = line.trim_start();
        let mut fields = Vec::new();
        for _ in 0..3 {
            let (field, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            fields.push(field);
            rest = tail.trim_start();
        }
        let (Ok(addr), Ok(bytes)) = (u64::from_str_radix(fields[0], 16), fields[1].parse::<u64>())
        else {
            continue;
        };
        if !matches!(fields[2], "T" | "t") || bytes == 0 || addr < start || addr >= start + size {
            continue;
        }
        if rest.contains("(.text") {
            host.push((addr, addr + bytes));
        } else {
            symbols.push((addr, bytes, rest.to_string()));
        }
    }
    symbols.sort();
    let mut packages = BTreeMap::new();
    for (i, (addr, bytes, name)) in symbols.iter().enumerate() {
        let key = if host.iter().any(|(s, e)| addr >= s && addr < e) {
            C_CODE.to_string()
        } else {
            match owner(name.as_bytes()) {
                Owner::Package(p) => String::from_utf8_lossy(p).into_owned(),
                Owner::Autogenerated => AUTOGENERATED.to_string(),
                Owner::Unqualified => GO_ASSEMBLY.to_string(),
            }
        };
        let next = symbols.get(i + 1).map_or(start + size, |n| n.0);
        let entry = packages.entry(key).or_insert((0, 0));
        entry.0 += bytes;
        entry.1 += next.saturating_sub(addr + bytes);
    }
    packages
}

/// Within 2% of the oracle; C functions have no `pcsp` table, so theirs are
/// measured to the next function and may hold exactly the padding nm shows after
/// them on top.
fn assert_within_2_percent(
    label: &str,
    ours: &BTreeMap<String, u64>,
    oracle: &BTreeMap<String, (u64, u64)>,
) {
    let mut bad = Vec::new();
    let names: std::collections::BTreeSet<&String> = ours.keys().chain(oracle.keys()).collect();
    for name in names {
        let a = ours.get(name).copied().unwrap_or(0);
        let (b, padding) = oracle.get(name).copied().unwrap_or((0, 0));
        let fits = if name == C_CODE {
            a >= b && a <= b + padding
        } else {
            a.abs_diff(b) * 50 <= b
        };
        if !fits {
            bad.push(format!(
                "{name}: ours {a}, go tool nm {b} (+{padding} padding)"
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{label}: packages off by more than 2%:\n{}",
        bad.join("\n")
    );
}

#[test]
fn go_packages_agree_with_go_tool_nm() {
    let built = built();
    for build in [
        GoBuild::Default,
        GoBuild::CgoOff,
        GoBuild::CgoOn,
        GoBuild::Arm64,
    ] {
        let binary = built.go(build);
        let attribution = attribution_of(binary);
        let label = build.name();
        assert_eq!(
            (attribution.unit, attribution.source),
            (
                ballast::binary::attribution::Unit::Package,
                ballast::binary::attribution::Source::Pclntab
            ),
            "{label}"
        );
        assert_eq!(attribution.pclntab_layout, Some("go1.18"), "{label}");
        assert_eq!(attribution.code_bytes, readelf_text(binary).1, "{label}");
        assert_within_2_percent(
            label,
            &measured_items(&attribution),
            &go_nm_packages(binary),
        );

        let sum: u64 = attribution.items.iter().filter_map(|i| i.bytes).sum();
        assert_eq!(
            sum, attribution.code_bytes,
            "{label}: items add up to .text"
        );
        let unattributed = attribution
            .items
            .iter()
            .find(|i| i.name == UNATTRIBUTED)
            .and_then(|i| i.bytes)
            .unwrap_or(0);
        assert_eq!(
            unattributed,
            attribution.code_bytes - attribution.attributed_bytes
        );
        let padding = attribution.padding_bytes.expect("padding");
        assert!(padding <= unattributed, "{label}");
        // Sorted by bytes, then name.
        for pair in attribution.items.windows(2) {
            assert!(
                (pair[0].bytes, &pair[1].name) >= (pair[1].bytes, &pair[0].name),
                "{label}: order"
            );
        }
        let item = |name: &str| attribution.items.iter().find(|i| i.name == name);
        let runtime = item("runtime").expect("runtime");
        assert!(runtime.std && runtime.module.is_none());
        let main = item("main").expect("main");
        assert_eq!(main.module.as_deref(), Some("example.com/hello"), "{label}");
        assert!(!main.std);
        assert!(item("vendor/golang.org/x/net/http/httpguts").is_some_and(|i| i.std));
        // Go 1.19's runtime/cgo is assembly and C only: its code shows as `[asm]`
        // and `[C]`, and without cgo there is no C at all.
        assert!(item("runtime/cgo").is_none(), "{label}");
        match build {
            GoBuild::CgoOff | GoBuild::Arm64 => {
                assert!(item(C_CODE).is_none(), "{label}: no C without cgo");
            }
            _ => {
                assert!(
                    item(C_CODE).is_some_and(|c| c.bytes > Some(0)),
                    "{label}: cgo's C"
                );
            }
        }
    }
}

/// `-s -w` removes `.symtab` and DWARF, not the pclntab: the same packages, the
/// same bytes, at least 95% of the text section attributed.
#[test]
fn go_attribution_survives_ldflags_s_w() {
    let built = built();
    let stripped = attribution_of(built.go(GoBuild::StripFlags));
    let full = attribution_of(built.go(GoBuild::Default));
    assert!(!report_for(built.go(GoBuild::StripFlags)).has_symbol_table);
    assert_eq!(
        stripped.source,
        ballast::binary::attribution::Source::Pclntab
    );
    assert!(
        stripped.attributed_bytes * 100 >= stripped.code_bytes * 95,
        "{} of {} attributed",
        stripped.attributed_bytes,
        stripped.code_bytes
    );
    assert_eq!(measured_items(&stripped), measured_items(&full));
    let unattributed = stripped
        .items
        .iter()
        .find(|i| i.name == UNATTRIBUTED)
        .expect("unattributed");
    assert_eq!(
        unattributed.bytes,
        Some(stripped.code_bytes - stripped.attributed_bytes)
    );
}

/// A real third-party module: its packages carry the module path and version from
/// the build info, and agree with `go tool nm`.
#[test]
fn go_packages_group_into_build_info_modules() {
    let (go, _) = built_with_deps();
    let attribution = attribution_of(go);
    assert_within_2_percent(
        "go deps",
        &measured_items(&attribution),
        &go_nm_packages(go),
    );
    let text: Vec<_> = attribution
        .items
        .iter()
        .filter(|i| i.name.starts_with("golang.org/x/text/"))
        .collect();
    assert!(text.len() >= 3, "{text:?}");
    for item in &text {
        assert_eq!(item.module.as_deref(), Some("golang.org/x/text"));
        assert_eq!(item.version.as_deref(), Some("v0.7.0"));
        assert!(!item.std);
    }
    let main = attribution
        .items
        .iter()
        .find(|i| i.name == "main")
        .expect("main");
    assert_eq!(main.module.as_deref(), Some("example.com/hello-deps"));
    assert_eq!(main.version.as_deref(), Some("(devel)"));
}

/// The oracle: binutils `nm -S --size-sort` FUNC symbols in `.text`, one per
/// address (the largest, then the first name), each cut at the next one, demangled
/// with rustc-demangle and put in a crate by `crate_of`.
fn nm_rust_crates(binary: &Path) -> BTreeMap<String, u64> {
    let (start, size) = readelf_text(binary);
    let out = run(Command::new("nm")
        .args(["-S", "--size-sort", "--format=sysv"])
        .arg(binary));
    let mut symbols: Vec<(u64, u64, String)> = Vec::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 7 || cols[3] != "FUNC" || cols[6] != ".text" {
            continue;
        }
        let addr = u64::from_str_radix(cols[1], 16).expect("value");
        let bytes = u64::from_str_radix(cols[4], 16).expect("size");
        if bytes > 0 && addr >= start && addr < start + size {
            symbols.push((addr, bytes, cols[0].to_string()));
        }
    }
    symbols.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    symbols.dedup_by_key(|s| s.0);
    let mut crates = BTreeMap::new();
    for i in 0..symbols.len() {
        let (addr, bytes, name) = &symbols[i];
        let limit = symbols.get(i + 1).map_or(start + size, |n| n.0);
        let counted = (addr + bytes).min(limit) - addr;
        let key = if is_rust_symbol(name.as_bytes()) {
            let demangled = format!("{:#}", rustc_demangle::demangle(name));
            match crate_of(&demangled) {
                CrateOf::Crate(c) => c.to_string(),
                CrateOf::PrimitiveImpl => PRIMITIVE_IMPLS.to_string(),
                CrateOf::Unknown => UNKNOWN_CRATE.to_string(),
            }
        } else {
            C_CODE.to_string()
        };
        *crates.entry(key).or_insert(0) += counted;
    }
    crates
}

#[test]
fn rust_crates_match_nm_exactly() {
    let built = built();
    let (_, with_deps) = built_with_deps();
    for (label, binary) in [
        ("release", built.rust(RustBuild::Release)),
        ("debuginfo", built.rust(RustBuild::DebugInfo)),
        ("lto-abort", built.rust(RustBuild::LtoAbort)),
        ("static", built.rust(RustBuild::Static)),
        ("with deps", with_deps.as_path()),
    ] {
        let attribution = attribution_of(binary);
        assert_eq!(
            (attribution.unit, attribution.source),
            (
                ballast::binary::attribution::Unit::Crate,
                ballast::binary::attribution::Source::Symtab
            ),
            "{label}"
        );
        assert_eq!(
            measured_items(&attribution),
            nm_rust_crates(binary),
            "{label}"
        );
        let std = attribution
            .items
            .iter()
            .find(|i| i.name == "std")
            .expect("std");
        assert!(std.std, "{label}");
        let sum: u64 = attribution.items.iter().filter_map(|i| i.bytes).sum();
        assert_eq!(sum, attribution.code_bytes, "{label}");
    }
    let attribution = attribution_of(with_deps);
    for name in ["serde_json", "sha2", "hex", "hello_deps"] {
        let item = attribution.items.iter().find(|i| i.name == name);
        assert!(
            item.is_some_and(|i| !i.std && i.bytes > Some(0)),
            "{name}: {:#?}",
            attribution.items
        );
    }
}

/// A stripped Rust binary has no symbols to measure with: source `none`, and only
/// what cargo-auditable's `.dep-v0` lists, without sizes.
#[test]
fn stripped_rust_invents_nothing() {
    use std::io::Write;
    let stripped = built().rust(RustBuild::Stripped);
    let attribution = attribution_of(stripped);
    assert_eq!(
        attribution.source,
        ballast::binary::attribution::Source::None
    );
    assert!(attribution.items.is_empty());
    assert_eq!(attribution.attributed_bytes, 0);

    let dir = scratch_dir("attribution-dep-v0");
    let json = br#"{"packages":[
        {"name":"hello","version":"0.1.0","source":"local","kind":"runtime","root":true},
        {"name":"serde-json","version":"1.0.154","source":"crates.io","kind":"runtime"},
        {"name":"cc","version":"1.1.0","source":"crates.io","kind":"build"}]}"#;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(json).expect("compress");
    let section = dir.join("dep-v0.bin");
    std::fs::write(&section, encoder.finish().expect("finish")).expect("write");
    let output = dir.join("stripped-auditable");
    run(Command::new("objcopy")
        .arg("--add-section")
        .arg(format!(".dep-v0={}", section.display()))
        .arg(stripped)
        .arg(&output));
    let attribution = attribution_of(&output);
    assert_eq!(
        attribution.source,
        ballast::binary::attribution::Source::None
    );
    let listed: Vec<(&str, Option<&str>, Option<u64>)> = attribution
        .items
        .iter()
        .map(|i| (i.name.as_str(), i.version.as_deref(), i.bytes))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("hello", Some("0.1.0"), None),
            ("serde-json", Some("1.0.154"), None)
        ]
    );
    let json = serde_json::to_value(&attribution).expect("json");
    assert!(json["items"][0].get("bytes").is_none());

    // With symbols, the same list gives versions (dashes as underscores) and marks
    // the crates std links in privately as std's.
    let output = dir.join("release-auditable");
    run(Command::new("objcopy")
        .arg("--add-section")
        .arg(format!(".dep-v0={}", section.display()))
        .arg(built().rust(RustBuild::Release))
        .arg(&output));
    let attribution = attribution_of(&output);
    let gimli = attribution
        .items
        .iter()
        .find(|i| i.name == "gimli")
        .expect("gimli");
    assert!(gimli.std);
}

/// C: symbols are the unit; sizes are `st_size`, the object file named for local
/// symbols.
#[test]
fn c_symbols_match_nm() {
    let binary = &built().c;
    let attribution = attribution_of(binary);
    assert_eq!(attribution.unit, ballast::binary::attribution::Unit::Symbol);
    assert_eq!(
        attribution.source,
        ballast::binary::attribution::Source::Symtab
    );
    let out = run(Command::new("nm").args(["-S", "--format=sysv"]).arg(binary));
    let mut expected = BTreeMap::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() >= 7 && cols[3] == "FUNC" && cols[6] == ".text" {
            let size = u64::from_str_radix(cols[4], 16).unwrap_or(0);
            if size > 0 {
                expected.insert(cols[0].to_string(), size);
            }
        }
    }
    let ours: BTreeMap<String, u64> = attribution
        .items
        .iter()
        .filter(|i| i.name != UNATTRIBUTED)
        .map(|i| (i.name.clone(), i.bytes.expect("bytes")))
        .collect();
    assert_eq!(ours, expected);
    assert!(ours.contains_key("main"));
}
