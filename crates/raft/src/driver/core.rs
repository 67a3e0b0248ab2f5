//! The driver's core: the `RawNode`, the state machine and every redb write, stepped
//! synchronously. It never reads a clock or waits: time arrives as ticks, requests as calls.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use raft::{RawNode, StateRole};
use redb::{Database, ReadableDatabase};

use super::StartOptions;
use super::snapshots::SnapshotJob;
use crate::handle::{Cmd, Reply, Shared};
use crate::snapshot::{SnapshotFiles, TransferOutcomes};
use crate::storage::{LogWriter, RedbStorage};
use crate::transport::Transport;
use crate::{Membership, RaftConfig, RaftError, RaftStatus, StateMachine, batch};

/// Callers waiting for one proposed entry.
pub(super) struct Pending<O> {
    pub(super) term: u64,
    pub(super) batch: u64,
    pub(super) replies: Vec<Reply<O>>,
}

/// The caller waiting for a proposed membership change.
pub(super) struct PendingChange {
    pub(super) index: u64,
    pub(super) term: u64,
    pub(super) batch: u64,
    pub(super) reply: Reply<Membership>,
}

/// Replies to send once the transaction that produced them has committed.
pub(super) struct Outcomes<O> {
    pub(super) outputs: Vec<(Reply<O>, O)>,
    pub(super) failures: Vec<(Reply<O>, RaftError)>,
    pub(super) memberships: Vec<(Reply<Membership>, Result<Membership, RaftError>)>,
}

impl<O> Default for Outcomes<O> {
    fn default() -> Self {
        Outcomes {
            outputs: Vec::new(),
            failures: Vec::new(),
            memberships: Vec::new(),
        }
    }
}

/// Why the loop ended.
pub(crate) enum Exit {
    /// Asked to stop.
    Shutdown,
    /// The `crash_before_apply` hook stopped it after persisting entries.
    Crash,
    /// A storage or state-machine error.
    Failed(RaftError),
}

/// One node's whole decision and persistence logic. The thread in [`super::run`] and the
/// simulation in [`crate::sim`] both drive it through [`Core::on_cmd`] and [`Core::step`].
pub(crate) struct Core<SM: StateMachine> {
    pub(super) node: RawNode<RedbStorage>,
    pub(super) sm: SM,
    pub(super) db: Arc<Database>,
    pub(super) config: RaftConfig,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) crash_before_apply: Option<Arc<AtomicBool>>,
    shared: Arc<Shared>,
    /// Proposals received this iteration, not yet framed into entries.
    queued: Vec<(Vec<u8>, Reply<SM::Output>)>,
    /// Proposed entries by log index.
    pub(super) pending: BTreeMap<u64, Pending<SM::Output>>,
    /// The membership change this node proposed, until it is applied.
    pub(super) pending_change: Option<PendingChange>,
    pub(super) next_batch: u64,
    /// Reads waiting to be issued (no leader yet, or a fresh leader without a commit in its term).
    reads_unsent: Vec<Reply<u64>>,
    /// Reads issued to raft, by request context, with when they were issued.
    reads_sent: BTreeMap<u64, (u64, Vec<Reply<u64>>)>,
    /// Reads confirmed by the leader, waiting for the local apply to reach their index.
    reads_confirmed: Vec<(u64, Vec<Reply<u64>>)>,
    next_read: u64,
    /// Ticks so far (the core's only notion of time).
    pub(super) ticks: u64,
    /// This node's snapshot files.
    pub(super) files: SnapshotFiles,
    /// How snapshot transfers to followers ended, waiting to be told to raft.
    pub(super) transfers: TransferOutcomes,
    /// A snapshot being written on another thread, if the machine has an exporter.
    pub(super) snapshot_job: Option<SnapshotJob>,
    /// After a snapshot could not be written (the disk), no new one is tried before this tick.
    pub(super) snapshot_retry_at: u64,
    /// The stored snapshot's file could not be read: take a new one even at the same index.
    pub(super) snapshot_forced: bool,
}

impl<SM: StateMachine> Core<SM> {
    /// Opens or bootstraps the node in `db` (see [`bootstrap`]) and loads raft's state.
    pub(crate) fn boot(
        db: Arc<Database>,
        mut sm: SM,
        config: RaftConfig,
        options: &StartOptions,
        shared: Arc<Shared>,
    ) -> Result<Self, RaftError> {
        let files = shared.files.clone();
        // Temporary files of a run that crashed go first: nothing writes them now, and a new
        // one may take the same name.
        files.clean(None, true);
        bootstrap(
            &db,
            &mut sm,
            &config,
            options.bootstrap_snapshot.as_deref(),
            &files,
        )?;
        let mut storage = RedbStorage::open(db.clone(), &[])?;
        super::snapshots::prepare_files(&mut storage, &files)?;
        let state = storage.state().clone();
        let mut rc = raft::Config {
            id: config.id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied: state.applied,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            ..raft::Config::default()
        };
        if options.fixed_election_timeout {
            // raft-rs draws the timeout from a thread-local RNG; a range of one value keeps
            // seeded simulations reproducible (they vary the timing through ticks instead).
            rc.min_election_tick = config.election_tick;
            rc.max_election_tick = config.election_tick + 1;
        }
        rc.validate()
            .map_err(|e| RaftError::InvalidConfig(e.to_string()))?;
        let logger = crate::logger::raft_logger(config.id);
        let mut node = RawNode::new(&rc, storage, &logger)
            .map_err(|e| RaftError::Storage(format!("cannot load raft state: {e}")))?;
        if state.conf_state.voters == [config.id] && state.conf_state.learners.is_empty() {
            // Alone in the group: no need to wait an election timeout.
            node.campaign()
                .map_err(|e| RaftError::Storage(format!("cannot campaign: {e}")))?;
        }
        tracing::info!(
            id = config.id,
            term = state.hard_state.term,
            commit = state.hard_state.commit,
            applied = state.applied,
            last_index = state.last_index,
            "raft node loaded"
        );
        Ok(Core {
            node,
            sm,
            db,
            config,
            transport: options.transport.clone(),
            crash_before_apply: options.crash_before_apply.clone(),
            shared,
            queued: Vec::new(),
            pending: BTreeMap::new(),
            pending_change: None,
            next_batch: 1,
            reads_unsent: Vec::new(),
            reads_sent: BTreeMap::new(),
            reads_confirmed: Vec::new(),
            next_read: 1,
            ticks: 0,
            files,
            transfers: TransferOutcomes::default(),
            snapshot_job: None,
            snapshot_retry_at: 0,
            snapshot_forced: false,
        })
    }

    /// The configured tick length (the thread ticks the core this often).
    pub(crate) fn tick_length(&self) -> Duration {
        self.config.tick
    }

    /// How many requests the thread drains per step at most.
    pub(crate) fn queue_capacity(&self) -> usize {
        self.config.queue_capacity()
    }

    /// The node's id.
    pub(crate) fn id(&self) -> u64 {
        self.config.id
    }

    /// raft-rs's node, for inspection (roles, terms, logs) by the simulation's checks.
    pub(crate) fn raw(&self) -> &RawNode<RedbStorage> {
        &self.node
    }

    /// The database the node persists to.
    pub(crate) fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// One pass after the requests were handed in: frame proposals, tick if `tick`, issue
    /// reads, process the Ready, snapshot if due, answer reads, publish the status.
    ///
    /// # Errors
    ///
    /// A storage or state-machine error; the node must then be [finished](Core::finish).
    pub(crate) fn step(&mut self, tick: bool) -> Result<Option<Exit>, RaftError> {
        self.flush_proposals();
        if tick {
            self.node.tick();
            self.ticks += 1;
        }
        self.issue_reads();
        self.settle_transfers();
        if self.on_ready()? {
            return Ok(Some(Exit::Crash));
        }
        self.step_down_if_removed();
        self.drop_truncated();
        self.maybe_snapshot()?;
        self.resolve_reads();
        self.publish_status(false);
        Ok(None)
    }

    /// Fails proposals whose entries a new leader cut from the log. Overwritten entries are
    /// settled when their index is applied, but a log that now ends before them may get no new
    /// entry for a long time, and their callers would wait for it.
    fn drop_truncated(&mut self) {
        if self.node.raft.state == StateRole::Leader {
            return;
        }
        let last = self.node.raft.raft_log.last_index();
        for (_, p) in self.pending.split_off(&(last + 1)) {
            for reply in p.replies {
                reply.send(Err(RaftError::ProposalDropped));
            }
        }
        if let Some(p) = self.pending_change.take_if(|p| p.index > last) {
            p.reply.send(Err(RaftError::ProposalDropped));
        }
    }

    /// Steps one raft message from a peer (already checked by the handle or the simulation).
    pub(crate) fn step_message(&mut self, msg: Message) {
        let (from, kind) = (msg.from, msg.get_msg_type());
        if let Err(e) = self.node.step(msg) {
            tracing::debug!(id = self.config.id, from, ?kind, error = %e, "raft ignored a message");
        }
        if kind == MessageType::MsgSnapshot {
            // A snapshot raft refused (older than what this node has) leaves its file behind.
            self.clean_snapshots();
        }
    }

    /// Handles one request; returns `true` for shutdown.
    pub(crate) fn on_cmd(&mut self, cmd: Cmd<SM::Output>) -> bool {
        match cmd {
            Cmd::Propose { data, reply } => {
                if self.node.raft.state == StateRole::Leader {
                    self.queued.push((data, reply));
                } else {
                    reply.send(Err(self.not_leader()));
                }
            }
            Cmd::ReadIndex { reply } => {
                if self.node.raft.leader_id == raft::INVALID_ID {
                    reply.send(Err(RaftError::NotLeader { leader: None }));
                } else {
                    self.reads_unsent.push(reply);
                }
            }
            Cmd::ChangeMembership { change, reply } => self.on_change_membership(change, reply),
            Cmd::Step(msg) => {
                self.shared.queued_steps.fetch_sub(1, Ordering::Relaxed);
                self.step_message(*msg);
            }
            Cmd::Shutdown => return true,
        }
        false
    }

    pub(super) fn not_leader(&self) -> RaftError {
        let leader = self.node.raft.leader_id;
        RaftError::NotLeader {
            leader: (leader != raft::INVALID_ID).then_some(leader),
        }
    }

    /// Frames queued proposals into entries of at most `max_batch` proposals and proposes them.
    fn flush_proposals(&mut self) {
        while !self.queued.is_empty() {
            let n = self.queued.len().min(self.config.max_batch);
            let chunk: Vec<_> = self.queued.drain(..n).collect();
            if self.node.raft.state != StateRole::Leader {
                // A message stepped in this iteration deposed us; raft would forward the entry,
                // and its callers could never be matched to it.
                for (_, reply) in chunk {
                    reply.send(Err(self.not_leader()));
                }
                continue;
            }
            let batch = self.next_batch;
            self.next_batch += 1;
            let data = batch::encode(chunk.iter().map(|(d, _)| d.as_slice()));
            let replies: Vec<_> = chunk.into_iter().map(|(_, r)| r).collect();
            match self.node.propose(batch::context(self.config.id, batch), data) {
                Ok(()) => {
                    let index = self.node.raft.raft_log.last_index();
                    let term = self.node.raft.term;
                    let stale = self.pending.insert(index, Pending { term, batch, replies });
                    // An older proposal at this index was cut off when our log was truncated.
                    for reply in stale.into_iter().flat_map(|p| p.replies) {
                        reply.send(Err(RaftError::ProposalDropped));
                    }
                }
                Err(e) => {
                    tracing::debug!(id = self.config.id, error = %e, "raft dropped a proposal");
                    for reply in replies {
                        reply.send(Err(RaftError::ProposalDropped));
                    }
                }
            }
        }
    }

    /// Issues waiting reads as one ReadIndex request, and re-issues ones that got no answer.
    fn issue_reads(&mut self) {
        let timeout = self.config.election_tick as u64;
        let now = self.ticks;
        let stale: Vec<u64> = self
            .reads_sent
            .iter()
            .filter(|(_, (at, _))| now.saturating_sub(*at) > timeout)
            .map(|(ctx, _)| *ctx)
            .collect();
        for ctx in stale {
            // Raft drops reads silently (no leader, or a leader without a commit in its term).
            if let Some((_, replies)) = self.reads_sent.remove(&ctx) {
                self.reads_unsent.extend(replies);
            }
        }
        let raft = &self.node.raft;
        if self.reads_unsent.is_empty()
            || raft.leader_id == raft::INVALID_ID
            || (raft.state == StateRole::Leader && !raft.commit_to_current_term())
        {
            return;
        }
        let ctx = self.next_read;
        self.next_read += 1;
        self.node.read_index(ctx.to_le_bytes().to_vec());
        self.reads_sent
            .insert(ctx, (now, std::mem::take(&mut self.reads_unsent)));
    }

    /// Answers confirmed reads whose index this node has applied.
    fn resolve_reads(&mut self) {
        let applied = self.node.store().state().applied;
        self.reads_confirmed.retain_mut(|(index, replies)| {
            if *index > applied {
                return true;
            }
            for reply in replies.drain(..) {
                reply.send(Ok(*index));
            }
            false
        });
    }

    pub(super) fn on_read_state(&mut self, rs: raft::ReadState) {
        let ctx = rs.request_ctx.as_slice().try_into().ok().map(u64::from_le_bytes);
        if let Some((_, replies)) = ctx.and_then(|ctx| self.reads_sent.remove(&ctx)) {
            self.reads_confirmed.push((rs.index, replies));
        }
    }

    /// Hands messages to the transport; snapshots go to [`Transport::send_snapshot`] with their
    /// file.
    pub(super) fn send(&mut self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let (snapshots, msgs): (Vec<_>, Vec<_>) = msgs
            .into_iter()
            .partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        if !msgs.is_empty() {
            self.transport.send(msgs);
        }
        for m in snapshots {
            self.send_snapshot(m);
        }
    }

    pub(super) fn publish_status(&self, stopped: bool) {
        let raft = &self.node.raft;
        let state = self.node.store().state();
        let Membership {
            voters,
            learners,
            meta: members,
        } = self.membership();
        let progress = if raft.state == StateRole::Leader {
            raft.prs().iter().map(|(id, pr)| (*id, pr.matched)).collect()
        } else {
            BTreeMap::new()
        };
        let status = RaftStatus {
            id: self.config.id,
            role: raft.state.into(),
            leader: (raft.leader_id != raft::INVALID_ID).then_some(raft.leader_id),
            term: raft.term,
            commit: raft.raft_log.committed,
            applied: state.applied,
            first_index: state.truncated_index + 1,
            last_index: raft.raft_log.last_index(),
            snapshot_index: state.snapshot_index,
            voters,
            learners,
            members,
            pending_membership_change: self.change_pending(),
            progress,
            stopped,
            failure: None,
        };
        self.shared.status.send_if_modified(|s| {
            // Why the driver failed is set once, before the stopped status is published.
            let status = RaftStatus {
                failure: s.failure.clone(),
                ..status
            };
            let changed = *s != status;
            if changed {
                *s = status;
            }
            changed
        });
    }

    /// Fails everything still waiting, closes the queue and marks the node stopped.
    /// Fails everything still waiting and marks the node stopped (the thread then drains its
    /// queue).
    pub(crate) fn finish(mut self, exit: Exit) {
        let failed = matches!(exit, Exit::Failed(_));
        let err = match exit {
            Exit::Shutdown => {
                tracing::info!(id = self.config.id, "raft driver stopped");
                RaftError::Stopped
            }
            Exit::Crash => {
                tracing::warn!(
                    id = self.config.id,
                    "raft driver halted by the crash_before_apply hook"
                );
                RaftError::Stopped
            }
            Exit::Failed(e) => {
                tracing::error!(id = self.config.id, error = %e, "raft driver stopped after an error");
                e
            }
        };
        self.shared.permits.close();
        for (_, p) in std::mem::take(&mut self.pending) {
            for reply in p.replies {
                reply.send(Err(err.clone()));
            }
        }
        for (_, reply) in self.queued.drain(..) {
            reply.send(Err(err.clone()));
        }
        if let Some(p) = self.pending_change.take() {
            p.reply.send(Err(err.clone()));
        }
        let reads = self
            .reads_unsent
            .drain(..)
            .chain(
                std::mem::take(&mut self.reads_sent)
                    .into_iter()
                    .flat_map(|(_, (_, r))| r),
            )
            .chain(self.reads_confirmed.drain(..).flat_map(|(_, r)| r));
        for reply in reads {
            reply.send(Err(err.clone()));
        }
        if failed {
            self.shared
                .status
                .send_modify(|s| s.failure = Some(err.to_string()));
        }
        self.publish_status(true);
    }
}

/// Writes staged by one Ready step: the writer for the raft tables plus the callers to answer.
pub(super) struct Staged<'t, O> {
    pub(super) log: LogWriter<'t>,
    pub(super) outcomes: Outcomes<O>,
}

/// Initialises the machine's tables and, on a file without raft state, bootstraps the group.
///
/// With voters (or a backup) the group starts from a snapshot at index 1 holding the membership
/// and (in its file) the machine's initial content; with neither, the node stays uninitialised
/// until a leader sends it a snapshot. The file is durable before the transaction that refers to
/// it commits; a crash between the two leaves a stray file, removed at the next start.
pub(crate) fn bootstrap<SM: StateMachine>(
    db: &Database,
    sm: &mut SM,
    config: &RaftConfig,
    backup: Option<&[u8]>,
    files: &SnapshotFiles,
) -> Result<(), RaftError> {
    let txn = db.begin_write()?;
    sm.init(&txn).map_err(RaftError::StateMachine)?;
    txn.commit()?;
    if !RedbStorage::is_new(db)? || (config.voters.is_empty() && backup.is_none()) {
        return Ok(());
    }
    let (voters, (file, size)) = match backup {
        Some(bytes) => (
            vec![config.id],
            (files.write_all(1, 1, bytes)?, bytes.len() as u64),
        ),
        None => {
            let txn = db.begin_read()?;
            let mut writer = files.writer("local")?;
            sm.snapshot(&txn, &mut writer).map_err(RaftError::StateMachine)?;
            let size = writer.size();
            (config.voters.clone(), (writer.finish(1, 1)?, size))
        }
    };
    let members = if voters == [config.id] {
        BTreeMap::from([(config.id, config.meta.clone())])
    } else {
        voters.iter().map(|id| (*id, Vec::new())).collect()
    };
    let cs = raft::eraftpb::ConfState {
        voters,
        ..Default::default()
    };
    let txn = db.begin_write()?;
    if let Some(mut bytes) = backup {
        sm.restore(&txn, &mut bytes)
            .map_err(|e| RaftError::StateMachine(format!("cannot restore the bootstrap snapshot: {e}")))?;
    }
    {
        // Creates the raft tables.
        txn.open_table(crate::storage::META)?;
        txn.open_table(crate::storage::LOG)?;
        let mut log = LogWriter::new(&txn, crate::storage::LogState::default());
        log.bootstrap(cs.clone(), members, &file, size)?;
    }
    txn.commit()?;
    tracing::info!(id = config.id, voters = ?cs.voters, restored = backup.is_some(), bytes = size, "raft group bootstrapped");
    Ok(())
}
