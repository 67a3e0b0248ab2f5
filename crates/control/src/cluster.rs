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
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiff_peer::transport::{JoinMember, JoinRequest, JoinResponse, PeerHandler, PeerTransport};
use skiff_pki::{ClusterCa, Identity, JoinToken, NodeCert, NodeKey};
use skiff_raft::{MembershipChange, RaftHandle, RaftStatus};

use crate::error::{ApiError, ControlError};
use crate::plane::{ControlPlane, Output};

/// How long node certificates are valid.
const NODE_CERT_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// How often the peer addresses are synced with the replicated membership.
const MEMBER_SYNC: Duration = Duration::from_millis(200);

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
struct Handover {
    ca_key_pem: String,
    admin_token: String,
    join_token: String,
    /// The cluster secrets key (`pki/secrets.key`, base64).
    #[serde(default)]
    secrets_key: String,
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
    pub(crate) handler: Arc<Handler>,
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
    crate::plane::write_file_atomic(&cluster_file(data_dir), &bytes, 0o644)
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
    let handler = Arc::new(Handler {
        raft: OnceLock::new(),
        plane: OnceLock::new(),
    });
    Ok(Prepared {
        raft_id,
        voters,
        meta,
        transport: Some(transport),
        peer: Some(PeerSide {
            listener,
            tls: server_tls,
            handler,
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
    crate::plane::write_file_atomic(&data_dir.join("join.token"), token.to_string().as_bytes(), 0o600)
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
    crate::plane::write_file_atomic(&data_dir.join("join.token"), token.to_string().as_bytes(), 0o600)
        .map_err(|e| cluster_err("cannot write join.token", e))?;
    crate::plane::load_or_create_token(admin_token_path)?;
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
    crate::plane::write_file_atomic(
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
    crate::plane::write_file_atomic(
        &data_dir.join("join.token"),
        handover.join_token.as_bytes(),
        0o600,
    )
    .map_err(|e| cluster_err("cannot write join.token", e))?;
    crate::plane::write_file_atomic(admin_token_path, handover.admin_token.as_bytes(), 0o600)
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

/// Receives what arrives on the peer port.
pub(crate) struct Handler {
    pub(crate) raft: OnceLock<RaftHandle<Output>>,
    pub(crate) plane: OnceLock<ControlPlane>,
}

impl PeerHandler for Handler {
    fn raft(&self, msg: raft_proto::Message) {
        if let Some(raft) = self.raft.get()
            && let Err(e) = raft.step(msg)
        {
            tracing::debug!(error = %e, "dropped an inbound raft message");
        }
    }

    fn join(&self, req: JoinRequest) -> skiff_peer::transport::BoxFuture<'_, Result<JoinResponse, String>> {
        Box::pin(async move {
            let plane = self
                .plane
                .get()
                .ok_or_else(|| "this control node is still starting; retry".to_string())?;
            plane.handle_join(req).await
        })
    }
}

/// raft-rs's message type, as the peer handler receives it.
mod raft_proto {
    pub(crate) use skiff_raft::eraftpb::Message;
}

/// Keeps the transport's peer addresses equal to the replicated membership.
pub(crate) fn spawn_member_sync(raft: RaftHandle<Output>, transport: Arc<PeerTransport>, self_id: u64) {
    tokio::spawn(async move {
        let mut known: BTreeMap<u64, String> = BTreeMap::new();
        loop {
            let status = raft.status();
            if status.stopped {
                return;
            }
            let mut want = BTreeMap::new();
            for (id, meta) in &status.members {
                if *id == self_id {
                    continue;
                }
                if let Some(info) = MemberInfo::decode(meta) {
                    want.insert(*id, info.peer_addr);
                }
            }
            for (id, addr) in &want {
                if known.get(id) != Some(addr) {
                    tracing::info!(peer = id, %addr, "peer address");
                    transport.set_peer(*id, addr.clone());
                }
            }
            for id in known.keys() {
                if !want.contains_key(id) {
                    tracing::info!(peer = id, "peer removed");
                    transport.remove_peer(*id);
                }
            }
            known = want;
            tokio::time::sleep(MEMBER_SYNC).await;
        }
    });
}

/// One row of `GET /api/v1/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// Member name.
    pub name: String,
    /// Raft id.
    pub id: u64,
    /// `voter` or `learner`.
    pub role: String,
    /// Whether it leads.
    pub leader: bool,
    /// Peer address.
    pub peer_addr: String,
    /// API URL.
    pub api_url: String,
    /// Highest log index known replicated to it (reported by the leader only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<u64>,
}

pub(crate) fn member_views(s: &RaftStatus) -> Vec<MemberView> {
    let mut out = Vec::new();
    for id in s.voters.iter().chain(&s.learners) {
        let info = s.members.get(id).and_then(|m| MemberInfo::decode(m));
        let info = info.unwrap_or(MemberInfo {
            name: format!("member-{id}"),
            peer_addr: String::new(),
            api_url: String::new(),
        });
        out.push(MemberView {
            name: info.name,
            id: *id,
            role: if s.voters.contains(id) { "voter" } else { "learner" }.into(),
            leader: s.leader == Some(*id),
            peer_addr: info.peer_addr,
            api_url: info.api_url,
            matched: s.progress.get(id).copied(),
        });
    }
    out
}

impl ControlPlane {
    /// This member's name.
    pub fn member_name(&self) -> String {
        let s = self.inner.raft.status();
        s.members
            .get(&s.id)
            .and_then(|m| MemberInfo::decode(m))
            .map(|m| m.name)
            .unwrap_or_else(|| format!("member-{}", s.id))
    }

    /// The leader's API URL, if a leader is known and published one.
    pub(crate) fn leader_api_url(&self) -> Option<String> {
        let s = self.inner.raft.status();
        let leader = s.leader?;
        let info = MemberInfo::decode(s.members.get(&leader)?)?;
        (!info.api_url.is_empty()).then(|| skiff_pki::https::https_url(&info.api_url))
    }

    /// The members as `GET /api/v1/members` shows them.
    pub fn members(&self) -> Vec<MemberView> {
        member_views(&self.inner.raft.status())
    }

    /// Removes the member named `name`.
    ///
    /// # Errors
    /// 404 for an unknown name; 409 for a refused change (the last voter, a change in progress).
    pub async fn remove_member(&self, name: &str) -> Result<MemberView, ApiError> {
        let member = self
            .members()
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| {
                let names: Vec<String> = self.members().into_iter().map(|m| m.name).collect();
                ApiError::not_found(format!(
                    "no control member named {name:?}; members are: {}",
                    names.join(", ")
                ))
            })?;
        let status = self.inner.raft.status();
        match self
            .inner
            .raft
            .change_membership(MembershipChange::Remove { id: member.id })
            .await
        {
            Ok(_) => {
                tracing::info!(member = name, id = member.id, "member removed");
                self.propose(vec![crate::access::revocation_op(
                    "control",
                    name,
                    "member removed",
                )])
                .await?;
                Ok(member)
            }
            // A leader cannot remove itself: with another voter to take over it hands leadership
            // over and refuses; the new leader then does the removal.
            Err(skiff_raft::RaftError::MembershipRefused(_))
                if member.id == status.id && status.voters.len() > 1 =>
            {
                self.remove_on_new_leader(name, member.id).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends a removal to the leader that took over from this node.
    async fn remove_on_new_leader(&self, name: &str, old_id: u64) -> Result<MemberView, ApiError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let url = loop {
            let s = self.inner.raft.status();
            if let Some(l) = s.leader.filter(|l| *l != old_id)
                && let Some(url) = self.leader_api_url()
            {
                tracing::info!(
                    member = name,
                    new_leader = l,
                    "leadership handed over; removing there"
                );
                break url;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ApiError::no_leader(
                    "this member handed leadership over to remove itself, but no new leader took over in 10 s; retry",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let resp = self
            .inner
            .http
            .delete(format!("{}/api/v1/members/{name}", url.trim_end_matches('/')))
            .bearer_auth(&self.inner.admin_token)
            .header(crate::forward::FORWARDED_HEADER, self.member_name())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| {
                ApiError::unavailable(format!(
                    "the new leader at {url} did not confirm the removal: {e}"
                ))
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(ApiError::internal)
        } else {
            let body: skiff_api::ErrorBody = serde_json::from_slice(&bytes).unwrap_or(skiff_api::ErrorBody {
                code: skiff_api::ErrorCode::Unavailable,
                message: String::from_utf8_lossy(&bytes).into_owned(),
                details: None,
            });
            Err(ApiError {
                status: axum::http::StatusCode::from_u16(status.as_u16())
                    .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
                body,
            })
        }
    }

    /// Decides a join request (on the leader; a follower relays it to the leader).
    async fn handle_join(&self, req: JoinRequest) -> Result<JoinResponse, String> {
        let pki = pki_dir(&self.inner.config.data_dir);
        let token_path = self.inner.config.data_dir.join("join.token");
        let token: JoinToken = std::fs::read_to_string(&token_path)
            .map_err(|e| format!("this control node has no join token ({e}); it cannot admit members"))?
            .trim()
            .parse()
            .map_err(|e| format!("this control node's join token is damaged: {e}"))?;
        if !token.secret_matches(&req.token_secret) {
            tracing::warn!(member = %req.name, "join refused: wrong token secret");
            return Err("join refused: the token's secret is not this cluster's join token; copy join.token from a control node's state dir".into());
        }
        if !self.is_leader() {
            let s = self.inner.raft.status();
            let leader = s
                .leader
                .and_then(|l| s.members.get(&l))
                .and_then(|m| MemberInfo::decode(m))
                .ok_or("no leader is known right now; retry the join shortly")?;
            tracing::info!(member = %req.name, leader = %leader.peer_addr, "relaying a join to the leader");
            return skiff_peer::transport::join(&leader.peer_addr, &token, req)
                .await
                .map_err(|e| format!("relaying the join to the leader failed: {e}"));
        }
        skiff_pki::validate_name(&req.name).map_err(|e| e.to_string())?;
        let members = self.members();
        if let Some(m) = members.iter().find(|m| m.name == req.name) {
            return Err(format!(
                "a control member named {:?} already exists (raft id {}); remove it first with `skiff member remove {}` or pick another --name",
                req.name, m.id, req.name
            ));
        }
        let status = self.inner.raft.status();
        if status.pending_membership_change || !status.learners.is_empty() {
            return Err("another membership change is in progress (a member is still catching up); retry the join in a few seconds".into());
        }
        // Random ids: a removed member's id is never handed out again.
        let raft_id = loop {
            let id = rand::random::<u64>() >> 12;
            if id > 1 && !status.members.contains_key(&id) {
                break id;
            }
        };
        let ca = ClusterCa::load(&pki).map_err(|e| format!("this control node cannot load the CA: {e}"))?;
        let cert_pem = ca
            .sign(
                &req.csr_pem,
                &Identity::control(&req.name, raft_id),
                NODE_CERT_VALIDITY,
            )
            .map_err(|e| format!("cannot sign the certificate request: {e}"))?;
        let info = MemberInfo {
            name: req.name.clone(),
            peer_addr: req.peer_addr.clone(),
            api_url: req.api_url.clone(),
        };
        let membership = self
            .inner
            .raft
            .change_membership(MembershipChange::AddLearner {
                id: raft_id,
                meta: info.encode(),
            })
            .await
            .map_err(|e| format!("cannot add the member: {e}"))?;
        tracing::info!(member = %req.name, raft_id, "member added as a learner");
        let ca_key_pem = std::fs::read_to_string(pki.join(skiff_pki::pki::CA_KEY_FILE))
            .map_err(|e| format!("cannot read the CA key: {e}"))?;
        let secrets_key = crate::secrets::read_key_text(&pki).map_err(|e| e.to_string())?;
        let handover = Handover {
            secrets_key,
            ca_key_pem,
            admin_token: self.inner.admin_token.clone(),
            join_token: token.to_string(),
        };
        let members = membership
            .meta
            .iter()
            .filter_map(|(id, m)| {
                let i = MemberInfo::decode(m)?;
                Some(JoinMember {
                    raft_id: *id,
                    name: i.name,
                    peer_addr: i.peer_addr,
                    api_url: i.api_url,
                })
            })
            .collect();
        Ok(JoinResponse {
            raft_id,
            cert_pem,
            ca_pem: ca.cert_pem().to_owned(),
            members,
            handover: serde_json::to_value(&handover).map_err(|e| e.to_string())?,
        })
    }

    /// Promotes learners whose log caught up with the leader's (leader only; one at a time).
    pub(crate) async fn promote_learners(&self) {
        let s = self.inner.raft.status();
        if s.leader != Some(s.id) || s.pending_membership_change {
            return;
        }
        for id in &s.learners {
            let matched = s.progress.get(id).copied().unwrap_or(0);
            if matched >= s.commit {
                match self
                    .inner
                    .raft
                    .change_membership(MembershipChange::Promote { id: *id })
                    .await
                {
                    Ok(_) => tracing::info!(raft_id = id, "caught-up learner promoted to voter"),
                    Err(e) => tracing::warn!(raft_id = id, error = %e, "cannot promote a learner yet"),
                }
                return;
            }
        }
    }
}
