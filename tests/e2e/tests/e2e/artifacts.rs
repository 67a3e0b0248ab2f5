//! Bad artifacts are refused at the door (issue 19, §3): a truncated, bit-flipped or non-wasm
//! file is refused by `skiff push` and `skiff apply` with the validator's message and nothing is
//! stored; a component that validates but cannot start waits on its node with a growing
//! back-off instead of churning pods; and a pod says `Compiling` while its node compiles.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Skiff, repo_root};

fn hello() -> Vec<u8> {
    std::fs::read(repo_root().join("examples/hello-http/hello.wasm")).expect("hello.wasm")
}

/// A one-replica Deployment of the component at `wasm`, written next to it.
fn deployment(dir: &Path, name: &str, wasm: &Path) -> PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: skiff.dev/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  \
             selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    \
             spec: {{components: [{{name: web, wasm: {{path: {}}}}}]}}\n",
            wasm.display()
        ),
    )
    .expect("write manifest");
    file
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The pods of the cluster as JSON.
fn pods(s: &Skiff, selector: &str) -> Vec<Value> {
    let out = s.cli_ok(&["get", "pods", "-l", selector, "-o", "json"]);
    let v: Value = serde_json::from_str(&out).expect("json");
    v["items"].as_array().cloned().unwrap_or_else(|| vec![v])
}

#[test]
fn bad_components_are_refused_by_push_and_apply_and_nothing_is_stored() {
    let s = Skiff::start();
    let dir = s.dir.path();
    let hello = hello();
    let mut flipped = hello.clone();
    flipped[8] ^= 0x40;
    // (file, bytes, words of the error)
    let cases: [(&str, Vec<u8>, &[&str]); 3] = [
        (
            "truncated.wasm",
            hello[..hello.len() / 2].to_vec(),
            &[
                "not a valid WebAssembly component",
                "unexpected end-of-file",
                "byte offset",
                "rebuild the component",
                "truncated",
            ],
        ),
        (
            "flipped.wasm",
            flipped,
            &[
                "not a valid WebAssembly component",
                "malformed section id",
                "byte offset 10",
            ],
        ),
        (
            "notes.wasm",
            b"just some notes\n".to_vec(),
            &["is not WebAssembly", "compiled .wasm component"],
        ),
    ];
    let revision_before = s.cli_ok(&["get", "deployments", "-o", "json"]);
    for (name, bytes, words) in &cases {
        let file = dir.join(name);
        std::fs::write(&file, bytes).expect("write");
        let path = file.to_str().expect("utf-8");

        let push = s.cli(&["push", path]);
        assert!(!push.status.success(), "{name}: push succeeded");
        let err = stderr(&push);
        assert!(err.contains(name), "{name}: {err}");
        assert!(err.contains("nothing was uploaded"), "{name}: {err}");
        for w in *words {
            assert!(err.contains(w), "{name}: push: {err:?} lacks {w:?}");
        }

        let manifest = deployment(dir, "bad", &file);
        let apply = s.cli(&["apply", "-f", manifest.to_str().expect("utf-8")]);
        assert!(!apply.status.success(), "{name}: apply succeeded");
        let err = stderr(&apply);
        assert!(
            err.contains("bad.yaml: document 1: spec.template.spec.components[0].wasm.path"),
            "{name}: {err}"
        );
        assert!(err.contains("nothing was applied"), "{name}: {err}");
        for w in *words {
            assert!(err.contains(w), "{name}: apply: {err:?} lacks {w:?}");
        }

        // Any other client gets the same refusal from the server: 422 with the details.
        let token = std::fs::read_to_string(s.state_dir().join("admin.token")).expect("admin token");
        let r = reqwest::blocking::Client::new()
            .post(format!("http://127.0.0.1:{}/api/v1/artifacts", s.api))
            .bearer_auth(token.trim())
            .body(bytes.clone())
            .send()
            .expect("upload");
        assert_eq!(r.status().as_u16(), 422, "{name}");
        let body: Value = r.json().expect("json body");
        assert_eq!(body["code"], "InvalidComponent", "{name}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.ends_with("nothing was stored"), "{name}: {message}");
        assert_eq!(body["details"]["size"], bytes.len(), "{name}: {body}");
    }
    // Nothing reached the artifact store or the replicated state.
    let store = s.state_dir().join("artifacts/sha256");
    let stored: Vec<_> = std::fs::read_dir(&store)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(stored.is_empty(), "the store holds {stored:?}");
    assert_eq!(s.cli_ok(&["get", "deployments", "-o", "json"]), revision_before);
    let out = s.cli(&["get", "deployment", "bad"]);
    assert!(!out.status.success(), "the refused deployment was not stored");
}

#[test]
fn a_component_that_cannot_start_waits_on_its_node_without_churning_pods() {
    // A fast back-off so that the growing waits show within the test.
    let s = Skiff::start_with(&["--restart-backoff".into(), "1s".into()]);
    // The empty component: valid, compiles, but serves no wasi:http, so it can never start as
    // an HTTP pod.
    let wasm = s.dir.path().join("empty.wasm");
    std::fs::write(&wasm, b"\0asm\x0d\0\x01\0").expect("write");
    let manifest = deployment(s.dir.path(), "idle", &wasm);
    s.cli_ok(&["apply", "-f", manifest.to_str().expect("utf-8")]);
    s.wait_until(
        "the pod waits with WorldMismatch",
        Duration::from_secs(60),
        || {
            s.cli_ok(&["get", "pods", "-l", "app=idle"])
                .contains("WorldMismatch")
        },
    );

    // Watch it for 15 s: one pod throughout, never replaced, its back-off growing, few writes.
    let mut uids = BTreeSet::new();
    let mut versions = BTreeSet::new();
    let mut waits = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        for p in pods(&s, "app=idle") {
            uids.insert(p["metadata"]["uid"].as_str().unwrap_or_default().to_owned());
            versions.insert(p["metadata"]["resourceVersion"].as_u64().unwrap_or_default());
            let st = &p["status"];
            assert_eq!(st["phase"], "Pending", "{p}");
            assert_eq!(st["restartCount"].as_u64().unwrap_or(0), 0, "nothing ran: {p}");
            let message = st["message"].as_str().unwrap_or_default();
            if st["reason"] == "WorldMismatch" {
                assert!(
                    message.starts_with("back-off ")
                        && message.contains("next try at")
                        && message.contains("wasi:http"),
                    "{message}"
                );
                let wait = message.split_whitespace().nth(1).unwrap_or_default().to_owned();
                if waits.last() != Some(&wait) {
                    waits.push(wait);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(uids.len(), 1, "the pod was replaced: {uids:?}");
    assert!(waits.len() >= 3, "the back-off grows: {waits:?}");
    assert_eq!(&waits[..3], ["1s", "2s", "4s"], "{waits:?}");
    // A status write per try (1 s, 2 s, 4 s, 8 s → at most 5 in 15 s, plus a Compiling
    // report and the scheduler's binding), not a new pod every few seconds.
    assert!(
        versions.len() <= 8,
        "{} writes of the pod: {versions:?}",
        versions.len()
    );
    let events = s.cli_ok(&["get", "events"]);
    let created = events
        .lines()
        .filter(|l| l.contains("SuccessfulCreate") && l.contains("created pod"))
        .count();
    assert!(created <= 1, "{events}");
    assert!(events.contains("BackOff"), "{events}");
}

#[test]
fn a_pod_reports_compiling_while_its_node_compiles_the_component() {
    let s = Skiff::start();
    let wasm = repo_root().join("examples/hello-http/hello.wasm");
    let manifest = deployment(s.dir.path(), "fresh", &wasm);
    s.cli_ok(&["apply", "-f", manifest.to_str().expect("utf-8")]);
    s.wait_until("the pod runs", Duration::from_secs(60), || {
        s.cli_ok(&["get", "pods", "-l", "app=fresh"]).contains("Running")
    });
    // The node never compiled it before, so the start reported Compiling first: each report is
    // a status write with its event, in the order the agent made them.
    let pod = pods(&s, "app=fresh")[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let out = s.cli_ok(&["get", "events", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).expect("json");
    let of_pod: Vec<&Value> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["involvedObject"]["name"] == pod.as_str())
        .collect();
    // The revision at which each event was written: the agent's reports in their order.
    let written = |reason: &str| {
        of_pod
            .iter()
            .find(|e| e["reason"] == reason)
            .and_then(|e| e["metadata"]["resourceVersion"].as_u64())
            .unwrap_or_else(|| panic!("no {reason} event for {pod}: {of_pod:?}"))
    };
    assert!(
        written("Compiling") < written("Started"),
        "Compiling is reported before the pod starts: {of_pod:?}"
    );
    let compiling = of_pod.iter().find(|e| e["reason"] == "Compiling").expect("event");
    assert!(
        compiling["message"]
            .as_str()
            .unwrap_or_default()
            .contains("compiling component web"),
        "{compiling}"
    );
}
