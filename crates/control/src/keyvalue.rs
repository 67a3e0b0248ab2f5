//! The key-value routes: stores of a namespace, their keys, and values read, written, deleted and
//! incremented through Raft.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/keyvalue`, `GET /api/v1/namespaces/{ns}/keyvalue` | stores with their key count and size |
//! | `GET /api/v1/namespaces/{ns}/keyvalue/{store}?prefix=P&after=K&limit=N` | one page of keys, in byte order |
//! | `GET /api/v1/namespaces/{ns}/keyvalue/{store}/keys/{key}` | the value (bytes), 404 when absent |
//! | `PUT /api/v1/namespaces/{ns}/keyvalue/{store}/keys/{key}` | set the value to the body |
//! | `DELETE /api/v1/namespaces/{ns}/keyvalue/{store}/keys/{key}` | delete the key (204 also when absent) |
//! | `POST /api/v1/namespaces/{ns}/keyvalue/{store}/keys/{key}` with `{"delta": N}` | add N to the decimal integer the key holds (0 when absent): `{"value": …}` |
//!
//! A key may contain `/` (the rest of the path is the key); other reserved characters are
//! percent-encoded.
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skiff_api::{KeyPage, KeyValueStore, MAX_KV_VALUE_BYTES, kv_key_problem, store_name_problem};
use skiff_state::Op;

use crate::error::ApiError;
use crate::plane::ControlPlane;

/// Most keys one page lists.
const MAX_PAGE: usize = 1000;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct KvQuery {
    #[serde(default)]
    consistency: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Increment {
    delta: i64,
}

async fn barrier(p: &ControlPlane, q: &KvQuery) -> Result<(), ApiError> {
    crate::reads::consistent_read(p, q.consistency.as_deref()).await
}

fn check(store: &str, key: Option<&str>) -> Result<(), ApiError> {
    let problem = store_name_problem(store).or_else(|| key.and_then(kv_key_problem));
    match problem {
        Some(why) => Err(ApiError::bad_request(why)),
        None => Ok(()),
    }
}

/// `GET /api/v1/keyvalue`.
pub(crate) async fn list_all_stores(
    State(p): State<ControlPlane>,
    Query(q): Query<KvQuery>,
) -> Result<Json<Vec<KeyValueStore>>, ApiError> {
    barrier(&p, &q).await?;
    Ok(Json(p.inner.reader.kv_stores(None)?))
}

/// `GET /api/v1/namespaces/{ns}/keyvalue`.
pub(crate) async fn list_stores(
    State(p): State<ControlPlane>,
    Path(ns): Path<String>,
    Query(q): Query<KvQuery>,
) -> Result<Json<Vec<KeyValueStore>>, ApiError> {
    barrier(&p, &q).await?;
    Ok(Json(p.inner.reader.kv_stores(Some(&ns))?))
}

/// `GET /api/v1/namespaces/{ns}/keyvalue/{store}`.
pub(crate) async fn list_keys(
    State(p): State<ControlPlane>,
    Path((ns, store)): Path<(String, String)>,
    Query(q): Query<KvQuery>,
) -> Result<Json<KeyPage>, ApiError> {
    check(&store, None)?;
    barrier(&p, &q).await?;
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    Ok(Json(p.inner.reader.kv_keys(
        &ns,
        &store,
        q.prefix.as_deref().unwrap_or(""),
        q.after.as_deref(),
        limit,
    )?))
}

/// `GET …/keyvalue/{store}/keys/{key}`.
pub(crate) async fn get_value(
    State(p): State<ControlPlane>,
    Path((ns, store, key)): Path<(String, String, String)>,
    Query(q): Query<KvQuery>,
) -> Result<Response, ApiError> {
    check(&store, Some(&key))?;
    barrier(&p, &q).await?;
    match p.inner.reader.kv_get(&ns, &store, &key)? {
        Some(v) => Ok(([(header::CONTENT_TYPE, "application/octet-stream")], v).into_response()),
        None => Err(ApiError::not_found(format!(
            "key {key:?} is not in key-value store {store:?} of namespace {ns:?}"
        ))),
    }
}

/// `PUT …/keyvalue/{store}/keys/{key}`.
pub(crate) async fn put_value(
    State(p): State<ControlPlane>,
    Path((ns, store, key)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    check(&store, Some(&key))?;
    if body.len() > MAX_KV_VALUE_BYTES {
        return Err(ApiError::new(
            skiff_api::ErrorCode::TooLarge,
            format!(
                "the value is {} bytes: at most {} KiB; store big data elsewhere and keep a reference",
                body.len(),
                MAX_KV_VALUE_BYTES >> 10
            ),
        ));
    }
    p.propose_applied(vec![Op::KvSet {
        namespace: ns,
        store,
        key,
        value: body.to_vec(),
    }])
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE …/keyvalue/{store}/keys/{key}`.
pub(crate) async fn delete_value(
    State(p): State<ControlPlane>,
    Path((ns, store, key)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    check(&store, Some(&key))?;
    p.propose_applied(vec![Op::KvDelete {
        namespace: ns,
        store,
        key,
    }])
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/keyvalue/{store}/keys/{key}` with `{"delta": N}`.
pub(crate) async fn increment(
    State(p): State<ControlPlane>,
    Path((ns, store, key)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    check(&store, Some(&key))?;
    let Increment { delta } = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not an increment: {e}; send {{\"delta\": N}} with an integer N"
        ))
    })?;
    let applied = p
        .propose_applied(vec![Op::KvIncrement {
            namespace: ns,
            store,
            key,
            delta,
        }])
        .await?;
    let value = applied
        .incremented
        .first()
        .copied()
        .ok_or_else(|| ApiError::internal("the increment was applied but its result is missing"))?;
    Ok(Json(serde_json::json!({ "value": value })))
}
