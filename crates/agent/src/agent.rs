//! [`Agent`]: registration, heartbeat and the run loop.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::{Kind, Node, NodeCapacity, NodeStatus, Object, ObjectMeta};
use skiff_client::{Client, ClientError, Informer, ListOptions};
use skiff_pki::Identity;
use skiff_pki::https::Peer;
use skiff_runtime_wasm::{RuntimeConfig, WasmRuntime};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::artifacts::ArtifactCache;
use crate::containers::Containers;
use crate::dataplane::{self, DataPlane};
use crate::disconnect::Disconnect;
use crate::driver::Driving;
use crate::error::AgentError;
use crate::plugins::Plugin;
use crate::pods::{LocalPod, PodTable};
use crate::report::Reporter;
use crate::start::Starter;
use crate::store::LocalStore;
use crate::sync::Syncer;

/// How a worker joins and what it offers.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Node name (a DNS label).
    pub node_name: String,
    /// API server URL(s), comma-separated (`http://` is spoken as `https://`).
    pub server: String,
    /// Join token (`SKF1<ca hash>::<secret>`): needed the first time, to get the node
    /// certificate; afterwards the certificate kept under `<data_dir>/pki` identifies the agent.
    pub token: String,
    /// Local state: `agent.redb` (the assigned pods), artifact and compiled-code caches.
    pub data_dir: PathBuf,
    /// Schedulable capacity.
    pub capacity: NodeCapacity,
    /// Extra node labels (`skiff.dev/arch`, `skiff.dev/os` and `skiff.dev/hostname` are added).
    pub labels: BTreeMap<String, String>,
    /// Taints the node registers with (set when the node is created; afterwards `spec` is the
    /// operator's).
    pub taints: Vec<skiff_api::Taint>,
    /// How often the heartbeat is written.
    pub heartbeat: Duration,
    /// First wait before restarting a pod whose liveness probe failed or whose start failed
    /// (doubled on each back-to-back restart, at most 5 min). Default 10 s.
    pub restart_backoff: Duration,
    /// Runtime plugins to run (`oci=/usr/local/bin/skiff-oci`); none by default.
    pub runtime_plugins: Vec<crate::RuntimePluginConfig>,
    /// Ports handed to containers (`PORT`); default 30000-32767.
    pub container_ports: std::ops::RangeInclusive<u16>,
    /// Wasm instances the runtime keeps slots for (its pooling allocator's size); default 1000.
    pub instance_pool: u32,
}

/// Default most linear memory of one wasm instance (`capacity.instanceMemory`).
pub const DEFAULT_INSTANCE_MEMORY: u64 = 256 << 20;
/// Most linear memory one wasm instance may be given on any node: what a 32-bit wasm memory can
/// address, and the largest `resources.memory` that validates.
pub const MAX_INSTANCE_MEMORY: u64 = 4 << 30;

impl AgentConfig {
    /// Defaults: 1 GiB, 110 pods and the machine's CPU count of capacity, heartbeat every 2 s (a node is NotReady after 10 s
    /// without one).
    pub fn new(node_name: &str, server: &str, token: &str, data_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            node_name: node_name.to_owned(),
            server: server.to_owned(),
            token: token.to_owned(),
            data_dir: data_dir.into(),
            capacity: NodeCapacity {
                memory: skiff_api::ByteSize(1 << 30),
                pods: 110,
                cpu: skiff_api::Millicores(
                    std::thread::available_parallelism().map_or(1, |n| n.get() as u64) * 1000,
                ),
                instance_memory: skiff_api::ByteSize(DEFAULT_INSTANCE_MEMORY),
            },
            labels: BTreeMap::new(),
            taints: Vec::new(),
            heartbeat: Duration::from_secs(2),
            restart_backoff: crate::lifecycle::DEFAULT_BACKOFF,
            runtime_plugins: Vec::new(),
            container_ports: crate::containers::DEFAULT_PORTS,
            instance_pool: 1000,
        }
    }
}

/// The capacity a node reports: what it was configured to offer, never more than the machine
/// has (`memory`: total bytes when known; `cpu_millis`: its cores × 1000).
pub(crate) fn reported_capacity(
    configured: &NodeCapacity,
    memory: Option<u64>,
    cpu_millis: u64,
) -> NodeCapacity {
    let mut c = configured.clone();
    if let Some(total) = memory {
        c.memory = skiff_api::ByteSize(c.memory.0.min(total));
    }
    if c.cpu.0 > 0 {
        c.cpu = skiff_api::Millicores(c.cpu.0.min(cpu_millis));
    }
    c
}

/// This machine's total memory in bytes (Linux: `MemTotal` of `/proc/meminfo`).
fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// A running worker (cheap to clone).
#[derive(Clone)]
pub struct Agent {
    pub(crate) config: Arc<AgentConfig>,
    pub(crate) client: Client,
    pub(crate) pods: Arc<PodTable>,
    /// Matches the pods to the assigned set.
    syncer: Arc<Syncer>,
    address: String,
    data_plane_tls: Arc<skiff_pki::ServerConfig>,
    /// The node certificate both present, renewed while the agent runs.
    cert_slot: skiff_pki::CertSlot,
    /// One data plane (and so one set of per-pod traffic counts) for the listener and in-process
    /// callers alike.
    plane: DataPlane,
    /// Stops the runtime plugins' supervisors (and so the plugins) when the agent stops.
    plugins_stop: Arc<watch::Sender<bool>>,
    /// The namespaces' fuel budgets on this node.
    budgets: Arc<crate::budgets::FuelBudgets>,
    /// Outbound grants and the denials counted on this node.
    egress: Arc<crate::egress::EgressReports>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node", &self.config.node_name)
            .finish()
    }
}

/// Whether `e` says the control plane cannot be reached or cannot answer now (as opposed to
/// refusing the request): the agent then keeps running from local state.
fn control_plane_down(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable { .. } | ClientError::Timeout { .. } => true,
        ClientError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

impl Agent {
    /// Creates the runtime, starts the pods kept in the local store (before and independently of
    /// the control plane), then registers the node, advertising `address` (the data plane's base
    /// URL). An unreachable control plane is not an error: the agent runs from local state and
    /// registers once [`run`](Agent::run) reaches it.
    ///
    /// # Errors
    /// [`AgentError`] when the runtime or the local store cannot be opened (another agent holds
    /// the directory), or the control plane answers and refuses the node (e.g. a wrong token).
    pub async fn start(mut config: AgentConfig, address: String) -> Result<Self, AgentError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let capacity = reported_capacity(&config.capacity, machine_memory(), cores * 1000);
        if capacity != config.capacity {
            tracing::warn!(
                configured = ?config.capacity,
                reported = ?capacity,
                "the configured capacity is more than this machine has: reporting what it has"
            );
            config.capacity = capacity;
        }
        let pki = config.data_dir.join("pki");
        let identity = Identity::agent(&config.node_name);
        let cert =
            skiff_client::node_credentials(&pki, &config.server, Some(&config.token), &identity).await?;
        let tls_err = |e: skiff_pki::PkiError| AgentError::Tls(e.to_string());
        // One renewable certificate behind the API client and the data plane (see `run`).
        let cert_slot = skiff_pki::CertSlot::new(&cert).map_err(tls_err)?;
        let client_tls =
            skiff_pki::https::https_client_config_slot(&cert_slot, Peer::Control).map_err(tls_err)?;
        let data_plane_tls = skiff_pki::https::data_plane_server_config_slot(&cert_slot).map_err(tls_err)?;
        let client = Client::with_tls(&config.server, "", client_tls)?;
        // Fuel is always metered: it is what per-request `resources.fuel` limits and what
        // namespaces' `fuel.perMinute` budgets count.
        // Instances are accounted one by one against the node's memory capacity: many small
        // instances fit where one pod's request would suggest fewer.
        let runtime = WasmRuntime::new(RuntimeConfig {
            cache_dir: config.data_dir.join("compiled"),
            fuel: true,
            max_memory_per_instance: config.capacity.instance_memory.0.clamp(1, MAX_INSTANCE_MEMORY),
            max_instances: config.instance_pool.max(1),
            instance_memory: Some(config.capacity.memory.0),
            ..RuntimeConfig::default()
        })?;
        tracing::info!(node = %config.node_name, allocator = ?runtime.allocator(), "wasm runtime ready");
        let artifacts = config.data_dir.join("artifacts");
        std::fs::create_dir_all(&artifacts).map_err(|e| AgentError::Storage {
            path: artifacts.display().to_string(),
            message: e.to_string(),
        })?;
        let store = Arc::new(LocalStore::open(config.data_dir.join("agent.redb"))?);
        let (plugins_stop, plugins_stopped) = watch::channel(false);
        let plugins: Vec<Arc<Plugin>> = config
            .runtime_plugins
            .iter()
            .map(|p| Plugin::new(p.clone(), &config.data_dir.join("plugins")))
            .collect();
        for p in &plugins {
            tokio::spawn(p.clone().supervise(plugins_stopped.clone()));
        }
        // Give the plugins a moment to answer, so the node advertises their kinds when it
        // registers (a slow one is advertised at a later heartbeat).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while plugins.iter().any(|p| !p.ever_up()) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let containers = Arc::new(Containers::new(plugins, config.container_ports.clone()));
        let budgets = crate::budgets::FuelBudgets::start(client.clone());
        let egress = Arc::new(crate::egress::EgressReports::default());
        let pods = Arc::new(PodTable::new(config.node_name.clone(), containers.clone()));
        let artifacts = Arc::new(ArtifactCache::new(
            artifacts.clone(),
            // The runtime's compiled-code cache sits beside the artifacts (`<data dir>/compiled`).
            artifacts.with_file_name("compiled"),
            client.clone(),
        ));
        let driving = Arc::new(Driving {
            pods: pods.clone(),
            starter: Arc::new(Starter::new(
                runtime,
                client.clone(),
                config.node_name.clone(),
                artifacts.clone(),
                containers,
                budgets.clone(),
                egress.clone(),
            )),
            reporter: Reporter::new(client.clone(), config.node_name.clone()),
            backoff: config.restart_backoff,
        });
        let syncer = Arc::new(Syncer::new(driving, artifacts, store.clone()));
        let (stored, serving) = syncer.restore().await?;
        if stored > 0 {
            tracing::info!(
                node = %config.node_name,
                stored,
                serving,
                store = %store.path().display(),
                "running from local state: pods restored before reaching the control plane"
            );
        }
        // Revoked certificates are refused here too (they are the control plane's decisions).
        let revocations = Informer::start(client.clone(), Kind::Revocation, None, ListOptions::default());
        let plane = DataPlane::new(pods.clone(), Some(Arc::new(revocations)));
        let agent = Agent {
            config: Arc::new(config),
            client,
            plane,
            pods,
            syncer,
            address: skiff_pki::https::https_url(&address),
            data_plane_tls,
            cert_slot,
            plugins_stop: Arc::new(plugins_stop),
            budgets,
            egress,
        };
        match agent.register().await {
            Ok(()) => {}
            Err(AgentError::Client(e)) if control_plane_down(&e) => {
                tracing::warn!(
                    node = %agent.config.node_name,
                    server = %agent.config.server,
                    error = %e,
                    "control plane unreachable: running from local state; registering when it answers"
                );
            }
            Err(e) => return Err(e),
        }
        Ok(agent)
    }

    /// The node name.
    pub fn node_name(&self) -> &str {
        &self.config.node_name
    }

    /// The pods this agent serves now (from the control plane or from local state).
    pub fn pods(&self) -> Vec<LocalPod> {
        self.pods.list()
    }

    /// The in-process data plane (for a gateway in the same process).
    pub fn data_plane(&self) -> DataPlane {
        self.plane.clone()
    }

    fn node_status(&self) -> NodeStatus {
        let mut info = BTreeMap::new();
        info.insert("os".into(), std::env::consts::OS.into());
        info.insert("agentVersion".into(), env!("CARGO_PKG_VERSION").into());
        NodeStatus {
            address: self.address.clone(),
            ready: true,
            capacity: self.config.capacity.clone(),
            runtimes: std::iter::once("wasm".to_owned())
                .chain(
                    self.pods
                        .containers
                        .plugins()
                        .filter(|p| p.ever_up())
                        .map(|p| p.kind().to_owned()),
                )
                .collect(),
            last_heartbeat: Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()),
            cached_artifacts: self.syncer.cached_artifacts(),
            info,
        }
    }

    async fn register(&self) -> Result<(), AgentError> {
        let labels = crate::labels::node_labels(&self.config.labels, &self.config.node_name);
        let node = Object::Node(Node {
            metadata: ObjectMeta {
                name: self.config.node_name.clone(),
                labels,
                ..Default::default()
            },
            spec: skiff_api::NodeSpec {
                taints: self.config.taints.clone(),
                ..Default::default()
            },
            status: self.node_status(),
            ..Default::default()
        });
        match self.client.create(&node).await {
            Ok(_) => tracing::info!(node = %self.config.node_name, "node registered"),
            Err(e) if e.is_conflict() => {
                self.client.update_status(&node).await?;
                tracing::info!(node = %self.config.node_name, "node re-registered");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    async fn heartbeat(&self) -> Result<(), AgentError> {
        let node = match self.client.get(Kind::Node, None, &self.config.node_name).await {
            Ok(Object::Node(n)) => n,
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => return self.register().await,
            Err(e) => return Err(e.into()),
        };
        let mut next = node;
        next.status = self.node_status();
        next.metadata.resource_version = None;
        self.client.update_status(&Object::Node(next)).await?;
        Ok(())
    }

    /// Serves the data plane on `listener` and keeps the node's pods in sync until `shutdown`;
    /// then closes the local store.
    ///
    /// The pods are reconciled only from the informer's view once its first list succeeded: while
    /// the control plane cannot be reached the informer keeps its last view (it never empties it
    /// on errors), and an agent that started offline keeps what it restored from local state.
    pub async fn run(self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        tokio::spawn(skiff_client::keep_renewed(
            self.client.clone(),
            self.config.data_dir.join("pki"),
            self.cert_slot.clone(),
            shutdown.clone(),
        ));
        let informer = Informer::start(
            self.client.clone(),
            Kind::Pod,
            None,
            ListOptions {
                field_selector: Some(format!("spec.nodeName={}", self.config.node_name)),
                ..Default::default()
            },
        );
        tokio::spawn(self.budgets.clone().run(self.client.clone(), shutdown.clone()));
        tokio::spawn(self.egress.clone().run(self.client.clone(), shutdown.clone()));
        let server = tokio::spawn(dataplane::serve(
            listener,
            self.data_plane(),
            self.data_plane_tls.clone(),
            shutdown.clone(),
        ));
        let mut changes = informer.changed();
        let mut beat = tokio::time::interval(self.config.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resync = tokio::time::interval(Duration::from_secs(2));
        // Whether the last heartbeat reached the control plane (`None` before the first one).
        let mut reachable: Option<bool> = None;
        let mut disconnect =
            Disconnect::new(self.pods.clone(), self.client.clone(), std::time::Instant::now());
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
                _ = beat.tick() => {
                    let result = self.heartbeat().await;
                    let now = result.is_ok();
                    match (&result, reachable) {
                        (Err(e), Some(true) | None) => tracing::warn!(
                            node = %self.config.node_name,
                            error = %e,
                            pods = self.pods.list().len(),
                            "control plane unreachable: keeping the pods running from local state"
                        ),
                        (Err(e), Some(false)) => tracing::debug!(node = %self.config.node_name, error = %e, "heartbeat failed"),
                        (Ok(()), Some(false)) => tracing::info!(
                            node = %self.config.node_name,
                            "control plane reachable again: reconciling pods by uid"
                        ),
                        (Ok(()), _) => {}
                    }
                    match now {
                        true => disconnect.on_contact(std::time::Instant::now()).await,
                        false => disconnect.on_no_contact(std::time::Instant::now()),
                    }
                    reachable = Some(now);
                }
                r = changes.changed() => {
                    if r.is_err() { break; }
                    if *changes.borrow() > 0 {
                        self.syncer.sync(informer.snapshot()).await;
                    }
                }
                _ = resync.tick() => {
                    if *changes.borrow() > 0 {
                        self.syncer.sync(informer.snapshot()).await;
                    }
                }
            }
        }
        drop(informer);
        let _ = server.await;
        let _ = self.plugins_stop.send(true);
        self.syncer.close_store();
    }
}

#[cfg(test)]
mod tests {
    use skiff_api::{ByteSize, Millicores, NodeCapacity};

    use super::{machine_memory, reported_capacity};

    #[test]
    fn a_node_never_reports_more_than_the_machine_has() {
        let configured = NodeCapacity {
            memory: ByteSize(64 << 30),
            pods: 110,
            cpu: Millicores(16_000),
            ..Default::default()
        };
        let reported = reported_capacity(&configured, Some(8 << 30), 2_000);
        assert_eq!(reported.memory, ByteSize(8 << 30));
        assert_eq!(reported.cpu, Millicores(2_000));
        assert_eq!(reported.pods, 110);
        let modest = NodeCapacity {
            memory: ByteSize(768 << 20),
            pods: 40,
            cpu: Millicores(1_500),
            ..Default::default()
        };
        assert_eq!(
            reported_capacity(&modest, Some(8 << 30), 2_000),
            modest,
            "less is kept"
        );
        assert_eq!(
            reported_capacity(&configured, None, 2_000).memory,
            configured.memory,
            "unknown memory"
        );
        assert!(
            machine_memory().is_some_and(|m| m > 0),
            "this is Linux: /proc/meminfo"
        );
    }
}
