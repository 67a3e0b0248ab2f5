//! Fuel, pool exhaustion, handler options, components that cannot serve HTTP.

use std::time::Duration;

use http::StatusCode;
use skiff_runtime_wasm::{Error, FuelMeter, HandlerOptions, RuntimeConfig, WasmRuntime};

use crate::guests::{self, get};

/// A runtime that meters fuel, with the hostile guest loaded.
async fn metered_hostile(
    cache: &tempfile::TempDir,
) -> (WasmRuntime, std::sync::Arc<skiff_runtime_wasm::LoadedComponent>) {
    let runtime = WasmRuntime::new(RuntimeConfig {
        fuel: true,
        ..guests::config(cache)
    })
    .unwrap();
    let component = runtime.load(guests::hostile()).await.unwrap();
    (runtime, component)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_stops_a_spinning_guest_with_500() {
    let cache = tempfile::tempdir().unwrap();
    let (runtime, component) = metered_hostile(&cache).await;
    let mut opts = HandlerOptions::new("default/fuel/guest");
    opts.fuel = Some(50_000_000);
    opts.timeout = Duration::from_secs(20);
    let handler = runtime.handler(component, opts).unwrap();
    let (status, body) = get(&handler, "/loop").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("ran out of fuel"), "{body}");
    // Every request gets a fresh budget.
    for _ in 0..3 {
        assert_eq!(get(&handler, "/").await.0, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuel_budget_meters_every_request_and_throttles_with_429() {
    let cache = tempfile::tempdir().unwrap();
    let (runtime, component) = metered_hostile(&cache).await;
    // Without a budget the meter counts what each request burns.
    let counting = FuelMeter::new(None);
    let mut opts = HandlerOptions::new("default/p/guest");
    opts.fuel_meter = Some(counting.clone());
    let handler = runtime.handler(component.clone(), opts).unwrap();
    assert_eq!(get(&handler, "/").await.0, StatusCode::OK);
    // The burn is charged when the guest's call returns, which may be just after its answer.
    let one = settled(&counting, |c| c > 0).await;
    assert_eq!(get(&handler, "/").await.0, StatusCode::OK);
    settled(&counting, |c| c == 2 * one).await;

    // A budget of a few requests a minute: then 429 with retry-after, counted per handler.
    let meter = FuelMeter::new(Some(3 * one));
    let mut opts = HandlerOptions::new("default/p/guest");
    opts.fuel_meter = Some(meter.clone());
    let handler = runtime.handler(component.clone(), opts).unwrap();
    let mut served = 0;
    let answer = loop {
        let r = guests::request(&handler, "/").await;
        if r.status() != StatusCode::OK {
            break r;
        }
        served += 1;
        assert!(served <= 4, "the budget holds about three requests");
    };
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers()["x-skiff-throttled"], "fuel");
    let retry: u64 = answer.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(meter.take_throttled().get("default/p/guest"), Some(&1));

    // A guest that spins is stopped when the budget runs out mid-request: 429, not 500 or 504.
    let spin_meter = FuelMeter::new(Some(200_000_000));
    let mut opts = HandlerOptions::new("default/p/spin");
    opts.fuel_meter = Some(spin_meter.clone());
    opts.timeout = Duration::from_secs(60);
    let handler = runtime.handler(component, opts).unwrap();
    let (status, body) = get(&handler, "/loop").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("fuel budget of 200000000 per minute"), "{body}");
    assert!(spin_meter.consumed() >= 200_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_the_node_memory_and_give_it_back() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = WasmRuntime::new(RuntimeConfig {
        instance_memory: Some(40 << 20),
        ..guests::config(&cache)
    })
    .unwrap();
    let component = runtime.load(guests::hostile()).await.unwrap();
    let mut opts = HandlerOptions::new("default/p/grow");
    opts.memory_limit = 64 << 20;
    let handler = runtime.handler(component, opts).unwrap();
    // The instance may grow to 64Mi, but the node holds 40Mi for all instances: 503, retry.
    let (status, body) = get(&handler, "/grow").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("node's memory for instances is in use"), "{body}");
    let node = runtime.node_memory().expect("bounded");
    assert_eq!(node.budget(), 40 << 20);
    // The instance is gone and its memory back in the budget.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.used() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "still held: {}",
            node.used()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Many small instances at once fit; each takes its share while it lives.
    let answers = futures::future::join_all((0..8).map(|_| get(&handler, "/"))).await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::OK), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_handler_options_are_refused() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let component = runtime.load(guests::hello()).await.unwrap();

    let mut fuel = HandlerOptions::new("default/p/fuel");
    fuel.fuel = Some(1000);
    let mut memory = HandlerOptions::new("default/p/memory");
    memory.memory_limit = runtime.config().max_memory_per_instance + 1;
    let mut timeout = HandlerOptions::new("default/p/timeout");
    timeout.timeout = Duration::ZERO;
    for opts in [fuel, memory, timeout] {
        let name = opts.name.clone();
        match runtime.handler(component.clone(), opts) {
            Err(Error::InvalidOptions { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name}: expected InvalidOptions, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_without_http_export_cannot_get_a_handler() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    // An empty component (written in the text format, loaded as its binary).
    let empty = wat::parse_str("(component)").unwrap();
    let component = runtime.load(empty).await.unwrap();
    assert!(!component.is_http());
    let result = runtime.handler(component, HandlerOptions::new("default/p/empty"));
    assert!(matches!(result, Err(Error::NotHttp { .. })), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_imports_are_a_link_error() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let wat = r#"(component (import "acme:secret/vault@1.0.0" (instance (export "get" (func)))))"#;
    let result = runtime.load(wat::parse_str(wat).unwrap()).await;
    match result {
        Err(Error::Link { reason, .. }) => assert!(reason.contains("acme:secret/vault"), "{reason}"),
        other => panic!("expected a link error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pool_is_503_for_the_extra_request_only() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = WasmRuntime::new(RuntimeConfig {
        max_instances: 2,
        ..guests::config(&cache)
    })
    .unwrap();
    let component = runtime.load(guests::hostile()).await.unwrap();
    let mut opts = HandlerOptions::new("default/pool/guest");
    opts.timeout = Duration::from_secs(10);
    let handler = runtime.handler(component, opts).unwrap();
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let handler = handler.clone();
            tokio::spawn(async move { get(&handler, "/sleep?ms=1500").await.0 })
        })
        .collect();
    // Both slots are taken once both sleepers have been instantiated.
    guests::wait_until(|| handler.instances_created() == 2).await;
    let (status, body) = get(&handler, "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    for sleeper in sleepers {
        assert_eq!(sleeper.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(get(&handler, "/").await.0, StatusCode::OK);
}

/// The meter's count once `want` holds of it (within 10 s).
async fn settled(meter: &FuelMeter, want: impl Fn(u64) -> bool) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !want(meter.consumed()) {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed {}",
            meter.consumed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    meter.consumed()
}
