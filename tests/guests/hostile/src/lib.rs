//! `hostile`: a `wasi:http/proxy` component that behaves well on `/` and badly on request.
//!
//! | path | behaviour |
//! |---|---|
//! | `/` | 200 `ok` |
//! | `/count` | 200, the number of requests this instance has served |
//! | `/trap` | panics (a trap: the module is built with `panic = "abort"`) |
//! | `/loop` | spins forever without calling the host |
//! | `/grow` | allocates memory without bound |
//! | `/recurse` | recurses without bound (stack overflow) |
//! | `/sleep?ms=N` | blocks in the host (`wasi:clocks`) for N milliseconds, then 200 |
//! | `/env` | 200, the environment as `KEY=VALUE` lines |
//! | `/print?n=N` | prints N numbered lines to stdout and one to stderr, then 200 |
//! | `/echo` | 200, the request body read back (bounded by the host) |
//! | `/outbound?to=HOST:PORT` | tries an outbound `GET http://HOST:PORT/` (default `example.com`; `to=-`: no authority at all, `GET /` relative; `host=H`: also sets a `host` header H); 200 with the outcome |
//! | `/fs` | tries to list `/`; 200 with the outcome |
//! | `/config` | 200, `wasi:config/store` `get-all` as sorted `KEY=VALUE` lines |
//! | `/config?key=K` | 200, `K=VALUE` from `wasi:config/store` `get`, or `K unset` |

use std::sync::atomic::{AtomicU64, Ordering};

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam,
    Scheme,
};

/// Bindings of the one `wasi:config` interface the guest imports.
mod config {
    wit_bindgen::generate!({
        inline: r"
            package wasi:config@0.2.0-rc.1;

            interface store {
                variant error {
                    upstream(string),
                    io(string),
                }
                get: func(key: string) -> result<option<string>, error>;
                get-all: func() -> result<list<tuple<string, string>>, error>;
            }

            world imports {
                import store;
            }
        ",
        world: "imports",
    });
}

/// `wasi:config` answers as text.
fn config_text(query: &str) -> String {
    use config::wasi::config::store;
    match query.strip_prefix("key=") {
        Some(key) => match store::get(key) {
            Ok(Some(v)) => format!("{key}={v}\n"),
            Ok(None) => format!("{key} unset\n"),
            Err(e) => format!("error: {e:?}\n"),
        },
        None => match store::get_all() {
            Ok(mut all) => {
                all.sort();
                all.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
            }
            Err(e) => format!("error: {e:?}\n"),
        },
    }
}

/// Requests served by this instance.
static CALLS: AtomicU64 = AtomicU64::new(0);

struct Hostile;

impl Guest for Hostile {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        let full = request.path_with_query().unwrap_or_default();
        let (path, query) = full.split_once('?').unwrap_or((full.as_str(), ""));
        match path {
            "/" => respond(out, 200, b"ok\n"),
            "/count" => respond(out, 200, format!("{calls}\n").as_bytes()),
            "/trap" => panic!("hostile guest asked to trap"),
            "/loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/recurse" => {
                let depth = recurse(std::hint::black_box(1));
                respond(out, 200, format!("{depth}\n").as_bytes());
            }
            "/grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touch every page so the memory is really used.
                    hoard.push(vec![0xA5; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "/sleep" => {
                let ms = param(query, "ms").unwrap_or(1000);
                wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                respond(out, 200, b"slept\n");
            }
            "/config" => respond(out, 200, config_text(query).as_bytes()),
            "/env" => {
                let mut body = String::new();
                for (key, value) in std::env::vars() {
                    body.push_str(&format!("{key}={value}\n"));
                }
                respond(out, 200, body.as_bytes());
            }
            "/print" => {
                let n = param(query, "n").unwrap_or(1);
                for i in 0..n {
                    println!("line {i}");
                }
                eprintln!("printed {n} lines");
                respond(out, 200, b"printed\n");
            }
            "/echo" => {
                let body = read_body(&request);
                match body {
                    Ok(bytes) => respond(out, 200, &bytes),
                    Err(message) => respond(out, 400, message.as_bytes()),
                }
            }
            "/outbound" => {
                let authority = text_param(query, "to").unwrap_or("example.com");
                let outcome = try_outbound(authority, text_param(query, "host"));
                respond(out, 200, outcome.as_bytes());
            }
            "/fs" => {
                let outcome = match std::fs::read_dir("/") {
                    Ok(_) => "listed /\n".to_string(),
                    Err(e) => format!("denied: {e}\n"),
                };
                respond(out, 200, outcome.as_bytes());
            }
            _ => respond(out, 404, b"not found\n"),
        }
    }
}

/// Reads a numeric query parameter.
fn param(query: &str, name: &str) -> Option<u64> {
    text_param(query, name).and_then(|value| value.parse().ok())
}

/// Reads the whole request body.
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request.consume().map_err(|()| "body already consumed\n".to_string())?;
    let stream = body.stream().map_err(|()| "no body stream\n".to_string())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(wasi::io::streams::StreamError::LastOperationFailed(e)) => {
                return Err(format!("body read failed: {}\n", e.to_debug_string()));
            }
        }
    }
    Ok(bytes)
}

/// Recurses without end: a stack overflow.
#[allow(unconditional_recursion, reason = "the point is to overflow the stack")]
fn recurse(n: u64) -> u64 {
    let deeper = recurse(std::hint::black_box(n + 1));
    std::hint::black_box(deeper) + 1
}

/// Reads a text query parameter.
fn text_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Tries an outbound `GET http://<authority>/` (`-`: no authority), with a `host` header when
/// given, and describes what happened.
fn try_outbound(authority: &str, host_header: Option<&str>) -> String {
    let headers = Fields::new();
    if let Some(h) = host_header
        && let Err(e) = headers.append(&"host".to_string(), &h.as_bytes().to_vec())
    {
        return format!("host header refused: {e:?}\n");
    }
    let request = OutgoingRequest::new(headers);
    let _ = request.set_scheme(Some(&Scheme::Http));
    if authority != "-" {
        let _ = request.set_authority(Some(authority));
    }
    let _ = request.set_path_with_query(Some("/"));
    match outgoing_handler::handle(request, None) {
        Err(code) => format!("outbound denied: {code:?}\n"),
        Ok(future) => {
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => format!("outbound allowed: {}\n", response.status()),
                Some(Ok(Err(code))) => format!("outbound denied: {code:?}\n"),
                other => format!("outbound failed: {other:?}\n"),
            }
        }
    }
}

/// Sends `status` with a plain-text `body`.
fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append(&"content-type".to_string(), &b"text/plain".to_vec());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

wasi::http::proxy::export!(Hostile);
