//! The API listener: HTTPS (TLS 1.3, node certificates of the cluster CA), and plain HTTP on the
//! same port only when the operator asks for it, told apart by the first byte a client sends.
//!
//! A TLS connection may present a client certificate; the identity in it (control node, agent,
//! gateway) is attached to every request of the connection as a [`Conn`] and decides what the
//! request may do (see [`crate::access`]). Without `plain_http`, a plain-HTTP request is answered
//! 400 with the https URL to use; with it, plain HTTP serves requests, but a bearer token over it
//! is accepted only from a loopback client (a token must not cross a network in clear).
//!
//! The listener holds to [`skiff_listen::Limits`]: a connection cap per listener and per source
//! address (idle connections make room for new ones), and a header timeout that also bounds
//! the first byte and the TLS handshake.
use std::net::SocketAddr;

use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use skiff_listen::{Guard, Limits, Slot};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::conn::Conn;
use crate::plane::ControlPlane;

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE: u8 = 0x16;
/// Connections the API listener may hold (lowered to its share of the open-file limit).
pub(crate) const API_CONNECTIONS: usize = 4096;

impl ControlPlane {
    /// Serves the API on `listener` until `stop` turns true: HTTPS with this node's certificate
    /// and plain HTTP on the same port.
    pub async fn serve_api(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let router = self.router();
        let plain = if self.inner.config.plain_http {
            router.clone()
        } else {
            plain_http_refused(listener.local_addr().ok())
        };
        let acceptor = TlsAcceptor::from(self.inner.api_tls.clone());
        let guard = Guard::new("api", Limits::for_listener(API_CONNECTIONS));
        let mut conns = JoinSet::new();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                (tcp, remote, slot) = guard.accept(&listener) => {
                    let _ = tcp.set_nodelay(true);
                    let conn = Accepted { router: router.clone(), plain: plain.clone(), acceptor: acceptor.clone(), guard: guard.clone() };
                    conns.spawn(async move { slot.run(conn.serve(tcp, remote, &slot)).await; });
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.abort_all();
    }
}

/// What answers plain HTTP when it is off: 400 and the https URL, for every request.
fn plain_http_refused(local: Option<SocketAddr>) -> Router {
    let url = local
        .map(|a| format!("https://{a}"))
        .unwrap_or_else(|| "https://…".into());
    Router::new().fallback(move || {
        let url = url.clone();
        async move {
            crate::error::ApiError::new(
                skiff_api::ErrorCode::PlainHttpRefused,
                format!(
                    "this API port speaks HTTPS: use {url} with the cluster CA (<state dir>/pki/ca.crt, \
                     `ca:` in client.yaml, --ca); plain HTTP is served only when the server runs with --plain-http"
                ),
            )
        }
    })
}

/// What serves one accepted connection.
struct Accepted {
    router: Router,
    plain: Router,
    acceptor: TlsAcceptor,
    guard: Guard,
}

impl Accepted {
    /// Tells TLS from plain HTTP by the first byte, then serves HTTP on the connection. The
    /// first byte and the TLS handshake must come within the header timeout.
    async fn serve(self, tcp: TcpStream, remote: SocketAddr, slot: &Slot) {
        let limits = self.guard.limits();
        let mut first = [0u8; 1];
        match tokio::time::timeout(limits.header_timeout, tcp.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            _ => return,
        }
        if first[0] != TLS_HANDSHAKE {
            let conn = Conn {
                remote: Some(remote),
                ..Conn::default()
            };
            http(TokioIo::new(tcp), self.plain.layer(Extension(conn)), slot, limits).await;
            return;
        }
        let handshake = tokio::time::timeout(limits.header_timeout, self.acceptor.accept(tcp));
        let tls = match handshake.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.guard.rejected(
                    remote,
                    &format_args!(
                        "TLS handshake refused (a client certificate not from this cluster's CA?): {e}"
                    ),
                );
                return;
            }
            Err(_) => return,
        };
        let certs = tls.get_ref().1.peer_certificates();
        let conn = Conn {
            tls: true,
            identity: skiff_pki::https::client_identity(certs),
            remote: Some(remote),
            issued_at: skiff_pki::https::client_issued_at(certs),
        };
        http(
            TokioIo::new(tls),
            self.router.layer(Extension(conn)),
            slot,
            limits,
        )
        .await;
    }
}

async fn http<I>(io: TokioIo<I>, router: Router, slot: &Slot, limits: &Limits)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = slot.track(TowerToHyperService::new(router));
    let _ = skiff_listen::http1(limits)
        .serve_connection(io, service)
        .with_upgrades()
        .await;
}
