//! Resource quotas on `skiff up`: a Deployment grows only as far as its namespace's quota lets it
//! (the rest is a `FailedCreate` Warning on its ReplicaSet naming the quota), a direct write over
//! quota gets 403 `QuotaExceeded` naming the quota and the amount, key-value writes and
//! artifact references are limited too, `skiff get quota` shows usage, and deleting frees room.
use std::time::Duration;

use crate::functions::{api, http, token};
use crate::harness::{Skiff, hello_app, hello_wasm};

const QUOTA: &str = "apiVersion: skiff.dev/v1
kind: Namespace
metadata:
  name: team
---
apiVersion: skiff.dev/v1
kind: ResourceQuota
metadata:
  name: small
  namespace: team
spec:
  hard:
    pods: 2
    requests.memory: 96Mi
    keyvalue.bytes: 16
";

fn app(replicas: u32) -> String {
    hello_app().replace("replicas: 2", &format!("replicas: {replicas}"))
}

fn running_pods(s: &Skiff) -> usize {
    s.cli_ok(&["get", "pods", "-n", "team"])
        .lines()
        .filter(|l| l.starts_with("hello-"))
        .count()
}

#[test]
fn a_namespace_holds_what_its_quota_allows_and_the_refusal_names_the_quota() {
    let s = Skiff::start();
    let dir = s.dir.path();
    let quota = dir.join("quota.yaml");
    std::fs::write(&quota, QUOTA).expect("write");
    s.cli_ok(&["apply", "-f", quota.to_str().expect("utf-8")]);

    // Three replicas of 32Mi: the quota holds two.
    let app_path = dir.join("app.yaml");
    std::fs::write(&app_path, app(3)).expect("write");
    s.cli_ok(&["apply", "-n", "team", "-f", app_path.to_str().expect("utf-8")]);
    s.wait_until(
        "the ReplicaSet records the quota refusal",
        Duration::from_secs(60),
        || {
            let ev = s.cli_ok(&["get", "events", "-n", "team"]);
            ev.contains("FailedCreate") && ev.contains("quota \"small\"")
        },
    );
    assert_eq!(running_pods(&s), 2, "two pods fit the quota");
    let events = s.cli_ok(&["get", "events", "-n", "team"]);
    assert!(events.contains("for pods: 2 used of 2"), "{events}");
    let q = s.cli_ok(&["get", "quota", "-n", "team"]);
    assert!(
        q.contains("pods: 2/2") && q.contains("requests.memory: 64Mi/96Mi"),
        "{q}"
    );

    // A pod written directly: 403 QuotaExceeded naming the quota and the amount.
    let pod = dir.join("pod.yaml");
    std::fs::write(
        &pod,
        format!(
            "apiVersion: skiff.dev/v1\nkind: Pod\nmetadata:\n  name: extra\n  namespace: team\nspec:\n  components:\n    - name: web\n      wasm:\n        path: {}\n",
            hello_wasm().display()
        ),
    )
    .expect("write");
    let out = s.cli(&["apply", "-f", pod.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("quota \"small\" for pods: 2 used of 2, and this write adds 1"),
        "{err}"
    );

    // Over the API: 403 with code QuotaExceeded.
    let r = http()
        .post(format!("{}/api/v1/namespaces/team/pods", api(&s)))
        .bearer_auth(token(&s))
        .header("content-type", "application/json")
        .body(r#"{"apiVersion":"skiff.dev/v1","kind":"Pod","metadata":{"name":"x","namespace":"team"},"spec":{"components":[{"name":"c","wasm":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}}]}}"#)
        .send()
        .expect("post");
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().expect("a JSON error body");
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("QuotaExceeded")),
        "{body}"
    );

    // Key-value bytes.
    s.cli_ok(&["kv", "set", "-n", "team", "cfg", "a", "0123456789"]);
    let out = s.cli(&["kv", "set", "-n", "team", "cfg", "b", "0123456789"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("for keyvalue.bytes: 10 used of 16"), "{err}");

    // Scaling down frees room; the namespace's usage follows.
    std::fs::write(&app_path, app(1)).expect("write");
    s.cli_ok(&["apply", "-n", "team", "-f", app_path.to_str().expect("utf-8")]);
    s.wait_until("one pod is left", Duration::from_secs(60), || {
        running_pods(&s) == 1
    });
    s.cli_ok(&["apply", "-f", pod.to_str().expect("utf-8")]);
    s.wait_until("the quota shows the new usage", Duration::from_secs(30), || {
        s.cli_ok(&["get", "quota", "-n", "team"]).contains("pods: 2/2")
    });
}

#[test]
fn artifacts_past_the_namespace_bytes_are_refused() {
    let s = Skiff::start();
    let dir = s.dir.path();
    let quota = dir.join("quota.yaml");
    // hello.wasm is about 66 KiB: the quota holds no artifact that large.
    std::fs::write(
        &quota,
        "apiVersion: skiff.dev/v1\nkind: Namespace\nmetadata:\n  name: team\n---\n\
         apiVersion: skiff.dev/v1\nkind: ResourceQuota\nmetadata:\n  name: bytes\n  namespace: team\n\
         spec:\n  hard:\n    artifacts.bytes: 32Ki\n",
    )
    .expect("write");
    s.cli_ok(&["apply", "-f", quota.to_str().expect("utf-8")]);
    let app_path = dir.join("app.yaml");
    std::fs::write(&app_path, app(1)).expect("write");
    let out = s.cli(&["apply", "-n", "team", "-f", app_path.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("quota \"bytes\" for artifacts.bytes: 0 used of 32Ki"),
        "{err}"
    );
    // The same app in a namespace without the quota is fine.
    s.cli_ok(&["apply", "-f", app_path.to_str().expect("utf-8")]);
    let q = s.cli_ok(&["get", "quota", "-n", "team"]);
    assert!(q.contains("artifacts.bytes: 0/32Ki"), "{q}");
}
