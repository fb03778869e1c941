//! `ballast advise` on real images: each expected suggestion appears with the right
//! confidence, its savings hold when the change is actually made, and an optimised
//! image gets no false suggestions.

use ballast::layer::Compression;
use serde_json::Value;
use testkit::samples::{self, GoBuild, RustBuild};
use testkit::{ImageSpec, Item, LayerSpec};

use crate::common::*;

fn advise_json(home: &std::path::Path, image: &str) -> Value {
    json_of(home, &["advise", image])
}

/// The two ways a layer's savings are measured: recompressed whole (the default for
/// layers this small) and only around the changed files (the default for large
/// layers, forced here), each held to the same tolerance against the real rebuild.
const METHODS: [(&str, &[&str]); 2] = [("full", &[]), ("segments", &["--full-rebuild-size", "0"])];

fn advise_json_by(home: &std::path::Path, image: &str, flags: &[&str]) -> Value {
    let mut args = vec!["advise", image];
    args.extend_from_slice(flags);
    let report = json_of(home, &args);
    let segments = flags.contains(&"--full-rebuild-size");
    for measurement in report["measurements"].as_array().expect("measurements") {
        if measurement["compression"] == "gzip" && segments {
            assert_eq!(measurement["method"], "segments", "{measurement:#}");
        }
    }
    report
}

fn suggestion<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["suggestions"]
        .as_array()
        .expect("suggestions")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no {id} suggestion in {report:#}"))
}

/// A compressed saving is `exact` when every layer it touches re-gzips to its stored
/// size here (the same compressor built it), `measured` otherwise.
fn expected_confidence(report: &Value, suggestion: &Value) -> &'static str {
    let layers: Vec<u64> = suggestion["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(u)
        .collect();
    let reproducible = report["measurements"]
        .as_array()
        .expect("measurements")
        .iter()
        .filter(|m| layers.contains(&u(&m["layer"])))
        .all(|m| m["reproducible"] == true);
    if reproducible {
        "exact"
    } else {
        "measured"
    }
}

fn u(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}

fn within(actual: u64, expected: u64, percent: f64) -> bool {
    (actual as f64 - expected as f64).abs() <= expected as f64 * percent / 100.0
}

fn tar_len(spec: &LayerSpec) -> u64 {
    testkit::tar_bytes(&spec.items).expect("tar").len() as u64
}

#[test]
fn layer_waste_savings_hold_when_the_change_is_made() {
    let home = tempfile::tempdir().expect("home");
    let samples = samples();
    let spec = samples::service_image(
        &samples.go(GoBuild::Default).expect("go"),
        "usr/local/bin/hello",
        true,
    )
    .expect("spec");
    let image = spec.build().expect("build");
    let reference = push(registry(), "advise/hello-go:1.0", &[&image]);
    for (method, flags) in METHODS {
        eprintln!("measuring by {method}");
        let report = advise_json_by(home.path(), &reference, flags);
        assert_eq!(report["schema_version"], 1);

        // UPX is named with its costs, never ranked among the suggestions.
        let upx = report["not_ranked"]
            .as_array()
            .expect("not_ranked")
            .iter()
            .find(|m| m["id"] == "upx")
            .unwrap_or_else(|| panic!("a 6 MB Go binary earns a UPX mention: {report:#}"));
        assert_eq!(upx["paths"][0], "/usr/local/bin/hello");
        assert!(upx["side_effects"].to_string().contains("start-up"));
        assert!(upx["source"]
            .as_str()
            .expect("source")
            .contains("beats#1822"));
        assert!(report["suggestions"]
            .as_array()
            .expect("list")
            .iter()
            .all(|s| s["id"] != "upx"));

        // The change, made for real: no apt lists, no build log (and no rm layer needed).
        let mut fixed = spec.clone();
        fixed.layers[1].items.clear();
        fixed.layers[2]
            .items
            .retain(|item| !matches!(item, Item::File { path, .. } if path == "tmp/build.log"));
        // With nothing left to hide, the whiteout goes too.
        fixed.layers[3].items.clear();
        let fixed_image = fixed.build().expect("build fixed");
        // The projection applies every exact and measured change, the strip included.
        let go_binary = samples.go(GoBuild::Default).expect("go");
        let projected = with_binary(
            &fixed,
            "usr/local/bin/hello",
            &real_strip(&go_binary, "--strip-all"),
        );
        let projected_image = projected.build().expect("build projected");

        let caches = suggestion(&report, "drop-package-caches");
        assert_eq!(caches["saved_bytes_confidence"], "exact");
        assert_eq!(caches["confidence"], expected_confidence(&report, caches));
        assert_eq!(
            u(&caches["saved_bytes"]),
            tar_len(&spec.layers[1]) - tar_len(&fixed.layers[1])
        );
        let real_compressed =
            (image.layers[1].blob.len() - fixed_image.layers[1].blob.len()) as u64;
        assert!(
            within(u(&caches["saved_compressed_bytes"]), real_compressed, 1.0),
            "{} vs {real_compressed}",
            caches["saved_compressed_bytes"]
        );
        assert!(caches["fix"]
            .as_str()
            .expect("fix")
            .contains("rm -rf /var/lib/apt/lists/*"));

        let deleted = suggestion(&report, "drop-deleted-files");
        assert_eq!(deleted["paths"][0], "/tmp/build.log");
        assert_eq!(
            u(&deleted["saved_bytes"]),
            tar_len(&spec.layers[2]) - tar_len(&fixed.layers[2]) + tar_len(&spec.layers[3])
                - tar_len(&fixed.layers[3])
        );
        let real_compressed = (image.layers[2].blob.len() - fixed_image.layers[2].blob.len()
            + image.layers[3].blob.len()
            - fixed_image.layers[3].blob.len()) as u64;
        assert!(
            within(u(&deleted["saved_compressed_bytes"]), real_compressed, 1.0),
            "{} vs {real_compressed}",
            deleted["saved_compressed_bytes"]
        );

        // The projection is the fixed image (its now-empty layers included).
        let projected_uncompressed: u64 = projected.layers.iter().map(tar_len).sum();
        assert_eq!(
            u(&report["projected"]["uncompressed_bytes"]),
            projected_uncompressed
        );
        assert!(within(
            u(&report["projected"]["compressed_bytes"]),
            projected_image.compressed_bytes(),
            1.0
        ));

        // zstd: measured by recompressing every gzip layer; check against an independent recompression.
        let zstd = suggestion(&report, "zstd-layers");
        assert_eq!(zstd["confidence"], "measured");
        let mut zstd_spec = spec.clone();
        for layer in &mut zstd_spec.layers {
            layer.compression = Compression::Zstd;
        }
        let zstd_image = zstd_spec.build().expect("zstd build");
        let real_saving = image.compressed_bytes() - zstd_image.compressed_bytes();
        assert!(
            within(u(&zstd["saved_compressed_bytes"]), real_saving, 1.0),
            "{} vs {real_saving}",
            zstd["saved_compressed_bytes"]
        );

        // Ranked by compressed bytes saved.
        let saved: Vec<u64> = report["suggestions"]
            .as_array()
            .expect("list")
            .iter()
            .map(|s| u(&s["saved_compressed_bytes"]))
            .collect();
        assert!(saved.windows(2).all(|w| w[0] >= w[1]), "{saved:?}");
    }
}

#[test]
fn toolchain_and_overwrites_are_flagged() {
    let home = tempfile::tempdir().expect("home");
    let header: Vec<u8> = (0..40_000u32)
        .flat_map(|i| format!("#define SYMBOL_{i} {i}\n").into_bytes())
        .collect();
    let image = ImageSpec::new(vec![
        LayerSpec::new(
            "ADD base",
            vec![Item::file("etc/app.conf", vec![b'a'; 50_000])],
        ),
        LayerSpec::new(
            "RUN apt-get install -y gcc libc6-dev",
            vec![
                Item::file("usr/include/generated.h", header),
                Item::executable("usr/bin/gcc-12", vec![0x90; 30_000]),
            ],
        ),
        LayerSpec::new(
            "COPY app.conf /etc/app.conf",
            vec![Item::file("etc/app.conf", vec![b'b'; 50_000])],
        ),
    ])
    .build()
    .expect("build");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let report = advise_json(home.path(), &format!("oci:{}:t", dir.path().display()));
    let toolchain = suggestion(&report, "multi-stage-toolchain");
    assert!(toolchain["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .any(|p| p == "/usr/include/generated.h"));
    assert!(toolchain["fix"]
        .as_str()
        .expect("fix")
        .contains("COPY --from=build"));
    assert!(
        report["suggestions"]
            .as_array()
            .expect("list")
            .iter()
            .all(|s| s["id"] != "squash-layers"),
        "one rewriting layer is no reason to flatten"
    );
    let overwritten = suggestion(&report, "drop-overwritten-files");
    assert_eq!(overwritten["paths"][0], "/etc/app.conf");
    assert!(u(&overwritten["saved_bytes"]) >= 50_000);
}

/// A file as the real binutils `strip` leaves it.
fn real_strip(binary: &std::path::Path, flag: &str) -> Vec<u8> {
    let out = tempfile::NamedTempFile::new().expect("temp");
    let status = std::process::Command::new("strip")
        .arg(flag)
        .arg("-o")
        .arg(out.path())
        .arg(binary)
        .status()
        .expect("run strip");
    assert!(status.success());
    std::fs::read(out.path()).expect("read stripped")
}

fn with_binary(spec: &ImageSpec, install_path: &str, data: &[u8]) -> ImageSpec {
    let mut spec = spec.clone();
    for layer in &mut spec.layers {
        for item in &mut layer.items {
            if let Item::File {
                path,
                data: contents,
                ..
            } = item
            {
                if path == install_path {
                    *contents = data.to_vec();
                }
            }
        }
    }
    spec
}

#[test]
fn strip_and_base_image_savings_hold_against_real_strip() {
    let home = tempfile::tempdir().expect("home");
    let samples = samples();
    for (binary, strip_id, base_id) in [
        (
            samples.go(GoBuild::Default).expect("go"),
            "go-ldflags-s-w",
            "distroless-base",
        ),
        (
            samples.rust(RustBuild::DebugInfo).expect("rust"),
            "rust-strip",
            "distroless-cc",
        ),
    ] {
        let spec = samples::service_image(&binary, "usr/local/bin/hello", false).expect("spec");
        let image = spec.build().expect("build");
        let dir = tempfile::tempdir().expect("dir");
        testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
        for (method, flags) in METHODS {
            eprintln!("{strip_id}: measuring by {method}");
            let report = advise_json_by(
                home.path(),
                &format!("oci:{}:t", dir.path().display()),
                flags,
            );

            // Made for real: the binary as binutils strip --strip-all leaves it.
            let stripped = with_binary(
                &spec,
                "usr/local/bin/hello",
                &real_strip(&binary, "--strip-all"),
            );
            let stripped_image = stripped.build().expect("build stripped");
            let strip = suggestion(&report, strip_id);
            assert_eq!(strip["saved_bytes_confidence"], "exact");
            assert_eq!(
                u(&strip["saved_bytes"]),
                tar_len(&spec.layers[1]) - tar_len(&stripped.layers[1]),
                "{strip_id}"
            );
            let real = (image.layers[1].blob.len() - stripped_image.layers[1].blob.len()) as u64;
            assert!(
                within(u(&strip["saved_compressed_bytes"]), real, 1.0),
                "{strip_id}: {} vs {real}",
                strip["saved_compressed_bytes"]
            );

            // The image's whole base is a few MB of this machine's libraries: moving
            // it to distroless, whose published size is larger, saves nothing net.
            assert!(
                !report["suggestions"].to_string().contains(base_id),
                "{base_id} suggested for a base smaller than distroless"
            );
        }
    }
}

/// Total stored and unpacked bytes of an image's layers.
fn image_sizes(image: &testkit::BuiltImage, spec: &ImageSpec) -> (u64, u64) {
    (
        image.layers.iter().map(|l| l.blob.len() as u64).sum(),
        spec.layers.iter().map(tar_len).sum(),
    )
}

#[test]
fn base_change_savings_are_net_of_the_base_given() {
    let home = tempfile::tempdir().expect("home");
    let samples = samples();
    for (binary, strip_id, base_id) in [
        (
            samples.go(GoBuild::Default).expect("go"),
            "go-ldflags-s-w",
            "distroless-base",
        ),
        (
            samples.rust(RustBuild::DebugInfo).expect("rust"),
            "rust-strip",
            "distroless-cc",
        ),
    ] {
        let spec = samples::service_image(&binary, "usr/local/bin/hello", true).expect("spec");
        let image = spec.build().expect("build");
        let base_spec = ImageSpec::new(vec![samples::distroless_like_base()]);
        let base = base_spec.build().expect("base");
        let dir = tempfile::tempdir().expect("dir");
        testkit::write_oci_layout(dir.path(), &[(&image, Some("t")), (&base, Some("base"))])
            .expect("layout");
        let image_ref = format!("oci:{}:t", dir.path().display());
        let base_ref = format!("oci:{}:base", dir.path().display());

        // Made for real: what the suggested FROM line builds (the base, the binary
        // copied onto it), and the same with the binary stripped as suggested.
        let on_base = |data: Vec<u8>| {
            let mut spec = base_spec.clone();
            spec.layers.push(LayerSpec::new(
                "COPY --from=build /usr/local/bin/hello /usr/local/bin/hello",
                vec![Item::executable("usr/local/bin/hello", data)],
            ));
            let built = spec.build().expect("after");
            image_sizes(&built, &spec)
        };
        let (now_compressed, now_uncompressed) = image_sizes(&image, &spec);
        let (after_compressed, after_uncompressed) =
            on_base(std::fs::read(&binary).expect("binary"));
        let (stripped_compressed, stripped_uncompressed) =
            on_base(real_strip(&binary, "--strip-all"));

        for (method, flags) in METHODS {
            eprintln!("{base_id}: measuring by {method}");
            let mut flags = flags.to_vec();
            flags.extend(["--base-image", base_ref.as_str()]);
            let report = advise_json_by(home.path(), &image_ref, &flags);
            let change = suggestion(&report, base_id);
            let added = &change["base_added"];
            assert_eq!(added["confidence"], "exact", "{change:#}");
            assert_eq!(added["image"], base_ref.as_str());
            let (base_compressed, base_uncompressed) = image_sizes(&base, &base_spec);
            assert_eq!(u(&added["compressed_bytes"]), base_compressed);
            assert_eq!(u(&added["uncompressed_bytes"]), base_uncompressed);
            assert!(change["fix"]
                .as_str()
                .expect("fix")
                .starts_with(&format!("FROM {base_ref}")));
            assert!(
                !change["side_effects"].to_string().contains("lacks"),
                "{change:#}"
            );
            let real_compressed = now_compressed - after_compressed;
            let real_uncompressed = now_uncompressed - after_uncompressed;
            assert!(
                within(u(&change["saved_compressed_bytes"]), real_compressed, 1.0),
                "{base_id}: {} vs {real_compressed}",
                change["saved_compressed_bytes"]
            );
            assert!(
                within(u(&change["saved_bytes"]), real_uncompressed, 1.0),
                "{base_id}: {} vs {real_uncompressed}",
                change["saved_bytes"]
            );

            // The projection is that image with the binary stripped too.
            let projected = &report["projected"];
            assert_eq!(projected["base"]["suggestion"], base_id, "{projected:#}");
            assert!(
                within(u(&projected["compressed_bytes"]), stripped_compressed, 1.0),
                "{strip_id}: projected {} vs {stripped_compressed}",
                projected["compressed_bytes"]
            );
            assert!(
                within(
                    u(&projected["uncompressed_bytes"]),
                    stripped_uncompressed,
                    1.0
                ),
                "{strip_id}: projected {} vs {stripped_uncompressed}",
                projected["uncompressed_bytes"]
            );
        }

        // A base without the libraries the binary loads is flagged.
        let bare = ImageSpec::new(vec![LayerSpec::new(
            "ADD passwd /etc/passwd",
            vec![Item::file("etc/passwd", "root:x:0:0::/:/sbin/nologin\n")],
        )])
        .build()
        .expect("bare");
        let bare_dir = tempfile::tempdir().expect("dir");
        testkit::write_oci_layout(bare_dir.path(), &[(&bare, Some("bare"))]).expect("layout");
        let report = json_of(
            home.path(),
            &[
                "advise",
                &image_ref,
                "--base-image",
                &format!("oci:{}:bare", bare_dir.path().display()),
            ],
        );
        let change = suggestion(&report, base_id);
        let warning = change["side_effects"][0].as_str().expect("side effect");
        assert!(
            warning.contains("lacks") && warning.contains("libc.so.6"),
            "{warning}"
        );
    }
}

#[test]
fn optimised_image_gets_no_suggestions() {
    let home = tempfile::tempdir().expect("home");
    let samples = samples();
    // Static, stripped by binutils, alone on scratch with its certificates, zstd layer.
    let binary = real_strip(
        &samples.rust(RustBuild::Static).expect("static rust"),
        "--strip-all",
    );
    let certs = std::fs::read("/etc/ssl/certs/ca-certificates.crt")
        .unwrap_or_else(|_| b"-----BEGIN CERTIFICATE-----\n".to_vec());
    let image = ImageSpec::new(vec![LayerSpec::new(
        "COPY --from=build /app /app",
        vec![
            Item::executable("app", binary),
            Item::file("etc/ssl/certs/ca-certificates.crt", certs),
        ],
    )
    .with_compression(Compression::Zstd)])
    .build()
    .expect("build");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let report = advise_json(home.path(), &format!("oci:{}:t", dir.path().display()));
    let ids: Vec<&str> = report["suggestions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        ids.is_empty(),
        "a static, stripped image on scratch with zstd layers got {ids:?}"
    );
    assert_eq!(
        u(&report["projected"]["compressed_bytes"]),
        image.compressed_bytes()
    );
}

#[test]
fn musl_binary_is_told_to_link_statically() {
    let home = tempfile::tempdir().expect("home");
    let samples = samples();
    let binary = std::fs::read(samples.c_musl().expect("musl sample")).expect("read");
    let musl = |path: &str| std::fs::read(path).expect("Debian's musl package");
    let bulk: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let image = ImageSpec::new(vec![
        LayerSpec::new(
            "FROM alpine-like base",
            vec![
                // musl's loader is its libc too; Alpine names it both ways.
                Item::executable("lib/ld-musl-x86_64.so.1", musl("/lib/ld-musl-x86_64.so.1")),
                Item::Symlink {
                    path: "lib/libc.so".into(),
                    target: "ld-musl-x86_64.so.1".into(),
                },
                Item::file("usr/share/base/bulk.bin", bulk),
            ],
        ),
        LayerSpec::new("COPY app /app", vec![Item::executable("app", binary)]),
    ])
    .build()
    .expect("build");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let report = advise_json(home.path(), &format!("oci:{}:t", dir.path().display()));
    let musl_suggestion = suggestion(&report, "static-musl");
    assert_eq!(musl_suggestion["paths"][0], "/app");
    assert!(musl_suggestion["fix"]
        .as_str()
        .expect("fix")
        .contains("x86_64-unknown-linux-musl"));
    // Net of distroless/static's published size, so an estimate.
    assert_eq!(musl_suggestion["confidence"], "estimate");
    let added = &musl_suggestion["base_added"];
    assert!(added["image"]
        .as_str()
        .expect("image")
        .starts_with("gcr.io/distroless/static"));
    assert!(u(&added["gross_saved_bytes"]) >= 3_000_000);
    assert_eq!(
        u(&musl_suggestion["saved_bytes"]),
        u(&added["gross_saved_bytes"]) - u(&added["uncompressed_bytes"])
    );
    assert_eq!(
        u(&musl_suggestion["saved_compressed_bytes"]),
        u(&added["gross_saved_compressed_bytes"]) - u(&added["compressed_bytes"])
    );
}

#[test]
fn layers_that_keep_rewriting_paths_are_told_to_squash() {
    let home = tempfile::tempdir().expect("home");
    let config = |fill: u8| Item::file("etc/app/config.bin", vec![fill; 400_000]);
    let image = ImageSpec::new(vec![
        LayerSpec::new(
            "ADD base",
            vec![Item::file("etc/os-release", b"ID=x\n".to_vec())],
        ),
        LayerSpec::new(
            "RUN step 1",
            vec![config(1), Item::file("tmp/scratch", vec![9u8; 300_000])],
        ),
        LayerSpec::new("RUN step 2", vec![config(2)]),
        LayerSpec::new(
            "RUN step 3",
            vec![
                config(3),
                Item::Whiteout {
                    path: "tmp/scratch".into(),
                },
            ],
        ),
    ])
    .build()
    .expect("build");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let report = advise_json(home.path(), &format!("oci:{}:t", dir.path().display()));
    let squash = suggestion(&report, "squash-layers");
    let deleted = suggestion(&report, "drop-deleted-files");
    let overwritten = suggestion(&report, "drop-overwritten-files");
    assert_eq!(
        u(&squash["saved_bytes"]),
        u(&deleted["saved_bytes"]) + u(&overwritten["saved_bytes"])
    );
    assert!(u(&squash["saved_bytes"]) >= 1_100_000);
}

/// The level a layer is rebuilt at decides a measured saving as much as the change
/// does: the same content written at gzip levels 1 and 9 (this library: both re-gzip
/// to their stored size once the level is matched, so `exact`) and by GNU gzip -9
/// (another implementation: `measured`), each checked against the change made for
/// real with the same compressor.
#[test]
fn gzip_level_is_matched_before_savings_are_measured() {
    let home = tempfile::tempdir().expect("home");
    let mut items = samples::apt_lists_layer().items;
    let mut kept = 0usize;
    items.retain(|item| match item {
        Item::File { data, .. } => {
            kept += data.len();
            kept <= 6 * 1024 * 1024
        }
        _ => true,
    });
    let log: Vec<u8> = (0..60_000u32)
        .flat_map(|i| {
            format!("step {i}: compiled crate_{} in {}ms\n", i % 97, i % 1013).into_bytes()
        })
        .collect();
    let layer_with = |with_log: bool, level: Option<i32>, compressor: Option<Vec<String>>| {
        let mut contents = items.clone();
        if with_log {
            contents.push(Item::file("tmp/build.log", log.clone()));
        }
        let mut layer = LayerSpec::new("RUN apt-get update && make", contents);
        layer.level = level;
        layer.compressor = compressor;
        layer
    };
    let gnu_gzip_9 = || {
        Some(vec![
            "gzip".to_string(),
            "-9".into(),
            "-n".into(),
            "-c".into(),
        ])
    };
    let cases = [
        ("flate2-1", Some(1), None, "exact"),
        ("flate2-9", Some(9), None, "exact"),
        ("gnu-gzip-9", None, gnu_gzip_9(), "measured"),
    ];
    for (label, level, compressor, confidence) in cases {
        let spec = ImageSpec::new(vec![
            layer_with(true, level, compressor.clone()),
            LayerSpec::new(
                "RUN rm /tmp/build.log",
                vec![Item::Whiteout {
                    path: "tmp/build.log".into(),
                }],
            ),
        ]);
        let image = spec.build().expect("build");
        let fixed = ImageSpec::new(vec![layer_with(false, level, compressor)])
            .build()
            .expect("build fixed");
        let reference = push(registry(), &format!("advise/gzip-level:{label}"), &[&image]);
        let report = advise_json(home.path(), &reference);
        let measurement = report["measurements"]
            .as_array()
            .expect("measurements")
            .iter()
            .find(|m| m["layer"] == 0)
            .unwrap_or_else(|| panic!("{label}: layer 0 not rebuilt: {report:#}"));
        let matched = u(&measurement["gzip_level"]["level"]);
        let deleted = suggestion(&report, "drop-deleted-files");
        // The whiteout goes too (nothing is left for it to hide); its layer stays, empty.
        let emptied = ImageSpec::new(vec![LayerSpec::new("RUN rm /tmp/build.log", vec![])])
            .build()
            .expect("build emptied");
        let real = (image.layers[0].blob.len() - fixed.layers[0].blob.len()
            + image.layers[1].blob.len()
            - emptied.layers[0].blob.len()) as u64;
        let reported = u(&deleted["saved_compressed_bytes"]);
        eprintln!(
            "{label}: matched level {matched}, reported {reported} B, real {real} B ({:+.2}%)",
            (reported as f64 - real as f64) * 100.0 / real as f64
        );
        assert_eq!(
            deleted["saved_compressed_confidence"], confidence,
            "{label}"
        );
        assert_eq!(
            measurement["reproducible"],
            confidence == "exact",
            "{label}: {measurement:#}"
        );
        let evidence = deleted["evidence"].to_string();
        assert!(
            evidence.contains(&format!("re-gzipped here at level {matched} (")),
            "{label}: {evidence}"
        );
        // This library's layers are recognised by their bytes, at their level; GNU
        // gzip's levels map onto miniz_oxide's only by the sizes they produce.
        let same_compressor = measurement["gzip_level"]["same_compressor"] == true;
        match level {
            Some(level) => {
                assert!(same_compressor, "{label}: {measurement:#}");
                assert_eq!(matched, level as u64, "{label}");
            }
            None => assert!(!same_compressor, "{label}: {measurement:#}"),
        }
        // Exact means exact: the same compressor, the same level, the same bytes.
        let tolerance = if confidence == "exact" { 0.0 } else { 3.0 };
        assert!(
            within(reported, real, tolerance),
            "{label}: reported {reported} vs real {real}"
        );
    }
}

#[test]
fn debconf_database_is_package_state_not_a_cache() {
    let home = tempfile::tempdir().expect("home");
    // What a Debian image keeps after `apt-get install … && rm -rf /var/lib/apt/lists/*`:
    // debconf's database (this machine's real one), which dpkg-reconfigure and later
    // installs in derived images need.
    let mut state = Vec::new();
    for name in ["config.dat", "templates.dat"] {
        let path = format!("var/cache/debconf/{name}");
        let data = std::fs::read(std::path::Path::new("/").join(&path)).unwrap_or_else(|_| {
            b"Name: debconf/frontend\nTemplate: debconf/frontend\nValue: Noninteractive\nOwners: debconf\n\n".to_vec()
        });
        state.push(Item::file(&path, data));
    }
    let binary = std::fs::read(samples().go(GoBuild::StripFlags).expect("go")).expect("read");
    state.push(Item::executable("app/server", binary));
    let image = ImageSpec::new(vec![
        samples::base_layer(),
        LayerSpec::new(
            "RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*",
            state,
        ),
    ])
    .build()
    .expect("build");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let reference = format!("oci:{}:t", dir.path().display());
    let report = advise_json(home.path(), &reference);
    let ids: Vec<&str> = report["suggestions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(!ids.contains(&"drop-package-caches"), "{ids:?}");
    let inspected = inspect_json(home.path(), &[&reference]);
    assert_eq!(
        inspected["waste"]["package_cache_bytes"], 0,
        "{:#}",
        inspected["waste"]
    );
}

#[test]
fn a_binary_without_section_headers_gets_no_strip_advice() {
    let home = tempfile::tempdir().expect("home");
    let mut bytes = std::fs::read(samples().go(GoBuild::Default).expect("go")).expect("read");
    bytes[0x28..0x30].fill(0); // e_shoff
    bytes[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
                               // It still runs: the loader reads program headers only.
    let dir = tempfile::tempdir().expect("dir");
    let binary = dir.path().join("no-sections");
    std::fs::write(&binary, &bytes).expect("write");
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let ran = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .expect("run the patched binary");
    assert!(ran.status.code().is_some(), "it ran to an exit");
    // GNU strip refuses it.
    let strip = std::process::Command::new("strip")
        .arg("-o")
        .arg(dir.path().join("stripped"))
        .arg(&binary)
        .output()
        .expect("strip");
    assert!(
        !strip.status.success(),
        "binutils strip accepted a file without sections"
    );

    let image = ImageSpec::new(vec![LayerSpec::new(
        "COPY app /app/server",
        vec![Item::executable("app/server", bytes)],
    )])
    .build()
    .expect("build");
    let layout = tempfile::tempdir().expect("layout");
    testkit::write_oci_layout(layout.path(), &[(&image, Some("t"))]).expect("layout");
    let reference = format!("oci:{}:t", layout.path().display());
    let report = advise_json(home.path(), &reference);
    for suggestion in report["suggestions"].as_array().expect("list") {
        assert!(
            !["go-ldflags-s-w", "rust-strip", "strip-debug"]
                .contains(&suggestion["id"].as_str().unwrap_or("")),
            "{suggestion:#}"
        );
    }
    // The gate cannot call it unstripped either.
    let verdict = json_of(home.path(), &["gate", &reference, "--no-unstripped"]);
    assert_eq!(verdict["pass"], true, "{verdict:#}");
}

#[test]
fn two_hundred_thousand_deleted_files_are_not_quadratic() {
    let home = tempfile::tempdir().expect("home");
    let files: Vec<Item> = (0..200_000)
        .map(|i| Item::file(&format!("cache/{:03}/f{i}", i % 512), vec![b'x'; 1]))
        .collect();
    let image = ImageSpec::new(vec![
        LayerSpec::new("RUN fill the cache", files),
        LayerSpec::new(
            "RUN rm -rf /cache",
            vec![Item::Whiteout {
                path: "cache".into(),
            }],
        ),
    ])
    .build()
    .expect("build");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let reference = format!("oci:{}:t", dir.path().display());
    let started = std::time::Instant::now();
    let report = json_of(home.path(), &["advise", &reference, "--no-zstd"]);
    eprintln!("advise on 200,000 deleted files: {:?}", started.elapsed());
    let deleted = suggestion(&report, "drop-deleted-files");
    assert!(u(&deleted["saved_bytes"]) >= 200_000 * 1024, "{deleted:#}");
}

/// Every phase and byte the progress display is told about, in order.
#[derive(Default)]
struct Recorder {
    phases: std::sync::Mutex<Vec<(String, u64, u64)>>,
    details: std::sync::Mutex<Vec<String>>,
}

impl ballast::image::Progress for Recorder {
    fn phase(&self, what: &str, total_bytes: u64) {
        self.phases
            .lock()
            .expect("lock")
            .push((what.to_string(), total_bytes, 0));
    }

    fn advance(&self, bytes: u64) {
        if let Some(last) = self.phases.lock().expect("lock").last_mut() {
            last.2 += bytes;
        }
    }

    fn detail(&self, what: &str) {
        self.details.lock().expect("lock").push(what.to_string());
    }
}

#[test]
fn progress_names_each_phase_and_counts_its_bytes() {
    use std::sync::Arc;
    let samples = samples();
    let binary = samples.go(GoBuild::Default).expect("go");
    let image = samples::service_image(&binary, "usr/local/bin/hello", true)
        .expect("spec")
        .build()
        .expect("build");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let reference = format!("oci:{}:t", dir.path().display());
    let recorder = Arc::new(Recorder::default());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let advice = runtime.block_on(async {
        let (source, analysis) = ballast::image::inspect_keeping_source(
            &ballast::reference::ImageRef::parse(&reference).expect("reference"),
            &ballast::image::InspectOptions::default(),
            recorder.clone(),
        )
        .await
        .expect("inspect");
        ballast::advice::advise(
            source,
            &analysis,
            &ballast::advice::AdviseOptions::default(),
            recorder.clone(),
        )
        .await
        .expect("advise")
    });
    let phases = recorder.phases.lock().expect("lock").clone();
    assert_eq!(phases.len(), 2, "{phases:?}");
    // Reading: every stored byte of every layer, told as it is read.
    let stored: u64 = image.layers.iter().map(|l| l.blob.len() as u64).sum();
    assert_eq!(phases[0], (format!("reading {reference}"), stored, stored));
    // Measuring: the layers rebuilt, read again in full.
    let rebuilt: u64 = advice.measurements.iter().map(|m| m.compressed_bytes).sum();
    assert!(phases[1].0.starts_with("measuring "), "{phases:?}");
    assert!(phases[1]
        .0
        .ends_with(&format!("on {} layers", advice.measurements.len())));
    assert_eq!((phases[1].1, phases[1].2), (rebuilt, rebuilt));
    // Each layer names what is measured on it.
    let details = recorder.details.lock().expect("lock").clone();
    assert_eq!(details.len(), advice.measurements.len());
    assert!(
        details.iter().any(|d| d.contains("drop-package-caches")),
        "{details:?}"
    );
}
