//! The members of the control plane at run time: the peer port's handler (Raft messages, member
//! joins), keeping the transport's addresses equal to the replicated membership, and the
//! membership operations (`GET /api/v1/members`, add, remove).
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use skiff_peer::transport::{JoinMember, JoinRequest, JoinResponse, PeerHandler, PeerTransport};
use skiff_pki::{ClusterCa, Identity, JoinToken};
use skiff_raft::{MembershipChange, RaftHandle, RaftStatus};

use crate::cluster::{Handover, MemberInfo, NODE_CERT_VALIDITY, pki_dir};
use crate::error::ApiError;
use crate::plane::{ControlPlane, Output};
pub use skiff_api::MemberView;

/// How often the peer addresses are synced with the replicated membership.
const MEMBER_SYNC: Duration = Duration::from_millis(200);

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

    fn snapshot(&self, msg: raft_proto::Message) -> Result<skiff_raft::snapshot::IncomingSnapshot, String> {
        let raft = self
            .raft
            .get()
            .ok_or_else(|| "this control node is still starting; retry".to_string())?;
        raft.receive_snapshot(msg).map_err(|e| e.to_string())
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
            .header(crate::headers::FORWARDED_HEADER, self.member_name())
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
