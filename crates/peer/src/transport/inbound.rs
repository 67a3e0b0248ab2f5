//! The listening side: accepts peer connections and the join RPC on one port.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use protobuf::Message as _;
use raft::eraftpb::Message;
use rustls::ServerConfig;
use skiff_listen::{Guard, Limits, Slot};
use skiff_pki::{Identity, Role, identity_from_cert};
use skiff_raft::snapshot::IncomingSnapshot;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::frame::{self, FRAME_MAX_BYTES, FrameType, JOIN_MAX_BYTES, Reassembler};
use super::join::{JoinReply, JoinRequest, JoinResponse};

/// A boxed future, as returned by [`PeerHandler::join`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// At most this many connections are held at once (idle ones make room for new ones; see
/// [`skiff_listen::Guard`]).
pub const MAX_CONNECTIONS: usize = 256;
/// How long a TLS handshake, and the wait for a join request, may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the handler may take to decide a join.
pub const JOIN_HANDLER_TIMEOUT: Duration = Duration::from_secs(60);

/// What the control node does with what arrives on its peer port.
pub trait PeerHandler: Send + Sync + 'static {
    /// A raft message from an authenticated control node, whose `from` is the sender's raft id.
    /// Called on a tokio task: must not block for long (step into the raft handle and return).
    fn raft(&self, msg: Message);

    /// A snapshot from an authenticated control node begins: `msg` is its `MsgSnapshot` (whose
    /// `from` is the sender's raft id); the answer is where its data goes (usually
    /// [`skiff_raft::RaftHandle::receive_snapshot`]). Once every chunk arrived and the file
    /// checked out, the message goes to [`PeerHandler::raft`]. `Err` refuses the snapshot with
    /// that reason (the sender's raft tries again later).
    fn snapshot(&self, msg: Message) -> Result<IncomingSnapshot, String>;

    /// Decides a join request from a node without a certificate. Checks the secret, assigns a
    /// raft id, signs the CSR, adds the node; `Err` carries the reason sent back to the node.
    fn join(&self, req: JoinRequest) -> BoxFuture<'_, Result<JoinResponse, String>>;
}

/// Serves peer connections from `listener` until the returned future is dropped (abort its
/// task to stop: open connections are closed with it).
///
/// Each connection is a TLS session (`tls` from [`skiff_pki::server_config`]). A client whose
/// certificate the cluster CA verified, with a control identity, may send raft frames; each
/// message is decoded (bounded by [`skiff_raft::MAX_MESSAGE_BYTES`]) and passed to
/// [`PeerHandler::raft`] only if its `from` is the certificate's raft id. Such a client may also
/// open a connection with a snapshot (any size, in chunks, to [`PeerHandler::snapshot`]). A
/// client without a certificate may send one join request. Anything else closes the connection
/// with a logged reason.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, handler: Arc<dyn PeerHandler>) {
    let acceptor = TlsAcceptor::from(tls);
    let guard = Guard::new(
        "peer",
        Limits::for_listener(MAX_CONNECTIONS).header_timeout(HANDSHAKE_TIMEOUT),
    );
    let mut conns = JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
        let (tcp, remote, slot) = guard.accept(&listener).await;
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let guard = guard.clone();
        conns.spawn(async move {
            slot.run(connection(tcp, remote, acceptor, handler, &slot, &guard))
                .await;
        });
    }
}

async fn connection(
    tcp: TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    handler: Arc<dyn PeerHandler>,
    slot: &Slot,
    guard: &Guard,
) {
    let _ = tcp.set_nodelay(true);
    let mut stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            guard.rejected(remote, &format_args!("peer tls handshake failed: {e}"));
            return;
        }
        Err(_) => {
            guard.rejected(remote, &"peer tls handshake timed out");
            return;
        }
    };
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let outcome = match leaf {
        None => serve_join(&mut stream, &handler).await,
        Some(der) => match identity_from_cert(&der) {
            Ok(identity) => {
                // A member proved who it is: never closed to make room for someone else.
                let _claim = matches!(identity.role, Role::Control { .. }).then(|| slot.claim());
                serve_peer(&mut stream, &identity, &handler).await
            }
            Err(e) => Err(format!("its certificate carries no usable identity: {e}")),
        },
    };
    match outcome {
        Ok(()) => tracing::debug!(%remote, "peer connection closed"),
        Err(reason) => guard.rejected(remote, &format_args!("peer connection closed: {reason}")),
    }
    // Say goodbye (close_notify), but never wait long for a peer that does not read.
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// Reads raft frames from an authenticated node until it hangs up.
async fn serve_peer(
    stream: &mut TlsStream<TcpStream>,
    identity: &Identity,
    handler: &Arc<dyn PeerHandler>,
) -> Result<(), String> {
    tracing::debug!(peer = %identity, "peer connection authenticated");
    let Role::Control { raft_id } = identity.role else {
        // Decide on the header alone: a frame from an agent or a gateway is never read.
        return match frame::read_header(stream, FRAME_MAX_BYTES).await? {
            None => Ok(()),
            Some(header) => Err(format!(
                "{identity} sent a {:?} frame; only control nodes may send raft messages",
                header.kind
            )),
        };
    };
    let Some(first) = frame::read_header(stream, FRAME_MAX_BYTES).await? else {
        return Ok(());
    };
    if first.kind == FrameType::SnapshotBegin {
        return super::snapshot::receive(stream, raft_id, handler, first).await;
    }
    let mut chunks = Reassembler::new(skiff_raft::MAX_MESSAGE_BYTES);
    let admit = |header: frame::Header| match header.kind {
        FrameType::JoinRequest | FrameType::JoinResponse => Err(format!(
            "{identity} sent a {:?} frame; joining is for nodes without a certificate",
            header.kind
        )),
        // Raft frames; snapshot frames are refused by the reader.
        _ => Ok(()),
    };
    let mut pending = Some(first);
    while let Some(encoded) = frame::read_message(stream, &mut chunks, &mut pending, admit).await? {
        let msg = Message::parse_from_bytes(&encoded)
            .map_err(|e| format!("malformed raft message from {identity}: {e}"))?;
        if msg.from != raft_id {
            return Err(format!(
                "{identity} sent a raft message claiming to be from node {}; refused",
                msg.from
            ));
        }
        handler.raft(msg);
    }
    Ok(())
}

/// Answers the one join request a client without a certificate may send.
async fn serve_join<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    handler: &Arc<dyn PeerHandler>,
) -> Result<(), String> {
    let read = async {
        let header = frame::read_header(stream, FRAME_MAX_BYTES)
            .await?
            .ok_or_else(|| "unauthenticated client closed without a request".to_owned())?;
        if header.kind != FrameType::JoinRequest {
            return Err(format!(
                "unauthenticated client sent a {:?} frame; only a join request is allowed without \
                 a cluster certificate",
                header.kind
            ));
        }
        if header.len > JOIN_MAX_BYTES {
            return Err(format!(
                "join request of {} bytes exceeds the limit of {JOIN_MAX_BYTES} bytes",
                header.len
            ));
        }
        frame::read_payload(stream, header).await
    };
    let payload = tokio::time::timeout(HANDSHAKE_TIMEOUT, read)
        .await
        .map_err(|_| "no join request within the time limit".to_owned())??;
    let reply = match serde_json::from_slice::<JoinRequest>(&payload) {
        Err(e) => JoinReply::Err(format!("malformed join request: {e}")),
        Ok(req) => {
            let name = req.name.clone();
            match tokio::time::timeout(JOIN_HANDLER_TIMEOUT, handler.join(req)).await {
                Ok(Ok(resp)) => {
                    tracing::info!(node = %name, raft_id = resp.raft_id, "join accepted");
                    JoinReply::Ok(resp)
                }
                Ok(Err(reason)) => {
                    tracing::warn!(node = %name, %reason, "join refused");
                    JoinReply::Err(reason)
                }
                Err(_) => JoinReply::Err("the control node did not decide in time; retry".into()),
            }
        }
    };
    let body = serde_json::to_vec(&reply).map_err(|e| format!("encoding the join reply: {e}"))?;
    let mut out = BytesMut::new();
    frame::put_frame(&mut out, FrameType::JoinResponse, &body);
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("writing the join reply: {e}"))?;
    stream
        .flush()
        .await
        .map_err(|e| format!("writing the join reply: {e}"))
}
