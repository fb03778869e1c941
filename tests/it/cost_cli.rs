//! `ballast cost` and `ballast calibrate` as users run them, against the real registry.

use std::sync::OnceLock;

use serde_json::Value;
use testkit::samples::{self, GoBuild, RustBuild};

use crate::common::*;

/// The Go and the Rust sample images: same base layers, different app layers.
fn pushed() -> &'static (String, String, u64) {
    static PUSHED: OnceLock<(String, String, u64)> = OnceLock::new();
    PUSHED.get_or_init(|| {
        let samples = samples();
        let go = samples::service_image(&samples.go(GoBuild::Default).expect("go"), "app", false)
            .expect("spec")
            .build()
            .expect("build");
        let rust = samples::service_image(
            &samples.rust(RustBuild::Release).expect("rust"),
            "app",
            false,
        )
        .expect("spec")
        .build()
        .expect("build");
        let mut distinct = std::collections::BTreeMap::new();
        for layer in go.layers.iter().chain(&rust.layers) {
            distinct.insert(layer.digest.to_string(), layer.blob.len() as u64);
        }
        let unique: u64 = distinct.values().sum();
        (
            push(registry(), "cost/hello-go:1.0", &[&go]),
            push(registry(), "cost/hello-rs:1.0", &[&rust]),
            unique,
        )
    })
}

fn cost_json(home: &std::path::Path, args: &[&str]) -> Value {
    let mut full = vec!["cost"];
    full.extend_from_slice(args);
    json_of(home, &full)
}

fn f(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[test]
fn shared_base_layers_are_counted_once() {
    let home = tempfile::tempdir().expect("home");
    let (go, rust, unique) = pushed();
    let report = cost_json(home.path(), &[go, rust]);
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["pricing"]["id"], "aws-ecr-private");
    assert_eq!(
        report["set"]["unique_compressed_bytes"].as_u64(),
        Some(*unique)
    );
    let images = report["images"].as_array().expect("images");
    assert_eq!(images.len(), 2);
    let per_image: f64 = images.iter().map(|i| f(&i["storage_usd_month"])).sum();
    assert!(
        f(&report["set"]["storage_usd_month"]) < per_image,
        "sharing must make the set cheaper than the images alone"
    );
    for image in images {
        let parts = &image["cold_start"]["parts"];
        let sum: f64 = ["rtt_s", "download_s", "unpack_s", "start_s"]
            .iter()
            .map(|k| f(&parts[*k]))
            .sum();
        assert!(
            (sum - f(&image["cold_start"]["total_s"])).abs() < 0.002,
            "parts add up: {parts}"
        );
    }
}

#[test]
fn a_custom_pricing_file_changes_the_figures() {
    let home = tempfile::tempdir().expect("home");
    let (go, _, _) = pushed();
    let base = cost_json(home.path(), &[go]);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("pricing.toml");
    std::fs::write(
        &file,
        r#"
[[pricing]]
id = "our-registry"
name = "Our on-prem registry"
provider = "internal"
region = "dc1"
effective = "2026-11-01"
source = "internal price list"
gb = "GB"
[pricing.storage]
unit = "GB-Mo"
tiers = [{ from = 0, usd = 1.0 }]
[pricing.transfer.same_region]
unit = "GB"
tiers = [{ from = 0, usd = 0.0 }]
[pricing.transfer.cross_region]
unit = "GB"
tiers = [{ from = 0, usd = 0.5 }]
[pricing.transfer.internet]
unit = "GB"
tiers = [{ from = 0, usd = 0.5 }]
"#,
    )
    .expect("write");
    let custom = cost_json(
        home.path(),
        &[
            go,
            "--pricing",
            &file.display().to_string(),
            "--registry",
            "our-registry",
        ],
    );
    assert_eq!(custom["pricing"]["id"], "our-registry");
    let ratio =
        f(&custom["images"][0]["storage_usd_month"]) / f(&base["images"][0]["storage_usd_month"]);
    // $1 per 10^9 bytes against $0.10 per 2^30 bytes.
    let expected = 1.0 / 0.10 * (1u64 << 30) as f64 / 1e9;
    assert!(
        (ratio - expected).abs() / expected < 0.01,
        "ratio {ratio} vs {expected}"
    );

    std::fs::write(&file, "[[pricing]]\nid = \"broken\"\n[pricing.storage]\nunit = \"GB-Mo\"\ntiers = [{ from = 0, usd = \"cheap\" }]\n").expect("write");
    let line = expect_bad_input(
        home.path(),
        &["cost", go, "--pricing", &file.display().to_string()],
    );
    assert!(
        line.contains("pricing.toml") && line.contains(":5"),
        "names the file and line: {line}"
    );
}

#[test]
fn list_pricing_shows_every_builtin_entry_with_its_source() {
    let home = tempfile::tempdir().expect("home");
    let list = json_of(home.path(), &["cost", "--list-pricing"]);
    let ids: Vec<&str> = list["pricing"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    for id in [
        "aws-ecr-private",
        "gcp-artifact-registry",
        "azure-acr-basic",
        "azure-acr-standard",
        "azure-acr-premium",
        "ghcr",
        "docker-hub",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}

#[test]
fn calibrate_writes_a_profile_cost_can_use() {
    let home = tempfile::tempdir().expect("home");
    let (go, rust, _) = pushed();
    let dir = tempfile::tempdir().expect("dir");
    let profile = dir.path().join("profile.toml");
    // A cache set for the whole environment must not be what calibration times.
    let cache = tempfile::tempdir().expect("cache");
    succeed(
        ballast(home.path())
            .env("BALLAST_CACHE_DIR", cache.path())
            .args([
                "calibrate",
                go,
                "-o",
                &profile.display().to_string(),
                "--name",
                "here",
            ]),
    );
    assert!(
        std::fs::read_dir(cache.path())
            .expect("cache")
            .next()
            .is_none(),
        "calibrate used the cache"
    );
    let text = std::fs::read_to_string(&profile).expect("profile written");
    assert!(
        text.contains("here") && text.contains("measured by ballast calibrate"),
        "{text}"
    );
    let report = cost_json(
        home.path(),
        &[
            rust,
            "--profiles",
            &profile.display().to_string(),
            "--profile",
            "here",
        ],
    );
    assert_eq!(report["images"][0]["cold_start"]["profile"], "here");
    assert!(f(&report["images"][0]["cold_start"]["total_s"]) > 0.0);

    let line = expect_bad_input(
        home.path(),
        &["calibrate", "oci:/tmp/x", "-o", "/tmp/p.toml"],
    );
    assert!(line.contains("registry image"), "{line}");
}
