//! # skiff-control: the control node
//!
//! A control node keeps the cluster's state in a Raft group ([`skiff_raft`]) whose state machine is
//! [`skiff_state::Machine`], serves the REST + watch API over it, stores artifacts, and — while it
//! leads — runs the controllers and the scheduler loop.
//!
//! ```text
//!  HTTP ──► router ──► validate ──► Command ──► raft propose ──► commit ──► Machine::apply
//!                                                                            │ watch events
//!  controllers + scheduler (leader) ◄── broadcast ◄─────────────────────────┘
//!        └── reconcile (pure: state snapshot → ops) ──► propose
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), skiff_control::ControlError> {
//! let plane = skiff_control::ControlPlane::open(skiff_control::ControlConfig::new("./.skiff")).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await.unwrap();
//! let (_tx, shutdown) = tokio::sync::watch::channel(false);
//! plane.spawn_controllers(shutdown.clone());
//! axum::serve(listener, plane.router()).await.unwrap();
//! # Ok(()) }
//! ```
//!
//! ## Core concepts
//! - [`ControlPlane`] — cheap to clone; owns the Raft handle, a state [`Reader`](skiff_state::Reader),
//!   the watch event channel, the [`ArtifactStore`] and the admin token.
//! - **Writes** become one [`skiff_state::Command`] each (a multi-object apply is one command, so it
//!   is stored all-or-nothing); the API answers after the command is applied.
//! - **Reads** wait for a Raft read index first (linearizable), unless `?consistency=stale`.
//! - **Secrets** are sealed before [`ControlPlane::propose`] (AES-256-GCM with the cluster key in
//!   `pki/secrets.key`), so the Raft log, tables, snapshots and backups hold only
//!   `enc:v1:…` values; the API opens them for authorised reads (get, list, watch, write answers).
//!   [`ControlPlane::list`] and the [`Reader`](skiff_state::Reader) return them sealed.
//! - **Node authorizer**: an agent certificate reads a Secret only while a pod bound to its node
//!   references it; gateways read neither ConfigMaps nor Secrets.
//! - **Controllers** (the `skiff-controllers` crate) are pure functions from a `Snapshot` to ops;
//!   a level-triggered loop here runs them after every change and once a second.
#![deny(missing_docs)]

mod access;
mod answers;
mod api;
mod artifact_gc;
mod artifacts;
mod audit;
mod cluster;
mod conn;
mod controllers;
mod digest;
mod disk;
mod error;
mod files;
mod forward;
mod functions;
mod headers;
mod ids;
mod join;
mod json_errors;
mod keyvalue;
mod members;
mod open;
pub mod openapi;
mod plane;
mod quota;
mod reads;
mod replicate;
mod replicated;
mod secrets;
mod serve;
mod triggers;
mod watch;
mod watchers;

pub use artifacts::ArtifactStore;
pub use cluster::{ClusterConfig, JoinConfig, MemberInfo};
pub use disk::DEFAULT_MIN_FREE_BYTES;
pub use error::{ApiError, ControlError, WriteError};
pub use headers::{FORWARDED_HEADER, REQUEST_ID_HEADER};
pub use members::MemberView;
pub use plane::{ControlConfig, ControlPlane, DEFAULT_NODE_CERT_LIFETIME};
