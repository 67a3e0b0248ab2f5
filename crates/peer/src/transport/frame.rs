//! The wire format: length-prefixed frames with a type byte, and chunking of large messages.
//!
//! ```text
//! frame  = type:u8  len:u32be  payload[len]
//! type 1 = RAFT           payload = one protobuf raft Message           (len <= FRAME_MAX_BYTES)
//! type 2 = RAFT_CHUNK     payload = total:u64be  part[len - 8]         (parts in order, one message)
//! type 3 = SNAPSHOT_BEGIN payload = the protobuf MsgSnapshot (with its descriptor); opens a
//!                                   connection of its own
//! type 4 = SNAPSHOT_CHUNK payload = the next bytes of the snapshot file (the sender: 1 MiB)
//! type 5 = SNAPSHOT_END   payload = empty
//! type 6 = SNAPSHOT_ACK   payload = empty: taken | UTF-8 reason: refused  (server → client)
//! type 16 = JOIN_REQUEST  payload = JSON JoinRequest                    (len <= JOIN_MAX_BYTES)
//! type 17 = JOIN_RESPONSE payload = JSON {"ok": JoinResponse} | {"err": "reason"}
//! ```

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame payload: 4 MiB. Larger raft messages travel as chunks.
pub const FRAME_MAX_BYTES: usize = 4 * 1024 * 1024;
/// The largest join request payload: 64 KiB.
pub const JOIN_MAX_BYTES: usize = 64 * 1024;
/// The largest join response payload a joining node reads: 1 MiB.
pub const JOIN_RESPONSE_MAX_BYTES: usize = 1024 * 1024;
/// The largest snapshot acknowledgement (a refusal's reason) a sender reads: 64 KiB.
pub const SNAPSHOT_ACK_MAX_BYTES: usize = 64 * 1024;

pub(crate) const HEADER_LEN: usize = 5;
const CHUNK_HEADER_LEN: usize = 8;

/// The type byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameType {
    Raft = 1,
    RaftChunk = 2,
    SnapshotBegin = 3,
    SnapshotChunk = 4,
    SnapshotEnd = 5,
    SnapshotAck = 6,
    JoinRequest = 16,
    JoinResponse = 17,
}

impl FrameType {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => FrameType::Raft,
            2 => FrameType::RaftChunk,
            3 => FrameType::SnapshotBegin,
            4 => FrameType::SnapshotChunk,
            5 => FrameType::SnapshotEnd,
            6 => FrameType::SnapshotAck,
            16 => FrameType::JoinRequest,
            17 => FrameType::JoinResponse,
            _ => return None,
        })
    }
}

/// A frame header, read and checked before any payload byte.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub(crate) kind: FrameType,
    pub(crate) len: usize,
}

/// Reads one header; `Ok(None)` on a clean end of stream before it.
///
/// Refuses an unknown type or a length above `max_len` (nothing of the payload is read).
pub(crate) async fn read_header<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: usize,
) -> Result<Option<Header>, String> {
    let mut head = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut head[got..]).await {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err("connection closed in the middle of a frame header".into()),
            Ok(n) => got += n,
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    let kind = FrameType::from_byte(head[0]).ok_or_else(|| format!("unknown frame type {}", head[0]))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > max_len {
        return Err(format!(
            "{kind:?} frame of {len} bytes exceeds the limit of {max_len} bytes"
        ));
    }
    Ok(Some(Header { kind, len }))
}

/// Reads the payload announced by `header`.
pub(crate) async fn read_payload<R: AsyncRead + Unpin>(r: &mut R, header: Header) -> Result<Vec<u8>, String> {
    let mut payload = vec![0u8; header.len];
    r.read_exact(&mut payload)
        .await
        .map_err(|e| format!("reading a {:?} frame of {} bytes: {e}", header.kind, header.len))?;
    Ok(payload)
}

/// Reads the next raft message from a peer connection: one `RAFT` frame, or the `RAFT_CHUNK`
/// frames of one message (rebuilt by `chunks`). `Ok(None)` on a clean end of stream between
/// messages.
///
/// `admit` sees every header before any byte of its payload is read, and may refuse it (the
/// server refuses frames from anything but a control node this way). Join frames are refused.
///
/// `pending` is a header the caller read already (the first of a connection), used before
/// reading the next.
pub(crate) async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    chunks: &mut Reassembler,
    pending: &mut Option<Header>,
    mut admit: impl FnMut(Header) -> Result<(), String>,
) -> Result<Option<Vec<u8>>, String> {
    loop {
        let next = match pending.take() {
            Some(header) => Some(header),
            None => read_header(r, FRAME_MAX_BYTES).await?,
        };
        let Some(header) = next else {
            return if chunks.in_progress() {
                Err("closed in the middle of a chunked message".into())
            } else {
                Ok(None)
            };
        };
        // Decide on the header alone: refused frames are never read, let alone decoded.
        admit(header)?;
        match header.kind {
            FrameType::Raft if chunks.in_progress() => {
                return Err("raft frame in the middle of a chunked message".into());
            }
            FrameType::Raft => return read_payload(r, header).await.map(Some),
            FrameType::RaftChunk => {
                let payload = read_payload(r, header).await?;
                if let Some(message) = chunks.push(&payload)? {
                    return Ok(Some(message));
                }
            }
            FrameType::JoinRequest | FrameType::JoinResponse => {
                return Err(format!(
                    "a {:?} frame on a peer connection; joining is for nodes without a certificate",
                    header.kind
                ));
            }
            FrameType::SnapshotBegin
            | FrameType::SnapshotChunk
            | FrameType::SnapshotEnd
            | FrameType::SnapshotAck => {
                return Err(format!(
                    "a {:?} frame among raft messages; a snapshot opens a connection of its own",
                    header.kind
                ));
            }
        }
    }
}

/// The header of a frame of `len` bytes.
pub(crate) fn header(kind: FrameType, len: usize) -> [u8; HEADER_LEN] {
    let len = (len as u32).to_be_bytes();
    [kind as u8, len[0], len[1], len[2], len[3]]
}

/// Appends one frame.
pub(crate) fn put_frame(out: &mut BytesMut, kind: FrameType, payload: &[u8]) {
    out.reserve(HEADER_LEN + payload.len());
    out.put_u8(kind as u8);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
}

/// Appends an encoded raft message: one `RAFT` frame, or `RAFT_CHUNK` frames if it is larger
/// than [`FRAME_MAX_BYTES`].
pub(crate) fn put_message(out: &mut BytesMut, encoded: &[u8]) {
    if encoded.len() <= FRAME_MAX_BYTES {
        put_frame(out, FrameType::Raft, encoded);
        return;
    }
    let total = encoded.len() as u64;
    for part in encoded.chunks(FRAME_MAX_BYTES - CHUNK_HEADER_LEN) {
        out.reserve(HEADER_LEN + CHUNK_HEADER_LEN + part.len());
        out.put_u8(FrameType::RaftChunk as u8);
        out.put_u32((CHUNK_HEADER_LEN + part.len()) as u32);
        out.put_u64(total);
        out.put_slice(part);
    }
}

/// Rebuilds chunked messages, refusing anything out of order or over `max_total`.
#[derive(Debug)]
pub(crate) struct Reassembler {
    max_total: usize,
    pending: Option<(usize, Vec<u8>)>,
}

impl Reassembler {
    pub(crate) fn new(max_total: usize) -> Self {
        Reassembler {
            max_total,
            pending: None,
        }
    }

    /// Whether a chunked message is in progress.
    pub(crate) fn in_progress(&self) -> bool {
        self.pending.is_some()
    }

    /// Adds a `RAFT_CHUNK` payload; returns the message once its last part arrived.
    pub(crate) fn push(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, String> {
        if payload.len() <= CHUNK_HEADER_LEN {
            return Err(format!("chunk frame of {} bytes carries no data", payload.len()));
        }
        let mut total_bytes = [0u8; CHUNK_HEADER_LEN];
        total_bytes.copy_from_slice(&payload[..CHUNK_HEADER_LEN]);
        let total = u64::from_be_bytes(total_bytes);
        let part = &payload[CHUNK_HEADER_LEN..];
        if total > self.max_total as u64 {
            return Err(format!(
                "chunked message of {total} bytes exceeds the limit of {} bytes",
                self.max_total
            ));
        }
        let total = total as usize;
        let (want, buf) = self.pending.get_or_insert_with(|| (total, Vec::new()));
        if *want != total {
            return Err(format!(
                "chunk announces a message of {total} bytes while one of {want} bytes is in progress"
            ));
        }
        if buf.len() + part.len() > total {
            return Err(format!("chunks add up to more than the announced {total} bytes"));
        }
        buf.extend_from_slice(part);
        if buf.len() == total {
            Ok(self.pending.take().map(|(_, b)| b))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(mut bytes: &[u8], max: usize) -> Result<Vec<(FrameType, Vec<u8>)>, String> {
        let mut out = Vec::new();
        while let Some(h) = read_header(&mut bytes, max).await? {
            out.push((h.kind, read_payload(&mut bytes, h).await?));
        }
        Ok(out)
    }

    #[tokio::test]
    async fn large_messages_are_chunked_and_reassembled() {
        let msg: Vec<u8> = (0..(2 * FRAME_MAX_BYTES + 123)).map(|i| i as u8).collect();
        let mut out = BytesMut::new();
        put_message(&mut out, b"small");
        put_message(&mut out, &msg);
        let got = frames(&out, FRAME_MAX_BYTES).await.unwrap();
        assert_eq!(got[0], (FrameType::Raft, b"small".to_vec()));
        assert_eq!(got.len(), 1 + 3);
        let mut r = Reassembler::new(3 * FRAME_MAX_BYTES);
        let mut done = None;
        for (kind, payload) in &got[1..] {
            assert_eq!(*kind, FrameType::RaftChunk);
            assert!(done.is_none());
            done = r.push(payload).unwrap();
        }
        assert_eq!(done.unwrap(), msg);
        assert!(!r.in_progress());
    }

    #[tokio::test]
    async fn limits_and_garbage_are_refused() {
        let mut out = BytesMut::new();
        put_frame(&mut out, FrameType::JoinRequest, &[0; 100]);
        let err = frames(&out, 99).await.unwrap_err();
        assert!(err.contains("exceeds the limit of 99 bytes"), "{err}");
        let err = frames(&[9, 0, 0, 0, 0], 10).await.unwrap_err();
        assert!(err.contains("unknown frame type 9"), "{err}");
        let err = frames(&[1, 0], 10).await.unwrap_err();
        assert!(err.contains("middle of a frame header"), "{err}");

        let mut r = Reassembler::new(10);
        let mut chunk = 11u64.to_be_bytes().to_vec();
        chunk.push(1);
        assert!(r.push(&chunk).unwrap_err().contains("exceeds the limit"));
        let mut a = 4u64.to_be_bytes().to_vec();
        a.extend([1, 2]);
        assert_eq!(r.push(&a).unwrap(), None);
        let mut b = 5u64.to_be_bytes().to_vec();
        b.extend([3]);
        assert!(r.push(&b).unwrap_err().contains("in progress"));
        let mut r = Reassembler::new(10);
        let mut c = 2u64.to_be_bytes().to_vec();
        c.extend([1, 2, 3]);
        assert!(r.push(&c).unwrap_err().contains("more than the announced"));
    }
}
