//! The instance allocator: pooling when it fits, on-demand when it does not.

use http::StatusCode;
use skiff_runtime_wasm::{AllocatorKind, HandlerOptions, RuntimeConfig, WasmRuntime};

use crate::guests::{self, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modest_pool_uses_the_pooling_allocator() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    assert_eq!(runtime.allocator(), AllocatorKind::Pooling);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsatisfiable_pool_falls_back_to_on_demand_and_serves() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = WasmRuntime::new(RuntimeConfig {
        // Millions of 1 TiB slots: far beyond any virtual address space.
        max_instances: 4_000_000,
        max_memory_per_instance: 1 << 40,
        ..guests::config(&cache)
    })
    .expect("runtime falls back instead of failing");
    assert_eq!(runtime.allocator(), AllocatorKind::OnDemand);
    let component = runtime.load(guests::hello()).await.unwrap();
    let handler = runtime
        .handler(component, HandlerOptions::new("default/fallback/hello"))
        .unwrap();
    let (status, body) = get(&handler, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello from skiff (call 1 of this instance)\n");
}
