//! Outbound wasi:http requests: denied unless the host is allowed.

use std::convert::Infallible;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use skiff_runtime_wasm::HandlerOptions;
use tokio::net::TcpListener;

use crate::guests::{self, get};

/// A loopback HTTP server answering every request with `upstream`; returns its
/// address. It lives until the test's runtime shuts down.
async fn upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("upstream"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_hosts_are_reachable() {
    let addr = upstream().await;
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let component = runtime.load(guests::hostile()).await.unwrap();

    let denied = runtime
        .handler(component.clone(), HandlerOptions::new("default/p/denied"))
        .unwrap();
    let (status, body) = get(&denied, &format!("/outbound?to={addr}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("HttpRequestDenied"), "{body}");

    let mut opts = HandlerOptions::new("default/p/allowed");
    opts.allowed_outbound_hosts = vec![addr.to_string()];
    let allowed = runtime.handler(component, opts).unwrap();
    let (status, body) = get(&allowed, &format!("/outbound?to={addr}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "outbound allowed: 200\n");
    // Another port on the same host is still denied.
    let (_, body) = get(&allowed, "/outbound?to=127.0.0.1:9").await;
    assert!(body.contains("HttpRequestDenied"), "{body}");
}
