//! Test harness: a real CNCF distribution registry (Debian's `docker-registry`) on
//! 127.0.0.1, real sample binaries, and the `ballast` binary run as a user would.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use testkit::samples::Samples;
use testkit::BuiltImage;

pub mod browser;
pub mod engine;
pub mod hostile;
pub mod proxy;
pub mod token;

pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

pub fn samples() -> Samples {
    Samples::new(
        Path::new(MANIFEST_DIR).join("testdata"),
        target_dir().join("ballast-samples"),
    )
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(MANIFEST_DIR).join("target"))
}

/// A registry process. It is started through a shell that kills it when our stdin
/// pipe closes, so it dies with the test binary even though statics are never dropped.
pub struct Registry {
    pub host: String,
    pub with_auth: bool,
    /// The CA certificate (PEM) of a TLS registry (for a self-signed one, the
    /// server's own certificate).
    pub ca_cert: Option<PathBuf>,
    /// A directory in docker's certs.d shape (`ca.crt`, `client.cert`, `client.key`)
    /// for registries that want a client certificate.
    pub cert_dir: Option<PathBuf>,
    pub storage: tempfile::TempDir,
    _guard: Child,
}

pub const AUTH_USER: &str = "ci-user";
pub const AUTH_PASSWORD: &str = "correct horse battery staple";

/// The anonymous registry, one per test binary, so every area (module) of `tests/it`
/// shares it: each pushes under repositories of its own (`advise/…`, `gate/…`).
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| start(Kind::Plain))
}

/// A registry behind bearer-token auth, with its token server.
pub fn token_registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| start(Kind::Token))
}

/// A registry serving HTTPS with a certificate from a private CA.
pub fn tls_registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| start(Kind::Tls))
}

/// A registry serving HTTPS with a self-signed certificate that is its own CA, made
/// with openssl the way the Docker docs' "deploy a registry" page makes it.
pub fn self_signed_registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| start(Kind::SelfSigned))
}

/// A registry that asks for a client certificate (mutual TLS).
pub fn mtls_registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| start(Kind::Mtls))
}

/// Where the registry keeps a blob's bytes, for tests that corrupt it behind its back.
pub fn blob_data_path(registry: &Registry, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    registry
        .storage
        .path()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// A registry behind htpasswd basic auth.
pub fn auth_registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| start(Kind::Basic))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Basic,
    Token,
    Tls,
    SelfSigned,
    Mtls,
}

fn start(kind: Kind) -> Registry {
    let with_auth = matches!(kind, Kind::Basic | Kind::Token);
    let with_tls = matches!(kind, Kind::Tls | Kind::SelfSigned | Kind::Mtls);
    let binary = "/usr/bin/docker-registry";
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: run scripts/test.sh, which installs Debian's docker-registry"
    );
    let storage = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let mut config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: ballast-test-secret\n",
        storage.path().join("data").display()
    );
    if kind == Kind::Token {
        let server = token::start(storage.path(), AUTH_USER, AUTH_PASSWORD);
        config.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            server.realm,
            token::SERVICE,
            token::ISSUER,
            server.root_cert.display()
        ));
    }
    if kind == Kind::Basic {
        let hash = bcrypt::hash(AUTH_PASSWORD, 5).expect("bcrypt");
        let htpasswd = storage.path().join("htpasswd");
        std::fs::write(&htpasswd, format!("{AUTH_USER}:{hash}\n")).expect("write htpasswd");
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: ballast-test\n    path: {}\n",
            htpasswd.display()
        ));
    }
    let mut ca_cert = None;
    let mut cert_dir = None;
    if with_tls {
        let (ca, cert, key) = if kind == Kind::SelfSigned {
            self_signed_certificate(storage.path())
        } else {
            certificates(storage.path())
        };
        config.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ));
        if kind == Kind::Mtls {
            let dir = storage.path().join("certs.d");
            let client_ca = client_certificates(&dir);
            std::fs::copy(&ca, dir.join("ca.crt")).expect("copy CA");
            config.push_str(&format!(
                "    clientcas:\n      - {}\n",
                client_ca.display()
            ));
            cert_dir = Some(dir);
        }
        ca_cert = Some(ca);
    }
    let config_path = storage.path().join("config.yml");
    std::fs::write(&config_path, config).expect("write registry config");
    let log = std::fs::File::create(storage.path().join("registry.log")).expect("log file");
    let guard = Command::new("sh")
        .arg("-c")
        .arg("\"$1\" serve \"$2\" & pid=$!; cat >/dev/null; kill $pid 2>/dev/null; wait $pid 2>/dev/null")
        .arg("sh")
        .arg(binary)
        .arg(&config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start docker-registry");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(&host).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "docker-registry did not listen on {host}; log: {}",
            std::fs::read_to_string(storage.path().join("registry.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Registry {
        host,
        with_auth,
        ca_cert,
        cert_dir,
        storage,
        _guard: guard,
    }
}

/// A private CA and a server certificate for 127.0.0.1 signed by it, as PEM files.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ballast test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let server_key = KeyPair::generate().expect("server key");
    let mut server_params = CertificateParams::new(Vec::<String>::new()).expect("server params");
    server_params.subject_alt_names =
        vec![SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))];
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write CA");
    std::fs::write(&paths.1, server.pem()).expect("write cert");
    std::fs::write(&paths.2, server_key.serialize_pem()).expect("write key");
    (paths.0, paths.1, paths.2)
}

/// What the Docker docs' "deploy a registry" page runs: `openssl req -x509` with
/// OpenSSL 3's defaults, which mark the certificate `CA:TRUE`.
fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (cert, key) = (dir.join("domain.crt"), dir.join("domain.key"));
    let status = Command::new("openssl")
        .args(["req", "-newkey", "rsa:4096", "-nodes", "-sha256", "-keyout"])
        .arg(&key)
        .args([
            "-addext",
            "subjectAltName = IP:127.0.0.1",
            "-x509",
            "-days",
            "365",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-out"])
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("run openssl (Debian's openssl package)");
    assert!(status.success(), "openssl req -x509 failed");
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl x509");
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "the fixture must be a certificate that is its own CA"
    );
    (cert.clone(), cert, key)
}

/// A client CA and a client certificate signed by it, in docker's certs.d names
/// (`client.cert`, `client.key`) inside `dir`; returns the client CA's path.
fn client_certificates(dir: &Path) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    std::fs::create_dir_all(dir).expect("certs.d dir");
    let ca_key = KeyPair::generate().expect("client CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ballast test client CA");
    let ca = ca_params.self_signed(&ca_key).expect("client CA");
    let client_key = KeyPair::generate().expect("client key");
    let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ballast ci");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let client = client_params
        .signed_by(&client_key, &issuer)
        .expect("client certificate");
    let ca_path = dir.parent().expect("parent").join("client-ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("write client CA");
    std::fs::write(dir.join("client.cert"), client.pem()).expect("write client cert");
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).expect("write key");
    ca_path
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Pushes images (several make an index) as `host/repo:tag`; returns the reference.
pub fn push(registry: &Registry, repo_tag: &str, images: &[&BuiltImage]) -> String {
    let reference_text = format!("{}/{repo_tag}", registry.host);
    let reference: oci_client::Reference = reference_text.parse().expect("reference");
    let options = ballast::registry::RegistryOptions {
        ca_certs: registry.ca_cert.iter().cloned().collect(),
        cert_dir: registry.cert_dir.clone(),
        ..Default::default()
    };
    let client = ballast::registry::build_client(&registry.host, &options).expect("client");
    let auth = if registry.with_auth {
        oci_client::secrets::RegistryAuth::Basic(AUTH_USER.into(), AUTH_PASSWORD.into())
    } else {
        oci_client::secrets::RegistryAuth::Anonymous
    };
    runtime().block_on(async {
        client
            .auth(&reference, &auth, oci_client::RegistryOperation::Push)
            .await
            .expect("registry auth for push");
        testkit::push(&client, &reference, images)
            .await
            .expect("push image");
    });
    reference_text
}

/// The `ballast` binary with an environment cleared of the user's registry
/// credentials and terminal settings.
pub fn ballast(home: &Path) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("ballast").expect("ballast binary");
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("NO_COLOR", "1");
    command
}

/// Runs `ballast inspect ARGS --format json`, asserting success; the parsed output.
pub fn inspect_json(home: &Path, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["inspect"];
    full.extend_from_slice(args);
    json_of(home, &full)
}

/// Runs `ballast ARGS --format json`, asserting success; the parsed output.
pub fn json_of(home: &Path, args: &[&str]) -> serde_json::Value {
    let stdout = succeed(ballast(home).args(args).args(["--format", "json"]));
    serde_json::from_slice(&stdout).expect("JSON output")
}

/// Runs a prepared ballast command, asserting success; its stdout.
pub fn succeed(command: &mut assert_cmd::Command) -> Vec<u8> {
    let output = command.output().expect("run ballast");
    assert!(
        output.status.success(),
        "{command:?} failed ({:?}): {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs ballast expecting exit 2 with a one-line error; returns that line.
pub fn expect_bad_input(home: &Path, args: &[&str]) -> String {
    let output = ballast(home).args(args).output().expect("run ballast");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(2),
        "expected exit 2 for {args:?}; stderr: {stderr}; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "expected one error line, got: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty(), "no partial output on error");
    stderr
}

/// Runs `ballast ARGS` (environment as `ballast()` sets it) under GNU time; its
/// output and its peak resident set in bytes (the child's own, from wait4's rusage).
pub fn ballast_peak_rss(home: &Path, args: &[&str]) -> (std::process::Output, u64) {
    ballast_peak_rss_env(home, args, &[])
}

/// As `ballast_peak_rss`, with extra environment variables. A run that has not ended
/// after `HANG_SECONDS` is killed and fails the test as a hang.
pub fn ballast_peak_rss_env(
    home: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
) -> (std::process::Output, u64) {
    const HANG_SECONDS: &str = "120";
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let output = Command::new("timeout")
        .args(["-s", "KILL", HANG_SECONDS, "/usr/bin/time"])
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report.path())
        .arg(assert_cmd::cargo::cargo_bin("ballast"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .output()
        .expect("run /usr/bin/time (scripts/test.sh installs Debian's time)");
    assert_ne!(
        output.status.code(),
        Some(137),
        "ballast {args:?} did not end within {HANG_SECONDS} s: killed as hung"
    );
    let kib: u64 = std::fs::read_to_string(report.path())
        .expect("time's report")
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("peak RSS in KiB");
    (output, kib * 1024)
}
