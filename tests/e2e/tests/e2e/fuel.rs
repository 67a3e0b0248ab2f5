//! Fuel on a real worker: `resources.fuel` limits one request (a spinning guest ends in 500
//! "ran out of fuel", not the deadline), and a namespace's `fuel.perMinute` budget answers 429
//! with `retry-after` once used, recorded as a `FuelThrottled` Warning on the pod.
use std::time::Duration;

use crate::harness::{Skiff, hostile_wasm};

fn manifest(wasm: &std::path::Path) -> String {
    format!(
        r#"apiVersion: skiff.dev/v1
kind: Namespace
metadata: {{name: metered}}
---
apiVersion: skiff.dev/v1
kind: ResourceQuota
metadata: {{name: cpu, namespace: metered}}
spec:
  hard: {{fuel.perMinute: 300000000}}
---
apiVersion: skiff.dev/v1
kind: Deployment
metadata: {{name: spin, namespace: metered}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: spin}}}}
  template:
    metadata: {{labels: {{app: spin}}}}
    spec:
      components:
        - name: guest
          wasm: {{path: {wasm}}}
          resources: {{memory: 16Mi, timeout: 20s, fuel: 100000000}}
---
apiVersion: skiff.dev/v1
kind: Service
metadata: {{name: spin, namespace: metered}}
spec: {{selector: {{app: spin}}}}
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata: {{name: spin, namespace: metered}}
spec:
  rules:
    - {{pathPrefix: /, backends: [{{service: spin}}], timeout: 30s}}
"#,
        wasm = wasm.display()
    )
}

#[test]
fn fuel_limits_a_request_and_a_namespace_budget_throttles_with_429() {
    let s = Skiff::start();
    let file = s.dir.path().join("spin.yaml");
    std::fs::write(&file, manifest(&hostile_wasm())).expect("write manifest");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    s.wait_until("the pod serves /", Duration::from_secs(90), || {
        s.gateway_get("/").map(|r| r.0) == Some(200)
    });

    // 100M fuel per request: a spinning guest runs out of fuel long before its 20 s deadline.
    let started = std::time::Instant::now();
    let (status, body) = s.gateway_get("/loop").expect("gateway answered");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("ran out of fuel"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stopped by fuel, not the deadline"
    );

    // The namespace may burn 300M a minute on this worker (5M a second): the next spins use
    // it up (the first already burned 100M), and a spin is then stopped where the budget ends
    // and answered 429. Cheap requests go on at the refill rate.
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut statuses = Vec::new();
    let throttled = loop {
        let r = http
            .get(format!("http://127.0.0.1:{}/loop", s.gateway))
            .send()
            .expect("gateway answered");
        statuses.push(r.status().as_u16());
        if r.status().as_u16() == 429 {
            break r;
        }
        assert!(statuses.len() < 5, "no 429 within the budget: {statuses:?}");
    };
    assert!(
        statuses[..statuses.len() - 1].iter().all(|s| *s == 500),
        "{statuses:?}"
    );
    assert_eq!(throttled.headers()["x-skiff-throttled"], "fuel");
    let retry: u64 = throttled.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let body = throttled.text().expect("body");
    assert!(body.contains("fuel budget of 300000000 per minute"), "{body}");

    s.wait_until("the pod records the throttling", Duration::from_secs(30), || {
        let ev = s.cli_ok(&["get", "events", "-n", "metered"]);
        ev.contains("FuelThrottled") && ev.contains("requests answered 429")
    });
}
