//! Content-addressed loading: digests, memory and disk cache hits, bad bytes.

use skiff_runtime_wasm::{CacheStats, Error, WasmRuntime};

use crate::guests;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_load_is_a_cache_hit_and_new_process_reads_disk() {
    let cache = tempfile::tempdir().unwrap();
    let bytes = guests::hello();
    let digest = WasmRuntime::digest(&bytes);
    assert!(
        digest.starts_with("sha256:") && digest.len() == 7 + 64,
        "{digest}"
    );

    let runtime = guests::runtime(&cache);
    let first = runtime.load(bytes.clone()).await.unwrap();
    assert_eq!(first.digest(), digest);
    assert_eq!(first.size(), bytes.len());
    let hex = digest.trim_start_matches("sha256:");
    let artifact = cache.path().join(format!("{hex}.cwasm"));
    assert!(artifact.exists());
    assert!(cache.path().join(format!("{hex}.meta")).exists());
    let modified = std::fs::metadata(&artifact).unwrap().modified().unwrap();

    let second = runtime.load(bytes.clone()).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &second));
    assert_eq!(
        runtime.cache_stats(),
        CacheStats {
            compiled: 1,
            disk_hits: 0,
            memory_hits: 1
        }
    );

    // A new runtime on the same directory (a restarted agent) does not compile.
    let restarted = guests::runtime(&cache);
    let third = restarted.load(bytes).await.unwrap();
    assert_eq!(third.digest(), digest);
    assert_eq!(
        restarted.cache_stats(),
        CacheStats {
            compiled: 0,
            disk_hits: 1,
            memory_hits: 0
        }
    );
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().modified().unwrap(),
        modified
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_cache_entry_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let bytes = guests::hello();
    let hex = WasmRuntime::digest(&bytes)
        .trim_start_matches("sha256:")
        .to_string();
    guests::runtime(&cache).load(bytes.clone()).await.unwrap();
    let artifact = cache.path().join(format!("{hex}.cwasm"));
    let mut code = std::fs::read(&artifact).unwrap();
    let middle = code.len() / 2;
    code[middle] ^= 0xFF;
    std::fs::write(&artifact, code).unwrap();

    let runtime = guests::runtime(&cache);
    runtime.load(bytes).await.unwrap();
    assert_eq!(runtime.cache_stats().compiled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_compile_once() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let bytes = guests::hostile();
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let runtime = runtime.clone();
            let bytes = bytes.clone();
            tokio::spawn(async move { runtime.load(bytes).await })
        })
        .collect();
    for load in loads {
        load.await.unwrap().unwrap();
    }
    let stats = runtime.cache_stats();
    assert_eq!((stats.compiled, stats.memory_hits), (1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bytes_are_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    for bytes in [
        b"not wasm at all".to_vec(),
        Vec::new(),
        // A valid core module is not a component.
        b"\0asm\x01\0\0\0".to_vec(),
        // A truncated component.
        guests::hello()[..100].to_vec(),
    ] {
        let digest = WasmRuntime::digest(&bytes);
        match runtime.load(bytes).await {
            Err(e @ Error::InvalidComponent { .. }) => {
                let Error::InvalidComponent { digest: d, invalid } = &e else {
                    unreachable!()
                };
                assert_eq!(d, &digest);
                assert!(e.to_string().contains(&invalid.to_string()), "{e}");
            }
            other => panic!("expected InvalidComponent, got {other:?}"),
        }
    }
    assert_eq!(runtime.cache_stats().compiled, 0);
    // The runtime still loads good components afterwards.
    runtime.load(guests::hello()).await.unwrap();
}
