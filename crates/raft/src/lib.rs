//! The raft-rs driver of Skiff's control plane: one Ready loop, redb log storage, proposals.
//!
//! `skiff-raft` turns a deterministic [`StateMachine`] into a replicated one. It runs a
//! [raft-rs](raft) `RawNode` on a thread of its own, keeps the raft log, hard state, membership,
//! snapshot descriptor and applied index in the **same redb file** as the machine's tables (the
//! snapshots themselves are files beside it, of any size), and gives callers a
//! cloneable async [`RaftHandle`]: [`propose`](RaftHandle::propose) bytes and get the machine's
//! output back once the entry is applied, or ask for a linearizable
//! [`read_index`](RaftHandle::read_index) barrier before reading local state.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn demo<SM: skiff_raft::StateMachine>(sm: SM) -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let db = Arc::new(redb::Database::create("state.redb")?);
//! let config = skiff_raft::RaftConfig {
//!     snapshot_dir: "snapshots".into(), // snapshot files, beside the redb file
//!     ..skiff_raft::RaftConfig::default() // a one-member group
//! };
//! let raft = skiff_raft::start(db, sm, config)?;
//! rt.block_on(async {
//!     raft.wait_leader(std::time::Duration::from_secs(5)).await?;
//!     let _output = raft.propose(b"an encoded command".to_vec()).await?;
//!     raft.read_index().await?; // local reads now see every acknowledged write
//!     Ok::<_, skiff_raft::RaftError>(())
//! })?;
//! raft.shutdown();
//! # Ok(()) }
//! ```
//!
//! # Core concepts
//!
//! - [`StateMachine`]: the replicated logic (Skiff's `state` crate). It writes its tables only inside
//!   transactions the driver hands it, so its state and the applied index move together.
//! - [`start`] / [`start_with`]: open or bootstrap the node and spawn its thread (one per node, for
//!   the process lifetime). On an empty file the initial membership is [`RaftConfig::voters`]; on
//!   restart everything comes from the file.
//! - [`RaftHandle`]: cheap to clone; every call is a message to the thread. Requests queue with
//!   backpressure: a bounded number may be queued or in flight, later callers wait.
//! - [`MembershipChange`] / [`Membership`]: [`RaftHandle::change_membership`] adds learners,
//!   promotes them, removes members or replaces a member's opaque meta, one change at a time.
//! - [`StartOptions`]: the transport, and [`StartOptions::bootstrap_snapshot`] to start a new
//!   group from a backup of the machine.
//! - [`storage::RedbStorage`]: raft-rs's `Storage` over redb, including the compacted range.
//! - [`transport::Transport`]: where messages for other nodes go; inbound ones come back through
//!   [`RaftHandle::step`]. Snapshots go through [`transport::Transport::send_snapshot`] as an
//!   [`snapshot::OutgoingSnapshot`] (the message and a reader of its file, streamed in chunks);
//!   the receiver writes them to [`RaftHandle::receive_snapshot`]. [`transport::MemNetwork`]
//!   joins nodes inside one process for tests.
//! - [`snapshot`]: snapshot files in [`RaftConfig::snapshot_dir`] (one per snapshot, written to
//!   a temporary name, synced, renamed, removed once superseded), the
//!   [`snapshot::SnapshotDescriptor`] raft carries instead of the data (members, size, sha256),
//!   and both ends of a transfer. No size limit: memory use does not grow with the snapshot.
//!
//! # The Ready loop
//!
//! One thread owns the `RawNode`, the state machine and every redb write. It waits for requests
//! or the next tick, then steps the core once:
//!
//! ```text
//!  handles ──► queue ──► [drain] proposals ─► frame ≤ max_batch per entry ─► RawNode::propose
//!                        │        steps ─────────────────────────────────────► RawNode::step
//!                        │        reads ─► one ReadIndex request per pass ──► RawNode::read_index
//!                        ▼
//!                 [tick] RawNode::tick every `tick`
//!                        ▼
//!        transfer outcomes ─► RawNode::report_snapshot (Finish / Failure)
//!        has_ready? ──no──► snapshot/compact if due ─► answer reads ─► publish status ─► loop
//!                        │yes
//!                        ▼
//!  (1) messages ─────────────────────────────► transport (a leader sends before persisting;
//!                                               a snapshot goes with a reader of its file)
//!      read states ──────────────────────────► reads wait for the local apply to reach them
//!  (2-5) ┌ write txn A (only if there is a snapshot, new entries or a new term/vote) ──┐
//!        │ received snapshot → StateMachine::restore from its file + log reset       │
//!        │ new entries → append (overwriting a conflicting tail)                     │
//!        │ hard state (term, vote, commit ≥ applied)                                 │
//!        └ commit (fsync) ───────────────────────────────────────────────────────────┘
//!  (6) persisted messages (votes, append acks) ──► transport  — only after txn A
//!        ┌ write txn B (no fsync): committed entries → apply, applied index, commit ──┐
//!        └ commit ─► StateMachine::committed ─► answer the proposers ─────────────────┘
//!  (7) advance ─► light ready: messages ─► transport
//!        ┌ write txn C (no fsync): commit index, committed entries → apply ──────────┐
//!        └ commit ─► StateMachine::committed ─► answer the proposers ────────────────┘
//!      advance_apply ──► loop
//! ```
//!
//! # Membership, joining and bootstrap
//!
//! A group is **bootstrapped** once, on an empty file: with [`RaftConfig::voters`] (usually just
//! the first node, `[id]`), or from a backup ([`StartOptions::bootstrap_snapshot`]: a one-member
//! group whose machine is restored from the backup first). Bootstrap stores a raft snapshot at
//! index 1 holding the membership, the member meta and the machine's initial content; the log
//! starts after it. A later start reads everything from the file and ignores both.
//!
//! A node **joins** with `voters: vec![]` on an empty file: it is uninitialised and waits. On the
//! leader, [`MembershipChange::AddLearner`] (with the node's meta) makes it a learner; since the
//! leader's log starts after the bootstrap snapshot, the learner always receives a snapshot first
//! (one that includes it as a member: raft refuses others), then the log. The snapshot's file is
//! streamed to it whatever its size. Once
//! [`RaftStatus::progress`] shows it caught up, [`MembershipChange::Promote`] makes it a voter.
//!
//! ```text
//!  new node (voters=[]) ──► leader: AddLearner{id, meta} ──► snapshot ──► log ──► Promote{id}
//! ```
//!
//! Changes are checked against the applied membership before they are proposed, and refused
//! with [`RaftError::MembershipRefused`] when another is pending, when removing the last voter,
//! when adding a member twice, promoting a non-learner, or removing a non-member. The leader does
//! not remove itself: it hands leadership to the most up-to-date voter and refuses, and the
//! caller retries on the new leader. Member meta lives in the raft tables, changes in the same
//! transaction as the conf state, and travels inside every snapshot's descriptor
//! ([`membership`] describes the layout). A leader elected before it applied its own removal
//! steps down when it applies it.
//!
//! # Deterministic simulation
//!
//! The Ready processing lives in a core that is stepped synchronously: requests are handed to
//! it, time arrives as ticks, and it never reads a clock. The driver thread is a thin loop over
//! that core; [`sim`] steps the same core for several nodes on one thread, each over redb on a
//! [`sim::SimDisk`] (memory that loses every write since the last `sync_data`, and every snapshot
//! file not synced, when the node crashes), with a seeded network that drops, delays, duplicates
//! and reorders messages, loses, cuts off and damages snapshot transfers, partitions, crashes and
//! power losses mid-write, client writes and membership changes. It checks election safety, log
//! matching, that committed entries never change, state-machine agreement, that every
//! acknowledged write is applied on every member, and that snapshot directories hold their
//! stored snapshot's file and nothing superseded or half written. The harness is
//! public (in the crate, since it needs the core) and `tests/all/sim.rs` runs 500 seeds:
//!
//! ```text
//! cargo test -p skiff-raft sim                       # 500 seeds (SKIFF_SIM_SEEDS=N for more)
//! SKIFF_SIM_SEED=42 cargo test -p skiff-raft sim     # replay the seed a failure printed
//! ```
//!
//! # Durability
//!
//! Everything but the snapshot files lives in one redb file, and each transaction is
//! all-or-nothing:
//!
//! - **Log entries and hard state** are written in one transaction (A, fsynced) that commits
//!   *before* any message promising them (a vote, an append acknowledgement) leaves the node, and
//!   before an entry of a single-node group can count as committed. A crash loses only entries
//!   nobody was told of. Acknowledgements leave before the node applies anything.
//! - **Applying** happens in a transaction that also writes the applied index (and a commit index
//!   at least as high). A crash before it reaches the disk loses both the machine's changes and the
//!   applied index, so on restart raft hands the same committed entries out again and they are
//!   applied exactly once; a crash after it keeps both, so they are not applied again. Applying
//!   commits without an fsync (`redb::Durability::None`, transactions B and C): what it applies is
//!   already durable in the log of a majority, and the next durable commit (the next append) makes
//!   it durable too. This saves one fsync per write on the leader's critical path, and keeps the
//!   apply work off the path of the followers' acknowledgements.
//! - **Callers are answered only after** the transaction that applied their entry committed, and
//!   that entry was durably logged by a majority first, so an acknowledged write survives any crash.
//! - **Snapshots** are files: written (the machine streams its tables into them, on a thread of
//!   its own when it has an [`Exporter`]), synced and renamed before the transaction that stores
//!   their descriptor and compacts the log (keeping [`RaftConfig::keep_entries`] behind it), so a
//!   stored descriptor always names a durable file; older files are removed after it commits. A
//!   received snapshot's file was checked (size, sha256) and made durable before raft saw its
//!   message; the machine's tables are replaced from it, hashed again on the way, and the log is
//!   reset, in transaction A. A snapshot file that cannot be written (a full disk) is logged and
//!   tried again 100 ticks later; the log is not compacted meanwhile.
//!
//! A storage or state-machine error never panics the loop: it fails every waiting caller with
//! [`RaftError::Storage`] (or [`RaftError::StateMachine`]), logs, and stops; the handle then answers
//! [`RaftError::Stopped`].
//!
//! # Batching
//!
//! The loop drains everything queued before it processes a Ready, and frames up to
//! [`RaftConfig::max_batch`] proposals into one log entry (`[count][len][bytes]…`, with the batch id
//! in the entry context). All entries of a pass persist in one transaction, so a burst of writes
//! costs one or two fsyncs, not one per command. When the entry is applied, the n-th proposal's
//! [`StateMachine::Output`] goes to the n-th caller; the entry's index and term identify it, so a
//! leader change that overwrites it fails its callers with [`RaftError::ProposalDropped`] instead
//! of handing them someone else's result (as soon as the log ends before their entry, when a
//! new leader cut it off). Proposals over [`RaftConfig::max_proposal_bytes`] are
//! refused before they are queued.
//!
//! # Trust
//!
//! Raft messages are decoded ([`RaftHandle::step_bytes`], at most [`MAX_MESSAGE_BYTES`]) only
//! from authenticated members of the group: raft believes what peers say about terms and logs.
//! A snapshot's data has no such limit; it reaches raft only once its size and sha256 match what
//! its message announced ([`snapshot::IncomingSnapshot::finish`]).
//! Proposals never arrive from peers; a follower answers [`RaftError::NotLeader`] and the caller
//! goes to the leader.
#![deny(missing_docs)]

mod batch;
mod config;
mod driver;
mod error;
mod handle;
mod logger;
mod machine;
pub mod membership;
pub mod sim;
pub mod snapshot;
pub mod storage;
pub mod transport;

pub use config::RaftConfig;
pub use driver::{StartOptions, start, start_with};
pub use error::RaftError;
pub use handle::{MAX_MESSAGE_BYTES, RaftHandle, RaftStatus, Role};
pub use machine::{Exporter, Fatal, StateMachine};
pub use membership::{Membership, MembershipChange};
pub use raft::eraftpb;
