//! Writes sent to a follower are forwarded to the leader.
//!
//! Every control node serves reads from its own state (after a ReadIndex barrier, or at once with
//! `?consistency=stale`) and watches from its own event stream. A write (anything but GET/HEAD) on
//! a node that does not lead is proxied to the leader's API URL, which the leader published in its
//! member meta. The answer tells the client whether retrying elsewhere is safe:
//!
//! | situation | answer |
//! |---|---|
//! | no leader known, or the leader cannot be connected to | 503 `NoLeader` — not applied, retry |
//! | a forwarded request reaches a node that no longer leads | 503 `NoLeader` — not applied, retry |
//! | the leader took the request but its answer was lost | 503 `Unavailable` — outcome unknown |
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::headers::FORWARDED_HEADER;
use crate::plane::ControlPlane;

/// How long a forwarded write may take at the leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// Request headers passed on to the leader.
const PASSED: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::ACCEPT,
    HeaderName::from_static(crate::headers::REQUEST_ID_HEADER),
];

/// Forwards writes to the leader when this node does not lead (after authentication).
pub(crate) async fn forward_writes(State(plane): State<ControlPlane>, req: Request, next: Next) -> Response {
    // Artifact copies between members are for the receiving member itself.
    let artifact_copy = *req.method() == Method::PUT && req.uri().path().starts_with("/api/v1/artifacts/");
    if matches!(*req.method(), Method::GET | Method::HEAD) || artifact_copy || plane.is_leader() {
        return next.run(req).await;
    }
    if req.headers().contains_key(FORWARDED_HEADER) {
        return ApiError::no_leader(
            "the request was forwarded to this node as the leader, but it no longer leads; retry",
        )
        .into_response();
    }
    let Some(leader_url) = plane.leader_api_url() else {
        return ApiError::no_leader(
            "no leader is known to this control node (election in progress, or this node is cut off from a quorum); retry shortly or use another control node",
        )
        .into_response();
    };
    match proxy(&plane, &leader_url, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn proxy(plane: &ControlPlane, leader_url: &str, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{path}", leader_url.trim_end_matches('/'));
    let limit = plane.inner.artifacts.max_bytes() + (1 << 20);
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
    let mut out = plane
        .inner
        .http
        .request(parts.method.clone(), &url)
        .header(FORWARDED_HEADER, plane.member_name())
        .timeout(FORWARD_TIMEOUT)
        .body(body);
    for name in PASSED {
        if let Some(v) = parts.headers.get(&name) {
            out = out.header(name, v);
        }
    }
    tracing::debug!(method = %parts.method, %url, "forwarding a write to the leader");
    let resp = out.send().await.map_err(|e| {
        if e.is_connect() {
            ApiError::no_leader(format!(
                "cannot connect to the leader at {leader_url}: {e}; retry shortly"
            ))
        } else {
            tracing::warn!(%url, error = %e, "a forwarded write got no answer from the leader");
            ApiError::unavailable(
                "the leader did not answer a forwarded write; it may or may not have been applied: read the object to check",
            )
        }
    })?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = resp.bytes().await.map_err(|e| {
        tracing::warn!(%url, error = %e, "a forwarded write's answer was cut off");
        ApiError::unavailable(
            "the leader's answer to a forwarded write was cut off; it may or may not have been applied: read the object to check",
        )
    })?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Ok(response)
}
