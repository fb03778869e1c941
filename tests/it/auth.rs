//! Credentials against a real registry behind htpasswd basic auth: every place docker
//! and podman keep them, and never a secret in what ballast prints.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use testkit::{ImageSpec, Item, LayerSpec};

use crate::common::*;

fn pushed() -> &'static str {
    static REF: OnceLock<String> = OnceLock::new();
    REF.get_or_init(|| {
        let image = ImageSpec::new(vec![LayerSpec::new(
            "COPY secret-app",
            vec![Item::file("app/data", b"behind auth".to_vec())],
        )])
        .build()
        .expect("build");
        push(auth_registry(), "private/app:1.0", &[&image])
    })
}

fn assert_no_secret(output: &std::process::Output) {
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(AUTH_PASSWORD), "the password leaked: {text}");
    }
}

fn run_ok(command: &mut assert_cmd::Command) {
    let output = command.output().expect("run ballast");
    assert_no_secret(&output);
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(report["largest_files"][0]["path"], "/app/data");
}

fn write_config(home: &Path, json: &str) {
    let dir = home.join(".docker");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("config.json"), json).expect("write config");
}

/// A credential helper script named docker-credential-NAME in `bin`.
fn write_helper(bin: &Path, name: &str, body: &str) {
    std::fs::create_dir_all(bin).expect("mkdir");
    let path = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write helper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn with_path(command: &mut assert_cmd::Command, bin: &Path) {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    command.env("PATH", path);
}

#[test]
fn anonymous_and_wrong_credentials_are_refused() {
    let home = tempfile::tempdir().expect("home");
    let line = expect_bad_input(home.path(), &["inspect", pushed()]);
    assert!(line.contains("authentication refused"), "{line}");

    let output = ballast(home.path())
        .args([
            "inspect",
            pushed(),
            "--username",
            AUTH_USER,
            "--password-stdin",
        ])
        .write_stdin("not the password\n")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("authentication refused"), "{stderr}");
    assert!(!stderr.contains("not the password"), "{stderr}");
}

#[test]
fn password_stdin() {
    let home = tempfile::tempdir().expect("home");
    run_ok(
        ballast(home.path())
            .args([
                "inspect",
                pushed(),
                "--format",
                "json",
                "--username",
                AUTH_USER,
                "--password-stdin",
            ])
            .write_stdin(format!("{AUTH_PASSWORD}\n")),
    );
}

#[test]
fn docker_config_auths_and_registry_auth_file() {
    let home = tempfile::tempdir().expect("home");
    let host = &auth_registry().host;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{AUTH_PASSWORD}"));
    write_config(
        home.path(),
        &format!(r#"{{"auths": {{"http://{host}": {{"auth": "{encoded}"}}}}}}"#),
    );
    run_ok(ballast(home.path()).args(["inspect", pushed(), "--format", "json"]));

    let other = tempfile::tempdir().expect("home");
    let auth_file = other.path().join("auth.json");
    std::fs::write(
        &auth_file,
        format!(r#"{{"auths": {{"{host}": {{"auth": "{encoded}"}}}}}}"#),
    )
    .expect("write");
    run_ok(
        ballast(other.path())
            .env("REGISTRY_AUTH_FILE", &auth_file)
            .args(["inspect", pushed(), "--format", "json"]),
    );
}

#[test]
fn credential_helpers_and_store() {
    let home = tempfile::tempdir().expect("home");
    let bin = home.path().join("bin");
    let host = &auth_registry().host;
    // The helper checks it was asked about the right server, as real helpers do.
    write_helper(
        &bin,
        "ballasttest",
        &format!(
            r#"read server; [ "$1" = get ] && [ "$server" = "{host}" ] || exit 1
printf '{{"ServerURL":"%s","Username":"{AUTH_USER}","Secret":"{AUTH_PASSWORD}"}}' "$server""#
        ),
    );
    write_config(
        home.path(),
        &format!(r#"{{"credHelpers": {{"{host}": "ballasttest"}}}}"#),
    );
    let mut command = ballast(home.path());
    with_path(&mut command, &bin);
    run_ok(command.args(["inspect", pushed(), "--format", "json"]));

    write_config(home.path(), r#"{"credsStore": "ballasttest"}"#);
    let mut command = ballast(home.path());
    with_path(&mut command, &bin);
    run_ok(command.args(["inspect", pushed(), "--format", "json"]));
}

#[test]
fn failing_helper_output_is_not_repeated() {
    let home = tempfile::tempdir().expect("home");
    let bin = home.path().join("bin");
    let host = &auth_registry().host;
    write_helper(
        &bin,
        "leaky",
        &format!("echo 'token {AUTH_PASSWORD} rejected'; echo '{AUTH_PASSWORD}' >&2; exit 3"),
    );
    write_config(
        home.path(),
        &format!(r#"{{"credHelpers": {{"{host}": "leaky"}}}}"#),
    );
    let mut command = ballast(home.path());
    with_path(&mut command, &bin);
    let output = command.args(["inspect", pushed()]).output().expect("run");
    assert_no_secret(&output);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("docker-credential-leaky"), "{stderr}");

    write_config(
        home.path(),
        &format!(r#"{{"credHelpers": {{"{host}": "absent"}}}}"#),
    );
    let line = expect_bad_input(home.path(), &["inspect", pushed()]);
    assert!(line.contains("docker-credential-absent"), "{line}");

    write_config(home.path(), "{ not json");
    let line = expect_bad_input(home.path(), &["inspect", pushed()]);
    assert!(line.contains("config.json"), "{line}");
}

#[test]
fn bearer_token_flow_anonymous_and_with_credentials() {
    let home = tempfile::tempdir().expect("home");
    let registry = token_registry();
    let public = ImageSpec::new(vec![LayerSpec::new(
        "COPY",
        vec![Item::file("pub/data", b"public bytes".to_vec())],
    )])
    .build()
    .expect("build");
    let private = ImageSpec::new(vec![LayerSpec::new(
        "COPY",
        vec![Item::file("app/data", b"token-protected".to_vec())],
    )])
    .build()
    .expect("build");
    let public_ref = push(registry, "public/base:1.0", &[&public]);
    let private_ref = push(registry, "private/app:1.0", &[&private]);

    // Anonymous token, as Docker Hub hands out for public images.
    let report = inspect_json(home.path(), &[&public_ref]);
    assert_eq!(report["largest_files"][0]["path"], "/pub/data");

    let line = expect_bad_input(home.path(), &["inspect", &private_ref]);
    assert!(
        line.contains("authentication refused") || line.contains("not found"),
        "{line}"
    );

    run_ok(
        ballast(home.path())
            .args([
                "inspect",
                &private_ref,
                "--format",
                "json",
                "--username",
                AUTH_USER,
                "--password-stdin",
            ])
            .write_stdin(AUTH_PASSWORD),
    );
}
