//! A registry built to hurt, on 127.0.0.1: it serves one real image (manifest, config,
//! layer) over plain HTTP and misbehaves in one chosen way, as an attacker's registry
//! would: bodies that never end, bytes that trickle, blobs that go on past their size.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use testkit::BuiltImage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/v2/` asks for a bearer token; the token endpoint answers 200 and never ends.
    EndlessToken,
    /// The manifest answer has no length and never ends.
    EndlessManifest,
    /// The manifest answer is an error (500) whose body never ends.
    EndlessErrorBody,
    /// The manifest arrives one byte a second: never idle, never done.
    TrickleManifest,
    /// The layer blob is sent whole, then endless bytes after it (chunked).
    BlobGoesOn,
    /// Everything as a registry should: the control case.
    Honest,
}

pub struct Hostile {
    pub host: String,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    pub fn start(mode: Mode, image: &BuiltImage) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Served {
            mode,
            host: host.clone(),
            manifest: image.manifest.clone(),
            manifest_type: image.manifest_media_type.clone(),
            blobs: image
                .blobs()
                .into_iter()
                .map(|(d, b)| (d.to_string(), b.to_vec()))
                .collect(),
            layer: image.layers[0].digest.to_string(),
            stop: Arc::clone(&stop),
        });
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if served.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let served = Arc::clone(&served);
                std::thread::spawn(move || {
                    let _ = served.connection(stream);
                });
            }
        });
        Hostile { host, stop }
    }

    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.host);
    }
}

struct Served {
    mode: Mode,
    host: String,
    manifest: Vec<u8>,
    manifest_type: String,
    blobs: std::collections::HashMap<String, Vec<u8>>,
    layer: String,
    stop: Arc<AtomicBool>,
}

impl Served {
    fn connection(&self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line)? == 0 {
                return Ok(());
            }
            let mut authorization = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        authorization = Some(value.trim().to_string());
                    }
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            self.answer(&path, authorization.as_deref(), &mut writer)?;
        }
    }

    fn answer(
        &self,
        path: &str,
        authorization: Option<&str>,
        out: &mut TcpStream,
    ) -> std::io::Result<()> {
        if path.starts_with("/token") {
            // The token endpoint of EndlessToken: a 200 that never ends.
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
            )?;
            out.write_all(b"{\"token\":\"")?;
            return self.endless(out, b"a");
        }
        if self.mode == Mode::EndlessToken && authorization.is_none() {
            let challenge = format!(
                "Bearer realm=\"http://{}/token\",service=\"hostile\"",
                self.host
            );
            let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}"#;
            write!(
                out,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )?;
            return out.write_all(body);
        }
        if path == "/v2/" {
            return write!(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{{}}");
        }
        if path.contains("/manifests/") {
            return match self.mode {
                Mode::EndlessManifest => {
                    write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nConnection: close\r\n\r\n",
                        self.manifest_type
                    )?;
                    out.write_all(b"{\"schemaVersion\":2,\"annotations\":{\"x\":\"")?;
                    self.endless(out, b"x")
                }
                Mode::EndlessErrorBody => {
                    write!(
                        out,
                        "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n"
                    )?;
                    self.endless(out, b"e")
                }
                Mode::TrickleManifest => {
                    write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                        self.manifest_type,
                        self.manifest.len()
                    )?;
                    for byte in &self.manifest {
                        if self.stop.load(Ordering::SeqCst) {
                            break;
                        }
                        out.write_all(&[*byte])?;
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    Ok(())
                }
                _ => {
                    write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                        self.manifest_type,
                        self.manifest.len()
                    )?;
                    out.write_all(&self.manifest)
                }
            };
        }
        if let Some((_, digest)) = path.split_once("/blobs/") {
            let digest = digest.split('?').next().unwrap_or(digest);
            let Some(blob) = self.blobs.get(digest) else {
                return write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            };
            if self.mode == Mode::BlobGoesOn && digest == self.layer {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                )?;
                write!(out, "{:x}\r\n", blob.len())?;
                out.write_all(blob)?;
                out.write_all(b"\r\n")?;
                let junk = vec![0x55u8; 64 * 1024];
                while !self.stop.load(Ordering::SeqCst) {
                    write!(out, "{:x}\r\n", junk.len())?;
                    out.write_all(&junk)?;
                    out.write_all(b"\r\n")?;
                }
                return Ok(());
            }
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                blob.len()
            )?;
            return out.write_all(blob);
        }
        write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    }

    /// Writes `unit` forever (until the client goes or the server stops).
    fn endless(&self, out: &mut TcpStream, unit: &[u8]) -> std::io::Result<()> {
        let block = unit.repeat(64 * 1024);
        while !self.stop.load(Ordering::SeqCst) {
            out.write_all(&block)?;
        }
        let _ = out.shutdown(Shutdown::Both);
        Ok(())
    }
}

/// Drains what a client sent; kept for modes that must read a body first.
fn drain(reader: &mut impl Read, bytes: u64) -> std::io::Result<()> {
    std::io::copy(&mut reader.take(bytes), &mut std::io::sink()).map(|_| ())
}
