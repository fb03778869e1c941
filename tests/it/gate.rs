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
