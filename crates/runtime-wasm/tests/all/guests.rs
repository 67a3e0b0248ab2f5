//! Builds the guest components with cargo and runs requests through handlers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use skiff_runtime_wasm::{HttpHandler, RuntimeConfig, WasmRuntime};

/// The repository root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds a standalone guest project for `wasm32-wasip2` in its own `target/`
/// directory and returns the bytes of `artifact`.
///
/// Panics with the cargo output when the build fails (for example when the
/// `wasm32-wasip2` target is not installed: `rustup target add wasm32-wasip2`).
pub(crate) fn build_guest(project: &Path, artifact: &str) -> Vec<u8> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .current_dir(project)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
        // The outer test build's settings must not leak into the guest build.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .output()
        .expect("run cargo to build a guest");
    assert!(
        output.status.success(),
        "building guest {} failed (is the wasm32-wasip2 target installed?):\n{}",
        project.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let path = project.join("target/wasm32-wasip2/release").join(artifact);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `examples/hello-http`, built once per test process.
pub(crate) fn hello() -> Vec<u8> {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| build_guest(&repo_root().join("examples/hello-http"), "hello_http.wasm"))
        .clone()
}

/// `tests/guests/hostile`, built once per test process.
pub(crate) fn hostile() -> Vec<u8> {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| build_guest(&repo_root().join("tests/guests"), "hostile.wasm"))
        .clone()
}

/// `tests/guests/job` (a wasi:cli command), built once per test process.
pub(crate) fn job() -> Vec<u8> {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| build_guest(&repo_root().join("tests/guests"), "job.wasm"))
        .clone()
}

/// `tests/guests/function` (a skiff:function component), built once per test process.
pub(crate) fn function() -> Vec<u8> {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| build_guest(&repo_root().join("tests/guests"), "function.wasm"))
        .clone()
}

/// A runtime with a fresh cache directory and a small pool.
pub(crate) fn runtime(cache: &tempfile::TempDir) -> WasmRuntime {
    WasmRuntime::new(config(cache)).expect("create runtime")
}

/// The test configuration: small pool, 10 ms ticks.
pub(crate) fn config(cache: &tempfile::TempDir) -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: cache.path().to_path_buf(),
        max_instances: 64,
        max_memory_per_instance: 128 * 1024 * 1024,
        epoch_tick: Duration::from_millis(10),
        max_body_bytes: 1024 * 1024,
        fuel: false,
        instance_memory: None,
    }
}

/// Sends `GET path` and returns the status and the whole body.
pub(crate) async fn get(handler: &HttpHandler, path: &str) -> (StatusCode, String) {
    send(handler, http::Method::GET, path, Bytes::new()).await
}

/// Sends `GET path` and returns the response as the handler answered it (head only read).
pub(crate) async fn request(
    handler: &HttpHandler,
    path: &str,
) -> http::Response<skiff_runtime_wasm::ResponseBody> {
    let request = http::Request::builder()
        .uri(format!("http://test.local{path}"))
        .body(Full::new(Bytes::new()))
        .expect("build request");
    handler.handle(request).await
}

/// Sends a request and returns the status and the whole body (within 30 s).
pub(crate) async fn send(
    handler: &HttpHandler,
    method: http::Method,
    path: &str,
    body: Bytes,
) -> (StatusCode, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://test.local{path}"))
        .body(Full::new(body))
        .expect("build request");
    tokio::time::timeout(Duration::from_secs(30), async {
        read_response(handler.handle(request).await).await
    })
    .await
    .expect("request finished within 30 s")
}

/// The status and body text of a handler's response.
async fn read_response(response: http::Response<skiff_runtime_wasm::ResponseBody>) -> (StatusCode, String) {
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Polls `condition` every few milliseconds until it holds; panics after 10 s.
pub(crate) async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Sends `POST path` with a body of `len` bytes streamed in 64 KiB chunks, with no
/// `content-length` and no size hint.
pub(crate) async fn send_streamed(handler: &HttpHandler, path: &str, len: usize) -> (StatusCode, String) {
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = (0..len)
        .step_by(64 * 1024)
        .map(|start| {
            Ok(http_body::Frame::data(Bytes::from(vec![
                b'z';
                (len - start)
                    .min(64 * 1024)
            ])))
        })
        .collect();
    let body = http_body_util::StreamBody::new(futures::stream::iter(chunks));
    let request = http::Request::post(format!("http://test.local{path}"))
        .body(body)
        .expect("build request");
    let response = tokio::time::timeout(Duration::from_secs(30), handler.handle(request))
        .await
        .expect("request finished within 30 s");
    read_response(response).await
}
