//! Skiff's in-process WebAssembly runtime for worker nodes: it compiles
//! `wasi:http/proxy` components once, caches them by content, and serves HTTP
//! requests with them, each request in a sandbox with its own limits.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use skiff_runtime_wasm::{HandlerOptions, LogBuffer, RuntimeConfig, WasmRuntime};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = WasmRuntime::new(RuntimeConfig {
//!     cache_dir: "/var/lib/skiff/wasm-cache".into(),
//!     ..RuntimeConfig::default()
//! })?;
//! let component = runtime.load(std::fs::read("hello.wasm")?).await?;
//!
//! let logs = Arc::new(LogBuffer::new(1024 * 1024));
//! let mut opts = HandlerOptions::new("default/hello-7f9c/web");
//! opts.env = vec![("SKIFF_POD_NAME".into(), "hello-7f9c".into())];
//! opts.timeout = Duration::from_secs(5);
//! opts.logs = logs.clone();
//! let handler = runtime.handler(component, opts)?;
//!
//! let request = http::Request::get("http://localhost/").body(Full::new(Bytes::new()))?;
//! let response = handler.handle(request).await; // never fails: errors are 5xx
//! println!("{} {:?}", response.status(), logs.lines());
//! # Ok(())
//! # }
//! ```
//!
//! Behind hyper, as the worker's data plane does (the response body,
//! [`ResponseBody`], goes to hyper as it is):
//!
//! ```no_run
//! # async fn serve(handler: skiff_runtime_wasm::HttpHandler, stream: tokio::net::TcpStream) {
//! let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
//!     let handler = handler.clone();
//!     async move { Ok::<_, std::convert::Infallible>(handler.handle(req).await) }
//! });
//! let io = hyper_util::rt::TokioIo::new(stream);
//! let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
//! # }
//! ```
//!
//! # Core concepts
//!
//! ```text
//!  WasmRuntime (1 per process) ── Engine: pooling | on-demand, epoch ticker thread
//!      │ load(bytes)  sha256 ──► memory ──► <cache_dir>/<sha256>.cwasm ──► compile
//!      ▼
//!  Arc<LoadedComponent> (1 per digest): compiled code + linked ProxyPre
//!      │ handler(component, HandlerOptions)
//!      ▼
//!  HttpHandler (1 per pod component, cheap clone) ── handle(request) ──► response
//!      │ per request: Store { WASI ctx, limits, deadline, fuel } + instance
//!      ▼
//!  LogBuffer (1 per pod): guest stdout/stderr lines, bounded
//! ```
//!
//! * **Engine** — one per process, inside [`WasmRuntime`]. Component model on,
//!   async host calls, epoch interruption for deadlines (one ticker thread,
//!   [`RuntimeConfig::epoch_tick`]), optional fuel ([`RuntimeConfig::fuel`]). The
//!   pooling allocator is sized from [`RuntimeConfig::max_instances`] and
//!   [`RuntimeConfig::max_memory_per_instance`]; when the pool cannot be reserved
//!   (small virtual address space, absurd sizes) the engine falls back to on-demand
//!   allocation and says so in the log and in [`WasmRuntime::allocator`].
//! * **Cache** — components are identified by [`WasmRuntime::digest`]
//!   (`sha256:<hex>`). [`WasmRuntime::load`] compiles off the async threads, stores
//!   the compiled artifact in the private cache directory with a sidecar recording
//!   the engine's compatibility hash and the artifact's hash, and keeps one linked
//!   pre-instance per digest in memory. A second load is a memory hit; a new process
//!   reads the artifact back instead of compiling ([`WasmRuntime::cache_stats`]).
//! * **Linking** — the whole WASI 0.2 set (cli, clocks, filesystem, random, sockets,
//!   io) plus `wasi:http`. Imports and the exported `incoming-handler` resolve by
//!   semver, so components built against any 0.2.x (Rust, Python, JS toolchains)
//!   work. Capabilities are denied by default: no preopened directories, no socket
//!   address is permitted, outbound HTTP only where [`HandlerOptions::egress`] grants it
//!   (nowhere by default; see [`Egress`]).
//! * **Handler** — [`HttpHandler::handle`] gives each request a fresh instance in a
//!   new store (microseconds with the pooling allocator), or, with
//!   [`HandlerOptions::instance_reuse`], one from a small idle pool. A WASI 0.2
//!   `incoming-handler.handle` export may be called again on the same instance once
//!   the previous call has returned (the generated bindings finish each call,
//!   post-return included), but never concurrently, and never after a trap, which
//!   leaves the instance unusable. So each instance serves one request at a time,
//!   goes back to the idle pool only after a clean return, and is dropped after a
//!   trap or a deadline. (Concurrent calls into one instance need the component-model
//!   async ABI, which WASI 0.2 guests do not use.) The guest call runs in its own
//!   task: the response head is returned as soon as the guest sets it, and the body
//!   streams while the guest writes it.
//! * **Response body** — [`ResponseBody`] is `UnsyncBoxBody<Bytes, BodyError>`:
//!   `Send + 'static`, no `anyhow` or wasmtime type in its signature, and accepted
//!   by hyper's server as it is. It is not `Sync` because the guest's body stream is
//!   not.
//! * **Limits** — per handler: linear memory ([`HandlerOptions::memory_limit`],
//!   enforced by a store limiter), wall-clock deadline per request
//!   ([`HandlerOptions::timeout`], via epochs; a computing guest also yields to other
//!   tasks every tick), fuel, and the runtime-wide request body limit
//!   ([`RuntimeConfig::max_body_bytes`]). A trap is 500, a passed deadline 504, a
//!   refused memory growth that kills the guest 500 — only that request fails.
//! * **Logs** — guest stdout and stderr go line by line, with an RFC 3339 timestamp
//!   and the stream name, to the [`LogBuffer`] given in the options: bounded in bytes
//!   and lines (oldest dropped), readable with [`LogBuffer::lines`] and followable
//!   with [`LogBuffer::subscribe`].
#![deny(missing_docs)]

mod arm;
mod body;
mod cache;
mod command;
mod egress;
mod engine;
mod error;
mod fuel;
mod function;
mod handler;
mod keyvalue;
mod logs;
mod memory;
mod runtime;
mod state;
mod trace;

pub use body::{BodyError, ResponseBody};
pub use command::{CommandExit, CommandOptions};
pub use egress::{Denials, Denied, Egress};
pub use engine::{AllocatorKind, RuntimeConfig};
pub use error::Error;
pub use fuel::{FuelMeter, Throttled};
pub use function::{CallFailure, Event, FunctionError, FunctionOptions, Payload};
pub use handler::{HandlerOptions, HttpHandler};
pub use keyvalue::{KeyValueBackend, KeyValueGrant, KvFuture};
pub use logs::{LogBuffer, LogLine, MAX_LINE_BYTES, MAX_LOG_LINES, Stream};
pub use memory::NodeMemory;
pub use runtime::{CacheStats, LoadedComponent, WasmRuntime};
