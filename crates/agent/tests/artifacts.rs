//! Artifact sources (issue 4, item 6) with real parts: an in-process control plane and agent, a
//! local HTTP server for `wasm.url`, and Debian's `docker-registry` for `wasm.image`.
//!
//! - a URL pinned by the right digest runs; a wrong digest fails the pod with
//!   `ArtifactDigestMismatch` and caches nothing; once the pod is deleted its artifact is
//!   collected;
//! - an image pushed to a real registry with the OCI distribution API runs from `image:`, pinned by
//!   its manifest digest; a wrong `digest:` is refused the same way.
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use skiff_agent::{Agent, AgentConfig};
use skiff_api::{Kind, Object, Pod, PodPhase};
use skiff_client::Client;
use skiff_control::ControlPlane;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[path = "support/tls.rs"]
mod tls;
use tls::data_plane_client;

const NODE: &str = "art-1";
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

fn hello_wasm() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello-http/hello.wasm")).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A control plane and one agent, in this process.
struct Cluster {
    client: Client,
    http: reqwest::Client,
    agent_url: String,
    agent_dir: tempfile::TempDir,
    _control_dir: tempfile::TempDir,
    _plane: ControlPlane,
    _stop: watch::Sender<bool>,
}

impl Cluster {
    async fn start() -> Cluster {
        let control_dir = tempfile::tempdir().unwrap();
        let agent_dir = tempfile::tempdir().unwrap();
        let plane = tls::open_plane(control_dir.path()).await;
        let (stop, stop_rx) = watch::channel(false);
        plane.spawn_controllers(stop_rx.clone());
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = format!("http://{}", api.local_addr().unwrap());
        tokio::spawn(plane.clone().serve_api(api, stop_rx.clone()));
        let token = plane.admin_token().to_owned();
        let data = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let agent_url = format!("https://{}", data.local_addr().unwrap());
        let join = plane.join_token().unwrap();
        let mut config = AgentConfig::new(NODE, &server, &join, agent_dir.path());
        config.heartbeat = Duration::from_millis(300);
        let agent = Agent::start(config, agent_url.clone()).await.unwrap();
        tokio::spawn(agent.run(data, stop_rx));
        Cluster {
            client: Client::new(&server, &token).unwrap(),
            http: data_plane_client(control_dir.path()),
            agent_url,
            agent_dir,
            _control_dir: control_dir,
            _plane: plane,
            _stop: stop,
        }
    }

    async fn create(&self, name: &str, wasm: serde_json::Value) {
        let object: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "skiff.dev/v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": NODE, "restartPolicy": "Never",
                     "components": [{"name": "web", "wasm": wasm}]}
        }))
        .unwrap();
        self.client.create(&object).await.unwrap();
    }

    async fn settled(&self, name: &str) -> Pod {
        poll(&format!("pod {name} to run or fail"), || async {
            match self.client.get(Kind::Pod, Some("default"), name).await {
                Ok(Object::Pod(p)) if matches!(p.status.phase, PodPhase::Running | PodPhase::Failed) => {
                    Some(p)
                }
                _ => None,
            }
        })
        .await
    }

    async fn serves(&self, name: &str) -> String {
        let http = &self.http;
        poll(&format!("pod {name} to serve"), || async {
            let resp = http
                .get(format!("{}/", self.agent_url))
                .header("x-skiff-pod", format!("default/{name}"))
                .send()
                .await
                .ok()?;
            if !resp.status().is_success() {
                return None;
            }
            resp.text().await.ok()
        })
        .await
    }

    fn cached(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.agent_dir.path().join("artifacts"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_pinned_by_digest_runs_a_wrong_digest_is_refused_and_unused_artifacts_are_collected() {
    let wasm = hello_wasm();
    let digest = sha256(&wasm);
    let files = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hello.wasm", files.local_addr().unwrap());
    let body = wasm.clone();
    let app = axum::Router::new().route(
        "/hello.wasm",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    tokio::spawn(axum::serve(files, app).into_future());
    let c = Cluster::start().await;

    let wrong = format!("sha256:{}", "0".repeat(64));
    c.create("wrong", serde_json::json!({"url": url, "digest": wrong}))
        .await;
    let p = c.settled("wrong").await;
    assert_eq!(p.status.phase, PodPhase::Failed);
    assert_eq!(p.status.reason.as_deref(), Some("ArtifactDigestMismatch"));
    let message = p.status.message.unwrap_or_default();
    assert!(
        message.contains(&url) && message.contains(&digest) && message.contains(&wrong),
        "{message}"
    );
    assert!(c.cached().is_empty(), "nothing cached: {:?}", c.cached());

    c.create("right", serde_json::json!({"url": url, "digest": digest}))
        .await;
    assert_eq!(c.settled("right").await.status.phase, PodPhase::Running);
    assert!(c.serves("right").await.contains("hello from"));
    let hex = digest.trim_start_matches("sha256:").to_owned();
    assert_eq!(c.cached(), [hex]);

    c.client
        .delete(Kind::Pod, Some("default"), "right")
        .await
        .unwrap();
    poll("the unused artifact to be collected", || async {
        c.cached().is_empty().then_some(())
    })
    .await;
}

/// Uploads one blob with the distribution API (start an upload, then PUT it whole).
async fn push_blob(http: &reqwest::Client, base: &str, bytes: Vec<u8>) -> String {
    let digest = sha256(&bytes);
    let started = http.post(format!("{base}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(started.status().as_u16(), 202, "{:?}", started.text().await);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("{}{location}", &base[..base.find("/v2/").unwrap()])
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = http
        .put(format!("{location}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "{:?}", put.text().await);
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_pushed_to_a_real_registry_runs_from_image() {
    let Some(registry) = skiff_testkit::start_registry() else {
        skiff_testkit::tool_missing("Debian's docker-registry (apt-get install docker-registry, as root)");
        return;
    };
    let http = reqwest::Client::new();
    let base = format!("http://{}/v2/skiff/hello", registry.addr);
    let wasm = hello_wasm();
    let size = wasm.len();
    let layer = push_blob(&http, &base, wasm).await;
    let config = push_blob(&http, &base, b"{}".to_vec()).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/wasm", "digest": layer, "size": size}]
    }))
    .unwrap();
    let manifest_digest = sha256(&manifest);
    let put = http
        .put(format!("{base}/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201, "{:?}", put.text().await);

    let c = Cluster::start().await;
    let image = format!("{}/skiff/hello:v1", registry.addr);
    let wrong = format!("sha256:{}", "1".repeat(64));
    c.create("wrong", serde_json::json!({"image": image, "digest": wrong}))
        .await;
    let p = c.settled("wrong").await;
    assert_eq!(
        p.status.reason.as_deref(),
        Some("ArtifactDigestMismatch"),
        "{:?}",
        p.status
    );
    assert!(c.cached().is_empty(), "nothing cached: {:?}", c.cached());

    c.create(
        "oci",
        serde_json::json!({"image": format!("{image}@{manifest_digest}")}),
    )
    .await;
    let p = c.settled("oci").await;
    assert_eq!(p.status.phase, PodPhase::Running, "{:?}", p.status);
    assert!(c.serves("oci").await.contains("hello from"));
    let (m, l) = (
        manifest_digest.trim_start_matches("sha256:"),
        layer.trim_start_matches("sha256:"),
    );
    let mut expected = vec![format!("{m}.oci"), l.to_owned()];
    expected.sort();
    assert_eq!(c.cached(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_component_that_does_not_validate_waits_on_the_node() {
    // A truncated component behind a URL, pinned by its own digest: the bytes arrive intact,
    // but they are not a valid component. That cannot go away by retrying: the pod (restart
    // policy Always) waits with reason InvalidComponent and the validator's message.
    let truncated = hello_wasm()[..4000].to_vec();
    let digest = sha256(&truncated);
    let files = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cut.wasm", files.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/cut.wasm",
        axum::routing::get(move || {
            let body = truncated.clone();
            async move { body }
        }),
    );
    tokio::spawn(axum::serve(files, app).into_future());
    let c = Cluster::start().await;
    let object: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "skiff.dev/v1", "kind": "Pod",
        "metadata": {"name": "cut", "namespace": "default"},
        "spec": {"nodeName": NODE, "restartPolicy": "Always",
                 "components": [{"name": "web", "wasm": {"url": url, "digest": digest}}]}
    }))
    .unwrap();
    c.client.create(&object).await.unwrap();
    let p = poll("the pod to wait with InvalidComponent", || async {
        match c.client.get(Kind::Pod, Some("default"), "cut").await {
            Ok(Object::Pod(p)) if p.status.reason.as_deref() == Some("InvalidComponent") => Some(p),
            _ => None,
        }
    })
    .await;
    assert_eq!((p.status.phase, p.status.restarts), (PodPhase::Pending, 0));
    let message = p.status.message.unwrap_or_default();
    for words in [
        "back-off 10s before trying to start again (next try at ",
        "component web: component sha256:",
        "is not a valid WebAssembly component: ",
        "byte offset",
        "rebuild the component",
    ] {
        assert!(message.contains(words), "{message:?} lacks {words:?}");
    }
}
