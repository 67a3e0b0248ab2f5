//! `hello-http`: a tiny `wasi:http/proxy` component for Skiff.
//!
//! * `GET /` answers `<greeting> from <pod> (call N of this instance)`, where `<greeting>` is
//!   the `GREETING` environment variable (or `hello`), `<pod>` is `SKIFF_POD_NAME` (or
//!   `skiff`) and `N` counts the requests this instance has served: always 1 when Skiff gives
//!   every request a fresh instance. With `HELLO_STATUS` set (e.g. `503`) it answers with that
//!   status instead: a deliberately broken version for rollout demos.
//! * `GET /count` answers just `N`.
//! * Anything else is a 404.
//!
//! Every request prints one line to stdout, so `skiff logs` has something to show.

use std::sync::atomic::{AtomicU64, Ordering};

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Requests served by this instance.
static CALLS: AtomicU64 = AtomicU64::new(0);

struct Hello;

impl Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        let pod = std::env::var("SKIFF_POD_NAME").unwrap_or_else(|_| "skiff".to_string());
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".to_string());
        let status_for_root = std::env::var("HELLO_STATUS")
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(200);
        let path = request.path_with_query().unwrap_or_default();
        let is_get = matches!(request.method(), Method::Get);
        let (status, body) = match (is_get, path.as_str()) {
            (true, "/") => (
                status_for_root,
                format!("{greeting} from {pod} (call {calls} of this instance)\n"),
            ),
            (true, "/count") => (200, format!("{calls}\n")),
            _ => (404, format!("not found: {path}\n")),
        };
        println!("{pod}: {path} -> {status}");
        respond(out, status, body.as_bytes());
    }
}

/// Sends `status` with a plain-text `body`.
fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    // A fresh `Fields` is mutable, so these appends cannot fail.
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let _ = headers.append("content-length", body.len().to_string().as_bytes());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        // `blocking-write-and-flush` takes at most 4096 bytes per call.
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

wasi::http::proxy::export!(Hello);
