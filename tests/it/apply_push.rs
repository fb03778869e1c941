//! `ballast apply --to REGISTRY/REPO:TAG`: pushed to the test registries, read back
//! by ballast and skopeo; untouched layers mounted, not uploaded; credentials found
//! as reading finds them and never shown.

use base64::Engine as _;
use serde_json::Value;

use crate::apply::{installed, layout_with, wasteful_image};
use crate::common::*;

fn notes(report: &Value) -> Vec<String> {
    report["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| n.as_str().expect("note").to_string())
        .collect()
}

fn layer_digests(report: &Value) -> Vec<Value> {
    report["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].clone())
        .collect()
}

#[test]
fn apply_pushes_to_a_registry_and_mounts_the_untouched_layers() {
    let home = tempfile::tempdir().expect("home");
    let image = wasteful_image().build().expect("build");
    let source = push(registry(), "apply-push/source:1", &[&image]);
    let target = format!("{}/apply-push/slim:1", registry().host);
    let report = json_of(home.path(), &["apply", &source, "--to", &target]);
    assert!(
        report["target"]
            .as_str()
            .is_some_and(|t| t.ends_with("apply-push/slim:1")),
        "{}",
        report["target"]
    );
    let source_view = inspect_json(home.path(), &[&source]);
    let pushed = inspect_json(home.path(), &[&target]);
    assert_eq!(pushed["image"]["digest"], report["manifest_digest"]);
    assert_eq!(
        pushed["totals"]["uncompressed_bytes"].as_u64(),
        report["after"]["uncompressed_bytes"].as_u64()
    );
    assert_eq!(
        report["after"]["uncompressed_bytes"],
        report["projected"]["uncompressed_bytes"]
    );
    // The layers apply left alone are the source's blobs, and went across the
    // registry by mount: the note counts them.
    let (before, after) = (layer_digests(&source_view), layer_digests(&pushed));
    let untouched = before.iter().zip(&after).filter(|(a, b)| a == b).count();
    assert!(untouched >= 1, "{before:?} {after:?}");
    let changed = before.len() - untouched;
    let note = notes(&report)
        .into_iter()
        .find(|n| n.starts_with("pushed "))
        .expect("a push note");
    // The config and the changed layers are new; the rest is mounted.
    let uploaded = changed + 1;
    assert!(
        note.starts_with(&format!("pushed {uploaded} blobs")),
        "{note}"
    );
    assert!(
        note.contains(&format!("{untouched} mounted from apply-push/source")),
        "{note}"
    );

    // The tag is there now: refused without --force (nothing pushed), and the same
    // image again with it.
    let error = expect_bad_input(home.path(), &["apply", &source, "--to", &target]);
    assert!(error.contains("already exists"), "{error}");
    let again = json_of(home.path(), &["apply", &source, "--to", &target, "--force"]);
    assert_eq!(again["manifest_digest"], report["manifest_digest"]);
    // Every blob is in the repository by now.
    let note = notes(&again)
        .into_iter()
        .find(|n| n.starts_with("pushed "))
        .expect("a push note");
    assert!(
        note.starts_with(&format!(
            "pushed 0 blobs (0 B), {} already",
            before.len() + 1
        )),
        "{note}"
    );
    // The source itself is never a target.
    let error = expect_bad_input(home.path(), &["apply", &source, "--to", &source, "--force"]);
    assert!(error.contains("source"), "{error}");

    if installed("skopeo") {
        let output = std::process::Command::new("skopeo")
            .args([
                "inspect",
                "--tls-verify=false",
                &format!("docker://{target}"),
            ])
            .output()
            .expect("skopeo");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let skopeo: Value = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(skopeo["Digest"], report["manifest_digest"]);
        assert_eq!(
            skopeo["Layers"].as_array().map(Vec::len),
            Some(before.len())
        );
    }
}

#[test]
fn apply_pushes_with_the_users_credentials_and_never_shows_them() {
    let home = tempfile::tempdir().expect("home");
    let image = wasteful_image().build().expect("build");
    let layout = layout_with(&image);
    let reference = format!("oci:{}:t", layout.path().display());
    let registry = auth_registry();
    let target = format!("{}/apply-push/private:1", registry.host);

    let error = expect_bad_input(home.path(), &["apply", &reference, "--to", &target]);
    assert!(error.contains("authentication refused"), "{error}");

    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{AUTH_PASSWORD}"));
    let dir = home.path().join(".docker");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.host),
    )
    .expect("config.json");
    for format in ["json", "table"] {
        let output = ballast(home.path())
            .args([
                "apply", &reference, "--to", &target, "--force", "--format", format,
            ])
            .output()
            .expect("run ballast");
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(AUTH_PASSWORD), "the password leaked: {text}");
            assert!(!text.contains(&auth), "the credentials leaked: {text}");
        }
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if format == "json" {
            let report: Value = serde_json::from_slice(&output.stdout).expect("json");
            let layers = report["layers"].as_array().expect("layers").len();
            // Nothing was in the repository: every blob went up.
            assert!(
                notes(&report)
                    .iter()
                    .any(|n| n.starts_with(&format!("pushed {} blobs", layers + 1))),
                "{:?}",
                notes(&report)
            );
            let pushed = inspect_json(home.path(), &[&target]);
            assert_eq!(pushed["image"]["digest"], report["manifest_digest"]);
        }
    }
}

#[test]
fn apply_pushes_behind_a_bearer_token_flow() {
    let home = tempfile::tempdir().expect("home");
    let registry = token_registry();
    let image = wasteful_image().build().expect("build");
    let source = push(registry, "apply-push/token-source:1", &[&image]);
    let target = format!("{}/apply-push/token-slim:1", registry.host);
    let output = ballast(home.path())
        .args([
            "apply",
            &source,
            "--to",
            &target,
            "--format",
            "json",
            "--username",
            AUTH_USER,
            "--password-stdin",
        ])
        .write_stdin(AUTH_PASSWORD)
        .output()
        .expect("run ballast");
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(AUTH_PASSWORD), "the password leaked: {text}");
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    // Read back through the same token flow, by digest and by tag.
    let pushed = ballast(home.path())
        .args([
            "inspect",
            &target,
            "--format",
            "json",
            "--username",
            AUTH_USER,
            "--password-stdin",
        ])
        .write_stdin(AUTH_PASSWORD)
        .output()
        .expect("run ballast");
    assert!(pushed.status.success());
    let pushed: Value = serde_json::from_slice(&pushed.stdout).expect("json");
    assert_eq!(pushed["image"]["digest"], report["manifest_digest"]);
    assert_eq!(
        report["after"]["uncompressed_bytes"],
        report["projected"]["uncompressed_bytes"]
    );
}

#[test]
fn apply_pushes_over_tls_to_a_registry_trusted_with_ca_cert() {
    let home = tempfile::tempdir().expect("home");
    let image = wasteful_image().build().expect("build");
    let layout = layout_with(&image);
    let reference = format!("oci:{}:t", layout.path().display());
    let registry = tls_registry();
    let ca = registry.ca_cert.as_ref().expect("the TLS registry's CA");
    let target = format!("{}/apply-push/tls:1", registry.host);
    // Untrusted, the push is refused before anything is sent.
    let error = expect_bad_input(home.path(), &["apply", &reference, "--to", &target]);
    assert!(
        error.contains("certificate") || error.contains("TLS"),
        "{error}"
    );
    let ca = ca.display().to_string();
    let report = json_of(
        home.path(),
        &["apply", &reference, "--to", &target, "--ca-cert", &ca],
    );
    let pushed = inspect_json(home.path(), &[&target, "--ca-cert", &ca]);
    assert_eq!(pushed["image"]["digest"], report["manifest_digest"]);
}
