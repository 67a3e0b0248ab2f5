//! Offline autonomy (issue 4, deliverable 4), with a real control plane and a real agent in this
//! process: the agent keeps serving without the control plane, restores its pods from local
//! state when restarted offline, and on reconnect keeps the running pod (same uid, same start).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skiff_agent::{Agent, AgentConfig};
use skiff_api::{Kind, Object, Pod, PodPhase};
use skiff_client::Client;
use skiff_control::{ControlConfig, ControlPlane};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[path = "support/tls.rs"]
mod tls;
use tls::data_plane_client;

const NODE: &str = "edge-1";
const DEADLINE: Duration = Duration::from_secs(60);

/// A control plane serving its API on a fixed address; `stop` closes the listener and cuts every
/// open connection (watches included), as a crashed or partitioned control node would.
struct Control {
    plane: ControlPlane,
    server: JoinHandle<()>,
    api_stop: watch::Sender<bool>,
    controllers: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Control {
    async fn start(dir: &Path, addr: SocketAddr) -> (Control, SocketAddr) {
        let listener = poll("the API port to be free again", || async {
            TcpListener::bind(addr).await.ok()
        })
        .await;
        let addr = listener.local_addr().unwrap();
        let plane = poll("the control state to open", || async {
            ControlPlane::open(ControlConfig {
                plain_http: true,
                ..ControlConfig::new(dir)
            })
            .await
            .ok()
        })
        .await;
        let (stop, stop_rx) = watch::channel(false);
        let controllers = plane.spawn_controllers(stop_rx);
        let (api_stop, api_stop_rx) = watch::channel(false);
        let server = tokio::spawn(plane.clone().serve_api(listener, api_stop_rx));
        let control = Control {
            plane,
            server,
            api_stop,
            controllers,
            stop,
        };
        (control, addr)
    }

    async fn stop(self) {
        // Closes the listener and cuts every open connection (watches included).
        let _ = self.api_stop.send(true);
        let _ = self.server.await;
        let _ = self.stop.send(true);
        let _ = self.controllers.await;
        self.plane.shutdown();
    }
}

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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct RunningAgent {
    agent: Agent,
    url: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start_agent(server: &str, token: &str, dir: &Path) -> RunningAgent {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let mut config = AgentConfig::new(NODE, server, token, dir);
    config.heartbeat = Duration::from_millis(300);
    let agent = Agent::start(config, url.clone()).await.unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(agent.clone().run(listener, stop_rx));
    RunningAgent {
        agent,
        url,
        stop,
        task,
    }
}

impl RunningAgent {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

/// The pod's answer through the agent's data plane, or `None` when it does not serve it.
async fn call(http: &reqwest::Client, agent_url: &str, pod: &str) -> Option<String> {
    let resp = http
        .get(format!("{agent_url}/"))
        .header("x-skiff-pod", format!("default/{pod}"))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.text().await.ok()
}

async fn pod(client: &Client, name: &str) -> Option<Pod> {
    match client.get(Kind::Pod, Some("default"), name).await {
        Ok(Object::Pod(p)) => Some(p),
        _ => None,
    }
}

async fn create_pod(client: &Client, name: &str, digest: &str) {
    let object: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "skiff.dev/v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "components": [{"name": "web", "wasm": {"digest": digest}}]
        }
    }))
    .unwrap();
    client.create(&object).await.unwrap();
}

fn hello_wasm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-http/hello.wasm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_serving_offline_restores_from_local_state_and_reconciles_by_uid() {
    let control_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();

    let (control, addr) = Control::start(control_dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let http = data_plane_client(control_dir.path());
    let server = format!("http://{addr}");
    let client = Client::new(&server, control.plane.admin_token()).unwrap();
    // The agent joins with the cluster's join token once; afterwards its certificate suffices.
    let token = control.plane.join_token().unwrap();
    let digest = client
        .upload_artifact(std::fs::read(hello_wasm()).unwrap())
        .await
        .unwrap();

    let first = start_agent(&server, &token, agent_dir.path()).await;
    create_pod(&client, "web", &digest).await;
    let running = poll("the pod to run and report it", || async {
        pod(&client, "web")
            .await
            .filter(|p| p.status.phase == PodPhase::Running && p.status.start_time.is_some())
    })
    .await;
    let uid = running.metadata.uid.clone().unwrap();
    let start_time = running.status.start_time.clone();
    let answer = poll("the data plane to serve the pod", || {
        call(&http, &first.url, "web")
    })
    .await;
    assert!(answer.contains("hello from web"), "{answer}");

    // (a) The control plane goes away: the pod keeps serving, through heartbeat failures and
    // periodic resyncs (every 2 s) that must not read "cannot list" as "no pods".
    control.stop().await;
    assert!(client.ping().await.is_err(), "the control plane is down");
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert!(
            call(&http, &first.url, "web").await.is_some(),
            "the pod stopped serving while the control plane was down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // (b) The agent restarts while the control plane is still down: it restores the pod from
    // its local store and artifact cache before reaching any control node.
    first.stop().await;
    let second = start_agent(&server, &token, agent_dir.path()).await;
    let restored = second.agent.pods();
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(
        (restored[0].key.as_str(), restored[0].uid.as_str()),
        ("default/web", uid.as_str())
    );
    let answer = poll("the restored pod to serve", || call(&http, &second.url, "web")).await;
    assert!(answer.contains("hello from web"), "{answer}");

    // (c) The control plane comes back on the same state and port. Once the agent is connected
    // again (its heartbeat lands, and a pod created now starts) the original pod is the same
    // pod: same uid, same reported start time, never restarted by this agent.
    let (control, _) = Control::start(control_dir.path(), addr).await;
    let before = match client.get(Kind::Node, None, NODE).await.unwrap() {
        Object::Node(n) => n.status.last_heartbeat,
        other => panic!("not a node: {other:?}"),
    };
    poll(
        "the agent's heartbeat after the control plane is back",
        || async {
            match client.get(Kind::Node, None, NODE).await {
                Ok(Object::Node(n)) if n.status.last_heartbeat != before => Some(()),
                _ => None,
            }
        },
    )
    .await;
    create_pod(&client, "late", &digest).await;
    poll("a pod created after reconnecting to serve", || {
        call(&http, &second.url, "late")
    })
    .await;

    let now = second.agent.pods();
    let web = now.iter().find(|p| p.key == "default/web").unwrap();
    assert_eq!(web, &restored[0], "the pod kept its uid and was not restarted");
    let after = pod(&client, "web").await.unwrap();
    assert_eq!(after.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(
        after.status.start_time, start_time,
        "status.startTime is unchanged"
    );
    assert_eq!(after.status.phase, PodPhase::Running);
    assert!(call(&http, &second.url, "web").await.is_some());

    // A pod no longer assigned is stopped.
    client.delete(Kind::Pod, Some("default"), "late").await.unwrap();
    poll("the deleted pod to stop", || async {
        (!second.agent.pods().iter().any(|p| p.key == "default/late")).then_some(())
    })
    .await;
    assert_eq!(second.agent.pods().len(), 1);

    // The local store followed: an agent restarted offline brings back only the assigned pod.
    second.stop().await;
    control.stop().await;
    let third = start_agent(&server, &token, agent_dir.path()).await;
    let keys: Vec<String> = third.agent.pods().into_iter().map(|p| p.key).collect();
    assert_eq!(keys, ["default/web"]);
    third.stop().await;
}

/// `disconnect.stopAfter` (issue 4, disconnection policy): a pod that must not outlive a long loss
/// of contact is stopped by the agent while the control plane is away, while a pod with the default
/// policy keeps serving; once contact returns the stopped pod, still bound to the node, starts
/// again under the same uid, and one deleted meanwhile does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_after_stops_a_pod_without_contact_and_starts_it_again_on_reconnect() {
    let control_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let (control, addr) = Control::start(control_dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let http = data_plane_client(control_dir.path());
    let server = format!("http://{addr}");
    let token = control.plane.admin_token().to_owned();
    let client = Client::new(&server, &token).unwrap();
    let digest = client
        .upload_artifact(std::fs::read(hello_wasm()).unwrap())
        .await
        .unwrap();
    let join = control.plane.join_token().unwrap();
    let agent = start_agent(&server, &join, agent_dir.path()).await;
    create_pod(&client, "steady", &digest).await;
    for name in ["cautious", "retired"] {
        let object: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "skiff.dev/v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "nodeName": NODE,
                "components": [{"name": "web", "wasm": {"digest": digest}}],
                "disconnect": {"stopAfter": "1s"}
            }
        }))
        .unwrap();
        client.create(&object).await.unwrap();
    }
    for name in ["steady", "cautious", "retired"] {
        poll("the pods to serve", || call(&http, &agent.url, name)).await;
    }
    let uid = pod(&client, "cautious").await.unwrap().metadata.uid.unwrap();
    // The node registered with what the machine is.
    let Object::Node(node) = client.get(Kind::Node, None, NODE).await.unwrap() else {
        panic!("not a node")
    };
    let labels = &node.metadata.labels;
    assert_eq!(
        labels.get(skiff_api::OS_LABEL).map(String::as_str),
        Some(std::env::consts::OS)
    );
    assert!(labels.contains_key(skiff_api::ARCH_LABEL), "{labels:?}");
    assert!(labels.contains_key(skiff_api::HOSTNAME_LABEL), "{labels:?}");

    // No contact for more than 1 s: the cautious pod stops, the steady one keeps serving.
    control.stop().await;
    poll("the cautious pod to stop", || async {
        (!agent.agent.pods().iter().any(|p| p.key == "default/cautious")).then_some(())
    })
    .await;
    assert!(call(&http, &agent.url, "cautious").await.is_none());
    assert!(call(&http, &agent.url, "steady").await.is_some());
    // It stays stopped through resyncs from the informer's last view.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(!agent.agent.pods().iter().any(|p| p.key == "default/cautious"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Meanwhile, on the control plane's side, "retired" is deleted (the agent cannot hear it).
    {
        let plane = poll("the control state to open", || async {
            ControlPlane::open(ControlConfig {
                plain_http: true,
                ..ControlConfig::new(control_dir.path())
            })
            .await
            .ok()
        })
        .await;
        let router = plane.router();
        poll("the offline delete to commit", || async {
            let req = http::Request::delete("/api/v1/namespaces/default/pods/retired")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = tower::ServiceExt::oneshot(router.clone(), req).await.ok()?;
            resp.status().is_success().then_some(())
        })
        .await;
        plane.shutdown();
    }

    // Contact returns: "cautious" is still bound here, so it starts again, same uid; "retired"
    // is not, so it never starts, although the agent's last view (from before) still lists it.
    let (control, _) = Control::start(control_dir.path(), addr).await;
    let retired_never_ran = || {
        assert!(
            !agent.agent.pods().iter().any(|p| p.key == "default/retired"),
            "a pod deleted while the node was cut off was started again"
        )
    };
    let back = poll("the cautious pod to start again", || async {
        retired_never_ran();
        agent
            .agent
            .pods()
            .into_iter()
            .find(|p| p.key == "default/cautious")
    })
    .await;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        retired_never_ran();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(back.uid, uid);
    poll("the restarted pod to serve", || {
        call(&http, &agent.url, "cautious")
    })
    .await;
    poll("its status to say Running again", || async {
        pod(&client, "cautious")
            .await
            .filter(|p| p.status.phase == PodPhase::Running && p.status.ready)
    })
    .await;
    agent.stop().await;
    control.stop().await;
}
