//! `ballast apply` stripping binaries: the Go and Rust sample services, unstripped,
//! written with their binaries stripped as advise priced them, then unpacked by umoci
//! and run, and their ELF sections and tar headers checked.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ballast::digest::Digest;
use object::{Object, ObjectSection};
use serde_json::Value;
use testkit::samples::{self, GoBuild, RustBuild};
use testkit::{BuiltLayer, ImageSpec, LayerSpec};

use crate::common::*;

const INSTALL: &str = "usr/local/bin/hello";

fn u(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}

fn within(actual: u64, expected: u64, percent: f64) -> bool {
    (actual as f64 - expected as f64).abs() <= expected as f64 * percent / 100.0
}

fn blocks(n: u64) -> u64 {
    n.div_ceil(512) * 512
}

fn installed(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn layout_with(image: &testkit::BuiltImage) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("layout dir");
    testkit::write_oci_layout(dir.path(), &[(image, Some("t"))]).expect("write layout");
    dir
}

fn gunzip(blob: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(blob)
        .read_to_end(&mut tar)
        .expect("gunzip");
    tar
}

/// The uncompressed layers of the image `tag` names in the layout at `dir`, and its
/// config.
fn written_layers(dir: &Path, tag: &str) -> (Vec<Vec<u8>>, Value) {
    let blob = |digest: &str| {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .expect("blob")
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index"))
            .expect("json");
    let entry = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("tagged manifest");
    let manifest: Value =
        serde_json::from_slice(&blob(entry["digest"].as_str().expect("digest"))).expect("manifest");
    let config: Value = serde_json::from_slice(&blob(
        manifest["config"]["digest"].as_str().expect("config"),
    ))
    .expect("config");
    let layers = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|layer| gunzip(&blob(layer["digest"].as_str().expect("digest"))))
        .collect();
    (layers, config)
}

/// One regular entry of a tar: its header block, PAX records and data.
struct TarFile {
    header: [u8; 512],
    pax: Vec<(String, Vec<u8>)>,
    data: Vec<u8>,
}

fn tar_file(tar: &[u8], path: &str) -> TarFile {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path_bytes().as_ref() != path.as_bytes() {
            continue;
        }
        let mut header = [0u8; 512];
        header.copy_from_slice(entry.header().as_bytes());
        let pax = entry
            .pax_extensions()
            .expect("pax")
            .map(|records| {
                records
                    .map(|r| {
                        let r = r.expect("pax record");
                        (r.key().expect("key").to_string(), r.value_bytes().to_vec())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("data");
        return TarFile { header, pax, data };
    }
    panic!("{path} is not in the layer");
}

/// A header with its size and checksum fields blanked: what a strip may change.
fn header_but_size(header: &[u8; 512]) -> Vec<u8> {
    let mut masked = header.to_vec();
    masked[124..136].fill(0);
    masked[148..156].fill(0);
    masked
}

/// The header of a stripped entry: everything but size and checksum as before, the
/// checksum right for the new bytes, the size the data's.
fn assert_header_kept(before: &TarFile, after: &TarFile, label: &str) {
    assert_eq!(
        header_but_size(&before.header),
        header_but_size(&after.header),
        "{label}: the header changed beyond size and checksum"
    );
    let old = tar::Header::from_byte_slice(&before.header);
    let new = tar::Header::from_byte_slice(&after.header);
    assert_eq!(
        new.mode().expect("mode"),
        old.mode().expect("mode"),
        "{label}"
    );
    assert_eq!(new.uid().expect("uid"), old.uid().expect("uid"), "{label}");
    assert_eq!(new.gid().expect("gid"), old.gid().expect("gid"), "{label}");
    assert_eq!(
        new.mtime().expect("mtime"),
        old.mtime().expect("mtime"),
        "{label}"
    );
    assert_eq!(
        new.size().expect("size"),
        after.data.len() as u64,
        "{label}"
    );
    assert_eq!(
        new.cksum().expect("cksum"),
        {
            let mut fresh = new.clone();
            fresh.set_cksum();
            fresh.cksum().expect("cksum")
        },
        "{label}: checksum"
    );
}

fn section_names(elf: &[u8]) -> Vec<String> {
    let file = object::File::parse(elf).expect("ELF");
    file.sections()
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect()
}

/// DWARF as strip sees it: sections named `.debug*`/`.zdebug*` that are not loaded
/// (Rust's `.debug_gdb_scripts` is, and stays).
fn dwarf_sections(elf: &[u8]) -> Vec<String> {
    let file = object::File::parse(elf).expect("ELF");
    file.sections()
        .filter(|s| match s.flags() {
            object::SectionFlags::Elf { sh_flags, .. } => {
                sh_flags.0 & object::elf::SHF_ALLOC.0 == 0
            }
            _ => false,
        })
        .filter_map(|s| s.name().ok().map(str::to_string))
        .filter(|n| n.starts_with(".debug") || n.starts_with(".zdebug"))
        .collect()
}

/// What a strip must keep and drop: the runtime's own tables and every note (the
/// build ids) stay; DWARF goes, and the symbol table with `--strip-all`.
fn assert_sections(before: &[u8], after: &[u8], all: bool, go: bool, label: &str) {
    let old = section_names(before);
    let new = section_names(after);
    assert!(
        !dwarf_sections(before).is_empty(),
        "{label}: the sample carries no DWARF: {old:?}"
    );
    assert!(old.iter().any(|n| n == ".symtab"), "{label}: {old:?}");
    let mut wanted: Vec<&str> = if go {
        vec![".gopclntab", ".go.buildinfo", ".note.go.buildid"]
    } else {
        vec![".note.gnu.build-id"]
    };
    wanted.extend(
        old.iter()
            .filter(|n| n.starts_with(".note"))
            .map(|n| n.as_str()),
    );
    for name in wanted {
        assert!(
            old.iter().any(|n| n == name),
            "{label}: {name} not in the sample"
        );
        assert!(
            new.iter().any(|n| n == name),
            "{label}: {name} was stripped"
        );
    }
    assert_eq!(
        dwarf_sections(after),
        Vec::<String>::new(),
        "{label}: DWARF left"
    );
    assert_eq!(
        new.iter().any(|n| n == ".symtab" || n == ".strtab"),
        !all,
        "{label}: symbol table after strip {}: {new:?}",
        if all { "--strip-all" } else { "--strip-debug" }
    );
    let build_id = |elf: &[u8]| {
        object::File::parse(elf)
            .expect("ELF")
            .build_id()
            .expect("build id")
            .map(<[u8]>::to_vec)
    };
    assert_eq!(build_id(before), build_id(after), "{label}: GNU build id");
}

/// The file as binutils strip leaves it: the size the rewrite must reach.
fn real_strip_len(binary: &[u8], flag: &str) -> u64 {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::write(&input, binary).expect("write");
    let status = std::process::Command::new("strip")
        .arg(flag)
        .arg("-o")
        .arg(&output)
        .arg(&input)
        .status()
        .expect("run strip");
    assert!(status.success(), "strip {flag}");
    std::fs::metadata(&output).expect("stripped").len()
}

/// Unpacks `DIR:tag` with `umoci unpack --rootless` into a new `bundle`; its rootfs.
fn unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    let unpacked = std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle)
        .output()
        .expect("umoci");
    assert!(
        unpacked.status.success(),
        "{}",
        String::from_utf8_lossy(&unpacked.stderr)
    );
    bundle.join("rootfs")
}

/// A child killed when dropped, so a failed assertion leaves no server behind.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `binary` with ADDR on a free loopback port and GETs `/` from it; the body.
fn serve_and_get(binary: &Path) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = std::process::Command::new(binary)
        .env_clear()
        .env("ADDR", &addr)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match std::net::TcpStream::connect(&addr) {
            Ok(stream) => break stream,
            Err(e) => {
                if let Ok(Some(status)) = running.0.try_wait() {
                    panic!("{} exited with {status}", binary.display());
                }
                assert!(Instant::now() < deadline, "{addr}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    drop(running);
    assert!(response.starts_with("HTTP/1."), "{response}");
    assert!(response.contains(" 200 OK"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn suggestion<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["suggestions"]
        .as_array()
        .expect("suggestions")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {report:#}"))
}

fn applied<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} not applied: {report:#}"))
}

/// The figures every apply must meet: uncompressed after as projected to the byte,
/// compressed within 1%, each suggestion's saving as projected.
fn assert_figures(report: &Value) {
    assert_eq!(report["dry_run"], false);
    assert_eq!(
        u(&report["after"]["uncompressed_bytes"]),
        u(&report["projected"]["uncompressed_bytes"]),
        "{report:#}"
    );
    assert!(
        within(
            u(&report["after"]["compressed_bytes"]),
            u(&report["projected"]["compressed_bytes"]),
            1.0
        ),
        "{report:#}"
    );
    assert!(
        u(&report["after"]["compressed_bytes"]) < u(&report["before"]["compressed_bytes"]),
        "{report:#}"
    );
    for applied in report["applied"].as_array().expect("applied") {
        assert_eq!(
            applied["saved_bytes"], applied["projected_saved_bytes"],
            "{applied:#}"
        );
        if let Some(saved) = applied["saved_compressed_bytes"].as_u64() {
            assert!(
                within(saved, u(&applied["projected_saved_compressed_bytes"]), 1.0),
                "{applied:#}"
            );
        }
        for binary in applied["binaries"].as_array().into_iter().flatten() {
            assert_eq!(binary["size_after"], binary["projected_size"], "{binary:#}");
        }
    }
}

/// The Go and the Rust service, unstripped (Go's default build keeps DWARF and
/// symbols, Rust's with debuginfo=2).
fn services() -> Vec<(PathBuf, &'static str, bool, &'static str)> {
    let samples = samples();
    vec![
        (
            samples.go(GoBuild::Default).expect("go"),
            "go-ldflags-s-w",
            true,
            "hello from Go, you asked for /\n",
        ),
        (
            samples.rust(RustBuild::DebugInfo).expect("rust"),
            "rust-strip",
            false,
            "hello from Rust, you asked for /\n",
        ),
    ]
}

#[test]
fn apply_strips_the_go_and_rust_services_as_advise_priced_them() {
    let can_run = installed("umoci");
    if !can_run {
        eprintln!("umoci is not installed: the stripped services are checked but not run (scripts/lib/deps.sh installs it)");
    }
    let home = tempfile::tempdir().expect("home");
    let scratch = tempfile::tempdir().expect("scratch");
    for (binary, id, go, hello) in services() {
        let original = std::fs::read(&binary).expect("read sample");
        let spec = samples::service_image(&binary, INSTALL, true).expect("spec");
        let image = spec.build().expect("build");
        let source = layout_with(&image);
        let reference = format!("oci:{}:t", source.path().display());
        let advice = json_of(home.path(), &["advise", &reference]);
        let inspected = inspect_json(home.path(), &[&reference]);
        let prediction = inspected["binaries"]
            .as_array()
            .expect("binaries")
            .iter()
            .find(|b| b["path"] == format!("/{INSTALL}"))
            .map(|b| b["strip"].clone())
            .expect("the service binary");

        let out = scratch.path().join(format!("out-{id}"));
        let target = format!("oci:{}:slim", out.display());
        let report = json_of(home.path(), &["apply", &reference, "--to", &target]);
        assert_figures(&report);
        let strip = applied(&report, id);
        assert_eq!(strip["strip_mode"], "all", "{strip:#}");
        assert!(report["notes"][0]
            .as_str()
            .is_some_and(|n| n.contains("--strip-all")));
        // Removals apply beside it: the build log a later layer deletes.
        applied(&report, "drop-deleted-files");
        // What advise says, to the byte; from the strip-all prediction.
        let priced = suggestion(&advice, id);
        assert_eq!(
            strip["projected_saved_bytes"], priced["saved_bytes"],
            "{id}"
        );
        assert_eq!(
            strip["projected_saved_compressed_bytes"], priced["saved_compressed_bytes"],
            "{id}"
        );
        let after_all = u(&prediction["size_after_strip_all"]);
        assert_eq!(
            u(&strip["projected_saved_bytes"]),
            blocks(original.len() as u64) - blocks(after_all),
            "{id}"
        );
        assert_eq!(after_all, real_strip_len(&original, "--strip-all"), "{id}");
        let binaries = strip["binaries"].as_array().expect("binaries");
        assert_eq!(binaries.len(), 1, "{strip:#}");
        assert_eq!(binaries[0]["path"], format!("/{INSTALL}"));
        assert_eq!(u(&binaries[0]["size"]), original.len() as u64);
        assert_eq!(u(&binaries[0]["size_after"]), after_all);
        let layer = u(&binaries[0]["layer"]) as usize;
        assert_eq!(layer, 2, "the COPY layer");

        // The entry: stripped bytes, the header as it was but for size and checksum.
        let (layers, config) = written_layers(&out, "slim");
        let before = tar_file(&gunzip(&image.layers[layer].blob), INSTALL);
        let after = tar_file(&layers[layer], INSTALL);
        assert_eq!(before.data, original);
        assert_eq!(after.data.len() as u64, after_all);
        assert_header_kept(&before, &after, id);
        assert_sections(&before.data, &after.data, true, go, id);
        let comment = config["history"]
            .as_array()
            .and_then(|h| h.last())
            .and_then(|h| h["comment"].as_str())
            .expect("history comment")
            .to_string();
        assert!(
            comment.contains("stripped 1 binary (strip --strip-all) as") && comment.contains(id),
            "{comment}"
        );
        assert!(
            comment.contains("left out what") && comment.contains("drop-deleted-files"),
            "{comment}"
        );
        let reread = inspect_json(home.path(), &[&target]);
        let reread_binary = reread["binaries"]
            .as_array()
            .expect("binaries")
            .iter()
            .find(|b| b["path"] == format!("/{INSTALL}"))
            .expect("binary read back");
        assert_eq!(u(&reread_binary["size"]), after_all);
        assert_eq!(u(&reread_binary["strip"]["saved_by_strip_all"]), 0);

        if can_run {
            let rootfs = unpack(&out, "slim", &scratch.path().join(format!("bundle-{id}")));
            let unpacked = rootfs.join(INSTALL);
            assert_eq!(std::fs::read(&unpacked).expect("unpacked"), after.data);
            assert_eq!(serve_and_get(&unpacked), hello, "{id}");
        }
    }
}

#[test]
fn apply_strip_debug_keeps_the_symbol_table_and_projects_from_its_own_figure() {
    let can_run = installed("umoci");
    let home = tempfile::tempdir().expect("home");
    let scratch = tempfile::tempdir().expect("scratch");
    for (binary, id, go, hello) in services() {
        let original = std::fs::read(&binary).expect("read sample");
        let spec = samples::service_image(&binary, INSTALL, false).expect("spec");
        let image = spec.build().expect("build");
        let source = layout_with(&image);
        let reference = format!("oci:{}:t", source.path().display());
        let inspected = inspect_json(home.path(), &[&reference]);
        let prediction = inspected["binaries"]
            .as_array()
            .expect("binaries")
            .iter()
            .find(|b| b["path"] == format!("/{INSTALL}"))
            .map(|b| b["strip"].clone())
            .expect("the service binary");
        let after_debug = u(&prediction["size_after_strip_debug"]);
        assert!(after_debug > u(&prediction["size_after_strip_all"]), "{id}");
        assert_eq!(
            after_debug,
            real_strip_len(&original, "--strip-debug"),
            "{id}"
        );

        let error = expect_bad_input(
            home.path(),
            &[
                "apply",
                &reference,
                "--to",
                &format!("oci:{}:x", scratch.path().join("never").display()),
                "--strip-all",
                "--strip-debug",
            ],
        );
        assert!(error.contains("--strip-debug"), "{error}");

        let out = scratch.path().join(format!("debug-{id}"));
        let target = format!("oci:{}:debug", out.display());
        let report = json_of(
            home.path(),
            &[
                "apply",
                &reference,
                "--to",
                &target,
                "--strip-debug",
                "--only",
                id,
            ],
        );
        assert_figures(&report);
        let ids: Vec<&str> = report["applied"]
            .as_array()
            .expect("applied")
            .iter()
            .map(|a| a["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, [id]);
        let strip = applied(&report, id);
        assert_eq!(strip["strip_mode"], "debug");
        assert_eq!(
            u(&strip["projected_saved_bytes"]),
            blocks(original.len() as u64) - blocks(after_debug),
            "{id}: projected from size_after_strip_debug"
        );
        assert_eq!(u(&strip["binaries"][0]["size_after"]), after_debug);
        // The layer is the strip's alone: its compressed saving is measured too.
        assert!(strip["saved_compressed_bytes"].is_u64(), "{strip:#}");
        let note = report["notes"][0].as_str().expect("note");
        assert!(
            note.contains("size_after_strip_debug") && note.contains("--strip-debug"),
            "{note}"
        );
        let table = succeed(ballast(home.path()).args([
            "apply",
            &reference,
            "--to",
            &format!("oci:{}:debug-table", out.display()),
            "--strip-debug",
            "--only",
            id,
            "--format",
            "table",
        ]));
        let table = String::from_utf8_lossy(&table);
        assert!(table.contains("size_after_strip_debug"), "{table}");
        assert!(table.contains("1 stripped"), "{table}");

        let (layers, _) = written_layers(&out, "debug");
        let before = tar_file(&gunzip(&image.layers[1].blob), INSTALL);
        let after = tar_file(&layers[1], INSTALL);
        assert_eq!(after.data.len() as u64, after_debug);
        assert_header_kept(&before, &after, id);
        assert_sections(&before.data, &after.data, false, go, id);
        // The base layer is the source's, byte for byte.
        assert_eq!(
            report["layers"][0]["after"]["digest"],
            image.layers[0].digest.to_string()
        );

        if can_run {
            let rootfs = unpack(
                &out,
                "debug",
                &scratch.path().join(format!("bundle-debug-{id}")),
            );
            assert_eq!(serve_and_get(&rootfs.join(INSTALL)), hello, "{id}");
        }
    }
}

/// A PAX extended header (`x`) for the entry after it, its records as given.
fn pax_entry(name: &str, records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3;
        let mut length = body + 1;
        while length != body + length.to_string().len() {
            length = body + length.to_string().len();
        }
        data.extend_from_slice(format!("{length} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_path(name).expect("pax name");
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(&data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// The app layer as a build tool with PAX headers writes it: the Rust binary owned by
/// uid 1000 with an xattr, a PAX `size` and `mtime`, a hard link to it, and the Go
/// binary beside it.
fn pax_layer(rust: &[u8], go: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    let regular = |path: &str, data: &[u8], uid: u64| {
        let mut header = tar::Header::new_ustar();
        header.set_path(path).expect("path");
        header.set_size(data.len() as u64);
        header.set_mode(0o750);
        header.set_uid(uid);
        header.set_gid(uid + 1);
        header.set_mtime(1_234_567_890);
        header.set_username("svc").expect("uname");
        header.set_groupname("svcgroup").expect("gname");
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut out = header.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    };
    let size = rust.len().to_string();
    tar.extend(pax_entry(
        "PaxHeaders/hello-rs",
        &[
            ("mtime", b"1234567890.25"),
            ("SCHILY.xattr.user.origin", b"ballast-test"),
            ("size", size.as_bytes()),
        ],
    ));
    tar.extend(regular("usr/local/bin/hello-rs", rust, 1000));
    let mut link = tar::Header::new_ustar();
    link.set_path("usr/local/bin/hello-rs-again").expect("path");
    link.set_link_name("usr/local/bin/hello-rs").expect("link");
    link.set_entry_type(tar::EntryType::Link);
    link.set_size(0);
    link.set_mode(0o750);
    link.set_mtime(1_234_567_890);
    link.set_cksum();
    tar.extend_from_slice(link.as_bytes());
    tar.extend(regular("usr/local/bin/hello-go", go, 0));
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

#[test]
fn apply_only_rust_strip_rewrites_the_pax_size_and_keeps_the_rest_of_the_entry() {
    let home = tempfile::tempdir().expect("home");
    let scratch = tempfile::tempdir().expect("scratch");
    let samples = samples();
    let rust = std::fs::read(samples.rust(RustBuild::DebugInfo).expect("rust")).expect("rust");
    let go = std::fs::read(samples.go(GoBuild::Default).expect("go")).expect("go");
    let app_tar = pax_layer(&rust, &go);
    let base = testkit::build_layer(&samples::base_layer(), false).expect("base");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&app_tar).expect("gzip");
    let blob = encoder.finish().expect("gzip");
    let app = BuiltLayer {
        digest: Digest::of_bytes(&blob),
        diff_id: Digest::of_bytes(&app_tar),
        blob,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    };
    let spec = ImageSpec::new(vec![
        samples::base_layer(),
        LayerSpec::new(
            "COPY --chown=1000 hello-rs hello-go /usr/local/bin/",
            vec![],
        ),
    ]);
    let image = spec.assemble(vec![base, app]).expect("assemble");
    let source = layout_with(&image);
    let reference = format!("oci:{}:t", source.path().display());

    let dry = json_of(
        home.path(),
        &[
            "apply",
            &reference,
            "--to",
            &format!("oci:{}:dry", scratch.path().join("dry").display()),
            "--only",
            "rust-strip",
            "--dry-run",
        ],
    );
    assert_eq!(dry["dry_run"], true);
    assert!(dry["applied"][0]["binaries"][0]["size_after"].is_null());
    assert_eq!(dry["layers"][1]["entries_to_strip"], 1);
    assert!(!scratch.path().join("dry").exists());

    let out = scratch.path().join("out");
    let target = format!("oci:{}:rs", out.display());
    let report = json_of(
        home.path(),
        &["apply", &reference, "--to", &target, "--only", "rust-strip"],
    );
    assert_figures(&report);
    assert_eq!(report["applied"].as_array().map(Vec::len), Some(1));
    let strip = applied(&report, "rust-strip");
    assert_eq!(strip["binaries"][0]["path"], "/usr/local/bin/hello-rs");
    let (layers, _) = written_layers(&out, "rs");
    let before = tar_file(&app_tar, "usr/local/bin/hello-rs");
    let after = tar_file(&layers[1], "usr/local/bin/hello-rs");
    assert_eq!(
        u(&strip["binaries"][0]["size_after"]),
        after.data.len() as u64
    );
    assert!(after.data.len() < rust.len());
    assert_header_kept(&before, &after, "hello-rs");
    let header = tar::Header::from_byte_slice(&after.header);
    assert_eq!(header.uid().expect("uid"), 1000);
    assert_eq!(header.gid().expect("gid"), 1001);
    assert_eq!(header.mode().expect("mode"), 0o750);
    assert_eq!(header.mtime().expect("mtime"), 1_234_567_890);
    assert_eq!(header.username().expect("uname"), Some("svc"));
    assert_eq!(header.groupname().expect("gname"), Some("svcgroup"));
    // The PAX records in their order, the size one rewritten.
    let after_size = after.data.len().to_string();
    let expected: Vec<(String, Vec<u8>)> = vec![
        ("mtime".into(), b"1234567890.25".to_vec()),
        ("SCHILY.xattr.user.origin".into(), b"ballast-test".to_vec()),
        ("size".into(), after_size.into_bytes()),
    ];
    assert_eq!(after.pax, expected);
    assert_eq!(before.pax[2].1, rust.len().to_string().into_bytes());
    assert_sections(&before.data, &after.data, true, false, "hello-rs");
    // The Go binary, not chosen, is byte for byte the one given.
    assert_eq!(tar_file(&layers[1], "usr/local/bin/hello-go").data, go);

    if installed("umoci") {
        let rootfs = unpack(&out, "rs", &scratch.path().join("bundle"));
        let again = rootfs.join("usr/local/bin/hello-rs-again");
        assert_eq!(
            std::fs::read(&again).expect("hard link"),
            after.data,
            "the hard link names the stripped file"
        );
        assert_eq!(serve_and_get(&again), "hello from Rust, you asked for /\n");
    }
}

#[test]
fn a_binary_past_max_binary_size_is_not_stripped() {
    let home = tempfile::tempdir().expect("home");
    let binary = samples().rust(RustBuild::DebugInfo).expect("rust");
    let spec = samples::service_image(&binary, INSTALL, false).expect("spec");
    let image = spec.build().expect("build");
    let source = layout_with(&image);
    let reference = format!("oci:{}:t", source.path().display());
    let out = tempfile::tempdir().expect("out");
    // Below the binary's size it is not analysed, so there is nothing to strip.
    let size = std::fs::metadata(&binary).expect("size").len();
    let limit = (size - 1).to_string();
    let error = expect_bad_input(
        home.path(),
        &[
            "apply",
            &reference,
            "--to",
            &format!("oci:{}:x", out.path().display()),
            "--only",
            "rust-strip",
            "--max-binary-size",
            &limit,
        ],
    );
    assert!(
        error.contains("--only rust-strip: advise makes no such suggestion"),
        "{error}"
    );
}

#[test]
fn a_binary_a_removal_leaves_out_is_not_also_counted_as_stripped() {
    let home = tempfile::tempdir().expect("home");
    let rust = std::fs::read(samples().rust(RustBuild::DebugInfo).expect("rust")).expect("rust");
    // The same unstripped binary as the service and as a leftover in /tmp, which
    // drop-package-caches removes and rust-strip would strip.
    let spec = ImageSpec::new(vec![
        samples::base_layer(),
        LayerSpec::new(
            "COPY hello /usr/local/bin/ && cp hello /tmp/",
            vec![
                testkit::Item::executable(INSTALL, rust.clone()),
                testkit::Item::executable("tmp/hello-copy", rust.clone()),
            ],
        ),
    ]);
    let image = spec.build().expect("build");
    let source = layout_with(&image);
    let reference = format!("oci:{}:t", source.path().display());
    let advice = json_of(home.path(), &["advise", &reference]);
    let priced = suggestion(&advice, "rust-strip");
    assert!(
        priced["paths"].to_string().contains("/tmp/hello-copy"),
        "{priced:#}"
    );
    let out = tempfile::tempdir().expect("out");
    let target = format!("oci:{}:x", out.path().display());
    let report = json_of(home.path(), &["apply", &reference, "--to", &target]);
    assert_figures(&report);
    let strip = applied(&report, "rust-strip");
    let binaries = strip["binaries"].as_array().expect("binaries");
    assert_eq!(binaries.len(), 1, "{strip:#}");
    assert_eq!(binaries[0]["path"], format!("/{INSTALL}"));
    assert_eq!(strip["confidence"], "estimate", "{strip:#}");
    assert!(
        report["notes"]
            .to_string()
            .contains("rust-strip: 1 of its 2 binaries are left out by a removal"),
        "{:#}",
        report["notes"]
    );
    // Half of what advise priced on its own: one binary of the two.
    assert_eq!(
        2 * u(&strip["projected_saved_bytes"]),
        u(&priced["saved_bytes"]),
        "{strip:#}"
    );
    let caches = applied(&report, "drop-package-caches");
    assert!(caches["paths"].to_string().contains("/tmp/hello-copy"));
    let (layers, _) = written_layers(out.path(), "x");
    let archive_paths: Vec<String> = tar::Archive::new(layers[1].as_slice())
        .entries()
        .expect("entries")
        .map(|e| String::from_utf8_lossy(&e.expect("entry").path_bytes()).into_owned())
        .collect();
    assert_eq!(archive_paths, [INSTALL]);
}
