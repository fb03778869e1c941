//! `ballast diff` between two real images from different sources.

use testkit::samples::{self, GoBuild};
use testkit::{Item, LayerSpec};

use crate::common::*;

#[test]
fn added_layer_and_files_sorted_by_impact() {
    let home = tempfile::tempdir().expect("home");
    let samples = samples();
    let spec = samples::service_image(&samples.go(GoBuild::CgoOff).expect("go"), "app", false)
        .expect("spec");
    let base = spec.build().expect("build");
    let mut grown = spec.clone();
    grown.layers.push(LayerSpec::new(
        "COPY assets /assets",
        vec![
            Item::file("assets/big", vec![7u8; 900_000]),
            Item::file("assets/small", vec![1u8; 1_000]),
        ],
    ));
    let new = grown.build().expect("build");
    // Base from the registry, new from an OCI layout: any two sources compare.
    let base_ref = push(registry(), "diff/app:1", &[&base]);
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&new, Some("2"))]).expect("layout");
    let report = json_of(
        home.path(),
        &[
            "diff",
            &base_ref,
            &format!("oci:{}:2", dir.path().display()),
        ],
    );
    assert_eq!(report["schema_version"], 1);
    let added_blob = new.layers.last().expect("layer").blob.len() as i64;
    assert_eq!(report["compressed"]["delta"].as_i64(), Some(added_blob));
    let layers = report["layers"].as_array().expect("layers");
    assert_eq!(
        layers.iter().filter(|l| l["change"] == "shared").count(),
        base.layers.len()
    );
    let added: Vec<_> = layers.iter().filter(|l| l["change"] == "added").collect();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["created_by"], "COPY assets /assets");
    let files = report["files"].as_array().expect("files");
    assert_eq!(files[0]["path"], "/assets/big");
    assert_eq!(files[0]["change"], "added");
    assert_eq!(files[0]["delta"], 900_000);
    assert_eq!(files[1]["path"], "/assets/small");
    assert_eq!(report["visible_files"]["delta"], 901_000);
}

#[test]
fn debug_info_coming_back_is_named() {
    let home = tempfile::tempdir().expect("home");
    let samples = samples();
    let image = |build: testkit::samples::RustBuild| {
        let data = std::fs::read(samples.rust(build).expect("rust")).expect("read");
        testkit::ImageSpec::new(vec![LayerSpec::new(
            "COPY app /app",
            vec![Item::executable("app", data)],
        )])
        .build()
        .expect("build")
    };
    let dir = tempfile::tempdir().expect("dir");
    let release = image(testkit::samples::RustBuild::Release);
    let debug = image(testkit::samples::RustBuild::DebugInfo);
    testkit::write_oci_layout(&dir.path().join("a"), &[(&release, Some("1"))]).expect("layout");
    testkit::write_oci_layout(&dir.path().join("b"), &[(&debug, Some("1"))]).expect("layout");
    let report = json_of(
        home.path(),
        &[
            "diff",
            &format!("oci:{}:1", dir.path().join("a").display()),
            &format!("oci:{}:1", dir.path().join("b").display()),
        ],
    );
    let binary = &report["binaries"][0];
    assert_eq!(binary["path"], "/app");
    let changes: Vec<&str> = binary["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(changes.contains(&"debug info came back"), "{changes:?}");
    assert!(
        changes.iter().any(|c| c.starts_with("dwarf +")),
        "{changes:?}"
    );
}

#[test]
fn the_same_image_from_a_layout_and_a_docker_save_shares_every_layer_by_content() {
    let home = tempfile::tempdir().expect("home");
    let image = samples::service_image(&samples().go(GoBuild::CgoOff).expect("go"), "app", false)
        .expect("spec")
        .build()
        .expect("build");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("1"))]).expect("layout");
    let archive = dir.path().join("saved.tar");
    testkit::write_docker_archive(&archive, &image, "app:1").expect("archive");
    let layout = format!("oci:{}:1", dir.path().display());
    let saved = format!("docker-archive:{}", archive.display());
    let report = json_of(home.path(), &["diff", &layout, &saved]);
    let layers = report["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), image.layers.len(), "{layers:#?}");
    for layer in layers {
        // docker save stores layers as plain tar: the same content, another blob.
        assert_eq!(layer["change"], "recompressed", "{layer:#}");
        assert_eq!(layer["recompressed"]["base_compression"], "gzip");
        assert_eq!(layer["recompressed"]["compression"], "none");
    }
    assert!(report["files"].as_array().expect("files").is_empty());
    let table = succeed(ballast(home.path()).args(["diff", &layout, &saved, "--format", "table"]));
    assert!(String::from_utf8_lossy(&table).contains("recompressed (gzip → tar)"));

    // compare says the contents are the same and stored twice.
    let comparison = json_of(home.path(), &["compare", &layout, &saved, "--no-advice"]);
    assert_eq!(comparison["set"]["same_content_layers"], image.layers.len());
    assert_eq!(comparison["set"]["shared_layers"], 0);
}
