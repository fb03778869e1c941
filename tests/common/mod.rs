//! Test harness: a real CNCF distribution registry (Debian's `docker-registry`) on
//! 127.0.0.1, real sample binaries, and the `ballast` binary run as a user would.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ballast::build::samples::Samples;
use ballast::build::BuiltImage;

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
    /// The CA certificate (PEM) of a TLS registry.
    pub ca_cert: Option<PathBuf>,
    pub storage: tempfile::TempDir,
    _guard: Child,
}

pub const AUTH_USER: &str = "ci-user";
pub const AUTH_PASSWORD: &str = "correct horse battery staple";

/// The anonymous registry, one per test binary.
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
}

fn start(kind: Kind) -> Registry {
    let with_auth = matches!(kind, Kind::Basic | Kind::Token);
    let with_tls = kind == Kind::Tls;
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
    if with_tls {
        let (ca, cert, key) = certificates(storage.path());
        config.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ));
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
        ballast::build::push(&client, &reference, images)
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
