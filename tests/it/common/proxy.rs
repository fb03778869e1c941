//! A fault-injecting HTTP/1.1 reverse proxy on 127.0.0.1, put in front of the real
//! registry to play the network and registry failures ballast must survive: a blob
//! cut mid-transfer, 503/429 answers, stalls, a flipped byte, a dropped connection.
//!
//! ```ignore
//! let proxy = Proxy::start(&registry().host, vec![Fault::cut(300_000).on(Target::Blob(digest)).first(1)]);
//! let reference = proxy.reference("repo:tag"); // 127.0.0.1:PORT/repo:tag, plain HTTP
//! // ... run ballast ...
//! let log = proxy.log(); // one `Exchange` per request, in arrival order
//! ```
//!
//! Every request is forwarded on a fresh upstream connection (`Connection: close`
//! upstream), so the proxy only has to frame the responses it relays to the client:
//! `Content-Length`, chunked, or until EOF (then the client connection is closed).
//! Client connections are kept alive as HTTP/1.1 allows. `Range` and every other
//! header pass through unchanged, so the registry answers resumes with 206.
//!
//! Each injection counts the requests its target matches and applies to the first K
//! of them (or all). When several injections match a request, the first one still
//! within its count is applied. Dropping the proxy stops it: the listener and every
//! open connection are shut down, stalls wake up.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest request or response head accepted (request line or status line plus headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Requests served on one client connection before the proxy closes it.
const MAX_REQUESTS_PER_CONNECTION: usize = 1000;
/// Connections accepted over a proxy's life; later ones are closed at once.
const MAX_CONNECTIONS: usize = 2000;
/// A client connection idle this long is closed.
const CLIENT_IDLE: Duration = Duration::from_secs(120);
/// Upstream must answer (and keep sending) within this.
const UPSTREAM_IDLE: Duration = Duration::from_secs(60);
const RELAY_CHUNK: usize = 64 * 1024;

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Relay the response headers and `after` body bytes, then close the connection.
    Cut { after: u64 },
    /// Close the connection when the blob's byte `offset` is reached, wherever the
    /// response started: a resume from at or past it is cut before its first byte,
    /// so retries can never get past this point.
    CutAtBlobOffset { offset: u64 },
    /// Answer this status with an OCI error body instead of forwarding the request;
    /// `retry_after` adds a `Retry-After: SECONDS` header.
    Status { code: u16, retry_after: Option<u64> },
    /// Read the request, then close the connection without a byte of answer.
    Drop,
    /// Forward the request but send nothing for `duration` before the response
    /// headers, then carry on. A duration longer than the test is "nothing at all".
    StallBeforeHeaders { duration: Duration },
    /// Relay the headers and `after` body bytes, send nothing for `duration`, then
    /// carry on (`after: 0` stalls right after the headers).
    StallBody { after: u64, duration: Duration },
    /// Invert the byte at this offset of the blob. For a 206 answer the offset is
    /// taken in the whole blob (from `Content-Range`), not in the body.
    FlipByte { offset: u64 },
}

impl Fault {
    pub fn cut(after: u64) -> Self {
        Fault::Cut { after }
    }

    pub fn cut_at_blob_offset(offset: u64) -> Self {
        Fault::CutAtBlobOffset { offset }
    }

    /// 503 Service Unavailable.
    pub fn unavailable() -> Self {
        Fault::Status {
            code: 503,
            retry_after: None,
        }
    }

    /// 429 Too Many Requests with `Retry-After: SECONDS`.
    pub fn too_many_requests(retry_after: u64) -> Self {
        Fault::Status {
            code: 429,
            retry_after: Some(retry_after),
        }
    }

    /// 503 Service Unavailable with `Retry-After: SECONDS` (a maintenance window).
    pub fn unavailable_for(retry_after: u64) -> Self {
        Fault::Status {
            code: 503,
            retry_after: Some(retry_after),
        }
    }

    pub fn stall_before_headers(duration: Duration) -> Self {
        Fault::StallBeforeHeaders { duration }
    }

    pub fn stall_body(after: u64, duration: Duration) -> Self {
        Fault::StallBody { after, duration }
    }

    pub fn flip_byte(offset: u64) -> Self {
        Fault::FlipByte { offset }
    }

    /// This fault for every request `target` matches (narrow it with `.first(k)`).
    pub fn on(self, target: Target) -> Injection {
        Injection {
            fault: self,
            target,
            first: None,
        }
    }
}

/// Which requests an injection looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every request, `/v2/` probes included.
    Any,
    /// `GET /v2/<name>/blobs/sha256:<hex>`: configs and layers.
    BlobGets,
    /// GETs of the blob with this digest (`sha256:<hex>`).
    Blob(String),
    /// `GET` and `HEAD` of `/v2/<name>/manifests/<reference>`.
    Manifests,
}

impl Target {
    pub fn blob(digest: impl ToString) -> Self {
        Target::Blob(digest.to_string())
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        match self {
            Target::Any => true,
            Target::BlobGets => method == "GET" && blob_digest(path).is_some(),
            Target::Blob(digest) => method == "GET" && blob_digest(path) == Some(digest.as_str()),
            Target::Manifests => {
                (method == "GET" || method == "HEAD")
                    && path_without_query(path).contains("/manifests/")
            }
        }
    }
}

/// A fault, where it applies, and to how many of the matching requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub fault: Fault,
    pub target: Target,
    /// Apply to the first K matching requests only; `None` for all of them.
    pub first: Option<usize>,
}

impl Injection {
    pub fn first(mut self, k: usize) -> Self {
        self.first = Some(k);
        self
    }
}

/// One request as the proxy saw and answered it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Client connection number (0, 1, ...): requests sharing one were kept alive.
    pub connection: usize,
    /// When the request head was read, since the proxy started.
    pub at: Duration,
    pub method: String,
    pub path: String,
    /// The request's `Range` header.
    pub range: Option<String>,
    /// Status sent to the client; `None` when nothing was (dropped, stalled, failed).
    pub status: Option<u16>,
    /// The response's `Content-Range` header.
    pub content_range: Option<String>,
    /// The response's `Content-Length`, when it had one.
    pub content_length: Option<u64>,
    /// Body bytes written to the client.
    pub body_bytes: u64,
    /// The fault injected into this exchange, if any.
    pub fault: Option<Fault>,
    /// The whole response body was relayed.
    pub complete: bool,
    /// Why relaying stopped early, for debugging failed tests.
    pub error: Option<String>,
}

impl Exchange {
    /// The digest of a blob GET's path.
    pub fn blob_digest(&self) -> Option<&str> {
        if self.method == "GET" {
            blob_digest(&self.path)
        } else {
            None
        }
    }

    /// N of a `Range: bytes=N-...` header.
    pub fn range_start(&self) -> Option<u64> {
        let spec = self.range.as_deref()?.trim().strip_prefix("bytes=")?;
        spec.split('-').next()?.trim().parse().ok()
    }

    pub fn is_cut(&self) -> bool {
        matches!(
            self.fault,
            Some(Fault::Cut { .. } | Fault::CutAtBlobOffset { .. })
        ) && !self.complete
    }
}

struct Armed {
    injection: Injection,
    matched: AtomicUsize,
}

struct State {
    upstream: String,
    started: Instant,
    injections: Vec<Armed>,
    log: Mutex<Vec<Exchange>>,
    shutdown: AtomicBool,
    /// Clones of the sockets open now, shut down when the proxy is dropped.
    sockets: Mutex<HashMap<usize, TcpStream>>,
    next_socket: AtomicUsize,
}

/// Keeps a socket in `State::sockets` while it is in use.
struct Tracked<'a> {
    state: &'a State,
    id: usize,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        lock(&self.state.sockets).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn track(&self, stream: &TcpStream) -> Tracked<'_> {
        let id = self.next_socket.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&self.sockets).insert(id, clone);
        }
        if self.stopping() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        Tracked { state: self, id }
    }

    /// The fault for a request: every injection counts the requests it matches.
    fn choose(&self, method: &str, path: &str) -> Option<Fault> {
        let mut chosen = None;
        for armed in &self.injections {
            if !armed.injection.target.matches(method, path) {
                continue;
            }
            let seen = armed.matched.fetch_add(1, Ordering::SeqCst);
            let within = armed.injection.first.is_none_or(|k| seen < k);
            if within && chosen.is_none() {
                chosen = Some(armed.injection.fault.clone());
            }
        }
        chosen
    }

    fn record(&self, exchange: Exchange) -> usize {
        let mut log = lock(&self.log);
        log.push(exchange);
        log.len() - 1
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut Exchange)) {
        if let Some(exchange) = lock(&self.log).get_mut(index) {
            change(exchange);
        }
    }

    /// Sleeps, waking early when the proxy is dropped.
    fn pause(&self, duration: Duration) {
        let until = Instant::now() + duration;
        while !self.stopping() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }
}

/// A running proxy. Stops when dropped.
pub struct Proxy {
    /// `127.0.0.1:PORT`: a loopback registry host, so ballast speaks plain HTTP.
    pub host: String,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy in front of `upstream` (`HOST:PORT`, plain HTTP) with these faults.
    pub fn start(upstream: &str, injections: Vec<Injection>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy on loopback");
        let address = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            started: Instant::now(),
            injections: injections
                .into_iter()
                .map(|injection| Armed {
                    injection,
                    matched: AtomicUsize::new(0),
                })
                .collect(),
            log: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
            sockets: Mutex::new(HashMap::new()),
            next_socket: AtomicUsize::new(0),
        });
        let accept_state = Arc::clone(&state);
        let accept = std::thread::Builder::new()
            .name(format!("proxy-{}", address.port()))
            .spawn(move || accept_loop(listener, accept_state))
            .expect("spawn the proxy thread");
        Proxy {
            host: address.to_string(),
            state,
            accept: Some(accept),
        }
    }

    /// A proxy that injects nothing.
    pub fn passthrough(upstream: &str) -> Proxy {
        Proxy::start(upstream, Vec::new())
    }

    /// `127.0.0.1:PORT/<repo_tag>`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host)
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Exchange> {
        lock(&self.state.log).clone()
    }

    /// The GETs of one blob, in arrival order.
    pub fn blob_gets(&self, digest: &str) -> Vec<Exchange> {
        self.log()
            .into_iter()
            .filter(|e| e.blob_digest() == Some(digest))
            .collect()
    }

    /// How many requests had a fault injected.
    pub fn faults_injected(&self) -> usize {
        lock(&self.state.log)
            .iter()
            .filter(|e| e.fault.is_some())
            .count()
    }

    /// The log, one line per request, for assertion messages.
    pub fn describe(&self) -> String {
        self.log()
            .iter()
            .map(|e| {
                format!(
                    "#{} +{:.2}s {} {} range={:?} -> {:?} {:?} body={}{} fault={:?}{}",
                    e.connection,
                    e.at.as_secs_f64(),
                    e.method,
                    e.path,
                    e.range,
                    e.status,
                    e.content_range,
                    e.body_bytes,
                    if e.complete { "" } else { " (incomplete)" },
                    e.fault,
                    e.error
                        .as_ref()
                        .map(|e| format!(" error={e}"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        for (_, socket) in lock(&self.state.sockets).drain() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        // Wake the accept loop.
        if let Ok(address) = self.host.parse::<SocketAddr>() {
            let _ = TcpStream::connect_timeout(&address, Duration::from_secs(1));
        }
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for (number, incoming) in listener.incoming().enumerate() {
        if state.stopping() {
            break;
        }
        let Ok(stream) = incoming else { continue };
        if number >= MAX_CONNECTIONS {
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let connection_state = Arc::clone(&state);
        let spawned = std::thread::Builder::new()
            .name(format!("proxy-conn-{number}"))
            .spawn(move || {
                let _ = serve_connection(&connection_state, stream, number);
            });
        if spawned.is_err() {
            continue;
        }
    }
}

struct Request {
    method: String,
    path: String,
    version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    fn wants_close(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        connection.contains("close")
            || (self.version == "HTTP/1.0" && !connection.contains("keep-alive"))
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn path_without_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// `sha256:<hex>` of `/v2/<name>/blobs/sha256:<hex>`.
fn blob_digest(path: &str) -> Option<&str> {
    let path = path_without_query(path);
    let (_, digest) = path.strip_prefix("/v2/")?.rsplit_once("/blobs/")?;
    digest.starts_with("sha256:").then_some(digest)
}

/// Reads a head (request or status line and headers) up to the blank line.
/// `Ok(None)` on a clean EOF before the first byte.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let read = reader
            .by_ref()
            .take((MAX_HEAD_BYTES - total + 1) as u64)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF inside an HTTP head",
            ));
        }
        total += read;
        if total > MAX_HEAD_BYTES {
            return Err(io::Error::other("HTTP head too large"));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if lines.is_empty() {
                // Stray CRLF between requests (RFC 9112 says to ignore it).
                continue;
            }
            return Ok(Some(lines));
        }
        lines.push(text.to_string());
    }
}

fn parse_headers(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    header(headers, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

fn content_length(headers: &[(String, String)]) -> io::Result<Option<u64>> {
    match header(headers, "content-length") {
        None => Ok(None),
        Some(value) => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| io::Error::other(format!("bad Content-Length {value:?}"))),
    }
}

fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let Some(lines) = read_head(reader)? else {
        return Ok(None);
    };
    let mut parts = lines[0].split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::other(format!("bad request line {:?}", lines[0])));
    };
    let headers = parse_headers(&lines[1..]);
    let mut body = Vec::new();
    if is_chunked(&headers) {
        read_chunked(reader, |data| {
            body.extend_from_slice(data);
            Ok(())
        })?;
    } else if let Some(length) = content_length(&headers)? {
        reader.by_ref().take(length).read_to_end(&mut body)?;
        if body.len() as u64 != length {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "request body cut short",
            ));
        }
    }
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        version: version.to_string(),
        headers,
        body,
    }))
}

/// Decodes a chunked body, handing each chunk's data to `sink`; consumes the trailers.
fn read_chunked(
    reader: &mut impl BufRead,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    loop {
        let mut line = String::new();
        if reader.by_ref().take(1024).read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF inside a chunked body",
            ));
        }
        let size_text = line.trim().split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers up to the blank line.
            loop {
                let mut trailer = String::new();
                if reader.by_ref().take(8192).read_line(&mut trailer)? == 0
                    || trailer.trim().is_empty()
                {
                    return Ok(());
                }
            }
        }
        let mut remaining = size;
        let mut buffer = vec![0u8; RELAY_CHUNK];
        while remaining > 0 {
            let want = remaining.min(RELAY_CHUNK as u64) as usize;
            let read = reader.read(&mut buffer[..want])?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF inside a chunk",
                ));
            }
            sink(&buffer[..read])?;
            remaining -= read as u64;
        }
        let mut crlf = String::new();
        reader.by_ref().take(2).read_line(&mut crlf)?;
    }
}

/// What to do with the client connection after an exchange.
enum Next {
    KeepAlive,
    Close,
}

fn serve_connection(state: &State, client: TcpStream, connection: usize) -> io::Result<()> {
    let _tracked = state.track(&client);
    client.set_read_timeout(Some(CLIENT_IDLE))?;
    client.set_nodelay(true)?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        if state.stopping() {
            break;
        }
        let Some(request) = read_request(&mut reader)? else {
            break;
        };
        let fault = state.choose(&request.method, &request.path);
        let index = state.record(Exchange {
            connection,
            at: state.started.elapsed(),
            method: request.method.clone(),
            path: request.path.clone(),
            range: request.header("range").map(str::to_string),
            status: None,
            content_range: None,
            content_length: None,
            body_bytes: 0,
            fault: fault.clone(),
            complete: false,
            error: None,
        });
        match exchange(state, &request, fault.as_ref(), &mut writer, index) {
            Ok(Next::KeepAlive) if !request.wants_close() => continue,
            Ok(_) => break,
            Err(error) => {
                state.update(index, |e| e.error = Some(error.to_string()));
                break;
            }
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
    Ok(())
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        206 => "Partial Content",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    }
}

/// Serves one request: a fault answered locally, or a forwarded one relayed.
fn exchange(
    state: &State,
    request: &Request,
    fault: Option<&Fault>,
    client: &mut TcpStream,
    index: usize,
) -> io::Result<Next> {
    match fault {
        Some(Fault::Drop) => return Ok(Next::Close),
        Some(Fault::Status { code, retry_after }) => {
            let error_code = if *code == 429 {
                "TOOMANYREQUESTS"
            } else {
                "UNAVAILABLE"
            };
            let body = format!(
                "{{\"errors\":[{{\"code\":\"{error_code}\",\"message\":\"injected by the test proxy\",\"detail\":null}}]}}\n"
            );
            let mut head = format!(
                "HTTP/1.1 {code} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
                reason(*code),
                body.len()
            );
            if let Some(seconds) = retry_after {
                head.push_str(&format!("Retry-After: {seconds}\r\n"));
            }
            head.push_str("\r\n");
            client.write_all(head.as_bytes())?;
            if request.method != "HEAD" {
                client.write_all(body.as_bytes())?;
            }
            client.flush()?;
            state.update(index, |e| {
                e.status = Some(*code);
                e.content_length = Some(body.len() as u64);
                e.body_bytes = if request.method == "HEAD" {
                    0
                } else {
                    body.len() as u64
                };
                e.complete = true;
            });
            return Ok(Next::KeepAlive);
        }
        _ => {}
    }
    forward(state, request, fault, client, index)
}

fn forward(
    state: &State,
    request: &Request,
    fault: Option<&Fault>,
    client: &mut TcpStream,
    index: usize,
) -> io::Result<Next> {
    let upstream = TcpStream::connect(&state.upstream)?;
    upstream.set_read_timeout(Some(UPSTREAM_IDLE))?;
    upstream.set_nodelay(true)?;
    let _tracked = state.track(&upstream);
    let mut upstream_writer = upstream.try_clone()?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in &request.headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "te"
        ) || lower == "content-length"
        {
            continue;
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty() || request.header("content-length").is_some() {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    upstream_writer.write_all(head.as_bytes())?;
    upstream_writer.write_all(&request.body)?;
    upstream_writer.flush()?;

    let mut upstream_reader = BufReader::with_capacity(RELAY_CHUNK, upstream);
    // Skip interim 1xx answers (100 Continue); relay the final one.
    let (status, status_line, headers) = loop {
        let lines = read_head(&mut upstream_reader)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream closed without answering",
            )
        })?;
        let status: u16 = lines[0]
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {:?}", lines[0])))?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        break (status, lines[0].clone(), parse_headers(&lines[1..]));
    };

    enum Framing {
        None,
        Length(u64),
        Chunked,
        UntilEof,
    }
    let framing = if request.method == "HEAD" || status == 204 || status == 304 {
        Framing::None
    } else if is_chunked(&headers) {
        Framing::Chunked
    } else if let Some(length) = content_length(&headers)? {
        Framing::Length(length)
    } else {
        Framing::UntilEof
    };
    let close_after = matches!(framing, Framing::UntilEof) || request.wants_close();

    let mut out = format!("{status_line}\r\n");
    for (name, value) in &headers {
        if matches!(
            name.to_ascii_lowercase().as_str(),
            "connection" | "keep-alive" | "proxy-connection"
        ) {
            continue;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if close_after {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");

    let content_range = header(&headers, "content-range").map(str::to_string);
    // Where the body starts in the blob: a 206 says so in `Content-Range: bytes S-E/T`.
    let blob_base = content_range
        .as_deref()
        .and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|_| status == 206)
        .unwrap_or(0);

    if let Some(Fault::StallBeforeHeaders { duration }) = fault {
        state.pause(*duration);
        if state.stopping() {
            return Ok(Next::Close);
        }
    }
    client.write_all(out.as_bytes())?;
    client.flush()?;
    state.update(index, |e| {
        e.status = Some(status);
        e.content_range = content_range.clone();
        e.content_length = match framing {
            Framing::Length(length) => Some(length),
            _ => None,
        };
    });

    let mut body = BodyWriter {
        state,
        client,
        index,
        fault,
        blob_base,
        sent: 0,
        stalled: false,
        chunked: matches!(framing, Framing::Chunked),
    };
    let outcome = match framing {
        Framing::None => Ok(()),
        Framing::Length(length) => relay_exact(&mut upstream_reader, length, &mut body),
        Framing::Chunked => read_chunked(&mut upstream_reader, |data| body.write(data))
            .and_then(|()| body.end_chunked()),
        Framing::UntilEof => relay_to_eof(&mut upstream_reader, &mut body),
    };
    match outcome {
        Ok(()) => {
            body.client.flush()?;
            state.update(index, |e| e.complete = true);
            Ok(if close_after {
                Next::Close
            } else {
                Next::KeepAlive
            })
        }
        Err(error) if error.kind() == io::ErrorKind::ConnectionAborted && body.was_cut() => {
            state.update(index, |e| e.error = Some("cut by the proxy".into()));
            Ok(Next::Close)
        }
        Err(error) => Err(error),
    }
}

fn relay_exact(upstream: &mut impl Read, length: u64, body: &mut BodyWriter) -> io::Result<()> {
    let mut remaining = length;
    let mut buffer = vec![0u8; RELAY_CHUNK];
    while remaining > 0 {
        let want = remaining.min(RELAY_CHUNK as u64) as usize;
        let read = upstream.read(&mut buffer[..want])?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream body cut short",
            ));
        }
        body.write(&buffer[..read])?;
        remaining -= read as u64;
    }
    Ok(())
}

fn relay_to_eof(upstream: &mut impl Read, body: &mut BodyWriter) -> io::Result<()> {
    let mut buffer = vec![0u8; RELAY_CHUNK];
    loop {
        let read = upstream.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        body.write(&buffer[..read])?;
    }
}

/// Writes body bytes to the client, applying cut, stall and flip faults.
struct BodyWriter<'a> {
    state: &'a State,
    client: &'a mut TcpStream,
    index: usize,
    fault: Option<&'a Fault>,
    blob_base: u64,
    sent: u64,
    stalled: bool,
    chunked: bool,
}

impl BodyWriter<'_> {
    /// Body bytes to relay before a cut.
    fn cut_after(&self) -> Option<u64> {
        match self.fault {
            Some(Fault::Cut { after }) => Some(*after),
            Some(Fault::CutAtBlobOffset { offset }) => Some(offset.saturating_sub(self.blob_base)),
            _ => None,
        }
    }

    fn was_cut(&self) -> bool {
        self.cut_after().is_some_and(|after| self.sent >= after)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let mut data = data;
        if let Some(Fault::StallBody { after, duration }) = self.fault {
            if !self.stalled && self.sent + data.len() as u64 >= *after {
                let before = (*after - self.sent.min(*after)) as usize;
                self.emit(&data[..before])?;
                data = &data[before..];
                self.client.flush()?;
                self.stalled = true;
                self.state.pause(*duration);
                if self.state.stopping() {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "proxy stopped",
                    ));
                }
            }
        }
        if let Some(after) = self.cut_after() {
            if self.sent + data.len() as u64 > after {
                let keep = (after - self.sent.min(after)) as usize;
                self.emit(&data[..keep])?;
                self.client.flush()?;
                let _ = self.client.shutdown(Shutdown::Both);
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "cut by the proxy",
                ));
            }
        }
        if let Some(Fault::FlipByte { offset }) = self.fault {
            let start = self.blob_base + self.sent;
            if (start..start + data.len() as u64).contains(offset) {
                let mut flipped = data.to_vec();
                let at = (*offset - start) as usize;
                flipped[at] = !flipped[at];
                return self.emit(&flipped);
            }
        }
        self.emit(data)
    }

    fn emit(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.chunked {
            self.client
                .write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
            self.client.write_all(data)?;
            self.client.write_all(b"\r\n")?;
        } else {
            self.client.write_all(data)?;
        }
        self.sent += data.len() as u64;
        let sent = self.sent;
        self.state.update(self.index, |e| e.body_bytes = sent);
        Ok(())
    }

    fn end_chunked(&mut self) -> io::Result<()> {
        self.client.write_all(b"0\r\n\r\n")
    }
}
