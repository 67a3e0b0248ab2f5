//! Namespaces on every verb: `apply -n`, `get/describe/delete/logs -n|-A|-l`, `scale -n`,
//! `rollout -n`, with the example app in its own namespace.
use std::time::Duration;

use crate::harness::{Skiff, hello_app};

#[test]
fn every_verb_takes_a_namespace_and_the_list_verbs_take_all_namespaces_and_selectors() {
    let s = Skiff::start();
    let dir = s.dir.path();
    std::fs::write(
        dir.join("ns.yaml"),
        "apiVersion: skiff.dev/v1\nkind: Namespace\nmetadata:\n  name: team-a\n",
    )
    .expect("write");
    s.cli_ok(&["apply", "-f", dir.join("ns.yaml").to_str().expect("utf-8")]);
    // The example app names no namespace: -n puts all of it in team-a.
    let app = hello_app();
    let app_path = dir.join("app.yaml");
    std::fs::write(&app_path, &app).expect("write");
    let app_path = app_path.to_str().expect("utf-8");
    let out = s.cli_ok(&["apply", "-n", "team-a", "-f", app_path]);
    assert!(out.contains("deployment/hello applied"), "{out}");
    s.cli_ok(&[
        "rollout",
        "status",
        "-n",
        "team-a",
        "deployment/hello",
        "--timeout",
        "2m",
    ]);
    s.wait_until(
        "the team-a app answers through the gateway",
        Duration::from_secs(60),
        || {
            s.gateway_get("/")
                .is_some_and(|(st, b)| st == 200 && b.starts_with("hello from hello-"))
        },
    );

    // A document naming another namespace than -n is refused, and nothing is applied.
    let other = dir.join("other.yaml");
    std::fs::write(
        &other,
        "apiVersion: skiff.dev/v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: team-a\ndata: {}\n---\n\
         apiVersion: skiff.dev/v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: default\ndata: {}\n",
    )
    .expect("write");
    let out = s.cli(&["apply", "-n", "team-a", "-f", other.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("document 2: metadata.namespace is \"default\" but -n says \"team-a\""),
        "{err}"
    );
    let cms = s.cli(&["get", "cm", "a", "-n", "team-a"]);
    assert!(!cms.status.success(), "nothing of the refused apply was stored");

    // get: the namespace, the default one (empty), all of them (with the NAMESPACE column).
    let pods = s.cli_ok(&["get", "pods", "-n", "team-a"]);
    assert_eq!(
        pods.lines().filter(|l| l.starts_with("hello-")).count(),
        2,
        "{pods}"
    );
    let none = s.cli(&["get", "pods"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("no pods found in namespace default"));
    let all = s.cli_ok(&["get", "pods", "-A", "-l", "app=hello"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert_eq!(
        all.lines().filter(|l| l.starts_with("team-a")).count(),
        2,
        "{all}"
    );
    assert!(
        s.cli_ok(&["get", "pods", "-A", "-l", "app=other"])
            .trim()
            .is_empty()
    );

    // describe by selector, in a namespace and across all of them.
    let d = s.cli_ok(&["describe", "deploy", "-n", "team-a", "-l", "app=hello"]);
    assert!(d.contains("hello") && d.contains("ReplicaSet"), "{d}");
    let d = s.cli_ok(&["describe", "pods", "-A", "-l", "app=hello"]);
    assert_eq!(d.matches("Namespace:  team-a").count(), 2, "{d}");

    // logs by selector: one section per pod.
    s.gateway_get("/");
    let logs = s.cli_ok(&["logs", "-n", "team-a", "-l", "app=hello"]);
    assert_eq!(logs.matches("==> team-a/hello-").count(), 2, "{logs}");

    // scale and rollout in the namespace.
    s.cli_ok(&["scale", "-n", "team-a", "deployment/hello", "--replicas", "3"]);
    s.cli_ok(&[
        "rollout",
        "status",
        "-n",
        "team-a",
        "deployment/hello",
        "--timeout",
        "2m",
    ]);
    let pods = s.cli_ok(&["get", "pods", "-n", "team-a", "-l", "app=hello"]);
    assert_eq!(
        pods.lines().filter(|l| l.starts_with("hello-")).count(),
        3,
        "{pods}"
    );

    // label: set, refuse to overwrite without --overwrite, remove; selectors see it.
    s.cli_ok(&["label", "deploy", "hello", "-n", "team-a", "tier=web"]);
    let listed = s.cli_ok(&["get", "deploy", "-n", "team-a", "-l", "tier=web"]);
    assert!(listed.contains("hello"), "{listed}");
    let out = s.cli(&["label", "deploy", "hello", "-n", "team-a", "tier=api"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --overwrite"));
    s.cli_ok(&[
        "label",
        "deploy",
        "hello",
        "-n",
        "team-a",
        "tier=api",
        "--overwrite",
    ]);
    assert!(
        s.cli_ok(&["get", "deploy", "-n", "team-a", "-l", "tier=api"])
            .contains("hello")
    );
    s.cli_ok(&["label", "deploy", "hello", "-n", "team-a", "tier-"]);
    assert!(
        s.cli_ok(&["get", "deploy", "-n", "team-a", "-l", "tier"])
            .trim()
            .is_empty()
    );
    let out = s.cli(&["label", "deploy", "hello", "-n", "team-a", "Bad Key=x"]);
    assert!(!out.status.success());

    // delete by selector (the replica set makes new pods) and --all.
    let out = s.cli_ok(&["delete", "pods", "-n", "team-a", "-l", "app=hello"]);
    assert_eq!(out.matches("deleted").count(), 3, "{out}");
    s.cli_ok(&[
        "rollout",
        "status",
        "-n",
        "team-a",
        "deployment/hello",
        "--timeout",
        "2m",
    ]);
    let out = s.cli(&["delete", "deploy", "-n", "team-a"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("a NAME, -l SELECTOR, or --all"));
    let out = s.cli_ok(&["delete", "deploy", "--all", "-n", "team-a"]);
    assert!(out.contains("deployment/hello deleted"), "{out}");
    s.wait_until("the team-a pods are gone", Duration::from_secs(30), || {
        !s.cli_ok(&["get", "pods", "-n", "team-a"]).contains("hello-")
    });
}
