//! Artifacts on every control member.
//!
//! Artifacts are files beside the Raft state, not in it (components are megabytes; the Raft log
//! carries only their digests). So that any member can serve any artifact and losing a member loses
//! none:
//!
//! - an upload lands on the leader (followers forward writes), which stores it and copies it to the
//!   other members (`PUT /api/v1/artifacts/{digest}`, taken by any member, content-addressed and
//!   checked), and answers only once a majority of the voters hold it;
//! - a member asked for an artifact it lacks (it was down during the upload, or joined later)
//!   fetches it from the others, checks the digest, keeps it, and serves it.
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;

use crate::cluster::MemberInfo;
use crate::error::ApiError;
use crate::headers::FORWARDED_HEADER;
use crate::plane::ControlPlane;

/// How long copying an artifact to one member may take.
const COPY_TIMEOUT: Duration = Duration::from_secs(30);

impl ControlPlane {
    /// The other members' API URLs, by Raft id (voters and learners).
    fn peer_api_urls(&self) -> Vec<(u64, String)> {
        let s = self.inner.raft.status();
        s.members
            .iter()
            .filter(|(id, _)| **id != s.id)
            .filter_map(|(id, meta)| {
                let info = MemberInfo::decode(meta)?;
                (!info.api_url.is_empty()).then(|| {
                    (
                        *id,
                        skiff_pki::https::https_url(info.api_url.trim_end_matches('/')),
                    )
                })
            })
            .collect()
    }

    /// Copies a stored artifact to the other members; succeeds once a majority of the voters
    /// (this member included) hold it.
    pub(crate) async fn replicate_artifact(&self, digest: &str, bytes: Bytes) -> Result<(), ApiError> {
        let status = self.inner.raft.status();
        let peers = self.peer_api_urls();
        if peers.is_empty() {
            return Ok(());
        }
        let copies = peers.iter().map(|(id, url)| {
            let req = self
                .inner
                .http
                .put(format!("{url}/api/v1/artifacts/{digest}"))
                .bearer_auth(&self.inner.admin_token)
                .header(FORWARDED_HEADER, "artifact-copy")
                .timeout(COPY_TIMEOUT)
                .body(bytes.clone());
            async move {
                match req.send().await {
                    Ok(r) if r.status().is_success() => Some(*id),
                    Ok(r) => {
                        tracing::warn!(peer = id, status = %r.status(), %digest, "a member refused an artifact copy");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(peer = id, error = %e, %digest, "cannot copy an artifact to a member");
                        None
                    }
                }
            }
        });
        let holders: Vec<u64> = join_all(copies).await.into_iter().flatten().collect();
        let voters = status.voters.len().max(1);
        let voting_holders = 1 + holders.iter().filter(|id| status.voters.contains(id)).count();
        tracing::info!(%digest, copies = holders.len(), voting_holders, voters, "artifact replicated");
        if voting_holders * 2 > voters {
            Ok(())
        } else {
            Err(ApiError::unavailable(format!(
                "the artifact is stored on {voting_holders} of {voters} voting control members, not a majority; retry the upload when more members are up"
            )))
        }
    }

    /// Fetches an artifact this member lacks from the others; keeps it if its digest checks out.
    pub(crate) async fn fetch_artifact_from_peers(&self, digest: &str) -> Option<Vec<u8>> {
        for (id, url) in self.peer_api_urls() {
            let resp = self
                .inner
                .http
                .get(format!("{url}/api/v1/artifacts/{digest}?local=true"))
                .bearer_auth(&self.inner.admin_token)
                .timeout(COPY_TIMEOUT)
                .send()
                .await;
            let bytes = match resp {
                Ok(r) if r.status().is_success() => match r.bytes().await {
                    Ok(b) => b,
                    Err(_) => continue,
                },
                _ => continue,
            };
            match self.inner.artifacts.put(&bytes).await {
                Ok(d) if d == digest => {
                    tracing::info!(peer = id, %digest, "artifact fetched from another member");
                    return Some(bytes.to_vec());
                }
                Ok(d) => {
                    tracing::warn!(peer = id, %digest, got = %d, "a member sent an artifact with the wrong digest; ignored")
                }
                Err(e) => {
                    tracing::warn!(peer = id, %digest, error = %e, "a member sent an unusable artifact")
                }
            }
        }
        None
    }
}
