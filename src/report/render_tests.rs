//! Every report in every format, rendered from in-memory models
//! (`crate::image::fixture`) and kept as insta snapshots: a change to a renderer
//! shows up as a diff of what a person reads. Nothing here varies from run to run
//! (no timings, no paths of this machine), so nothing needs redacting.

use super::advise::AdviseReport;
use super::cost::PricingList;
use super::diff::DiffReport;
use super::gate::GateReport;
use super::inspect::InspectReport;
use super::{render, Format, Render};
use crate::advice::{
    Advice, Confidence, LayerMeasurement, Mention, Projection, Suggestion, SuggestionKind,
};
use crate::binary::attribution::{Source, Unit};
use crate::binary::{Attribution, AttributionItem, BinaryReport, ElfKind, Language, Linkage};
use crate::compare::{self, ImageBundle};
use crate::cost::{self, CostEstimate};
use crate::gate::{self, Baseline, Budgets, Growth, Measured};
use crate::image::fixture::{analysis, debian_base, elf, file, layer, program, whiteout};
use crate::image::ImageAnalysis;
use crate::layer::Compression;

const FORMATS: [(Format, &str); 3] = [
    (Format::Table, "table"),
    (Format::Json, "json"),
    (Format::Markdown, "markdown"),
];

fn go_image() -> ImageAnalysis {
    analysis(
        "registry.example/svc-go:1.4",
        vec![
            debian_base(),
            layer(
                "go-build",
                "RUN go build -o /srv/svc . && cp -r /root/.cache/go-build /tmp/cache",
                vec![
                    elf("srv/svc", 14_000_000, ElfKind::Executable),
                    file("tmp/cache/0a/0a1b-d", 3_000_000),
                ],
                vec![go_attribution(program(
                    "srv/svc",
                    14_000_000,
                    Language::Go,
                    Linkage::Static,
                    (3_500_000, 900_000),
                ))],
            ),
            layer(
                "go-clean",
                "RUN rm -rf /tmp/cache",
                vec![whiteout("tmp/cache")],
                vec![],
            ),
        ],
        &["/srv/svc"],
    )
}

/// Go code attribution as `.gopclntab` gives it: packages of the standard library,
/// of the main module and of a dependency, more than the table shows, and the
/// unattributed rest.
fn go_attribution(mut report: BinaryReport) -> BinaryReport {
    let item =
        |name: &str, module: Option<(&str, &str)>, bytes: u64, functions: u64| AttributionItem {
            name: name.into(),
            module: module.map(|m| m.0.to_string()),
            version: module.map(|m| m.1.to_string()),
            bytes: Some(bytes),
            functions: Some(functions),
            std: module.is_none() && !name.starts_with('[') && name != "unattributed",
            maybe_std: false,
        };
    let dep = Some(("github.com/lib/pq", "v1.10.9"));
    let main = Some(("registry.example/svc", "(devel)"));
    let items = vec![
        item("runtime", None, 1_200_000, 2_100),
        item("net/http", None, 900_000, 1_500),
        item("github.com/lib/pq", dep, 400_000, 700),
        item("crypto/tls", None, 380_000, 640),
        item("net", None, 300_000, 520),
        item("unattributed", None, 160_000, 0),
        item("main", main, 120_000, 90),
        item("reflect", None, 110_000, 300),
        item("fmt", None, 80_000, 150),
        item("[C]", None, 40_000, 60),
        item("strconv", None, 30_000, 80),
        item("github.com/lib/pq/oid", dep, 5_000, 4),
    ];
    report.attribution = Some(Attribution {
        unit: Unit::Package,
        source: Source::Pclntab,
        code_bytes: 3_725_000,
        attributed_bytes: 3_565_000,
        functions: 6_144,
        padding_bytes: Some(120_000),
        pclntab_layout: Some("go1.20"),
        items,
        error: None,
    });
    report
}

/// Rust code attribution as the symbol table gives it: std and core, crates.io
/// crates with cargo-auditable's versions, the program's own crate and C.
fn rust_attribution(mut report: BinaryReport) -> BinaryReport {
    let item = |name: &str, version: Option<&str>, bytes: u64, std: bool| AttributionItem {
        name: name.into(),
        module: None,
        version: version.map(str::to_string),
        bytes: Some(bytes),
        functions: Some(bytes / 400),
        std,
        maybe_std: false,
    };
    let items = vec![
        item("std", None, 700_000, true),
        item("tokio", Some("1.38.0"), 520_000, false),
        item("core", None, 410_000, true),
        item("hyper", Some("1.3.1"), 300_000, false),
        item("svc", Some("0.1.0"), 150_000, false),
        item("alloc", None, 90_000, true),
        item("[C]", None, 60_000, false),
        item("unattributed", None, 20_000, false),
    ];
    report.attribution = Some(Attribution {
        unit: Unit::Crate,
        source: Source::Symtab,
        code_bytes: 2_250_000,
        attributed_bytes: 2_230_000,
        functions: 5_575,
        padding_bytes: None,
        pclntab_layout: None,
        items,
        error: None,
    });
    report
}

/// The Go service a release later: `github.com/lib/pq` upgraded and grown, cgo's
/// runtime support linked in, `fmt` gone, `net/http` a little smaller.
fn go_image_upgraded() -> ImageAnalysis {
    let mut image = go_image();
    for layer in &mut image.layers {
        for report in &mut std::sync::Arc::make_mut(layer).binaries {
            if report.path != "srv/svc" {
                continue;
            }
            report.size += 460_000;
            let Some(attribution) = report.attribution.as_mut() else {
                continue;
            };
            attribution.items.retain(|i| i.name != "fmt");
            for item in &mut attribution.items {
                match item.name.as_str() {
                    "github.com/lib/pq" => {
                        item.version = Some("v1.10.11".into());
                        item.bytes = Some(900_000);
                    }
                    "github.com/lib/pq/oid" => item.version = Some("v1.10.11".into()),
                    "net/http" => item.bytes = Some(880_000),
                    _ => {}
                }
            }
            attribution.items.push(AttributionItem {
                name: "runtime/cgo".into(),
                module: None,
                version: None,
                bytes: Some(60_000),
                functions: Some(40),
                std: true,
                maybe_std: false,
            });
            attribution.code_bytes += 460_000;
        }
    }
    image
}

fn rust_image() -> ImageAnalysis {
    analysis(
        "registry.example/svc-rs:1.4",
        vec![
            debian_base(),
            layer(
                "rust-build",
                "COPY target/release/svc /srv/svc",
                vec![elf("srv/svc", 6_000_000, ElfKind::Executable)],
                vec![rust_attribution(program(
                    "srv/svc",
                    6_000_000,
                    Language::Rust,
                    Linkage::Dynamic,
                    (0, 450_000),
                ))],
            ),
        ],
        &["/srv/svc"],
    )
}

/// Advice as `advise` would give it for `image`, its figures written out.
fn advice(image: &ImageAnalysis) -> Advice {
    let compressed = image.compressed_bytes();
    let suggestion = |id: SuggestionKind, saved: u64, confidence: Confidence| Suggestion {
        id,
        title: format!("{} (title)", id.label()),
        paths: vec!["/srv/svc".into()],
        layers: vec![1],
        saved_bytes: saved,
        saved_compressed_bytes: saved / 2,
        confidence,
        saved_bytes_confidence: Confidence::Exact,
        saved_compressed_confidence: confidence,
        evidence: vec![format!("{} bytes, measured on layer 1", saved)],
        fix: "RUN <the fix>\n# second line".into(),
        side_effects: vec!["one side effect".into()],
        source: (confidence == Confidence::Estimate).then(|| "a published range".into()),
        overlaps_with: vec![],
        base_added: None,
        run_dependent: vec![],
    };
    Advice {
        suggestions: vec![
            suggestion(SuggestionKind::GoLdflags, 4_400_000, Confidence::Exact),
            suggestion(
                SuggestionKind::DropPackageCaches,
                8_700_000,
                Confidence::Measured,
            ),
            suggestion(
                SuggestionKind::RustProfileSize,
                600_000,
                Confidence::Estimate,
            ),
        ],
        projected: Projection {
            compressed_bytes: compressed.saturating_sub(6_550_000),
            uncompressed_bytes: image.uncompressed_bytes().saturating_sub(13_100_000),
            confidence: Confidence::Measured,
            base: None,
            estimate_low_compressed_bytes: compressed.saturating_sub(6_850_000),
            estimate_high_compressed_bytes: compressed.saturating_sub(6_700_000),
        },
        measurements: vec![LayerMeasurement {
            layer: 1,
            digest: image.layers[1].descriptor.digest.to_string(),
            compression: Compression::Gzip,
            compressed_bytes: image.layers[1].compressed_bytes,
            method: crate::advice::rebuild::Method::Full,
            rebuilt_compressed_bytes: Some(image.layers[1].compressed_bytes / 2),
            recompressed_stretches: None,
            recompressed_bytes: None,
            reproducible: true,
            gzip_level: None,
        }],
        not_ranked: vec![Mention {
            id: SuggestionKind::Upx,
            title: "Pack executables with UPX".into(),
            paths: vec!["/srv/svc".into()],
            why_not_ranked: "paid for at every start".into(),
            evidence: vec!["one line".into()],
            side_effects: vec!["start-up time".into()],
            source: "a source".into(),
        }],
    }
}

fn estimate(images: &[&ImageAnalysis]) -> CostEstimate {
    let pricing = cost::pricing::builtin().expect("built-in pricing");
    let usage = cost::usage::load(None).expect("default usage");
    let profiles = cost::coldstart::builtin().expect("built-in profiles");
    let sizes: Vec<_> = images.iter().map(|i| i.sizes()).collect();
    cost::estimate(
        &sizes,
        pricing.select(None).expect("default entry"),
        &usage,
        &profiles,
        profiles.select(None).expect("default profile"),
    )
    .expect("an estimate")
}

fn snapshot_all(name: &str, report: &impl Render) {
    for (format, suffix) in FORMATS {
        insta::assert_snapshot!(format!("{name}_{suffix}"), render(report, format));
    }
}

#[test]
fn inspect_report() {
    snapshot_all("inspect", &InspectReport::build(&go_image(), 5));
}

#[test]
fn advise_report() {
    let image = go_image();
    let advice = advice(&image);
    snapshot_all("advise", &AdviseReport::build(&image, advice));
}

#[test]
fn compare_report_and_document() {
    let (go, rust) = (go_image(), rust_image());
    let estimate = estimate(&[&go, &rust]);
    let bundles = vec![
        ImageBundle {
            advice: Some(advice(&go)),
            analysis: go,
        },
        ImageBundle {
            advice: Some(advice(&rust)),
            analysis: rust,
        },
    ];
    let comparison = compare::compare(&bundles, Some(&estimate));
    snapshot_all("compare", &comparison);
    insta::assert_snapshot!(
        "document_markdown",
        super::document::render(&bundles, &comparison, Some(&estimate))
    );
}

#[test]
fn cost_report_and_pricing_list() {
    let (go, rust) = (go_image(), rust_image());
    snapshot_all("cost", &estimate(&[&go, &rust]));
    let pricing = cost::pricing::builtin().expect("built-in pricing");
    snapshot_all("pricing_list", &PricingList::new(pricing.entries.clone()));
}

#[test]
fn diff_report() {
    let diff = crate::diff::diff(&go_image(), &rust_image());
    snapshot_all("diff", &DiffReport::new(diff, 10));
    // Past the top 3 the rest of the code changes are summed.
    let upgrade = crate::diff::diff(&go_image(), &go_image_upgraded());
    snapshot_all("diff_code", &DiffReport::new(upgrade, 3));
}

#[test]
fn gate_report_in_every_format() {
    let (go, rust) = (go_image(), rust_image());
    let budgets = Budgets {
        max_size: Some(10_000_000),
        max_growth: vec![Growth::Percent(5.0)],
        max_binary_growth: vec![Growth::Percent(10.0)],
        min_efficiency: Some(0.9),
        no_unstripped: true,
        ..Budgets::default()
    };
    let checks = gate::evaluate(
        &budgets,
        &Measured::of(&rust),
        Some(&Baseline::of_image(&go, None)),
    );
    let verdict = GateReport::new(rust.info(), Some(Baseline::of_image(&go, None)), checks);
    snapshot_all("gate", &verdict);
    insta::assert_snapshot!("gate_github", verdict.to_github());
}
