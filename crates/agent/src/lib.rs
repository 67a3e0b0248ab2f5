//! # skiff-agent: the worker
//!
//! An agent makes one machine a Skiff node. It registers a [`Node`](skiff_api::Node) and keeps its
//! heartbeat fresh, watches the pods bound to it through the same REST/watch API every client uses,
//! loads their components into the [`WasmRuntime`](skiff_runtime_wasm::WasmRuntime), reports their
//! status, and serves their HTTP traffic on one data-plane listener.
//!
//! ```no_run
//! # async fn demo() -> Result<(), skiff_agent::AgentError> {
//! let config = skiff_agent::AgentConfig::new("node-1", "http://127.0.0.1:7070", "TOKEN", "./.skiff/agent");
//! let agent = skiff_agent::Agent::start(config, "http://127.0.0.1:7071".into()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7071").await.unwrap();
//! let (_tx, shutdown) = tokio::sync::watch::channel(false);
//! agent.run(listener, shutdown).await;
//! # Ok(()) }
//! ```
//!
//! ## Core concepts
//! - [`Agent`] — one per node; cheap to clone.
//! - **Pod sync** — level-triggered: the informer's cache of this node's pods is the desired set;
//!   pods are started (artifact fetched by digest and cached on disk, component compiled once and
//!   cached by the runtime) and stopped to match, keyed by pod uid so a re-created pod with the same
//!   name is a new pod. Status goes back as `Pending` → `Running` (ready) or `Failed` with a reason.
//! - [`DataPlane`] — serves a request for a pod named in the `x-skiff-pod` header. The gateway calls
//!   it over HTTP, or directly when it runs in the same process.
#![deny(missing_docs)]

mod agent;
mod dataplane;
mod error;
mod pods;
mod store;

pub use agent::{Agent, AgentConfig};
pub use dataplane::DataPlane;
pub use error::AgentError;
pub use pods::LocalPod;
