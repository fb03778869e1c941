//! Images in a local engine's store, read through the Docker Engine API: dockerd, or
//! podman's compatible service (`podman system service`). `GET /images/{name}/get`
//! streams a `docker save` tar, which `save_stream` reads in one pass.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use super::save_stream::{self, StreamError, StreamOptions, StreamRequest, StreamedImage};
use super::{BlobReader, LayerDescriptor, SourceError};
use crate::digest::Digest;
use crate::reference::Engine;

const DOCKER_DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
const PODMAN_ROOT_SOCKET: &str = "/run/podman/podman.sock";
/// Error answers are a line of JSON; a longer one is cut.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

pub struct DaemonSource {
    engine: Engine,
    name: String,
    endpoint: Endpoint,
    /// The endpoint as the user would write it (`unix:///var/run/docker.sock`).
    host: String,
    connect_timeout: Duration,
    read_timeout: Duration,
    /// Layer digest → the member holding it, learnt from the first read.
    members: Mutex<HashMap<Digest, String>>,
}

impl DaemonSource {
    pub fn open(
        engine: Engine,
        name: &str,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Self, SourceError> {
        let host = match engine {
            Engine::Docker => docker_host()?,
            Engine::Podman => podman_host(),
        };
        let endpoint = parse_host(&host, engine)?;
        Ok(Self {
            engine,
            name: name.to_string(),
            endpoint,
            host,
            connect_timeout,
            read_timeout,
            members: Mutex::default(),
        })
    }

    pub fn display(&self) -> String {
        format!("{}:{}", self.engine.transport(), self.name)
    }

    fn engine_error(&self, reason: impl std::fmt::Display) -> SourceError {
        SourceError::Engine {
            engine: self.engine.transport(),
            host: self.host.clone(),
            reason: reason.to_string(),
        }
    }

    /// Exports the image and reads the export in one pass: resolved, every layer
    /// scanned and checked against the manifest.
    pub async fn stream_scan(&self, options: &StreamOptions) -> Result<StreamedImage, StreamError> {
        let body = self.export().await?;
        let request = StreamRequest {
            what: self.display(),
            wanted: None,
            options: options.clone(),
        };
        let streamed = save_stream::read_in_background(body, request).await?;
        if let Ok(mut members) = self.members.lock() {
            members.extend(streamed.members.clone());
        }
        Ok(streamed)
    }

    /// A layer read again (advice re-reads layers to measure changes): the engine
    /// exports the image once more and the stream is read up to that layer.
    pub async fn open_blob(&self, layer: &LayerDescriptor) -> Result<BlobReader, SourceError> {
        let member = self
            .members
            .lock()
            .ok()
            .and_then(|members| members.get(&layer.digest).cloned())
            .ok_or_else(|| SourceError::NotFound {
                what: format!("layer {} in {}", layer.digest, self.display()),
                hint: String::new(),
            })?;
        let mut body = self.export().await?;
        let what = self.display();
        let size = layer.size;
        tokio::task::spawn_blocking(move || {
            let found = save_stream::seek_member(&mut body, &member)
                .map_err(|e| SourceError::malformed(&what, e))?;
            match found {
                Some(member_size) if member_size == size => {
                    Ok(Box::new(io::Read::take(body, size)) as BlobReader)
                }
                Some(member_size) => Err(SourceError::malformed(
                    &what,
                    format!(
                        "{member} changed between two exports ({member_size} bytes, was {size})"
                    ),
                )),
                None => Err(SourceError::NotFound {
                    what: format!("{member} in a second export of {what}"),
                    hint: " (the image changed while ballast read it)".into(),
                }),
            }
        })
        .await
        .map_err(|e| SourceError::malformed(self.display(), e))?
    }

    /// `GET /images/{name}/get`: the export as a blocking byte stream.
    async fn export(&self) -> Result<BodyReader, SourceError> {
        let path = format!("/images/{}/get", self.name);
        let response = self.get(&path).await?;
        let status = response.status();
        if !status.is_success() {
            let message = error_message(response.into_body()).await;
            return Err(if status == http::StatusCode::NOT_FOUND {
                SourceError::NotFound {
                    what: format!(
                        "image {} in {} ({})",
                        self.name,
                        self.engine.name(),
                        self.host
                    ),
                    hint: if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    },
                }
            } else {
                self.engine_error(format!("HTTP {}: {message}", status.as_u16()))
            });
        }
        Ok(BodyReader::start(response.into_body(), self.read_timeout))
    }

    async fn get(&self, path: &str) -> Result<hyper::Response<hyper::body::Incoming>, SourceError> {
        let host_header = match &self.endpoint {
            Endpoint::Unix(_) => "docker".to_string(),
            Endpoint::Tcp(address) => address.clone(),
        };
        let request = hyper::Request::get(path)
            .header(http::header::HOST, host_header)
            .header(
                http::header::USER_AGENT,
                concat!("ballast/", env!("CARGO_PKG_VERSION")),
            )
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| self.engine_error(e))?;
        let connect = async {
            match &self.endpoint {
                Endpoint::Unix(socket) => tokio::net::UnixStream::connect(socket)
                    .await
                    .map(|s| Connection::Unix(TokioIo::new(s))),
                Endpoint::Tcp(address) => tokio::net::TcpStream::connect(address)
                    .await
                    .map(|s| Connection::Tcp(TokioIo::new(s))),
            }
        };
        let connection = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| self.engine_error("timed out connecting"))?
            .map_err(|e| self.connect_error(e))?;
        // The engine may spend a while before the first byte (dockerd 20.10 copies the
        // image to a temporary directory before it sends anything), so the wait for
        // the answer gets several idle timeouts.
        let answer = self.read_timeout.saturating_mul(10);
        let send = async {
            match connection {
                Connection::Unix(io) => send(io, request).await,
                Connection::Tcp(io) => send(io, request).await,
            }
        };
        tokio::time::timeout(answer, send)
            .await
            .map_err(|_| self.engine_error(format!("no answer in {} s", answer.as_secs())))?
            .map_err(|e| self.engine_error(e))
    }

    fn connect_error(&self, error: io::Error) -> SourceError {
        let reason = match error.kind() {
            io::ErrorKind::NotFound => match self.engine {
                Engine::Docker => "no such socket (is dockerd running? DOCKER_HOST or `docker context use` selects another engine)".to_string(),
                Engine::Podman => "no such socket (start it with `podman system service`; CONTAINER_HOST selects another)".to_string(),
            },
            io::ErrorKind::PermissionDenied => match self.engine {
                Engine::Docker => "permission denied (the socket belongs to root and the docker group; join the group or run as root)".to_string(),
                Engine::Podman => "permission denied (rootless podman's socket is $XDG_RUNTIME_DIR/podman/podman.sock)".to_string(),
            },
            io::ErrorKind::ConnectionRefused => "connection refused (nothing listens there)".to_string(),
            _ => error.to_string(),
        };
        self.engine_error(format!("cannot connect: {reason}"))
    }
}

/// The export's body as a blocking reader. A task gathers the engine's small frames
/// (chunks of 32 KiB or so) into batches of a megabyte, so the scanning thread
/// crosses over to the runtime a thousand times per gigabyte, not thirty thousand.
pub(super) struct BodyReader {
    batches: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

const BATCH_BYTES: usize = 1024 * 1024;

impl BodyReader {
    fn start(mut body: hyper::body::Incoming, idle: Duration) -> Self {
        let (sender, batches) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut batch = bytes::BytesMut::with_capacity(BATCH_BYTES);
            loop {
                let frame = match tokio::time::timeout(idle, body.frame()).await {
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the engine sent nothing for {} s", idle.as_secs()),
                    )),
                    Ok(None) => break,
                    Ok(Some(frame)) => frame.map_err(io::Error::other),
                };
                match frame {
                    Ok(frame) => {
                        if let Ok(data) = frame.into_data() {
                            batch.extend_from_slice(&data);
                        }
                        if batch.len() >= BATCH_BYTES
                            && sender.send(Ok(batch.split().freeze())).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = sender.send(Ok(batch.freeze())).await;
            }
        });
        Self {
            batches,
            current: Bytes::new(),
        }
    }
}

impl io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.batches.blocking_recv() {
                Some(Ok(batch)) => self.current = batch,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

enum Connection {
    Unix(TokioIo<tokio::net::UnixStream>),
    Tcp(TokioIo<tokio::net::TcpStream>),
}

async fn send<T>(
    io: T,
    request: hyper::Request<http_body_util::Empty<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    // The connection is driven for as long as the body is read.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.send_request(request).await
}

/// The `message` of an engine's JSON error, escaped for one line.
async fn error_message(body: hyper::body::Incoming) -> String {
    let limited = http_body_util::Limited::new(body, MAX_ERROR_BODY);
    let Ok(collected) = limited.collect().await else {
        return String::new();
    };
    let bytes = collected.to_bytes();
    let text = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
    text.trim()
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Docker => "the Docker engine",
            Engine::Podman => "podman",
        }
    }
}

/// `$DOCKER_HOST`, else the endpoint of the current `docker context`, else the
/// default socket.
fn docker_host() -> Result<String, SourceError> {
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return Ok(host);
    }
    let config_dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
    let Some(config_dir) = config_dir else {
        return Ok(DOCKER_DEFAULT_HOST.to_string());
    };
    let context = std::env::var("DOCKER_CONTEXT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| current_context(&config_dir.join("config.json")));
    match context.as_deref() {
        None | Some("default") => Ok(DOCKER_DEFAULT_HOST.to_string()),
        Some(name) => context_host(&config_dir, name),
    }
}

fn current_context(config: &Path) -> Option<String> {
    let bytes = super::read_metadata_file(config, "docker config").ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value
        .get("currentContext")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// docker keeps a context's endpoints in `contexts/meta/<sha256 of its name>/meta.json`.
fn context_host(config_dir: &Path, name: &str) -> Result<String, SourceError> {
    let meta = config_dir
        .join("contexts/meta")
        .join(Digest::of_bytes(name.as_bytes()).hex())
        .join("meta.json");
    let what = format!("docker context {name:?}");
    let bytes = super::read_metadata_file(&meta, &what)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| SourceError::malformed(&what, e))?;
    value
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .map(str::to_string)
        .ok_or_else(|| SourceError::malformed(what, "its meta.json names no docker endpoint"))
}

/// `$CONTAINER_HOST`, else the rootless socket, else the rootful one.
fn podman_host() -> String {
    if let Some(host) = std::env::var("CONTAINER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
    {
        return host;
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
        let socket = PathBuf::from(runtime).join("podman/podman.sock");
        if socket.exists() {
            return format!("unix://{}", socket.display());
        }
    }
    format!("unix://{PODMAN_ROOT_SOCKET}")
}

fn parse_host(host: &str, engine: Engine) -> Result<Endpoint, SourceError> {
    let unsupported = |reason: &str| SourceError::Engine {
        engine: engine.transport(),
        host: host.to_string(),
        reason: reason.to_string(),
    };
    if let Some(path) = host.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(unsupported("no socket path after unix://"));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    if let Some(address) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    {
        let address = address.trim_end_matches('/');
        if address.is_empty() || address.contains('/') {
            return Err(unsupported("expected tcp://HOST:PORT"));
        }
        let address = if address.contains(':') {
            address.to_string()
        } else {
            format!("{address}:2375")
        };
        return Ok(Endpoint::Tcp(address));
    }
    if host.starts_with("ssh://") {
        return Err(unsupported(
            "ssh:// engines are not read directly; forward the socket (ssh -L /tmp/engine.sock:/var/run/docker.sock HOST) and use unix:///tmp/engine.sock",
        ));
    }
    Err(unsupported("expected unix:///PATH or tcp://HOST:PORT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            parse_host("unix:///var/run/docker.sock", Engine::Docker).ok(),
            Some(Endpoint::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1:2375", Engine::Docker).ok(),
            Some(Endpoint::Tcp("127.0.0.1:2375".into()))
        );
        assert_eq!(
            parse_host("tcp://localhost", Engine::Docker).ok(),
            Some(Endpoint::Tcp("localhost:2375".into()))
        );
        assert!(parse_host("ssh://me@host", Engine::Docker).is_err());
        assert!(parse_host("npipe:////./pipe/docker_engine", Engine::Docker).is_err());
    }

    #[test]
    fn context_endpoint_is_read_from_its_meta_file() {
        let dir = tempfile::tempdir().expect("dir");
        let meta_dir = dir
            .path()
            .join("contexts/meta")
            .join(Digest::of_bytes(b"remote").hex());
        std::fs::create_dir_all(&meta_dir).expect("mkdir");
        std::fs::write(
            meta_dir.join("meta.json"),
            r#"{"Name":"remote","Endpoints":{"docker":{"Host":"unix:///tmp/remote.sock"}}}"#,
        )
        .expect("write");
        assert_eq!(
            context_host(dir.path(), "remote").ok().as_deref(),
            Some("unix:///tmp/remote.sock")
        );
        assert!(context_host(dir.path(), "missing").is_err());
    }
}
