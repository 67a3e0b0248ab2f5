//! The handler behind a real hyper server on loopback, as the agent's data plane
//! uses it: `Request<Incoming>` in, the handler's response body straight out.

use std::convert::Infallible;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use skiff_runtime_wasm::{HandlerOptions, HttpHandler};
use tokio::net::{TcpListener, TcpStream};

use crate::guests;

async fn serve(handler: HttpHandler) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler.handle(req).await) }
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
async fn serves_over_hyper_with_keep_alive() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let component = runtime.load(guests::hostile()).await.unwrap();
    let mut opts = HandlerOptions::new("default/served/guest");
    opts.timeout = std::time::Duration::from_millis(300);
    let addr = serve(runtime.handler(component, opts).unwrap()).await;

    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    // One connection, several requests, a failing one in the middle.
    for (path, expected) in [
        ("/", StatusCode::OK),
        ("/trap", StatusCode::INTERNAL_SERVER_ERROR),
        ("/loop", StatusCode::GATEWAY_TIMEOUT),
        ("/", StatusCode::OK),
    ] {
        let request = http::Request::get(path)
            .header("host", "served.local")
            .body(Empty::<Bytes>::new())
            .unwrap();
        // The connection takes the next request only once it is ready again.
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), expected, "{path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(!body.is_empty(), "{path}");
    }
}
