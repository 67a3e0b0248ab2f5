//! Snapshot transfers: a connection of their own per snapshot, the file streamed in chunks.
//!
//! ```text
//!  sender (leader)                                      receiver (follower)
//!  connect (TLS, the peer's raft id checked)  ───────►  serve(): control certificate, from == raft id
//!  SNAPSHOT_BEGIN  MsgSnapshot (descriptor)   ───────►  PeerHandler::snapshot → IncomingSnapshot
//!  SNAPSHOT_CHUNK  ≤ 1 MiB of the file        ───────►  written to a temporary file, hashed
//!    … the next chunk is read only once the connection took this one (TCP flow control) …
//!  SNAPSHOT_END                               ───────►  size + sha256 checked, synced, renamed,
//!                                                       PeerHandler::raft(MsgSnapshot)
//!  report finished / failed  ◄───────  SNAPSHOT_ACK  (empty: taken | the reason it was refused)
//! ```
//!
//! Neither side holds more than one chunk in memory. A connection that breaks, a stall longer
//! than [`SNAPSHOT_IDLE_TIMEOUT`], or a refusal fails the transfer: the receiver's partial file
//! is removed, and raft on the leader sends the snapshot again.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;
use skiff_raft::snapshot::{CHUNK_BYTES, OutgoingSnapshot};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::frame::{self, FRAME_MAX_BYTES, FrameType, Header, SNAPSHOT_ACK_MAX_BYTES};
use super::inbound::PeerHandler;
use super::outbound::{Shared, connect};
use crate::PeerError;

/// How long either side of a snapshot transfer waits for the other to move (a chunk written or
/// read) before it gives up.
pub const SNAPSHOT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the sender waits for the answer after the last chunk: the receiver syncs the whole
/// file to its disk first.
pub const SNAPSHOT_ACK_TIMEOUT: Duration = Duration::from_secs(120);

/// Streams one snapshot to peer `id` at `addr` and reports how it went.
pub(super) async fn send(id: u64, addr: String, snapshot: OutgoingSnapshot, shared: Arc<Shared>) {
    let (index, size) = (snapshot.index(), snapshot.size());
    let (message, data, report) = snapshot.into_parts();
    let started = std::time::Instant::now();
    match transfer(id, &addr, message, data, size, &shared).await {
        Ok(()) => {
            shared.snapshots_sent.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                peer = id,
                index,
                bytes = size,
                millis = started.elapsed().as_millis() as u64,
                "raft snapshot streamed to peer"
            );
            report.finished();
        }
        Err(e) => {
            shared.snapshots_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = id, %addr, index, error = %e, "raft snapshot transfer failed; raft sends it again");
            report.failed(e.to_string());
        }
    }
}

async fn transfer(
    id: u64,
    addr: &str,
    message: Message,
    data: Box<dyn Read + Send>,
    size: u64,
    shared: &Shared,
) -> Result<(), PeerError> {
    let io = |source: std::io::Error| PeerError::Io {
        addr: addr.to_owned(),
        source,
    };
    let protocol = |reason: String| PeerError::Protocol {
        addr: addr.to_owned(),
        reason,
    };
    let stalled = || super::timed_out("streaming a snapshot", addr, SNAPSHOT_IDLE_TIMEOUT);
    let encoded = message
        .write_to_bytes()
        .map_err(|e| protocol(format!("cannot encode the snapshot message: {e}")))?;
    if encoded.len() > FRAME_MAX_BYTES {
        return Err(protocol(format!(
            "the snapshot message is {} bytes, more than a frame holds",
            encoded.len()
        )));
    }
    let stream = connect(id, addr, shared).await?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut send_frame = async |kind: FrameType, payload: &[u8]| {
        let write = async {
            writer.write_all(&frame::header(kind, payload.len())).await?;
            writer.write_all(payload).await
        };
        tokio::time::timeout(SNAPSHOT_IDLE_TIMEOUT, write)
            .await
            .map_err(|_| stalled())?
            .map_err(io)
    };
    send_frame(FrameType::SnapshotBegin, &encoded).await?;
    // One buffer, filled on a blocking thread (the file) and written before the next read.
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut data = Some(data);
    let mut sent = 0u64;
    loop {
        let mut source = data
            .take()
            .ok_or_else(|| protocol("the snapshot reader is gone".into()))?;
        let (source, buf, n) = tokio::task::spawn_blocking(move || {
            let n = read_full(&mut source, &mut chunk);
            (source, chunk, n)
        })
        .await
        .map_err(|e| protocol(format!("the snapshot reader failed: {e}")))?;
        let n = n.map_err(|e| protocol(format!("cannot read this node's snapshot file: {e}")))?;
        (data, chunk) = (Some(source), buf);
        if n == 0 {
            break;
        }
        send_frame(FrameType::SnapshotChunk, &chunk[..n]).await?;
        sent += n as u64;
    }
    if sent != size {
        return Err(protocol(format!(
            "this node's snapshot file held {sent} bytes, its descriptor says {size}"
        )));
    }
    send_frame(FrameType::SnapshotEnd, &[]).await?;
    tokio::time::timeout(SNAPSHOT_IDLE_TIMEOUT, writer.flush())
        .await
        .map_err(|_| stalled())?
        .map_err(io)?;
    let answer = async {
        let header = frame::read_header(&mut reader, SNAPSHOT_ACK_MAX_BYTES)
            .await
            .map_err(&protocol)?
            .ok_or_else(|| protocol("the peer closed the connection without answering".into()))?;
        if header.kind != FrameType::SnapshotAck {
            return Err(protocol(format!(
                "expected a snapshot answer, got a {:?} frame",
                header.kind
            )));
        }
        frame::read_payload(&mut reader, header).await.map_err(&protocol)
    };
    let reason = tokio::time::timeout(SNAPSHOT_ACK_TIMEOUT, answer)
        .await
        .map_err(|_| super::timed_out("waiting for the snapshot answer", addr, SNAPSHOT_ACK_TIMEOUT))??;
    if !reason.is_empty() {
        return Err(PeerError::SnapshotRefused {
            addr: addr.to_owned(),
            reason: String::from_utf8_lossy(&reason).into_owned(),
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
    Ok(())
}

/// Fills `buf` as far as the reader goes: less only at its end.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Receives the snapshot whose `SNAPSHOT_BEGIN` header opened the connection of `raft_id`
/// (already authenticated), answers, and returns why it was refused, if it was.
pub(super) async fn receive<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    raft_id: u64,
    handler: &Arc<dyn PeerHandler>,
    begin: Header,
) -> Result<(), String> {
    let payload = frame::read_payload(stream, begin).await?;
    let msg = Message::parse_from_bytes(&payload)
        .map_err(|e| format!("malformed snapshot message from node {raft_id}: {e}"))?;
    if msg.from != raft_id {
        return Err(format!(
            "node {raft_id} sent a snapshot claiming to be from node {}; refused",
            msg.from
        ));
    }
    let index = msg.get_snapshot().get_metadata().index;
    let outcome = receive_data(stream, msg, handler).await;
    let mut reason = outcome.as_ref().err().cloned().unwrap_or_default();
    if reason.len() > SNAPSHOT_ACK_MAX_BYTES {
        let mut end = SNAPSHOT_ACK_MAX_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    match &outcome {
        Ok(bytes) => tracing::info!(from = raft_id, index, bytes, "raft snapshot received"),
        Err(why) => tracing::warn!(from = raft_id, index, reason = %why, "raft snapshot refused"),
    }
    let answer = async {
        stream
            .write_all(&frame::header(FrameType::SnapshotAck, reason.len()))
            .await?;
        stream.write_all(reason.as_bytes()).await?;
        stream.flush().await
    };
    match tokio::time::timeout(SNAPSHOT_IDLE_TIMEOUT, answer).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("answering the snapshot transfer: {e}")),
        Err(_) => Err("answering the snapshot transfer timed out".into()),
    }
}

/// Writes the chunks to the handler's [`skiff_raft::snapshot::IncomingSnapshot`] until the end
/// frame, checks the file and hands the message on; the bytes received.
async fn receive_data<S: AsyncRead + Unpin>(
    stream: &mut S,
    msg: Message,
    handler: &Arc<dyn PeerHandler>,
) -> Result<u64, String> {
    let stalled = || {
        format!(
            "the sender sent nothing for {} s; the transfer is abandoned",
            SNAPSHOT_IDLE_TIMEOUT.as_secs()
        )
    };
    let mut incoming = handler.snapshot(msg)?;
    loop {
        let header = tokio::time::timeout(SNAPSHOT_IDLE_TIMEOUT, frame::read_header(stream, FRAME_MAX_BYTES))
            .await
            .map_err(|_| stalled())??
            .ok_or_else(|| {
                format!(
                    "the connection closed after {} of {} bytes",
                    incoming.received(),
                    incoming.size()
                )
            })?;
        match header.kind {
            FrameType::SnapshotChunk => {
                let chunk = tokio::time::timeout(SNAPSHOT_IDLE_TIMEOUT, frame::read_payload(stream, header))
                    .await
                    .map_err(|_| stalled())??;
                // The file is written on a blocking thread; a failed write drops (removes) it.
                incoming = tokio::task::spawn_blocking(move || match incoming.write(&chunk) {
                    Ok(()) => Ok(incoming),
                    Err(e) => Err(e.to_string()),
                })
                .await
                .map_err(|e| format!("writing the snapshot failed: {e}"))??;
            }
            FrameType::SnapshotEnd if header.len == 0 => break,
            kind => {
                return Err(format!(
                    "a {kind:?} frame of {} bytes in the middle of a snapshot transfer",
                    header.len
                ));
            }
        }
    }
    let size = incoming.size();
    let msg = tokio::task::spawn_blocking(move || incoming.finish())
        .await
        .map_err(|e| format!("checking the snapshot failed: {e}"))?
        .map_err(|e| e.to_string())?;
    handler.raft(msg);
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_full_fills_until_the_end() {
        let data: Vec<u8> = (0..10).collect();
        let mut r: &[u8] = &data;
        let mut buf = [0u8; 4];
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 4);
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 4);
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 2);
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 0);
    }
}
