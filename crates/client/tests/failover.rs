//! Failover between several servers, against real HTTP servers on loopback.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use skiff_api::Kind;
use skiff_client::{Client, ClientError};

/// A server answering every request with `status` and `code`, counting the requests.
async fn server(status: StatusCode, code: &'static str) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let handler = move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            let body = if status.is_success() {
                r#"{"resourceVersion":1,"items":[]}"#.to_string()
            } else {
                format!(r#"{{"code":"{code}","message":"{code} from the test server"}}"#)
            };
            (status, [("content-type", "application/json")], body)
        }
    };
    let app = Router::new().fallback(get(handler.clone()).post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hits)
}

/// A port nothing listens on.
async fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    drop(l);
    url
}

fn ns() -> skiff_api::Object {
    skiff_api::Object::Namespace(skiff_api::Namespace {
        metadata: skiff_api::ObjectMeta::named("x", None),
        ..Default::default()
    })
}

#[tokio::test]
async fn an_unreachable_server_is_skipped_and_the_answering_one_kept() {
    let dead = closed_port().await;
    let (live, hits) = server(StatusCode::OK, "").await;
    let client = Client::new(&format!("{dead}, {live}/"), "t").expect("client");
    assert_eq!(client.servers().len(), 2);
    client
        .list(Kind::Pod, Some("default"), None)
        .await
        .expect("list fails over");
    assert_eq!(client.base(), live);
    client
        .list(Kind::Pod, Some("default"), None)
        .await
        .expect("second list");
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the live server is kept");
}

#[tokio::test]
async fn a_write_refused_for_want_of_a_leader_goes_to_the_next_server() {
    let (no_leader, first) = server(StatusCode::SERVICE_UNAVAILABLE, "NoLeader").await;
    let (live, second) = server(StatusCode::OK, "").await;
    let client = Client::new(&format!("{no_leader},{live}"), "t").expect("client");
    // The live server's answer is a list, not a namespace: only where the request went matters.
    let err = client
        .create(&ns())
        .await
        .expect_err("decode error from the stub answer");
    assert!(matches!(err, ClientError::Decode { .. }), "{err}");
    assert_eq!(
        (first.load(Ordering::SeqCst), second.load(Ordering::SeqCst)),
        (1, 1)
    );
}

#[tokio::test]
async fn a_write_with_an_unknown_outcome_is_not_sent_twice() {
    let (unsure, first) = server(StatusCode::SERVICE_UNAVAILABLE, "Unavailable").await;
    let (live, second) = server(StatusCode::OK, "").await;
    let client = Client::new(&format!("{unsure},{live}"), "t").expect("client");
    let err = client.create(&ns()).await.expect_err("503");
    assert_eq!(err.status(), Some(503));
    assert_eq!(
        (first.load(Ordering::SeqCst), second.load(Ordering::SeqCst)),
        (1, 0)
    );
}

#[tokio::test]
async fn a_silent_server_times_out_reads_move_on_writes_do_not() {
    // Accepts connections (the kernel does) but never answers, like a paused process.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    let (live, hits) = server(StatusCode::OK, "").await;
    let client = Client::new(&format!("{silent_url},{live}"), "t")
        .expect("client")
        .with_timeout(Duration::from_millis(300));
    client.list(Kind::Pod, None, None).await.expect("read fails over");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let client = Client::new(&format!("{silent_url},{live}"), "t")
        .expect("client")
        .with_timeout(Duration::from_millis(300));
    let err = client.create(&ns()).await.expect_err("timeout");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("may or may not have been applied"),
        "{err}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the write was not sent again");
    drop(silent);
}

#[test]
fn bad_server_lists_are_refused_with_a_hint() {
    let e = Client::new(" , ", "t").expect_err("empty");
    assert!(e.to_string().contains("--server"), "{e}");
    let e = Client::new("http://a:1,ftp://b", "t").expect_err("scheme");
    assert!(e.to_string().contains("ftp://b"), "{e}");
}
