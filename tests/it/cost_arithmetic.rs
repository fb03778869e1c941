//! `ballast cost` arithmetic, checked against hand-computed figures. Every expected value
//! below is worked out in the comment above it.

#![allow(clippy::unwrap_used)]

use ballast::cost::{
    self, calibrate, coldstart, pricing, usage, CostError, ImageSizes, LayerSize, Usage,
};
use ballast::error::Fault as _;

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Decimal GB so the arithmetic is easy by hand: 0-1 GB free, 1-3 GB at $0.50, then
/// $0.25; same-region transfer free, cross-region $0.02, internet 0-10 GB free then $0.10.
const TEST_PRICING: &str = r#"
[[pricing]]
id = "test"
name = "Test registry"
provider = "test"
region = "here"
gb = "GB"
effective = "2026-01-01"
source = "https://example.test/prices"

[pricing.storage]
unit = "GB-Mo"
tiers = [
  { from = 0, to = 1, usd = 0 },
  { from = 1, to = 3, usd = 0.5 },
  { from = 3, usd = 0.25 },
]

[pricing.transfer.same_region]
unit = "GB"
tiers = [{ from = 0, usd = 0 }]

[pricing.transfer.cross_region]
unit = "GB"
tiers = [{ from = 0, usd = 0.02 }]

[pricing.transfer.internet]
unit = "GB"
tiers = [{ from = 0, to = 10, usd = 0 }, { from = 10, usd = 0.1 }]
"#;

const TEST_PROFILE: &str = r#"
[[profile]]
name = "test"
description = "round numbers"
cache = "none"
rtt_s = { value = 0.1, source = "test" }
node_bandwidth_bytes_per_s = { value = 100e6, source = "test" }
connection_bandwidth_bytes_per_s = { value = 20e6, source = "test" }
max_concurrent_downloads = { value = 3, source = "test" }
unpack_gzip_bytes_per_s = { value = 50e6, source = "test" }
unpack_zstd_bytes_per_s = { value = 100e6, source = "test" }
unpack_tar_bytes_per_s = { value = 200e6, source = "test" }
start_s = { value = 1, source = "test" }

[[profile]]
name = "test-warm"
description = "top layer missing"
cache = "base"
app_layers = 1
rtt_s = { value = 0.1, source = "test" }
node_bandwidth_bytes_per_s = { value = 100e6, source = "test" }
connection_bandwidth_bytes_per_s = { value = 20e6, source = "test" }
max_concurrent_downloads = { value = 3, source = "test" }
unpack_gzip_bytes_per_s = { value = 50e6, source = "test" }
unpack_zstd_bytes_per_s = { value = 100e6, source = "test" }
unpack_tar_bytes_per_s = { value = 200e6, source = "test" }
start_s = { value = 1, source = "test" }
"#;

fn layer(digest: &str, compressed: u64, uncompressed: u64, media_type: &str) -> LayerSize {
    LayerSize {
        digest: format!("sha256:{digest}"),
        compressed_bytes: compressed,
        uncompressed_bytes: uncompressed,
        compression: ballast::layer::compression_of(media_type).expect("a layer media type"),
    }
}

fn image(reference: &str, layers: Vec<LayerSize>) -> ImageSizes {
    ImageSizes {
        reference: reference.to_string(),
        layers,
    }
}

/// A (Go) and B (Rust) on one 1 GB base layer, plus 0.5 GB and 0.25 GB of their own.
fn two_images() -> Vec<ImageSizes> {
    vec![
        image(
            "go-app",
            vec![
                layer("base", 1_000_000_000, 2_000_000_000, GZIP),
                layer("go", 500_000_000, 1_000_000_000, GZIP),
            ],
        ),
        image(
            "rust-app",
            vec![
                layer("base", 1_000_000_000, 2_000_000_000, GZIP),
                layer("rust", 250_000_000, 500_000_000, GZIP),
            ],
        ),
    ]
}

fn test_pricing() -> pricing::PricingEntry {
    pricing::parse(TEST_PRICING, "test.toml").unwrap().entries[0].clone()
}

fn test_profiles() -> coldstart::Profiles {
    coldstart::parse(TEST_PROFILE, "profiles.toml").unwrap()
}

/// 100 pulls a month, all cold, one version kept, 10% cross-region, 20% internet.
fn simple_usage() -> Usage {
    Usage {
        pulls_per_month: Some(100.0),
        cross_region_share: 0.1,
        internet_share: 0.2,
        warm_cache_share: 0.0,
        tags_kept: 1,
        ..Usage::default()
    }
}

fn run(images: &[ImageSizes], entry: &pricing::PricingEntry, usage: &Usage) -> cost::CostEstimate {
    let profiles = test_profiles();
    let profile = profiles.select(Some("test")).unwrap();
    cost::estimate(images, entry, usage, &profiles, profile).unwrap()
}

fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-6,
        "expected {expected}, got {actual}"
    );
}

#[test]
fn storage_tiers_free_tier_and_dedupe() {
    let result = run(&two_images(), &test_pricing(), &simple_usage());
    let [go, rust] = [&result.images[0], &result.images[1]];
    // go-app alone: 1.5 GB = 1 GB free + 0.5 GB at $0.50 = $0.25.
    close(go.storage_usd_month, 0.25);
    // rust-app alone: 1.25 GB = 1 GB free + 0.25 GB at $0.50 = $0.125.
    close(rust.storage_usd_month, 0.125);
    assert_eq!(go.unique_compressed_bytes, 500_000_000);
    assert_eq!(go.shared_compressed_bytes, 1_000_000_000);
    assert_eq!(rust.unique_compressed_bytes, 250_000_000);
    // The set stores the base once: 1.75 GB = 1 free + 0.75 at $0.50 = $0.375.
    assert_eq!(result.set.unique_compressed_bytes, 1_750_000_000);
    assert_eq!(result.set.total_compressed_bytes, 2_750_000_000);
    assert_eq!(result.set.sharing_saved_bytes, 1_000_000_000);
    close(result.set.storage_usd_month, 0.375);
    // Without sharing: 2.75 GB = 1 free + 1.75 at $0.50 = $0.875.
    close(result.set.storage_usd_month_without_sharing, 0.875);
}

#[test]
fn transfer_tiers_by_origin_and_node_dedupe() {
    let result = run(&two_images(), &test_pricing(), &simple_usage());
    let [go, rust] = [&result.images[0], &result.images[1]];
    // go-app: 100 pulls x 1.5 GB = 150 GB; cross 15 GB x $0.02 = $0.30;
    // internet 30 GB: 10 free + 20 x $0.10 = $2.00; same region 105 GB free. $2.30.
    assert_eq!(go.pulled_bytes_month, 150_000_000_000);
    close(go.transfer.same_region_gb, 105.0);
    close(go.transfer.cross_region_usd, 0.30);
    close(go.transfer.internet_usd, 2.0);
    close(go.transfer_usd_month, 2.30);
    close(go.total_usd_month, 2.55);
    // rust-app: 125 GB; cross 12.5 x 0.02 = 0.25; internet 25: 15 x 0.10 = 1.50. $1.75.
    close(rust.transfer_usd_month, 1.75);
    // Same nodes: a cold node fetches the base once, 100 x 1.75 GB = 175 GB;
    // cross 17.5 x 0.02 = 0.35; internet 35: 25 x 0.10 = 2.50. $2.85.
    assert_eq!(result.set.pulled_bytes_month, 175_000_000_000);
    close(result.set.transfer_usd_month, 2.85);
    // Without sharing: 275 GB; cross 27.5 x 0.02 = 0.55; internet 55: 45 x 0.10 = 4.50.
    close(result.set.transfer_usd_month_without_sharing, 5.05);
    // Saved: storage 0.875 - 0.375 = 0.50, transfer 5.05 - 2.85 = 2.20.
    close(result.set.sharing_saved_usd_month, 2.70);
    close(result.set.total_usd_month, 0.375 + 2.85);
    close(result.set.fixed_usd_month, 0.0);

    // On different nodes, each image pulls the base itself: 275 GB, $5.05.
    let apart = Usage {
        co_located: false,
        ..simple_usage()
    };
    let result = run(&two_images(), &test_pricing(), &apart);
    assert_eq!(result.set.pulled_bytes_month, 275_000_000_000);
    close(result.set.transfer_usd_month, 5.05);
    // The registry still stores the base once.
    close(result.set.storage_usd_month, 0.375);
}

#[test]
fn versions_and_warm_pulls() {
    // 1 deploy a day kept 3 months is 92 versions, capped at 10 tags; each older version
    // adds only the top layer (0.1 GB): 1.1 + 9 x 0.1 = 2.0 GB = 1 free + 1 x 0.5 = $0.50.
    let images = vec![image(
        "app",
        vec![
            layer("base", 1_000_000_000, 1_000_000_000, GZIP),
            layer("app", 100_000_000, 100_000_000, GZIP),
        ],
    )];
    let usage = Usage {
        pulls_per_month: Some(10.0),
        warm_cache_share: 0.5,
        ..Usage::default()
    };
    let result = run(&images, &test_pricing(), &usage);
    assert_eq!(result.assumptions.versions_stored, 10);
    assert_eq!(result.images[0].stored_bytes, 2_000_000_000);
    close(result.images[0].storage_usd_month, 0.5);
    // Half the pulls fetch everything (1.1 GB), half only the top layer (0.1 GB):
    // 10 x (0.5 x 1.1 + 0.5 x 0.1) = 6 GB, all same-region and free.
    assert_eq!(result.images[0].pulled_bytes_month, 6_000_000_000);
    close(result.images[0].transfer_usd_month, 0.0);

    // Derived pulls: 3 nodes x 2 deploys/day x 730/24 days = 182.5 pulls.
    let derived = Usage {
        deploys_per_day: 2.0,
        ..Usage::default()
    };
    close(derived.pulls_per_month(), 182.5);
}

#[test]
fn fixed_daily_fee_and_included_storage() {
    // Azure ACR Basic: $0.167/day = 0.167 x 730/24 = $5.0795833/month, 10 GiB included,
    // then $0.003/GiB/day. A 20 GiB image: 10 GiB x 0.003 x 30.416667 = $0.9125/month.
    let table = pricing::builtin().unwrap();
    let acr = table.get("azure-acr-basic").unwrap();
    let images = vec![image(
        "big",
        vec![layer("big", 20 * (1 << 30), 40 * (1 << 30), GZIP)],
    )];
    let usage = Usage {
        pulls_per_month: Some(0.0),
        tags_kept: 1,
        ..Usage::default()
    };
    let result = run(&images, acr, &usage);
    close(result.set.fixed_usd_month, 0.167 * 730.0 / 24.0);
    close(result.images[0].storage_usd_month, 0.9125);
    close(result.set.storage_usd_month, 0.9125);
    close(result.set.total_usd_month, 0.167 * 730.0 / 24.0 + 0.9125);
    // The fee is the registry's, not the image's.
    close(result.images[0].total_usd_month, 0.9125);

    // A 5 GiB image fits in the included 10 GiB: only the fee.
    let small = vec![image("small", vec![layer("s", 5 * (1 << 30), 0, GZIP)])];
    let result = run(&small, acr, &usage);
    close(result.set.storage_usd_month, 0.0);
    close(result.set.total_usd_month, 0.167 * 730.0 / 24.0);
}

#[test]
fn aws_bills_gib() {
    // ECR: $0.10 per GiB-month; exactly 3 GiB stored costs $0.30.
    let table = pricing::builtin().unwrap();
    let ecr = table.get("aws-ecr-private").unwrap();
    close(ecr.storage_usd_month(3.0 * 1_073_741_824.0), 0.30);
    // Internet tiers: 10240 GiB at $0.09, then $0.085: 11264 GiB = 921.6 + 87.04.
    close(
        ecr.transfer.internet.cost(11_264.0),
        10_240.0 * 0.09 + 1_024.0 * 0.085,
    );
}

#[test]
fn cold_start_parts_by_compression() {
    let profiles = test_profiles();
    let cold = profiles.get("test").unwrap();
    let layers = vec![
        layer("g", 60_000_000, 150_000_000, GZIP),
        layer("z", 20_000_000, 50_000_000, ZSTD),
        layer("t", 30_000_000, 30_000_000, TAR),
    ];
    let result = coldstart::cold_start(&layers, cold, false);
    // rtt: (4 + 2 x 3) x 0.1 = 1.0
    close(result.parts.rtt_s, 1.0);
    // download: max(110 MB / min(100, 3 x 20) MB/s = 1.833, largest 60 MB / 20 MB/s = 3.0)
    close(result.parts.download_s, 3.0);
    assert_eq!(result.download_bound, "largest layer");
    // unpack: 150/50 (gzip) + 50/100 (zstd) + 30/200 (tar) = 3.0 + 0.5 + 0.15 = 3.65
    close(result.parts.unpack_s, 3.65);
    close(result.parts.start_s, 1.0);
    close(result.total_s, 8.65);
    assert_eq!(result.kind, "model");

    // What-if zstd: the gzip layer unpacks at 100 MB/s: 1.5 + 0.5 + 0.15 = 2.15.
    let what_if = coldstart::cold_start(&layers, cold, true);
    close(what_if.parts.unpack_s, 2.15);
    close(what_if.total_s, 7.15);
    assert_eq!(what_if.kind, "what-if");
    assert!(what_if.basis.starts_with("estimate"));

    // Six 10 MB layers: 60 MB / 60 MB/s = 1.0 beats 10 MB / 20 MB/s = 0.5.
    let many: Vec<LayerSize> = (0..6)
        .map(|i| layer(&format!("l{i}"), 10_000_000, 20_000_000, GZIP))
        .collect();
    let result = coldstart::cold_start(&many, cold, false);
    close(result.parts.download_s, 1.0);
    assert_eq!(result.download_bound, "bandwidth");
    close(result.parts.rtt_s, 1.6);

    // Warm node: only the top (tar) layer: rtt (4 + 2) x 0.1 = 0.6; download
    // max(30/60, 30/20) = 1.5; unpack 30/200 = 0.15; start 1: 3.25.
    let warm = profiles.get("test-warm").unwrap();
    let result = coldstart::cold_start(&layers, warm, false);
    assert_eq!((result.layers_fetched, result.layers_cached), (1, 2));
    close(result.parts.rtt_s, 0.6);
    close(result.parts.download_s, 1.5);
    close(result.parts.unpack_s, 0.15);
    close(result.total_s, 3.25);
}

#[test]
fn estimate_reports_selected_profile_and_all_profiles() {
    let result = run(&two_images(), &test_pricing(), &simple_usage());
    let go = &result.images[0];
    assert_eq!(go.cold_start.profile, "test");
    // go-app: rtt (4 + 4) x 0.1 = 0.8; download max(1.5 GB / 60 MB/s = 25, 1 GB / 20 MB/s
    // = 50) = 50; unpack 3 GB / 50 MB/s = 60; start 1: 111.8.
    close(go.cold_start.total_s, 111.8);
    // zstd what-if: unpack 3 GB / 100 MB/s = 30: 81.8.
    close(go.cold_start_zstd.total_s, 81.8);
    let names: Vec<&str> = go
        .cold_start_profiles
        .iter()
        .map(|p| p.profile.as_str())
        .collect();
    assert_eq!(names, ["test", "test-warm"]);
    // Warm: only the 0.5 GB top layer: 0.6 + 25 + 20 + 1 = 46.6.
    close(go.cold_start_profiles[1].total_s, 46.6);
}

#[test]
fn custom_pricing_file_changes_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prices.toml");
    std::fs::write(&file, TEST_PRICING).unwrap();
    let builtin = pricing::load(None).unwrap();
    let custom = pricing::load(Some(&file)).unwrap();
    // The file's first entry becomes the default; built-ins stay available.
    assert_eq!(builtin.select(None).unwrap().id, "aws-ecr-private");
    assert_eq!(custom.select(None).unwrap().id, "test");
    assert!(custom.get("ghcr").is_some());
    let usage = simple_usage();
    let with_builtin = run(&two_images(), builtin.select(None).unwrap(), &usage);
    let with_custom = run(&two_images(), custom.select(None).unwrap(), &usage);
    // ECR: 1.75e9 B / 2^30 = 1.629832 GiB x $0.10.
    close(
        with_builtin.set.storage_usd_month,
        (1.75e9 / 1_073_741_824.0 * 0.10 * 1e6_f64).round() / 1e6,
    );
    close(with_custom.set.storage_usd_month, 0.375);
    assert_eq!(with_custom.pricing.id, "test");
    assert_eq!(with_custom.pricing.source, "https://example.test/prices");

    // A file entry with a built-in id replaces it.
    let cheaper = TEST_PRICING.replace("id = \"test\"", "id = \"aws-ecr-private\"");
    std::fs::write(&file, cheaper).unwrap();
    let replaced = pricing::load(Some(&file)).unwrap();
    let entry = replaced.select(Some("aws-ecr-private")).unwrap();
    assert_eq!(entry.source, "https://example.test/prices");
    assert_eq!(entry.origin, file.display().to_string());
}

#[test]
fn every_builtin_entry_parses_with_source_and_effective() {
    let entries = cost::list_pricing().unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
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
    for entry in &entries {
        assert!(entry.source.starts_with("https://"), "{}", entry.id);
        assert_eq!(entry.effective.len(), 10, "{}", entry.id);
        assert!(!entry.storage.tiers.is_empty(), "{}", entry.id);
    }
    // Where FACTS.md says sources disagree, the entry says so.
    for id in [
        "aws-ecr-private",
        "gcp-artifact-registry",
        "azure-acr-standard",
        "azure-acr-premium",
    ] {
        let note = entries
            .iter()
            .find(|e| e.id == id)
            .and_then(|e| e.note.as_deref())
            .unwrap_or_default();
        assert!(note.contains("verify"), "{id}: {note}");
    }
    let acr: Vec<f64> = ["azure-acr-basic", "azure-acr-standard", "azure-acr-premium"]
        .iter()
        .map(|id| entries.iter().find(|e| e.id == *id).unwrap())
        .map(|e| e.fixed.as_ref().unwrap().usd)
        .collect();
    assert_eq!(acr, [0.167, 0.667, 1.667]);
    let profiles = coldstart::builtin().unwrap();
    for name in ["k8s-cold", "fargate", "warm-base"] {
        assert!(profiles.get(name).is_some(), "{name}");
    }
}

fn pricing_error(text: &str) -> String {
    match pricing::parse(text, "bad.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(error) => error.to_string(),
    }
}

fn assert_names(error: &str, line: usize, key: &str) {
    eprintln!("{error}");
    assert!(
        error.starts_with(&format!("bad.toml:{line}:")),
        "expected line {line}: {error}"
    );
    assert!(error.contains(key), "expected key {key}: {error}");
    assert!(!error.contains('\n'), "one line: {error}");
}

#[test]
fn malformed_pricing_files_name_key_and_line() {
    // Line numbers count from the leading newline of TEST_PRICING (line 1 is empty).
    let error =
        pricing_error(&TEST_PRICING.replace("source = \"https://example.test/prices\"\n", ""));
    assert!(error.contains("missing field `source`"), "{error}");
    assert_names(&error, 2, "pricing");

    let error = pricing_error(&TEST_PRICING.replace("usd = 0.02", "usd = \"cheap\""));
    assert_names(&error, 25, "pricing.transfer.cross_region.tiers.usd");

    let error = pricing_error(&TEST_PRICING.replace("unit = \"GB-Mo\"", "unit = \"GB-Week\""));
    assert_names(&error, 12, "pricing.storage.unit");
    assert!(error.contains("GB-Week"), "{error}");

    let error = pricing_error(&TEST_PRICING.replace("{ from = 3, usd", "{ from = 4, usd"));
    assert_names(&error, 16, "pricing[test].storage.tiers[2].from");
    assert!(error.contains("gap"), "{error}");

    let error = pricing_error(&TEST_PRICING.replace(
        "{ from = 3, usd = 0.25 }",
        "{ from = 3, to = 9, usd = 0.25 }",
    ));
    assert_names(&error, 16, "pricing[test].storage.tiers[2].to");

    let error = pricing_error(&TEST_PRICING.replace("usd = 0.5", "usd = -0.5"));
    assert_names(&error, 15, "pricing[test].storage.tiers[1].usd");

    let error = pricing_error(&TEST_PRICING.replace("2026-01-01", "January 2026"));
    assert_names(&error, 8, "pricing[test].effective");

    let error = pricing_error(&TEST_PRICING.replace("region = \"here\"", "regoin = \"here\""));
    assert_names(&error, 6, "regoin");

    let error = pricing_error(
        &TEST_PRICING.replace("[pricing.transfer.internet]", "[pricing.transfer.interne]"),
    );
    assert!(error.contains("interne"), "{error}");

    let error = pricing_error("[[pricing]]\nid = \"x\"\nname = [\n");
    assert_names(&error, 3, "");

    let error = pricing_error("# nothing here\n");
    assert_eq!(error, "bad.toml:1: `pricing`: no [[pricing]] entries");

    let twice = format!("{TEST_PRICING}\n{TEST_PRICING}");
    let error = pricing_error(&twice);
    assert_names(&error, 33, "pricing[test].id");
    assert!(error.contains("duplicate"), "{error}");
}

#[test]
fn unreadable_file_and_unknown_names_are_clear() {
    let missing = std::path::Path::new("/nonexistent/prices.toml");
    let error = pricing::load(Some(missing)).unwrap_err();
    assert!(matches!(error, CostError::Io { .. }));
    assert!(error.to_string().starts_with("/nonexistent/prices.toml: "));
    assert!(error.is_bad_input());
    let table = pricing::builtin().unwrap();
    let error = table.select(Some("nope")).unwrap_err().to_string();
    assert!(error.contains("aws-ecr-private"), "{error}");
    let error = coldstart::builtin()
        .unwrap()
        .select(Some("nope"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("k8s-cold"), "{error}");
}

#[test]
fn one_file_holds_pricing_usage_and_profiles() {
    let combined = format!(
        "{TEST_PRICING}\n[usage]\npulls_per_month = 100\ninternet_share = 0.2\n\
         cross_region_share = 0.1\nwarm_cache_share = 0\ntags_kept = 1\n{TEST_PROFILE}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ballast-cost.toml");
    std::fs::write(&file, combined).unwrap();
    let table = pricing::load(Some(&file)).unwrap();
    let usage = usage::load(Some(&file)).unwrap();
    let profiles = coldstart::load(Some(&file)).unwrap();
    assert_eq!(usage, simple_usage());
    assert_eq!(profiles.select(None).unwrap().name, "test");
    assert!(profiles.get("fargate").is_some());
    let result = cost::estimate(
        &two_images(),
        table.select(None).unwrap(),
        &usage,
        &profiles,
        profiles.select(None).unwrap(),
    )
    .unwrap();
    close(result.set.total_usd_month, 3.225);
}

#[test]
fn json_keeps_the_stable_fields() {
    let result = run(&two_images(), &test_pricing(), &simple_usage());
    let json: serde_json::Value = serde_json::from_str(&result.to_json()).unwrap();
    assert_eq!(json["schema_version"], ballast::image::SCHEMA_VERSION);
    assert_eq!(json["pricing"]["id"], "test");
    assert_eq!(json["pricing"]["source"], "https://example.test/prices");
    assert_eq!(json["pricing"]["effective"], "2026-01-01");
    let image = &json["images"][0];
    assert_eq!(image["reference"], "go-app");
    assert_eq!(image["storage_usd_month"], 0.25);
    assert_eq!(image["transfer_usd_month"], 2.3);
    assert_eq!(image["cold_start"]["total_s"], 111.8);
    for part in ["rtt_s", "download_s", "unpack_s", "start_s"] {
        assert!(image["cold_start"]["parts"][part].is_f64(), "{part}");
    }
    assert_eq!(json["set"]["unique_compressed_bytes"], 1_750_000_000u64);
    assert_eq!(json["set"]["storage_usd_month"], 0.375);
}

#[test]
fn renderings_list_the_assumptions() {
    let result = run(&two_images(), &test_pricing(), &simple_usage());
    for out in [result.to_table(), result.to_markdown().replace('\\', "")] {
        assert!(out.contains("https://example.test/prices"), "{out}");
        assert!(
            out.contains("0-1 GB $0, 1-3 GB $0.5, 3+ GB $0.25 per GB-Mo"),
            "{out}"
        );
        assert!(out.contains("pulls_per_month 100"), "{out}");
        assert!(
            out.contains("unpack_gzip_bytes_per_s = 50000000 (test)"),
            "{out}"
        );
        assert!(out.contains("go-app: stored 1500000000 B"), "{out}");
        assert!(out.contains("go-app"), "{out}");
        assert!(out.contains("$2.3000"), "{out}");
        assert!(out.contains("what-if"), "{out}");
    }
    let md = result.to_markdown();
    assert!(md.contains("| `go-app` |"), "{md}");
    let list = ballast::report::cost::PricingList::new(cost::list_pricing().unwrap());
    let table = list.to_table();
    assert!(table.contains("azure-acr-basic"), "{table}");
    assert!(table.contains("$0.167 1/Day"), "{table}");
    assert!(list.to_markdown().contains("`docker-hub`"));
    let json: serde_json::Value = serde_json::from_str(&list.to_json()).unwrap();
    assert_eq!(json["pricing"][0]["id"], "aws-ecr-private");
}

#[test]
fn docker_hub_pull_limits_warn() {
    let table = pricing::builtin().unwrap();
    let hub = table.get("docker-hub").unwrap();
    let usage = Usage {
        nodes: 20,
        ..Usage::default()
    };
    let result = run(&two_images(), hub, &usage);
    assert!(
        result.warnings.iter().any(|w| w.contains("anonymous")),
        "{:?}",
        result.warnings
    );
    close(result.set.total_usd_month, 0.0);
}

#[test]
fn calibrated_profile_is_read_back_by_the_cost_engine() {
    let base = coldstart::builtin().unwrap();
    let measured = calibrate::Measurements {
        rtt_s: 0.002,
        connection_bytes_per_s: 200e6,
        node_bandwidth_bytes_per_s: Some(400e6),
        gzip_bytes_per_s: 300e6,
        zstd_bytes_per_s: 900e6,
        tar_bytes_per_s: None,
        against: "localhost:5000/sample:1".into(),
        measured_at: "2026-03-01".into(),
    };
    let profile = calibrate::calibrated_profile("local", &measured, base.get("k8s-cold").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("local.toml");
    calibrate::write_profiles(&file, &[profile]).unwrap();
    let profiles = coldstart::load(Some(&file)).unwrap();
    let local = profiles.select(None).unwrap();
    assert_eq!(local.name, "local");
    assert_eq!(local.unpack_gzip_bytes_per_s.value, 300e6);
    assert!(local
        .rtt_s
        .source
        .contains("localhost:5000/sample:1 on 2026-03-01"));
    // One 100 MB / 300 MB gzip layer: rtt 6 x 0.002 = 0.012; download
    // max(100/400, 100/200) = 0.5; unpack 300/300 = 1; start 0.5 (from k8s-cold).
    let one = [layer("x", 100_000_000, 300_000_000, GZIP)];
    let result = coldstart::cold_start(&one, local, false);
    close(result.total_s, 0.012 + 0.5 + 1.0 + 0.5);
}
