//! Egress grants on a real worker: a component reaches an HTTP server outside the cluster only
//! with a `capabilities.outbound` grant for it; without one its request is denied, the pod's
//! log names the grant to add, an `OutboundDenied` Warning is recorded, and `describe` shows
//! the grants.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::{Skiff, hostile_wasm};

/// An HTTP server outside the cluster, on loopback: answers every request 200 `outside`;
/// counts them. Runs until the test process ends.
fn outside_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            counted.fetch_add(1, Ordering::SeqCst);
            let _ =
                stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\noutside");
        }
    });
    (port, hits)
}

fn manifest(wasm: &std::path::Path, name: &str, outbound: &[String]) -> String {
    let grants = if outbound.is_empty() {
        String::new()
    } else {
        format!("capabilities: {{outbound: [{}]}}", outbound.join(", "))
    };
    format!(
        r#"apiVersion: skiff.dev/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      components:
        - name: guest
          wasm: {{path: {wasm}}}
          {grants}
---
apiVersion: skiff.dev/v1
kind: Service
metadata: {{name: {name}}}
spec: {{selector: {{app: {name}}}}}
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  hostnames: [{name}.test]
  rules:
    - {{backends: [{{service: {name}}}]}}
"#,
        wasm = wasm.display()
    )
}

#[test]
fn a_component_reaches_the_outside_only_with_a_grant_and_a_denial_names_the_missing_one() {
    let s = Skiff::start();
    let (port, hits) = outside_server();
    let wasm = hostile_wasm();
    let granted = format!("\"http://127.0.0.1:{port}\"");
    for (name, grants) in [("open", vec![granted.clone()]), ("sealed", Vec::new())] {
        let file = s.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, manifest(&wasm, name, &grants)).expect("write manifest");
        s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    }
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let get = |host: &str, path: &str| -> Option<(u16, String)> {
        let r = http
            .get(format!("http://127.0.0.1:{}{path}", s.gateway))
            .header("host", format!("{host}.test"))
            .send()
            .ok()?;
        Some((r.status().as_u16(), r.text().ok()?))
    };
    for name in ["open", "sealed"] {
        s.wait_until(&format!("{name} serves"), Duration::from_secs(90), || {
            get(name, "/").map(|r| r.0) == Some(200)
        });
    }

    let (status, body) = get("open", &format!("/outbound?to=127.0.0.1:{port}")).expect("gateway answered");
    assert_eq!((status, body.as_str()), (200, "outbound allowed: 200\n"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The grant is for that port only.
    let (_, body) = get(
        "open",
        &format!("/outbound?to=127.0.0.1:{}", port.wrapping_add(1).max(1)),
    )
    .expect("gateway answered");
    assert!(body.contains("HttpRequestDenied"), "{body}");

    let (status, body) = get("sealed", &format!("/outbound?to=127.0.0.1:{port}")).expect("gateway answered");
    assert_eq!(status, 200);
    assert!(body.contains("HttpRequestDenied"), "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the denied request never left");

    let missing = format!("http://127.0.0.1:{port}");
    let pods: serde_json::Value =
        serde_json::from_str(&s.cli_ok(&["get", "pods", "-l", "app=sealed", "-o", "json"])).expect("json");
    let pod = pods["items"][0]["metadata"]["name"]
        .as_str()
        .expect("a sealed pod")
        .to_owned();
    let logs = s.cli_ok(&["logs", &pod]);
    assert!(
        logs.contains(&format!("outbound request to {missing}/ denied"))
            && logs.contains(&format!("add {missing:?}")),
        "{logs}"
    );
    s.wait_until(
        "the denial is recorded as an event",
        Duration::from_secs(30),
        || {
            let ev = s.cli_ok(&["get", "events"]);
            ev.contains("OutboundDenied") && ev.contains(&missing)
        },
    );
    let described = s.cli_ok(&["describe", "pod", &pod]);
    assert!(described.contains(&format!("missing {missing}")), "{described}");
    assert!(described.contains("OutboundDenied"), "{described}");
    let open = s.cli_ok(&["describe", "deployment", "open"]);
    assert!(
        open.contains("Grants:") && open.contains(&format!("outbound  http://127.0.0.1:{port}")),
        "{open}"
    );

    // A grant that does not parse is refused at the door, located.
    let bad = s.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        manifest(&wasm, "bad", &["\"https://example.com/api\"".into()]),
    )
    .expect("write");
    let out = s.cli(&["apply", "-f", bad.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("capabilities.outbound[0]") && err.contains("has a path"),
        "{err}"
    );
}
