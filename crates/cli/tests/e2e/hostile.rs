//! A guest that traps, loops forever or eats memory fails only that request.
use std::time::Duration;

use crate::harness::{Skiff, hostile_wasm};

#[test]
fn hostile_requests_fail_alone_and_the_pod_keeps_serving() {
    let mut s = Skiff::start();
    let wasm = hostile_wasm();
    let manifest = format!(
        r#"apiVersion: skiff.dev/v1
kind: Deployment
metadata: {{name: hostile}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: hostile}}}}
  template:
    metadata: {{labels: {{app: hostile}}}}
    spec:
      components:
        - name: guest
          wasm: {{path: {wasm}}}
          resources: {{memory: 16Mi, timeout: 500ms}}
---
apiVersion: skiff.dev/v1
kind: Service
metadata: {{name: hostile}}
spec: {{selector: {{app: hostile}}}}
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata: {{name: hostile}}
spec:
  rules:
    - {{pathPrefix: /, backends: [{{service: hostile}}]}}
    - {{pathPrefix: /sleep, backends: [{{service: hostile}}], timeout: 200ms}}
"#,
        wasm = wasm.display()
    );
    let file = s.dir.path().join("hostile.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    s.wait_until("the hostile pod serves /", Duration::from_secs(90), || {
        s.gateway_get("/").map(|r| r.0) == Some(200)
    });

    for (path, want) in [("/trap", 500), ("/loop", 504), ("/grow", 500)] {
        let (status, body) = s.gateway_get(path).expect("gateway answered");
        assert_eq!(status, want, "{path}: {body}");
        let (status, body) = s.gateway_get("/").expect("gateway answered");
        assert_eq!((status, body.as_str()), (200, "ok\n"), "after {path}");
    }
    // The route's own deadline: the gateway gives up first.
    let (status, body) = s.gateway_get("/sleep?ms=400").expect("gateway answered");
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("rule timeout"), "{body}");
    assert_eq!(s.gateway_get("/").map(|r| r.0), Some(200));

    // Bad requests interleaved with good ones from other threads.
    std::thread::scope(|scope| {
        let bad = scope.spawn(|| {
            (0..3)
                .map(|_| s.gateway_get("/loop").map(|r| r.0))
                .collect::<Vec<_>>()
        });
        let good: Vec<_> = (0..20).map(|_| s.gateway_get("/").map(|r| r.0)).collect();
        assert!(good.iter().all(|g| *g == Some(200)), "{good:?}");
        assert!(bad.join().expect("thread").iter().all(|b| *b == Some(504)));
    });
    assert!(s.alive(), "the process survived");
    let pods = s.cli_ok(&["get", "pods"]);
    assert!(pods.contains("Running"), "{pods}");
}
