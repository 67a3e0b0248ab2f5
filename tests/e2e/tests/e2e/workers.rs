//! Workers as separate hosts (127.0.0.2, 127.0.0.3): a worker killed with SIGKILL loses its pods to
//! the other worker, and the gateway stops routing to it.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Proc, free_port, poll, repo_root};

#[test]
fn pods_of_a_killed_worker_serve_on_another_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = free_port();
    let (server, server_url, token, http) = crate::harness::start_server(dir.path());
    let join = crate::harness::join_token(dir.path());
    let mut agents = Vec::new();
    for (name, host) in [("w1", "127.0.0.2"), ("w2", "127.0.0.3")] {
        let dp = free_port();
        let wdir = dir.path().join(name);
        agents.push(Some(Proc::spawn(
            &[
                "agent",
                "--server",
                &server_url,
                "--token",
                &join,
                "--node-name",
                name,
                "--dir",
                wdir.to_str().expect("utf-8"),
                "--data-plane",
                &format!("{host}:{dp}"),
            ],
            dir.path().join(format!("{name}.log")),
        )));
    }
    let _gateway = Proc::spawn(
        &[
            "gateway",
            "--server",
            &server_url,
            "--token",
            &join,
            "--dir",
            dir.path().join("gw").to_str().expect("utf-8"),
            "--listen",
            &format!("127.0.0.1:{gw}"),
        ],
        dir.path().join("gateway.log"),
    );
    let get = |path: &str| -> Value {
        http.get(format!("{server_url}{path}"))
            .bearer_auth(&token)
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    };
    let ready_nodes = || -> BTreeSet<String> {
        get("/api/v1/nodes")["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["status"]["ready"] == true)
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    };
    poll(
        "both workers are Ready",
        Duration::from_secs(60),
        || ready_nodes().len() == 2,
        || server.output(),
    );

    let app = repo_root().join("examples/hello-http/app.yaml");
    let out = std::process::Command::new(crate::harness::SKIFF)
        .args(["apply", "-f", app.to_str().expect("utf-8")])
        .args(["--server", &server_url, "--token", &token])
        .output()
        .expect("apply");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Where the running pods are, by node.
    let running_on = || -> Vec<String> {
        get("/api/v1/namespaces/default/pods")["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["status"]["phase"] == "Running" && p["status"]["ready"] == true)
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_owned))
            .collect()
    };
    poll(
        "two replicas run, one on each worker",
        Duration::from_secs(90),
        || {
            let nodes: BTreeSet<String> = running_on().into_iter().collect();
            nodes.len() == 2
        },
        || server.output(),
    );
    poll(
        "the gateway answers",
        Duration::from_secs(30),
        || {
            http.get(format!("http://127.0.0.1:{gw}/"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        },
        || server.output(),
    );

    // kill -9 the worker w1.
    let killed_at = Instant::now();
    if let Some(a) = agents[0].take() {
        a.signal("KILL");
    }
    poll(
        "w1 is marked NotReady",
        Duration::from_secs(60),
        || !ready_nodes().contains("w1"),
        || server.output(),
    );
    let not_ready_after = killed_at.elapsed();
    // From now on the gateway must not send anything to w1: every request succeeds.
    for i in 0..50 {
        let r = http
            .get(format!("http://127.0.0.1:{gw}/"))
            .send()
            .expect("gateway");
        assert!(
            r.status().is_success() || r.status().as_u16() == 503,
            "request {i} after w1 went NotReady: {}",
            r.status()
        );
    }
    let eps = get("/api/v1/namespaces/default/endpoints/hello");
    for e in eps["endpoints"].as_array().into_iter().flatten() {
        if e["node"] == "w1" {
            assert_eq!(
                e["ready"], false,
                "an endpoint on the dead node is still ready: {eps}"
            );
        }
    }
    poll(
        "both replicas run on w2",
        Duration::from_secs(60),
        || running_on().iter().filter(|n| *n == "w2").count() == 2,
        || server.output(),
    );
    let moved_after = killed_at.elapsed();
    let mut ok = 0;
    for _ in 0..20 {
        if http
            .get(format!("http://127.0.0.1:{gw}/"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            ok += 1;
        }
    }
    assert_eq!(ok, 20, "the moved pods do not all answer through the gateway");
    eprintln!("w1 NotReady after {not_ready_after:?}; its pods serving on w2 after {moved_after:?}");

    let cli = |args: &[&str]| -> String {
        let out = std::process::Command::new(crate::harness::SKIFF)
            .args(args)
            .args(["--server", &server_url, "--token", &token])
            .output()
            .expect("run skiff");
        assert!(
            out.status.success(),
            "skiff {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let described = cli(&["describe", "node", "w1"]);
    assert!(
        described.contains("Conditions:") && described.contains("HeartbeatMissed"),
        "{described}"
    );
    assert!(
        described.contains("Events:") && described.contains("NodeNotReady"),
        "{described}"
    );
    cli(&["node", "cordon", "w2"]);
    let nodes = cli(&["get", "nodes"]);
    assert!(
        nodes.lines().any(|l| l
            .split_whitespace()
            .take(2)
            .eq(["w2", "Ready,SchedulingDisabled"])),
        "{nodes}"
    );
}
