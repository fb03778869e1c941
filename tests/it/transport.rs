//! TLS with a private CA, Docker v2 schema 2 media types, and the tar details real
//! layers carry (GNU long names, hardlinks, symlinks, overwrites).

use testkit::{ImageSpec, Item, LayerSpec};

use crate::common::*;

fn small_image(name: &str) -> testkit::BuiltImage {
    ImageSpec::new(vec![LayerSpec::new(
        "COPY data",
        vec![Item::file(
            &format!("srv/{name}"),
            format!("payload {name}").into_bytes(),
        )],
    )])
    .build()
    .expect("build")
}

#[test]
fn tls_registry_needs_its_ca() {
    let home = tempfile::tempdir().expect("home");
    let registry = tls_registry();
    let ca = registry.ca_cert.clone().expect("CA");
    let reference = push(registry, "tls/app:1.0", &[&small_image("tls")]);
    let line = expect_bad_input(
        home.path(),
        &["inspect", &reference, "--ca-cert", "/nonexistent/ca.pem"],
    );
    assert!(line.contains("--ca-cert"), "{line}");
    // A CA we don't trust: the certificate is refused.
    let other = tempfile::tempdir().expect("dir");
    let untrusted = other.path().join("untrusted.pem");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["elsewhere".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    std::fs::write(&untrusted, cert.pem()).expect("write");
    let line = expect_bad_input(
        home.path(),
        &[
            "inspect",
            &reference,
            "--ca-cert",
            &untrusted.display().to_string(),
        ],
    );
    assert!(line.contains(&registry.host), "{line}");
    let report = inspect_json(
        home.path(),
        &[&reference, "--ca-cert", &ca.display().to_string()],
    );
    assert_eq!(report["largest_files"][0]["path"], "/srv/tls");
}

#[test]
fn insecure_uses_plain_http() {
    let home = tempfile::tempdir().expect("home");
    let reference = push(registry(), "insecure/app:1.0", &[&small_image("insecure")]);
    let report = inspect_json(home.path(), &[&reference, "--insecure"]);
    assert_eq!(report["largest_files"][0]["path"], "/srv/insecure");
}

#[test]
fn docker_schema2_manifests_and_manifest_lists() {
    let home = tempfile::tempdir().expect("home");
    let mut spec = ImageSpec::new(vec![
        LayerSpec::new(
            "ADD base",
            vec![Item::file("etc/os-release", b"ID=debian\n".to_vec())],
        ),
        LayerSpec::new("COPY app", vec![Item::file("app/bin", vec![7u8; 5000])]),
    ]);
    spec.docker_media_types = true;
    let image = spec.build().expect("build");
    let reference = push(registry(), "docker/app:1.0", &[&image]);
    let report = inspect_json(home.path(), &[&reference]);
    assert_eq!(
        report["image"]["media_type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        report["layers"][0]["media_type"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_eq!(report["totals"]["files"], 2);
}

#[test]
fn long_names_links_and_overwrites() {
    let home = tempfile::tempdir().expect("home");
    let long_dir = "opt/".to_string() + &"very-long-directory-name/".repeat(8);
    let long_path = format!("{long_dir}payload.bin");
    assert!(long_path.len() > 100, "needs a GNU long name");
    let image = ImageSpec::new(vec![
        LayerSpec::new(
            "ADD base",
            vec![
                Item::file(&long_path, vec![1u8; 3000]),
                Item::file("etc/config", vec![2u8; 1000]),
                Item::Hardlink {
                    path: "etc/config-link".into(),
                    target: "etc/config".into(),
                },
                Item::Symlink {
                    path: "etc/config-sym".into(),
                    target: "config".into(),
                },
            ],
        ),
        LayerSpec::new(
            "RUN rewrite config",
            vec![Item::file("etc/config", vec![3u8; 400])],
        ),
    ])
    .build()
    .expect("build");
    let dir = tempfile::tempdir().expect("dir");
    testkit::write_oci_layout(dir.path(), &[(&image, Some("t"))]).expect("layout");
    let report = inspect_json(home.path(), &[&format!("oci:{}:t", dir.path().display())]);
    assert_eq!(report["largest_files"][0]["path"], format!("/{long_path}"));
    assert_eq!(report["largest_files"][0]["size"], 3000);
    assert_eq!(report["waste"]["overwritten_bytes"], 1000);
    assert_eq!(report["waste"]["files"][0]["cause"], "overwritten");
    // Links carry no bytes of their own.
    assert_eq!(report["totals"]["visible_bytes"], 3400);
    assert_eq!(report["totals"]["files"], 2);
}

/// A forward proxy speaking HTTP CONNECT, as corporate networks run: records each
/// tunnel's target and relays bytes both ways without seeing inside the TLS.
struct ConnectProxy {
    address: String,
    tunnels: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let tunnels = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&tunnels);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = std::sync::Arc::clone(&seen);
                std::thread::spawn(move || -> std::io::Result<()> {
                    let mut reader = BufReader::new(client.try_clone()?);
                    let mut request = String::new();
                    reader.read_line(&mut request)?;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
                            break;
                        }
                    }
                    let mut parts = request.split_whitespace();
                    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
                        let mut client = client;
                        client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")?;
                        return Ok(());
                    };
                    seen.lock().expect("log").push(target.to_string());
                    let upstream = std::net::TcpStream::connect(target)?;
                    let mut client_writer = client.try_clone()?;
                    client_writer.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
                    let mut upstream_reader = upstream.try_clone()?;
                    let mut upstream_writer = upstream;
                    let to_client = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut upstream_reader, &mut client_writer);
                        let _ = client_writer.shutdown(std::net::Shutdown::Both);
                    });
                    let _ = std::io::copy(&mut reader, &mut upstream_writer);
                    let _ = upstream_writer.shutdown(std::net::Shutdown::Both);
                    let _ = to_client.join();
                    Ok(())
                });
            }
        });
        Self { address, tunnels }
    }
}

/// `HTTPS_PROXY` is honoured: the TLS registry is reached through a CONNECT tunnel,
/// and `NO_PROXY` naming it goes direct.
#[test]
fn https_proxy_is_used_and_no_proxy_bypasses_it() {
    let home = tempfile::tempdir().expect("home");
    let registry = tls_registry();
    let ca = registry.ca_cert.clone().expect("CA").display().to_string();
    let reference = push(registry, "proxied/app:1.0", &[&small_image("proxied")]);
    let proxy = ConnectProxy::start();
    let stdout = succeed(
        ballast(home.path())
            .env("HTTPS_PROXY", format!("http://{}", proxy.address))
            .args(["inspect", &reference, "--ca-cert", &ca, "--format", "json"]),
    );
    let report: serde_json::Value = serde_json::from_slice(&stdout).expect("json");
    assert_eq!(report["largest_files"][0]["path"], "/srv/proxied");
    let tunnels = proxy.tunnels.lock().expect("log").clone();
    assert!(!tunnels.is_empty(), "no CONNECT reached the proxy");
    assert!(
        tunnels.iter().all(|t| t == &registry.host),
        "tunnels to {tunnels:?}, registry {}",
        registry.host
    );

    let bypassed = ConnectProxy::start();
    let host_only = registry
        .host
        .rsplit_once(':')
        .map_or(registry.host.as_str(), |(host, _)| host);
    succeed(
        ballast(home.path())
            .env("HTTPS_PROXY", format!("http://{}", bypassed.address))
            .env("NO_PROXY", host_only)
            .args(["inspect", &reference, "--ca-cert", &ca, "--format", "json"]),
    );
    assert!(bypassed.tunnels.lock().expect("log").is_empty());
}

#[test]
fn self_signed_certificate_that_is_its_own_ca_is_trusted_when_given() {
    let home = tempfile::tempdir().expect("home");
    let registry = self_signed_registry();
    let cert = registry.ca_cert.clone().expect("certificate");
    let reference = push(
        registry,
        "selfsigned/app:1.0",
        &[&small_image("selfsigned")],
    );
    let report = inspect_json(
        home.path(),
        &[&reference, "--ca-cert", &cert.display().to_string()],
    );
    assert_eq!(report["largest_files"][0]["path"], "/srv/selfsigned");

    // Not trusted (TLS asked for by trusting some other CA): refused at once, not
    // retried as if the network had failed.
    let line = expect_bad_input(
        home.path(),
        &[
            "inspect",
            &reference,
            "--retries",
            "5",
            "--ca-cert",
            &tls_registry()
                .ca_cert
                .clone()
                .expect("CA")
                .display()
                .to_string(),
        ],
    );
    assert!(line.contains("certificate"), "{line}");
    assert!(
        !line.contains("attempts"),
        "a certificate error is not transient: {line}"
    );
    // Nothing trusted: a loopback registry gets plain HTTP, and the error says what
    // to do about a registry that speaks TLS.
    let line = expect_bad_input(home.path(), &["inspect", &reference]);
    assert!(line.contains("--ca-cert"), "{line}");

    // Trusted byte for byte, but reached by a name it does not carry: refused.
    let port = registry.host.rsplit_once(':').expect("port").1;
    let by_name = reference.replace(&registry.host, &format!("localhost:{port}"));
    let line = expect_bad_input(
        home.path(),
        &[
            "inspect",
            &by_name,
            "--ca-cert",
            &cert.display().to_string(),
        ],
    );
    assert!(line.contains("certificate"), "{line}");
}

#[test]
fn an_expired_self_signed_certificate_is_refused_even_when_trusted() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let home = tempfile::tempdir().expect("home");
    let dir = tempfile::tempdir().expect("dir");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.subject_alt_names = vec![SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).expect("cert");
    let (cert_path, key_path) = (dir.path().join("old.crt"), dir.path().join("old.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    let server = TlsEcho::start(&cert_path, &key_path);
    let line = expect_bad_input(
        home.path(),
        &[
            "inspect",
            &format!("{}/old/app:1", server.host),
            "--ca-cert",
            &cert_path.display().to_string(),
        ],
    );
    assert!(line.to_lowercase().contains("expired"), "{line}");
}

/// A TLS endpoint that completes no request: enough to see a handshake refused.
struct TlsEcho {
    host: String,
    _guard: std::process::Child,
}

impl TlsEcho {
    fn start(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let guard = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let host = format!("127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "s_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            host,
            _guard: guard,
        }
    }
}

impl Drop for TlsEcho {
    fn drop(&mut self) {
        let _ = self._guard.kill();
        let _ = self._guard.wait();
    }
}

#[test]
fn certs_d_directory_turns_on_tls_for_a_loopback_registry() {
    let home = tempfile::tempdir().expect("home");
    let registry = self_signed_registry();
    let cert = registry.ca_cert.clone().expect("certificate");
    let reference = push(registry, "certsd/app:1.0", &[&small_image("certsd")]);
    // Without trust configured, a loopback registry is spoken to over plain HTTP,
    // which a TLS port cannot answer.
    expect_bad_input(home.path(), &["inspect", &reference, "--retries", "1"]);
    // podman's per-user directory, as ~/.config/containers/certs.d/HOST:PORT/ca.crt.
    let dir = home
        .path()
        .join(".config/containers/certs.d")
        .join(&registry.host);
    std::fs::create_dir_all(&dir).expect("certs.d");
    std::fs::copy(&cert, dir.join("ca.crt")).expect("copy");
    let report = inspect_json(home.path(), &[&reference]);
    assert_eq!(report["largest_files"][0]["path"], "/srv/certsd");
}

#[test]
fn mutual_tls_with_a_client_certificate_from_cert_dir() {
    let home = tempfile::tempdir().expect("home");
    let registry = mtls_registry();
    let cert_dir = registry.cert_dir.clone().expect("cert dir");
    let reference = push(registry, "mtls/app:1.0", &[&small_image("mtls")]);
    let report = inspect_json(
        home.path(),
        &[&reference, "--cert-dir", &cert_dir.display().to_string()],
    );
    assert_eq!(report["largest_files"][0]["path"], "/srv/mtls");

    // The CA alone: the registry refuses a client without a certificate.
    let ca_only = tempfile::tempdir().expect("dir");
    std::fs::copy(cert_dir.join("ca.crt"), ca_only.path().join("ca.crt")).expect("copy");
    expect_bad_input(
        home.path(),
        &[
            "inspect",
            &reference,
            "--retries",
            "1",
            "--cert-dir",
            &ca_only.path().display().to_string(),
        ],
    );
    // A key without its certificate is a configuration mistake, named as such.
    let broken = tempfile::tempdir().expect("dir");
    std::fs::copy(
        cert_dir.join("client.key"),
        broken.path().join("client.key"),
    )
    .expect("copy");
    let line = expect_bad_input(
        home.path(),
        &[
            "inspect",
            &reference,
            "--cert-dir",
            &broken.path().display().to_string(),
        ],
    );
    assert!(line.contains("client.key"), "{line}");
}
