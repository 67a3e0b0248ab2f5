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

#[test]
fn components_read_configmaps_and_secrets_through_wasi_config() {
    let s = Skiff::start();
    let wasm = hostile_wasm();
    let manifest = format!(
        r#"apiVersion: skiff.dev/v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{level: debug}}
---
apiVersion: skiff.dev/v1
kind: Secret
metadata: {{name: db}}
data: {{password: wasi-config-marker}}
---
apiVersion: skiff.dev/v1
kind: Deployment
metadata: {{name: reader}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: reader}}}}
  template:
    metadata: {{labels: {{app: reader}}}}
    spec:
      components:
        - name: guest
          wasm: {{path: {wasm}}}
          config:
            - {{name: region, value: eu-1}}
            - name: log_level
              valueFrom: {{configMapKeyRef: {{name: settings, key: level}}}}
            - name: db_password
              valueFrom: {{secretKeyRef: {{name: db, key: password}}}}
---
apiVersion: skiff.dev/v1
kind: Service
metadata: {{name: reader}}
spec: {{selector: {{app: reader}}}}
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata: {{name: reader}}
spec:
  rules:
    - {{pathPrefix: /, backends: [{{service: reader}}]}}
"#,
        wasm = wasm.display()
    );
    let file = s.dir.path().join("reader.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    s.wait_until("the reader pod serves", Duration::from_secs(90), || {
        s.gateway_get("/").map(|r| r.0) == Some(200)
    });
    let (status, body) = s.gateway_get("/config").expect("answer");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "db_password=wasi-config-marker\nlog_level=debug\nregion=eu-1\n"
    );
    assert_eq!(
        s.gateway_get("/config?key=log_level"),
        Some((200, "log_level=debug\n".to_string()))
    );
    // Configuration is not in the environment.
    let (_, env) = s.gateway_get("/env").expect("answer");
    assert!(
        !env.contains("wasi-config-marker") && !env.contains("log_level"),
        "{env}"
    );
    // A missing key fails the pod with a reason naming it.
    let broken = std::fs::read_to_string(&file)
        .expect("read")
        .replace("key: level", "key: nope")
        .replace("name: reader", "name: broken")
        .replace("app: reader", "app: broken");
    let broken_file = s.dir.path().join("broken.yaml");
    std::fs::write(&broken_file, broken).expect("write");
    s.cli_ok(&["apply", "-f", broken_file.to_str().expect("utf-8")]);
    s.wait_until(
        "the broken pod fails with ConfigError",
        Duration::from_secs(60),
        || {
            let pods = s.cli_ok(&["get", "pods", "-l", "app=broken", "-o", "wide"]);
            pods.contains("ConfigError")
        },
    );
    let pods = s.cli_ok(&["get", "pods", "-l", "app=broken", "-o", "json"]);
    assert!(
        pods.contains("config log_level from ConfigMap default/settings key \\\"nope\\\""),
        "{pods}"
    );
}
