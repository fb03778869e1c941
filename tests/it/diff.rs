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

/// Item name -> (bytes, version) of the attribution inspect gives the binary at `path`.
fn inspected_items(
    inspect: &serde_json::Value,
    path: &str,
) -> std::collections::BTreeMap<String, (u64, Option<String>)> {
    let binary = inspect["binaries"]
        .as_array()
        .expect("binaries")
        .iter()
        .find(|b| b["path"] == path)
        .unwrap_or_else(|| panic!("no {path}"));
    binary["attribution"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().expect("name").to_string(),
                (
                    i["bytes"].as_u64().unwrap_or(0),
                    i["version"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

#[test]
fn code_that_came_went_grew_or_shrank_in_a_binary() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let samples = samples();
    let image = |build: GoBuild, tag: &str| {
        let built = samples::service_image(&samples.go(build).expect("go"), "app", false)
            .expect("spec")
            .build()
            .expect("build");
        let layout = dir.path().join(tag);
        testkit::write_oci_layout(&layout, &[(&built, Some(tag))]).expect("layout");
        format!("oci:{}:{tag}", layout.display())
    };
    let (base, new) = (image(GoBuild::CgoOff, "off"), image(GoBuild::CgoOn, "on"));
    let before = inspected_items(&inspect_json(home.path(), &[&base]), "/app");
    let after = inspected_items(&inspect_json(home.path(), &[&new]), "/app");
    let report = json_of(home.path(), &["diff", &base, &new, "--top", "5"]);
    let binary = report["binaries"]
        .as_array()
        .expect("binaries")
        .iter()
        .find(|b| b["path"] == "/app")
        .expect("/app changed");
    let code = &binary["code"];
    assert_eq!(code["unit"], "package");
    let items = code["items"].as_array().expect("items");
    assert_eq!(items.len(), 5, "--top 5: {code}");
    // Every figure is inspect's; the list runs largest change first.
    let mut last = u64::MAX;
    for item in items {
        let name = item["name"].as_str().expect("name");
        let (b, vb) = before.get(name).cloned().unwrap_or((0, None));
        let (a, va) = after.get(name).cloned().unwrap_or((0, None));
        assert_eq!(item["bytes_before"].as_u64(), Some(b), "{item}");
        assert_eq!(item["bytes_after"].as_u64(), Some(a), "{item}");
        assert_eq!(item["version_before"].as_str(), vb.as_deref(), "{item}");
        assert_eq!(item["version_after"].as_str(), va.as_deref(), "{item}");
        let delta = item["delta"].as_i64().expect("delta");
        assert_eq!(delta, a as i64 - b as i64);
        let change = match (before.contains_key(name), after.contains_key(name)) {
            (false, true) => "added",
            (true, false) => "removed",
            _ if a > b => "grown",
            _ if a < b => "shrunk",
            _ => "version",
        };
        assert_eq!(item["change"], change, "{item}");
        assert!(delta.unsigned_abs() <= last);
        last = delta.unsigned_abs();
    }
    // The rest are summed: all changes together are the change of `.text`.
    let more = &code["more"];
    let listed: i64 = items.iter().map(|i| i["delta"].as_i64().unwrap_or(0)).sum();
    let text_delta = code["code_bytes_after"].as_i64().expect("after")
        - code["code_bytes_before"].as_i64().expect("before");
    assert_eq!(
        listed + more["delta"].as_i64().expect("more delta"),
        text_delta
    );
    // cgo links in C: runtime/cgo's own code is C (`x_cgo_*`, no `pcsp`), and so are
    // the resolver's `_cgo_` wrappers.
    assert!(!before.contains_key("[C]") && after.contains_key("[C]"));
    let all = json_of(home.path(), &["diff", &base, &new, "--top", "1000"]);
    let cgo = all["binaries"][0]["code"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == "[C]")
        .cloned()
        .expect("[C] listed");
    assert_eq!(cgo["change"], "added");
    assert_eq!(cgo["bytes_after"].as_u64(), Some(after["[C]"].0));

    let table = succeed(
        ballast(home.path()).args(["diff", &base, &new, "--top", "1000", "--format", "table"]),
    );
    let table = String::from_utf8_lossy(&table);
    assert!(table.contains("Code of /app by package: .text"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains(" [C] "))
        .unwrap_or_else(|| panic!("[C] row in {table}"));
    assert!(row.contains("added"), "{row}");
}
