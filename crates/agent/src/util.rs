//! Small helpers every module of the agent may use (this module imports none of them).
use std::convert::Infallible;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use skiff_api::Pod;
use skiff_runtime_wasm::ResponseBody;

/// Locks `m`, also after a panic elsewhere poisoned it (the data stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A pod's `namespace/name`.
pub(crate) fn key(p: &Pod) -> String {
    format!("{}/{}", p.metadata.namespace_or_default(), p.metadata.name)
}

/// The pod key (`namespace/name`) and component of a runtime handler's name
/// (`namespace/pod/component`, as [`key`] and the component's name make it).
pub(crate) fn handler_pod(handler: &str) -> (&str, &str) {
    handler.rsplit_once('/').unwrap_or((handler, ""))
}

/// A plain-text response with the data plane's body type.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|e: Infallible| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
