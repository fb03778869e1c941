//! Real local engines for `docker-daemon:` and `podman:`: Debian's dockerd and podman's
//! API service, each with vfs storage, no networking and its socket in a temp dir,
//! started once per test binary and stopped when it exits (as the registry is).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Engine {
    /// `unix:///…/docker.sock`, for DOCKER_HOST or CONTAINER_HOST.
    pub host: String,
    /// dockerd also listens on `tcp://127.0.0.1:PORT` (plain HTTP, loopback only).
    pub tcp_host: Option<String>,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
    kind: Kind,
    _guard: Child,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Docker,
    Podman,
}

/// dockerd, or `None` (said loudly on stderr) where it cannot run: not root.
pub fn dockerd() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| start(Kind::Docker)).as_ref()
}

/// `podman system service`, or `None` (said loudly) where it cannot run.
pub fn podman() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| start(Kind::Podman)).as_ref()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn start(kind: Kind) -> Option<Engine> {
    let name = match kind {
        Kind::Docker => "dockerd",
        Kind::Podman => "podman",
    };
    if !is_root() {
        eprintln!(
            "\n!!! {name} NOT STARTED: the engine tests need root (CI runs them as root); docker-daemon:/podman: tests SKIPPED !!!\n"
        );
        return None;
    }
    // Unix socket paths are short (108 bytes): a temp dir directly under /tmp.
    let dir = tempfile::Builder::new()
        .prefix("ballast-engine")
        .tempdir_in("/tmp")
        .expect("engine dir");
    let socket = dir.path().join(format!("{name}.sock"));
    let host = format!("unix://{}", socket.display());
    let tcp_host = (kind == Kind::Docker).then(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        format!("tcp://127.0.0.1:{port}")
    });
    let root = dir.path();
    let mut argv: Vec<String> = match kind {
        Kind::Docker => vec![
            "dockerd".into(),
            format!("--data-root={}", root.join("data").display()),
            format!("--exec-root={}", root.join("exec").display()),
            format!("--pidfile={}", root.join("dockerd.pid").display()),
            format!("--host={host}"),
            format!("--host={}", tcp_host.clone().unwrap_or_default()),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--bridge=none".into(),
            "--storage-driver=vfs".into(),
        ],
        Kind::Podman => {
            let mut argv = podman_storage_args(root);
            argv.insert(0, "podman".into());
            argv.extend([
                "system".into(),
                "service".into(),
                "--time=0".into(),
                host.clone(),
            ]);
            argv
        }
    };
    let program = argv.remove(0);
    let log = std::fs::File::create(root.join("engine.log")).expect("log");
    let guard = Command::new("sh")
        .arg("-c")
        .arg("\"$@\" & pid=$!; cat >/dev/null; kill $pid 2>/dev/null; wait $pid 2>/dev/null")
        .arg("sh")
        .arg(&program)
        .args(&argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e} (scripts/test.sh installs it)"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() && ping(&socket) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{program} did not answer on {host}; log: {}",
            std::fs::read_to_string(root.join("engine.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Engine {
        host,
        tcp_host,
        socket,
        dir,
        kind,
        _guard: guard,
    })
}

/// `GET /_ping` answers OK once the engine serves its API.
fn ping(socket: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn podman_storage_args(root: &Path) -> Vec<String> {
    vec![
        "--storage-driver=vfs".into(),
        format!("--root={}", root.join("root").display()),
        format!("--runroot={}", root.join("run").display()),
        format!("--tmpdir={}", root.join("tmp").display()),
    ]
}

impl Engine {
    /// Loads a `docker save` tarball with the engine's own client (`docker load`,
    /// `podman load`).
    pub fn load(&self, archive: &Path) {
        let output = match self.kind {
            Kind::Docker => Command::new(docker_client())
                .arg("--host")
                .arg(&self.host)
                .arg("load")
                .arg("--input")
                .arg(archive)
                .output(),
            Kind::Podman => Command::new("podman")
                .args(podman_storage_args(self.dir.path()))
                .arg("load")
                .arg("--input")
                .arg(archive)
                .output(),
        }
        .expect("run the engine's load");
        assert!(
            output.status.success(),
            "load {} failed: {}",
            archive.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The engine's own answer for an image: `docker image inspect` as JSON.
    pub fn image_inspect(&self, name: &str) -> serde_json::Value {
        let output = match self.kind {
            Kind::Docker => Command::new(docker_client())
                .arg("--host")
                .arg(&self.host)
                .args(["image", "inspect", name])
                .output(),
            Kind::Podman => Command::new("podman")
                .args(podman_storage_args(self.dir.path()))
                .args(["image", "inspect", name])
                .output(),
        }
        .expect("image inspect");
        assert!(
            output.status.success(),
            "image inspect {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        list[0].clone()
    }

    /// The environment variable that points a client at this engine.
    pub fn host_variable(&self) -> &'static str {
        match self.kind {
            Kind::Docker => "DOCKER_HOST",
            Kind::Podman => "CONTAINER_HOST",
        }
    }
}

/// Debian's client, which matches Debian's dockerd (another may sit earlier on PATH).
fn docker_client() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}
