//! # skiff-gateway: ingress
//!
//! The gateway turns HTTP requests from outside into requests for pods. It keeps the cluster's
//! [`HttpRoute`](skiff_api::HttpRoute)s and [`Endpoints`](skiff_api::Endpoints) in memory (list +
//! watch through the ordinary API), and for each request:
//!
//! ```text
//! request ──► route table: host + longest path prefix ──► rule ──► weighted backend service
//!         ──► ready endpoints ──► least outstanding requests ──► node data plane (x-skiff-pod)
//!                                                              └─ in-process when the node is local
//! ```
//!
//! | outcome | status |
//! |---|---|
//! | no route for the host and path | 404 |
//! | route, but no ready endpoint | 503 |
//! | the rule's deadline passed | 504 |
//! | the endpoint's node could not be reached | 502 (after trying the others) |
//! | the request body is larger than [`GatewayConfig::max_body_bytes`] | 413 |
//! | the request head is larger than the listener's header limit | 431 |
//!
//! The listener holds to [`skiff_listen::Limits`] ([`GatewayConfig::limits`]): connections
//! in all and per client address (idle ones make room for new ones), and a header timeout that
//! also closes idle kept-alive connections.
//!
//! The gateway authenticates with a node certificate (role gateway) that it got by joining with
//! a token (`skiff_client::node_credentials`): to the API, and to every agent's data plane
//! (mutual TLS).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::path::Path::new(".skiff-gateway/pki");
//! let me = skiff_pki::Identity::gateway("gw-1");
//! let node = skiff_client::node_credentials(dir, "http://127.0.0.1:7070", Some("SKF1…::…"), &me).await?;
//! let gw = skiff_gateway::Gateway::start(skiff_gateway::GatewayConfig::new("http://127.0.0.1:7070", node))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! let (_tx, shutdown) = tokio::sync::watch::channel(false);
//! gw.run(listener, shutdown).await;
//! # Ok(()) }
//! ```
//!
//! ## Core concepts
//! - [`RouteTable`] — an immutable snapshot rebuilt whenever routes or endpoints change; requests
//!   read the current one without locks held across awaits.
//! - **Balancing** — per endpoint in-flight counters; the endpoint with the fewest outstanding
//!   requests wins, ties broken at random.
//! - [`LocalUpstream`] — a node's data plane in the same process (`skiff up`), called directly.
#![deny(missing_docs)]

mod body;
mod gateway;
mod limit;
mod table;

pub use body::{BoxError, GatewayBody, RequestBody};
pub use gateway::{GATEWAY_CONNECTIONS, Gateway, GatewayConfig, GatewayError, LocalUpstream};
pub use limit::DEFAULT_MAX_BODY_BYTES;
pub use table::{Backend, RouteTable, Selected};
