//! [`ControlPlane`]: opening the state, starting Raft, and the shared handle the API and the
//! controllers use.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_api::{Kind, LabelSelector, Object, ObjectMeta};
use skiff_raft::{RaftConfig, RaftHandle, StartOptions};
use skiff_state::{Command, Machine, Op, Reader, StateError, StoredEvent};
use tokio::sync::broadcast;

use crate::artifacts::ArtifactStore;
use crate::backup;
use crate::cluster::{ClusterConfig, MemberInfo};
use crate::error::{ApiError, ControlError, WriteError};
use crate::ids;
use crate::replicated::Replicated;

/// The member name of a one-member control plane without a peer port.
const LOCAL_MEMBER: &str = "skiff-1";
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
    /// A file holding the time (RFC 3339) that cron triggers go by instead of the system clock,
    /// re-read on every pass: tests move time with it. `None`: the system clock.
    pub clock_file: Option<PathBuf>,
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
            plain_http: false,
            node_cert_lifetime: DEFAULT_NODE_CERT_LIFETIME,
            member_cert_lifetime: DEFAULT_NODE_CERT_LIFETIME,
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
    pub(crate) audit: crate::access::audit::AuditLog,
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
    pub(crate) function_samples:
        std::sync::Mutex<std::collections::BTreeMap<String, crate::controllers::LoadSample>>,
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
    /// Opens (or initialises) the state in `config.data_dir`, starts Raft and waits until this node
    /// leads, then makes sure the `default` namespace exists.
    ///
    /// # Errors
    /// [`ControlError`] when the directory or database cannot be used or Raft does not start.
    pub async fn open(config: ControlConfig) -> Result<Self, ControlError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| state_dir(dir, e))?;
        let db_path = dir.join("state.redb");
        let bootstrap_snapshot = match &config.restore {
            Some(file) => Some(read_backup(file, &db_path, &config)?),
            None => None,
        };
        let admin_token_path = dir.join("admin.token");
        let prepared = match &config.cluster {
            Some(c) => crate::cluster::prepare(dir, c, &admin_token_path).await?,
            None => {
                crate::cluster::ensure_local_pki(dir, LOCAL_MEMBER)?;
                crate::cluster::Prepared {
                    raft_id: 1,
                    voters: vec![1],
                    meta: MemberInfo {
                        name: LOCAL_MEMBER.into(),
                        peer_addr: String::new(),
                        api_url: String::new(),
                    },
                    transport: None,
                    peer: None,
                    cert: None,
                }
            }
        };
        let db = redb::Database::create(&db_path).map_err(|e| ControlError::Database {
            path: db_path.display().to_string(),
            message: e.to_string(),
        })?;
        let db = Arc::new(db);
        let machine = Machine::new(db.clone());
        let events = machine.event_sender();
        let raft_config = RaftConfig {
            id: prepared.raft_id,
            voters: prepared.voters.clone(),
            meta: prepared.meta.encode(),
            snapshot_every: config.snapshot_every,
            keep_entries: config.keep_entries,
            ..RaftConfig::default()
        };
        let mut options = StartOptions {
            bootstrap_snapshot,
            ..StartOptions::default()
        };
        if let Some(t) = &prepared.transport {
            options.transport = t.clone();
        }
        let raft = skiff_raft::start_with(db.clone(), Replicated(machine), raft_config, options)
            .map_err(|e| ControlError::Raft(e.to_string()))?;
        let admin_token = load_or_create_token(&admin_token_path)?;
        let audit =
            crate::access::audit::AuditLog::open(&dir.join("audit")).map_err(|e| state_dir(dir, e))?;
        let artifacts = ArtifactStore::open(dir.join("artifacts"), config.max_artifact_bytes)
            .map_err(|e| state_dir(dir, e))?;
        let pki = crate::cluster::pki_dir(dir);
        let node = skiff_pki::NodeCert::load(&pki).map_err(|e| {
            ControlError::Cluster(format!(
                "cannot load this node's certificate from {}: {e}",
                pki.display()
            ))
        })?;
        if !pki.join(crate::secrets::SECRETS_KEY_FILE).exists() {
            tracing::warn!(
                "no cluster secrets key in {}: creating one (other members of an existing cluster \
                 must be given the same pki/{} file)",
                pki.display(),
                crate::secrets::SECRETS_KEY_FILE
            );
            crate::secrets::ensure_key_file(&pki)?;
        }
        let secrets = crate::secrets::SecretsKey::load(&pki)?;
        let tls_err = |e: skiff_pki::PkiError| ControlError::Cluster(format!("TLS configuration: {e}"));
        // One renewable certificate behind the peer transport, the API port and the member's
        // HTTPS clients (see `renew_member_certificate`).
        let cert_slot = match prepared.cert.clone() {
            Some(slot) => slot,
            None => skiff_pki::CertSlot::new(&node).map_err(tls_err)?,
        };
        let api_tls = skiff_pki::https::api_server_config_slot(&cert_slot).map_err(tls_err)?;
        let https_client = |peer| -> Result<reqwest::Client, ControlError> {
            let tls = skiff_pki::https::https_client_config_slot(&cert_slot, peer).map_err(tls_err)?;
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .connect_timeout(Duration::from_secs(3))
                .build()
                .map_err(|e| ControlError::Cluster(format!("HTTPS client: {e}")))
        };
        let http = https_client(skiff_pki::https::Peer::Control)?;
        let agent_http = https_client(skiff_pki::https::Peer::Agent)?;
        let clustered = config.cluster.is_some();
        let plane = ControlPlane {
            inner: Arc::new(Inner {
                config,
                raft: raft.clone(),
                reader: Reader::new(db),
                events,
                artifacts,
                admin_token,
                audit,
                http,
                agent_http,
                api_tls,
                node,
                secrets,
                function_samples: Default::default(),
                dispatch: tokio::sync::Notify::new(),
            }),
        };
        tokio::spawn(crate::cluster::renew_member_certificate(
            pki,
            cert_slot,
            plane.inner.config.member_cert_lifetime,
        ));
        if let Some(peer) = prepared.peer {
            let _ = peer.handler.raft.set(raft.clone());
            let _ = peer.handler.plane.set(plane.clone());
            tokio::spawn(skiff_peer::transport::serve(
                peer.listener,
                peer.tls,
                peer.handler,
            ));
        }
        if let Some(t) = prepared.transport {
            crate::cluster::spawn_member_sync(raft.clone(), t, prepared.raft_id);
        }
        if !clustered {
            // Alone: wait to lead so the first request does not see "no leader".
            raft.wait_leader(Duration::from_secs(30))
                .await
                .map_err(|e| ControlError::Raft(e.to_string()))?;
            plane.ensure_namespace(skiff_api::DEFAULT_NAMESPACE).await?;
        }
        Ok(plane)
    }

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

    /// Stops Raft (the API answers 503 afterwards).
    pub fn shutdown(&self) {
        self.inner.raft.shutdown();
    }
}

fn state_dir(dir: &Path, e: impl std::fmt::Display) -> ControlError {
    ControlError::StateDir {
        path: dir.display().to_string(),
        message: e.to_string(),
    }
}

pub(crate) fn load_or_create_token(path: &Path) -> Result<String, ControlError> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(state_dir(path, e)),
    }
    let token = ids::token();
    write_file_atomic(path, token.as_bytes(), 0o600).map_err(|e| state_dir(path, e))?;
    Ok(token)
}

/// Writes `content` to `path` through a temporary file and a rename, with `mode` permissions.
pub(crate) fn write_file_atomic(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Reads and checks a backup for `--restore`; refuses a state dir that already holds state.
fn read_backup(file: &Path, db_path: &Path, config: &ControlConfig) -> Result<Vec<u8>, ControlError> {
    let restore_err = |source| ControlError::Restore {
        path: file.display().to_string(),
        source,
    };
    if config.cluster.as_ref().is_some_and(|c| c.join.is_some()) {
        return Err(ControlError::Cluster(
            "--restore starts a new cluster and cannot be combined with --join; restore on one node, then join the others to it".into(),
        ));
    }
    if db_path.exists() {
        return Err(ControlError::StateDir {
            path: config.data_dir.display().to_string(),
            message: format!(
                "--restore needs an empty state dir, but {} exists; pick a new --data-dir",
                db_path.display()
            ),
        });
    }
    let bytes = std::fs::read(file).map_err(|e| ControlError::StateDir {
        path: file.display().to_string(),
        message: format!("cannot read the backup: {e}"),
    })?;
    let (header, export) = backup::decode(&bytes).map_err(restore_err)?;
    tracing::info!(file = %file.display(), revision = header.revision, bytes = header.bytes, "restoring from a backup");
    Ok(export.to_vec())
}
