//! The runtime-plugin protocol, version 1: HTTP/1.1 + JSON on a Unix socket (see
//! `docs/runtime-plugins.md`). Any program that answers these requests can run a kind of component
//! for an agent; [`serve`] is the OCI plugin's side.
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | GET | `/v1/handshake` | → `{protocol, name, version, kinds}` |
//! | POST | `/v1/images` | `{image}` (pull) or `{layout, tag?}` (import) → the stored image |
//! | POST | `/v1/containers` | a container spec → `201 {id, state}` |
//! | GET | `/v1/containers` | → `[{spec, state}]` (what runs, after a plugin restart too) |
//! | GET | `/v1/containers/{id}` | → `{spec, state}` |
//! | POST | `/v1/containers/{id}/start` | → `{id, state}` |
//! | POST | `/v1/containers/{id}/stop` | `{graceMillis}` → `{id, state}` |
//! | GET | `/v1/containers/{id}/logs[?follow=true]` | → output as text (followed: streamed until it exits) |
//! | DELETE | `/v1/containers/{id}` | → `204` |
//!
//! Errors are `{code, message}` with 400 (bad request), 404 (unknown image or container),
//! 409 (state conflict), 422 (unusable image or layer), 502 (registry).
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;
use tokio::sync::watch;

use skiff_plugin_protocol::{
    ContainerInfo, ContainerSpec, ContainerState, ErrorAnswer, ErrorCode, Handshake, ImageRequest,
    PROTOCOL_VERSION, StateAnswer, StopRequest,
};

use crate::containers::Runtime;
use crate::error::OciError;

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;

type Reply = Response<UnsyncBoxBody<Bytes, std::convert::Infallible>>;

fn full(b: impl Into<Bytes>) -> UnsyncBoxBody<Bytes, std::convert::Infallible> {
    Full::new(b.into()).boxed_unsync()
}

fn json(status: StatusCode, v: &impl Serialize) -> Reply {
    let mut r = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(code: ErrorCode, message: impl Into<String>) -> Reply {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        status,
        &ErrorAnswer {
            code,
            message: message.into(),
        },
    )
}

fn from_oci(e: OciError) -> Reply {
    let code = match &e {
        OciError::Reference { .. } => ErrorCode::BadReference,
        OciError::NotFound { .. } => ErrorCode::ImageNotFound,
        OciError::Registry { .. } => ErrorCode::RegistryUnreachable,
        OciError::DigestMismatch { .. } => ErrorCode::DigestMismatch,
        OciError::Manifest { .. } | OciError::User { .. } => ErrorCode::BadImage,
        OciError::Layer { .. } => ErrorCode::UnsafeLayer,
        OciError::NoSuchContainer { .. } => ErrorCode::ContainerNotFound,
        OciError::Container { .. } => ErrorCode::ContainerConflict,
        OciError::Io { .. } => ErrorCode::Io,
    };
    error(code, e.to_string())
}

async fn body_json<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> Result<T, Reply> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| error(ErrorCode::BadRequest, format!("cannot read the body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            ErrorCode::BadRequest,
            format!("the body is not the expected JSON: {e}"),
        )
    })
}

/// Runs blocking container work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OciError> + Send + 'static,
) -> Result<T, Reply> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(from_oci),
        Err(e) => Err(error(ErrorCode::Internal, e.to_string())),
    }
}

async fn route(rt: Arc<Runtime>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result: Result<Reply, Reply> = async {
        match (req.method().clone(), parts.as_slice()) {
            (Method::GET, ["v1", "handshake"]) => Ok(json(
                StatusCode::OK,
                &Handshake {
                    protocol: PROTOCOL_VERSION,
                    name: "skiff-oci".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    kinds: vec!["oci".into()],
                },
            )),
            (Method::POST, ["v1", "images"]) => {
                let r: ImageRequest = body_json(req).await?;
                let image = match (r.image, r.layout) {
                    (Some(reference), None) => rt.store().pull(&reference).await.map_err(from_oci)?,
                    (None, Some(dir)) => {
                        let rt = rt.clone();
                        blocking(move || rt.store().import_layout(&dir, r.tag.as_deref())).await?
                    }
                    _ => {
                        return Err(error(
                            ErrorCode::BadRequest,
                            "give exactly one of image (a registry reference) and layout (a directory)",
                        ));
                    }
                };
                rt.store().remember(&image).map_err(from_oci)?;
                Ok(json(StatusCode::OK, &image))
            }
            (Method::POST, ["v1", "containers"]) => {
                let spec: ContainerSpec = body_json(req).await?;
                let Some(image) = rt.store().lookup(&spec.image) else {
                    return Err(error(
                        ErrorCode::ImageNotFound,
                        format!(
                            "image {} is not in this plugin's store: POST /v1/images first",
                            spec.image
                        ),
                    ));
                };
                let id = spec.id.clone();
                let state = {
                    let rt = rt.clone();
                    blocking(move || {
                        rt.create(&spec, &image)?;
                        Ok(ContainerState::Created)
                    })
                    .await?
                };
                Ok(json(StatusCode::CREATED, &StateAnswer { id, state }))
            }
            (Method::GET, ["v1", "containers"]) => {
                let rt = rt.clone();
                let list = blocking(move || {
                    Ok(rt
                        .list()
                        .into_iter()
                        .map(|(spec, state)| ContainerInfo { spec, state })
                        .collect::<Vec<_>>())
                })
                .await?;
                Ok(json(StatusCode::OK, &list))
            }
            (method, ["v1", "containers", id, rest @ ..]) => {
                let id = (*id).to_owned();
                match (method, rest) {
                    (Method::GET, []) => {
                        let rt = rt.clone();
                        let info = blocking(move || {
                            let state = rt.state(&id)?;
                            let spec = rt
                                .list()
                                .into_iter()
                                .find(|(s, _)| s.id == id)
                                .map(|(s, _)| s)
                                .unwrap_or_default();
                            Ok(ContainerInfo { spec, state })
                        })
                        .await?;
                        Ok(json(StatusCode::OK, &info))
                    }
                    (Method::POST, ["start"]) => {
                        let rt = rt.clone();
                        let i = id.clone();
                        let state = blocking(move || rt.start(&i)).await?;
                        Ok(json(StatusCode::OK, &StateAnswer { id, state }))
                    }
                    (Method::POST, ["stop"]) => {
                        let r: StopRequest = body_json(req).await?;
                        let grace = Duration::from_millis(r.grace_millis.unwrap_or(10_000));
                        let rt = rt.clone();
                        let i = id.clone();
                        let state = blocking(move || rt.stop(&i, grace)).await?;
                        Ok(json(StatusCode::OK, &StateAnswer { id, state }))
                    }
                    (Method::GET, ["logs"]) => {
                        let follow = query.split('&').any(|kv| kv == "follow=true" || kv == "follow=1");
                        // Where following starts: the end of the current output file before it
                        // is read (a line written meanwhile may come twice, never not at all).
                        let offset = rt
                            .log_path(&id)
                            .ok()
                            .and_then(|p| std::fs::metadata(p).ok())
                            .map_or(0, |m| m.len());
                        let text = {
                            let rt = rt.clone();
                            let id = id.clone();
                            blocking(move || rt.logs(&id)).await?
                        };
                        let body = if follow {
                            follow_logs(rt.clone(), id, text, offset)
                        } else {
                            full(text)
                        };
                        let mut r = Response::new(body);
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/plain; charset=utf-8"),
                        );
                        Ok(r)
                    }
                    (Method::DELETE, []) => {
                        let rt = rt.clone();
                        blocking(move || {
                            rt.state(&id)?;
                            rt.remove(&id)
                        })
                        .await?;
                        let mut r = Response::new(full(Bytes::new()));
                        *r.status_mut() = StatusCode::NO_CONTENT;
                        Ok(r)
                    }
                    _ => Err(error(ErrorCode::NotFound, format!("no route for {path}"))),
                }
            }
            _ => Err(error(ErrorCode::NotFound, format!("no route for {path}"))),
        }
    }
    .await;
    result.unwrap_or_else(|e| e)
}

/// The output so far (`first`), then whatever the container writes until it has exited and all
/// of it was sent (or the reader went away).
fn follow_logs(
    rt: Arc<Runtime>,
    id: String,
    first: String,
    mut offset: u64,
) -> UnsyncBoxBody<Bytes, std::convert::Infallible> {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(16);
    tokio::spawn(async move {
        let Ok(path) = rt.log_path(&id) else { return };
        if tx.send_data(Bytes::from(first)).await.is_err() {
            return;
        }
        let Some(dir) = path.parent().map(std::path::Path::to_owned) else {
            return;
        };
        loop {
            let exited = rt.has_exited(&id);
            let (grown, next) = tokio::task::spawn_blocking({
                let dir = dir.clone();
                move || crate::output::read_from(&dir, offset, 1 << 20)
            })
            .await
            .unwrap_or((Vec::new(), offset));
            let rotated = next < offset;
            offset = next;
            if !grown.is_empty() {
                if tx.send_data(Bytes::from(grown)).await.is_err() {
                    return; // the reader went away
                }
                continue;
            }
            if rotated {
                continue;
            }
            if exited || !rt.log_path(&id).is_ok_and(|p| p.exists()) {
                return; // ended (or removed) and everything was sent
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    body.boxed_unsync()
}

/// Listens on the Unix socket `path` (replacing one left there), which only this user may connect
/// to (`0600`): the socket is bound under a temporary name, given its mode, then renamed into
/// place, so it is never reachable with a wider mode.
///
/// # Errors
/// [`OciError::Io`] when it cannot be bound, given its mode or moved into place.
pub fn bind(path: &std::path::Path) -> Result<UnixListener, OciError> {
    use std::os::unix::fs::PermissionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.binding", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(OciError::io(&tmp))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(OciError::Io {
            path: path.to_owned(),
            source: e,
        });
    }
    Ok(listener)
}

/// Connections the plugin socket may hold (lowered to its share of the open-file limit).
const PLUGIN_CONNECTIONS: usize = 256;

/// Serves the protocol on `listener` until `shutdown` turns true, within the socket's
/// [`skiff_listen::Limits`] (a connection cap with idle connections making room, a header
/// timeout, accept errors that pause instead of spinning).
pub async fn serve(listener: UnixListener, runtime: Runtime, mut shutdown: watch::Receiver<bool>) {
    let rt = Arc::new(runtime);
    let guard = skiff_listen::Guard::new("plugin", skiff_listen::Limits::for_listener(PLUGIN_CONNECTIONS));
    loop {
        let (stream, slot) = tokio::select! {
            _ = shutdown.changed() => return,
            a = guard.accept_unix(&listener) => a,
        };
        let rt = rt.clone();
        let builder = skiff_listen::http1(guard.limits());
        tokio::spawn(async move {
            let svc = slot.track(hyper::service::service_fn(move |req| {
                let rt = rt.clone();
                async move { Ok::<_, std::convert::Infallible>(route(rt, req).await) }
            }));
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            if let Some(Err(e)) = slot.run(conn).await {
                tracing::debug!(error = %e, "plugin connection ended");
            }
        });
    }
}
