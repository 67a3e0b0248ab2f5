//! The demo app on `skiff up`: apply, both replicas answer, delete → 404, restart serves again.
use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::{Skiff, repo_root};

fn replicas_answering(s: &Skiff, want: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    s.wait_until(
        &format!("{want} distinct replicas answer through the gateway"),
        Duration::from_secs(90),
        || {
            for _ in 0..20 {
                if let Some((200, body)) = s.gateway_get("/") {
                    // "hello from <pod> ..." names the replica that answered.
                    if let Some(pod) = body.split_whitespace().find(|w| w.starts_with("hello-")) {
                        seen.insert(
                            pod.trim_matches(|c: char| !c.is_alphanumeric() && c != '-')
                                .to_owned(),
                        );
                    }
                }
            }
            seen.len() >= want
        },
    );
    seen
}

#[test]
fn demo_app_serves_through_the_gateway_and_survives_restart() {
    let mut s = Skiff::start();
    let app = repo_root().join("examples/hello-http/app.yaml");
    let app = app.to_str().expect("utf-8 path");

    // Before anything is applied, the gateway has no route.
    assert_eq!(s.gateway_get("/").map(|r| r.0), Some(404));

    let out = s.cli_ok(&["apply", "-f", app]);
    assert!(out.contains("deployment/hello applied"), "{out}");
    let pods = replicas_answering(&s, 2);
    assert_eq!(pods.len(), 2, "{pods:?}");

    let table = s.cli_ok(&["get", "pods"]);
    assert_eq!(
        table.lines().filter(|l| l.contains("Running")).count(),
        2,
        "{table}"
    );
    let deploy = s.cli_ok(&["get", "deploy", "hello", "-o", "json"]);
    assert!(deploy.contains("\"readyReplicas\": 2"), "{deploy}");

    // Guest output is captured per pod.
    let pod = pods.iter().next().expect("a pod").clone();
    s.wait_until(
        "the pod's log has the request lines",
        Duration::from_secs(20),
        || String::from_utf8_lossy(&s.cli(&["logs", &pod]).stdout).contains(": / -> 200"),
    );

    // Delete → the route is gone → 404.
    s.cli_ok(&["delete", "-f", app]);
    s.wait_until(
        "the gateway answers 404 after delete",
        Duration::from_secs(30),
        || s.gateway_get("/").map(|r| r.0) == Some(404),
    );
    s.wait_until("the pods are garbage-collected", Duration::from_secs(30), || {
        !s.cli_ok(&["get", "pods"]).contains("hello-")
    });

    // Apply again, then kill -9 and restart on the same state dir: served without re-applying.
    s.cli_ok(&["apply", "-f", app]);
    replicas_answering(&s, 2);
    s.kill();
    s.spawn();
    let again = replicas_answering(&s, 2);
    assert_eq!(again.len(), 2);
    assert!(s.alive());
}

#[test]
fn scale_changes_the_number_of_pods() {
    let s = Skiff::start();
    let app = repo_root().join("examples/hello-http/app.yaml");
    s.cli_ok(&["apply", "-f", app.to_str().expect("utf-8")]);
    replicas_answering(&s, 2);
    s.cli_ok(&["scale", "deployment/hello", "--replicas", "3"]);
    replicas_answering(&s, 3);
    s.cli_ok(&["scale", "deployment", "hello", "--replicas", "1"]);
    s.wait_until("one pod is left", Duration::from_secs(30), || {
        s.cli_ok(&["get", "pods"])
            .lines()
            .filter(|l| l.starts_with("hello-"))
            .count()
            == 1
    });
    // No replica at all: the route exists but nothing can serve it.
    s.cli_ok(&["scale", "deployment/hello", "--replicas", "0"]);
    s.wait_until("the gateway answers 503 with no ready endpoint", Duration::from_secs(30), || {
        matches!(s.gateway_get("/"), Some((503, body)) if body.contains("no ready endpoint for default/hello"))
    });
    let yaml = s.cli_ok(&["get", "deploy", "hello", "-o", "yaml"]);
    assert!(yaml.contains("replicas: 0"), "{yaml}");
    let out = s.cli(&["scale", "deployment/hello", "--replicas", "-1"]);
    assert!(!out.status.success());
}

#[test]
fn a_pod_that_cannot_start_waits_with_a_reason() {
    let s = Skiff::start();
    let file = s.dir.path().join("missing.yaml");
    let digest = format!("sha256:{}", "0".repeat(64));
    std::fs::write(
        &file,
        format!(
            "apiVersion: skiff.dev/v1\nkind: Pod\nmetadata: {{name: lost}}\nspec:\n  components:\n    - name: c\n      wasm: {{digest: '{digest}'}}\n"
        ),
    )
    .expect("write");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    s.wait_until(
        "the pod waits with ArtifactNotFound",
        Duration::from_secs(30),
        || s.cli_ok(&["get", "pods", "lost"]).contains("ArtifactNotFound"),
    );
    let described = s.cli_ok(&["describe", "pod", "lost"]);
    // It stays Pending on its node and tries again after a back-off (the artifact may be
    // uploaded later); nothing replaces it.
    assert!(described.contains("Phase:      Pending"), "{described}");
    assert!(described.contains("back-off"), "{described}");
    assert!(described.contains("Scheduling: Scheduled"), "{described}");
    assert!(described.contains("artifact sha256:0000"), "{described}");
    // The scheduler's decision is recorded as an event, shown by describe and by get events.
    assert!(
        described.contains("Events:") && described.contains("Scheduled") && described.contains("pod/lost"),
        "{described}"
    );
    let events = s.cli_ok(&["get", "events"]);
    assert!(
        events.starts_with("LAST SEEN")
            && events
                .lines()
                .any(|l| l.contains("Scheduled") && l.contains("pod/lost")),
        "{events}"
    );
}
