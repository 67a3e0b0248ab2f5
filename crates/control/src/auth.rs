//! Bearer-token authentication.
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;
use crate::plane::ControlPlane;

/// Rejects requests without the admin bearer token (health endpoints are open).
pub(crate) async fn require_token(
    State(plane): State<ControlPlane>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return Ok(next.run(req).await);
    }
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "missing bearer token: send `Authorization: Bearer <token>` (the admin token is in <state dir>/admin.token)",
        ));
    };
    if !constant_time_eq(given.trim().as_bytes(), plane.inner.admin_token.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "invalid bearer token",
        ));
    }
    Ok(next.run(req).await)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
