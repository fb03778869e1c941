//! `ballast gate` on real images in the local registry: budgets from flags and from
//! ballast.toml, baselines from an image and from a saved JSON report, exit codes,
//! the GitHub step summary and annotations.

use std::sync::OnceLock;

use serde_json::Value;
use testkit::samples::{self, GoBuild};
use testkit::{Item, LayerSpec};

use crate::common::*;

/// A base image and the same image with a 3 MB incompressible file added.
fn images() -> &'static (String, String) {
    static IMAGES: OnceLock<(String, String)> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let samples = samples();
        let spec = samples::service_image(&samples.go(GoBuild::CgoOff).expect("go"), "app", false)
            .expect("spec");
        let small = spec.build().expect("build");
        let mut grown_spec = spec.clone();
        let mut noise = vec![0u8; 3_000_000];
        let mut x: u32 = 12345;
        for byte in &mut noise {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *byte = x as u8;
        }
        grown_spec.layers.push(LayerSpec::new(
            "COPY assets /assets",
            vec![Item::file("assets/blob", noise)],
        ));
        let grown = grown_spec.build().expect("build");
        (
            push(registry(), "gate/app:main", &[&small]),
            push(registry(), "gate/app:pr", &[&grown]),
        )
    })
}

fn gate(dir: &std::path::Path, args: &[&str]) -> (i32, Value, String) {
    let output = ballast(dir)
        .current_dir(dir)
        .arg("gate")
        .args(args)
        .args(["--format", "json"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let verdict = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), verdict, stderr)
}

fn check<'a>(verdict: &'a Value, rule: &str) -> &'a Value {
    verdict["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule}: {verdict}"))
}

#[test]
fn growth_past_a_percent_budget_fails_and_a_shrink_passes() {
    let dir = tempfile::tempdir().expect("dir");
    let (main, pr) = images();
    let (code, verdict, stderr) = gate(
        dir.path(),
        &[
            pr,
            "--baseline",
            main,
            "--max-growth",
            "10%",
            "--max-growth",
            "50MB",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(verdict["schema_version"], 1);
    assert_eq!(verdict["pass"], false);
    let percent = check(&verdict, "max_growth_percent");
    assert_eq!(percent["pass"], false);
    assert!(percent["value"].as_f64().expect("value") > 10.0);
    assert_eq!(percent["limit"], 10.0);
    assert_eq!(check(&verdict, "max_growth_bytes")["pass"], true);

    let (code, verdict, stderr) =
        gate(dir.path(), &[main, "--baseline", pr, "--max-growth", "10%"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(verdict["pass"], true);
    assert!(
        check(&verdict, "max_growth_percent")["value"]
            .as_f64()
            .expect("value")
            < 0.0
    );
}

#[test]
fn baseline_from_a_saved_report_and_budgets_from_ballast_toml() {
    let dir = tempfile::tempdir().expect("dir");
    let (main, pr) = images();
    let saved = ballast(dir.path())
        .args(["inspect", main, "--format", "json"])
        .output()
        .expect("run");
    assert!(saved.status.success());
    std::fs::write(dir.path().join("base.json"), &saved.stdout).expect("save report");
    std::fs::write(
        dir.path().join("ballast.toml"),
        "[gate]\nbaseline = \"base.json\"\nmax_growth = [\"10%\"]\nmax_size = \"1GB\"\nmin_efficiency = 0.5\nmax_wasted = \"1MB\"\n",
    )
    .expect("write config");
    let (code, verdict, stderr) = gate(dir.path(), &[pr]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(check(&verdict, "max_growth_percent")["pass"], false);
    assert_eq!(check(&verdict, "max_size")["pass"], true);
    assert_eq!(check(&verdict, "min_efficiency")["pass"], true);
    assert_eq!(check(&verdict, "max_wasted")["pass"], true);
    assert_eq!(verdict["baseline"]["reference"], main.as_str());

    // A flag overrides the file.
    let (code, _, stderr) = gate(dir.path(), &[pr, "--max-growth", "90%"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn github_summary_and_annotations() {
    let dir = tempfile::tempdir().expect("dir");
    let (main, pr) = images();
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "# earlier step\n").expect("write");
    let output = ballast(dir.path())
        .current_dir(dir.path())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args([
            "gate",
            pr,
            "--baseline",
            main,
            "--max-growth",
            "5%",
            "--max-size",
            "1MB",
            "--format",
            "github",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("::error title=ballast gate max_growth_percent::"),
        "{stdout}"
    );
    assert!(
        stdout.contains("::error title=ballast gate max_size::"),
        "{stdout}"
    );
    let written = std::fs::read_to_string(&summary).expect("summary");
    assert!(written.starts_with("# earlier step\n"), "appends");
    assert!(
        written.contains("ballast gate: FAIL: 2 of 2 checks failed"),
        "{written}"
    );
    assert!(written.contains("| `max_size` |"), "{written}");
}

#[test]
fn cold_start_and_cost_budgets() {
    let dir = tempfile::tempdir().expect("dir");
    let (main, _) = images();
    let (code, verdict, stderr) = gate(
        dir.path(),
        &[
            main,
            "--max-cold-start",
            "600",
            "--profile",
            "fargate",
            "--max-monthly-cost",
            "0.000001",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    let cold = check(&verdict, "max_cold_start");
    assert_eq!(cold["pass"], true);
    assert!(cold["detail"].as_str().expect("detail").contains("fargate"));
    assert_eq!(check(&verdict, "max_monthly_cost")["pass"], false);
}

#[test]
fn bad_budgets_are_bad_input() {
    let dir = tempfile::tempdir().expect("dir");
    let (main, _) = images();
    let line = expect_bad_input(dir.path(), &["gate", main, "--max-growth", "10%"]);
    assert!(line.contains("--baseline"), "{line}");
    let line = expect_bad_input(dir.path(), &["gate", main, "--max-size", "huge"]);
    assert!(line.contains("--max-size"), "{line}");
    let line = expect_bad_input(dir.path(), &["gate", main]);
    assert!(line.contains("no budgets"), "{line}");
    let line = expect_bad_input(dir.path(), &["gate", main, "--min-efficiency", "2"]);
    assert!(line.contains("--min-efficiency"), "{line}");
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, "[gate]\nmax_size = \"1MB\"\nmax_sise = 3\n").expect("write");
    let line = expect_bad_input(
        dir.path(),
        &["gate", main, "--config", &config.display().to_string()],
    );
    assert!(
        line.contains("broken.toml") && line.contains("line 3"),
        "{line}"
    );
    let base = dir.path().join("base.json");
    std::fs::write(&base, "{\"hello\": 1}").expect("write");
    let line = expect_bad_input(
        dir.path(),
        &[
            "gate",
            main,
            "--baseline",
            &base.display().to_string(),
            "--max-growth",
            "5%",
        ],
    );
    assert!(line.contains("not a ballast inspect report"), "{line}");
}

#[test]
fn no_unstripped_binaries() {
    let dir = tempfile::tempdir().expect("dir");
    let samples = samples();
    let binary = samples.go(GoBuild::CgoOff).expect("go");
    let layer = |data: Vec<u8>| {
        testkit::ImageSpec::new(vec![LayerSpec::new(
            "COPY app /app",
            vec![Item::executable("app", data)],
        )])
        .build()
        .expect("build")
    };
    let unstripped = push(
        registry(),
        "gate/strip:debug",
        &[&layer(std::fs::read(&binary).expect("read"))],
    );
    let out = dir.path().join("stripped");
    let status = std::process::Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&out)
        .arg(&binary)
        .status()
        .expect("strip");
    assert!(status.success());
    let stripped = push(
        registry(),
        "gate/strip:stripped",
        &[&layer(std::fs::read(&out).expect("read"))],
    );

    let (code, verdict, stderr) = gate(dir.path(), &[&unstripped, "--no-unstripped"]);
    assert_eq!(code, 1, "{stderr}");
    let rule = check(&verdict, "no_unstripped");
    assert_eq!(rule["value"], 1.0);
    assert!(rule["detail"].as_str().expect("detail").contains("/app"));
    let (code, verdict, stderr) = gate(dir.path(), &[&stripped, "--no-unstripped"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(check(&verdict, "no_unstripped")["pass"], true);
}

/// The JSON verdict other CI systems parse, as a snapshot (registry host and digests
/// redacted; the images are built from fixed bytes, so every figure is stable).
#[test]
fn json_verdict_snapshot() {
    let dir = tempfile::tempdir().expect("dir");
    let build = |extra: usize| {
        let mut items = vec![Item::file(
            "srv/config.json",
            br#"{"listen": ":8080"}"#.to_vec(),
        )];
        items.push(Item::file(
            "srv/data.bin",
            (0..200_000u32 + extra as u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<u8>>(),
        ));
        testkit::ImageSpec::new(vec![
            LayerSpec::new(
                "ADD base",
                vec![Item::file("etc/os-release", b"ID=snapshot\n".to_vec())],
            ),
            LayerSpec::new("COPY srv /srv", items),
        ])
        .build()
        .expect("build")
    };
    let base = push(registry(), "gate/snap:base", &[&build(0)]);
    let new = push(registry(), "gate/snap:new", &[&build(300_000)]);
    let (code, verdict, stderr) = gate(
        dir.path(),
        &[
            &new,
            "--baseline",
            &base,
            "--max-growth",
            "1%",
            "--max-size",
            "1MB",
            "--min-efficiency",
            "0.9",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    insta::assert_json_snapshot!(verdict, {
        ".image.reference" => "[reference]",
        ".image.digest" => "[digest]",
        ".image.config_digest" => "[digest]",
        ".baseline.reference" => "[reference]",
        ".checks[].detail" => insta::dynamic_redaction(|value, _| {
            let text = value.as_str().unwrap_or_default().to_string();
            let host = regex_free_host_redaction(&text);
            insta::internals::Content::from(host)
        }),
    });
}

/// Replaces `127.0.0.1:PORT` with `[registry]`.
fn regex_free_host_redaction(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..start]);
        out.push_str("[registry]");
        let after = &rest[start + "127.0.0.1:".len()..];
        let digits = after.chars().take_while(|c| c.is_ascii_digit()).count();
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// The Go sample without cgo, then with it (runtime/cgo and C linked in), at one path.
fn binary_images() -> &'static (String, String) {
    static IMAGES: OnceLock<(String, String)> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let samples = samples();
        let build = |binary: std::path::PathBuf| {
            samples::service_image(&binary, "app", false)
                .expect("spec")
                .build()
                .expect("build")
        };
        let main = build(samples.go(GoBuild::CgoOff).expect("go"));
        let pr = build(samples.go(GoBuild::CgoOn).expect("go with cgo"));
        (
            push(registry(), "gate/bin:main", &[&main]),
            push(registry(), "gate/bin:pr", &[&pr]),
        )
    })
}

/// `/app`'s size and item name -> bytes, as inspect reports them.
fn app_binary(dir: &std::path::Path, image: &str) -> (u64, Vec<(String, i64)>) {
    let inspect = inspect_json(dir, &[image]);
    let app = inspect["binaries"]
        .as_array()
        .expect("binaries")
        .iter()
        .find(|b| b["path"] == "/app")
        .cloned()
        .expect("/app");
    let items = app["attribution"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().expect("name").to_string(),
                i["bytes"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    (app["size"].as_u64().expect("size"), items)
}

#[test]
fn main_binary_growth_names_the_top_growers() {
    let dir = tempfile::tempdir().expect("dir");
    let (main, pr) = binary_images();
    let (before, before_items) = app_binary(dir.path(), main);
    let (after, after_items) = app_binary(dir.path(), pr);
    assert!(after > before, "cgo grows the binary");
    let growth = after - before;
    // The largest grower as inspect's figures say.
    let grown = |name: &str, bytes: i64| {
        bytes
            - before_items
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, b)| *b)
    };
    let top = after_items
        .iter()
        .map(|(name, bytes)| (name.clone(), grown(name, *bytes)))
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .expect("a grower");

    let percent = growth as f64 * 100.0 / before as f64;
    let tight = format!("{:.3}%", percent / 2.0);
    let loose = format!("{}", growth * 2);
    let (code, verdict, stderr) = gate(
        dir.path(),
        &[
            pr,
            "--baseline",
            main,
            "--max-binary-growth",
            &tight,
            "--max-binary-growth",
            &loose,
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    let failed = check(&verdict, "max_binary_growth_percent");
    assert_eq!(failed["pass"], false);
    assert!((failed["value"].as_f64().expect("value") - percent).abs() < 0.001);
    let detail = failed["detail"].as_str().expect("detail");
    assert!(detail.starts_with("main binary /app grew "), "{detail}");
    assert!(
        detail.contains(&format!(": {} ", top.0)),
        "top grower {top:?}: {detail}"
    );
    let bytes = check(&verdict, "max_binary_growth_bytes");
    assert_eq!(bytes["pass"], true);
    assert_eq!(bytes["value"].as_f64(), Some(growth as f64));
    assert_eq!(
        verdict["baseline"]["main_binary"]["size"].as_u64(),
        Some(before)
    );

    // The same baseline from a saved report gives the same figures.
    let saved = succeed(ballast(dir.path()).args(["inspect", main, "--format", "json"]));
    std::fs::write(dir.path().join("base.json"), &saved).expect("save report");
    let (code, from_report, stderr) = gate(
        dir.path(),
        &[pr, "--baseline", "base.json", "--max-binary-growth", &tight],
    );
    assert_eq!(code, 1, "{stderr}");
    let failed_again = check(&from_report, "max_binary_growth_percent");
    assert_eq!(failed_again["value"], failed["value"]);
    assert!(failed_again["detail"]
        .as_str()
        .expect("detail")
        .contains(&format!(": {} ", top.0)));

    // Within budget it passes; the other way round the binary shrank.
    let (code, _, stderr) = gate(
        dir.path(),
        &[pr, "--baseline", "base.json", "--max-binary-growth", &loose],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, verdict, stderr) = gate(
        dir.path(),
        &[main, "--baseline", pr, "--max-binary-growth", "0%"],
    );
    assert_eq!(code, 0, "{stderr}");
    let shrunk = check(&verdict, "max_binary_growth_percent");
    assert!(
        shrunk["detail"]
            .as_str()
            .expect("detail")
            .contains("shrank"),
        "{shrunk}"
    );
}

#[test]
fn binary_growth_from_ballast_toml_in_the_step_summary() {
    let dir = tempfile::tempdir().expect("dir");
    let (main, pr) = binary_images();
    std::fs::write(
        dir.path().join("ballast.toml"),
        format!("[gate]\nbaseline = \"{main}\"\nmax_binary_growth = [\"0.001%\", \"1GB\"]\n"),
    )
    .expect("write config");
    let summary = dir.path().join("summary.md");
    let output = ballast(dir.path())
        .current_dir(dir.path())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["gate", pr, "--format", "json"])
        .output()
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(check(&verdict, "max_binary_growth_percent")["pass"], false);
    assert_eq!(check(&verdict, "max_binary_growth_bytes")["pass"], true);
    let written = std::fs::read_to_string(&summary).expect("summary");
    assert!(
        written.contains("| `max_binary_growth_percent` |"),
        "{written}"
    );
    assert!(written.contains("main binary /app grew"), "{written}");

    // Without a baseline the budget is a usage error, named.
    let line = expect_bad_input(dir.path(), &["gate", main, "--max-binary-growth", "5%"]);
    assert!(
        line.contains("--max-binary-growth") && line.contains("--baseline"),
        "{line}"
    );
    let line = expect_bad_input(
        dir.path(),
        &[
            "gate",
            main,
            "--baseline",
            pr,
            "--max-binary-growth",
            "1%",
            "--max-binary-growth",
            "2%",
        ],
    );
    assert!(line.contains("at most one percentage"), "{line}");
    let line = expect_bad_input(
        dir.path(),
        &[
            "gate",
            main,
            "--baseline",
            pr,
            "--max-binary-growth",
            "lots",
        ],
    );
    assert!(line.contains("--max-binary-growth"), "{line}");
}
