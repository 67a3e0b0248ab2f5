//! Serving a `world: function` component over the data plane: each HTTP request is one event
//! (CloudEvents binary mode: `ce-*` headers carry the attributes, the body is the data), each
//! event a fresh instance of the cached compiled code.
//!
//! | function answer | HTTP |
//! |---|---|
//! | a payload | 200, the payload's content type and bytes |
//! | no payload | 204 |
//! | `invalid(msg)` | 422, `x-skiff-function-error: invalid` |
//! | `retryable(msg)` | 503, `x-skiff-function-error: retryable` |
//! | trap | 500, `x-skiff-function-error: trap` |
//! | past the timeout | 504, `x-skiff-function-error: timeout` |
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use skiff_api::FUNCTION_ERROR_HEADER;
use skiff_runtime_wasm::{
    CallFailure, Event, FunctionError, FunctionOptions, LoadedComponent, ResponseBody, WasmRuntime,
};

use crate::util::text;

/// Largest event body a function takes.
pub(crate) const MAX_EVENT_BYTES: usize = 6 << 20;

/// A loaded function component and how to call it.
pub(crate) struct FunctionServer {
    pub(crate) runtime: WasmRuntime,
    pub(crate) component: Arc<LoadedComponent>,
    pub(crate) options: FunctionOptions,
}

/// The event an HTTP request carries: `ce-*` headers for the attributes (binary mode), or, for a
/// plain request, one made from it (`type` `dev.skiff.http.request`, the method and path as the
/// `httpmethod` and `httppath` extensions).
pub(crate) fn event_of(parts: &http::request::Parts, data: Vec<u8>) -> Event {
    let h = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut extensions = Vec::new();
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if let Some(ext) = n.strip_prefix("ce-")
            && !matches!(ext, "id" | "source" | "type" | "subject" | "time" | "specversion")
            && let Ok(v) = value.to_str()
        {
            extensions.push((ext.to_owned(), v.to_owned()));
        }
    }
    let plain = h("ce-id").is_none();
    if plain {
        extensions.push(("httpmethod".into(), parts.method.to_string()));
        extensions.push((
            "httppath".into(),
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into()),
        ));
    }
    Event {
        id: h("ce-id").unwrap_or_else(new_id),
        source: h("ce-source").unwrap_or_else(|| format!("/http{}", parts.uri.path())),
        type_: h("ce-type").unwrap_or_else(|| "dev.skiff.http.request".into()),
        subject: h("ce-subject"),
        time: h("ce-time")
            .or_else(|| Some(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string())),
        datacontenttype: h(header::CONTENT_TYPE.as_str()),
        data,
        extensions,
    }
}

/// A random event id (32 hex digits).
fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom(&mut b);
    hex::encode(b)
}

/// Fills `b` from the OS (the sha256 of the time and a counter when that fails).
fn getrandom(b: &mut [u8; 16]) {
    use std::io::Read;
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(b))
        .is_err()
    {
        use sha2::Digest;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seed = format!(
            "{:?}{}",
            std::time::SystemTime::now(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        b.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes())[..16]);
    }
}

type BoxedBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

fn boxed<B>(body: B) -> BoxedBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    body.map_err(|e| std::io::Error::other(e.into())).boxed_unsync()
}

fn failed(status: StatusCode, kind: &'static str, message: String) -> Response<ResponseBody> {
    let mut r = text(status, format!("{message}\n"));
    r.headers_mut()
        .insert(FUNCTION_ERROR_HEADER, HeaderValue::from_static(kind));
    r
}

impl FunctionServer {
    /// Calls the function once with the event `req` carries.
    pub(crate) async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        // A concrete body type before the first await keeps the future's Send bound simple.
        self.call(parts, boxed(body)).await
    }

    async fn call(&self, parts: http::request::Parts, body: BoxedBody) -> Response<ResponseBody> {
        let mut body = body;
        let mut data = Vec::new();
        while let Some(frame) = body.frame().await {
            let chunk = match frame {
                Ok(f) => f.into_data().unwrap_or_default(),
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("cannot read the event: {e}\n")),
            };
            if data.len() + chunk.len() > MAX_EVENT_BYTES {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the event is larger than the {} MiB a function takes\n",
                        MAX_EVENT_BYTES >> 20
                    ),
                );
            }
            data.extend_from_slice(&chunk);
        }
        let event = event_of(&parts, data);
        let id = event.id.clone();
        let answer = self
            .runtime
            .call_function(&self.component, &event, self.options.clone())
            .await;
        let name = &self.options.name;
        match answer {
            Ok(Ok(Ok(Some(p)))) => {
                let mut r = text(StatusCode::OK, p.data);
                let ct = p
                    .content_type
                    .as_deref()
                    .and_then(|c| HeaderValue::from_str(c).ok())
                    .unwrap_or(HeaderValue::from_static("application/octet-stream"));
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
                r
            }
            Ok(Ok(Ok(None))) => {
                let mut r = text(StatusCode::NO_CONTENT, Bytes::new());
                r.headers_mut().remove(header::CONTENT_TYPE);
                r
            }
            Ok(Ok(Err(FunctionError::Invalid(m)))) => failed(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("{name} rejected event {id} as invalid: {m}"),
            ),
            Ok(Ok(Err(FunctionError::Retryable(m)))) => failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "retryable",
                format!("{name} failed on event {id} (retryable): {m}"),
            ),
            Ok(Err(CallFailure::Trap(m))) => {
                tracing::info!(function = %name, event = %id, error = %m, "function trapped");
                failed(StatusCode::INTERNAL_SERVER_ERROR, "trap", m)
            }
            Ok(Err(CallFailure::Timeout(t))) => failed(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "{name} did not finish event {id} within its timeout of {}ms",
                    t.as_millis()
                ),
            ),
            Ok(Err(CallFailure::Throttled(t))) => {
                let mut r = failed(
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    format!(
                        "{name}: the namespace used its fuel budget of {} per minute on this node; event {id} is offered again later",
                        t.per_minute
                    ),
                );
                // Offered again without counting as an attempt, like a function at its scale.
                r.headers_mut()
                    .insert(skiff_api::OVERLOADED_HEADER, HeaderValue::from_static("fuel"));
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(t.retry_after.as_secs()));
                r
            }
            Err(e) => failed(StatusCode::INTERNAL_SERVER_ERROR, "trap", format!("{name}: {e}")),
        }
    }
}
