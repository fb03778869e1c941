//! `ballast apply --base REF`: the Go and Rust sample services, on a Debian-like base
//! with apt lists and a build log, moved onto a distroless-like base (this machine's
//! loader, glibc, libgcc_s, certificates): the base's blobs stay, one layer holds
//! the binary, umoci unpacks it and the service answers.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::samples::{self, GoBuild, RustBuild};
use testkit::{ImageSpec, LayerSpec};

use crate::apply::installed;
use crate::common::*;

const INSTALL: &str = "usr/local/bin/hello";

fn layout_with(image: &testkit::BuiltImage) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("layout dir");
    testkit::write_oci_layout(dir.path(), &[(image, Some("t"))]).expect("write layout");
    dir
}

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .expect("blob")
}

/// Runs `binary` with ADDR on a free loopback port and GETs `/`; the body.
fn serve_and_get(binary: &Path) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(binary)
        .env_clear()
        .env("ADDR", &addr)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match std::net::TcpStream::connect(&addr) {
            Ok(stream) => break Ok(stream),
            Err(e) if Instant::now() >= deadline => break Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let body = stream.map(|mut stream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        response
    });
    let _ = child.kill();
    let _ = child.wait();
    let response = body.unwrap_or_else(|e| panic!("{addr}: {e}"));
    assert!(response.contains(" 200 OK"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

#[test]
fn apply_base_moves_the_services_onto_the_base_and_they_still_answer() {
    let home = tempfile::tempdir().expect("home");
    let base = ImageSpec::new(vec![samples::distroless_like_base()])
        .build()
        .expect("base");
    let base_layout = layout_with(&base);
    let base_ref = format!("oci:{}:t", base_layout.path().display());
    let samples = samples();
    for (binary, answer) in [
        (
            samples.go(GoBuild::CgoOn).expect("go"),
            "hello from Go, you asked for /\n",
        ),
        (
            samples.rust(RustBuild::DebugInfo).expect("rust"),
            "hello from Rust, you asked for /\n",
        ),
    ] {
        let image = samples::service_image(&binary, INSTALL, true)
            .expect("spec")
            .build()
            .expect("image");
        let source = layout_with(&image);
        let reference = format!("oci:{}:t", source.path().display());
        let out = tempfile::tempdir().expect("out");
        let target = format!("oci:{}:slim", out.path().display());
        let report = json_of(
            home.path(),
            &["apply", &reference, "--to", &target, "--base", &base_ref],
        );
        let ids: Vec<&str> = report["applied"]
            .as_array()
            .expect("applied")
            .iter()
            .map(|a| a["id"].as_str().expect("id"))
            .collect();
        let base_change = report["applied"]
            .as_array()
            .expect("applied")
            .iter()
            .find(|a| {
                [
                    "static-base",
                    "distroless-cc",
                    "distroless-base",
                    "static-musl",
                ]
                .contains(&a["id"].as_str().unwrap_or(""))
            })
            .unwrap_or_else(|| panic!("no base change applied: {ids:?}"));
        assert_eq!(base_change["confidence"], "estimate");
        // The removals are part of the base change, not made beside it.
        assert!(!ids.contains(&"drop-deleted-files"), "{ids:?}");
        assert!(
            report["notes"].to_string().contains("rebased onto"),
            "{:#}",
            report["notes"]
        );

        // The base's blobs, then one layer; the annotations name the base.
        let after = inspect_json(home.path(), &[&target]);
        let layers = after["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), base.layers.len() + 1);
        for (layer, built) in layers.iter().zip(&base.layers) {
            assert_eq!(layer["digest"], built.digest.to_string());
        }
        let manifest: Value = serde_json::from_slice(&blob(
            out.path(),
            report["manifest_digest"].as_str().expect("digest"),
        ))
        .expect("manifest");
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.base.digest"],
            base.manifest_digest.to_string()
        );
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.base.name"],
            base_ref.as_str()
        );
        let config: Value = serde_json::from_slice(&blob(
            out.path(),
            manifest["config"]["digest"].as_str().expect("config"),
        ))
        .expect("config");
        assert_eq!(config["config"]["Entrypoint"][0], format!("/{INSTALL}"));
        let history = config["history"].as_array().expect("history");
        let layered = history.iter().filter(|h| h["empty_layer"] != true).count();
        assert_eq!(layered, layers.len(), "{history:#?}");

        // The estimate lands close, and the image is much smaller.
        let projected = report["projected"]["uncompressed_bytes"]
            .as_u64()
            .expect("p");
        let written = report["after"]["uncompressed_bytes"].as_u64().expect("a");
        assert!(
            (written as f64 - projected as f64).abs() <= projected as f64 * 0.02,
            "{written} written, {projected} projected"
        );
        assert!(
            report["after"]["compressed_bytes"].as_u64()
                < report["before"]["compressed_bytes"].as_u64()
        );

        if installed("umoci") {
            let bundle = out.path().join("bundle");
            let unpacked = std::process::Command::new("umoci")
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:slim", out.path().display()))
                .arg(&bundle)
                .output()
                .expect("umoci");
            assert!(
                unpacked.status.success(),
                "{}",
                String::from_utf8_lossy(&unpacked.stderr)
            );
            let rootfs = bundle.join("rootfs");
            assert!(!rootfs.join("var/lib/apt/lists").exists());
            assert!(!rootfs.join("var/lib/dpkg/status").exists());
            assert!(rootfs.join("etc/ssl").exists() || !Path::new("/etc/ssl").exists());
            assert_eq!(serve_and_get(&rootfs.join(INSTALL)), answer);
        } else {
            eprintln!("skipped: umoci is not installed (scripts/lib/deps.sh installs it)");
        }
    }
}

#[test]
fn apply_base_refuses_what_it_cannot_rebase() {
    let home = tempfile::tempdir().expect("home");
    let base = ImageSpec::new(vec![samples::distroless_like_base()])
        .build()
        .expect("base");
    let base_layout = layout_with(&base);
    let base_ref = format!("oci:{}:t", base_layout.path().display());
    // No application binary: nothing to carry over.
    let plain = ImageSpec::new(vec![LayerSpec::new(
        "COPY notes /srv",
        vec![testkit::Item::file("srv/notes.txt", "just text\n")],
    )])
    .build()
    .expect("image");
    let layout = layout_with(&plain);
    let reference = format!("oci:{}:t", layout.path().display());
    let scratch = tempfile::tempdir().expect("scratch");
    let target = format!("oci:{}:x", scratch.path().join("out").display());
    let error = expect_bad_input(
        home.path(),
        &["apply", &reference, "--to", &target, "--base", &base_ref],
    );
    assert!(error.contains("no base-image suggestion"), "{error}");
    let error = expect_bad_input(
        home.path(),
        &[
            "apply", &reference, "--to", &target, "--base", &base_ref, "--squash",
        ],
    );
    assert!(error.contains("cannot be used with"), "{error}");
    assert!(!scratch.path().join("out").exists());
}
