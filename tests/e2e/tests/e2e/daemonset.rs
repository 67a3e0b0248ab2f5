//! A DaemonSet with real workers on 127.0.0.x: its pods follow a node joining, being relabelled
//! in and out of the selector, and leaving; a template change rolls every node's pod.
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Proc, free_port, hello_wasm, poll};

#[test]
fn a_daemon_set_follows_workers_joining_relabelled_and_leaving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, server_url, token, http) = crate::harness::start_server(dir.path());
    let join = crate::harness::join_token(dir.path());
    let agent = |name: &str, host: &str, labels: &str| {
        Proc::spawn(
            &[
                "agent",
                "--server",
                &server_url,
                "--token",
                &join,
                "--node-name",
                name,
                "--labels",
                labels,
                "--dir",
                dir.path().join(name).to_str().expect("utf-8"),
                "--data-plane",
                &format!("{host}:{}", free_port()),
            ],
            dir.path().join(format!("{name}.log")),
        )
    };
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(crate::harness::SKIFF)
            .args(args)
            .args(["--server", &server_url, "--token", &token])
            .output()
            .expect("skiff");
        assert!(
            out.status.success(),
            "skiff {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let get = |path: &str| -> Value {
        http.get(format!("{server_url}{path}"))
            .bearer_auth(&token)
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    };
    // node → greeting of its running daemon pod.
    let daemon_pods = || -> BTreeMap<String, String> {
        get("/api/v1/namespaces/default/pods?labelSelector=app%3Dnodeinfo")["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["status"]["phase"] == "Running" && p["status"]["ready"] == true)
            .filter_map(|p| {
                Some((
                    p["spec"]["nodeName"].as_str()?.to_owned(),
                    p["spec"]["components"][0]["env"][0]["value"].as_str()?.to_owned(),
                ))
            })
            .collect()
    };
    let expect = |what: &str, want: &[(&str, &str)]| {
        let want: BTreeMap<String, String> = want
            .iter()
            .map(|(n, g)| ((*n).to_owned(), (*g).to_owned()))
            .collect();
        poll(
            what,
            Duration::from_secs(90),
            || daemon_pods() == want,
            || format!("daemon pods: {:?}\n{}", daemon_pods(), server.output()),
        );
    };
    let _w1 = agent("w1", "127.0.0.2", "role=edge");
    let _w2 = agent("w2", "127.0.0.3", "role=core");
    poll(
        "both workers are Ready and the default namespace exists",
        Duration::from_secs(60),
        || {
            let ready = get("/api/v1/nodes")["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n["status"]["ready"] == true)
                .count();
            ready == 2 && get("/api/v1/namespaces/default")["metadata"]["name"] == "default"
        },
        || server.output(),
    );
    let manifest = |greeting: &str| {
        let path = dir.path().join(format!("ds-{greeting}.yaml"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: skiff.dev/v1
kind: DaemonSet
metadata: {{name: nodeinfo}}
spec:
  selector: {{matchLabels: {{app: nodeinfo}}}}
  template:
    metadata: {{labels: {{app: nodeinfo}}}}
    spec:
      nodeSelector: {{role: edge}}
      components:
        - name: web
          wasm: {{path: {}}}
          env: [{{name: GREETING, value: {greeting}}}]
",
                hello_wasm().display()
            ),
        )
        .expect("write");
        path
    };
    cli(&["apply", "-f", manifest("v1").to_str().expect("utf-8")]);
    expect("a pod on the one edge worker", &[("w1", "v1")]);

    let w3 = agent("w3", "127.0.0.4", "role=edge");
    expect("a pod on the worker that joined", &[("w1", "v1"), ("w3", "v1")]);

    cli(&["label", "node", "w2", "role=edge", "--overwrite"]);
    cli(&["label", "node", "w1", "role=core", "--overwrite"]);
    expect("the pods follow the relabelling", &[("w2", "v1"), ("w3", "v1")]);

    // w3 leaves: its agent stops and its Node is deleted.
    w3.signal("TERM");
    cli(&["delete", "node", "w3"]);
    expect("the pod of the worker that left is gone", &[("w2", "v1")]);
    cli(&["label", "node", "w1", "role=edge", "--overwrite"]);
    expect("w1 is back in", &[("w1", "v1"), ("w2", "v1")]);

    // A template change rolls every node's pod.
    cli(&["apply", "-f", manifest("v2").to_str().expect("utf-8")]);
    expect("every node runs the new template", &[("w1", "v2"), ("w2", "v2")]);
    let ds = get("/api/v1/namespaces/default/daemonsets/nodeinfo");
    assert_eq!(ds["status"]["desiredNumberScheduled"], 2, "{ds}");
    poll(
        "the status counts the updated pods",
        Duration::from_secs(30),
        || get("/api/v1/namespaces/default/daemonsets/nodeinfo")["status"]["updatedNumberScheduled"] == 2,
        || server.output(),
    );
    let table = cli(&["get", "ds"]);
    assert!(table.contains("nodeinfo"), "{table}");
}
