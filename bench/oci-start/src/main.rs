//! Time from "start" to the first `200` answer, for one way of starting a busybox httpd:
//!
//! - `runc BUNDLE PORT RUNS` — `runc run -d` of a bundle (the one skiff-oci generated for the
//!   image), then `GET http://127.0.0.1:PORT/` until it answers 200.
//! - `plugin SOCKET IMAGE PORT RUNS` — the runtime-plugin protocol on skiff-oci's socket: create
//!   and start a container of IMAGE (already pulled), then the same GET.
//! - `pod API TOKEN GATEWAY RUNS COMPONENT_JSON` — `POST` a pod (labelled `bench=on`, its first
//!   component COMPONENT_JSON) to the API, then `GET /` through the gateway until 200; the pod
//!   is deleted and the route seen empty before the next run.
//!
//! Prints one line: `mode runs p50_ms p99_ms mean_ms min_ms max_ms`. Only std: every request is
//! HTTP/1.1 with `Connection: close`.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn request<S: Read + Write>(mut s: S, method: &str, path: &str, headers: &str, body: &str) -> Option<(u16, String)> {
    let msg = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    s.write_all(msg.as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn tcp(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> Option<(u16, String)> {
    let s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let _ = s.set_nodelay(true);
    request(s, method, path, headers, body)
}

fn unix(socket: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let s = UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {socket}: {e}"));
    request(s, method, path, "", body).unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

/// Polls `GET path` on `addr` until 200 (at most 60 s).
fn until_200(addr: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if tcp(addr, "GET", path, "", "").is_some_and(|(s, _)| s == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "no 200 from {addr}{path} within 60 s");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn until_not_200(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tcp(addr, "GET", "/", "", "").is_some_and(|(s, _)| s == 200) {
        assert!(Instant::now() < deadline, "{addr} still answers 200 after 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn report(mode: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{mode} {} {:.1} {:.1} {:.1} {:.1} {:.1}",
        ms.len(),
        pct(0.5),
        pct(0.99),
        mean,
        ms[0],
        ms[ms.len() - 1]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| panic!("missing argument {i}; see the source header"));
    let mut times = Vec::new();
    match arg(1).as_str() {
        "runc" => {
            let (bundle, port, runs) = (arg(2), arg(3), arg(4).parse::<usize>().unwrap());
            let addr = format!("127.0.0.1:{port}");
            for i in 0..runs {
                let id = format!("bench-runc-{}-{i}", std::process::id());
                let t0 = Instant::now();
                let ok = Command::new("runc")
                    .args(["run", "-d", "--bundle", &bundle, &id])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "runc run -d failed for {bundle}");
                until_200(&addr, "/");
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                let _ = Command::new("runc").args(["delete", "-f", &id]).output();
                until_not_200(&addr);
            }
            report("runc", times);
        }
        "plugin" => {
            let (socket, image, port, runs) = (arg(2), arg(3), arg(4), arg(5).parse::<usize>().unwrap());
            let addr = format!("127.0.0.1:{port}");
            for i in 0..runs {
                let id = format!("bench-plugin-{}-{i}", std::process::id());
                let spec = format!(r#"{{"id":"{id}","image":"{image}","port":{port},"memory":33554432}}"#);
                let t0 = Instant::now();
                let (s, b) = unix(&socket, "POST", "/v1/containers", &spec);
                assert_eq!(s, 201, "create: {b}");
                let (s, b) = unix(&socket, "POST", &format!("/v1/containers/{id}/start"), "");
                assert_eq!(s, 200, "start: {b}");
                until_200(&addr, "/");
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                let (s, b) = unix(&socket, "DELETE", &format!("/v1/containers/{id}"), "");
                assert_eq!(s, 204, "delete: {b}");
                until_not_200(&addr);
            }
            report("plugin", times);
        }
        "pod" => {
            let (api, token, gateway, runs, component) =
                (arg(2), arg(3), arg(4), arg(5).parse::<usize>().unwrap(), arg(6));
            let auth = format!("Authorization: Bearer {token}\r\n");
            let kind = if component.contains("\"oci\"") { "pod-oci" } else { "pod-wasm" };
            for i in 0..runs {
                let name = format!("bench-{}-{i}", std::process::id());
                let pod = format!(
                    r#"{{"apiVersion":"skiff.dev/v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"bench":"on"}}}},"spec":{{"components":[{component}]}}}}"#
                );
                let t0 = Instant::now();
                let (s, b) = tcp(&api, "POST", "/api/v1/namespaces/default/pods", &auth, &pod).expect("API");
                assert!(s == 201 || s == 200, "create pod: {s} {b}");
                until_200(&gateway, "/");
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                let (s, b) = tcp(&api, "DELETE", &format!("/api/v1/namespaces/default/pods/{name}"), &auth, "")
                    .expect("API");
                assert!(s < 300, "delete pod: {s} {b}");
                until_not_200(&gateway);
            }
            report(kind, times);
        }
        other => panic!("unknown mode {other:?}: runc, plugin or pod"),
    }
}
