//! More slow connections than the process has file descriptors, against each of `skiff up`'s
//! listeners (API, gateway, data plane): prompt clients keep getting answers within their usual
//! latency, the slow sockets are closed by the header timeout, and the log stays small. (A flood
//! from the prompt clients' own address is covered in crates/listen/tests/slow_clients.rs.)
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::{Skiff, hostile_wasm, repo_root};

/// The `skiff up` process's open-file limit.
const NOFILE: u64 = 1024;
/// Slow connections opened against each listener (more than [`NOFILE`]).
const SLOW_PER_LISTENER: usize = 1100;
/// The listeners' header timeout, and the slack allowed on top of it.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection that starts a request (or a TLS handshake) and never finishes it. It comes
/// from 127.0.0.2, so its ephemeral port can never be one another test picked to listen on
/// 127.0.0.1 (the listeners' per-address cap then applies to the flood as a whole).
fn slow(addr: SocketAddr, opening: &[u8]) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let source: SocketAddr = "127.0.0.2:0".parse().expect("address");
    socket.bind(&source.into()).expect("bind 127.0.0.2");
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .expect("connect");
    let mut s: TcpStream = socket.into();
    s.write_all(opening).expect("write the opening");
    s
}

/// Whether the server has closed `s` (EOF or reset), without waiting.
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    s.set_nonblocking(true).expect("nonblocking");
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 or 400 before the close
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// One plain HTTP/1.1 request on a new connection: its latency when answered with `want`.
fn plain_get(addr: SocketAddr, path: &str, want: u16) -> Option<Duration> {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let status: u16 = String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    (status == want).then(|| started.elapsed())
}

/// The three prompt clients: the API, the gateway (an app's route) and the data plane (with
/// the gateway's certificate, on a new connection each time). Latencies, or which failed.
struct Prompt {
    api: SocketAddr,
    gateway: SocketAddr,
    data_plane: String,
    tls: reqwest::blocking::Client,
}

impl Prompt {
    fn new(s: &Skiff) -> Prompt {
        let cert = skiff_pki::NodeCert::load(&s.state_dir().join("gateway").join("pki"))
            .expect("the gateway's certificate");
        let tls = skiff_pki::https::https_client_config(&cert, skiff_pki::https::Peer::Agent).expect("tls");
        Prompt {
            api: format!("127.0.0.1:{}", s.api).parse().unwrap(),
            gateway: format!("127.0.0.1:{}", s.gateway).parse().unwrap(),
            data_plane: format!("https://127.0.0.1:{}/", s.data_plane),
            tls: reqwest::blocking::Client::builder()
                .use_preconfigured_tls(tls)
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(3))
                .build()
                .expect("client"),
        }
    }

    fn round(&self) -> Result<[Duration; 3], String> {
        let api = plain_get(self.api, "/healthz", 200).ok_or("the API did not answer /healthz")?;
        let gw = plain_get(self.gateway, "/", 200).ok_or("the gateway did not answer the app's route")?;
        let started = Instant::now();
        // Any status is an answer: the request names no pod.
        self.tls
            .get(&self.data_plane)
            .send()
            .map_err(|e| format!("the data plane did not answer: {e}"))?;
        Ok([api, gw, started.elapsed()])
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn slow_connections_beyond_the_open_file_limit_leave_every_listener_answering() {
    let ours = skiff_listen::raise_fd_limit().unwrap_or(u64::MAX);
    let needed = 3 * SLOW_PER_LISTENER as u64 + 256;
    assert!(
        ours >= needed,
        "this test holds {needed} sockets but may open only {ours} files: raise the hard limit (ulimit -Hn)"
    );
    let s = Skiff::start_limited(NOFILE);
    let app = repo_root().join("examples/hello-http/app.yaml");
    s.cli_ok(&["apply", "-f", app.to_str().expect("utf-8 path")]);
    s.wait_until(
        "the app answers through the gateway",
        Duration::from_secs(90),
        || s.gateway_get("/").is_some_and(|r| r.0 == 200),
    );
    let prompt = Prompt::new(&s);
    let mut before = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..15 {
        let r = prompt
            .round()
            .unwrap_or_else(|e| panic!("{e} before the flood\n{}", s.log()));
        for (i, d) in r.into_iter().enumerate() {
            before[i].push(d);
        }
    }
    let log_before = s.log().len();

    // The flood: half a request head on the API and the gateway, the first bytes of a TLS
    // record on the data plane; a prompt round after every 100 slow connections.
    let targets: [(SocketAddr, &[u8]); 3] = [
        (prompt.api, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
        (prompt.gateway, b"GET / HTTP/1.1\r\nHost: x\r\n"),
        (
            format!("127.0.0.1:{}", s.data_plane).parse().unwrap(),
            b"\x16\x03\x01",
        ),
    ];
    let mut held = Vec::new();
    let mut during = [Vec::new(), Vec::new(), Vec::new()];
    for i in 0..SLOW_PER_LISTENER {
        for (addr, opening) in &targets {
            held.push(slow(*addr, opening));
        }
        if i % 100 == 99 {
            let r = prompt
                .round()
                .unwrap_or_else(|e| panic!("{e} after {} slow connections\n{}", held.len(), s.log()));
            for (k, d) in r.into_iter().enumerate() {
                during[k].push(d);
            }
        }
    }
    let flooded = Instant::now();
    for (k, name) in ["API", "gateway", "data plane"].into_iter().enumerate() {
        let (b, d) = (median(before[k].clone()), median(during[k].clone()));
        eprintln!("{name}: median {b:?} before the flood, {d:?} during it");
        assert!(
            // Loose enough for a loaded CI machine; starved clients time out (3 s) instead.
            d <= b * 10 + Duration::from_millis(50),
            "{name}: median latency {d:?} during the flood, {b:?} before"
        );
    }

    // Every slow socket is closed: the oldest to make room, the rest by the header timeout.
    let deadline = flooded + HEADER_TIMEOUT + Duration::from_secs(10);
    loop {
        held.retain_mut(|c| !closed(c));
        if held.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} slow connections still open {:?} after the flood",
            held.len(),
            flooded.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        flooded.elapsed() >= HEADER_TIMEOUT - Duration::from_secs(2),
        "the last slow connections were closed after {:?}, before the header timeout",
        flooded.elapsed()
    );
    prompt
        .round()
        .unwrap_or_else(|e| panic!("{e} after the flood\n{}", s.log()));

    // The log grew by a few lines, not one per connection.
    let log = s.log();
    let grown = &log[log_before..];
    assert!(
        grown.len() < 32 * 1024,
        "the log grew by {} bytes:\n{grown}",
        grown.len()
    );
    assert!(!grown.contains("accept failed"), "{grown}");
}

/// A raw request on a new connection to `addr`; the status code of the answer.
fn raw_status(addr: SocketAddr, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    // The server may answer and close before it has read everything: a failed write is fine.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn the_gateway_refuses_bodies_and_heads_over_its_limits() {
    let s = Skiff::start_with(&["--max-body-size".into(), "1Ki".into()]);
    // The hostile test guest's /echo reads the whole body and sends it back.
    let manifest = format!(
        r#"apiVersion: skiff.dev/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      components: [{{name: guest, wasm: {{path: {wasm}}}}}]
---
apiVersion: skiff.dev/v1
kind: Service
metadata: {{name: echo}}
spec: {{selector: {{app: echo}}}}
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata: {{name: echo}}
spec:
  rules: [{{pathPrefix: /, backends: [{{service: echo}}]}}]
"#,
        wasm = hostile_wasm().display()
    );
    let file = s.dir.path().join("echo.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    s.wait_until("the echo pod serves /", Duration::from_secs(90), || {
        s.gateway_get("/").is_some_and(|r| r.0 == 200)
    });
    let gw: SocketAddr = format!("127.0.0.1:{}", s.gateway).parse().unwrap();
    let body = "x".repeat(2048);
    // Within the limit: served.
    let small = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{}",
        &body[..10]
    );
    assert_eq!(raw_status(gw, small.as_bytes()), Some(200));
    // A declared length over the limit: 413 before anything is forwarded.
    let declared =
        format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\nConnection: close\r\n\r\n{body}");
    assert_eq!(raw_status(gw, declared.as_bytes()), Some(413));
    // A chunked body that grows past the limit: 413 too.
    let chunked = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{body}\r\n0\r\n\r\n"
    );
    assert_eq!(raw_status(gw, chunked.as_bytes()), Some(413));
    // A request head over 64 KiB: 431.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "y".repeat(80 * 1024)
    );
    assert_eq!(raw_status(gw, huge.as_bytes()), Some(431));
    // And the gateway still serves.
    assert_eq!(s.gateway_get("/").map(|r| r.0), Some(200));
}
