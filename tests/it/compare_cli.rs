//! `ballast compare` and `ballast report` as users run them.

use testkit::samples::{self, GoBuild, RustBuild};

use crate::common::*;

fn layouts(dir: &std::path::Path) -> (String, String) {
    let samples = samples();
    let go = samples::service_image(
        &samples.go(GoBuild::CgoOff).expect("go"),
        "app/hello",
        false,
    )
    .expect("spec")
    .build()
    .expect("build");
    let rust = samples::service_image(
        &samples.rust(RustBuild::Release).expect("rust"),
        "app/hello",
        false,
    )
    .expect("spec")
    .build()
    .expect("build");
    testkit::write_oci_layout(&dir.join("go"), &[(&go, Some("1"))]).expect("layout");
    testkit::write_oci_layout(&dir.join("rs"), &[(&rust, Some("1"))]).expect("layout");
    (
        format!("oci:{}:1", dir.join("go").display()),
        format!("oci:{}:1", dir.join("rs").display()),
    )
}

#[test]
fn compare_go_and_rust_builds() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let (go, rust) = layouts(dir.path());
    let comparison = json_of(home.path(), &["compare", &go, &rust, "--no-advice"]);
    assert_eq!(comparison["schema_version"], 1);
    let images = comparison["images"].as_array().expect("images");
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["main_binary"]["language"], "go");
    assert_eq!(images[1]["main_binary"]["language"], "rust");
    // The base layer is shared: the set holds it once.
    let inspect_go = inspect_json(home.path(), &[&go]);
    assert_eq!(
        images[0]["compressed_bytes"],
        inspect_go["totals"]["compressed_bytes"]
    );
    let line = expect_bad_input(home.path(), &["compare", &go]);
    assert!(line.contains("IMAGES") || line.contains("2"), "{line}");
}

#[test]
fn report_writes_markdown_with_charts() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let (go, rust) = layouts(dir.path());
    let out = dir.path().join("report.md");
    succeed(ballast(home.path()).args([
        "report",
        &go,
        &rust,
        "--stable",
        "-o",
        &out.display().to_string(),
    ]));
    let markdown = std::fs::read_to_string(&out).expect("report written");
    assert!(
        markdown.starts_with("# Image report"),
        "{}",
        &markdown[..200.min(markdown.len())]
    );
    assert!(markdown.matches("```mermaid").count() >= 2);
    assert!(markdown.contains("rust-strip") || markdown.contains("distroless"));
    assert!(
        !markdown.contains("decompression on this machine"),
        "--stable leaves timings out"
    );
    let code = markdown
        .split("## What the code is made of")
        .nth(1)
        .expect("the code section");
    assert!(code.trim_start().contains("```mermaid"), "{code}");
    assert!(code.contains("runtime (std)"), "{code}");
    assert!(
        code.contains("Standard library share of .text: Go std"),
        "{code}"
    );
}

/// The Markdown report on two images built from fixed bytes, as a snapshot (the
/// temporary paths in the references redacted).
#[test]
fn markdown_report_snapshot() {
    use testkit::{ImageSpec, Item, LayerSpec};
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let base = LayerSpec::new(
        "ADD base",
        vec![
            Item::file("etc/os-release", b"ID=snapshot\n".to_vec()),
            Item::file("usr/share/doc/base/README", vec![b'd'; 20_000]),
        ],
    );
    let a = ImageSpec::new(vec![
        base.clone(),
        LayerSpec::new(
            "COPY app /srv",
            vec![
                Item::file("srv/app.dat", vec![b'a'; 150_000]),
                Item::file("tmp/build.log", vec![b'l'; 50_000]),
            ],
        ),
        LayerSpec::new(
            "RUN rm /tmp/build.log",
            vec![Item::Whiteout {
                path: "tmp/build.log".into(),
            }],
        ),
    ])
    .build()
    .expect("build");
    let b = ImageSpec::new(vec![
        base,
        LayerSpec::new(
            "COPY app /srv",
            vec![Item::file("srv/app.dat", vec![b'b'; 90_000])],
        ),
    ])
    .build()
    .expect("build");
    testkit::write_oci_layout(&dir.path().join("a"), &[(&a, Some("1"))]).expect("layout");
    testkit::write_oci_layout(&dir.path().join("b"), &[(&b, Some("1"))]).expect("layout");
    let output = ballast(home.path())
        .current_dir(dir.path())
        .args(["report", "oci:a:1", "oci:b:1", "--stable"])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let markdown = String::from_utf8(output.stdout).expect("utf-8");
    insta::assert_snapshot!(markdown);
}

/// Images of one command that share a base layer read it once: the registry (seen
/// through a passthrough proxy) serves the shared blob a single time.
#[test]
fn shared_layers_are_read_once_per_command() {
    let samples = samples();
    let build = |binary: std::path::PathBuf| {
        samples::service_image(&binary, "app/hello", false)
            .expect("spec")
            .build()
            .expect("build")
    };
    let go = build(samples.go(GoBuild::CgoOff).expect("go"));
    let rust = build(samples.rust(RustBuild::Release).expect("rust"));
    assert_eq!(go.layers[0].digest, rust.layers[0].digest, "the same base");
    push(registry(), "compare/shared-go:1", &[&go]);
    push(registry(), "compare/shared-rs:1", &[&rust]);
    let proxy = crate::common::proxy::Proxy::passthrough(&registry().host);
    let home = tempfile::tempdir().expect("home");
    let comparison = json_of(
        home.path(),
        &[
            "compare",
            &proxy.reference("compare/shared-go:1"),
            &proxy.reference("compare/shared-rs:1"),
            "--no-advice",
        ],
    );
    assert_eq!(comparison["images"][1]["main_binary"]["language"], "rust");
    let base = go.layers[0].digest.to_string();
    assert_eq!(proxy.blob_gets(&base).len(), 1, "{}", proxy.describe());
    for layer in [&go.layers[1], &rust.layers[1]] {
        assert_eq!(
            proxy.blob_gets(&layer.digest.to_string()).len(),
            1,
            "{}",
            proxy.describe()
        );
    }
}

/// Bytes of a JSON number, 0 when absent.
fn bytes(value: &serde_json::Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// The attribution inspect gives the binary at `path`.
fn inspected_attribution(inspect: &serde_json::Value, path: &str) -> serde_json::Value {
    inspect["binaries"]
        .as_array()
        .expect("binaries")
        .iter()
        .find(|b| b["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in {inspect}"))["attribution"]
        .clone()
}

/// Σ of the std-flagged items' bytes over `.text`.
fn std_share(attribution: &serde_json::Value) -> f64 {
    let std: u64 = attribution["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["std"] == true)
        .map(|i| bytes(&i["bytes"]))
        .sum();
    std as f64 / bytes(&attribution["code_bytes"]) as f64
}

#[test]
fn compare_lists_the_main_binaries_code_with_the_std_share() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let (go, rust) = layouts(dir.path());
    let comparison = json_of(home.path(), &["compare", &go, &rust, "--no-advice"]);
    let mut shares = Vec::new();
    for (index, (reference, unit)) in [(&go, "package"), (&rust, "crate")].iter().enumerate() {
        let inspected =
            inspected_attribution(&inspect_json(home.path(), &[reference]), "/app/hello");
        let summary = &comparison["images"][index]["main_binary"]["attribution_summary"];
        assert_eq!(summary["unit"], *unit, "{summary}");
        assert_eq!(summary["source"], inspected["source"]);
        assert_eq!(summary["code_bytes"], inspected["code_bytes"]);
        let top = summary["top"].as_array().expect("top");
        let items = inspected["items"].as_array().expect("items");
        assert_eq!(top.len(), items.len().min(10));
        for (shown, item) in top.iter().zip(items) {
            assert_eq!(shown["name"], item["name"]);
            assert_eq!(shown["bytes"], item["bytes"]);
            assert_eq!(shown["version"], item["version"]);
            let share = bytes(&item["bytes"]) as f64 / bytes(&inspected["code_bytes"]) as f64;
            assert!((shown["share"].as_f64().expect("share") - share).abs() < 1e-9);
        }
        let rest: u64 = items.iter().skip(10).map(|i| bytes(&i["bytes"])).sum();
        assert_eq!(bytes(&summary["rest_bytes"]), rest);
        let share = std_share(&inspected);
        assert!(share > 0.0, "std code in {reference}: {inspected}");
        assert!((summary["std_share"].as_f64().expect("std_share") - share).abs() < 1e-9);
        shares.push(share);
    }
    // Go's std flag includes the runtime; Rust's std, core and alloc are flagged too.
    let items = |index: usize| {
        comparison["images"][index]["main_binary"]["attribution_summary"]["top"]
            .as_array()
            .expect("top")
            .clone()
    };
    assert!(items(0)
        .iter()
        .any(|i| i["name"] == "runtime" && i["std"] == true));
    assert!(items(1)
        .iter()
        .any(|i| i["name"] == "std" && i["std"] == true));

    for format in ["table", "markdown"] {
        let output = succeed(ballast(home.path()).args([
            "compare",
            &go,
            &rust,
            "--no-advice",
            "--format",
            format,
        ]));
        let text = String::from_utf8_lossy(&output);
        assert!(
            text.contains("Main binary code, largest packages / crates"),
            "{text}"
        );
        let line = format!("Go std (runtime included) {:.1}% (", shares[0] * 100.0);
        assert!(text.contains("Standard library share of .text: "), "{text}");
        assert!(text.contains(&line), "{line} in {text}");
        // Crates std links in privately, with no .dep-v0 to say whose they are, widen
        // Rust's figure into a range.
        let summary = &comparison["images"][1]["main_binary"]["attribution_summary"];
        let maybe: u64 = inspected_attribution(&inspect_json(home.path(), &[&rust]), "/app/hello")
            ["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|i| i["maybe_std"] == true && i["std"] != true)
            .map(|i| bytes(&i["bytes"]))
            .sum();
        assert_eq!(summary["maybe_std_bytes"].as_u64().unwrap_or(0), maybe);
        let line = if maybe > 0 {
            let upper = shares[1] + maybe as f64 / bytes(&summary["code_bytes"]) as f64;
            format!(
                "Rust std/core/alloc {:.1}% to {:.1}% (with the crates std links in privately",
                shares[1] * 100.0,
                upper * 100.0
            )
        } else {
            format!("Rust std/core/alloc {:.1}% (", shares[1] * 100.0)
        };
        assert!(text.contains(&line), "{line} in {text}");
    }
}
