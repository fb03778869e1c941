//! Registries and images built to hurt: every body is bounded while it is read, no
//! byte past a descriptor's size is read, small requests have a deadline, and every
//! case ends in exit 2 with one line, in bounded memory (peak RSS measured from the
//! child's own rusage).

use std::path::Path;

use testkit::{ImageSpec, Item, LayerSpec};

use crate::common::hostile::{Hostile, Mode};
use crate::common::*;

const MB: u64 = 1024 * 1024;

fn small_image() -> testkit::BuiltImage {
    ImageSpec::new(vec![LayerSpec::new(
        "COPY app /app",
        vec![Item::file("app/data", b"hello hostile world".to_vec())],
    )])
    .build()
    .expect("build")
}

/// Runs `inspect REFERENCE ARGS`, expecting one error line and exit 2 in bounded
/// memory; returns the line.
fn refused(home: &Path, reference: &str, extra: &[&str]) -> String {
    let mut args = vec!["inspect", reference];
    if !extra.contains(&"--retries") {
        args.extend(["--retries", "2"]);
    }
    args.extend_from_slice(extra);
    let started = std::time::Instant::now();
    let (output, peak) = ballast_peak_rss(home, &args);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(output.stdout.is_empty(), "no partial report");
    assert!(peak < 64 * MB, "{args:?}: peak RSS {} MiB", peak / MB);
    eprintln!(
        "{args:?}: exit 2 in {:.2} s, peak RSS {} MiB: {}",
        elapsed.as_secs_f64(),
        peak / MB,
        stderr.trim_end()
    );
    stderr
}

#[test]
fn the_control_case_is_read() {
    let home = tempfile::tempdir().expect("home");
    let server = Hostile::start(Mode::Honest, &small_image());
    let report = inspect_json(home.path(), &[&server.reference("app:1")]);
    assert_eq!(report["largest_files"][0]["path"], "/app/data");
}

#[test]
fn a_token_endpoint_that_never_ends() {
    let home = tempfile::tempdir().expect("home");
    let server = Hostile::start(Mode::EndlessToken, &small_image());
    // oci-client swallows the token error and asks without one, so the registry's
    // refusal is what is reported; what matters is that it ends, in bounded memory.
    let line = refused(home.path(), &server.reference("app:1"), &[]);
    assert!(line.contains("authentication refused"), "{line}");
}

#[test]
fn a_manifest_that_never_ends() {
    let home = tempfile::tempdir().expect("home");
    let server = Hostile::start(Mode::EndlessManifest, &small_image());
    let line = refused(home.path(), &server.reference("app:1"), &[]);
    assert!(line.contains("exceeds"), "{line}");
    let server = Hostile::start(Mode::EndlessErrorBody, &small_image());
    refused(home.path(), &server.reference("app:1"), &[]);
}

#[test]
fn a_manifest_that_trickles_meets_the_deadline() {
    let home = tempfile::tempdir().expect("home");
    let server = Hostile::start(Mode::TrickleManifest, &small_image());
    // One byte a second never trips the 3 s idle timeout; the 4 s deadline does.
    let line = refused(
        home.path(),
        &server.reference("app:1"),
        &[
            "--read-timeout",
            "3",
            "--connect-timeout",
            "1",
            "--retries",
            "1",
        ],
    );
    assert!(line.contains("within 4 s"), "{line}");
}

#[test]
fn a_blob_that_goes_on_past_its_size() {
    let home = tempfile::tempdir().expect("home");
    let image = small_image();
    let server = Hostile::start(Mode::BlobGoesOn, &image);
    // Its first `size` bytes are the real blob: read exactly those, verified, and
    // never the rest.
    let report = inspect_json(home.path(), &[&server.reference("app:1")]);
    assert_eq!(report["largest_files"][0]["path"], "/app/data");
    // With a cache, the entry is the blob itself and nothing else is left behind.
    let cache = tempfile::tempdir().expect("cache");
    let (output, peak) = ballast_peak_rss(
        home.path(),
        &[
            "inspect",
            &server.reference("app:1"),
            "--format",
            "json",
            "--cache-dir",
            &cache.path().display().to_string(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(peak < 64 * MB, "peak RSS {} MiB", peak / MB);
    let mut total = 0;
    for entry in walk(cache.path()) {
        total += std::fs::metadata(&entry).map_or(0, |m| m.len());
    }
    assert!(total < MB, "cache holds {total} bytes");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn layout_blobs_that_are_devices_or_fifos_are_refused_at_once() {
    let home = tempfile::tempdir().expect("home");
    let image = small_image();
    let layer = image.layers[0].digest.hex().to_string();
    for (what, target) in [
        ("layer", layer.as_str()),
        ("config", image.config_digest.hex()),
        ("manifest", image.manifest_digest.hex()),
    ] {
        for kind in ["dev-zero", "fifo"] {
            let dir = tempfile::tempdir().expect("dir");
            testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
            let blob = dir.path().join("blobs/sha256").join(target);
            std::fs::remove_file(&blob).expect("remove");
            make_special(&blob, kind);
            let line = refused(home.path(), &format!("oci:{}:t", dir.path().display()), &[]);
            assert!(
                line.contains("not a regular file"),
                "{what} as {kind}: {line}"
            );
        }
    }
    // index.json itself.
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    std::fs::remove_file(dir.path().join("index.json")).expect("remove");
    make_special(&dir.path().join("index.json"), "fifo");
    refused(home.path(), &format!("oci:{}:t", dir.path().display()), &[]);
}

fn make_special(path: &Path, kind: &str) {
    match kind {
        "dev-zero" => std::os::unix::fs::symlink("/dev/zero", path).expect("symlink"),
        _ => {
            let status = std::process::Command::new("mkfifo")
                .arg(path)
                .status()
                .expect("mkfifo");
            assert!(status.success());
        }
    }
}

#[test]
fn a_baseline_that_is_a_fifo_or_too_large_is_refused() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let image = small_image();
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let fifo = dir.path().join("baseline.json");
    make_special(&fifo, "fifo");
    let line = expect_bad_input(
        home.path(),
        &[
            "gate",
            &format!("oci:{}:t", dir.path().display()),
            "--baseline",
            &fifo.display().to_string(),
            "--max-growth",
            "1%",
        ],
    );
    assert!(line.contains("not a regular file"), "{line}");
    // A regular file past the 64 MiB a saved report can be (sparse: no disk used).
    let huge = dir.path().join("huge.json");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(65 * MB))
        .expect("sparse file");
    let line = expect_bad_input(
        home.path(),
        &[
            "gate",
            &format!("oci:{}:t", dir.path().display()),
            "--baseline",
            &huge.display().to_string(),
            "--max-growth",
            "1%",
        ],
    );
    assert!(line.contains("limit"), "{line}");
}

#[test]
fn one_manifest_listed_twice_under_one_name_is_one_image() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let image = small_image();
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let entry = serde_json::json!({
        "mediaType": image.manifest_media_type,
        "digest": image.manifest_digest.to_string(),
        "size": image.manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "t"},
    });
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [entry.clone(), entry]}).to_string(),
    )
    .expect("index");
    let report = inspect_json(home.path(), &[&format!("oci:{}:t", dir.path().display())]);
    assert_eq!(report["largest_files"][0]["path"], "/app/data");
}

/// A layer tar of raw entries: names are bytes, as a hostile (or merely odd) layer
/// writes them.
fn raw_tar(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        builder
            .append_data(
                &mut header,
                Path::new(std::ffi::OsStr::from_bytes(name)),
                *data,
            )
            .expect("append");
    }
    builder.into_inner().expect("tar")
}

/// An OCI layout holding one image of uncompressed layers with these tars.
fn layout_of(dir: &Path, tars: Vec<Vec<u8>>, created_by: &[&str]) -> String {
    use ballast::digest::Digest;
    use testkit::BuiltLayer;
    let layers: Vec<BuiltLayer> = tars
        .into_iter()
        .map(|tar| BuiltLayer {
            digest: Digest::of_bytes(&tar),
            diff_id: Digest::of_bytes(&tar),
            blob: tar,
            media_type: "application/vnd.oci.image.layer.v1.tar".to_string(),
        })
        .collect();
    let specs = created_by
        .iter()
        .map(|c| LayerSpec::new(c, vec![]))
        .collect();
    let image = ImageSpec::new(specs).assemble(layers).expect("assemble");
    testkit::write_oci_layout(dir, &[(&image, Some("t"))]).expect("layout");
    format!("oci:{}:t", dir.display())
}

#[test]
fn names_that_are_not_utf8_stay_distinct() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let image = layout_of(
        dir.path(),
        vec![
            raw_tar(&[(b"\xffa", &[1u8; 1000])]),
            raw_tar(&[(b"\xfea", &[2u8; 10]), (b".wh.\xfeb", b"")]),
        ],
        &["ADD one", "ADD two"],
    );
    let report = inspect_json(home.path(), &[&image]);
    assert_eq!(report["totals"]["files"], 2, "{:#}", report["totals"]);
    assert_eq!(report["waste"]["overwritten_bytes"], 0);
    assert_eq!(report["waste"]["deleted_bytes"], 0);
    let mut paths: Vec<&str> = report["largest_files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    paths.sort();
    // Shown escaped, as `\xNN`.
    assert_eq!(paths, ["/\\xfea", "/\\xffa"]);
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let evil = "evil\x1b]0;pwned\x07\x1b[2J\rname";
    let image = layout_of(
        dir.path(),
        vec![raw_tar(&[(evil.as_bytes(), b"payload")])],
        &["RUN echo \x1b[31mred\x1b[0m\r\x07"],
    );
    for format in ["table", "markdown"] {
        for command in ["inspect", "advise"] {
            let out = succeed(ballast(home.path()).args([command, &image, "--format", format]));
            let text = String::from_utf8_lossy(&out);
            assert!(
                !text.contains(['\x1b', '\x07', '\r']),
                "{command} --format {format} let a control character through:\n{text:?}"
            );
            if command == "inspect" {
                assert!(text.contains("\\x1b"), "{command} {format}: {text}");
            }
        }
    }
    // JSON escapes them as JSON does, and stays valid.
    let report = inspect_json(home.path(), &[&image]);
    assert_eq!(report["largest_files"][0]["path"], format!("/{evil}"));

    // A baseline report's reference, shown in the gate's table.
    let baseline = dir.path().join("baseline.json");
    std::fs::write(
        &baseline,
        serde_json::json!({"schema_version": 1,
            "image": {"reference": "evil\x1b[31m\x07"},
            "totals": {"compressed_bytes": 1, "uncompressed_bytes": 1}})
        .to_string(),
    )
    .expect("write");
    let output = ballast(home.path())
        .args(["gate", &image, "--format", "table", "--baseline"])
        .arg(&baseline)
        .args(["--max-growth", "1%"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains(['\x1b', '\x07']), "{text:?}");

    // A pricing id with an escape sequence in it.
    let pricing = dir.path().join("pricing.toml");
    let built_in = std::fs::read_to_string(Path::new(MANIFEST_DIR).join("src/cost/pricing.toml"))
        .expect("built-in table");
    let first_id = built_in
        .lines()
        .find_map(|l| l.strip_prefix("id = "))
        .expect("an id")
        .trim_matches('"')
        .to_string();
    std::fs::write(
        &pricing,
        built_in.replacen(
            &format!("id = \"{first_id}\""),
            "id = \"evil\\u001b[31m\"",
            1,
        ),
    )
    .expect("write");
    let out = succeed(
        ballast(home.path())
            .args(["cost", "--list-pricing", "--format", "table", "--pricing"])
            .arg(&pricing),
    );
    assert!(!String::from_utf8_lossy(&out).contains('\x1b'));
}

#[test]
fn platforms_in_errors_are_escaped_and_capped() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let image = small_image();
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    // An index of 3000 entries for odd platforms, one with an escape sequence.
    let mut manifests = Vec::new();
    for i in 0..3000 {
        manifests.push(serde_json::json!({
            "mediaType": image.manifest_media_type,
            "digest": image.manifest_digest.to_string(),
            "size": image.manifest.len(),
            "platform": {"os": if i == 0 { "li\u{1b}[2Jnux".to_string() } else { format!("os{i}") },
                         "architecture": "amd64"},
        }));
    }
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": manifests}).to_string(),
    )
    .expect("index");
    let line = expect_bad_input(
        home.path(),
        &[
            "inspect",
            &format!("oci:{}", dir.path().display()),
            "--platform",
            "linux/arm64",
        ],
    );
    assert!(!line.contains('\x1b'), "{line:?}");
    assert!(line.len() < 2000, "{} bytes: {line}", line.len());
    assert!(line.contains("more"), "{line}");
}

#[test]
fn an_explicit_platform_is_never_silently_ignored() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&small_image(), Some("t"))]).expect("layout");
    let image = format!("oci:{}:t", dir.path().display());
    let line = expect_bad_input(
        home.path(),
        &["inspect", &image, "--platform", "linux/arm64"],
    );
    assert!(line.contains("linux/amd64"), "{line}");
    inspect_json(home.path(), &[&image, "--platform", "linux/amd64"]);
}

#[test]
fn output_that_cannot_be_written_is_bad_input() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&small_image(), Some("t"))]).expect("layout");
    let image = format!("oci:{}:t", dir.path().display());
    let line = expect_bad_input(
        home.path(),
        &["report", &image, "-o", &dir.path().display().to_string()],
    );
    assert!(line.contains(&dir.path().display().to_string()), "{line}");
    let missing = dir.path().join("missing/report.md");
    let line = expect_bad_input(
        home.path(),
        &["report", &image, "-o", &missing.display().to_string()],
    );
    assert!(line.contains("missing/report.md"), "{line}");
    // A full disk, on standard output: named, exit 2.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("ballast"))
        .args(["inspect", &image, "--format", "json"])
        .env("HOME", home.path())
        .stdout(full)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("standard output"), "{stderr}");
}

#[test]
fn the_gate_verdict_decides_the_exit_code_whatever_the_summary_file() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&small_image(), Some("t"))]).expect("layout");
    let image = format!("oci:{}:t", dir.path().display());
    for summary in ["", "/nonexistent/dir/summary.md"] {
        let output = ballast(home.path())
            .env("GITHUB_STEP_SUMMARY", summary)
            .args(["gate", &image, "--max-size", "1", "--format", "json"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "summary {summary:?}: {stderr}"
        );
        assert!(stderr.contains("warning"), "{stderr}");
        let verdict: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(verdict["pass"], false);
    }
}

#[test]
fn odd_numbers_in_files_and_flags_are_refused() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&small_image(), Some("t"))]).expect("layout");
    let image = format!("oci:{}:t", dir.path().display());
    // 2^64 bytes, in digits or in units.
    for size in ["18446744073709551616", "16EiB"] {
        let line = expect_bad_input(home.path(), &["gate", &image, "--max-size", size]);
        assert!(line.contains("invalid size"), "{size}: {line}");
    }
    // A usage file without [usage].
    let usage = dir.path().join("usage.toml");
    std::fs::write(&usage, "[gate]\nmax_size = \"1MB\"\n").expect("write");
    let line = expect_bad_input(
        home.path(),
        &["cost", &image, "--usage", &usage.display().to_string()],
    );
    assert!(line.contains("[usage]"), "{line}");
    // Usage so large the money overflows.
    std::fs::write(&usage, "[usage]\npulls_per_month = 1e308\n").expect("write");
    expect_bad_input(
        home.path(),
        &["cost", &image, "--usage", &usage.display().to_string()],
    );
    // Pricing: a day that does not exist, and a price that overflows.
    let built_in = std::fs::read_to_string(Path::new(MANIFEST_DIR).join("src/cost/pricing.toml"))
        .expect("built-in table");
    let pricing = dir.path().join("pricing.toml");
    for (from, to) in [
        ("effective = \"2026-03-01\"", "effective = \"2026-02-30\""),
        (
            "tiers = [{ from = 0, usd = 0.10 }]",
            "tiers = [{ from = 0, usd = 1e308 }]",
        ),
    ] {
        assert!(built_in.contains(from), "{from}");
        std::fs::write(&pricing, built_in.replacen(from, to, 1)).expect("write");
        let line = expect_bad_input(
            home.path(),
            &[
                "cost",
                "--list-pricing",
                "--pricing",
                &pricing.display().to_string(),
            ],
        );
        assert!(line.contains("pricing.toml"), "{to}: {line}");
    }
    // A baseline with a negative size.
    let baseline = dir.path().join("baseline.json");
    std::fs::write(
        &baseline,
        r#"{"schema_version":1,"image":{"reference":"x"},"totals":{"compressed_bytes":-5,"uncompressed_bytes":1}}"#,
    )
    .expect("write");
    let line = expect_bad_input(
        home.path(),
        &[
            "gate",
            &image,
            "--baseline",
            &baseline.display().to_string(),
            "--max-growth",
            "1%",
        ],
    );
    assert!(line.contains("-5") && !line.contains("missing"), "{line}");
}

#[test]
fn a_classic_docker_save_with_a_gzip_layer_tar_is_read() {
    // `docker load` accepts a gzip-compressed `<id>/layer.tar`; its digest is not its
    // diff_id then.
    let home = tempfile::tempdir().expect("home");
    let image = small_image();
    let tar = raw_tar(&[(b"app/data", b"hello hostile world")]);
    let gzip = testkit::compress(&tar, ballast::layer::Compression::Gzip, Some(6)).expect("gzip");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("save.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&file).expect("create"));
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, name, data)
            .expect("append");
    };
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [ballast::digest::Digest::of_bytes(&tar).to_string()]},
    })
    .to_string();
    let config_name = format!(
        "{}.json",
        ballast::digest::Digest::of_bytes(config.as_bytes()).hex()
    );
    add(&config_name, config.as_bytes());
    add("0123abcd/layer.tar", &gzip);
    add(
        "manifest.json",
        serde_json::json!([{"Config": config_name, "RepoTags": ["app:1"], "Layers": ["0123abcd/layer.tar"]}])
            .to_string()
            .as_bytes(),
    );
    builder.finish().expect("finish");
    drop(builder);
    let report = inspect_json(
        home.path(),
        &[&format!("docker-archive:{}", file.display())],
    );
    assert_eq!(report["largest_files"][0]["path"], "/app/data");
    assert_eq!(report["layers"][0]["compressed_bytes"], gzip.len());
    let _ = image;
}

#[test]
fn sizes_no_archive_can_hold_are_refused_by_name() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("save.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&file).expect("create"));
    builder
        .append_pax_extensions([("size", &b"4611686018427387904"[..])])
        .expect("pax");
    let mut header = tar::Header::new_ustar();
    header.set_size(3);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "manifest.json", &b"[] "[..])
        .expect("append");
    builder.finish().expect("finish");
    drop(builder);
    let line = expect_bad_input(
        home.path(),
        &["inspect", &format!("docker-archive:{}", file.display())],
    );
    assert!(line.contains("past the end"), "{line}");

    // In a layer, a size past --max-layer-size is refused at its header.
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_pax_extensions([("size", &b"4611686018427387904"[..])])
        .expect("pax");
    let mut header = tar::Header::new_ustar();
    header.set_size(3);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "huge", &b"abc"[..])
        .expect("append");
    let layer = builder.into_inner().expect("tar");
    let layout = tempfile::tempdir().expect("layout");
    let image = layout_of(layout.path(), vec![layer], &["ADD huge"]);
    let line = expect_bad_input(home.path(), &["inspect", &image]);
    assert!(
        line.contains("--max-layer-size") && line.contains("huge"),
        "{line}"
    );
}

#[test]
fn a_broken_tar_in_good_gzip_is_called_a_tar_problem() {
    let home = tempfile::tempdir().expect("home");
    let mut tar = raw_tar(&[(b"app/data", b"payload")]);
    tar[148] ^= 0x01; // the header checksum
    let gzip = testkit::compress(&tar, ballast::layer::Compression::Gzip, Some(6)).expect("gzip");
    let dir = tempfile::tempdir().expect("dir");
    let layer = testkit::BuiltLayer {
        digest: ballast::digest::Digest::of_bytes(&gzip),
        diff_id: ballast::digest::Digest::of_bytes(&tar),
        blob: gzip,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
    };
    let image = ImageSpec::new(vec![])
        .assemble(vec![layer])
        .expect("assemble");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let line = expect_bad_input(
        home.path(),
        &["inspect", &format!("oci:{}:t", dir.path().display())],
    );
    assert!(
        line.contains("not a valid tar stream") && line.contains("gzip data decoded fine"),
        "{line}"
    );
    assert!(
        line.contains(&image.layers[0].digest.to_string()),
        "names the layer: {line}"
    );
}

#[test]
fn a_file_a_million_directories_deep_is_not_quadratic() {
    let home = tempfile::tempdir().expect("home");
    let deep = "d/".repeat(1_000_000) + "f";
    let layer = raw_tar(&[(deep.as_bytes(), b"deep")]);
    let dir = tempfile::tempdir().expect("dir");
    let image = layout_of(dir.path(), vec![layer], &["ADD deep"]);
    // Refused at the default --max-path-length; read when the limit is raised.
    let line = expect_bad_input(home.path(), &["inspect", &image]);
    assert!(line.contains("--max-path-length"), "{line}");
    let (output, peak) = ballast_peak_rss(
        home.path(),
        &[
            "inspect",
            &image,
            "--max-path-length",
            "3000000",
            "--format",
            "json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(peak < 64 * MB, "peak RSS {} MiB", peak / MB);
}

/// A gzip layer whose tar holds one extension entry of `size` bytes (`x` for PAX,
/// `L` for a GNU long name) before a small file; the blob stays small.
fn layer_with_huge_extension(kind: u8, size: usize) -> (Vec<u8>, ballast::digest::Digest) {
    let mut tar = Vec::with_capacity(size + 4096);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_size(size as u64);
    header.set_mode(0o644);
    {
        let name = b"././@LongLink";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
    }
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    if kind == b'x' {
        // One record: "<len> comment=<aaaa…>\n", its length counting itself.
        let body = size - 10 - " comment=\n".len();
        let record_len = format!("{:010}", size);
        tar.extend_from_slice(record_len.as_bytes());
        tar.extend_from_slice(b" comment=");
        tar.resize(tar.len() + body, b'a');
        tar.push(b'\n');
    } else {
        tar.resize(tar.len() + size - 1, b'n');
        tar.push(0);
    }
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend_from_slice(&raw_tar(&[(b"small", b"x")]));
    let gzip = testkit::compress(&tar, ballast::layer::Compression::Gzip, Some(1)).expect("gzip");
    (gzip, ballast::digest::Digest::of_bytes(&tar))
}

#[test]
fn huge_pax_headers_and_long_names_cost_bounded_memory() {
    let home = tempfile::tempdir().expect("home");
    for (kind, expected) in [(b'x', "fixed limit"), (b'L', "--max-path-length")] {
        let (blob, diff_id) = layer_with_huge_extension(kind, 200 * 1024 * 1024);
        assert!(blob.len() < 2 * 1024 * 1024, "{} bytes", blob.len());
        let dir = tempfile::tempdir().expect("dir");
        let layer = testkit::BuiltLayer {
            digest: ballast::digest::Digest::of_bytes(&blob),
            diff_id,
            blob,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
        };
        let image = ImageSpec::new(vec![])
            .assemble(vec![layer])
            .expect("assemble");
        testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
        let line = refused(home.path(), &format!("oci:{}:t", dir.path().display()), &[]);
        assert!(line.contains(expected), "{}: {line}", kind as char);
    }
}

#[test]
fn a_huge_binary_is_listed_in_bounded_memory() {
    let home = tempfile::tempdir().expect("home");
    // A real Go program with 500 MB after it: still an ELF file, and one that
    // analysis would have to hold whole.
    let mut elf =
        std::fs::read(samples().go(testkit::samples::GoBuild::CgoOff).expect("go")).expect("read");
    elf.resize(500 * 1024 * 1024, 0);
    let tar = raw_tar(&[(b"app/huge", &elf)]);
    drop(elf);
    let gzip = testkit::compress(&tar, ballast::layer::Compression::Gzip, Some(1)).expect("gzip");
    let layer = testkit::BuiltLayer {
        digest: ballast::digest::Digest::of_bytes(&gzip),
        diff_id: ballast::digest::Digest::of_bytes(&tar),
        blob: gzip,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
    };
    drop(tar);
    let image = ImageSpec::new(vec![])
        .assemble(vec![layer])
        .expect("assemble");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let (output, peak) = ballast_peak_rss(
        home.path(),
        &[
            "inspect",
            &format!("oci:{}:t", dir.path().display()),
            "--format",
            "json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(peak < 64 * MB, "peak RSS {} MiB", peak / MB);
    eprintln!(
        "a 500 MB ELF: listed, not analysed, peak RSS {} MiB",
        peak / MB
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let binary = &report["binaries"][0];
    assert_eq!(binary["size"], 500 * 1024 * 1024);
    assert!(
        binary["malformed"]
            .as_str()
            .is_some_and(|m| m.contains("--max-binary-size")),
        "{binary:#}"
    );
}
