//! `ballast inspect` against a real registry, an OCI layout and a docker-archive, on
//! images holding real Go and Rust binaries.

use std::sync::OnceLock;

use ballast::layer::Compression;
use serde_json::Value;
use testkit::samples::{self, GoBuild, RustBuild};
use testkit::{BuiltImage, ImageSpec};

use crate::common::*;

struct Fixtures {
    go: BuiltImage,
    go_binary_size: u64,
    build_log_size: u64,
    apt_bytes: u64,
    rust: BuiltImage,
    rust_binary_size: u64,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let samples = samples();
        let go_binary = samples.go(GoBuild::Default).expect("Go sample builds");
        let go_spec =
            samples::service_image(&go_binary, "usr/local/bin/hello", true).expect("go image spec");
        let build_log_size = go_spec.layers[2]
            .items
            .iter()
            .find_map(|item| match item {
                testkit::Item::File { path, data, .. } if path == "tmp/build.log" => {
                    Some(data.len() as u64)
                }
                _ => None,
            })
            .expect("build log in the app layer");
        let apt_bytes = go_spec.layers[1]
            .items
            .iter()
            .map(|item| match item {
                testkit::Item::File { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum();
        let rust_binary = samples
            .rust(RustBuild::DebugInfo)
            .expect("Rust sample builds");
        let mut rust_spec =
            samples::service_image(&rust_binary, "app/hello", false).expect("rust image spec");
        for layer in &mut rust_spec.layers {
            layer.compression = Compression::Zstd;
        }
        Fixtures {
            go: go_spec.build().expect("build go image"),
            go_binary_size: std::fs::metadata(&go_binary).expect("go binary").len(),
            build_log_size,
            apt_bytes,
            rust: rust_spec.build().expect("build rust image"),
            rust_binary_size: std::fs::metadata(&rust_binary).expect("rust binary").len(),
        }
    })
}

fn pushed_go() -> &'static str {
    static REF: OnceLock<String> = OnceLock::new();
    REF.get_or_init(|| push(registry(), "samples/hello-go:1.0", &[&fixtures().go]))
}

fn u(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}

/// Every figure that the built image fixes, checked against the JSON report.
fn assert_matches_built(report: &Value, image: &BuiltImage) {
    assert_eq!(report["schema_version"], 1);
    assert_eq!(u(&report["totals"]["layers"]), image.layers.len() as u64);
    assert_eq!(
        u(&report["totals"]["compressed_bytes"]),
        image.compressed_bytes()
    );
    let layers = report["layers"].as_array().expect("layers");
    for (row, built) in layers.iter().zip(&image.layers) {
        assert_eq!(row["digest"], built.digest.to_string());
        assert_eq!(row["diff_id"], built.diff_id.to_string());
        assert_eq!(u(&row["compressed_bytes"]), built.blob.len() as u64);
        assert_eq!(row["media_type"], built.media_type);
    }
}

#[test]
fn inspects_go_image_from_registry() {
    let home = tempfile::tempdir().expect("home");
    let fixtures = fixtures();
    let report = inspect_json(home.path(), &[pushed_go()]);
    assert_matches_built(&report, &fixtures.go);
    assert_eq!(
        report["image"]["digest"],
        fixtures.go.manifest_digest.to_string()
    );
    assert_eq!(report["image"]["platform"], "linux/amd64");

    // Uncompressed sizes are the tar streams' sizes, and their sha256 the diff_ids.
    let uncompressed: u64 = fixtures
        .go
        .layers
        .iter()
        .map(|l| {
            let mut out = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(l.blob.as_slice()),
                &mut out,
            )
            .expect("gunzip");
            out.len() as u64
        })
        .sum();
    assert_eq!(u(&report["totals"]["uncompressed_bytes"]), uncompressed);

    // created_by pairs with layers, skipping the ENV history entry (empty_layer).
    let created_by: Vec<&str> = report["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["created_by"].as_str().unwrap_or(""))
        .collect();
    assert!(created_by[0].starts_with("ADD rootfs"), "{created_by:?}");
    assert!(
        created_by[1].starts_with("RUN apt-get update"),
        "{created_by:?}"
    );
    assert!(created_by[2].starts_with("COPY app"), "{created_by:?}");
    assert_eq!(created_by[3], "RUN rm /tmp/build.log");

    // The deleted build log is waste every node pulls; the apt lists are visible caches.
    assert_eq!(
        u(&report["waste"]["deleted_bytes"]),
        fixtures.build_log_size
    );
    assert_eq!(u(&report["waste"]["overwritten_bytes"]), 0);
    assert_eq!(u(&report["waste"]["bytes"]), fixtures.build_log_size);
    assert_eq!(
        u(&report["waste"]["package_cache_bytes"]),
        fixtures.apt_bytes
    );
    assert_eq!(report["waste"]["files"][0]["path"], "/tmp/build.log");
    assert_eq!(report["waste"]["files"][0]["cause"], "deleted");
    let efficiency = report["waste"]["dive"]["efficiency"]
        .as_f64()
        .expect("efficiency");
    assert!(efficiency > 0.0 && efficiency <= 1.0);

    // The Go binary is among the largest files, is categorised and appears among binaries.
    let largest = report["largest_files"]
        .as_array()
        .expect("largest")
        .iter()
        .find(|f| f["path"] == "/usr/local/bin/hello")
        .expect("hello among the largest files");
    assert_eq!(largest["path"], "/usr/local/bin/hello");
    assert_eq!(u(&largest["size"]), fixtures.go_binary_size);
    assert_eq!(u(&largest["layer"]), 2);
    let binaries = report["binaries"].as_array().expect("binaries");
    let hello = binaries
        .iter()
        .find(|b| b["path"] == "/usr/local/bin/hello")
        .expect("hello among binaries");
    assert_eq!(u(&hello["size"]), fixtures.go_binary_size);
    let executables = report["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["category"] == "executables")
        .expect("executables row");
    assert!(u(&executables["bytes"]) >= fixtures.go_binary_size);
    let caches = report["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["category"] == "package_caches")
        .expect("caches row");
    assert_eq!(u(&caches["bytes"]), fixtures.apt_bytes);
}

#[test]
fn table_and_markdown_formats() {
    let home = tempfile::tempdir().expect("home");
    let table = ballast(home.path())
        .args(["inspect", pushed_go(), "--format", "table"])
        .output()
        .expect("run");
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("/usr/local/bin/hello"), "{text}");
    assert!(text.contains("RUN rm /tmp/build.log"), "{text}");
    assert!(text.contains("dive's figures"), "{text}");

    let markdown = ballast(home.path())
        .args(["inspect", pushed_go(), "--format", "markdown", "--top", "3"])
        .output()
        .expect("run");
    assert!(markdown.status.success());
    let text = String::from_utf8_lossy(&markdown.stdout);
    assert!(text.contains("| path | size | layer |"), "{text}");
    assert!(text.contains("`/usr/local/bin/hello`"), "{text}");
    let largest_rows = text
        .split("### Largest files")
        .nth(1)
        .expect("largest section")
        .lines()
        .filter(|l| l.starts_with("| `"))
        .count();
    assert_eq!(largest_rows, 3);
}

#[test]
fn zstd_rust_image_from_oci_layout_and_registry_agree() {
    let home = tempfile::tempdir().expect("home");
    let fixtures = fixtures();
    let layout = tempfile::tempdir().expect("layout dir");
    testkit::write_oci_layout(layout.path(), &[(&fixtures.rust, Some("1.0"))])
        .expect("write layout");
    let from_layout = inspect_json(
        home.path(),
        &[&format!("oci:{}:1.0", layout.path().display())],
    );
    assert_matches_built(&from_layout, &fixtures.rust);
    assert!(from_layout["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .all(|l| l["compression"] == "zstd"));
    let reference = push(registry(), "samples/hello-rs:1.0", &[&fixtures.rust]);
    let from_registry = inspect_json(home.path(), &[&format!("docker://{reference}")]);
    assert_eq!(from_layout["totals"], from_registry["totals"]);
    assert_eq!(from_layout["waste"], from_registry["waste"]);
    let hello = from_registry["largest_files"]
        .as_array()
        .expect("largest")
        .iter()
        .find(|f| f["path"] == "/app/hello")
        .expect("hello among the largest");
    assert_eq!(hello["path"], "/app/hello");
    assert_eq!(u(&hello["size"]), fixtures.rust_binary_size);
}

#[test]
fn docker_archive_has_equal_compressed_and_uncompressed_sizes() {
    let home = tempfile::tempdir().expect("home");
    let fixtures = fixtures();
    let dir = tempfile::tempdir().expect("dir");
    let archive = dir.path().join("hello-go.tar");
    testkit::write_docker_archive(&archive, &fixtures.go, "samples/hello-go:1.0")
        .expect("write archive");
    let from_archive = inspect_json(
        home.path(),
        &[&format!("docker-archive:{}", archive.display())],
    );
    let from_registry = inspect_json(home.path(), &[pushed_go()]);
    for layer in from_archive["layers"].as_array().expect("layers") {
        assert_eq!(layer["compressed_bytes"], layer["uncompressed_bytes"]);
        assert_eq!(layer["compression"], "tar");
    }
    assert_eq!(
        from_archive["totals"]["uncompressed_bytes"],
        from_registry["totals"]["uncompressed_bytes"]
    );
    assert_eq!(from_archive["waste"], from_registry["waste"]);
    assert_eq!(
        from_archive["largest_files"],
        from_registry["largest_files"]
    );
    // Picking the image by its tag works too, with Docker Hub normalisation.
    let by_tag = inspect_json(
        home.path(),
        &[&format!(
            "docker-archive:{}:docker.io/samples/hello-go:1.0",
            archive.display()
        )],
    );
    assert_eq!(by_tag["totals"], from_archive["totals"]);
    let missing = expect_bad_input(
        home.path(),
        &[
            "inspect",
            &format!("docker-archive:{}:other:2", archive.display()),
        ],
    );
    assert!(
        missing.contains("samples/hello-go:1.0"),
        "lists the tags it has: {missing}"
    );
}

#[test]
fn multi_platform_index_selection() {
    let home = tempfile::tempdir().expect("home");
    let samples = samples();
    let amd64 = samples::service_image(&samples.go(GoBuild::Default).expect("go"), "hello", false)
        .expect("spec")
        .build()
        .expect("build");
    let mut arm_spec: ImageSpec = samples::service_image(
        &samples.go(GoBuild::Arm64).expect("go arm64"),
        "hello",
        false,
    )
    .expect("spec");
    arm_spec.platform = "linux/arm64/v8".parse().expect("platform");
    let arm64 = arm_spec.build().expect("build");
    let reference = push(registry(), "samples/multi:1.0", &[&amd64, &arm64]);

    let default = inspect_json(home.path(), &[&reference]);
    assert_eq!(default["image"]["platform"], "linux/amd64");
    assert_eq!(
        default["image"]["digest"],
        amd64.manifest_digest.to_string()
    );
    let arm = inspect_json(home.path(), &[&reference, "--platform", "linux/arm64"]);
    assert_eq!(arm["image"]["platform"], "linux/arm64/v8");
    assert_eq!(arm["image"]["digest"], arm64.manifest_digest.to_string());

    let error = expect_bad_input(
        home.path(),
        &["inspect", &reference, "--platform", "linux/s390x"],
    );
    assert!(
        error.contains("linux/amd64") && error.contains("linux/arm64/v8"),
        "lists what is available: {error}"
    );
    let error = expect_bad_input(home.path(), &["inspect", &reference, "--platform", "linux"]);
    assert!(error.contains("--platform"), "{error}");
}

#[test]
fn binary_forensics_in_the_report_and_missing_libraries() {
    let home = tempfile::tempdir().expect("home");
    let samples = samples();
    let dynamic = std::fs::read(samples.go(GoBuild::CgoOn).expect("cgo go")).expect("read");
    let image = ImageSpec::new(vec![testkit::LayerSpec::new(
        "COPY app /app",
        vec![testkit::Item::executable("app", dynamic)],
    )])
    .build()
    .expect("build");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let report = inspect_json(home.path(), &[&format!("oci:{}:t", dir.path().display())]);
    let app = &report["binaries"][0];
    assert_eq!(app["path"], "/app");
    assert_eq!(app["language"], "go");
    assert_eq!(app["linkage"], "dynamic");
    assert!(app["go"]["version"]
        .as_str()
        .expect("go version")
        .starts_with("go1."));
    assert_eq!(app["go"]["settings"]["CGO_ENABLED"], "1");
    assert!(u(&app["strip"]["size_after_strip_all"]) < u(&app["size"]));
    let missing = report["missing_libraries"].as_array().expect("missing");
    assert!(
        missing
            .iter()
            .any(|m| m["binary"] == "/app" && m["library"] == "libc.so.6"),
        "{missing:?}"
    );
    let table = ballast(home.path())
        .args([
            "inspect",
            &format!("oci:{}:t", dir.path().display()),
            "--format",
            "table",
        ])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("MISSING: /app needs libc.so.6"), "{text}");
    assert!(text.contains("Anatomy of /app"), "{text}");

    // The code attribution: in JSON every item, in the table the top ten.
    let attribution = &app["attribution"];
    assert_eq!(attribution["unit"], "package");
    assert_eq!(attribution["source"], "pclntab");
    let items = attribution["items"].as_array().expect("items");
    let total: u64 = items.iter().map(|i| u(&i["bytes"])).sum();
    assert_eq!(total, u(&attribution["code_bytes"]));
    assert!(u(&attribution["attributed_bytes"]) * 100 >= u(&attribution["code_bytes"]) * 95);
    assert_eq!(items[0]["name"], "runtime");
    assert!(items.iter().any(|i| i["name"] == "main"
        && i["module"] == "example.com/hello"
        && i.get("std").is_none()));
    assert!(
        text.contains("Code of /app by package, from Go's function table (.gopclntab)"),
        "{text}"
    );
    let section = text
        .split("Code of /app")
        .nth(1)
        .expect("attribution section");
    let rows = section
        .lines()
        .skip(4)
        .take_while(|l| !l.starts_with('└'))
        .count();
    assert_eq!(rows, 10, "{section}");
    assert!(section.contains("│ runtime "), "{section}");
    assert!(section.contains("the JSON lists them all"), "{section}");
}
