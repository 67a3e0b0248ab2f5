//! The demo component: env, fresh instances, instance reuse.

use std::time::Duration;

use http::StatusCode;
use skiff_runtime_wasm::HandlerOptions;

use crate::guests::{self, get, wait_until};

fn options(name: &str, pod: &str) -> HandlerOptions {
    let mut opts = HandlerOptions::new(name);
    opts.env = vec![("SKIFF_POD_NAME".to_string(), pod.to_string())];
    opts.timeout = Duration::from_secs(10);
    opts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_answers_with_pod_name_from_env() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let component = runtime.load(guests::hello()).await.expect("load hello");
    assert!(component.is_http());
    assert!(
        component
            .exports()
            .contains(&"wasi:http/incoming-handler@0.2.12".to_string()),
        "{:?}",
        component.exports()
    );
    let handler = runtime
        .handler(component.clone(), options("default/web-a/hello", "web-a"))
        .unwrap();
    let other = runtime
        .handler(component, options("default/web-b/hello", "web-b"))
        .unwrap();

    let (status, body) = get(&handler, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello from web-a (call 1 of this instance)\n");
    let (status, body) = get(&other, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("hello from web-b "), "{body}");

    let (status, _) = get(&handler, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_instance_per_request_by_default() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let component = runtime.load(guests::hello()).await.unwrap();
    let handler = runtime
        .handler(component, options("default/fresh/hello", "fresh"))
        .unwrap();
    for _ in 0..5 {
        assert_eq!(get(&handler, "/count").await, (StatusCode::OK, "1\n".to_string()));
    }
    assert_eq!(handler.instances_created(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_mode_reuses_instances() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let component = runtime.load(guests::hello()).await.unwrap();
    let mut opts = options("default/reuse/hello", "reuse");
    opts.instance_reuse = true;
    let handler = runtime.handler(component, opts).unwrap();
    for expected in 1..=5 {
        assert_eq!(
            get(&handler, "/count").await,
            (StatusCode::OK, format!("{expected}\n"))
        );
        // The response can reach the client a moment before the guest's call
        // returns and the instance goes back to the idle pool.
        wait_until(|| handler.idle_instances() == 1).await;
    }
    assert_eq!(handler.instances_created(), 1);
}
