//! Worker nodes as separate hosts (issue 4): one control node, three agents and a standalone
//! gateway, each in its own network namespace, all joined with tokens and talking mutual TLS.
//!
//! Shown here: refused joins (expired, revoked, malformed, wrong-CA token) leave no trace; a
//! worker certificate cannot use the admin API; kill -9 an agent → its pods serve elsewhere and
//! the gateway stops using it; an agent cut off from the control plane (not from the gateway)
//! keeps serving its `replaceAfter: never` pods and, after healing, keeps the very same pods
//! (uids and start times); with the control plane stopped, a restarted agent serves its pods
//! again from local state.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest;

use crate::harness::{Proc, poll, repo_root};
use crate::netns::Net;

const CONTROL: usize = 0;
const GATEWAY: usize = 4;
const AGENTS: [usize; 3] = [1, 2, 3];
/// The host name the edge app is routed by (the example app takes every other host).
const EDGE_HOST: &str = "edge.test";

struct Edge {
    net: Net,
    tmp: tempfile::TempDir,
    control: Option<Proc>,
    agents: BTreeMap<usize, Proc>,
    gateway: Option<Proc>,
    token: String,
    http: reqwest::blocking::Client,
}

fn agent_name(host: usize) -> String {
    format!("w{host}")
}

impl Edge {
    /// The API over HTTPS: a token must not cross the network in clear, and the control node
    /// serves no plain HTTP.
    fn api(&self) -> String {
        format!("https://{}:7070", self.net.host(CONTROL))
    }

    fn ca(&self) -> PathBuf {
        self.dir("control").join("pki").join("ca.crt")
    }

    fn gateway_url(&self) -> String {
        format!("http://{}:8080", self.net.host(GATEWAY))
    }

    fn dir(&self, what: &str) -> PathBuf {
        self.tmp.path().join(what)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for host in ["hello.test", EDGE_HOST] {
            let r = self
                .http
                .get(format!("{}/", self.gateway_url()))
                .header("host", host)
                .send();
            let answer = match r {
                Ok(r) => format!("{} {}", r.status(), r.text().unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            out.push_str(&format!("gateway GET {host}/: {answer}\n"));
        }
        for entry in std::fs::read_dir(self.tmp.path()).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(25).collect();
                out.push_str(&format!("--- {} ---\n", p.display()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    fn wait(&self, what: &str, limit: Duration, mut f: impl FnMut(&Edge) -> bool) {
        poll(what, limit, || f(self), || self.logs());
    }

    fn start_control(&mut self) {
        let host = self.net.host(CONTROL);
        let args = [
            "server",
            "--dir",
            &self.dir("control").display().to_string(),
            "--api",
            &format!("{host}:7070"),
            "--peer-listen",
            &format!("{host}:7443"),
        ]
        .map(|s| s.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.dir("control.log");
        self.control = Some(Proc::spawn_in(Some(&self.net.ns(CONTROL)), &args, log));
    }

    /// Runs `skiff agent` on `host` with `token`; a refused join exits by itself.
    fn spawn_agent(&self, host: usize, token: &str, log: &str) -> Proc {
        let name = agent_name(host);
        let args = [
            "agent",
            "--server",
            &self.api(),
            "--token",
            token,
            "--name",
            &name,
            "--labels",
            &format!("site={name}"),
            "--memory",
            "768Mi",
            "--cpu",
            "1500m",
            "--max-pods",
            "40",
            "--dir",
            &self.dir(&name).display().to_string(),
            "--data-plane",
            &format!("{}:7071", self.net.host(host)),
        ]
        .map(|s| s.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::spawn_in(Some(&self.net.ns(host)), &args, self.dir(log))
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(crate::harness::SKIFF)
            .args(args)
            .args(["--server", &self.api(), "--token", &self.token])
            .arg("--ca")
            .arg(self.ca())
            .current_dir(self.tmp.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run skiff")
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "skiff {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.api()))
            .bearer_auth(&self.token)
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    }

    fn ready_nodes(&self) -> BTreeSet<String> {
        self.get("/api/v1/nodes")["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["status"]["ready"] == true)
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    }

    fn node_names(&self) -> BTreeSet<String> {
        self.get("/api/v1/nodes")["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// Running, ready pods of `app`: name → (node, uid, start time).
    fn running(&self, app: &str) -> BTreeMap<String, (String, String, String)> {
        self.get(&format!(
            "/api/v1/namespaces/default/pods?labelSelector=app%3D{app}"
        ))["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["status"]["phase"] == "Running" && p["status"]["ready"] == true)
            .map(|p| {
                let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                (
                    s(&p["metadata"]["name"]),
                    (
                        s(&p["spec"]["nodeName"]),
                        s(&p["metadata"]["uid"]),
                        s(&p["status"]["startTime"]),
                    ),
                )
            })
            .collect()
    }

    /// The pod names that answered `n` requests for `host` through the gateway (every request
    /// must succeed).
    fn answers(&self, host: &str, n: usize) -> BTreeSet<String> {
        let mut pods = BTreeSet::new();
        for i in 0..n {
            let r = self
                .http
                .get(format!("{}/", self.gateway_url()))
                .header("host", host)
                .send()
                .unwrap_or_else(|e| panic!("request {i} to the gateway failed: {e}\n{}", self.logs()));
            let status = r.status();
            let body = r.text().unwrap_or_default();
            assert!(
                status.is_success(),
                "request {i} for {host}: {status} {body}\n{}",
                self.logs()
            );
            if let Some(pod) = body
                .strip_prefix("hello from ")
                .and_then(|b| b.split_whitespace().next())
            {
                pods.insert(pod.to_owned());
            }
        }
        pods
    }
}

/// A deployment whose pods stay bound to their node while it is unreachable.
fn edge_manifest(dir: &Path, digest: &str) -> PathBuf {
    let path = dir.join("edge.yaml");
    let yaml = format!(
        "apiVersion: skiff.dev/v1
kind: Deployment
metadata: {{name: edge}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: edge}}}}
  template:
    metadata: {{labels: {{app: edge}}}}
    spec:
      disconnect: {{replaceAfter: never}}
      components:
        - name: web
          wasm: {{digest: \"{digest}\"}}
---
apiVersion: skiff.dev/v1
kind: Service
metadata: {{name: edge}}
spec:
  selector: {{app: edge}}
  ports: [{{name: http, port: 80}}]
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata: {{name: edge}}
spec:
  hostnames: [edge.test]
  rules:
    - pathPrefix: /
      backends: [{{service: edge}}]
"
    );
    std::fs::write(&path, yaml).expect("write manifest");
    path
}

#[test]
fn workers_join_with_tokens_survive_failures_and_keep_serving_offline() {
    let mut e = Edge {
        net: Net::create(5),
        tmp: tempfile::tempdir().expect("tempdir"),
        control: None,
        agents: BTreeMap::new(),
        gateway: None,
        token: String::new(),
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
    };
    e.start_control();
    let token_file = e.dir("control").join("admin.token");
    e.wait(
        "the control node writes its token",
        Duration::from_secs(60),
        |e| std::fs::read_to_string(&token_file).is_ok_and(|t| !t.trim().is_empty()) && e.ca().exists(),
    );
    e.http = crate::harness::https_client(&e.ca(), Duration::from_secs(10));
    e.wait("the control node is up", Duration::from_secs(60), |e| {
        e.http
            .get(format!("{}/readyz", e.api()))
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    e.token = std::fs::read_to_string(&token_file)
        .expect("token")
        .trim()
        .to_owned();

    // --- Refused joins change nothing. ---
    // An expired token: stored the way `skiff token create` stores one, with a past expiry.
    let ca_hash = e.get("/api/v1/cluster")["caHash"]
        .as_str()
        .expect("caHash")
        .to_owned();
    let secret = "0123456789abcdef";
    let stored = e
        .http
        .post(format!("{}/api/v1/jointokens", e.api()))
        .bearer_auth(&e.token)
        .json(
            &serde_json::json!({"kind": "JoinToken", "apiVersion": "skiff.dev/v1",
            "metadata": {"name": "expird"},
            "spec": {"secretHash": hex::encode(sha2::Sha256::digest(secret)),
                     "expires": "2026-01-01T00:00:00Z"}}),
        )
        .send()
        .expect("store a token");
    assert!(stored.status().is_success(), "{:?}", stored.text());
    let expired = format!("SKF1{ca_hash}::expird.{secret}");
    let revoked = e.cli_ok(&["token", "create", "--ttl", "1h", "--description", "to revoke"]);
    let revoked_id = revoked
        .split("::")
        .nth(1)
        .and_then(|s| s.split('.').next())
        .expect("token id")
        .to_owned();
    e.cli_ok(&["token", "delete", &revoked_id]);
    let foreign = format!("SKF1{}::abcdef.0123456789abcdef", "ab".repeat(32));
    let cases = [
        (expired.as_str(), "expired at"),
        (revoked.as_str(), "does not exist: it was revoked"),
        ("not-a-token", "expected prefix SKF1"),
        (foreign.as_str(), "is not the cluster the token names"),
    ];
    for (i, (token, expected)) in cases.iter().enumerate() {
        let p = e.spawn_agent(1, token, &format!("refused-{i}.log"));
        e.wait(
            &format!("refused join {i} to exit"),
            Duration::from_secs(30),
            |_| p.output().contains("error:"),
        );
        let out = p.output();
        assert!(
            out.contains(expected),
            "join {i}: expected {expected:?} in:\n{out}"
        );
    }
    assert!(e.node_names().is_empty(), "a refused join registered a node");
    assert!(
        !e.dir("w1").join("pki").join("node.crt").exists(),
        "a refused join left a certificate"
    );

    // --- Three agents and a standalone gateway join with a token. ---
    let join = e.cli_ok(&["token", "create", "--ttl", "1h", "--description", "edge test"]);
    for host in AGENTS {
        let p = e.spawn_agent(host, &join, &format!("{}.log", agent_name(host)));
        e.agents.insert(host, p);
    }
    let gw_args = [
        "gateway",
        "--server",
        &e.api(),
        "--token",
        &join,
        "--dir",
        &e.dir("gateway").display().to_string(),
        "--listen",
        &format!("{}:8080", e.net.host(GATEWAY)),
    ]
    .map(|s| s.to_owned());
    let gw_args: Vec<&str> = gw_args.iter().map(String::as_str).collect();
    e.gateway = Some(Proc::spawn_in(
        Some(&e.net.ns(GATEWAY)),
        &gw_args,
        e.dir("gateway.log"),
    ));
    e.wait("three Ready agents", Duration::from_secs(90), |e| {
        e.ready_nodes().len() == 3
    });
    let node = e.get("/api/v1/nodes/w1");
    assert_eq!(node["metadata"]["labels"]["site"], "w1", "{node}");
    assert_eq!(
        node["metadata"]["labels"]["skiff.dev/os"],
        std::env::consts::OS,
        "{node}"
    );
    let capacity = &node["status"]["capacity"];
    assert_eq!(
        (&capacity["memory"], &capacity["cpu"], &capacity["pods"]),
        (&Value::from("768Mi"), &Value::from("1500m"), &Value::from(40)),
        "{node}"
    );
    assert!(
        node["status"]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("https://")),
        "{node}"
    );

    // --- The admin CLI over HTTPS checks the server against the cluster CA. ---
    let https_api = e.api().replace("http://", "https://");
    let admin_https = |ca: &Path| {
        std::process::Command::new(crate::harness::SKIFF)
            .args(["get", "nodes", "--server", &https_api, "--token", &e.token])
            .arg("--ca")
            .arg(ca)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run skiff")
    };
    let ok = admin_https(&e.dir("control").join("pki").join("ca.crt"));
    assert!(
        ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("w1"),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let other_ca = e.dir("other-ca.crt");
    let other = skiff_pki::ClusterCa::generate("other").expect("CA");
    std::fs::write(&other_ca, other.cert_pem()).expect("write CA");
    let refused = admin_https(&other_ca);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("certificate"), "{err}");

    // --- A second agent cannot take a live node's name. ---
    let dup_args = [
        "agent",
        "--server",
        &e.api(),
        "--token",
        &join,
        "--name",
        "w1",
        "--dir",
        &e.dir("w1-again").display().to_string(),
        "--data-plane",
        &format!("{}:7072", e.net.host(GATEWAY)),
    ]
    .map(|s| s.to_owned());
    let dup_args: Vec<&str> = dup_args.iter().map(String::as_str).collect();
    let dup = Proc::spawn_in(Some(&e.net.ns(GATEWAY)), &dup_args, e.dir("w1-again.log"));
    e.wait("the duplicate agent to exit", Duration::from_secs(30), |_| {
        dup.output().contains("error:")
    });
    assert!(
        dup.output().contains("is registered and Ready"),
        "{}",
        dup.output()
    );
    drop(dup);

    // --- A worker certificate is not an admin credential. ---
    let as_worker = crate::harness::client_with_cert(&e.dir("w1").join("pki"));
    let deploy = serde_json::json!({"kind": "Deployment", "apiVersion": "skiff.dev/v1",
        "metadata": {"name": "intruder"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}},
                              "spec": {"components": [{"name": "c", "wasm": {"digest": format!("sha256:{}", "0".repeat(64))}}]}}}});
    for (method, path) in [
        ("POST", "/api/v1/namespaces/default/deployments"),
        ("DELETE", "/api/v1/nodes/w2"),
        ("PUT", "/api/v1/nodes/w2/status"),
        ("GET", "/api/v1/snapshot"),
        ("POST", "/api/v1/jointokens"),
    ] {
        let req = as_worker.request(method.parse().expect("method"), format!("{https_api}{path}"));
        let r = req.json(&deploy).send().expect("worker request");
        let status = r.status().as_u16();
        let body = r.text().unwrap_or_default();
        assert_eq!(status, 403, "{method} {path} with a worker certificate: {body}");
        assert!(body.contains("agent w1 (node certificate) may not"), "{body}");
    }
    assert!(
        e.get("/api/v1/namespaces/default/deployments/intruder")["code"] == "NotFound",
        "the refused create left a deployment"
    );
    assert!(e.node_names().contains("w2"), "the refused delete removed w2");

    // --- The example app with 3 replicas, and an edge app that stays put when cut off. ---
    let app = repo_root().join("examples/hello-http/app.yaml");
    e.cli_ok(&["apply", "-f", app.to_str().expect("utf-8")]);
    e.cli_ok(&["scale", "deployment", "hello", "--replicas", "3"]);
    let digest = e.cli_ok(&[
        "push",
        repo_root()
            .join("examples/hello-http/hello.wasm")
            .to_str()
            .expect("utf-8"),
    ]);
    let edge = edge_manifest(e.tmp.path(), &digest);
    e.cli_ok(&["apply", "-f", edge.to_str().expect("utf-8")]);
    e.wait("3 hello and 3 edge replicas run", Duration::from_secs(120), |e| {
        e.running("hello").len() == 3 && e.running("edge").len() == 3
    });
    e.wait("the gateway serves both apps", Duration::from_secs(60), |e| {
        ["hello.test", EDGE_HOST].iter().all(|h| {
            e.http
                .get(format!("{}/", e.gateway_url()))
                .header("host", *h)
                .send()
                .is_ok_and(|r| r.status().is_success())
        })
    });

    // --- kill -9 an agent that runs hello: its pods serve elsewhere. ---
    let hello = e.running("hello");
    let victim_name = hello.values().next().expect("a hello pod").0.clone();
    let victim = AGENTS
        .into_iter()
        .find(|h| agent_name(*h) == victim_name)
        .expect("victim host");
    let killed_at = Instant::now();
    e.agents.get(&victim).expect("victim").signal("KILL");
    e.wait("the killed agent is NotReady", Duration::from_secs(60), |e| {
        !e.ready_nodes().contains(&victim_name)
    });
    let not_ready_after = killed_at.elapsed();
    // From now on no hello request goes to the dead agent: every one succeeds.
    let served = e.answers("hello.test", 30);
    let on_victim: BTreeSet<String> = hello
        .iter()
        .filter(|(_, (n, _, _))| *n == victim_name)
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        served.is_disjoint(&on_victim),
        "a pod of the dead agent answered: {served:?}"
    );
    e.wait(
        "3 hello replicas serve on the live agents",
        Duration::from_secs(60),
        |e| {
            let r = e.running("hello");
            r.len() == 3 && r.values().all(|(n, _, _)| *n != victim_name)
        },
    );
    let moved_after = killed_at.elapsed();
    e.answers("hello.test", 20);
    eprintln!(
        "agent {victim_name} killed: NotReady after {not_ready_after:?}, its pods serving elsewhere after {moved_after:?}"
    );

    // --- Cut a live agent running edge pods off from the control plane, not from the gateway. ---
    let edge_before = e.running("edge");
    let cut_name = edge_before
        .values()
        .map(|(n, _, _)| n.clone())
        .find(|n| *n != victim_name)
        .expect("an edge pod on a live agent");
    let cut = AGENTS
        .into_iter()
        .find(|h| agent_name(*h) == cut_name)
        .expect("cut host");
    let kept: BTreeMap<String, (String, String, String)> = edge_before
        .into_iter()
        .filter(|(_, (n, _, _))| *n == cut_name)
        .collect();
    e.net.cut(cut, CONTROL);
    e.wait("the cut agent is NotReady", Duration::from_secs(60), |e| {
        !e.ready_nodes().contains(&cut_name)
    });
    // Past the default eviction grace: the control plane has given up on the node, yet its edge
    // pods (replaceAfter: never) keep serving through the gateway.
    e.wait("hello pods leave the cut agent", Duration::from_secs(60), |e| {
        e.running("hello").values().all(|(n, _, _)| *n != cut_name)
    });
    e.wait(
        "the cut agent's edge pods answer through the gateway",
        Duration::from_secs(30),
        |e| {
            let answered = e.answers(EDGE_HOST, 12);
            kept.keys().all(|p| answered.contains(p))
        },
    );
    e.net.heal();
    e.wait("the cut agent is Ready again", Duration::from_secs(60), |e| {
        e.ready_nodes().contains(&cut_name)
    });
    // Give the agent time to reconcile, then check nothing was recreated.
    e.wait(
        "the kept pods report Running again",
        Duration::from_secs(30),
        |e| {
            let now = e.running("edge");
            kept.keys().all(|p| now.contains_key(p))
        },
    );
    let after = e.running("edge");
    for (pod, before) in &kept {
        assert_eq!(
            after.get(pod),
            Some(before),
            "edge pod {pod} changed after healing"
        );
    }
    eprintln!(
        "agent {cut_name} cut off from the control plane and healed; kept (node, uid, start): {kept:?}"
    );

    // --- Stop the control plane, restart that agent: it serves its pods from local state. ---
    if let Some(c) = e.control.take() {
        c.signal("KILL");
    }
    // Dropping the process kills it and waits for it to exit.
    drop(e.agents.remove(&cut));
    e.agents
        .insert(cut, e.spawn_agent(cut, &join, &format!("{cut_name}-offline.log")));
    e.wait(
        "the restarted agent serves its pods through the gateway",
        Duration::from_secs(60),
        |e| {
            let answered = e.answers(EDGE_HOST, 12);
            kept.keys().all(|p| answered.contains(p))
        },
    );
    let offline_log = std::fs::read_to_string(e.dir(&format!("{cut_name}-offline.log"))).unwrap_or_default();
    assert!(
        offline_log.contains("running from local state"),
        "the agent did not restore from local state:\n{offline_log}"
    );
}
