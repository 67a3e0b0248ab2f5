//! The bodies the gateway sends and forwards, and its plain-text answers.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// Error type of gateway response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every gateway response.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;
/// The body of every request the gateway forwards.
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// A plain-text answer made by the gateway itself (marked `x-skiff-gateway: 1`).
pub(crate) fn text(status: StatusCode, msg: String) -> Response<GatewayBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(msg))
            .map_err(|e: Infallible| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert("x-skiff-gateway", HeaderValue::from_static("1"));
    r
}
