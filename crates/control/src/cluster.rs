//! A control node's place in a multi-member control plane: cluster init, join, the peer port,
//! membership.
//!
//! ```text
//!  first server ── init: cluster CA, node cert (raft id 1), admin token, join token ──► raft [1]
//!  skiff server --join HOST:PEERPORT --token SKF1<ca hash>::<secret>
//!     └─ TLS to the peer port, server pinned by the CA hash ──► join RPC ──► (forwarded to the leader)
//!        leader: check secret → sign CSR with a new raft id → AddLearner(meta) → answer with the
//!        node cert, the CA (cert + key), the admin and join tokens and the members
//!     └─ new node: saves them, starts raft with no voters; the leader sends it a snapshot
//!  leader's controller loop: a learner whose log caught up is promoted to voter
//! ```
//!
//! Files in the state dir: `cluster.json` (name, raft id, addresses), `pki/` (CA cert + key,
//! node cert + key), `admin.token`, `join.token`. Member meta (name, peer address, API URL) is
//! replicated by raft with the membership itself, so every member knows where the others are.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiff_peer::transport::{JoinRequest, JoinResponse, PeerTransport};
use skiff_pki::{ClusterCa, Identity, JoinToken, NodeCert, NodeKey};

use crate::error::ControlError;

/// How long node certificates are valid.
pub(crate) const NODE_CERT_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);

/// How this control node takes part in a multi-member control plane.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The member name (unique in the cluster).
    pub name: String,
    /// Where the peer port (raft + join, mutual TLS) listens.
    pub peer_listen: SocketAddr,
    /// The peer address other members dial (`host:port`); defaults to `peer_listen`.
    pub peer_advertise: Option<String>,
    /// The API URL other members forward writes to (e.g. `http://10.0.0.1:7070`).
    pub api_url: String,
    /// Join an existing cluster through this member's peer address, with this token.
    pub join: Option<JoinConfig>,
}

/// Where and how to join.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// A member's peer address (`host:port`).
    pub server: String,
    /// The join token (`SKF1<ca hash>::<secret>`, from `<state dir>/join.token` of a member).
    pub token: String,
}

/// What a member publishes about itself in the replicated membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    /// The member name.
    pub name: String,
    /// Where its peer port is reached.
    pub peer_addr: String,
    /// Where its API is reached.
    pub api_url: String,
}

impl MemberInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The identity a control node keeps in `<state dir>/cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClusterFile {
    pub(crate) name: String,
    pub(crate) raft_id: u64,
}

/// Secrets every control node holds, handed to a joining control node.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Handover {
    pub(crate) ca_key_pem: String,
    pub(crate) admin_token: String,
    pub(crate) join_token: String,
    /// The cluster secrets key (`pki/secrets.key`, base64).
    #[serde(default)]
    pub(crate) secrets_key: String,
}

/// The cluster side of a starting control node: everything needed to start raft.
pub(crate) struct Prepared {
    pub(crate) raft_id: u64,
    /// Empty for a joining node (it waits for the leader), `[id]` for a new cluster.
    pub(crate) voters: Vec<u64>,
    pub(crate) meta: MemberInfo,
    pub(crate) transport: Option<Arc<PeerTransport>>,
    pub(crate) peer: Option<PeerSide>,
    /// This member's certificate, shared by the peer transport and (later) the API.
    pub(crate) cert: Option<skiff_pki::CertSlot>,
}

/// The peer port and the handler behind it.
pub(crate) struct PeerSide {
    pub(crate) listener: tokio::net::TcpListener,
    pub(crate) tls: Arc<skiff_pki::ServerConfig>,
}

pub(crate) fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

fn cluster_file(data_dir: &Path) -> PathBuf {
    data_dir.join("cluster.json")
}

fn cluster_err(what: &str, e: impl std::fmt::Display) -> ControlError {
    ControlError::Cluster(format!("{what}: {e}"))
}

/// Reads `cluster.json` if this node already belongs to a cluster.
pub(crate) fn load_cluster_file(data_dir: &Path) -> Result<Option<ClusterFile>, ControlError> {
    let path = cluster_file(data_dir);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| cluster_err(&format!("{} is damaged", path.display()), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(cluster_err(&format!("cannot read {}", path.display()), e)),
    }
}

fn save_cluster_file(data_dir: &Path, f: &ClusterFile) -> Result<(), ControlError> {
    let bytes = serde_json::to_vec_pretty(f).unwrap_or_default();
    crate::files::write_file_atomic(&cluster_file(data_dir), &bytes, 0o644)
        .map_err(|e| cluster_err("cannot write cluster.json", e))
}

/// Sets up the cluster side: first start (init or join) or restart, then the peer port.
pub(crate) async fn prepare(
    data_dir: &Path,
    cfg: &ClusterConfig,
    admin_token_path: &Path,
) -> Result<Prepared, ControlError> {
    let pki = pki_dir(data_dir);
    std::fs::create_dir_all(&pki).map_err(|e| cluster_err("cannot create the pki directory", e))?;
    let advertise = cfg
        .peer_advertise
        .clone()
        .unwrap_or_else(|| cfg.peer_listen.to_string());
    let meta = MemberInfo {
        name: cfg.name.clone(),
        peer_addr: advertise,
        api_url: cfg.api_url.clone(),
    };
    skiff_pki::validate_name(&cfg.name).map_err(|e| cluster_err("--name", e))?;
    let mut seed_peers: Vec<(u64, String)> = Vec::new();
    let (raft_id, voters) = match load_cluster_file(data_dir)? {
        Some(f) => {
            if f.name != cfg.name {
                return Err(ControlError::Cluster(format!(
                    "this state dir belongs to member {:?}, not {:?}: start it with --name {}",
                    f.name, cfg.name, f.name
                )));
            }
            (f.raft_id, Vec::new())
        }
        None => match &cfg.join {
            Some(join) => {
                let resp = join_cluster(data_dir, cfg, join, &meta, admin_token_path).await?;
                // Until the snapshot brings the membership, these are the only addresses known.
                seed_peers = resp
                    .members
                    .iter()
                    .filter(|m| m.raft_id != resp.raft_id)
                    .map(|m| (m.raft_id, m.peer_addr.clone()))
                    .collect();
                (resp.raft_id, Vec::new())
            }
            None => {
                init_cluster(data_dir, &cfg.name, admin_token_path)?;
                (1, vec![1])
            }
        },
    };
    let node = NodeCert::load(&pki).map_err(|e| cluster_err("cannot load this node's certificate", e))?;
    let slot = skiff_pki::CertSlot::new(&node).map_err(|e| cluster_err("this node's certificate", e))?;
    let client_tls = skiff_pki::client_config_slot(&slot).map_err(|e| cluster_err("tls client config", e))?;
    let server_tls = skiff_pki::server_config_slot(&slot).map_err(|e| cluster_err("tls server config", e))?;
    let transport = Arc::new(PeerTransport::new(tokio::runtime::Handle::current(), client_tls));
    for (id, addr) in seed_peers {
        transport.set_peer(id, addr);
    }
    let listener = tokio::net::TcpListener::bind(cfg.peer_listen)
        .await
        .map_err(|e| {
            cluster_err(
                &format!("cannot listen on the peer address {}", cfg.peer_listen),
                e,
            )
        })?;
    Ok(Prepared {
        raft_id,
        voters,
        meta,
        transport: Some(transport),
        peer: Some(PeerSide {
            listener,
            tls: server_tls,
        }),
        cert: Some(slot),
    })
}

/// A one-member control plane without a peer port (`skiff up`) still has a cluster CA, a node
/// certificate for its API port and a join token for agents: created on first start.
pub(crate) fn ensure_local_pki(data_dir: &Path, name: &str) -> Result<(), ControlError> {
    let pki = pki_dir(data_dir);
    if pki.join(skiff_pki::pki::CA_KEY_FILE).exists() {
        // A state dir from before secrets were encrypted gets its key now.
        return crate::secrets::ensure_key_file(&pki);
    }
    std::fs::create_dir_all(&pki).map_err(|e| cluster_err("cannot create the pki directory", e))?;
    let ca = ClusterCa::generate(name).map_err(|e| cluster_err("cannot create the cluster CA", e))?;
    ca.save(&pki)
        .map_err(|e| cluster_err("cannot save the cluster CA", e))?;
    crate::secrets::ensure_key_file(&pki)?;
    let node = ca
        .issue(&Identity::control(name, 1), NODE_CERT_VALIDITY)
        .map_err(|e| cluster_err("cannot issue this node's certificate", e))?;
    node.save(&pki)
        .map_err(|e| cluster_err("cannot save this node's certificate", e))?;
    let token = JoinToken::generate(&ca.ca_hash()).map_err(|e| cluster_err("join token", e))?;
    crate::files::write_file_atomic(&data_dir.join("join.token"), token.to_string().as_bytes(), 0o600)
        .map_err(|e| cluster_err("cannot write join.token", e))?;
    tracing::info!("created the cluster CA and join token");
    Ok(())
}

/// Renews this member's certificate with the cluster CA (which every member holds) two thirds
/// into its life — or into `lifetime` when it was issued for longer — for as long as the process
/// runs: a new key and certificate saved in `pki`, then put in `slot`, which the peer transport,
/// the API port and the member's HTTPS clients present from their next handshake on.
pub(crate) async fn renew_member_certificate(pki: PathBuf, slot: skiff_pki::CertSlot, lifetime: Duration) {
    let mut retry = Duration::from_secs(1);
    loop {
        let due = slot.renew_at();
        let due = slot.issued_at().map_or(due, |i| due.min(i + lifetime * 2 / 3));
        tokio::time::sleep(
            due.duration_since(std::time::SystemTime::now())
                .unwrap_or_default(),
        )
        .await;
        match renew_member_once(&pki, &slot, lifetime) {
            Ok(()) => retry = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?retry, "cannot renew this member's certificate yet");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn renew_member_once(
    pki: &Path,
    slot: &skiff_pki::CertSlot,
    lifetime: Duration,
) -> Result<(), skiff_pki::PkiError> {
    let identity = slot.node().identity()?;
    let next = ClusterCa::load(pki)?.issue(&identity, lifetime)?;
    next.save(pki)?;
    slot.replace(&next)?;
    tracing::info!(member = %identity, "member certificate renewed");
    Ok(())
}

/// First start of a new cluster: CA, this node's cert, the join token.
fn init_cluster(data_dir: &Path, name: &str, admin_token_path: &Path) -> Result<(), ControlError> {
    let pki = pki_dir(data_dir);
    let ca = ClusterCa::generate(name).map_err(|e| cluster_err("cannot create the cluster CA", e))?;
    ca.save(&pki)
        .map_err(|e| cluster_err("cannot save the cluster CA", e))?;
    crate::secrets::ensure_key_file(&pki)?;
    let node = ca
        .issue(&Identity::control(name, 1), NODE_CERT_VALIDITY)
        .map_err(|e| cluster_err("cannot issue this node's certificate", e))?;
    node.save(&pki)
        .map_err(|e| cluster_err("cannot save this node's certificate", e))?;
    let token = JoinToken::generate(&ca.ca_hash()).map_err(|e| cluster_err("join token", e))?;
    crate::files::write_file_atomic(&data_dir.join("join.token"), token.to_string().as_bytes(), 0o600)
        .map_err(|e| cluster_err("cannot write join.token", e))?;
    crate::files::load_or_create_token(admin_token_path)?;
    save_cluster_file(
        data_dir,
        &ClusterFile {
            name: name.to_owned(),
            raft_id: 1,
        },
    )?;
    tracing::info!(
        member = name,
        "initialised a new cluster (CA, join token, admin token)"
    );
    Ok(())
}

/// First start of a node joining an existing cluster; returns the admitting node's answer.
async fn join_cluster(
    data_dir: &Path,
    cfg: &ClusterConfig,
    join: &JoinConfig,
    meta: &MemberInfo,
    admin_token_path: &Path,
) -> Result<JoinResponse, ControlError> {
    let token: JoinToken = join.token.trim().parse().map_err(|e| cluster_err("--token", e))?;
    let key = NodeKey::generate().map_err(|e| cluster_err("cannot generate a key", e))?;
    let csr = key
        .csr(&Identity::control(&cfg.name, 1))
        .map_err(|e| cluster_err("cannot make a signing request", e))?;
    let req = JoinRequest {
        token_secret: String::new(),
        name: cfg.name.clone(),
        csr_pem: csr,
        peer_addr: meta.peer_addr.clone(),
        api_url: meta.api_url.clone(),
    };
    tracing::info!(server = %join.server, member = %cfg.name, "joining the cluster");
    let resp = join_with_retry(&join.server, &token, req).await?;
    let handover: Handover = serde_json::from_value(resp.handover.clone())
        .map_err(|e| cluster_err("the join answer lacks the cluster secrets", e))?;
    let pki = pki_dir(data_dir);
    let node = NodeCert {
        cert_pem: resp.cert_pem.clone(),
        key_pem: key.key_pem(),
        ca_pem: resp.ca_pem.clone(),
    };
    node.save(&pki)
        .map_err(|e| cluster_err("cannot save this node's certificate", e))?;
    crate::files::write_file_atomic(
        &pki.join(skiff_pki::pki::CA_KEY_FILE),
        handover.ca_key_pem.as_bytes(),
        0o600,
    )
    .map_err(|e| cluster_err("cannot save the CA key", e))?;
    ClusterCa::load(&pki).map_err(|e| cluster_err("the CA handed over does not load", e))?;
    if handover.secrets_key.is_empty() {
        return Err(cluster_err(
            "the admitting member handed over no secrets key",
            "upgrade it to a release that encrypts secrets, then join again",
        ));
    }
    crate::secrets::write_key_file(&pki, &handover.secrets_key)?;
    crate::files::write_file_atomic(
        &data_dir.join("join.token"),
        handover.join_token.as_bytes(),
        0o600,
    )
    .map_err(|e| cluster_err("cannot write join.token", e))?;
    crate::files::write_file_atomic(admin_token_path, handover.admin_token.as_bytes(), 0o600)
        .map_err(|e| cluster_err("cannot write admin.token", e))?;
    save_cluster_file(
        data_dir,
        &ClusterFile {
            name: cfg.name.clone(),
            raft_id: resp.raft_id,
        },
    )?;
    tracing::info!(member = %cfg.name, raft_id = resp.raft_id, members = resp.members.len(), "joined as a learner");
    Ok(resp)
}

/// Refusals that go away by themselves (another member still catching up, an election, a member
/// still starting), as the admitting member words them.
const PASSING_REFUSALS: [&str; 3] = ["in progress", "no leader is known", "still starting"];
/// How long a join keeps retrying passing refusals and unreachable members.
const JOIN_RETRY_FOR: Duration = Duration::from_secs(120);

/// Joins through `server`, retrying while the refusal is a passing one (several members started
/// at once queue up this way) or the member cannot be reached yet.
async fn join_with_retry(
    server: &str,
    token: &JoinToken,
    req: JoinRequest,
) -> Result<JoinResponse, ControlError> {
    let deadline = tokio::time::Instant::now() + JOIN_RETRY_FOR;
    let mut pause = Duration::from_millis(200);
    loop {
        let err = match skiff_peer::transport::join(server, token, req.clone()).await {
            Ok(resp) => return Ok(resp),
            Err(e) => e,
        };
        let passing = match &err {
            skiff_peer::PeerError::JoinRefused { reason, .. } => {
                PASSING_REFUSALS.iter().any(|p| reason.contains(p))
            }
            skiff_peer::PeerError::Connect { .. } | skiff_peer::PeerError::Timeout { .. } => true,
            _ => false,
        };
        if !passing || tokio::time::Instant::now() + pause > deadline {
            return Err(cluster_err(&format!("joining through {server}"), err));
        }
        tracing::info!(%server, error = %err, "join not possible yet; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(3));
    }
}
