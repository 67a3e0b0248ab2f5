//! The artifact routes: upload, download, and copies between members.
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::ApiError;
use crate::plane::ControlPlane;

/// Stores an uploaded component and copies it to the other members.
pub(super) async fn upload_artifact(
    State(p): State<ControlPlane>,
    body: Bytes,
) -> Result<Response, ApiError> {
    room(&p, &body)?;
    let digest = p.inner.artifacts.put(&body).await.map_err(artifact_error)?;
    tracing::info!(%digest, size = body.len(), "artifact stored");
    let size = body.len();
    p.replicate_artifact(&digest, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "digest": digest, "size": size })),
    )
        .into_response())
}

/// Refuses an artifact that would leave less than the member's free-space watermark.
fn room(p: &ControlPlane, body: &[u8]) -> Result<(), ApiError> {
    let config = &p.inner.config;
    crate::disk::ensure_room(&config.data_dir, config.min_free_bytes, body.len() as u64)?;
    Ok(())
}

/// A copy of an artifact from another member (any member takes it; the digest must match).
pub(super) async fn copy_artifact(
    State(p): State<ControlPlane>,
    Path(digest): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    room(&p, &body)?;
    let stored = p.inner.artifacts.put(&body).await.map_err(artifact_error)?;
    if stored != digest {
        return Err(ApiError::bad_request(format!(
            "the artifact's content has digest {stored}, not {digest}"
        )));
    }
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "digest": digest }))).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ArtifactQuery {
    /// Only this member's store (no fetching from the others).
    #[serde(default)]
    local: bool,
}

/// An artifact's bytes (from another member when this one lacks it, unless `?local=true`).
pub(super) async fn download_artifact(
    State(p): State<ControlPlane>,
    Path(digest): Path<String>,
    Query(q): Query<ArtifactQuery>,
) -> Result<Response, ApiError> {
    let bytes = match p.inner.artifacts.get(&digest).await {
        Ok(b) => b,
        Err(crate::artifacts::ArtifactError::NotFound(_)) if !q.local => {
            match p.fetch_artifact_from_peers(&digest).await {
                Some(b) => b,
                None => return Err(artifact_error(crate::artifacts::ArtifactError::NotFound(digest))),
            }
        }
        Err(e) => return Err(artifact_error(e)),
    };
    Ok(([(axum::http::header::CONTENT_TYPE, "application/wasm")], bytes).into_response())
}

/// The answer to a refused artifact: 413 too large, 422 `InvalidComponent` (with the
/// validator's message and offset in `details`), 400 for a bad digest, 404 when absent.
fn artifact_error(e: crate::artifacts::ArtifactError) -> ApiError {
    use crate::artifacts::ArtifactError as A;
    match e {
        A::TooLarge { .. } => ApiError::new(skiff_api::ErrorCode::TooLarge, e.to_string()),
        A::Invalid {
            ref digest,
            size,
            ref invalid,
        } => {
            tracing::info!(%digest, size, error = %invalid, "artifact refused");
            let details = serde_json::json!({
                "digest": digest,
                "size": size,
                "problem": problem(invalid),
                "validator": invalid.validator_message(),
                "offset": invalid.offset(),
            });
            let mut answer = ApiError::new(skiff_api::ErrorCode::InvalidComponent, e.to_string());
            answer.body.details = Some(details);
            answer
        }
        A::BadDigest(_) => ApiError::bad_request(e.to_string()),
        A::NotFound(_) => ApiError::not_found(e.to_string()),
        A::Io(io) => ApiError::internal(io),
    }
}

/// The kind of problem, for `details.problem`.
fn problem(invalid: &skiff_artifact::InvalidArtifact) -> &'static str {
    use skiff_artifact::InvalidArtifact as I;
    match invalid {
        I::Empty => "Empty",
        I::NotWasm { .. } => "NotWasm",
        I::CoreModule => "CoreModule",
        I::Invalid { .. } => "Invalid",
    }
}
