//! # skiff-client: talk to a Skiff control node
//!
//! A typed async client for the REST and watch API, used by the `skiff` CLI, by agents and gateways
//! (which are ordinary API clients), and by tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), skiff_client::ClientError> {
//! use skiff_api::Kind;
//! let client = skiff_client::Client::new("http://127.0.0.1:7070", "token")?;
//! let pods = client.list(Kind::Pod, Some("default"), None).await?;
//! println!("{} pods at revision {}", pods.items.len(), pods.resource_version);
//! # Ok(()) }
//! ```
//!
//! ## Core concepts
//! - [`Client`] — cheap to clone; one connection pool; every call carries the bearer token. Give it
//!   several control nodes (`http://a:7070,http://b:7070`) and it fails over between them: on a
//!   connection error, on 503 `NoLeader` (certainly not applied), and for reads on a timeout; a
//!   write whose answer never came fails with [`ClientError::Timeout`] instead of being sent twice.
//! - [`ClientError`] — distinguishes an unreachable server, a rejected token, an API error (with the
//!   server's [`ErrorBody`](skiff_api::ErrorBody)) and a watch whose history is gone (relist).
//! - [`Client::watch`] — a stream of [`WatchEvent`](skiff_api::WatchEvent)s from a revision; the
//!   [`Informer`] builds on it to keep a local cache of a kind up to date across disconnects.
//! - [`ApiPath`] — every request is addressed by one; names, keys and other data enter it only
//!   through [`ApiPath::seg`], which encodes them so that they cannot leave their segment.
#![deny(missing_docs)]

mod client;
mod error;
mod informer;
mod join;
mod path;
mod renew;
mod servers;

pub use client::{ApplyResult, Client, DEFAULT_TIMEOUT, Invocation, ListOptions};
pub use error::ClientError;
pub use informer::Informer;
pub use join::node_credentials;
pub use path::ApiPath;
pub use renew::keep_renewed;
/// What every join token starts with (then the CA hash, `::`, and the secret).
pub use skiff_pki::TOKEN_PREFIX as JOIN_TOKEN_PREFIX;
