//! Images where users have them: in the local Docker and Podman stores
//! (`docker-daemon:`, `podman:`, read through each engine's API socket), and as archive
//! files (`oci-archive:` as skopeo writes it, `docker save` in Docker 25's OCI layout,
//! archives given as pipes). Each is checked against the same image read from the
//! registry.

use std::path::Path;

use serde_json::Value;
use testkit::samples::{self, GoBuild};
use testkit::BuiltImage;

use crate::common::engine::{dockerd, podman, Engine};
use crate::common::*;

fn go_service() -> BuiltImage {
    samples::service_image(
        &samples().go(GoBuild::CgoOff).expect("go sample"),
        "app/server",
        true,
    )
    .expect("spec")
    .build()
    .expect("build")
}

/// What must agree between two reads of one image whatever its layers' compression:
/// every uncompressed figure, the files, the waste and the binaries.
fn content(report: &Value) -> Value {
    let layers: Vec<Value> = report["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            serde_json::json!({
                "uncompressed_bytes": l["uncompressed_bytes"],
                "files": l["files"],
                "created_by": l["created_by"],
                "diff_id": l["diff_id"],
            })
        })
        .collect();
    serde_json::json!({
        "uncompressed_bytes": report["totals"]["uncompressed_bytes"],
        "files": report["totals"]["files"],
        "layers": layers,
        "waste": report["waste"],
        "binaries": report["binaries"],
        "largest_files": report["largest_files"],
        "config_digest": report["image"]["config_digest"],
        "platform": report["image"]["platform"],
    })
}

fn engine_inspect(home: &Path, engine: &Engine, reference: &str) -> Value {
    let stdout = succeed(
        ballast(home)
            .env(engine.host_variable(), &engine.host)
            .args(["inspect", reference, "--format", "json"]),
    );
    serde_json::from_slice(&stdout).expect("JSON")
}

fn engine_inspect_without_host(home: &Path, reference: &str) -> Value {
    let stdout = succeed(ballast(home).args(["inspect", reference, "--format", "json"]));
    serde_json::from_slice(&stdout).expect("JSON")
}

fn load(engine: &Engine, image: &BuiltImage, repo_tag: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let archive = dir.path().join("image.tar");
    testkit::write_docker_archive(&archive, image, repo_tag).expect("archive");
    engine.load(&archive);
}

#[test]
fn docker_daemon_reads_the_image_docker_load_stored() {
    let Some(docker) = dockerd() else { return };
    let home = tempfile::tempdir().expect("home");
    let image = go_service();
    load(docker, &image, "ballast-test/go:1");
    let from_registry = inspect_json(home.path(), &[&push(registry(), "engine/go:1", &[&image])]);
    let from_daemon = engine_inspect(home.path(), docker, "docker-daemon:ballast-test/go:1");
    assert_eq!(content(&from_daemon), content(&from_registry));
    assert_eq!(
        from_daemon["image"]["reference"],
        "docker-daemon:ballast-test/go:1"
    );
    // Layers come out of `docker save` uncompressed: both sizes are the tar's.
    for layer in from_daemon["layers"].as_array().expect("layers") {
        assert_eq!(layer["compressed_bytes"], layer["uncompressed_bytes"]);
    }
    // The engine's own view agrees: the image ID is the config digest.
    let engine_view = docker.image_inspect("ballast-test/go:1");
    assert_eq!(engine_view["Id"], from_daemon["image"]["config_digest"]);

    // By image ID, as `docker images` shows it, in full and short.
    let id = engine_view["Id"].as_str().expect("id").to_string();
    let by_id = engine_inspect(home.path(), docker, &format!("docker-daemon:{id}"));
    assert_eq!(content(&by_id), content(&from_registry));
    let short = &id[..7 + 12];
    let by_short_id = engine_inspect(home.path(), docker, &format!("docker-daemon:{short}"));
    assert_eq!(content(&by_short_id), content(&from_registry));

    // The same engine over tcp:// (DOCKER_HOST=tcp://HOST:PORT).
    let tcp = docker.tcp_host.clone().expect("dockerd listens on tcp too");
    let stdout = succeed(ballast(home.path()).env("DOCKER_HOST", &tcp).args([
        "inspect",
        "docker-daemon:ballast-test/go:1",
        "--format",
        "json",
    ]));
    let over_tcp: Value = serde_json::from_slice(&stdout).expect("JSON");
    assert_eq!(content(&over_tcp), content(&from_registry));

    // A docker context names the engine when DOCKER_HOST does not.
    let config = home.path().join(".docker");
    let meta = config
        .join("contexts/meta")
        .join(ballast::digest::Digest::of_bytes(b"ballast-test").hex());
    std::fs::create_dir_all(&meta).expect("context dir");
    std::fs::write(
        meta.join("meta.json"),
        serde_json::json!({"Name": "ballast-test", "Endpoints": {"docker": {"Host": docker.host}}})
            .to_string(),
    )
    .expect("meta.json");
    std::fs::write(
        config.join("config.json"),
        r#"{"currentContext": "ballast-test"}"#,
    )
    .expect("config.json");
    let by_context = engine_inspect_without_host(home.path(), "docker-daemon:ballast-test/go:1");
    assert_eq!(content(&by_context), content(&from_registry));
    std::fs::remove_file(config.join("config.json")).expect("remove");

    // A bare name means :latest, as the docker CLI has it.
    load(docker, &image, "ballast-test/latest-only:latest");
    let bare = engine_inspect(
        home.path(),
        docker,
        "docker-daemon:ballast-test/latest-only",
    );
    assert_eq!(content(&bare), content(&from_registry));
}

#[test]
fn advise_reads_a_daemon_image_twice() {
    let Some(docker) = dockerd() else { return };
    let home = tempfile::tempdir().expect("home");
    let image = go_service();
    load(docker, &image, "ballast-test/advise:1");
    let stdout = succeed(
        ballast(home.path())
            .env("DOCKER_HOST", &docker.host)
            .args(["advise", "docker-daemon:ballast-test/advise:1", "--no-zstd"])
            .args(["--format", "json"]),
    );
    let report: Value = serde_json::from_slice(&stdout).expect("JSON");
    let deleted = report["suggestions"]
        .as_array()
        .expect("suggestions")
        .iter()
        .find(|s| s["id"] == "drop-deleted-files")
        .expect("the build log a later layer deletes");
    // The saving measured by re-reading the layer from a second export: on an
    // uncompressed layer it is the tar entry itself, to the byte.
    assert!(
        deleted["saved_bytes"].as_u64().expect("bytes") > 3_000_000,
        "{deleted:#}"
    );
    assert_eq!(deleted["saved_bytes"], deleted["saved_compressed_bytes"]);
}

#[test]
fn podman_reads_the_image_podman_load_stored() {
    let Some(podman) = podman() else { return };
    let home = tempfile::tempdir().expect("home");
    let image = go_service();
    load(podman, &image, "localhost/ballast-test/go:1");
    let from_registry = inspect_json(
        home.path(),
        &[&push(registry(), "engine/podman-go:1", &[&image])],
    );
    // podman resolves short names in its own store.
    for name in [
        "podman:localhost/ballast-test/go:1",
        "podman:ballast-test/go:1",
    ] {
        let from_podman = engine_inspect(home.path(), podman, name);
        assert_eq!(content(&from_podman), content(&from_registry), "{name}");
    }
    // The rootless socket under $XDG_RUNTIME_DIR is found without CONTAINER_HOST.
    let runtime = tempfile::tempdir().expect("runtime dir");
    std::fs::create_dir_all(runtime.path().join("podman")).expect("mkdir");
    std::os::unix::fs::symlink(&podman.socket, runtime.path().join("podman/podman.sock"))
        .expect("symlink");
    let stdout = succeed(
        ballast(home.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .args([
                "inspect",
                "podman:localhost/ballast-test/go:1",
                "--format",
                "json",
            ]),
    );
    let found: Value = serde_json::from_slice(&stdout).expect("JSON");
    assert_eq!(content(&found), content(&from_registry));
}

#[test]
fn engine_errors_are_one_line_and_exit_2() {
    let home = tempfile::tempdir().expect("home");
    // Nothing listens at the socket: it is named.
    let missing = home.path().join("nothing.sock");
    let output = ballast(home.path())
        .env("DOCKER_HOST", format!("unix://{}", missing.display()))
        .args(["inspect", "docker-daemon:app:1"])
        .output()
        .expect("run");
    let line = one_error_line(&output);
    assert!(line.contains(&missing.display().to_string()), "{line}");
    assert!(line.contains("no such socket"), "{line}");
    // An unsupported transport is said so.
    let output = ballast(home.path())
        .env("DOCKER_HOST", "ssh://me@build-host")
        .args(["inspect", "docker-daemon:app:1"])
        .output()
        .expect("run");
    assert!(one_error_line(&output).contains("ssh://"));

    let Some(docker) = dockerd() else { return };
    let output = ballast(home.path())
        .env("DOCKER_HOST", &docker.host)
        .args(["inspect", "docker-daemon:ballast-test/no-such-image:1"])
        .output()
        .expect("run");
    let line = one_error_line(&output);
    assert!(line.contains("not found"), "{line}");
    assert!(line.contains("no-such-image"), "{line}");
    if let Some(podman) = podman() {
        let output = ballast(home.path())
            .env("CONTAINER_HOST", &podman.host)
            .args(["inspect", "podman:ballast-test/no-such-image:1"])
            .output()
            .expect("run");
        assert!(one_error_line(&output).contains("not found"));
    }

    // Permission denied: the socket is root's (mode 0660); nobody may not use it.
    let binary = assert_cmd::cargo::cargo_bin("ballast");
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&binary)
        .args(["inspect", "docker-daemon:ballast-test/go:1"])
        .env_clear()
        .env("HOME", "/nonexistent")
        .env("DOCKER_HOST", &docker.host)
        .output()
        .expect("setpriv");
    let line = one_error_line(&output);
    assert!(line.contains("permission denied"), "{line}");
    assert!(line.contains(&docker.host), "{line}");
}

fn one_error_line(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(output.stdout.is_empty());
    stderr
}

/// A `docker save` as Docker 25+ writes it with the containerd image store: an OCI
/// layout (the registry's compressed blobs) plus docker's manifest.json.
fn write_docker25_archive(file: &Path, image: &BuiltImage, repo_tag: &str) {
    let layout = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(layout.path(), &[(image, Some(repo_tag))]).expect("layout");
    let blob = |digest: &ballast::digest::Digest| format!("blobs/sha256/{}", digest.hex());
    let manifest = serde_json::json!([{
        "Config": blob(&image.config_digest),
        "RepoTags": [repo_tag],
        "Layers": image.layers.iter().map(|l| blob(&l.digest)).collect::<Vec<_>>(),
    }]);
    std::fs::write(
        layout.path().join("manifest.json"),
        serde_json::to_vec(&manifest).expect("json"),
    )
    .expect("manifest.json");
    let mut builder = tar::Builder::new(std::fs::File::create(file).expect("archive"));
    // Docker writes blobs/ first, then index.json and manifest.json.
    builder
        .append_dir_all("blobs", layout.path().join("blobs"))
        .expect("blobs");
    for name in ["index.json", "manifest.json", "oci-layout"] {
        builder
            .append_path_with_name(layout.path().join(name), name)
            .expect("append");
    }
    builder.finish().expect("finish");
}

/// Runs ballast with `archive` on its standard input, as `docker save … | ballast`.
fn inspect_piped(home: &Path, archive: &Path, reference: &str) -> Value {
    let stdout = succeed(
        ballast(home)
            .args(["inspect", reference, "--format", "json"])
            .pipe_stdin(archive)
            .expect("stdin"),
    );
    serde_json::from_slice(&stdout).expect("JSON")
}

#[test]
fn docker25_save_layout_read_from_a_file_and_from_a_pipe() {
    let home = tempfile::tempdir().expect("home");
    let image = go_service();
    let dir = tempfile::tempdir().expect("dir");
    let archive = dir.path().join("docker25.tar");
    write_docker25_archive(&archive, &image, "ballast-test/go:25");
    let from_registry = inspect_json(
        home.path(),
        &[&push(registry(), "engine/docker25:1", &[&image])],
    );
    let from_file = inspect_json(
        home.path(),
        &[&format!("docker-archive:{}", archive.display())],
    );
    // The same blobs as the registry's: compressed sizes agree too.
    assert_eq!(content(&from_file), content(&from_registry));
    assert_eq!(from_file["totals"], from_registry["totals"]);
    // A pipe can't be indexed: it is read front to back, manifest.json last.
    let piped = inspect_piped(home.path(), &archive, "docker-archive:/dev/stdin");
    assert_eq!(content(&piped), content(&from_registry));
    assert_eq!(piped["totals"], from_registry["totals"]);
    // A command that must read layers again says why a pipe cannot serve it.
    let output = ballast(home.path())
        .args(["advise", "docker-archive:/dev/stdin"])
        .pipe_stdin(&archive)
        .expect("stdin")
        .output()
        .expect("run");
    assert!(one_error_line(&output).contains("read only once"));
}

fn skopeo(args: &[&str]) {
    let output = std::process::Command::new("skopeo")
        .args(["--insecure-policy"])
        .args(args)
        .output()
        .expect("run skopeo (scripts/test.sh installs Debian's skopeo)");
    assert!(
        output.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn oci_archive_as_skopeo_writes_it() {
    let home = tempfile::tempdir().expect("home");
    let image = go_service();
    let reference = push(registry(), "engine/oci-archive:1", &[&image]);
    let dir = tempfile::tempdir().expect("dir");
    let archive = dir.path().join("app.oci.tar");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci-archive:{}:v1", archive.display()),
    ]);
    let from_registry = inspect_json(home.path(), &[&reference]);
    for reference in [
        format!("oci-archive:{}", archive.display()),
        format!("oci-archive:{}:v1", archive.display()),
    ] {
        let from_archive = inspect_json(home.path(), &[&reference]);
        assert_eq!(
            content(&from_archive),
            content(&from_registry),
            "{reference}"
        );
        // The registry's blobs, byte for byte: sizes are exact, as for oci:.
        assert_eq!(
            from_archive["totals"], from_registry["totals"],
            "{reference}"
        );
        assert_eq!(
            from_archive["layers"], from_registry["layers"],
            "{reference}"
        );
    }
    let piped = inspect_piped(home.path(), &archive, "oci-archive:/dev/stdin:v1");
    assert_eq!(piped["layers"], from_registry["layers"]);
    let line = expect_bad_input(
        home.path(),
        &["inspect", &format!("oci-archive:{}:v2", archive.display())],
    );
    assert!(line.contains("v2"), "{line}");
    // advise reads layers again, in place.
    let report = json_of(
        home.path(),
        &[
            "advise",
            &format!("oci-archive:{}", archive.display()),
            "--no-zstd",
        ],
    );
    assert!(report["suggestions"]
        .as_array()
        .expect("list")
        .iter()
        .any(|s| s["id"] == "drop-deleted-files"));
}
