//! Joining: an agent or gateway trades a join token for a node certificate, once, and keeps it.
use std::path::Path;
use std::time::Duration;

use skiff_api::{NodeJoinRequest, NodeJoinResponse};
use skiff_pki::{Identity, JoinToken, NodeCert, NodeKey, Role};

use crate::client::unreachable;
use crate::error::ClientError;
use crate::servers::{https, parse_servers};

/// How long one join request may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The node credentials kept in `dir` (`node.crt`, `node.key`, `ca.crt`), or new ones obtained
/// from the control plane at `servers` with `token` when `dir` holds none yet.
///
/// Kept credentials need no control plane (a worker restarting offline still has its identity).
/// They must be for `identity` and, when a token is given, for the token's cluster.
///
/// # Errors
/// [`ClientError::Join`] for a malformed token, credentials of another node or cluster, a
/// server whose CA is not the token's, or a token the control plane refuses (expired, revoked,
/// wrong secret); [`ClientError::Unreachable`] when no server answers (retry later).
pub async fn node_credentials(
    dir: &Path,
    servers: &str,
    token: Option<&str>,
    identity: &Identity,
) -> Result<NodeCert, ClientError> {
    let token = token
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            t.parse::<JoinToken>()
                .map_err(|e| ClientError::Join(format!("--token: {e}")))
        })
        .transpose()?;
    if dir.join(skiff_pki::pki::NODE_CERT_FILE).exists() {
        let cert = NodeCert::load(dir).map_err(|e| ClientError::Join(format!("{}: {e}", dir.display())))?;
        let held = cert
            .identity()
            .map_err(|e| ClientError::Join(format!("{}: {e}", dir.display())))?;
        if held != *identity {
            return Err(ClientError::Join(format!(
                "{} holds the certificate of {held}, not {identity}: start with that name, or use another state directory",
                dir.display()
            )));
        }
        if let Some(t) = &token
            && cert.ca_hash().ok().as_deref() != Some(t.ca_hash.as_str())
        {
            return Err(ClientError::Join(format!(
                "{} belongs to another cluster than the token's (CA {}…): use a fresh state directory to join this one",
                dir.display(),
                &t.ca_hash[..12]
            )));
        }
        return Ok(cert);
    }
    let Some(token) = token else {
        return Err(ClientError::Join(format!(
            "{} has no node certificate yet: pass --token (from `skiff token create`, or join.token of a control node) to join",
            dir.display()
        )));
    };
    let role = match identity.role {
        Role::Agent => "agent",
        Role::Gateway => "gateway",
        Role::Control { .. } => {
            return Err(ClientError::Join(
                "control nodes join through the peer port (`skiff server --join`)".into(),
            ));
        }
    };
    let key = NodeKey::generate().map_err(|e| ClientError::Config(e.to_string()))?;
    let csr = key
        .csr(identity)
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let request = NodeJoinRequest {
        token: token.secret.clone(),
        name: identity.name.clone(),
        role: role.into(),
        csr_pem: csr,
    };
    let answer = join(servers, &token, &request).await?;
    let cert = NodeCert {
        cert_pem: answer.cert_pem,
        key_pem: key.key_pem(),
        ca_pem: answer.ca_pem,
    };
    if cert.ca_hash().ok().as_deref() != Some(token.ca_hash.as_str()) {
        return Err(ClientError::Join(
            "the control plane answered with another CA than the token names".into(),
        ));
    }
    cert.save(dir)
        .map_err(|e| ClientError::Join(format!("cannot save the node certificate: {e}")))?;
    tracing::info!(node = %identity.name, dir = %dir.display(), "joined the cluster: node certificate saved");
    Ok(cert)
}

/// Sends the join request to each server in turn until one answers.
async fn join(
    servers: &str,
    token: &JoinToken,
    request: &NodeJoinRequest,
) -> Result<NodeJoinResponse, ClientError> {
    let (tls, pin) =
        skiff_pki::https::join_https_client_config(token).map_err(|e| ClientError::Config(e.to_string()))?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(3))
        .timeout(JOIN_TIMEOUT)
        .build()
        .map_err(|e| ClientError::Config(e.to_string()))?;
    let mut last = None;
    for base in parse_servers(servers)? {
        let base = https(&base);
        let url = format!("{base}/api/v1/join");
        let resp = match http.post(&url).json(request).send().await {
            Ok(r) => r,
            Err(_) if pin.mismatch().is_some() => {
                return Err(ClientError::Join(format!(
                    "the server at {base} is not the cluster the token names (its CA hashes to {}…, the token says {}…): check --server and --token",
                    pin.mismatch()
                        .unwrap_or_default()
                        .chars()
                        .take(12)
                        .collect::<String>(),
                    &token.ca_hash[..12]
                )));
            }
            Err(e) => {
                last = Some(unreachable(&base, &e));
                continue;
            }
        };
        if resp.status().is_success() {
            return resp.json().await.map_err(|e| ClientError::Decode {
                url,
                message: e.to_string(),
            });
        }
        return Err(match crate::client::error_from(resp, &url, &base).await {
            ClientError::Unauthorized { message, .. } => ClientError::Join(format!(
                "the control plane at {base} refused to let this node join: {message}"
            )),
            other => other,
        });
    }
    Err(last.unwrap_or_else(|| ClientError::Config("no server to join".into())))
}
