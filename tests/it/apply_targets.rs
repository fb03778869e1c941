//! `ballast apply --to oci-archive:` and `docker-archive:`: the archive is read back
//! by ballast, by skopeo, and loaded into the test dockerd and podman, whose own
//! `image inspect` must agree on what was written.

use serde_json::Value;

use crate::apply::{installed, layout_with, wasteful_image};
use crate::common::engine::{dockerd, podman};
use crate::common::*;

fn source() -> (tempfile::TempDir, String) {
    let image = wasteful_image().build().expect("build");
    let layout = layout_with(&image);
    let reference = format!("oci:{}:t", layout.path().display());
    (layout, reference)
}

fn diff_ids(report: &Value) -> Vec<Value> {
    report["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["diff_id"].clone())
        .collect()
}

#[test]
fn an_oci_archive_is_read_back_by_ballast_and_skopeo() {
    let home = tempfile::tempdir().expect("home");
    let (_layout, reference) = source();
    let scratch = tempfile::tempdir().expect("scratch");
    let file = scratch.path().join("slim.tar");
    let target = format!("oci-archive:{}:slim", file.display());
    let report = json_of(home.path(), &["apply", &reference, "--to", &target]);
    assert_eq!(report["target"], target.as_str());
    // Nothing but the archive is left beside it.
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("slim.tar")]);

    let inspected = inspect_json(home.path(), &[&target]);
    assert_eq!(inspected["image"]["digest"], report["manifest_digest"]);
    let source_view = inspect_json(home.path(), &[&reference]);
    // The untouched layer is the same blob.
    let last = source_view["layers"].as_array().expect("layers").len() - 1;
    assert_eq!(
        inspected["layers"][last]["digest"],
        source_view["layers"][last]["digest"]
    );
    assert_eq!(
        inspected["totals"]["uncompressed_bytes"].as_u64(),
        report["after"]["uncompressed_bytes"].as_u64()
    );

    if installed("skopeo") {
        let output = std::process::Command::new("skopeo")
            .args(["inspect", &target])
            .output()
            .expect("skopeo");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let skopeo: Value = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(skopeo["Digest"], report["manifest_digest"]);
    }

    // The same file again: refused without --force, replaced with it.
    let before = std::fs::read(&file).expect("archive");
    let error = expect_bad_input(home.path(), &["apply", &reference, "--to", &target]);
    assert!(error.contains("already exists"), "{error}");
    assert_eq!(std::fs::read(&file).expect("archive"), before);
    let again = json_of(
        home.path(),
        &["apply", &reference, "--to", &target, "--force"],
    );
    assert_eq!(again["manifest_digest"], report["manifest_digest"]);
    assert_eq!(
        std::fs::read(&file).expect("archive"),
        before,
        "not deterministic"
    );

    // Its own source is never the target.
    let error = expect_bad_input(home.path(), &["apply", &target, "--to", &target, "--force"]);
    assert!(error.contains("source archive"), "{error}");
    // A directory is not an archive.
    let dir_target = format!("oci-archive:{}", scratch.path().display());
    let error = expect_bad_input(home.path(), &["apply", &reference, "--to", &dir_target]);
    assert!(error.contains("directory"), "{error}");
}

#[test]
fn a_docker_archive_is_loaded_by_docker_and_podman() {
    let home = tempfile::tempdir().expect("home");
    let (_layout, reference) = source();
    let scratch = tempfile::tempdir().expect("scratch");
    let file = scratch.path().join("slim.tar");
    // docker's rule: a name without a tag is name:latest.
    let target = format!("docker-archive:{}:ballast-apply/slim", file.display());
    let report = json_of(home.path(), &["apply", &reference, "--to", &target]);
    let read_back = inspect_json(
        home.path(),
        &[&format!("docker-archive:{}", file.display())],
    );
    assert_eq!(
        read_back["totals"]["uncompressed_bytes"].as_u64(),
        report["after"]["uncompressed_bytes"].as_u64()
    );
    let expected_diff_ids = diff_ids(&read_back);

    let error = expect_bad_input(
        home.path(),
        &[
            "apply",
            &reference,
            "--to",
            &format!(
                "docker-archive:{}:x@sha256:{}",
                file.display(),
                "0".repeat(64)
            ),
            "--force",
        ],
    );
    assert!(error.contains("not by digest"), "{error}");

    for engine in [dockerd(), podman()].into_iter().flatten() {
        engine.load(&file);
        let id = read_back["image"]["config_digest"]
            .as_str()
            .expect("config digest");
        let view = engine.image_inspect(id.trim_start_matches("sha256:"));
        // podman puts a name without a registry under localhost/.
        assert!(
            view["RepoTags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t
                    .as_str()
                    .is_some_and(|t| t.ends_with("ballast-apply/slim:latest")))),
            "{view:#}"
        );
        assert_eq!(
            view["Id"]
                .as_str()
                .map(|id| id.trim_start_matches("sha256:").to_string()),
            read_back["image"]["config_digest"]
                .as_str()
                .map(|d| d.trim_start_matches("sha256:").to_string()),
            "{view:#}"
        );
        assert_eq!(
            view["RootFS"]["Layers"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            expected_diff_ids,
            "{view:#}"
        );
        // The engine's size follows the layers' tar bytes as apply read them back:
        // docker counts the files unpacked (no tar headers), podman the tars plus
        // config and manifest.
        let size = view["Size"].as_u64().expect("Size");
        let after = report["after"]["uncompressed_bytes"]
            .as_u64()
            .expect("after");
        assert!(
            size >= after - after / 5 && size <= after + after / 50,
            "engine size {size} against {after} of tar"
        );
    }
}

/// skopeo copies what apply wrote into a real registry, and ballast reads it there as
/// the same image: the layout is a valid one to push.
#[test]
fn skopeo_copies_an_applied_layout_to_the_registry() {
    if !installed("skopeo") {
        eprintln!("skipped: skopeo is not installed (scripts/lib/deps.sh installs it)");
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let (_layout, reference) = source();
    let scratch = tempfile::tempdir().expect("scratch");
    let target = format!("oci:{}:slim", scratch.path().join("out").display());
    let report = json_of(home.path(), &["apply", &reference, "--to", &target]);
    let pushed = format!("{}/apply/slim:1", registry().host);
    let output = std::process::Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--preserve-digests"])
        .arg(&target)
        .arg(format!("docker://{pushed}"))
        .output()
        .expect("skopeo");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let from_registry = inspect_json(home.path(), &[&pushed]);
    assert_eq!(from_registry["image"]["digest"], report["manifest_digest"]);
    assert_eq!(
        from_registry["totals"]["uncompressed_bytes"].as_u64(),
        report["after"]["uncompressed_bytes"].as_u64()
    );
}
