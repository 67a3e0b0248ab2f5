//! Keeping a node's certificate fresh: [`keep_renewed`] renews it two thirds into its life,
//! while the node serves.
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use skiff_api::{NodeJoinResponse, NodeRenewRequest};
use skiff_pki::{CertSlot, NodeCert, NodeKey};
use tokio::sync::watch;

use crate::client::Client;
use crate::error::ClientError;
use crate::path::ApiPath;

/// The longest wait between two tries of a failed renewal.
const MAX_RETRY: Duration = Duration::from_secs(30);

impl Client {
    /// Asks for a new certificate for the caller's identity (the client must present its
    /// current node certificate) signing `csr_pem`.
    ///
    /// # Errors
    /// [`ClientError`]; 401 when the current certificate was revoked.
    pub async fn renew(&self, csr_pem: String) -> Result<NodeJoinResponse, ClientError> {
        self.post_json(&ApiPath::api().lit("renew"), &NodeRenewRequest { csr_pem })
            .await
    }
}

/// Renews the certificate in `slot` two thirds into its life, for as long as `stop` is false:
/// a new key, a CSR signed by a control node (over `client`, which presents the slot's
/// certificate), the new credentials saved in `dir` and put in the slot. A failed renewal is
/// tried again after a back-off (at most 30 s) while the old certificate still works.
pub async fn keep_renewed(client: Client, dir: PathBuf, slot: CertSlot, mut stop: watch::Receiver<bool>) {
    let mut retry = Duration::from_secs(1);
    loop {
        let wait = slot
            .renew_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match renew_once(&client, &dir, &slot).await {
            Ok(()) => retry = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?retry, "cannot renew the node certificate yet");
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

async fn renew_once(client: &Client, dir: &std::path::Path, slot: &CertSlot) -> Result<(), ClientError> {
    let old = slot.node();
    let identity = old.identity().map_err(|e| ClientError::Config(e.to_string()))?;
    let key = NodeKey::generate().map_err(|e| ClientError::Config(e.to_string()))?;
    let csr = key
        .csr(&identity)
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let answer = client.renew(csr).await?;
    let next = NodeCert {
        cert_pem: answer.cert_pem,
        key_pem: key.key_pem(),
        ca_pem: old.ca_pem.clone(),
    };
    if next.identity().ok().as_ref() != Some(&identity) {
        return Err(ClientError::Config(
            "the control plane renewed the certificate for another identity".into(),
        ));
    }
    next.save(dir)
        .map_err(|e| ClientError::Config(format!("cannot save the renewed certificate: {e}")))?;
    slot.replace(&next)
        .map_err(|e| ClientError::Config(format!("the renewed certificate is unusable: {e}")))?;
    tracing::info!(node = %identity, "node certificate renewed");
    Ok(())
}
