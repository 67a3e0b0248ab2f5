//! The pods of this node: start, stop and report, keyed by uid.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use skiff_api::{Component, Kind, Object, Pod, PodPhase, PodStatus};
use skiff_client::Client;
use skiff_runtime_wasm::{HandlerOptions, HttpHandler, LogBuffer, WasmRuntime};

use crate::artifacts::{ArtifactCache, ArtifactError};
use crate::containers::{Containers, RunningContainer};
use crate::error::AgentError;
use crate::store::LocalStore;

/// Per-pod log buffer size.
const LOG_BYTES: usize = 1 << 20;
/// How often unused artifacts are collected (also after a pod stops).
const GC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// A pod serving on this node.
pub(crate) struct RunningPod {
    pub(crate) uid: String,
    /// What serves the pod's traffic: its first component.
    pub(crate) handler: Serving,
    /// Its OCI components' containers (taken out when the pod stops).
    pub(crate) containers: Mutex<Vec<RunningContainer>>,
    pub(crate) logs: Arc<LogBuffer>,
    /// When this agent process started serving it.
    pub(crate) started: SystemTime,
    /// Its `spec.disconnect.stopAfter`.
    pub(crate) stop_after: Option<Duration>,
    /// Whether it passes its readiness probe (true without one): its `status.ready`.
    pub(crate) ready: AtomicBool,
    /// Its `status.restartCount` (restarts by this agent included).
    pub(crate) restarts: u32,
    /// Requests it takes at once (its first component's `resources.concurrency`); more get 429.
    pub(crate) concurrency: Option<u32>,
    /// Requests being served now.
    pub(crate) inflight: std::sync::atomic::AtomicU32,
}

impl RunningPod {
    /// Its containers, taken out (to be removed); empty the second time.
    pub(crate) fn take_containers(&self) -> Vec<RunningContainer> {
        std::mem::take(&mut *lock(&self.containers))
    }

    /// (component, container) pairs of its containers still running here.
    pub(crate) fn container_ids(&self) -> Vec<(String, String)> {
        lock(&self.containers)
            .iter()
            .map(|c| (c.component.clone(), c.id.clone()))
            .collect()
    }
}

/// The serving component of a pod: a wasm handler, or a container reached on its port.
pub(crate) enum Serving {
    Wasm(HttpHandler),
    Function(crate::function::FunctionServer),
    Container { containers: Arc<Containers>, port: u16 },
}

impl Serving {
    /// Serves one request.
    pub(crate) async fn handle<B>(
        &self,
        req: http::Request<B>,
    ) -> http::Response<skiff_runtime_wasm::ResponseBody>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self {
            Serving::Wasm(h) => h.handle(req).await,
            Serving::Function(f) => f.handle(req).await,
            Serving::Container { containers, port } => containers.proxy(*port, req).await,
        }
    }
}

/// A pod this agent is serving, as [`Agent::pods`](crate::Agent::pods) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPod {
    /// `namespace/name`.
    pub key: String,
    /// The pod's uid.
    pub uid: String,
    /// When this agent process started serving it (a restart of the pod changes it).
    pub started: SystemTime,
}

/// What identifies a version of the assigned set: (uid, resourceVersion) of every pod, sorted.
type Fingerprint = Vec<(String, u64)>;

fn fingerprint<'a>(pods: impl Iterator<Item = &'a Pod>) -> Fingerprint {
    let mut f: Fingerprint = pods
        .map(|p| {
            (
                p.metadata.uid.clone().unwrap_or_default(),
                p.metadata.resource_version.unwrap_or(0),
            )
        })
        .collect();
    f.sort();
    f
}

pub(crate) struct PodTable {
    runtime: WasmRuntime,
    /// Containers of OCI components, through the runtime plugins.
    pub(crate) containers: Arc<Containers>,
    client: Client,
    node: String,
    artifacts: ArtifactCache,
    /// When unused artifacts were last collected.
    last_gc: Mutex<Option<std::time::Instant>>,
    running: RwLock<HashMap<String, Arc<RunningPod>>>,
    /// Uids being started, waiting in restart back-off, or that failed to start for good (not
    /// retried: the controller replaces them).
    busy: Mutex<HashSet<String>>,
    /// First wait before restarting a pod (doubled on each back-to-back restart).
    restart_backoff: Duration,
    /// Pods (uid → `namespace/name`) stopped for lack of contact with the control plane
    /// (`disconnect.stopAfter`); not started again until [`release_held`](Self::release_held)
    /// confirms them, and forgotten once the assigned set no longer has them.
    held: Mutex<HashMap<String, String>>,
    cached: Mutex<BTreeSet<String>>,
    store: Arc<LocalStore>,
    /// The assigned set as last written to `store`.
    saved: tokio::sync::Mutex<Option<Fingerprint>>,
    /// Output of `world: command` pods (running or finished), by `namespace/name`, for `skiff logs`.
    pub(crate) command_logs: Mutex<HashMap<String, Arc<LogBuffer>>>,
}

/// Locks `m`, also after a panic elsewhere poisoned it (the data stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn key(p: &Pod) -> String {
    format!("{}/{}", p.metadata.namespace_or_default(), p.metadata.name)
}

pub(crate) struct StartError {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

impl From<ArtifactError> for StartError {
    fn from(e: ArtifactError) -> Self {
        StartError {
            reason: e.reason,
            message: e.message,
        }
    }
}

impl PodTable {
    pub(crate) fn new(
        runtime: WasmRuntime,
        client: Client,
        node: String,
        artifacts_dir: PathBuf,
        store: Arc<LocalStore>,
        restart_backoff: Duration,
        containers: Arc<Containers>,
    ) -> Self {
        PodTable {
            containers,
            command_logs: Mutex::new(HashMap::new()),
            restart_backoff,
            store,
            saved: tokio::sync::Mutex::new(None),
            runtime,
            client: client.clone(),
            node,
            artifacts: ArtifactCache::new(
                artifacts_dir.clone(),
                // The runtime's compiled-code cache sits beside the artifacts (`<data dir>/compiled`).
                artifacts_dir.with_file_name("compiled"),
                client.clone(),
            ),
            last_gc: Mutex::new(None),
            running: RwLock::new(HashMap::new()),
            busy: Mutex::new(HashSet::new()),
            held: Mutex::new(HashMap::new()),
            cached: Mutex::new(BTreeSet::new()),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Arc<RunningPod>> {
        self.running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Uids of the pods being served.
    pub(crate) fn running_uids(&self) -> std::collections::HashSet<String> {
        self.running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|r| r.uid.clone())
            .collect()
    }

    /// Whether `running` is what the table serves under `key`.
    pub(crate) fn is_current(&self, key: &str, running: &Arc<RunningPod>) -> bool {
        self.get(key).is_some_and(|r| Arc::ptr_eq(&r, running))
    }

    /// Serves `running` under `key`.
    pub(crate) fn insert_running(&self, key: &str, running: Arc<RunningPod>) {
        self.running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), running);
    }

    /// Stops serving `running` and marks its uid busy (a restart is coming); false when the
    /// table no longer serves it.
    pub(crate) fn take_back(&self, key: &str, running: &Arc<RunningPod>) -> bool {
        let mut table = self.running.write().unwrap_or_else(|p| p.into_inner());
        if !table.get(key).is_some_and(|r| Arc::ptr_eq(r, running)) {
            return false;
        }
        table.remove(key);
        lock(&self.busy).insert(running.uid.clone());
        drop(table);
        self.retire(running);
        true
    }

    /// Stops the containers of a pod no longer served (its wasm handler goes with the last
    /// reference to it).
    pub(crate) fn retire(&self, running: &RunningPod) {
        for rc in running.take_containers() {
            self.containers.retire(rc);
        }
    }

    pub(crate) fn is_busy(&self, uid: &str) -> bool {
        lock(&self.busy).contains(uid)
    }

    pub(crate) fn forget_busy(&self, uid: &str) {
        lock(&self.busy).remove(uid);
    }

    pub(crate) fn is_held(&self, uid: &str) -> bool {
        lock(&self.held).contains_key(uid)
    }

    pub(crate) fn restart_backoff(&self) -> Duration {
        self.restart_backoff
    }

    pub(crate) fn cached_artifacts(&self) -> Vec<String> {
        lock(&self.cached).iter().cloned().collect()
    }

    /// Closes the local store (the agent stopped).
    pub(crate) fn close_store(&self) {
        self.store.close();
    }

    /// (uid, `stopAfter`) of every pod being served.
    pub(crate) fn stop_after_of_running(&self) -> Vec<(String, Option<Duration>)> {
        self.running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|r| (r.uid.clone(), r.stop_after))
            .collect()
    }

    /// Stops the pods with these uids and keeps them stopped until [`release_held`](Self::release_held).
    pub(crate) fn hold(&self, uids: &[String]) {
        let mut held = lock(&self.held);
        let mut stopped = Vec::new();
        self.running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, r| {
                let stop = uids.contains(&r.uid);
                if stop {
                    tracing::warn!(pod = %k, uid = %r.uid, node = %self.node, "pod stopped: no contact with the control plane for its disconnect.stopAfter");
                    held.insert(r.uid.clone(), k.clone());
                    stopped.push(r.clone());
                }
                !stop
            });
        for r in stopped {
            self.retire(&r);
        }
    }

    /// Asks the control plane about each held pod and lets those still bound to this node, under
    /// the same uid and not terminal, start again at the next sync; returns how many. The others
    /// stay held (the informer's view may still be the stale one from before the partition) until
    /// a sync no longer lists them; a pod the control plane cannot be asked about is asked again
    /// at the next contact.
    pub(crate) async fn release_held(&self) -> usize {
        let held: Vec<(String, String)> = lock(&self.held)
            .iter()
            .map(|(u, k)| (u.clone(), k.clone()))
            .collect();
        let mut released = 0;
        for (uid, key) in held {
            let Some((ns, name)) = key.split_once('/') else {
                continue;
            };
            let still_ours = match self.client.get(skiff_api::Kind::Pod, Some(ns), name).await {
                Ok(Object::Pod(p)) => {
                    p.metadata.uid.as_deref() == Some(uid.as_str())
                        && p.spec.node_name.as_deref() == Some(self.node.as_str())
                        && !matches!(p.status.phase, PodPhase::Failed | PodPhase::Succeeded)
                }
                _ => false,
            };
            if still_ours {
                lock(&self.held).remove(&uid);
                released += 1;
                tracing::info!(pod = %key, uid = %uid, node = %self.node, "contact is back and the pod is still bound here: starting it again");
            }
        }
        released
    }

    /// The pods being served, sorted by key.
    pub(crate) fn list(&self) -> Vec<LocalPod> {
        let mut out: Vec<LocalPod> = self
            .running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, r)| LocalPod {
                key: k.clone(),
                uid: r.uid.clone(),
                started: r.started,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Starts the pods of the local store, without the control plane: artifacts come from the
    /// disk cache. Returns how many were stored and how many now serve. A pod that cannot start
    /// is left to the first sync after the control plane answers.
    pub(crate) async fn restore(self: &Arc<Self>) -> Result<(usize, usize), AgentError> {
        let store = self.store.clone();
        let stored = tokio::task::spawn_blocking(move || store.load())
            .await
            .map_err(|e| AgentError::Storage {
                path: self.store.path().display().to_string(),
                message: format!("loading the stored pods: {e}"),
            })??;
        *self.saved.lock().await = Some(fingerprint(stored.iter()));
        let mut serving = 0;
        for pod in &stored {
            match self.start(pod).await {
                Ok(running) => {
                    let running = Arc::new(running);
                    self.insert_running(&key(pod), running.clone());
                    let probes = crate::probes::supervise(
                        self.clone(),
                        pod.clone(),
                        crate::probes::Begin::Running(running),
                    );
                    tokio::spawn(probes);
                    serving += 1;
                    tracing::info!(pod = %key(pod), uid = ?pod.metadata.uid, node = %self.node, "pod running from local state");
                }
                Err(e) => {
                    tracing::warn!(pod = %key(pod), node = %self.node, reason = e.reason, error = %e.message, "stored pod failed to start; retried once the control plane answers");
                }
            }
        }
        Ok((stored.len(), serving))
    }

    /// Writes the assigned set to the local store when it differs from what was last written.
    async fn persist(&self, desired: &HashMap<String, Pod>) {
        let mut saved = self.saved.lock().await;
        let next = fingerprint(desired.values());
        if saved.as_ref() == Some(&next) {
            return;
        }
        let store = self.store.clone();
        let pods: Vec<Pod> = desired.values().cloned().collect();
        let count = pods.len();
        match tokio::task::spawn_blocking(move || store.save(&pods)).await {
            Ok(Ok(())) => {
                tracing::debug!(node = %self.node, pods = count, "assigned pods saved to local state");
                *saved = Some(next);
            }
            Ok(Err(e)) => {
                tracing::warn!(node = %self.node, error = %e, "cannot save the assigned pods; retried at the next sync")
            }
            Err(e) => {
                tracing::warn!(node = %self.node, error = %e, "cannot save the assigned pods; retried at the next sync")
            }
        }
    }

    /// Makes the running set match `pods`: this node's pods as a successful, synced list+watch of
    /// the API has them (never an empty set standing in for an unreachable control plane). Keyed
    /// by uid: a pod already running under the same uid is kept as it is.
    pub(crate) async fn sync(self: &Arc<Self>, pods: Vec<Object>) {
        // Command output is kept while its pod exists (finished ones included).
        {
            let all: HashSet<String> = pods
                .iter()
                .filter_map(|o| match o {
                    Object::Pod(p) => Some(key(p)),
                    _ => None,
                })
                .collect();
            lock(&self.command_logs).retain(|k, _| all.contains(k));
        }
        let desired: HashMap<String, Pod> = pods
            .into_iter()
            .filter_map(|o| match o {
                Object::Pod(p) if !matches!(p.status.phase, PodPhase::Failed | PodPhase::Succeeded) => {
                    Some((key(&p), p))
                }
                _ => None,
            })
            .collect();
        // Persist first: what runs is always what a restart would bring back.
        self.persist(&desired).await;
        // Forget start failures of pods that are gone or terminal (they are not retried).
        {
            let uids: HashSet<&str> = desired
                .values()
                .filter_map(|p| p.metadata.uid.as_deref())
                .collect();
            lock(&self.busy).retain(|u| uids.contains(u.as_str()));
            lock(&self.held).retain(|u, _| uids.contains(u.as_str()));
        }
        // Stop what is no longer wanted (deleted, or re-created under a new uid).
        let mut gone = Vec::new();
        {
            let mut running = self.running.write().unwrap_or_else(|p| p.into_inner());
            running.retain(|k, r| {
                let keep = desired
                    .get(k)
                    .is_some_and(|p| p.metadata.uid.as_deref() == Some(r.uid.as_str()));
                if !keep {
                    tracing::info!(pod = %k, node = %self.node, "pod stopped");
                    gone.push(r.clone());
                }
                keep
            });
        }
        let stopped = !gone.is_empty();
        for r in gone {
            self.retire(&r);
        }
        self.collect_garbage(&desired, stopped).await;
        for (k, pod) in desired {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if let Some(r) = self.get(&k)
                && r.uid == uid
            {
                // Running: make sure the API knows (e.g. after a status write was lost).
                if pod.status.phase != PodPhase::Running
                    || pod.status.ready != r.ready.load(std::sync::atomic::Ordering::Relaxed)
                    || pod.status.restarts != r.restarts
                    || pod.status.reason.is_some()
                {
                    let this = self.clone();
                    tokio::spawn(async move { this.report_running(&pod, &r).await });
                }
                continue;
            }
            if lock(&self.held).contains_key(&uid) || !lock(&self.busy).insert(uid.clone()) {
                continue;
            }
            if crate::command::is_command(&pod) {
                // Runs to its exit in its own task (crate::command).
                tokio::spawn(crate::command::run(self.clone(), pod));
                continue;
            }
            // Started, probed and restarted by its own task (crate::probes).
            tokio::spawn(crate::probes::supervise(
                self.clone(),
                pod,
                crate::probes::Begin::Start,
            ));
        }
    }

    /// Removes cached artifacts no pod of `desired` pins (`desired` is what the local store
    /// holds, and a superset of what runs), after a pod stopped or every [`GC_INTERVAL`].
    async fn collect_garbage(&self, desired: &HashMap<String, Pod>, stopped: bool) {
        {
            let mut last = lock(&self.last_gc);
            let now = std::time::Instant::now();
            if !stopped && last.is_some_and(|t| now.duration_since(t) < GC_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        let containers: HashSet<String> = desired
            .values()
            .flat_map(|p| {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                p.spec
                    .components
                    .iter()
                    .filter(|c| c.oci.is_some())
                    .map(move |c| crate::containers::container_id(&uid, &c.name))
            })
            .collect();
        // In the background: asking the plugin about every container must not hold up the sync.
        let collector = self.containers.clone();
        tokio::spawn(async move { collector.collect_orphans(&containers).await });
        let in_use: HashSet<String> = desired
            .values()
            .flat_map(|p| p.spec.components.iter())
            .filter_map(|c| c.wasm.as_ref())
            .flat_map(ArtifactCache::pins)
            .collect();
        match self.artifacts.collect_garbage(&in_use).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(node = %self.node, removed = ?removed, "unused artifacts removed");
                lock(&self.cached).retain(|d| !removed.contains(d));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(node = %self.node, error = %e, "cannot collect unused artifacts"),
        }
    }

    /// Reports `pod` running under `running` (its readiness and restart count).
    pub(crate) async fn report_running(&self, pod: &Pod, running: &RunningPod) {
        let status = PodStatus {
            phase: PodPhase::Running,
            ready: running.ready.load(std::sync::atomic::Ordering::Relaxed),
            restarts: running.restarts,
            reason: None,
            message: None,
            start_time: pod.status.start_time.clone().or_else(|| {
                Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string())
            }),
            ..pod.status.clone()
        };
        self.report(pod, status).await;
    }

    /// Writes the agent-owned status fields (phase, readiness, reason, times) onto the pod as the
    /// API has it now, keeping fields others own (the scheduler's decision); retried on conflict.
    pub(crate) async fn report(&self, pod: &Pod, status: PodStatus) {
        let ns = pod.metadata.namespace_or_default();
        for _ in 0..5 {
            let mut current = match self
                .client
                .get(skiff_api::Kind::Pod, Some(ns), &pod.metadata.name)
                .await
            {
                Ok(Object::Pod(p)) => p,
                Ok(_) => return,
                Err(e) if e.is_not_found() => return,
                Err(e) => {
                    tracing::warn!(pod = %key(pod), error = %e, "status report failed; the next sync retries");
                    return;
                }
            };
            if current.metadata.uid != pod.metadata.uid {
                return; // re-created meanwhile: not ours to report on
            }
            let st = &mut current.status;
            st.phase = status.phase;
            st.ready = status.ready;
            st.reason = status.reason.clone();
            st.message = status.message.clone();
            st.start_time = status.start_time.clone();
            st.finished_at = status.finished_at.clone();
            st.restarts = status.restarts;
            st.exit_code = status.exit_code;
            match self.client.update_status(&Object::Pod(current)).await {
                Ok(_) => return,
                Err(e) if e.is_conflict() => continue,
                Err(e) => {
                    tracing::warn!(pod = %key(pod), error = %e, "status report failed; the next sync retries");
                    return;
                }
            }
        }
    }

    /// The component's environment (or `config`) with every `valueFrom` read from its ConfigMap or Secret
    /// through the API (never from the local store: values are not kept on the node's disk).
    /// A missing object or key fails with reason `ConfigError` naming the reference; values are
    /// never logged.
    async fn resolve_env(
        &self,
        pod: &Pod,
        c: &Component,
        vars: &[skiff_api::EnvVar],
        field: &str,
    ) -> Result<Vec<(String, String)>, StartError> {
        let ns = pod.metadata.namespace_or_default();
        let mut env = Vec::with_capacity(vars.len());
        for e in vars {
            let Some(from) = &e.value_from else {
                env.push((e.name.clone(), e.value.clone()));
                continue;
            };
            let (kind, r) = match (&from.config_map_key_ref, &from.secret_key_ref) {
                (Some(r), None) => (Kind::ConfigMap, r),
                (None, Some(r)) => (Kind::Secret, r),
                _ => {
                    return Err(StartError {
                        reason: "ConfigError",
                        message: format!(
                            "component {}: {field} {} must set exactly one of configMapKeyRef and secretKeyRef",
                            c.name, e.name
                        ),
                    });
                }
            };
            let what = format!("{kind} {ns}/{} key {:?}", r.name, r.key);
            let fail = |why: String| StartError {
                reason: "ConfigError",
                message: format!("component {}: {field} {} from {what}: {why}", c.name, e.name),
            };
            let data = match self.client.get(kind, Some(ns), &r.name).await {
                Ok(Object::ConfigMap(m)) => m.data,
                Ok(Object::Secret(m)) => m.data,
                Ok(other) => return Err(fail(format!("the API answered a {}", other.kind()))),
                Err(err) if err.is_not_found() => {
                    return Err(fail(format!(
                        "the {kind} does not exist: create it, then re-create the pod"
                    )));
                }
                Err(err) => return Err(fail(format!("cannot read it: {err}"))),
            };
            match data.get(&r.key) {
                Some(v) => env.push((e.name.clone(), v.clone())),
                None => {
                    return Err(fail(format!(
                        "the {kind} has no such key (it has {} keys)",
                        data.len()
                    )));
                }
            }
        }
        Ok(env)
    }

    /// Runs a `world: command` pod's first component once, to its exit, with its output in `logs`.
    pub(crate) async fn run_command(
        &self,
        pod: &Pod,
        logs: Arc<LogBuffer>,
    ) -> Result<skiff_runtime_wasm::CommandExit, StartError> {
        let c = pod.spec.components.first().ok_or(StartError {
            reason: "InvalidSpec",
            message: "pod has no components".into(),
        })?;
        let Some(wasm) = &c.wasm else {
            return Err(StartError {
                reason: "InvalidSpec",
                message: format!("component {} has no wasm artifact", c.name),
            });
        };
        let bytes = self.artifacts.get(wasm).await?;
        let component = self.runtime.load(bytes).await.map_err(|e| StartError {
            reason: "CompileError",
            message: format!("component {}: {e}", c.name),
        })?;
        lock(&self.cached).insert(component.digest().to_owned());
        let mut opts = skiff_runtime_wasm::CommandOptions::new(format!("{}/{}", key(pod), c.name));
        opts.args = c.args.clone();
        opts.env = self.component_env(pod, c).await?;
        opts.config = self.resolve_env(pod, c, &c.config, "config").await?;
        opts.memory_limit = c.resources.memory_or_default().0;
        opts.timeout = c.resources.timeout.map(|t| t.0);
        opts.logs = logs;
        opts.key_value = crate::keyvalue::grant(&self.client, pod, c);
        self.runtime
            .run_command(&component, opts)
            .await
            .map_err(|e| StartError {
                reason: "InvalidSpec",
                message: format!("component {}: {e}", c.name),
            })
    }

    pub(crate) async fn start(&self, pod: &Pod) -> Result<RunningPod, StartError> {
        let logs = Arc::new(LogBuffer::new(LOG_BYTES));
        let mut serving = None;
        let mut containers: Vec<RunningContainer> = Vec::new();
        let started = self
            .start_components(pod, &logs, &mut serving, &mut containers)
            .await;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        match (started, serving) {
            (Ok(()), Some(handler)) => Ok(RunningPod {
                uid,
                handler,
                containers: Mutex::new(containers),
                logs,
                started: SystemTime::now(),
                stop_after: pod.spec.disconnect_policy().stop_after(),
                ready: AtomicBool::new(true),
                restarts: pod.status.restarts,
                concurrency: pod.spec.components.first().and_then(|c| c.resources.concurrency),
                inflight: Default::default(),
            }),
            (result, _) => {
                // Nothing of a pod that failed to start keeps running.
                for rc in containers {
                    self.containers.retire(rc);
                }
                Err(result.err().unwrap_or(StartError {
                    reason: "InvalidSpec",
                    message: "pod has no components".into(),
                }))
            }
        }
    }

    /// The environment every component sees: its own (resolved) and the pod's identity.
    async fn component_env(&self, pod: &Pod, c: &Component) -> Result<Vec<(String, String)>, StartError> {
        let mut env = self.resolve_env(pod, c, &c.env, "env").await?;
        env.push(("SKIFF_POD_NAME".into(), pod.metadata.name.clone()));
        env.push((
            "SKIFF_POD_NAMESPACE".into(),
            pod.metadata.namespace_or_default().into(),
        ));
        env.push(("SKIFF_NODE_NAME".into(), self.node.clone()));
        Ok(env)
    }

    /// Starts every component in order; the first one's handler goes to `serving`, the
    /// containers started so far to `containers` (also on failure, for the caller to remove).
    async fn start_components(
        &self,
        pod: &Pod,
        logs: &Arc<LogBuffer>,
        serving: &mut Option<Serving>,
        containers: &mut Vec<RunningContainer>,
    ) -> Result<(), StartError> {
        for (i, c) in pod.spec.components.iter().enumerate() {
            if let Some(oci) = &c.oci {
                let env = self.component_env(pod, c).await?;
                let rc = self.containers.start(pod, c, oci, env, i == 0).await?;
                if i == 0 {
                    *serving = Some(Serving::Container {
                        containers: self.containers.clone(),
                        port: rc.port,
                    });
                }
                containers.push(rc);
                continue;
            }
            let Some(wasm) = &c.wasm else {
                return Err(StartError {
                    reason: "InvalidSpec",
                    message: format!(
                        "component {} has neither a wasm artifact nor an oci image",
                        c.name
                    ),
                });
            };
            let bytes = self.artifacts.get(wasm).await?;
            let component = self.runtime.load(bytes).await.map_err(|e| StartError {
                reason: "CompileError",
                message: format!("component {}: {e}", c.name),
            })?;
            lock(&self.cached).insert(component.digest().to_owned());
            if wasm.world == skiff_api::World::Function {
                let mut opts = skiff_runtime_wasm::FunctionOptions::new(format!("{}/{}", key(pod), c.name));
                opts.env = self.component_env(pod, c).await?;
                opts.config = self.resolve_env(pod, c, &c.config, "config").await?;
                opts.memory_limit = c.resources.memory_or_default().0;
                opts.timeout = c.resources.timeout_or_default();
                opts.logs = logs.clone();
                opts.key_value = crate::keyvalue::grant(&self.client, pod, c);
                if !self.runtime.is_function(&component) {
                    return Err(StartError {
                        reason: "InstantiateError",
                        message: format!(
                            "component {} is not a function: it does not export skiff:function/handler (build it for the world in wit/function.wit, or set world: http)",
                            c.name
                        ),
                    });
                }
                if i == 0 {
                    *serving = Some(Serving::Function(crate::function::FunctionServer {
                        runtime: self.runtime.clone(),
                        component,
                        options: opts,
                    }));
                }
                continue;
            }
            let mut opts = HandlerOptions::new(format!("{}/{}", key(pod), c.name));
            opts.env = self.component_env(pod, c).await?;
            opts.config = self.resolve_env(pod, c, &c.config, "config").await?;
            opts.memory_limit = c.resources.memory_or_default().0;
            opts.timeout = c.resources.timeout_or_default();
            opts.fuel = c.resources.fuel;
            opts.instance_reuse = wasm.instance_reuse;
            opts.logs = logs.clone();
            opts.key_value = crate::keyvalue::grant(&self.client, pod, c);
            let h = self.runtime.handler(component, opts).map_err(|e| StartError {
                reason: "InstantiateError",
                message: format!("component {}: {e}", c.name),
            })?;
            if i == 0 {
                *serving = Some(Serving::Wasm(h));
            }
        }
        Ok(())
    }
}
