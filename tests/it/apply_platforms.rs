//! `ballast apply` over a multi-platform index: every platform's image made, under a
//! new index the tag names (a layout, a registry); `--platform` still makes one image,
//! and a docker-archive, which holds one, is refused.

use serde_json::Value;
use testkit::{BuiltImage, ImageSpec, Item, LayerSpec};

use crate::apply::{installed, text, wasteful_image};
use crate::common::*;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// linux/amd64 and linux/arm64/v8 images (the arm one with other package lists, the
/// same last layer) and a buildkit-style attestation manifest.
fn platform_images() -> (BuiltImage, BuiltImage, BuiltImage) {
    let amd64 = wasteful_image().build().expect("build amd64");
    let mut arm = wasteful_image();
    arm.platform = "linux/arm64/v8".parse().expect("platform");
    arm.layers[1] = LayerSpec::new(
        "RUN apt-get update && apt-get install -y curl",
        vec![
            Item::file(
                "var/lib/apt/lists/deb.debian.org_Packages",
                text(25_000, 61),
            ),
            Item::file("usr/bin/curl", text(4_500, 71)),
        ],
    );
    let arm64 = arm.build().expect("build arm64");
    let mut attestation = ImageSpec::new(vec![LayerSpec::new(
        "",
        vec![Item::file("provenance.json", "{}\n")],
    )]);
    attestation.platform = "unknown/unknown".parse().expect("platform");
    (
        amd64,
        arm64,
        attestation.build().expect("build attestation"),
    )
}

fn pushed_index(repo_tag: &str) -> String {
    let (amd64, arm64, attestation) = platform_images();
    push(registry(), repo_tag, &[&amd64, &arm64, &attestation])
}

fn platforms(report: &Value) -> &Vec<Value> {
    report["platforms"].as_array().expect("platforms")
}

fn notes(report: &Value) -> Vec<String> {
    report["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| n.as_str().expect("note").to_string())
        .collect()
}

/// Each platform's report read back and on its projection; the image `--platform`
/// reads from `target` is the one written.
fn check_platforms(home: &std::path::Path, report: &Value, target: &str) {
    let names: Vec<&str> = platforms(report)
        .iter()
        .map(|p| p["image"]["platform"].as_str().expect("platform"))
        .collect();
    assert_eq!(names, ["linux/amd64", "linux/arm64/v8"], "{report:#}");
    for platform in platforms(report) {
        assert_eq!(platform["dry_run"], false);
        assert_eq!(
            platform["after"]["uncompressed_bytes"], platform["projected"]["uncompressed_bytes"],
            "{platform:#}"
        );
        assert!(
            !platform["applied"].as_array().expect("applied").is_empty(),
            "{platform:#}"
        );
        let name = platform["image"]["platform"].as_str().expect("platform");
        let read = inspect_json(home, &[target, "--platform", name]);
        assert_eq!(
            read["image"]["digest"], platform["manifest_digest"],
            "{name}"
        );
        assert_eq!(read["image"]["platform"], name);
        assert_eq!(
            read["totals"]["uncompressed_bytes"],
            platform["after"]["uncompressed_bytes"]
        );
    }
    // The platforms differ, share their untouched last layer, and their first layer
    // comes out the same from the same change (written once, reported alike).
    let [a, b] = platforms(report).as_slice() else {
        panic!("two platforms");
    };
    assert_ne!(a["manifest_digest"], b["manifest_digest"]);
    assert_eq!(
        a["layers"][4]["after"]["digest"],
        b["layers"][4]["after"]["digest"]
    );
    assert_eq!(a["layers"][4]["after"]["written"], "copied");
    assert_eq!(a["layers"][0]["after"], b["layers"][0]["after"]);
    assert_ne!(
        a["layers"][1]["after"]["digest"],
        b["layers"][1]["after"]["digest"]
    );
    let docs = |p: &Value| {
        p["applied"]
            .as_array()
            .expect("applied")
            .iter()
            .find(|s| s["id"] == "drop-docs")
            .map(|s| s["saved_bytes"].clone())
    };
    assert_eq!(docs(a), docs(b));
    assert!(docs(a).is_some_and(|s| s.as_u64().is_some_and(|n| n > 0)));
}

/// The index `raw` lists the two platforms' manifests, in the report's order, with
/// the source index's platforms (`arm_variant`: the arm entry's variant there).
fn check_index(raw: &Value, report: &Value, arm_variant: Option<&str>) {
    assert_eq!(raw["mediaType"], OCI_INDEX, "{raw:#}");
    let manifests = raw["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 2, "{raw:#}");
    for (entry, platform) in manifests.iter().zip(platforms(report)) {
        assert_eq!(entry["mediaType"], OCI_MANIFEST);
        assert_eq!(entry["digest"], platform["manifest_digest"]);
        assert_eq!(entry["platform"]["os"], "linux");
    }
    assert_eq!(manifests[0]["platform"]["architecture"], "amd64");
    assert_eq!(manifests[1]["platform"]["architecture"], "arm64");
    assert_eq!(
        manifests[1]["platform"]["variant"].as_str(),
        arm_variant,
        "{raw:#}"
    );
}

fn skopeo_raw(args: &[&str]) -> Value {
    let output = std::process::Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .args(args)
        .output()
        .expect("skopeo");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

#[test]
fn an_index_is_applied_per_platform_into_a_layout() {
    let home = tempfile::tempdir().expect("home");
    let source = pushed_index("apply-multi/source:1");
    let out = tempfile::tempdir().expect("out");
    let target = format!("oci:{}:multi", out.path().display());
    let report = json_of(home.path(), &["apply", &source, "--to", &target]);
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["target"], target.as_str());
    let index_digest = report["index_digest"].as_str().expect("index digest");
    assert!(
        notes(&report)
            .iter()
            .any(|n| n.contains("1 attestation manifest")),
        "{:?}",
        notes(&report)
    );
    check_platforms(home.path(), &report, &target);

    // index.json names the new index by the tag; the index lists both platforms.
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).expect("index.json"))
            .expect("json");
    let entries = index["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 1, "{index:#}");
    assert_eq!(entries[0]["mediaType"], OCI_INDEX);
    assert_eq!(entries[0]["digest"], index_digest);
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "multi"
    );
    let blob = |digest: &str| {
        std::fs::read(
            out.path()
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .expect("blob")
    };
    let raw: Value = serde_json::from_slice(&blob(index_digest)).expect("index");
    check_index(&raw, &report, Some("v8"));
    if installed("skopeo") {
        check_index(&skopeo_raw(&[&target]), &report, Some("v8"));
    }

    // The same input gives the same index.
    let again_dir = tempfile::tempdir().expect("again");
    let again_target = format!("oci:{}:multi", again_dir.path().display());
    let again = json_of(home.path(), &["apply", &source, "--to", &again_target]);
    assert_eq!(again["index_digest"], report["index_digest"]);

    // The plan covers every platform and writes nothing.
    let dry_dir = tempfile::tempdir().expect("dry");
    let dry_target = format!("oci:{}:multi", dry_dir.path().display());
    let dry = json_of(
        home.path(),
        &["apply", &source, "--to", &dry_target, "--dry-run"],
    );
    assert_eq!(dry["index_digest"], Value::Null);
    assert_eq!(platforms(&dry).len(), 2);
    assert!(platforms(&dry).iter().all(|p| p["dry_run"] == true));
    assert_eq!(std::fs::read_dir(dry_dir.path()).expect("dir").count(), 0);

    // Table and Markdown: a heading per platform.
    let table = succeed(ballast(home.path()).args([
        "apply",
        &source,
        "--to",
        &dry_target,
        "--dry-run",
        "--format",
        "table",
    ]));
    let table = String::from_utf8_lossy(&table);
    assert!(
        table.contains("== linux/amd64 ==") && table.contains("== linux/arm64/v8 =="),
        "{table}"
    );
    let markdown = succeed(ballast(home.path()).args([
        "apply",
        &source,
        "--to",
        &dry_target,
        "--dry-run",
        "--format",
        "markdown",
    ]));
    let markdown = String::from_utf8_lossy(&markdown);
    assert!(
        markdown.contains("### `linux/amd64`") && markdown.contains("### `linux/arm64/v8`"),
        "{markdown}"
    );
}

#[test]
fn an_index_is_applied_per_platform_into_a_registry() {
    let home = tempfile::tempdir().expect("home");
    let source = pushed_index("apply-multi/registry-source:1");
    let target = format!("{}/apply-multi/slim:1", registry().host);
    let report = json_of(home.path(), &["apply", &source, "--to", &target]);
    let index_digest = report["index_digest"].as_str().expect("index digest");
    check_platforms(home.path(), &report, &target);
    let note = notes(&report)
        .into_iter()
        .find(|n| n.starts_with("pushed "))
        .expect("a push note");
    assert!(note.contains("the index last"), "{note}");

    // The same index as a layout gets: the digest is the content's.
    let out = tempfile::tempdir().expect("out");
    let layout = format!("oci:{}:multi", out.path().display());
    let written = json_of(home.path(), &["apply", &source, "--to", &layout]);
    assert_eq!(written["index_digest"], index_digest);

    // The tag names the index: refused again without --force.
    let error = expect_bad_input(home.path(), &["apply", &source, "--to", &target]);
    assert!(error.contains("already exists"), "{error}");
    if installed("skopeo") {
        let raw = skopeo_raw(&["--tls-verify=false", &format!("docker://{target}")]);
        check_index(&raw, &report, Some("v8"));
    }
}

#[test]
fn a_platform_given_makes_one_image_and_a_docker_archive_is_refused() {
    let home = tempfile::tempdir().expect("home");
    let source = pushed_index("apply-multi/one:1");
    let out = tempfile::tempdir().expect("out");
    let target = format!("oci:{}:arm", out.path().display());
    let report = json_of(
        home.path(),
        &[
            "apply",
            &source,
            "--to",
            &target,
            "--platform",
            "linux/arm64",
        ],
    );
    // Today's single-image report, and a manifest the tag names.
    assert!(report.get("platforms").is_none(), "{report:#}");
    assert_eq!(report["image"]["platform"], "linux/arm64/v8");
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index.json")).expect("index.json"))
            .expect("json");
    assert_eq!(index["manifests"][0]["mediaType"], OCI_MANIFEST);
    assert_eq!(index["manifests"][0]["digest"], report["manifest_digest"]);
    let read = inspect_json(home.path(), &[&target]);
    assert_eq!(read["image"]["digest"], report["manifest_digest"]);

    let scratch = tempfile::tempdir().expect("scratch");
    let archive = format!("docker-archive:{}", scratch.path().join("x.tar").display());
    let error = expect_bad_input(home.path(), &["apply", &source, "--to", &archive]);
    assert!(error.contains("--platform"), "{error}");
    assert_eq!(std::fs::read_dir(scratch.path()).expect("dir").count(), 0);
    let one = json_of(
        home.path(),
        &[
            "apply",
            &source,
            "--to",
            &archive,
            "--platform",
            "linux/amd64",
        ],
    );
    assert_eq!(one["image"]["platform"], "linux/amd64");
}

#[test]
fn an_index_in_a_layout_or_an_archive_is_applied_per_platform() {
    let home = tempfile::tempdir().expect("home");
    let (amd64, arm64, attestation) = platform_images();
    // Three entries under one tag in index.json (the layout's own index).
    let layout = tempfile::tempdir().expect("layout");
    testkit::write_oci_layout(
        layout.path(),
        &[
            (&amd64, Some("t")),
            (&arm64, Some("t")),
            (&attestation, Some("t")),
        ],
    )
    .expect("write layout");
    let source = format!("oci:{}:t", layout.path().display());
    let scratch = tempfile::tempdir().expect("scratch");
    let file = scratch.path().join("multi.tar");
    let target = format!("oci-archive:{}:multi", file.display());
    let report = json_of(home.path(), &["apply", &source, "--to", &target]);
    assert!(report["index_digest"].is_string(), "{report:#}");
    assert!(
        notes(&report)
            .iter()
            .any(|n| n.contains("1 attestation manifest")),
        "{:?}",
        notes(&report)
    );
    check_platforms(home.path(), &report, &target);
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("multi.tar")]);
    if installed("skopeo") {
        // testkit's index.json gives no variant; the new index keeps the source's.
        check_index(&skopeo_raw(&[&target]), &report, None);
    }

    // The archive's index is nested under index.json: read as the source in turn.
    let out = tempfile::tempdir().expect("out");
    let again_target = format!("oci:{}:again", out.path().display());
    let again = json_of(
        home.path(),
        &["apply", &target, "--to", &again_target, "--zstd"],
    );
    assert_eq!(platforms(&again).len(), 2, "{again:#}");
    for platform in platforms(&again) {
        let name = platform["image"]["platform"].as_str().expect("platform");
        let read = inspect_json(home.path(), &[&again_target, "--platform", name]);
        assert_eq!(
            read["image"]["digest"], platform["manifest_digest"],
            "{name}"
        );
        assert_eq!(
            platform["after"]["uncompressed_bytes"],
            platform["projected"]["uncompressed_bytes"]
        );
    }
}

/// Every blob under `dir/blobs/sha256` that the layout's images do not name.
fn stray_blobs(dir: &std::path::Path) -> Vec<String> {
    let read = |hex: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).expect("blob"))
            .expect("json")
    };
    let hex = |d: &Value| {
        d.as_str()
            .expect("digest")
            .trim_start_matches("sha256:")
            .to_string()
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index"))
            .expect("index json");
    let mut named = std::collections::BTreeSet::new();
    let mut manifests: Vec<String> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| hex(&m["digest"]))
        .collect();
    while let Some(manifest) = manifests.pop() {
        let json = read(&manifest);
        named.insert(manifest);
        if let Some(nested) = json["manifests"].as_array() {
            manifests.extend(nested.iter().map(|m| hex(&m["digest"])));
            continue;
        }
        named.insert(hex(&json["config"]["digest"]));
        for layer in json["layers"].as_array().expect("layers") {
            named.insert(hex(&layer["digest"]));
        }
    }
    std::fs::read_dir(dir.join("blobs/sha256"))
        .expect("blobs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !named.contains(name))
        .collect()
}

#[test]
fn layers_written_while_advise_measures_are_the_ones_written_after_it() {
    // With a small --full-rebuild-size every changed layer is priced stretch by
    // stretch and spliced; for one image those are written early, for an index's
    // images (one plan after another) once the plan is made. The blobs must agree.
    let home = tempfile::tempdir().expect("home");
    let (amd64, arm64, attestation) = platform_images();
    let layout = tempfile::tempdir().expect("layout");
    testkit::write_oci_layout(
        layout.path(),
        &[
            (&amd64, Some("t")),
            (&arm64, Some("t")),
            (&attestation, Some("t")),
        ],
    )
    .expect("write layout");
    let source = format!("oci:{}:t", layout.path().display());
    let scratch = tempfile::tempdir().expect("scratch");
    let one = scratch.path().join("one");
    let single = json_of(
        home.path(),
        &[
            "apply",
            &source,
            "--platform",
            "linux/amd64",
            "--full-rebuild-size",
            "4KB",
            "--to",
            &format!("oci:{}:x", one.display()),
        ],
    );
    assert!(
        notes(&single)
            .iter()
            .any(|n| n.contains("written while advise measured")),
        "{:?}",
        notes(&single)
    );
    let spliced = single["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter(|l| l["after"]["written"] == "spliced")
        .count();
    assert!(spliced >= 2, "{single:#}");
    assert_eq!(stray_blobs(&one), Vec::<String>::new());

    let all = scratch.path().join("all");
    let multi = json_of(
        home.path(),
        &[
            "apply",
            &source,
            "--full-rebuild-size",
            "4KB",
            "--to",
            &format!("oci:{}:x", all.display()),
        ],
    );
    let amd = platforms(&multi)
        .iter()
        .find(|p| p["image"]["platform"] == "linux/amd64")
        .expect("amd64");
    assert!(!notes(amd)
        .iter()
        .any(|n| n.contains("written while advise measured")));
    let digests = |report: &Value| -> Vec<Value> {
        report["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["after"]["digest"].clone())
            .collect()
    };
    assert_eq!(digests(amd), digests(&single));
    assert_eq!(amd["manifest_digest"], single["manifest_digest"]);
    assert_eq!(stray_blobs(&all), Vec::<String>::new());
    let left: Vec<String> = std::fs::read_dir(scratch.path())
        .expect("scratch")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(left, ["all", "one"], "no early directory is left behind");
}
