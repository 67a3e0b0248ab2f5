//! OCI components of pods: containers run by the `oci` runtime plugin, and the HTTP path to them.
//!
//! A container gets a port of its own from the agent's range (checked free on the host, since it
//! shares the host's network), passed as `PORT`; the pod's first component serves the pod's
//! traffic, so when it is a container the data plane relays requests to `127.0.0.1:PORT`. Its
//! id is `skiff-<pod uid>-<component>`, so a restarted agent finds the containers its pods left
//! running and takes them over (same image) instead of starting them again; within one agent
//! process a pod that starts again always gets a fresh container.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use skiff_api::{Component, OciSpec, Pod};
use skiff_runtime_wasm::{BodyError, ResponseBody};

use crate::failure::{FailureKind, StartFailure};
use crate::plugins::{ContainerSpec, ContainerState, Plugin, PluginError};
use crate::util::{key, lock, text};

/// Default range container ports are allocated from.
pub(crate) const DEFAULT_PORTS: RangeInclusive<u16> = 30000..=32767;
/// How long a serving container has to start listening on its port before the pod is reported
/// running anyway.
const LISTEN_WAIT: Duration = Duration::from_secs(10);
/// Grace a stopped container gets between TERM and KILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

type ProxyBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A container serving as part of a pod on this node.
#[derive(Debug)]
pub(crate) struct RunningContainer {
    pub(crate) plugin: Arc<Plugin>,
    pub(crate) id: String,
    pub(crate) component: String,
    pub(crate) port: u16,
}

/// The containers of this node's pods.
pub(crate) struct Containers {
    plugins: HashMap<String, Arc<Plugin>>,
    ports: RangeInclusive<u16>,
    /// Ports of containers this agent runs.
    taken: Mutex<BTreeSet<u16>>,
    /// Container ids this agent process has run: never taken over again, always replaced.
    seen: Mutex<HashSet<String>>,
    /// Images this agent process pulled.
    pulled: Mutex<HashSet<String>>,
    /// Containers being stopped and removed.
    removing: Arc<Mutex<HashSet<String>>>,
    /// Whether a collection of orphaned containers runs.
    collecting: std::sync::atomic::AtomicBool,
    proxy: Client<HttpConnector, ProxyBody>,
}

/// The container id of component `c` of the pod with `uid`.
pub(crate) fn container_id(uid: &str, component: &str) -> String {
    let id = format!("skiff-{uid}-{component}");
    let ok = id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        return id;
    }
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(format!("{uid}/{component}")));
    format!("skiff-{}", &h[..40])
}

/// The start failure a runtime plugin's error means (by the plugin's error code).
fn start_error(c: &Component, what: &str, e: PluginError) -> StartFailure {
    // Failures a retry cannot change fail the pod; the others are retried with back-off.
    use skiff_plugin_protocol::ErrorCode as E;
    let kind = match e.code {
        E::ImageNotFound => FailureKind::ImageNotFound,
        E::DigestMismatch => FailureKind::ImageDigestMismatch,
        E::BadImage | E::BadReference | E::UnsafeLayer => FailureKind::InvalidImage,
        E::RegistryUnreachable => FailureKind::ImagePullBackOff,
        E::PluginUnavailable => FailureKind::RuntimePluginUnavailable,
        _ => FailureKind::ContainerError,
    };
    StartFailure::new(kind, format!("component {}: {what}: {}", c.name, e.message))
}

impl Containers {
    pub(crate) fn new(plugins: Vec<Arc<Plugin>>, ports: RangeInclusive<u16>) -> Self {
        Containers {
            plugins: plugins.into_iter().map(|p| (p.kind().to_owned(), p)).collect(),
            ports,
            taken: Mutex::new(BTreeSet::new()),
            seen: Mutex::new(HashSet::new()),
            pulled: Mutex::new(HashSet::new()),
            removing: Arc::default(),
            collecting: std::sync::atomic::AtomicBool::new(false),
            proxy: Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build_http(),
        }
    }

    /// The configured plugins.
    pub(crate) fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.values()
    }

    /// A free port of the range: not used by another of this agent's containers and bindable
    /// on the host now.
    fn allocate(&self) -> Option<u16> {
        let mut taken = lock(&self.taken);
        let span = u32::from(*self.ports.end()) - u32::from(*self.ports.start()) + 1;
        // Start at a random-ish offset so agents sharing a host rarely race for one port.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        let offset = (u64::from(std::process::id()) ^ nanos).wrapping_mul(2654435761) % u64::from(span);
        for i in 0..span {
            let port = (u32::from(*self.ports.start()) + (offset as u32 + i) % span) as u16;
            if taken.contains(&port) {
                continue;
            }
            if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
                taken.insert(port);
                return Some(port);
            }
        }
        None
    }

    fn free(&self, port: u16) {
        lock(&self.taken).remove(&port);
    }

    /// Starts (or takes over) the container of component `c` (which has `oci`), with `env`
    /// resolved. The pod's serving container is waited for until it listens on its port.
    pub(crate) async fn start(
        &self,
        pod: &Pod,
        c: &Component,
        oci: &OciSpec,
        env: Vec<(String, String)>,
        serving: bool,
    ) -> Result<RunningContainer, StartFailure> {
        let Some(plugin) = self.plugins.get("oci") else {
            return Err(StartFailure {
                kind: FailureKind::RuntimeUnavailable,
                message: format!(
                    "component {}: this node runs no oci runtime plugin (start the agent with --runtime-plugin oci=/path/to/skiff-oci)",
                    c.name
                ),
            });
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let id = container_id(&uid, &c.name);
        let t0 = Instant::now();
        let first_time = lock(&self.seen).insert(id.clone());
        match plugin.inspect(&id).await {
            Ok(info)
                if first_time
                    && info.spec.image == oci.image
                    && matches!(info.state, ContainerState::Running { .. })
                    && info.spec.port.is_some() =>
            {
                let port = info.spec.port.unwrap_or_default();
                lock(&self.taken).insert(port);
                tracing::info!(pod = %key(pod), container = %id, port, "container from before the agent restarted taken over");
                return Ok(RunningContainer {
                    plugin: plugin.clone(),
                    id,
                    component: c.name.clone(),
                    port,
                });
            }
            Ok(_) => {
                plugin
                    .stop_and_remove(&id, Duration::ZERO)
                    .await
                    .map_err(|e| start_error(c, "removing its previous container", e))?;
            }
            Err(e) if e.code == skiff_plugin_protocol::ErrorCode::ContainerNotFound => {}
            Err(e) => return Err(start_error(c, "asking the runtime plugin", e)),
        }
        self.pull(plugin, c, &oci.image, false).await?;
        let Some(port) = self.allocate() else {
            return Err(StartFailure {
                kind: FailureKind::NoPortAvailable,
                message: format!(
                    "component {}: no free port left in {}-{} for the container",
                    c.name,
                    self.ports.start(),
                    self.ports.end()
                ),
            });
        };
        let spec = ContainerSpec {
            id: id.clone(),
            image: oci.image.clone(),
            command: oci.command.clone(),
            args: (!c.args.is_empty()).then(|| c.args.clone()),
            env,
            working_dir: oci.working_dir.clone(),
            memory: Some(c.resources.memory_or_default().0),
            cpu_millis: c.resources.cpu.map(|m| m.0),
            volumes: oci.volumes.clone(),
            writable_root: oci.writable_root,
            port: Some(port),
            // The plugin's default process limit.
            pids: None,
        };
        let running = RunningContainer {
            plugin: plugin.clone(),
            id: id.clone(),
            component: c.name.clone(),
            port,
        };
        let started = async {
            match plugin.create(&spec).await {
                // The plugin's store lost an image this agent pulled before: pull it again.
                Err(e) if e.code == skiff_plugin_protocol::ErrorCode::ImageNotFound => {
                    self.pull(plugin, c, &oci.image, true).await?;
                    plugin.create(&spec).await
                }
                other => other,
            }
            .map_err(|e| start_error(c, "creating the container", e))?;
            match plugin
                .start(&id)
                .await
                .map_err(|e| start_error(c, "starting the container", e))?
            {
                ContainerState::Exited { code, .. } => {
                    let out = plugin.logs(&id).await.unwrap_or_default();
                    Err(StartFailure {
                        kind: FailureKind::ContainerExited,
                        message: format!(
                            "component {}: the container exited with code {code} as it started; its output ends with: {}",
                            c.name,
                            tail(&out, 400)
                        ),
                    })
                }
                _ => Ok(()),
            }
        };
        let prepared = t0.elapsed();
        if let Err(e) = started.await {
            self.retire(running);
            return Err(e);
        }
        let created = t0.elapsed();
        if serving {
            self.wait_listening(pod, &running).await;
        }
        tracing::debug!(
            pod = %key(pod),
            container = %id,
            prepare_ms = prepared.as_secs_f64() * 1e3,
            start_ms = (created - prepared).as_secs_f64() * 1e3,
            listen_ms = (t0.elapsed() - created).as_secs_f64() * 1e3,
            "container started"
        );
        Ok(running)
    }

    /// Pulls `image` through the plugin, unless this agent pulled it already and it is pinned by
    /// digest or has a tag other than `latest` (Kubernetes' `IfNotPresent`); `again` forces it.
    async fn pull(
        &self,
        plugin: &Plugin,
        c: &Component,
        image: &str,
        again: bool,
    ) -> Result<(), StartFailure> {
        let tag = image.rsplit_once('/').map_or(image, |(_, last)| last);
        let mutable = !image.contains('@') && (!tag.contains(':') || tag.ends_with(":latest"));
        if !again && !mutable && lock(&self.pulled).contains(image) {
            return Ok(());
        }
        plugin
            .pull(image)
            .await
            .map_err(|e| start_error(c, &format!("pulling {image}"), e))?;
        lock(&self.pulled).insert(image.to_owned());
        Ok(())
    }

    /// Waits (up to [`LISTEN_WAIT`]) until the container accepts connections on its port.
    async fn wait_listening(&self, pod: &Pod, rc: &RunningContainer) {
        let deadline = Instant::now() + LISTEN_WAIT;
        let mut pause = Duration::from_micros(500);
        let mut checked = Instant::now();
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(("127.0.0.1", rc.port))
                .await
                .is_ok()
            {
                return;
            }
            if checked.elapsed() > Duration::from_millis(200) {
                checked = Instant::now();
                if self.exit_code_of(&rc.id).await.is_some() {
                    return; // the pod's driver sees it (ContainerExited)
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(2));
        }
        tracing::warn!(pod = %key(pod), container = %rc.id, port = rc.port, "the container does not listen on its PORT yet; reporting the pod running (add a readinessProbe to wait for it)");
    }

    /// Container `id`'s exit code once it ended; `None` while it runs or the plugin cannot say.
    pub(crate) async fn exit_code_of(&self, id: &str) -> Option<i32> {
        let plugin = self.plugins.get("oci")?;
        match plugin.inspect(id).await {
            Ok(info) => match info.state {
                ContainerState::Exited { code, .. } => Some(code),
                _ => None,
            },
            // Removed behind the agent's back: as good as killed.
            Err(e) if e.code == skiff_plugin_protocol::ErrorCode::ContainerNotFound => Some(137),
            Err(_) => None,
        }
    }

    /// The output of container `id` (of `component`), each line prefixed with the component.
    pub(crate) async fn logs_of(&self, component: &str, id: &str) -> String {
        let Some(plugin) = self.plugins.get("oci") else {
            return String::new();
        };
        match plugin.logs(id).await {
            Ok(text) => text.lines().map(|l| format!("{component} {l}\n")).collect(),
            Err(e) => format!("{component} (no output: {e})\n"),
        }
    }

    /// Stops and removes the container in the background and frees its port.
    pub(crate) fn retire(&self, rc: RunningContainer) {
        self.free(rc.port);
        self.remove_in_background(rc.plugin, rc.id);
    }

    fn remove_in_background(&self, plugin: Arc<Plugin>, id: String) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !lock(&self.removing).insert(id.clone()) {
            return; // already on its way out
        }
        let removing = self.removing.clone();
        handle.spawn(async move {
            match plugin.stop_and_remove(&id, STOP_GRACE).await {
                Ok(()) => tracing::info!(container = %id, "container stopped and removed"),
                Err(e) => tracing::warn!(container = %id, error = %e, "cannot remove the container; retried at the next collection"),
            }
            lock(&removing).remove(&id);
        });
    }

    /// Removes the containers this agent made (`skiff-…` ids) that belong to none of `keep` (the
    /// container ids of the pods assigned here): those of pods deleted while the agent or the
    /// plugin was down, or whose removal was cut short.
    pub(crate) async fn collect_orphans(&self, keep: &HashSet<String>) {
        // One collection at a time; a pod stopping meanwhile is seen by the next one.
        if self.collecting.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        self.collect_orphans_now(keep).await;
        self.collecting.store(false, std::sync::atomic::Ordering::Release);
    }

    async fn collect_orphans_now(&self, keep: &HashSet<String>) {
        for plugin in self.plugins.values().filter(|p| p.ever_up()) {
            let Ok(list) = plugin.list().await else {
                continue;
            };
            for info in list {
                let id = info.spec.id;
                if id.starts_with("skiff-") && !keep.contains(&id) && !lock(&self.removing).contains(&id) {
                    tracing::info!(container = %id, "container of no pod assigned here: removing it");
                    self.remove_in_background(plugin.clone(), id);
                }
            }
        }
    }

    /// Relays `req` to the container listening on `port`.
    pub(crate) async fn proxy<B>(&self, port: u16, req: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let uri = match format!("http://127.0.0.1:{port}{path}").parse() {
            Ok(u) => u,
            Err(e) => {
                return text(StatusCode::BAD_REQUEST, format!("bad request path: {e}\n"));
            }
        };
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        parts.headers.remove(http::header::CONNECTION);
        let req = Request::from_parts(parts, body.map_err(Into::into).boxed_unsync());
        match self.proxy.request(req).await {
            Ok(resp) => resp.map(|b| {
                b.map_err(|e| BodyError::new(format!("the container's response failed: {e}")))
                    .boxed_unsync()
            }),
            Err(e) => text(
                StatusCode::BAD_GATEWAY,
                format!("the container on port {port} did not answer: {e}\n"),
            ),
        }
    }
}

fn tail(s: &str, n: usize) -> &str {
    let s = s.trim_end();
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_valid_runc_ids() {
        assert_eq!(
            container_id("0123abcd-0000-1111-2222-333344445555", "web"),
            "skiff-0123abcd-0000-1111-2222-333344445555-web"
        );
        let odd = container_id("uid with spaces/..", "web");
        assert!(odd.starts_with("skiff-") && odd.len() == 46, "{odd}");
    }

    #[test]
    fn ports_come_from_the_range_and_are_not_given_twice() {
        // A port free now (bound, then released): the range of one.
        let port = std::net::TcpListener::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Containers::new(Vec::new(), port..=port);
        assert_eq!(c.allocate(), Some(port));
        assert_eq!(c.allocate(), None, "the range is used up");
        c.free(port);
        assert_eq!(c.allocate(), Some(port));
        // A port someone else holds is skipped.
        let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let busy = held.local_addr().unwrap().port();
        let c = Containers::new(Vec::new(), busy..=busy);
        assert_eq!(c.allocate(), None);
    }
}
