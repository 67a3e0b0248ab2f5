//! `POST /api/v1/join`: agents and gateways trade a join token for a node certificate.
//!
//! The token is either one made by `skiff token create` (`<id>.<secret>`: a [`JoinToken`]
//! object named `<id>` holds the secret's SHA-256 and an expiry; deleting it revokes the token)
//! or the cluster's join token (`join.token`, which also admits control nodes). The caller
//! checked our CA against the token's CA hash during the TLS handshake before sending anything;
//! we check the secret, then sign the caller's key with the identity it asked for.
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use skiff_api::{JoinToken, Kind, NodeJoinRequest, NodeJoinResponse, NodeRenewRequest, Object};
use skiff_pki::{ClusterCa, Identity};

use crate::conn::Conn;
use crate::digest::sha256_hex;
use crate::error::ApiError;
use crate::plane::ControlPlane;

fn refused(message: String) -> ApiError {
    ApiError::new(skiff_api::ErrorCode::JoinRefused, message)
}

/// Checks `secret` (the part of a token after `::`); the `JoinToken` object it belongs to, or
/// `None` for the cluster's join token.
pub(crate) async fn check_token(plane: &ControlPlane, secret: &str) -> Result<Option<JoinToken>, ApiError> {
    let Some((id, secret)) = secret.split_once('.') else {
        let cluster = std::fs::read_to_string(plane.inner.config.data_dir.join("join.token"))
            .map_err(|e| ApiError::internal(format!("cannot read join.token: {e}")))?;
        let cluster: skiff_pki::JoinToken = cluster
            .parse()
            .map_err(|e| ApiError::internal(format!("join.token is damaged: {e}")))?;
        return if cluster.secret_matches(secret) {
            Ok(None)
        } else {
            Err(refused(
                "the join token is not valid for this cluster: use a token from `skiff token create` \
                 or the cluster's join.token"
                    .into(),
            ))
        };
    };
    // A revoked token must not work on any member: read at the leader's commit index.
    plane.read_barrier().await?;
    let token = match plane.inner.reader.get(Kind::JoinToken, None, id) {
        Ok(Object::JoinToken(t)) => t,
        _ => {
            return Err(refused(format!(
                "join token {id:?} does not exist: it was revoked (`skiff token delete`) or never \
                 made; make a new one with `skiff token create`"
            )));
        }
    };
    let given = sha256_hex(secret);
    if !crate::digest::constant_time_eq(given.as_bytes(), token.spec.secret_hash.as_bytes()) {
        return Err(refused(format!(
            "join token {id:?}: the secret does not match; copy the whole token `skiff token create` printed"
        )));
    }
    if let Some(expired) = expired_at(&token, SystemTime::now()) {
        return Err(refused(format!(
            "join token {id:?} expired at {expired}; make a new one with `skiff token create --ttl DURATION`"
        )));
    }
    Ok(Some(token))
}

/// The expiry time of `token` if it is past at `now`.
pub(crate) fn expired_at(token: &JoinToken, now: SystemTime) -> Option<String> {
    let at = token.spec.expires.as_deref()?;
    match humantime::parse_rfc3339(at) {
        Ok(t) if t > now => None,
        // Unparseable never passes validation; treat it as expired rather than eternal.
        _ => Some(at.to_owned()),
    }
}

/// `POST /api/v1/join`.
#[tracing::instrument(skip_all, fields(node = %req.name, role = %req.role))]
pub(crate) async fn join_node(
    State(plane): State<ControlPlane>,
    conn: Option<axum::Extension<Conn>>,
    Json(req): Json<NodeJoinRequest>,
) -> Result<Json<NodeJoinResponse>, ApiError> {
    if !conn.is_some_and(|c| c.tls) {
        return Err(ApiError::bad_request(
            "joins are accepted over https only (the token's secret must not cross the network in clear): use an https:// server URL",
        ));
    }
    let identity = match req.role.as_str() {
        "agent" => Identity::agent(&req.name),
        "gateway" => Identity::gateway(&req.name),
        other => {
            return Err(ApiError::bad_request(format!(
                "role {other:?} cannot join here: use `agent` or `gateway` (control nodes join through the peer port with `skiff server --join`)"
            )));
        }
    };
    identity
        .validate()
        .map_err(|e| ApiError::bad_request(format!("name: {e}")))?;
    let token = check_token(&plane, &req.token).await?;
    // A registered node's name is taken, live or not: a second agent under it would fight over
    // its pods, and a disconnected node's identity is not for whoever holds a join token. The
    // operator frees it by deleting the node, or makes a token for exactly this replacement.
    let replaces = token.as_ref().and_then(|t| t.spec.replaces.as_deref());
    if req.role == "agent"
        && let Ok(Object::Node(n)) = plane.inner.reader.get(Kind::Node, None, &req.name)
        && replaces != Some(req.name.as_str())
    {
        let state = if n.status.ready {
            "registered and Ready (its agent is heartbeating)"
        } else {
            "registered (not Ready now)"
        };
        return Err(ApiError::new(
            skiff_api::ErrorCode::NodeNameTaken,
            format!(
                "node {:?} is {state}: pick another --name; or, to replace that node, stop its \
                 agent and run `skiff delete node {}`, or join with a token from \
                 `skiff token create --replace {}`",
                req.name, req.name, req.name
            ),
        ));
    }
    wait_past_revocation(&plane, identity.kind(), &req.name).await;
    let ca = ClusterCa::load(&crate::cluster::pki_dir(&plane.inner.config.data_dir))
        .map_err(|e| ApiError::internal(format!("this control node cannot load the CA: {e}")))?;
    let cert_pem = ca
        .sign(&req.csr_pem, &identity, plane.inner.config.node_cert_lifetime)
        .map_err(|e| ApiError::bad_request(format!("csrPem: {e}")))?;
    tracing::info!(node = %req.name, role = %req.role, "issued a node certificate");
    Ok(Json(NodeJoinResponse {
        cert_pem,
        ca_pem: ca.cert_pem().to_owned(),
    }))
}

/// Certificates are refused when issued at or before their identity's revocation, to the second:
/// a certificate for a name revoked this very second waits for the next one.
async fn wait_past_revocation(plane: &ControlPlane, role: &str, name: &str) {
    let key = skiff_api::revocation_name(role, name);
    let Ok(Object::Revocation(r)) = plane.inner.reader.get(Kind::Revocation, None, &key) else {
        return;
    };
    let Ok(at) = humantime::parse_rfc3339(&r.spec.revoked_at) else {
        return;
    };
    let next = at + Duration::from_secs(1);
    if let Ok(wait) = next.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(10)).await;
    }
}

/// `POST /api/v1/renew`: a new certificate for the identity of the certificate the caller
/// presents (an agent or gateway whose certificate is not revoked: the access guard checked),
/// signing the CSR in the body.
#[tracing::instrument(skip_all)]
pub(crate) async fn renew_node(
    State(plane): State<ControlPlane>,
    conn: Option<axum::Extension<Conn>>,
    Json(req): Json<NodeRenewRequest>,
) -> Result<Json<NodeJoinResponse>, ApiError> {
    let identity = conn.and_then(|c| c.0.identity).ok_or_else(|| {
        ApiError::bad_request(
            "renewal needs the node certificate being renewed: call over https with it (a bearer \
             token has no certificate to renew)",
        )
    })?;
    if matches!(identity.role, skiff_pki::Role::Control { .. }) {
        return Err(ApiError::bad_request(
            "control members renew through their own CA, not this route",
        ));
    }
    let ca = ClusterCa::load(&crate::cluster::pki_dir(&plane.inner.config.data_dir))
        .map_err(|e| ApiError::internal(format!("this control node cannot load the CA: {e}")))?;
    let cert_pem = ca
        .sign(&req.csr_pem, &identity, plane.inner.config.node_cert_lifetime)
        .map_err(|e| ApiError::bad_request(format!("csrPem: {e}")))?;
    tracing::info!(node = %identity, "renewed a node certificate");
    Ok(Json(NodeJoinResponse {
        cert_pem,
        ca_pem: ca.cert_pem().to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires: Option<&str>) -> JoinToken {
        let mut t = JoinToken::default();
        t.spec.expires = expires.map(str::to_owned);
        t
    }

    #[test]
    fn expiry() {
        let now = humantime::parse_rfc3339("2026-06-01T00:00:00Z").unwrap();
        assert_eq!(expired_at(&token(None), now), None);
        assert_eq!(expired_at(&token(Some("2026-06-02T00:00:00Z")), now), None);
        assert_eq!(
            expired_at(&token(Some("2026-05-31T00:00:00Z")), now).as_deref(),
            Some("2026-05-31T00:00:00Z")
        );
        assert!(expired_at(&token(Some("garbage")), now).is_some());
    }
}
