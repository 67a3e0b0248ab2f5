//! Snapshots of any size: files on disk, a small descriptor in raft, data streamed in chunks.
//!
//! A snapshot's state machine bytes are written to a file in the node's snapshot directory
//! ([`crate::RaftConfig::snapshot_dir`]); raft stores and sends only a [`SnapshotDescriptor`]
//! (the member meta, the file's size and sha256). A leader sending a snapshot hands its transport
//! an [`OutgoingSnapshot`]: the message plus a reader of the file. The transport streams the
//! data in bounded chunks (at most [`CHUNK_BYTES`] each, waiting for the connection before the
//! next, so a slow follower never makes the leader buffer the file), then the message. The
//! follower writes the chunks to an [`IncomingSnapshot`], which checks the size and the digest
//! before the message is stepped into raft; the leader's raft learns the outcome through the
//! [`SnapshotReport`] and sends the snapshot again after a failure.
//!
//! ```text
//!  leader                                    transport              follower
//!  ──────                                    ─────────              ────────
//!  snapshot due ─► machine streams into
//!                  <dir>/local-N.tmp (sha256 as it goes)
//!                  sync, rename <term>-<index>-<sha>.snap
//!                  store descriptor, compact log,
//!                  remove older files
//!  raft: MsgSnapshot(descriptor) ─► OutgoingSnapshot ──► chunks ≤ 1 MiB ──► IncomingSnapshot
//!                                   (file reader)        (flow control:    <dir>/incoming-N.tmp
//!                                                         one in flight)   size + sha256 checked,
//!                                                                          sync, rename
//!                                   SnapshotReport ◄──── ok / refused ◄─── step MsgSnapshot
//!  report_snapshot(Finish/Failure) ◄┘                                      Ready: restore the
//!                                                                          machine from the file
//!                                                                          (streamed, hashed again)
//! ```
//!
//! Memory stays bounded on both sides: the file is read and written a chunk at a time, and the
//! machine streams its export and its restore ([`crate::StateMachine::snapshot`],
//! [`crate::StateMachine::restore`]).
//!
//! Files are written under a temporary name, synced and renamed; a stored descriptor always names
//! a durable file. Superseded files are removed once a newer snapshot is stored or installed; a
//! transfer that fails removes its partial file; temporary files found at start are removed.

mod descriptor;
pub(crate) mod files;
mod transfer;

pub(crate) use descriptor::SnapshotData;
pub use descriptor::SnapshotDescriptor;
pub(crate) use files::{SnapshotFiles, SnapshotId};
pub(crate) use transfer::TransferOutcomes;
pub use transfer::{IncomingSnapshot, OutgoingSnapshot, SnapshotReport};

/// The largest chunk a transport should stream at once (1 MiB).
pub const CHUNK_BYTES: usize = 1 << 20;

/// How many snapshots a node receives at once; more are refused (the leader retries).
pub const MAX_INCOMING: usize = 2;
