//! `ballast apply --squash`: the last layers written as one. What a container sees
//! must not change (umoci unpacks source and result, and the trees are compared
//! file by file); the base's layers stay the same blobs.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

use crate::apply::{installed, layout_with, wasteful_image};
use crate::common::*;

/// Every path under `root` with what it is: a file's bytes, a link's target, a
/// directory's mode.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let name = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let what = if meta.file_type().is_symlink() {
                format!(
                    "link {}",
                    std::fs::read_link(&path).expect("link").display()
                )
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {:o}", meta.mode() & 0o7777)
            } else {
                let bytes = std::fs::read(&path).expect("read");
                format!(
                    "file {:o} {} {}",
                    meta.mode() & 0o7777,
                    bytes.len(),
                    ballast::digest::Digest::of_bytes(&bytes)
                )
            };
            out.insert(name, what);
        }
    }
    out
}

fn unpack(layout: &Path, tag: &str, into: &Path) -> BTreeMap<String, String> {
    let output = std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(into)
        .output()
        .expect("umoci");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    tree(&into.join("rootfs"))
}

fn squash_report(report: &Value) -> &Value {
    report["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .find(|a| a["id"] == "squash-layers")
        .expect("squash-layers applied")
}

/// Only the squash: advise's removals skipped, so the tree must be the source's.
const SKIP: &str = "drop-deleted-files,drop-docs,drop-package-caches";

#[test]
fn squash_keeps_what_a_container_sees_and_the_base_blobs() {
    let home = tempfile::tempdir().expect("home");
    let mut spec = wasteful_image();
    spec.empty_history
        .push((0, "/bin/sh -c #(nop)  CMD [\"bash\"]".into()));
    // The image's own CMD, after its last layer, is not the base's.
    spec.empty_history
        .push((4, "CMD [\"/opt/app/bin/app\"]".into()));
    let image = spec.build().expect("build");
    let source = layout_with(&image);
    let reference = format!("oci:{}:t", source.path().display());
    let scratch = tempfile::tempdir().expect("scratch");

    for (scope, layers_out) in [("yours", 2usize), ("all", 1), ("2", 3)] {
        let out = scratch.path().join(format!("out-{scope}"));
        let target = format!("oci:{}:s", out.display());
        let report = json_of(
            home.path(),
            &[
                "apply", &reference, "--to", &target, "--skip", SKIP, "--squash", scope,
            ],
        );
        let applied = squash_report(&report);
        assert_eq!(applied["confidence"], "estimate", "{applied:#}");
        let notes = report["notes"].to_string();
        assert!(notes.contains("squashed"), "{notes}");
        if scope == "yours" {
            assert!(notes.contains("CMD [\\\"bash\\\"]"), "{notes}");
        }
        let after = inspect_json(home.path(), &[&target]);
        let layers = after["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), layers_out, "--squash {scope}");
        // The layers before the range are the source's blobs.
        for (index, layer) in layers.iter().enumerate().take(layers_out - 1) {
            assert_eq!(layer["digest"], image.layers[index].digest.to_string());
        }
        // The squashed layer hides nothing and holds no whiteout or hidden copy.
        assert_eq!(after["waste"]["deleted_bytes"], 0, "{:#}", after["waste"]);
        assert_eq!(
            layers[layers_out - 1]["created_by"]
                .as_str()
                .map(|c| c.starts_with("ballast apply --squash")),
            Some(true),
            "{:#}",
            layers[layers_out - 1]
        );
        // The estimate lands close: tar bytes within 1%.
        let projected = report["projected"]["uncompressed_bytes"]
            .as_u64()
            .expect("projected");
        let written = report["after"]["uncompressed_bytes"]
            .as_u64()
            .expect("after");
        assert!(
            (written as f64 - projected as f64).abs() <= projected as f64 * 0.01,
            "--squash {scope}: {written} written, {projected} projected"
        );
        assert_eq!(
            after["totals"]["uncompressed_bytes"].as_u64(),
            Some(written)
        );

        if installed("umoci") {
            let before = unpack(
                source.path(),
                "t",
                &scratch.path().join(format!("a-{scope}")),
            );
            let squashed = unpack(&out, "s", &scratch.path().join(format!("b-{scope}")));
            assert!(before.contains_key("etc/app.conf"), "{before:?}");
            assert!(!before.contains_key("tmp/build.log"), "{before:?}");
            assert_eq!(squashed, before, "--squash {scope} changed the tree");
        } else {
            eprintln!("skipped: umoci is not installed (scripts/lib/deps.sh installs it)");
        }
    }

    // Without a CMD or ENTRYPOINT between layers, `yours` cannot be told.
    let plain = wasteful_image().build().expect("build");
    let plain_layout = layout_with(&plain);
    let plain_ref = format!("oci:{}:t", plain_layout.path().display());
    let error = expect_bad_input(
        home.path(),
        &[
            "apply",
            &plain_ref,
            "--to",
            &format!("oci:{}:x", scratch.path().join("never").display()),
            "--squash",
        ],
    );
    assert!(error.contains("where the base image ends"), "{error}");
    let error = expect_bad_input(
        home.path(),
        &[
            "apply",
            &plain_ref,
            "--to",
            &format!("oci:{}:x", scratch.path().join("never").display()),
            "--squash",
            "4",
        ],
    );
    assert!(error.contains("nothing to squash"), "{error}");
    assert!(!scratch.path().join("never").exists());
}

#[test]
fn squash_with_the_removals_lands_on_them_and_stays_readable() {
    let home = tempfile::tempdir().expect("home");
    let image = wasteful_image().build().expect("build");
    let source = layout_with(&image);
    let reference = format!("oci:{}:t", source.path().display());
    let out = tempfile::tempdir().expect("out");
    let target = format!("oci:{}:s", out.path().display());
    let report = json_of(
        home.path(),
        &[
            "apply", &reference, "--to", &target, "--squash", "1", "--gzip", "9",
        ],
    );
    let ids: Vec<&str> = report["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .map(|a| a["id"].as_str().expect("id"))
        .collect();
    assert!(ids.contains(&"drop-deleted-files"), "{ids:?}");
    assert!(ids.contains(&"squash-layers"), "{ids:?}");
    // The removals' own figures are still exact and met.
    for applied in report["applied"].as_array().expect("applied") {
        if applied["id"] != "squash-layers" {
            assert_eq!(
                applied["saved_bytes"], applied["projected_saved_bytes"],
                "{applied:#}"
            );
        }
    }
    // Every byte saved is some suggestion's: the squash's own are the hidden entries
    // and the end markers of all but one layer.
    let saved: u64 = report["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .map(|a| a["saved_bytes"].as_u64().expect("saved"))
        .sum();
    assert_eq!(
        Some(saved),
        report["before"]["uncompressed_bytes"]
            .as_u64()
            .zip(report["after"]["uncompressed_bytes"].as_u64())
            .map(|(b, a)| b - a),
        "{report:#}"
    );
    let after = inspect_json(home.path(), &[&target]);
    assert_eq!(after["layers"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        after["layers"][1]["compression"], "gzip",
        "{:#}",
        after["layers"][1]
    );
    let rows = report["layers"].as_array().expect("layers");
    assert_eq!(rows.len(), 5);
    assert!(rows[1]["after"].is_object());
    for row in &rows[1..] {
        assert_eq!(row["squashed_into"], 1, "{row:#}");
    }
    for row in &rows[2..] {
        assert!(row["after"].is_null(), "{row:#}");
    }
    if installed("umoci") {
        let bundle = out.path().join("bundle");
        let tree = unpack(out.path(), "s", &bundle);
        assert!(tree.contains_key("etc/app.conf"));
        assert!(tree.contains_key("usr/bin/curl"));
        assert!(!tree.contains_key("var/lib/apt/lists/deb.debian.org_Packages"));
    }
}
