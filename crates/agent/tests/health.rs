//! Probes and restarts (issue 5, Health), with a real control plane and a real agent in this
//! process and the example component (200 on `/` and `/count`, 404 elsewhere): a failing
//! readiness probe keeps a running pod out of its service's ready endpoints, a failing liveness
//! probe makes a visible crash loop with growing back-off, a healthy probe restarts nothing.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skiff_agent::{Agent, AgentConfig};
use skiff_api::{Kind, Object, Pod, PodPhase};
use skiff_client::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[path = "support/tls.rs"]
mod tls;
use tls::data_plane_client;

const NODE: &str = "probe-1";
const DEADLINE: Duration = Duration::from_secs(60);

/// Calls `f` until it returns `Some`, failing the test after [`DEADLINE`].
async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn hello_wasm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-http/hello.wasm")
}

/// A control plane with its controllers and an agent with a 200 ms restart back-off.
struct Cluster {
    client: Client,
    digest: String,
    agent_url: String,
    http: reqwest::Client,
    stops: Vec<watch::Sender<bool>>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Cluster {
    async fn start() -> Cluster {
        let control_dir = tempfile::tempdir().unwrap();
        let agent_dir = tempfile::tempdir().unwrap();
        let plane = tls::open_plane(control_dir.path()).await;
        let (stop, stop_rx) = watch::channel(false);
        let _controllers = plane.spawn_controllers(stop_rx);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let (api_stop, api_rx) = watch::channel(false);
        tokio::spawn(plane.clone().serve_api(listener, api_rx));
        let client = Client::new(&server, plane.admin_token()).unwrap();
        let digest = client
            .upload_artifact(std::fs::read(hello_wasm()).unwrap())
            .await
            .unwrap();

        let data = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let agent_url = format!("https://{}", data.local_addr().unwrap());
        let mut config = AgentConfig::new(NODE, &server, &plane.join_token().unwrap(), agent_dir.path());
        config.heartbeat = Duration::from_millis(300);
        config.restart_backoff = Duration::from_millis(200);
        let agent = Agent::start(config, agent_url.clone()).await.unwrap();
        let (agent_stop, agent_rx) = watch::channel(false);
        tokio::spawn(agent.run(data, agent_rx));
        Cluster {
            client,
            digest,
            agent_url,
            http: data_plane_client(control_dir.path()),
            stops: vec![agent_stop, api_stop, stop],
            _dirs: (control_dir, agent_dir),
        }
    }

    async fn create_pod(&self, name: &str, policy: &str, probes: serde_json::Value) {
        let mut component = serde_json::json!({"name": "web", "wasm": {"digest": self.digest}});
        for (k, v) in probes.as_object().unwrap() {
            component[k] = v.clone();
        }
        let object: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "skiff.dev/v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {"nodeName": NODE, "restartPolicy": policy, "components": [component]}
        }))
        .unwrap();
        self.client.create(&object).await.unwrap();
    }

    /// `(reason, count)` of the events recorded about pod `name`.
    async fn events(&self, name: &str) -> Vec<(String, u32)> {
        let list = self
            .client
            .list(Kind::Event, Some("default"), None)
            .await
            .unwrap();
        let mut out: Vec<(String, u32)> = list
            .items
            .into_iter()
            .filter_map(|o| match o {
                Object::Event(e) if e.involved_object.name == name => Some((e.reason, e.count)),
                _ => None,
            })
            .collect();
        out.sort();
        out
    }

    async fn pod(&self, name: &str) -> Option<Pod> {
        match self.client.get(Kind::Pod, Some("default"), name).await {
            Ok(Object::Pod(p)) => Some(p),
            _ => None,
        }
    }

    /// The pod's answer on `/` through the agent's data plane, or `None`.
    async fn call(&self, name: &str) -> Option<u16> {
        let resp = self
            .http
            .get(format!("{}/", self.agent_url))
            .header("x-skiff-pod", format!("default/{name}"))
            .send()
            .await
            .ok()?;
        Some(resp.status().as_u16())
    }

    fn stop(self) {
        for s in &self.stops {
            let _ = s.send(true);
        }
    }
}

fn probe(path: &str) -> serde_json::Value {
    serde_json::json!({"httpGet": {"path": path}, "periodSeconds": 1, "failureThreshold": 1})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_readiness_keeps_the_pod_running_but_out_of_the_ready_endpoints() {
    let c = Cluster::start().await;
    let service: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "skiff.dev/v1", "kind": "Service",
        "metadata": {"name": "svc", "namespace": "default"},
        "spec": {"selector": {"app": "unready"}}
    }))
    .unwrap();
    c.client.create(&service).await.unwrap();
    c.create_pod(
        "unready",
        "Always",
        serde_json::json!({"readinessProbe": probe("/nope")}),
    )
    .await;
    let p = poll("the pod to run", || async {
        c.pod("unready")
            .await
            .filter(|p| p.status.phase == PodPhase::Running)
    })
    .await;
    assert!(!p.status.ready, "a pod with a readiness probe starts not ready");
    // Listed, not ready, in the service's endpoints.
    poll("the endpoints to list the pod not ready", || async {
        match c.client.get(Kind::Endpoints, Some("default"), "svc").await {
            Ok(Object::Endpoints(e)) => e
                .endpoints
                .iter()
                .any(|a| a.pod == "unready" && !a.ready)
                .then_some(()),
            _ => None,
        }
    })
    .await;
    // It still serves (the data plane answers for it) and is never restarted or marked ready.
    assert_eq!(poll("the data plane", || c.call("unready")).await, 200);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let p = c.pod("unready").await.unwrap();
        assert!(
            !p.status.ready && p.status.phase == PodPhase::Running,
            "{:?}",
            p.status
        );
        assert_eq!(p.status.restarts, 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The same pod with a passing readiness probe becomes ready, and so does its endpoint.
    c.create_pod(
        "ready",
        "Always",
        serde_json::json!({"readinessProbe": probe("/")}),
    )
    .await;
    poll("the probed pod to become ready", || async {
        c.pod("ready").await.filter(|p| p.status.ready).map(|_| ())
    })
    .await;
    c.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_is_a_crash_loop_with_growing_back_off_and_a_healthy_one_restarts_nothing() {
    let c = Cluster::start().await;
    c.create_pod(
        "sick",
        "Always",
        serde_json::json!({"livenessProbe": probe("/nope")}),
    )
    .await;
    c.create_pod(
        "well",
        "Always",
        serde_json::json!({"livenessProbe": probe("/"), "readinessProbe": probe("/count")}),
    )
    .await;

    // Watch the crash loop: the back-off announced in each CrashLoopBackOff message grows.
    // Each announced wait with the restart count reported beside it: polling may miss a short
    // wait, so every sample is checked against its own restart count.
    let mut waits: Vec<(u32, String)> = Vec::new();
    let mut max_restarts = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = c.pod("sick").await {
            assert!(p.status.restarts >= max_restarts, "restartCount never goes down");
            max_restarts = p.status.restarts;
            if p.status.reason.as_deref() == Some("CrashLoopBackOff") {
                let m = p.status.message.clone().unwrap_or_default();
                assert!(
                    m.contains("next restart at") && m.contains("LivenessProbeFailed"),
                    "{m}"
                );
                let wait = m.split_whitespace().nth(1).unwrap_or_default().to_owned();
                if waits.last().map(|(_, w)| w) != Some(&wait) {
                    waits.push((p.status.restarts, wait));
                }
            }
            if p.status.restarts >= 4 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for four restarts of the sick pod (saw {max_restarts}, back-offs {waits:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waits.len() >= 3, "back-offs seen: {waits:?}");
    for (restarts, wait) in &waits {
        // No restart of this pod ever ran long enough to reset the back-off, so the wait
        // before restart n+1 is the 200 ms base doubled n times.
        assert_eq!(
            humantime::parse_duration(wait).unwrap().as_millis(),
            200u128 << restarts,
            "the wait after {restarts} restarts is the base doubled {restarts} times: {waits:?}"
        );
    }

    let well = c.pod("well").await.unwrap();
    assert_eq!(well.status.phase, PodPhase::Running, "{:?}", well.status);
    assert!(well.status.ready, "{:?}", well.status);
    assert_eq!(well.status.restarts, 0, "a healthy probe restarts nothing");
    // Every lifecycle step is an event on the pod, recorded with the status that reports it.
    let sick = c.events("sick").await;
    let reasons: Vec<&str> = sick.iter().map(|(r, _)| r.as_str()).collect();
    assert!(
        reasons.contains(&"Started") && reasons.contains(&"Restarted"),
        "{sick:?}"
    );
    let back_offs = sick.iter().find(|(r, _)| r == "BackOff").map_or(0, |(_, n)| *n);
    assert!(back_offs >= 3, "one BackOff event per wait, counted: {sick:?}");
    let well_events = c.events("well").await;
    assert!(well_events.iter().any(|(r, _)| r == "Started"), "{well_events:?}");
    assert!(
        !well_events
            .iter()
            .any(|(r, _)| r == "BackOff" || r == "Restarted"),
        "{well_events:?}"
    );
    assert_eq!(c.call("well").await, Some(200));
    c.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_under_restart_policy_never_fails_the_pod() {
    let c = Cluster::start().await;
    c.create_pod(
        "once",
        "Never",
        serde_json::json!({"livenessProbe": probe("/nope")}),
    )
    .await;
    let p = poll("the pod to fail", || async {
        c.pod("once").await.filter(|p| p.status.phase == PodPhase::Failed)
    })
    .await;
    assert_eq!(p.status.reason.as_deref(), Some("LivenessProbeFailed"));
    let events = c.events("once").await;
    assert!(events.iter().any(|(r, _)| r == "Failed"), "{events:?}");
    assert!(
        p.status
            .message
            .unwrap_or_default()
            .contains("GET /nope answered 404")
    );
    assert_eq!(p.status.restarts, 0);
    poll("the failed pod to stop serving", || async {
        (c.call("once").await == Some(404)).then_some(())
    })
    .await;
    c.stop();
}
