//! # skiff-listen: listeners that one slow client cannot exhaust
//!
//! Every socket Skiff listens on (the API, the gateway, a worker's data plane, the Raft peer
//! port, the container plugin's socket) accepts connections through a [`Guard`]. The guard
//! holds each listener to its [`Limits`]:
//!
//! - **A connection cap per listener and per source address.** A connection is *idle* while it
//!   has no request in service: before its first request head is complete (a slow TLS
//!   handshake, half a header) and between kept-alive requests. When a cap is reached, the
//!   oldest idle connection of the source holding the most connections is closed to admit the
//!   new one; only when every held connection is serving a request is the new one refused. So
//!   a flood of slow connections recycles its own slots, and a client that sends its request
//!   promptly is always served, even from the same address as the flood.
//! - **Timeouts.** [`http1`] and [`auto`] build hyper connection builders with a timer, a
//!   header-read timeout that also bounds how long a kept-alive connection may stay idle, and a
//!   header-size cap. Listeners that read a first byte or a TLS handshake before HTTP use
//!   [`Limits::header_timeout`] for that too.
//! - **Accept errors back off.** Out of file descriptors (`EMFILE`, `ENFILE`) or memory, the
//!   accept loop sleeps with a doubling delay instead of spinning, and warnings are logged at
//!   most once per [`LOG_EVERY`] per listener with a count of what was not logged.
//! - **Room to work.** [`raise_fd_limit`] lifts the soft open-file limit to the hard one at
//!   start; [`Limits::for_listener`] keeps each listener's cap to a share of that limit, so the
//!   process keeps descriptors for its own files.
//!
//! ```no_run
//! # async fn run(listener: tokio::net::TcpListener) {
//! use skiff_listen::{Guard, Limits};
//! let guard = Guard::new("example", Limits::for_listener(1024));
//! loop {
//!     let (stream, _remote, slot) = guard.accept(&listener).await;
//!     let builder = skiff_listen::http1(guard.limits());
//!     tokio::spawn(async move {
//!         let svc = slot.track(hyper::service::service_fn(|_req| async {
//!             Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("ok")))
//!         }));
//!         let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
//!         slot.run(conn).await;
//!     });
//! }
//! # }
//! ```

mod fd;
mod guard;
mod limits;
mod throttle;
mod track;

pub use fd::{fd_limit, raise_fd_limit};
pub use guard::{Guard, Slot};
pub use limits::{Limits, auto, http1};
pub use throttle::LOG_EVERY;
pub use track::{Claim, Tracked, TrackedBody, TrackedFuture};
