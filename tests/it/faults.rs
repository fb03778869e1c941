//! Registry and network faults, injected by a proxy (tests/it/common/proxy.rs) between
//! ballast and the real `docker-registry`: transient ones must leave the report
//! exactly as an unfaulted run gives it; corruption and exhausted retries must end
//! in exit 2 with one line naming the registry or blob and the cause, and nothing
//! on stdout.
//!
//! The contract tested (issue 7): retries (default 5 attempts, exponential backoff
//! with jitter, `Retry-After` honoured up to 60 s), a cut blob resumed with `Range: bytes=N-`,
//! and `--retries N`, `--connect-timeout SECONDS`, `--read-timeout SECONDS`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use testkit::{BuiltImage, ImageSpec, Item, LayerSpec};

use crate::common::proxy::{Exchange, Fault, Injection, Proxy, Target};
use crate::common::*;

/// Where the body of the largest layer is cut.
const CUT_AT: u64 = 300_000;
/// No single ballast run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(45);

/// A deterministic xorshift stream: incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Log-like text: compresses well, but not to nothing.
fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "registry", "layer", "blob", "manifest", "digest", "retry", "timeout", "range", "resume",
        "config", "index", "tarball",
    ];
    let numbers = noise(seed, len / 4 + 64);
    let mut out = Vec::with_capacity(len + 80);
    let mut line = 0usize;
    while out.len() < len {
        let a = numbers[line % numbers.len()] as usize;
        let b = numbers[(line * 7 + 3) % numbers.len()] as usize;
        out.extend_from_slice(
            format!(
                "{line:08} level=info msg=\"{} {} {}\" id={a:03}{b:03}\n",
                WORDS[a % WORDS.len()],
                WORDS[b % WORDS.len()],
                WORDS[(a + b) % WORDS.len()]
            )
            .as_bytes(),
        );
        line += 1;
    }
    out.truncate(len);
    out
}

/// Three layers of mixed random and text data, 1.2 to 3 MB each before compression.
fn image() -> &'static BuiltImage {
    static IMAGE: OnceLock<BuiltImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        ImageSpec::new(vec![
            LayerSpec::new(
                "ADD rootfs.tar /",
                vec![
                    Item::dir("etc"),
                    Item::file("etc/os-release", b"ID=debian\nVERSION_ID=12\n".to_vec()),
                    Item::file("usr/lib/libpayload.so.1", noise(1, 700_000)),
                    Item::file("usr/share/doc/payload/changelog", text(2, 600_000)),
                ],
            ),
            LayerSpec::new(
                "COPY app /app",
                vec![
                    Item::executable("app/server", noise(3, 1_900_000)),
                    Item::file("app/assets/data.json", text(4, 1_100_000)),
                ],
            ),
            LayerSpec::new(
                "RUN install-deps",
                vec![
                    Item::file("var/cache/deps/index.bin", noise(5, 600_000)),
                    Item::file("var/log/install.log", text(6, 700_000)),
                ],
            ),
        ])
        .build()
        .expect("build the fault-test image")
    })
}

/// The layer the blob faults aim at: the largest (about 2 MB compressed).
fn big_layer() -> String {
    image()
        .layers
        .iter()
        .max_by_key(|layer| layer.blob.len())
        .expect("a layer")
        .digest
        .to_string()
}

/// Pushes the image as `faults/<name>:1.0` to the real registry.
fn push_image(name: &str) -> String {
    let repo_tag = format!("faults/{name}:1.0");
    push(registry(), &repo_tag, &[image()]);
    repo_tag
}

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    elapsed: Duration,
}

fn run_inspect(reference: &str, extra: &[&str]) -> Run {
    let home = tempfile::tempdir().expect("home");
    let started = Instant::now();
    let output = ballast(home.path())
        .arg("inspect")
        .arg(reference)
        .args(["--format", "json"])
        .args(extra)
        .timeout(RUN_LIMIT)
        .output()
        .expect("run ballast");
    Run {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// The report without `image.reference`, which names the host it was read from.
fn comparable(mut report: serde_json::Value) -> serde_json::Value {
    if let Some(image) = report
        .get_mut("image")
        .and_then(serde_json::Value::as_object_mut)
    {
        image.remove("reference");
    }
    report
}

/// The report of an unfaulted run straight from the registry.
fn baseline() -> &'static serde_json::Value {
    static BASELINE: OnceLock<serde_json::Value> = OnceLock::new();
    BASELINE.get_or_init(|| {
        let repo_tag = push_image("baseline");
        let home = tempfile::tempdir().expect("home");
        let report = inspect_json(home.path(), &[&format!("{}/{repo_tag}", registry().host)]);
        comparable(report)
    })
}

/// Asserts the run succeeded with exactly the unfaulted report.
fn assert_same_report(run: &Run, proxy: &Proxy) {
    // Shown by the test harness when the test fails (or with --nocapture).
    println!("took {:?}; proxy log:\n{}", run.elapsed, proxy.describe());
    assert_eq!(
        run.code,
        Some(0),
        "ballast failed after {:?}: {}\nproxy log:\n{}",
        run.elapsed,
        run.stderr,
        proxy.describe()
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON report");
    assert!(
        comparable(report.clone()) == *baseline(),
        "the report differs from the unfaulted run\nfaulted: {report:#}\nunfaulted: {:#}\nproxy log:\n{}",
        baseline(),
        proxy.describe()
    );
    assert!(
        proxy.faults_injected() > 0,
        "no fault was injected:\n{}",
        proxy.describe()
    );
}

/// Asserts exit 2, one `error: ` line, no panic and nothing on stdout; returns the line.
fn assert_clean_failure(run: &Run, proxy: &Proxy) -> String {
    println!(
        "took {:?}; stderr: {}proxy log:\n{}",
        run.elapsed,
        run.stderr,
        proxy.describe()
    );
    assert_eq!(
        run.code,
        Some(2),
        "expected exit 2; stderr: {}; stdout: {}\nproxy log:\n{}",
        run.stderr,
        String::from_utf8_lossy(&run.stdout),
        proxy.describe()
    );
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "expected one error line, got: {}",
        run.stderr
    );
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "partial output on error: {}",
        String::from_utf8_lossy(&run.stdout)
    );
    run.stderr.trim_end().to_string()
}

/// Starts a proxy with these faults in front of a freshly pushed copy of the image.
fn faulted(name: &str, injections: Vec<Injection>) -> (Proxy, String) {
    let repo_tag = push_image(name);
    let proxy = Proxy::start(&registry().host, injections);
    let reference = proxy.reference(&repo_tag);
    (proxy, reference)
}

fn is_manifest_get(exchange: &Exchange) -> bool {
    exchange.method == "GET" && exchange.path.contains("/manifests/")
}

#[test]
fn passthrough_proxy_changes_nothing() {
    let (proxy, reference) = faulted("passthrough", Vec::new());
    let run = run_inspect(&reference, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON");
    assert_eq!(report["image"]["reference"], reference.as_str());
    assert_eq!(comparable(report), *baseline());
    let log = proxy.log();
    assert!(log.iter().any(is_manifest_get), "{}", proxy.describe());
    for layer in &image().layers {
        let gets = proxy.blob_gets(&layer.digest.to_string());
        assert_eq!(gets.len(), 1, "{}", proxy.describe());
        assert!(gets[0].complete, "{}", proxy.describe());
        assert_eq!(
            gets[0].body_bytes,
            layer.blob.len() as u64,
            "{}",
            proxy.describe()
        );
    }
    assert!(log.iter().all(|e| e.fault.is_none() && e.complete));
}

#[test]
fn blob_cut_once_is_retried() {
    let layer = big_layer();
    let (proxy, reference) = faulted(
        "cut-once",
        vec![Fault::cut(CUT_AT).on(Target::blob(&layer)).first(1)],
    );
    let run = run_inspect(&reference, &[]);
    assert_same_report(&run, &proxy);
    let gets = proxy.blob_gets(&layer);
    assert!(gets[0].is_cut(), "{}", proxy.describe());
    assert_eq!(gets[0].body_bytes, CUT_AT, "{}", proxy.describe());
    assert!(
        gets[1..].iter().any(|e| e.complete),
        "the cut blob was never fetched again:\n{}",
        proxy.describe()
    );
}

#[test]
fn cut_blob_is_resumed_with_a_range_request() {
    let layer = big_layer();
    let size = image()
        .layers
        .iter()
        .find(|l| l.digest.to_string() == layer)
        .map(|l| l.blob.len() as u64)
        .expect("layer");
    let (proxy, reference) = faulted(
        "resume",
        vec![Fault::cut(CUT_AT).on(Target::blob(&layer)).first(1)],
    );
    let run = run_inspect(&reference, &[]);
    assert_same_report(&run, &proxy);
    let gets = proxy.blob_gets(&layer);
    assert!(gets[0].is_cut(), "{}", proxy.describe());
    let resumed = gets[1..]
        .iter()
        .find(|e| e.range_start().is_some_and(|start| start > 0))
        .unwrap_or_else(|| {
            panic!(
                "no Range request resumed the cut blob:\n{}",
                proxy.describe()
            )
        });
    let start = resumed.range_start().expect("range start");
    assert!(
        start <= CUT_AT,
        "resumed past the bytes received:\n{}",
        proxy.describe()
    );
    assert_eq!(resumed.status, Some(206), "{}", proxy.describe());
    assert!(resumed.complete, "{}", proxy.describe());
    assert_eq!(resumed.body_bytes, size - start, "{}", proxy.describe());
    // Resuming is the point: the blob is not downloaded from 0 again.
    assert!(
        gets[1..].iter().all(|e| e.range_start().unwrap_or(0) > 0),
        "the blob was fetched from the start again:\n{}",
        proxy.describe()
    );
}

#[test]
fn unavailable_twice_is_retried() {
    let (proxy, reference) = faulted(
        "unavailable",
        vec![
            Fault::unavailable().on(Target::Manifests).first(2),
            Fault::unavailable().on(Target::blob(big_layer())).first(2),
        ],
    );
    let run = run_inspect(&reference, &[]);
    assert_same_report(&run, &proxy);
    let log = proxy.log();
    let manifests: Vec<_> = log.iter().filter(|e| is_manifest_get(e)).collect();
    assert_eq!(
        manifests.iter().filter(|e| e.status == Some(503)).count(),
        2,
        "{}",
        proxy.describe()
    );
    assert!(manifests.iter().any(|e| e.status == Some(200)));
    let layer = proxy.blob_gets(&big_layer());
    assert_eq!(
        layer.iter().filter(|e| e.status == Some(503)).count(),
        2,
        "{}",
        proxy.describe()
    );
    assert!(layer.iter().any(|e| e.complete && e.fault.is_none()));
}

/// Each refused request is retried no sooner than its `Retry-After` asked: 3 s on
/// the manifest's 429s and 2 s on the blob's 503s, both longer than the 1 s that
/// ballast waits after a 429 that does not say.
#[test]
fn retry_after_is_waited_out() {
    let layer = big_layer();
    let (proxy, reference) = faulted(
        "retry-after",
        vec![
            Fault::too_many_requests(3).on(Target::Manifests).first(1),
            Fault::unavailable_for(2).on(Target::blob(&layer)).first(2),
        ],
    );
    let run = run_inspect(&reference, &[]);
    assert_same_report(&run, &proxy);
    let log = proxy.log();
    let mut refused = 0;
    for (i, answer) in log.iter().enumerate() {
        let asked = match answer.status {
            Some(429) => Duration::from_secs(3),
            Some(503) => Duration::from_secs(2),
            _ => continue,
        };
        refused += 1;
        let next = log[i + 1..]
            .iter()
            .find(|e| e.path == answer.path && e.method == answer.method)
            .unwrap_or_else(|| panic!("{} was not retried:\n{}", answer.path, proxy.describe()));
        assert!(
            next.at - answer.at >= asked - Duration::from_millis(50),
            "retried {} after {:?}, before Retry-After: {}\n{}",
            answer.path,
            next.at - answer.at,
            asked.as_secs(),
            proxy.describe()
        );
    }
    assert_eq!(refused, 3, "{}", proxy.describe());
}

/// A registry that asks for longer than ballast will wait gets an error at once that
/// says what it asked, not a CI job hanging for an hour.
#[test]
fn retry_after_beyond_the_limit_fails_at_once() {
    let (proxy, reference) = faulted(
        "retry-after-long",
        vec![Fault::too_many_requests(3600).on(Target::Manifests)],
    );
    let run = run_inspect(&reference, &[]);
    let line = assert_clean_failure(&run, &proxy);
    assert!(line.contains(&proxy.host), "names the registry: {line}");
    assert!(
        line.contains("asked to retry after 3600 s"),
        "says what the registry asked: {line}"
    );
    let attempts = proxy.log().iter().filter(|e| is_manifest_get(e)).count();
    assert_eq!(attempts, 1, "{}", proxy.describe());
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
}

#[test]
fn dropped_connections_are_retried() {
    let (proxy, reference) = faulted(
        "dropped",
        vec![
            Fault::Drop.on(Target::Manifests).first(1),
            Fault::Drop.on(Target::blob(big_layer())).first(1),
        ],
    );
    let run = run_inspect(&reference, &[]);
    assert_same_report(&run, &proxy);
    assert_eq!(proxy.faults_injected(), 2, "{}", proxy.describe());
}

#[test]
fn stall_shorter_than_the_read_timeout_is_waited_out() {
    let layer = big_layer();
    let (proxy, reference) = faulted(
        "short-stall",
        vec![Fault::stall_body(0, Duration::from_secs(2))
            .on(Target::blob(&layer))
            .first(1)],
    );
    let run = run_inspect(&reference, &["--read-timeout", "6"]);
    assert_same_report(&run, &proxy);
    let gets = proxy.blob_gets(&layer);
    assert_eq!(
        gets.len(),
        1,
        "a stall within the read timeout was retried:\n{}",
        proxy.describe()
    );
    assert!(run.elapsed >= Duration::from_secs(2));
}

#[test]
fn stall_mid_blob_times_out_and_is_retried() {
    let layer = big_layer();
    let (proxy, reference) = faulted(
        "long-stall",
        vec![Fault::stall_body(CUT_AT, Duration::from_secs(120))
            .on(Target::blob(&layer))
            .first(1)],
    );
    let run = run_inspect(&reference, &["--read-timeout", "2", "--retries", "3"]);
    assert_same_report(&run, &proxy);
    let gets = proxy.blob_gets(&layer);
    assert!(gets.len() >= 2, "{}", proxy.describe());
    assert!(
        run.elapsed < Duration::from_secs(30),
        "took {:?}: the read timeout was not applied",
        run.elapsed
    );
}

#[test]
fn silent_server_times_out_and_is_retried() {
    let layer = big_layer();
    let (proxy, reference) = faulted(
        "silent",
        vec![
            Fault::stall_before_headers(Duration::from_secs(120))
                .on(Target::Manifests)
                .first(1),
            Fault::stall_before_headers(Duration::from_secs(120))
                .on(Target::blob(&layer))
                .first(1),
        ],
    );
    let run = run_inspect(&reference, &["--read-timeout", "2", "--retries", "3"]);
    assert_same_report(&run, &proxy);
    assert!(proxy.blob_gets(&layer).len() >= 2, "{}", proxy.describe());
    assert!(
        run.elapsed < Duration::from_secs(30),
        "took {:?}: the read timeout was not applied",
        run.elapsed
    );
}

#[test]
fn flipped_layer_byte_is_refused() {
    let layer = big_layer();
    let (proxy, reference) = faulted(
        "flipped-layer",
        vec![Fault::flip_byte(CUT_AT + 12_345).on(Target::blob(&layer))],
    );
    let run = run_inspect(&reference, &[]);
    let line = assert_clean_failure(&run, &proxy);
    assert!(line.contains(&layer), "{line}");
    assert!(line.contains("digest mismatch"), "{line}");
    assert!(proxy.faults_injected() >= 1, "{}", proxy.describe());
}

#[test]
fn flipped_config_byte_is_refused() {
    let config = image().config_digest.to_string();
    let (proxy, reference) = faulted(
        "flipped-config",
        vec![Fault::flip_byte(10).on(Target::blob(&config))],
    );
    let run = run_inspect(&reference, &[]);
    let line = assert_clean_failure(&run, &proxy);
    assert!(line.contains(&config), "names the blob: {line}");
    let lower = line.to_ascii_lowercase();
    assert!(
        lower.contains("digest") && (lower.contains("mismatch") || lower.contains("invalid")),
        "names the cause: {line}"
    );
}

#[test]
fn unavailable_forever_exhausts_the_retries() {
    let (proxy, reference) = faulted(
        "unavailable-forever",
        vec![Fault::unavailable().on(Target::Any)],
    );
    let run = run_inspect(&reference, &["--retries", "2"]);
    let line = assert_clean_failure(&run, &proxy);
    assert!(line.contains(&proxy.host), "names the registry: {line}");
    assert!(line.contains("503"), "names the cause: {line}");
    assert!(
        line.contains("gave up after 2 attempts"),
        "says how hard it tried: {line}"
    );
    let attempts = proxy.log().iter().filter(|e| is_manifest_get(e)).count();
    assert!(
        (2..=3).contains(&attempts),
        "{attempts} manifest requests with --retries 2:\n{}",
        proxy.describe()
    );
    assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
}

#[test]
fn blob_cut_every_time_exhausts_the_retries() {
    let layer = big_layer();
    // Cut at the same blob offset every time, resumes included: no attempt can get
    // past it, whether or not progress resets the attempt count.
    let (proxy, reference) = faulted(
        "cut-forever",
        vec![Fault::cut_at_blob_offset(CUT_AT).on(Target::blob(&layer))],
    );
    let run = run_inspect(&reference, &["--retries", "2"]);
    let line = assert_clean_failure(&run, &proxy);
    assert!(
        line.contains(&layer) || line.contains(&proxy.host),
        "names the blob or the registry: {line}"
    );
    let attempts = proxy.blob_gets(&layer).len();
    assert!(
        (2..=3).contains(&attempts),
        "{attempts} requests for the cut blob with --retries 2:\n{}",
        proxy.describe()
    );
    assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
}

#[test]
fn connection_refused_exhausts_the_retries() {
    // A loopback port nobody listens on (anymore): every connection is refused.
    let host = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").to_string()
    };
    let home = tempfile::tempdir().expect("home");
    let started = Instant::now();
    let output = ballast(home.path())
        .args(["inspect", &format!("{host}/faults/nobody:1.0")])
        .args([
            "--format",
            "json",
            "--retries",
            "2",
            "--connect-timeout",
            "2",
        ])
        .timeout(RUN_LIMIT)
        .output()
        .expect("run ballast");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(&host), "names the registry: {stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// The proxy itself: chunked and until-EOF responses are framed right for the
/// client, keep-alive survives a chunked answer, faults apply to decoded chunk data.
#[test]
fn proxy_frames_chunked_and_eof_responses() {
    use std::io::{BufRead, BufReader, Read, Write};

    let upstream = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream_host = upstream.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        for stream in upstream.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("request line");
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).expect("header") == 0 || line.trim().is_empty() {
                    break;
                }
            }
            let answer: &[u8] = if request_line.contains("/chunked") {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
            };
            stream.write_all(answer).expect("answer");
        }
    });
    let proxy = Proxy::start(
        &upstream_host,
        vec![Fault::flip_byte(0).on(Target::Any).first(1)],
    );
    let client = std::net::TcpStream::connect(&proxy.host).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = client.try_clone().expect("clone");
    let mut reader = BufReader::new(client);
    let read_head = |reader: &mut BufReader<std::net::TcpStream>| {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("head line");
            if line.trim().is_empty() {
                return lines;
            }
            lines.push(line.trim().to_string());
        }
    };
    let read_chunked = |reader: &mut BufReader<std::net::TcpStream>| {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex size");
            if size == 0 {
                let mut end = String::new();
                reader.read_line(&mut end).expect("end");
                return body;
            }
            let mut data = vec![0u8; size + 2];
            reader.read_exact(&mut data).expect("chunk");
            body.extend_from_slice(&data[..size]);
        }
    };
    for expected in [&b"\x97ello world"[..], b"hello world"] {
        writer
            .write_all(b"GET /chunked HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("request");
        let lines = read_head(&mut reader);
        assert_eq!(lines[0], "HTTP/1.1 200 OK");
        assert!(lines
            .iter()
            .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked")));
        assert_eq!(read_chunked(&mut reader), expected);
    }
    writer
        .write_all(b"GET /eof HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("request");
    let lines = read_head(&mut reader);
    assert!(
        lines
            .iter()
            .any(|l| l.eq_ignore_ascii_case("connection: close")),
        "{lines:?}"
    );
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("body to EOF");
    assert_eq!(rest, b"until the end");
    let log = proxy.log();
    assert_eq!(log.len(), 3, "{}", proxy.describe());
    assert!(log
        .iter()
        .all(|e| e.connection == log[0].connection && e.complete));
    assert_eq!(log[0].fault, Some(Fault::flip_byte(0)));
    assert_eq!(log[1].body_bytes, 11);
}

/// Several ballast processes at once against one registry and one `--cache-dir`,
/// sharing one flaky proxy (the first requests refused with 503, the big blob cut
/// once): each must still print exactly the unfaulted report, the cache must end up
/// holding only whole, verified blobs and no temporary files, and nothing else may be
/// written.
#[test]
fn concurrent_processes_neither_corrupt_nor_block_each_other() {
    const RUNS: usize = 4;
    let layer = big_layer();
    let (proxy, reference) = faulted(
        "concurrent",
        vec![
            Fault::unavailable().on(Target::Any).first(3),
            Fault::cut(CUT_AT).on(Target::blob(&layer)).first(1),
        ],
    );
    let cache = tempfile::tempdir().expect("cache");
    let homes: Vec<tempfile::TempDir> = (0..RUNS)
        .map(|_| tempfile::tempdir().expect("home"))
        .collect();
    let children: Vec<std::process::Child> = homes
        .iter()
        .map(|home| {
            let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("ballast"));
            command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", home.path())
                .env("XDG_CACHE_HOME", home.path().join(".cache"))
                .env("DOCKER_CONFIG", home.path().join(".docker"))
                .env("NO_COLOR", "1")
                .args(["inspect", &reference, "--format", "json", "--cache-dir"])
                .arg(cache.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            command.spawn().expect("spawn ballast")
        })
        .collect();
    let started = Instant::now();
    for child in children {
        let output = child.wait_with_output().expect("wait");
        let run = Run {
            code: output.status.code(),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        assert!(run.elapsed < RUN_LIMIT * 2, "{:?}", run.elapsed);
        assert_same_report(&run, &proxy);
    }
    assert_eq!(proxy.faults_injected(), 4, "{}", proxy.describe());
    for home in &homes {
        let written: Vec<_> = walk(home.path());
        assert!(written.is_empty(), "ballast wrote {written:?}");
    }
    assert_cache_holds_exactly(cache.path(), &every_blob());
}

/// The config's and every layer's digest.
fn every_blob() -> Vec<String> {
    let mut blobs: Vec<String> = image()
        .blobs()
        .keys()
        .map(|digest| digest.to_string())
        .collect();
    blobs.sort();
    blobs
}

/// The cache holds these blobs, each whole (its bytes hash to its name), and nothing
/// else: no temporary files.
fn assert_cache_holds_exactly(cache: &std::path::Path, expected: &[String]) {
    let dir = cache.join("blobs/sha256");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("cache dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).expect("read entry");
        assert_eq!(
            ballast::digest::Digest::of_bytes(&bytes).hex(),
            name,
            "cache entry {name} is not what its name says"
        );
        found.push(format!("sha256:{name}"));
    }
    found.sort();
    assert_eq!(found, expected, "cache entries");
}

/// With `--cache-dir`, a second run reads no blob from the registry; an entry damaged
/// on disk is detected by its digest, fetched again and repaired; a blob that never
/// arrives whole leaves nothing behind.
#[test]
fn cache_dir_is_reused_verified_and_repaired() {
    let repo_tag = push_image("cached");
    let cache = tempfile::tempdir().expect("cache");
    let cache_arg = cache.path().to_string_lossy().into_owned();
    let with_cache = ["--cache-dir", cache_arg.as_str()];

    let first = Proxy::passthrough(&registry().host);
    let run = run_inspect(&first.reference(&repo_tag), &with_cache);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        comparable(serde_json::from_slice(&run.stdout).expect("JSON")),
        *baseline()
    );
    assert_cache_holds_exactly(cache.path(), &every_blob());

    let second = Proxy::passthrough(&registry().host);
    let run = run_inspect(&second.reference(&repo_tag), &with_cache);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        comparable(serde_json::from_slice(&run.stdout).expect("JSON")),
        *baseline()
    );
    for blob in every_blob() {
        assert!(
            second.blob_gets(&blob).is_empty(),
            "{blob} fetched again:\n{}",
            second.describe()
        );
    }

    let layer = big_layer();
    let entry = cache
        .path()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&entry).expect("entry");
    bytes[1000] ^= 0xff;
    std::fs::write(&entry, &bytes).expect("damage");
    let third = Proxy::passthrough(&registry().host);
    let run = run_inspect(&third.reference(&repo_tag), &with_cache);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        comparable(serde_json::from_slice(&run.stdout).expect("JSON")),
        *baseline()
    );
    assert_eq!(third.blob_gets(&layer).len(), 1, "{}", third.describe());
    assert_cache_holds_exactly(cache.path(), &every_blob());

    // A blob that is cut every time: the run fails and caches none of it.
    let empty = tempfile::tempdir().expect("cache");
    let empty_arg = empty.path().to_string_lossy().into_owned();
    let (proxy, reference) = faulted(
        "cached-cut",
        vec![Fault::cut_at_blob_offset(CUT_AT).on(Target::blob(&layer))],
    );
    let run = run_inspect(&reference, &["--cache-dir", &empty_arg, "--retries", "2"]);
    assert_clean_failure(&run, &proxy);
    let left: Vec<String> = walk(empty.path())
        .iter()
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        left.iter()
            .all(|p| !p.contains(layer.trim_start_matches("sha256:"))),
        "the cut blob left {left:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}
