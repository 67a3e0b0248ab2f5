//! Outbound wasi:http requests: denied unless a grant allows the request's own URL.

use std::convert::Infallible;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use skiff_runtime_wasm::{Denials, Egress, HandlerOptions};
use tokio::net::TcpListener;

use crate::guests::{self, get};

/// The heads of the requests a loopback server had.
type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// A loopback HTTP server answering every request with `upstream`; returns its address and
/// the headers of every request it had. It lives until the test's runtime shuts down.
async fn upstream() -> (std::net::SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    recorded.lock().unwrap().push(req.headers().clone());
                    async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("upstream")))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn grants(grants: &[&str]) -> Egress {
    Egress {
        grants: grants
            .iter()
            .map(|g| g.parse().unwrap())
            .collect::<Vec<_>>()
            .into(),
        denials: Some(Arc::new(Denials::default())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_granted_destinations_are_reachable_and_denials_name_the_missing_grant() {
    let (addr, _) = upstream().await;
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let component = runtime.load(guests::hostile()).await.unwrap();

    let mut opts = HandlerOptions::new("default/p/denied");
    opts.egress = grants(&[]);
    let denials = opts.egress.denials.clone().unwrap();
    let logs = opts.logs.clone();
    let denied = runtime.handler(component.clone(), opts).unwrap();
    let (status, body) = get(&denied, &format!("/outbound?to={addr}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("HttpRequestDenied"), "{body}");
    let missing = format!("http://{addr}");
    let taken = denials.take();
    assert_eq!(taken["default/p/denied"].count, 1, "{taken:?}");
    assert_eq!(taken["default/p/denied"].missing, missing);
    let line = logs
        .lines()
        .into_iter()
        .map(|l| l.line)
        .find(|l| l.contains("denied"))
        .unwrap();
    assert!(line.contains(&format!("add {missing:?}")), "{line}");

    let mut opts = HandlerOptions::new("default/p/allowed");
    opts.egress = grants(&[&format!("http://{addr}"), "https://*.example.com"]);
    let allowed = runtime.handler(component, opts).unwrap();
    let (status, body) = get(&allowed, &format!("/outbound?to={addr}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "outbound allowed: 200\n");
    // Another port on the same host is still denied, and so is the granted name over http.
    let (_, body) = get(&allowed, "/outbound?to=127.0.0.1:9").await;
    assert!(body.contains("HttpRequestDenied"), "{body}");
    let (_, body) = get(&allowed, "/outbound?to=api.example.com").await;
    assert!(body.contains("HttpRequestDenied"), "{body}");
}

/// The destination is the request's own URL: neither the incoming request's `Host` or
/// `X-Forwarded-Host`, nor a `host` header on the outgoing request, nor a URL without an
/// authority can send a request to the granted destination elsewhere (a "self" request that
/// took its destination from the incoming `Host` was a sandbox escape elsewhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_header_redirects_a_request_and_a_url_without_authority_is_denied() {
    let (granted, _) = upstream().await;
    let (other, other_seen) = upstream().await;
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let component = runtime.load(guests::hostile()).await.unwrap();
    let mut opts = HandlerOptions::new("default/p/self");
    opts.egress = grants(&[&format!("http://{granted}")]);
    let handler = runtime.handler(component, opts).unwrap();

    let call = |path: String| {
        let handler = handler.clone();
        async move {
            let request = http::Request::builder()
                .uri(format!("http://{granted}{path}"))
                .header("host", granted.to_string())
                .header("x-forwarded-host", granted.to_string())
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = handler.handle(request).await;
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8_lossy(&body).into_owned()
        }
    };
    // Another destination, while the incoming request names the granted one.
    let body = call(format!("/outbound?to={other}")).await;
    assert!(body.contains("HttpRequestDenied"), "{body}");
    // No authority at all: not filled in from the incoming Host.
    // (wasi:http itself refuses a URL without authority before the grants are asked; were it
    // ever to pass one on, the grants refuse it: no host, nothing granted.)
    let body = call("/outbound?to=-".into()).await;
    assert!(
        body.contains("HttpRequestUriInvalid") || body.contains("HttpRequestDenied"),
        "{body}"
    );
    // A host header naming the granted destination on a request to another.
    let body = call(format!("/outbound?to={other}&host={granted}")).await;
    assert!(
        body.contains("HttpRequestDenied") || body.contains("host header refused"),
        "{body}"
    );
    // The granted destination itself works.
    let body = call(format!("/outbound?to={granted}")).await;
    assert_eq!(body, "outbound allowed: 200\n");
    // No request reached the other server.
    assert_eq!(other_seen.lock().unwrap().len(), 0);
}

/// The trace of the request a guest serves goes on with the requests it sends: same trace id
/// and flags, a new parent id, the tracestate as it came; a reused instance does not keep the
/// previous request's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incoming_trace_is_carried_to_outgoing_requests() {
    let (addr, seen) = upstream().await;
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let component = runtime.load(guests::hostile()).await.unwrap();
    let mut opts = HandlerOptions::new("default/p/traced");
    opts.egress = grants(&[&format!("http://{addr}")]);
    opts.instance_reuse = true;
    let handler = runtime.handler(component, opts).unwrap();
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for traced in [true, false] {
        let mut request = http::Request::builder().uri(format!("http://test.local/outbound?to={addr}"));
        if traced {
            request = request
                .header("traceparent", incoming)
                .header("tracestate", "congo=t61rcWkgMzE");
        }
        let resp = handler
            .handle(request.body(Full::new(Bytes::new())).unwrap())
            .await;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "outbound allowed: 200\n");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let sent = seen[0]["traceparent"].to_str().unwrap();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01"),
        "{sent}"
    );
    assert!(parts[2].len() == 16 && parts[2] != "00f067aa0ba902b7", "{sent}");
    assert_eq!(seen[0]["tracestate"], "congo=t61rcWkgMzE");
    assert!(
        !seen[1].contains_key("traceparent"),
        "an untraced request starts no trace"
    );
}
