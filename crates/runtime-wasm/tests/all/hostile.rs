//! Guests that trap, spin, hoard memory or block: only their request fails.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use skiff_runtime_wasm::{HandlerOptions, HttpHandler, WasmRuntime};

use crate::guests::{self, get, send, send_streamed};

const NAME: &str = "default/hostile-0/guest";

async fn handler(runtime: &WasmRuntime, reuse: bool) -> HttpHandler {
    let component = runtime.load(guests::hostile()).await.expect("load hostile");
    let mut opts = HandlerOptions::new(NAME);
    opts.timeout = Duration::from_millis(200);
    opts.memory_limit = 32 * 1024 * 1024;
    opts.instance_reuse = reuse;
    opts.env = vec![("GREETING".to_string(), "hi".to_string())];
    runtime.handler(component, opts).expect("handler")
}

async fn assert_healthy(handler: &HttpHandler) {
    assert_eq!(get(handler, "/").await, (StatusCode::OK, "ok\n".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_is_500_naming_the_component_and_handler_keeps_serving() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    for reuse in [false, true] {
        let handler = handler(&runtime, reuse).await;
        assert_healthy(&handler).await;
        let (status, body) = get(&handler, "/trap").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains(NAME) && body.contains("trapped"), "{body}");
        assert_healthy(&handler).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_overflow_is_500_and_handler_keeps_serving() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    for reuse in [false, true] {
        let handler = handler(&runtime, reuse).await;
        let (status, body) = get(&handler, "/recurse").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert!(body.contains("trapped"), "{body}");
        assert_healthy(&handler).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_504_within_the_deadline() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    for reuse in [false, true] {
        let handler = handler(&runtime, reuse).await;
        let started = Instant::now();
        let (status, body) = get(&handler, "/loop").await;
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        assert!(body.contains(NAME), "{body}");
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert_healthy(&handler).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_in_the_host_past_the_deadline_is_504() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let handler = handler(&runtime, true).await;
    let (status, _) = get(&handler, "/sleep?ms=50").await;
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    let (status, _) = get(&handler, "/sleep?ms=5000").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_healthy(&handler).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_is_500_and_handler_keeps_serving() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    for reuse in [false, true] {
        let handler = handler(&runtime, reuse).await;
        let (status, body) = get(&handler, "/grow").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert!(body.contains("memory limit"), "{body}");
        assert_healthy(&handler).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_concurrent_with_good_ones() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    for reuse in [false, true] {
        let handler = handler(&runtime, reuse).await;
        let mut tasks = Vec::new();
        for i in 0..24 {
            let handler = handler.clone();
            let path = ["/", "/trap", "/loop", "/grow", "/", "/count"][i % 6];
            tasks.push(tokio::spawn(async move { (path, get(&handler, path).await) }));
        }
        for task in tasks {
            let (path, (status, body)) = task.await.unwrap();
            let expected: &[StatusCode] = match path {
                "/" | "/count" => &[StatusCode::OK],
                "/loop" => &[StatusCode::GATEWAY_TIMEOUT],
                "/trap" => &[StatusCode::INTERNAL_SERVER_ERROR],
                // Spinning neighbours share the two cores until their own deadline,
                // so the bomb may run out of time before it runs out of memory.
                _ => &[StatusCode::INTERNAL_SERVER_ERROR, StatusCode::GATEWAY_TIMEOUT],
            };
            assert!(expected.contains(&status), "{path}: {status} {body}");
        }
        assert_healthy(&handler).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_are_denied_and_env_is_visible() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let handler = handler(&runtime, false).await;
    let (status, body) = get(&handler, "/env").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "GREETING=hi\n");
    let (status, body) = get(&handler, "/outbound").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("outbound denied") && body.contains("HttpRequestDenied"),
        "{body}"
    );
    let (status, body) = get(&handler, "/fs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("denied"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_bounded() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let handler = handler(&runtime, false).await;
    let small = Bytes::from(vec![b'a'; 1000]);
    let (status, body) = send(&handler, http::Method::POST, "/echo", small.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_bytes(), small.as_ref());
    // The test runtime allows 1 MiB.
    let big = Bytes::from(vec![b'a'; 2 * 1024 * 1024]);
    let (status, _) = send(&handler, http::Method::POST, "/echo", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // A streamed body without a size announcement is cut at the limit.
    let (status, _) = send_streamed(&handler, "/echo", 2 * 1024 * 1024).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_healthy(&handler).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_served_through_wasi_config_store() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let component = runtime.load(guests::hostile()).await.expect("load hostile");
    let mut opts = HandlerOptions::new(NAME);
    opts.config = vec![
        ("log_level".to_string(), "debug".to_string()),
        ("db_url".to_string(), "postgres://db/app".to_string()),
    ];
    let handler = runtime.handler(component, opts).expect("handler");
    assert_eq!(
        get(&handler, "/config?key=log_level").await,
        (StatusCode::OK, "log_level=debug\n".to_string())
    );
    assert_eq!(
        get(&handler, "/config?key=missing").await,
        (StatusCode::OK, "missing unset\n".to_string())
    );
    assert_eq!(
        get(&handler, "/config").await,
        (
            StatusCode::OK,
            "db_url=postgres://db/app\nlog_level=debug\n".to_string()
        )
    );
    // Config is not environment.
    assert_eq!(get(&handler, "/env").await, (StatusCode::OK, String::new()));
}
