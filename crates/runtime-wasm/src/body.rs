//! Request and response bodies at the boundary between the caller and the guest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The body of every response from [`crate::HttpHandler::handle`]: `Send`, `'static`,
/// with [`BodyError`] as error, so it can be handed straight to hyper.
pub type ResponseBody = UnsyncBoxBody<Bytes, BodyError>;

/// The body a guest reads: the caller's body, bounded to the configured size.
pub(crate) type RequestBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// A response body ended abnormally: the guest failed or was stopped while writing
/// it, or it broke the HTTP framing it declared. The client sees a cut response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("response body from the component failed: {message}")]
pub struct BodyError {
    message: String,
}

impl BodyError {
    /// A body error saying `message` (for callers that relay bodies from elsewhere, such as a
    /// node proxying to a container).
    pub fn new(message: impl Into<String>) -> Self {
        BodyError {
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The smallest body size a request announces: its `content-length`, or the lower
/// bound of its body's size hint.
pub(crate) fn announced_length<B: http_body::Body>(req: &http::Request<B>) -> u64 {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    declared.max(req.body().size_hint().lower())
}

/// Bounds the body and makes sure the request names an authority, which
/// `wasi:http` requires (origin-form requests without `host` get `localhost`).
/// The flag turns true if the body turns out larger than the limit.
pub(crate) fn prepare_request<B>(
    req: http::Request<B>,
    max_body_bytes: usize,
) -> (http::Request<RequestBody>, Arc<AtomicBool>)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = req.into_parts();
    if parts.uri.authority().is_none() && !parts.headers.contains_key(header::HOST) {
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_static("localhost"));
    }
    let too_large = Arc::new(AtomicBool::new(false));
    let flag = too_large.clone();
    let body = Limited::new(body, max_body_bytes)
        .map_err(move |error| {
            if error.is::<LengthLimitError>() {
                flag.store(true, Ordering::Relaxed);
                wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body_bytes as u64))
            } else {
                match error.downcast::<hyper::Error>() {
                    Ok(hyper) => wasmtime_wasi_http::Error::Hyper(*hyper),
                    Err(other) => wasmtime_wasi_http::Error::InternalError(Some(other.to_string())),
                }
            }
        })
        .boxed_unsync();
    (http::Request::from_parts(parts, body), too_large)
}

/// Adapts the guest's response body.
pub(crate) fn from_guest(body: HyperOutgoingBody) -> ResponseBody {
    body.map_err(|error| BodyError {
        message: error.to_string(),
    })
    .boxed_unsync()
}

/// A short plain-text response made by the runtime itself.
pub(crate) fn error_response(status: StatusCode, message: &str) -> http::Response<ResponseBody> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
