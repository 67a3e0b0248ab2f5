//! ConfigMaps and Secrets reach components as environment variables (issue 5, item 4), with a real
//! control plane and a real agent in this process: `env[].valueFrom` is resolved when the pod
//! starts, a missing key fails the pod with reason `ConfigError`, and a node certificate reads a
//! Secret only while a pod bound to its node references it.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skiff_agent::{Agent, AgentConfig};
use skiff_api::{Kind, Object, Pod, PodPhase};
use skiff_client::Client;
use skiff_pki::Identity;
use skiff_pki::https::{Peer, https_client_config};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[path = "support/tls.rs"]
mod tls;
use tls::{data_plane_client, data_plane_client_as};

const NODE: &str = "cfg-1";
const DEADLINE: Duration = Duration::from_secs(60);

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

fn object(v: serde_json::Value) -> Object {
    serde_json::from_value(v).unwrap()
}

fn hello_wasm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-http/hello.wasm")
}

/// A pod on [`NODE`] whose `SKIFF_POD_NAME` (which the demo component answers with) comes from
/// `value_from`; user variables come before Skiff's own, so the guest sees this one.
fn pod_reading(name: &str, digest: &str, value_from: serde_json::Value) -> Object {
    object(serde_json::json!({
        "apiVersion": "skiff.dev/v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": NODE, "restartPolicy": "Never", "components": [{
            "name": "web", "wasm": {"digest": digest},
            "env": [{"name": "SKIFF_POD_NAME", "valueFrom": value_from}]
        }]}
    }))
}

async fn pod(client: &Client, name: &str) -> Option<Pod> {
    match client.get(Kind::Pod, Some("default"), name).await {
        Ok(Object::Pod(p)) => Some(p),
        _ => None,
    }
}

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

/// The message of a refusal (403: the caller is known but its role does not allow it).
fn refused(err: &skiff_client::ClientError) -> String {
    assert_eq!(err.status(), Some(403), "not a refusal: {err}");
    err.to_string()
}

/// A client of the API with a node certificate of `identity` and no bearer token.
fn node_client(control_dir: &Path, addr: &str, identity: &Identity) -> Client {
    let ca = skiff_pki::ClusterCa::load(&control_dir.join("pki")).unwrap();
    let me = ca.issue(identity, Duration::from_secs(3600)).unwrap();
    let tls = https_client_config(&me, Peer::Control).unwrap();
    Client::with_tls(addr, "", tls).unwrap()
}

/// A gateway certificate calls pod `c`; once an admin revokes `gateway/gw-revoked`, the agent's
/// data plane refuses it like the control plane does.
async fn data_plane_refuses_revoked_certificates(admin: &Client, control_dir: &Path, agent_url: &str) {
    let as_gateway = data_plane_client_as(control_dir, &Identity::gateway("gw-revoked"));
    let call = || async {
        let r = as_gateway
            .get(format!("{agent_url}/"))
            .header("x-skiff-pod", "default/c")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    };
    assert_eq!(call().await.0, 200, "before the revocation");
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(1));
    admin
        .create(&object(serde_json::json!({
            "apiVersion": "skiff.dev/v1", "kind": "Revocation",
            "metadata": {"name": "gateway.gw-revoked"},
            "spec": {"identity": "gateway/gw-revoked", "revokedAt": now.to_string(), "reason": "test"}
        })))
        .await
        .unwrap();
    let refused = poll("the data plane to refuse the revoked gateway", || async {
        let (status, body) = call().await;
        (status == 403).then_some(body)
    })
    .await;
    assert!(refused.contains("was revoked at"), "{refused}");
}

/// A pod bound to another node (never started: that node does not exist).
async fn other_node_pod(admin: &Client, digest: &str) -> String {
    let mut p = pod_reading(
        "theirs",
        digest,
        serde_json::json!({"configMapKeyRef": {"name": "settings", "key": "who"}}),
    );
    if let Object::Pod(p) = &mut p {
        p.spec.node_name = Some("other-node".into());
    }
    admin.create(&p).await.unwrap();
    "theirs".into()
}

/// The node authorizer with the agent's real certificate: its own Node, pods and their
/// references only; never the spec of its Node, another node, or other pods.
async fn node_may_read_only_its_own(as_node: &Client, theirs: &str) {
    let err = as_node.get(Kind::Pod, Some("default"), theirs).await.unwrap_err();
    assert!(refused(&err).contains("bound to another node"), "{err}");
    let err = as_node.list(Kind::Pod, None, None).await.unwrap_err();
    assert!(
        refused(&err).contains(&format!("fieldSelector=spec.nodeName={NODE}")),
        "{err}"
    );
    let own = skiff_client::ListOptions {
        field_selector: Some(format!("spec.nodeName={NODE}")),
        ..Default::default()
    };
    let mine = as_node.list(Kind::Pod, None, Some(&own)).await.unwrap();
    assert!(mine.items.iter().all(|o| o.meta().name != theirs));
    for kind in [Kind::ConfigMap, Kind::Event, Kind::Node, Kind::Deployment] {
        let err = as_node.list(kind, Some("default"), None).await.unwrap_err();
        assert!(refused(&err).contains("an agent reads only"), "{kind}: {err}");
    }
    let err = as_node.get(Kind::Node, None, "other-node").await.unwrap_err();
    assert!(refused(&err).contains("an agent reads only"), "{err}");

    // Its own Node: status and agent labels, never the spec or the operator's labels.
    let Object::Node(mut node) = as_node.get(Kind::Node, None, NODE).await.unwrap() else {
        panic!("a node");
    };
    node.metadata.resource_version = None;
    let mut cordoned = node.clone();
    cordoned.spec.unschedulable = true;
    let err = as_node.replace(&Object::Node(cordoned)).await.unwrap_err();
    assert!(refused(&err).contains("change the spec of Node"), "{err}");
    let mut relabelled = node.clone();
    relabelled.metadata.labels.insert("zone".into(), "forged".into());
    let err = as_node.replace(&Object::Node(relabelled)).await.unwrap_err();
    assert!(refused(&err).contains("outside skiff.dev/"), "{err}");
    let mut reports = node.clone();
    reports
        .metadata
        .labels
        .insert("skiff.dev/firmware".into(), "v2".into());
    as_node.replace(&Object::Node(reports)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_comes_from_configmaps_and_secrets_and_nodes_read_only_their_secrets() {
    let control_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plane = tls::open_plane(control_dir.path()).await;
    let (stop, stop_rx) = watch::channel(false);
    let controllers = plane.spawn_controllers(stop_rx.clone());
    let server_task = tokio::spawn(plane.clone().serve_api(listener, stop_rx));
    let server = format!("http://{addr}");
    let admin = Client::new(&server, plane.admin_token()).unwrap();
    let digest = admin
        .upload_artifact(std::fs::read(hello_wasm()).unwrap())
        .await
        .unwrap();

    admin
        .create(&object(serde_json::json!({
            "apiVersion": "skiff.dev/v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default"},
            "data": {"who": "configured"}
        })))
        .await
        .unwrap();
    admin
        .create(&object(serde_json::json!({
            "apiVersion": "skiff.dev/v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default"},
            "data": {"password": "s3cr3t-marker"}
        })))
        .await
        .unwrap();
    admin
        .create(&object(serde_json::json!({
            "apiVersion": "skiff.dev/v1", "kind": "Secret",
            "metadata": {"name": "unused", "namespace": "default"},
            "data": {"k": "v"}
        })))
        .await
        .unwrap();

    // Before any pod references it, the node may not read the Secret; never a listing.
    let as_node = node_client(control_dir.path(), &server, &Identity::agent(NODE));
    let err = as_node
        .get(Kind::Secret, Some("default"), "db")
        .await
        .unwrap_err();
    assert!(
        refused(&err).contains("may not read Secret default/db: only while"),
        "{err}"
    );
    let err = as_node
        .get(Kind::ConfigMap, Some("default"), "settings")
        .await
        .unwrap_err();
    assert!(
        refused(&err).contains("may not read ConfigMap default/settings: only while"),
        "{err}"
    );

    let token = plane.join_token().unwrap();
    let dp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_url = format!("https://{}", dp.local_addr().unwrap());
    let mut config = AgentConfig::new(NODE, &server, &token, agent_dir.path());
    config.heartbeat = Duration::from_millis(300);
    let agent = Agent::start(config, agent_url.clone()).await.unwrap();
    let (agent_stop, agent_stop_rx) = watch::channel(false);
    let agent_task = tokio::spawn(agent.clone().run(dp, agent_stop_rx));
    let http = data_plane_client(control_dir.path());

    let from_secret = serde_json::json!({"secretKeyRef": {"name": "db", "key": "password"}});
    admin
        .create(&pod_reading("s", &digest, from_secret))
        .await
        .unwrap();
    let from_map = serde_json::json!({"configMapKeyRef": {"name": "settings", "key": "who"}});
    admin.create(&pod_reading("c", &digest, from_map)).await.unwrap();
    let answer = poll("the secret-fed pod to serve", || call(&http, &agent_url, "s")).await;
    assert!(answer.contains("hello from s3cr3t-marker"), "{answer}");
    let answer = poll("the configmap-fed pod to serve", || call(&http, &agent_url, "c")).await;
    assert!(answer.contains("hello from configured"), "{answer}");
    // Another worker's certificate does not call pods: only gateways and control nodes do.
    let as_worker = data_plane_client_as(control_dir.path(), &Identity::agent("elsewhere"));
    let r = as_worker
        .get(format!("{agent_url}/"))
        .header("x-skiff-pod", "default/c")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("agent elsewhere may not call pods")
    );
    data_plane_refuses_revoked_certificates(&admin, control_dir.path(), &agent_url).await;

    // The node authorizer: a referenced Secret is readable, others and listings are not; a
    // gateway reads neither kind.
    assert!(as_node.get(Kind::Secret, Some("default"), "db").await.is_ok());
    assert!(
        as_node
            .get(Kind::ConfigMap, Some("default"), "settings")
            .await
            .is_ok()
    );
    node_may_read_only_its_own(&as_node, &other_node_pod(&admin, &digest).await).await;
    let err = as_node
        .get(Kind::Secret, Some("default"), "unused")
        .await
        .unwrap_err();
    assert!(refused(&err).contains("Secret default/unused"), "{err}");
    let err = as_node
        .list(Kind::Secret, Some("default"), None)
        .await
        .unwrap_err();
    assert!(refused(&err).contains("may not list secrets"), "{err}");
    let other = node_client(control_dir.path(), &server, &Identity::agent("elsewhere"));
    let err = other.get(Kind::Secret, Some("default"), "db").await.unwrap_err();
    assert!(refused(&err).contains("node elsewhere"), "{err}");
    let gateway = node_client(control_dir.path(), &server, &Identity::gateway("gw"));
    for kind in [Kind::Secret, Kind::ConfigMap] {
        let err = gateway.list(kind, Some("default"), None).await.unwrap_err();
        assert!(
            refused(&err).contains(&format!("may not list {}", kind.plural())),
            "{kind}: {err}"
        );
    }

    // A missing key fails the pod with ConfigError and a message naming the reference.
    let missing = serde_json::json!({"secretKeyRef": {"name": "db", "key": "nope"}});
    admin.create(&pod_reading("m", &digest, missing)).await.unwrap();
    let failed = poll("the pod with a missing key to fail", || async {
        pod(&admin, "m")
            .await
            .filter(|p| p.status.phase == PodPhase::Failed)
    })
    .await;
    assert_eq!(failed.status.reason.as_deref(), Some("ConfigError"));
    let message = failed.status.message.unwrap_or_default();
    assert!(message.contains("Secret default/db key \"nope\""), "{message}");
    assert!(!message.contains("s3cr3t-marker"), "{message}");

    let _ = agent_stop.send(true);
    agent_task.await.unwrap();
    let _ = stop.send(true);
    let _ = server_task.await;
    let _ = controllers.await;
    plane.shutdown();
}
