//! The roles as separate processes: `skiff server`, `skiff agent` on another loopback address,
//! `skiff gateway` — both join with the cluster join token; the gateway reaches the pods through
//! the agent's data plane over mutual TLS.
use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::{Proc, free_port, poll, repo_root};

#[test]
fn server_agent_and_gateway_as_separate_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (dp, gw) = (free_port(), free_port());
    let (server, server_url, token, http) = crate::harness::start_server(dir.path());
    let join = crate::harness::join_token(dir.path());
    let token = token.as_str();
    let worker_dir = dir.path().join("w1");
    // The worker listens on another loopback address, as another host would.
    let agent = Proc::spawn(
        &[
            "agent",
            "--server",
            &server_url,
            "--token",
            &join,
            "--node-name",
            "w1",
            "--dir",
            worker_dir.to_str().expect("utf-8"),
            "--data-plane",
            &format!("127.0.0.2:{dp}"),
        ],
        dir.path().join("agent.log"),
    );
    let gateway = Proc::spawn(
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
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(crate::harness::SKIFF)
            .args(args)
            .args(["--server", &server_url, "--token", token])
            .output()
            .expect("run skiff");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    poll(
        "node w1 is Ready",
        Duration::from_secs(60),
        || {
            cli(&["get", "nodes"])
                .1
                .lines()
                .any(|l| l.split_whitespace().take(2).eq(["w1", "Ready"]))
        },
        || agent.output(),
    );

    let app = repo_root().join("examples/hello-http/app.yaml");
    let (ok, out) = cli(&["apply", "-f", app.to_str().expect("utf-8")]);
    assert!(ok, "{out}");
    let mut seen = BTreeSet::new();
    poll(
        "both replicas answer through the standalone gateway",
        Duration::from_secs(90),
        || {
            for _ in 0..10 {
                if let Ok(r) = http.get(format!("http://127.0.0.1:{gw}/")).send()
                    && r.status().is_success()
                    && let Some(pod) = r
                        .text()
                        .unwrap_or_default()
                        .split_whitespace()
                        .nth(2)
                        .map(str::to_owned)
                {
                    seen.insert(pod);
                }
            }
            seen.len() >= 2
        },
        || {
            format!(
                "{}\n--- gateway ---\n{}\n--- agent ---\n{}",
                server.output(),
                gateway.output(),
                agent.output()
            )
        },
    );
    let (_, ep) = cli(&["get", "endpoints", "hello", "-o", "json"]);
    assert!(
        ep.contains("https://127.0.0.2:"),
        "endpoints carry the worker's address: {ep}"
    );
}
