//! Every kind of bad input ends in one clear line on stderr and exit code 2.

use std::io::Write;
use std::path::Path;

use ballast::digest::Digest;
use ballast::layer::Compression;
use testkit::{BuiltLayer, ImageSpec, Item, LayerSpec};

use crate::common::*;

fn small_layer(name: &str) -> LayerSpec {
    LayerSpec::new(
        "COPY file",
        vec![Item::file(
            &format!("data/{name}"),
            format!("unique content of {name}").into_bytes(),
        )],
    )
}

/// An image whose layer blobs are given as raw bytes (digests computed to match them),
/// so tests can describe broken compressed data that is nonetheless what the
/// manifest promised.
fn layout_with_raw_layer(dir: &Path, blob: Vec<u8>, media_type: &str, tar: &[u8]) {
    let layer = BuiltLayer {
        digest: Digest::of_bytes(&blob),
        diff_id: Digest::of_bytes(tar),
        blob,
        media_type: media_type.to_string(),
    };
    let image = ImageSpec::new(vec![])
        .assemble(vec![layer])
        .expect("assemble");
    testkit::write_oci_layout(dir, &[(&image, Some("t"))]).expect("layout");
}

/// Replaces the manifest blob with `bytes` and points index.json at it.
fn replace_manifest(dir: &Path, bytes: &[u8]) {
    let digest = Digest::of_bytes(bytes);
    std::fs::write(dir.join("blobs/sha256").join(digest.hex()), bytes).expect("write manifest");
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest.to_string(), "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("write index");
}

fn oci(dir: &Path) -> String {
    format!("oci:{}:t", dir.display())
}

#[test]
fn bad_references() {
    let home = tempfile::tempdir().expect("home");
    let line = expect_bad_input(home.path(), &["inspect", "UPPER/Case:1"]);
    assert!(line.contains("invalid image reference"), "{line}");
    let line = expect_bad_input(home.path(), &["inspect", "containers-storage:app"]);
    assert!(line.contains("unsupported transport"), "{line}");
    let line = expect_bad_input(home.path(), &["inspect", "app@sha256:1234"]);
    assert!(line.contains("invalid"), "{line}");
    let line = expect_bad_input(home.path(), &["inspect", "oci:/nonexistent/layout"]);
    assert!(line.contains("not found"), "{line}");
    let line = expect_bad_input(home.path(), &["inspect", "docker-archive:/nonexistent.tar"]);
    assert!(line.contains("not found"), "{line}");
    let line = expect_bad_input(home.path(), &["inspect"]);
    assert!(
        line.contains("IMAGE") || line.contains("required"),
        "{line}"
    );
    let line = expect_bad_input(home.path(), &["inspect", "x", "--max-layer-size", "lots"]);
    assert!(line.contains("--max-layer-size"), "{line}");
}

#[test]
fn missing_repository_and_tag() {
    let home = tempfile::tempdir().expect("home");
    let registry = registry();
    let line = expect_bad_input(
        home.path(),
        &["inspect", &format!("{}/nothing/here:1.0", registry.host)],
    );
    assert!(line.contains("not found"), "{line}");
    let image = ImageSpec::new(vec![small_layer("missing-tag")])
        .build()
        .expect("build");
    push(registry, "errors/present:1.0", &[&image]);
    let line = expect_bad_input(
        home.path(),
        &["inspect", &format!("{}/errors/present:2.0", registry.host)],
    );
    assert!(
        line.contains("not found") && line.contains("errors/present:2.0"),
        "{line}"
    );
}

#[test]
fn registry_blob_digest_mismatch() {
    let home = tempfile::tempdir().expect("home");
    let registry = registry();
    let image = ImageSpec::new(vec![small_layer("corrupt-me")])
        .build()
        .expect("build");
    let reference = push(registry, "errors/corrupt:1.0", &[&image]);
    let layer = &image.layers[0];
    let path = blob_data_path(registry, &layer.digest.to_string());
    let mut bytes = std::fs::read(&path).expect("blob in registry storage");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).expect("corrupt blob");
    let line = expect_bad_input(home.path(), &["inspect", &reference]);
    assert!(
        line.contains("digest mismatch") && line.contains(&layer.digest.to_string()),
        "{line}"
    );
}

#[test]
fn layout_digest_mismatch_and_malformed_documents() {
    let home = tempfile::tempdir().expect("home");
    let image = ImageSpec::new(vec![small_layer("layout")])
        .build()
        .expect("build");

    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let blob = dir
        .path()
        .join("blobs/sha256")
        .join(image.layers[0].digest.hex());
    let mut bytes = std::fs::read(&blob).expect("blob");
    bytes[20] ^= 0xff;
    std::fs::write(&blob, bytes).expect("corrupt");
    let line = expect_bad_input(home.path(), &["inspect", &oci(dir.path())]);
    assert!(line.contains("digest mismatch"), "{line}");

    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    replace_manifest(dir.path(), b"{\"schemaVersion\": 2, \"layers\": [ oops");
    let line = expect_bad_input(home.path(), &["inspect", &oci(dir.path())]);
    assert!(line.contains("malformed"), "{line}");

    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    std::fs::write(dir.path().join("index.json"), b"[1,2").expect("write");
    let line = expect_bad_input(home.path(), &["inspect", &oci(dir.path())]);
    assert!(
        line.contains("index.json") && line.contains("malformed"),
        "{line}"
    );

    // A config that is valid JSON but not an image config.
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let config = b"{\"hello\": \"world\"}".to_vec();
    let config_digest = Digest::of_bytes(&config);
    std::fs::write(
        dir.path().join("blobs/sha256").join(config_digest.hex()),
        &config,
    )
    .expect("config");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&image.manifest).expect("manifest");
    manifest["config"]["digest"] = config_digest.to_string().into();
    manifest["config"]["size"] = config.len().into();
    replace_manifest(dir.path(), &serde_json::to_vec(&manifest).expect("json"));
    let line = expect_bad_input(home.path(), &["inspect", &oci(dir.path())]);
    assert!(
        line.contains("config") && line.contains("malformed"),
        "{line}"
    );

    // An unknown layer media type.
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&image.manifest).expect("manifest");
    manifest["layers"][0]["mediaType"] = "application/x-mystery".into();
    replace_manifest(dir.path(), &serde_json::to_vec(&manifest).expect("json"));
    let line = expect_bad_input(home.path(), &["inspect", &oci(dir.path())]);
    assert!(
        line.contains("unsupported media type") && line.contains("application/x-mystery"),
        "{line}"
    );

    // Missing tag in the layout.
    let line = expect_bad_input(
        home.path(),
        &["inspect", &format!("oci:{}:nope", dir.path().display())],
    );
    assert!(
        line.contains("not found") && line.contains("nope"),
        "{line}"
    );
}

#[test]
fn truncated_and_corrupt_compression() {
    let home = tempfile::tempdir().expect("home");
    let data: Vec<u8> = (0..400_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let tar = testkit::tar_bytes(&[Item::file("data.bin", data)]).expect("tar");

    let gzip = testkit::compress(&tar, Compression::Gzip, None).expect("gzip");
    let dir = tempfile::tempdir().expect("dir");
    layout_with_raw_layer(
        dir.path(),
        gzip[..gzip.len() / 2].to_vec(),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &tar,
    );
    let line = expect_bad_input(home.path(), &["inspect", &oci(dir.path())]);
    assert!(line.contains("corrupt or truncated gzip"), "{line}");

    let mut zstd = testkit::compress(&tar, Compression::Zstd, None).expect("zstd");
    let middle = zstd.len() / 2;
    for byte in &mut zstd[middle..middle + 64] {
        *byte = 0xA5;
    }
    let dir = tempfile::tempdir().expect("dir");
    layout_with_raw_layer(
        dir.path(),
        zstd,
        "application/vnd.oci.image.layer.v1.tar+zstd",
        &tar,
    );
    let line = expect_bad_input(home.path(), &["inspect", &oci(dir.path())]);
    // zstd frames carry no checksum by default: garbage may decode, and then the
    // diff_id check is what catches it.
    assert!(
        line.contains("corrupt or truncated zstd") || line.contains("diff_id mismatch"),
        "{line}"
    );

    // gzip data under a tar media type is not a tar.
    let dir = tempfile::tempdir().expect("dir");
    layout_with_raw_layer(
        dir.path(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar",
        &tar,
    );
    let line = expect_bad_input(home.path(), &["inspect", &oci(dir.path())]);
    assert!(line.contains("layer sha256:"), "{line}");
}

#[test]
fn decompression_limits() {
    let home = tempfile::tempdir().expect("home");
    // 80 MB of zeros gzip to about 80 kB: a 1000:1 ratio, the shape of a bomb.
    let tar = testkit::tar_bytes(&[Item::file("zeros", vec![0u8; 80 * 1024 * 1024])]).expect("tar");
    let gzip = testkit::compress(&tar, Compression::Gzip, Some(9)).expect("gzip");
    let dir = tempfile::tempdir().expect("dir");
    layout_with_raw_layer(
        dir.path(),
        gzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &tar,
    );
    let line = expect_bad_input(
        home.path(),
        &["inspect", &oci(dir.path()), "--max-ratio", "100"],
    );
    assert!(
        line.contains("decompression ratio") && line.contains("--max-ratio"),
        "{line}"
    );
    let line = expect_bad_input(
        home.path(),
        &["inspect", &oci(dir.path()), "--max-layer-size", "10MB"],
    );
    assert!(
        line.contains("decompressed size") && line.contains("--max-layer-size"),
        "{line}"
    );
    let line = expect_bad_input(
        home.path(),
        &["inspect", &oci(dir.path()), "--max-entries", "0"],
    );
    assert!(line.contains("tar entries"), "{line}");
}

#[test]
fn hostile_tar_paths() {
    let home = tempfile::tempdir().expect("home");
    // Only what climbs above the root is refused (a leading `/` is the root itself,
    // as containerd and docker read it).
    for path in ["../../etc/passwd", "/../etc/shadow", "a/../../b"] {
        let tar = testkit::tar_bytes(&[Item::RawFile {
            path: path.into(),
            data: b"x".to_vec(),
        }])
        .expect("tar");
        let dir = tempfile::tempdir().expect("dir");
        layout_with_raw_layer(
            dir.path(),
            tar.clone(),
            "application/vnd.oci.image.layer.v1.tar",
            &tar,
        );
        let line = expect_bad_input(home.path(), &["inspect", &oci(dir.path())]);
        assert!(line.contains("bad tar entry"), "{path}: {line}");
    }
}

#[test]
fn dot_dot_within_the_root_and_absolute_names_are_normalised() {
    let home = tempfile::tempdir().expect("home");
    let tar = testkit::tar_bytes(&[
        Item::RawFile {
            path: "a/b/../c".into(),
            data: b"inside".to_vec(),
        },
        Item::RawFile {
            path: "/etc/shadow".into(),
            data: b"rooted".to_vec(),
        },
    ])
    .expect("tar");
    let dir = tempfile::tempdir().expect("dir");
    layout_with_raw_layer(
        dir.path(),
        tar.clone(),
        "application/vnd.oci.image.layer.v1.tar",
        &tar,
    );
    let report = inspect_json(home.path(), &[&oci(dir.path())]);
    let mut paths: Vec<&str> = report["largest_files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/a/c", "/etc/shadow"]);
}

#[test]
fn not_an_archive() {
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("junk.tar");
    std::fs::File::create(&file)
        .and_then(|mut f| f.write_all(&[0x42; 3000]))
        .expect("write");
    let line = expect_bad_input(
        home.path(),
        &["inspect", &format!("docker-archive:{}", file.display())],
    );
    assert!(line.contains("docker-archive"), "{line}");
}
