//! The members of the control plane, as `GET /api/v1/members` lists them.
use serde::{Deserialize, Serialize};

/// One row of `GET /api/v1/members`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
