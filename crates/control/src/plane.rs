//! [`ControlPlane`]: opening the state, starting Raft, and the shared handle the API and the
//! controllers use.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::{Kind, LabelSelector, Object, ObjectMeta};
use skiff_raft::{RaftConfig, RaftHandle};
use skiff_state::{Command, Op, Reader, StateError, StoredEvent};
use tokio::sync::broadcast;

use crate::artifacts::ArtifactStore;
use crate::cluster::ClusterConfig;
use crate::error::{ApiError, ControlError, WriteError};
use crate::ids;

/// The member name of a one-member control plane without a peer port.
pub(crate) const LOCAL_MEMBER: &str = "skiff-1";
/// How long a write may wait to be committed before the API answers 503 (outcome unknown).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a linearizable read may wait for the leader's confirmation.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long agents' and gateways' certificates are valid by default.
pub const DEFAULT_NODE_CERT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Where and how a control node runs.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// State directory: `state.redb`, `artifacts/`, `admin.token`.
    pub data_dir: PathBuf,
    /// Largest artifact accepted by upload.
    pub max_artifact_bytes: usize,
    /// How long a node may miss heartbeats before it is marked not ready (default 10 s).
    pub node_grace: Duration,
    /// How long a node stays not ready before its pods are failed with reason `NodeLost` and
    /// replaced on other nodes (default 5 s).
    pub pod_eviction_grace: Duration,
    /// Wait before a Job's next pod after its first failure, doubled per failure (default 10 s).
    pub job_backoff: Duration,
    /// Multi-member operation (peer port, join); `None` runs a one-member control plane with no
    /// peer port, as `skiff up` does.
    pub cluster: Option<ClusterConfig>,
    /// Start a new cluster from this backup file (the state dir must be empty).
    pub restore: Option<PathBuf>,
    /// Take a Raft snapshot and compact the log every this many applied entries.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot for slightly lagging members.
    pub keep_entries: u64,
    /// How long this member's own certificate is valid (default 30 days); it renews it, with the
    /// cluster CA it holds, two thirds into that.
    pub member_cert_lifetime: Duration,
    /// How long the certificates given to agents and gateways (at join and renewal) are valid
    /// (default 30 days). They renew two thirds into it, while serving.
    pub node_cert_lifetime: Duration,
    /// Whether the API port also answers plain HTTP (bearer tokens then only from loopback
    /// clients). `false`: HTTPS only; a plain-HTTP request gets a 400 saying to use https.
    pub plain_http: bool,
    /// Free space kept where the state lives: below it, writes (other than deletes) are refused
    /// with `507 DiskFull`. 0 turns the check off.
    pub min_free_bytes: u64,
    /// A file holding the time (RFC 3339) that cron triggers go by instead of the system clock,
    /// re-read on every pass: tests move time with it. `None`: the system clock.
    pub clock_file: Option<PathBuf>,
    /// How long an artifact no object references is kept before this member deletes it
    /// (default 1 h).
    pub artifact_grace: Duration,
    /// How often this member looks for unreferenced artifacts (default 1 min).
    pub artifact_gc_every: Duration,
}

impl ControlConfig {
    /// Defaults for a single control node with state under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ControlConfig {
            data_dir: data_dir.into(),
            max_artifact_bytes: 64 << 20,
            node_grace: Duration::from_secs(10),
            pod_eviction_grace: Duration::from_secs(5),
            job_backoff: Duration::from_secs(10),
            cluster: None,
            restore: None,
            snapshot_every: RaftConfig::default().snapshot_every,
            keep_entries: RaftConfig::default().keep_entries,
            clock_file: None,
            min_free_bytes: crate::disk::DEFAULT_MIN_FREE_BYTES,
            plain_http: false,
            node_cert_lifetime: DEFAULT_NODE_CERT_LIFETIME,
            member_cert_lifetime: DEFAULT_NODE_CERT_LIFETIME,
            artifact_grace: crate::artifact_gc::DEFAULT_ARTIFACT_GRACE,
            artifact_gc_every: Duration::from_secs(60),
        }
    }
}

pub(crate) type Output = Result<skiff_state::Applied, StateError>;

pub(crate) struct Inner {
    pub(crate) config: ControlConfig,
    pub(crate) raft: RaftHandle<Output>,
    pub(crate) reader: Reader,
    pub(crate) events: broadcast::Sender<Arc<StoredEvent>>,
    pub(crate) artifacts: ArtifactStore,
    pub(crate) admin_token: String,
    /// This member's audit log.
    pub(crate) audit: crate::audit::AuditLog,
    /// Open watches per caller.
    pub(crate) watchers: crate::watchers::Watchers,
    /// HTTPS to other control nodes' API ports, with this node's certificate.
    pub(crate) http: reqwest::Client,
    /// HTTPS to agents' data planes, with this node's certificate.
    pub(crate) agent_http: reqwest::Client,
    /// The API port's TLS configuration.
    pub(crate) api_tls: Arc<skiff_pki::ServerConfig>,
    /// This node's credentials.
    pub(crate) node: skiff_pki::NodeCert,
    /// Seals Secret values before they are proposed and opens them for reads.
    pub(crate) secrets: crate::secrets::SecretsKey,
    /// The last busy-time sample of each function pod (by uid), for the scaler.
    /// Wakes the event dispatcher (a publish, a delivery done).
    pub(crate) dispatch: tokio::sync::Notify,
    pub(crate) function_samples: std::sync::Mutex<std::collections::BTreeMap<String, LoadSample>>,
}

/// A running control node (cheap to clone).
#[derive(Clone)]
pub struct ControlPlane {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("data_dir", &self.inner.config.data_dir)
            .finish()
    }
}

impl ControlPlane {
    pub(crate) async fn ensure_namespace(&self, name: &str) -> Result<(), ControlError> {
        if self.inner.reader.get(Kind::Namespace, None, name).is_ok() {
            return Ok(());
        }
        let ns = Object::Namespace(skiff_api::Namespace {
            metadata: ObjectMeta::named(name, None),
            ..Default::default()
        });
        match self
            .propose(vec![Op::Create {
                object: ns,
                uid: ids::uid(),
            }])
            .await
        {
            Ok(_) => Ok(()),
            Err(WriteError::State(skiff_state::StateError::AlreadyExists { .. })) => Ok(()),
            Err(e) => Err(ControlError::Raft(e.to_string())),
        }
    }

    /// The admin bearer token (also in `<data_dir>/admin.token`).
    pub fn admin_token(&self) -> &str {
        &self.inner.admin_token
    }

    /// The state reader.
    pub fn reader(&self) -> &Reader {
        &self.inner.reader
    }

    /// Whether this node currently leads the Raft group.
    pub fn is_leader(&self) -> bool {
        let s = self.inner.raft.status();
        s.leader == Some(s.id)
    }

    /// Proposes `ops` as one command and waits until it is applied.
    ///
    /// # Errors
    /// Why the write did not take effect (or may not have), as a [`WriteError`].
    pub async fn propose(&self, ops: Vec<Op>) -> Result<Vec<Object>, WriteError> {
        Ok(self.propose_applied(ops).await?.objects)
    }

    /// [`propose`](Self::propose), answering the results of `Publish` ops too.
    ///
    /// # Errors
    /// Why the write did not take effect (or may not have), as a [`WriteError`].
    #[tracing::instrument(level = "debug", skip_all, fields(ops = ops.len()))]
    pub async fn propose_applied(&self, mut ops: Vec<Op>) -> Result<skiff_state::Applied, WriteError> {
        // Secret values are sealed here, so the log, the tables, snapshots and backups hold only
        // ciphertext; the objects returned are opened again.
        for op in &mut ops {
            if let Op::Create { object, .. }
            | Op::Apply { object, .. }
            | Op::Replace { object }
            | Op::UpdateStatus { object } = op
            {
                self.inner.secrets.seal(object).map_err(WriteError::Secrets)?;
            }
        }
        crate::disk::check(
            &self.inner.config.data_dir,
            self.inner.config.min_free_bytes,
            &ops,
        )?;
        crate::quota::check_artifacts(&self.inner.reader, &self.inner.artifacts, &ops)?;
        let cmd = Command::new(ids::now(), ops);
        let out = tokio::time::timeout(WRITE_TIMEOUT, self.inner.raft.propose(cmd.encode()))
            .await
            .map_err(|_| WriteError::Timeout(WRITE_TIMEOUT))??;
        let mut out = out?;
        for o in &mut out.objects {
            self.inner.secrets.open(o).map_err(WriteError::Secrets)?;
        }
        Ok(out)
    }

    /// Opens the sealed values of a Secret read from the state, for an answer to a caller the
    /// API authorised; other objects are left as they are.
    ///
    /// # Errors
    /// 500 when a value does not open with this cluster's key.
    pub(crate) fn reveal(&self, object: &mut Object) -> Result<(), ApiError> {
        if let Object::ResourceQuota(q) = object {
            crate::quota::fill_status(&self.inner.reader, &self.inner.artifacts, q)?;
        }
        self.inner.secrets.open(object).map_err(ApiError::internal)
    }

    /// Waits until reads on this node reflect every write committed before the call.
    ///
    /// # Errors
    /// Raft's error as an [`ApiError`]; 503 `NoLeader` when the leader cannot confirm in time.
    pub async fn read_barrier(&self) -> Result<(), ApiError> {
        tokio::time::timeout(READ_TIMEOUT, self.inner.raft.read_index())
            .await
            .map_err(|_| {
                ApiError::no_leader(format!(
                    "the leader did not confirm a linearizable read within {}s (no quorum reachable?); retry, or read with ?consistency=stale",
                    READ_TIMEOUT.as_secs()
                ))
            })??;
        Ok(())
    }

    /// Lists objects (read locally; Secret values stay sealed).
    ///
    /// # Errors
    /// Storage errors.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<Vec<Object>, ApiError> {
        Ok(self
            .inner
            .reader
            .list(kind, namespace, &LabelSelector::default())?
            .1)
    }

    /// Hex SHA-256 of the cluster CA certificate (the first part of every join token).
    pub fn ca_hash(&self) -> String {
        self.inner.node.ca_hash().unwrap_or_default()
    }

    /// The cluster's join token (admits control nodes, agents and gateways; never expires).
    ///
    /// # Errors
    /// [`ControlError::Cluster`] if `join.token` cannot be read.
    pub fn join_token(&self) -> Result<String, ControlError> {
        std::fs::read_to_string(self.inner.config.data_dir.join("join.token"))
            .map(|t| t.trim().to_owned())
            .map_err(|e| ControlError::Cluster(format!("cannot read join.token: {e}")))
    }

    /// Raft status as JSON, for `/api/v1/cluster`.
    pub(crate) fn cluster_info(&self) -> serde_json::Value {
        let s = self.inner.raft.status();
        serde_json::json!({
            "member": self.member_name(),
            "raft": {
                "id": s.id, "leader": s.leader, "term": s.term, "commit": s.commit,
                "applied": s.applied, "voters": s.voters, "learners": s.learners,
                "firstIndex": s.first_index, "lastIndex": s.last_index,
                "snapshotIndex": s.snapshot_index, "role": format!("{:?}", s.role),
            },
            "revision": self.inner.reader.revision().unwrap_or(0),
            "caHash": self.ca_hash(),
            "version": env!("CARGO_PKG_VERSION"),
        })
    }

    /// Waits until this member's Raft driver stops; why, when an error stopped it (a storage
    /// failure, an entry it could not apply). The process should then exit non-zero: the
    /// member serves nothing until it is restarted.
    pub async fn raft_stopped(&self) -> Option<String> {
        self.inner.raft.stopped().await
    }

    /// Stops Raft (the API answers 503 afterwards).
    pub fn shutdown(&self) {
        self.inner.raft.shutdown();
    }
}

/// One function pod's busy time when last sampled, and the concurrency derived from the sample
/// before.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadSample {
    pub(crate) at: std::time::Instant,
    pub(crate) busy_us: u64,
    pub(crate) concurrency: f64,
}
