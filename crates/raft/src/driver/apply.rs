//! Ready processing: persisting, applying and answering, in raft-rs's documented order.

use std::sync::atomic::Ordering;

use raft::eraftpb::{Entry, EntryType, Snapshot};
use redb::WriteTransaction;

use super::core::{Core, Outcomes, Staged};
use crate::storage::{LogState, LogWriter};
use crate::{RaftError, StateMachine, batch};

impl<SM: StateMachine> Core<SM> {
    /// Processes one Ready; returns `true` when the crash hook stopped it after persisting.
    pub(super) fn on_ready(&mut self) -> Result<bool, RaftError> {
        if !self.node.has_ready() {
            return Ok(false);
        }
        let mut rd = self.node.ready();

        // (1) A leader may send before persisting: followers persist in parallel (thesis 10.2.1).
        self.send(rd.take_messages());
        for rs in rd.take_read_states() {
            self.on_read_state(rs);
        }

        // (2)-(5) A received snapshot, new entries and a new term or vote must be on disk before
        // anyone hears of them: one durable transaction. Applying committed entries (and moving
        // the commit index) need not be: those entries are already durable on a majority, and a
        // crash that loses an apply loses the applied index with it, so the entries are simply
        // applied again. So the durable part goes first, its acknowledgements leave at once, and
        // the apply follows in a transaction without an fsync, off the acknowledgement's path.
        let committed = rd.take_committed_entries();
        let appended = !rd.entries().is_empty();
        let new_term_or_vote = rd.hs().is_some_and(|hs| {
            let old = &self.node.store().state().hard_state;
            hs.term != old.term || hs.vote != old.vote
        });
        let must_sync = appended || !rd.snapshot().is_empty() || new_term_or_vote;
        if must_sync {
            let txn = self.db.begin_write()?;
            let mut staged = Staged {
                log: LogWriter::new(&txn, self.node.store().state().clone()),
                outcomes: Outcomes::default(),
            };
            if !rd.snapshot().is_empty() {
                self.restore_snapshot(&txn, &mut staged, rd.snapshot())?;
            }
            staged.log.append(rd.entries())?;
            if let Some(hs) = rd.hs() {
                // Never store a commit index below the applied index.
                let mut hs = hs.clone();
                hs.commit = hs.commit.max(staged.log.state().applied);
                staged.log.set_hard_state(hs)?;
            }
            let Staged { log, outcomes } = staged;
            let state = log.into_state();
            self.commit(txn, state, outcomes)?;
            if !rd.snapshot().is_empty() {
                // The installed snapshot supersedes the files before it.
                self.clean_snapshots();
            }
        }
        if appended
            && self
                .crash_before_apply
                .as_ref()
                .is_some_and(|f| f.load(Ordering::SeqCst))
        {
            return Ok(true);
        }

        // (6) Messages that promise persisted state (votes, append acks) go now, before applying.
        self.send(rd.take_persisted_messages());

        // Apply what is committed; a commit-only hard state rides along.
        let commit_only = rd.hs().filter(|_| !must_sync).map(|hs| hs.commit);
        self.apply_committed(committed, commit_only)?;

        // (7) Advance; the light ready carries what became committed by our own persist.
        let mut light = self.node.advance(rd);
        self.send(light.take_messages());
        self.apply_committed(light.take_committed_entries(), light.commit_index())?;
        self.node.advance_apply();
        Ok(false)
    }

    /// Applies committed entries and moves the commit index (at least to what is applied) in one
    /// transaction without an fsync: the entries are durable in a majority's logs already, and a
    /// crash that loses this loses the applied index with it, so they are applied again.
    fn apply_committed(&mut self, committed: Vec<Entry>, commit: Option<u64>) -> Result<(), RaftError> {
        if committed.is_empty() && commit.is_none() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| RaftError::Storage(e.to_string()))?;
        let mut staged = Staged {
            log: LogWriter::new(&txn, self.node.store().state().clone()),
            outcomes: Outcomes::default(),
        };
        self.apply_entries(&txn, &mut staged, committed)?;
        let applied = staged.log.state().applied;
        staged.log.set_commit(commit.unwrap_or(0).max(applied))?;
        let Staged { log, outcomes } = staged;
        let state = log.into_state();
        self.commit(txn, state, outcomes)
    }

    /// Commits the transaction, then installs the new metadata, tells the machine, and answers.
    fn commit(
        &mut self,
        txn: WriteTransaction,
        state: LogState,
        outcomes: Outcomes<SM::Output>,
    ) -> Result<(), RaftError> {
        txn.commit()?;
        self.node.mut_store().install(state);
        self.sm.committed();
        // Publish first, so a caller that got its answer also sees it in `status()`.
        self.publish_status(false);
        // A caller that gave up (dropped its future) no longer wants the answer.
        for (reply, output) in outcomes.outputs {
            reply.send(Ok(output));
        }
        for (reply, err) in outcomes.failures {
            reply.send(Err(err));
        }
        for (reply, result) in outcomes.memberships {
            reply.send(result);
        }
        Ok(())
    }

    /// Applies committed entries in order and records the last one as applied.
    fn apply_entries(
        &mut self,
        txn: &WriteTransaction,
        staged: &mut Staged<'_, SM::Output>,
        entries: Vec<Entry>,
    ) -> Result<(), RaftError> {
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        for e in &entries {
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    self.apply_normal(txn, &mut staged.outcomes, e)?;
                    self.settle_change(e, None, &mut staged.outcomes);
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    self.settle(e.index, e.term, &[], Vec::new(), &mut staged.outcomes);
                    self.apply_conf_change(&mut staged.log, &mut staged.outcomes, e)?;
                }
            }
        }
        staged.log.set_applied(last)
    }

    /// Applies every proposal framed in one entry and settles the callers waiting for it. An
    /// entry that does not decode, or a proposal the machine cannot apply, stops the driver
    /// ([`RaftError::ApplyFailed`]) before anything of the transaction is committed.
    fn apply_normal(
        &mut self,
        txn: &WriteTransaction,
        outcomes: &mut Outcomes<SM::Output>,
        e: &Entry,
    ) -> Result<(), RaftError> {
        let failed = |message: String| RaftError::ApplyFailed {
            index: e.index,
            message,
        };
        let mut outputs = Vec::new();
        // An empty entry is the one a new leader appends; it carries nothing to apply.
        if !e.data.is_empty() {
            let proposals =
                batch::decode(&e.data).map_err(|msg| failed(format!("malformed entry framing: {msg}")))?;
            outputs.reserve(proposals.len());
            for p in proposals {
                outputs.push(self.sm.apply(txn, e.index, p).map_err(|f| failed(f.0))?);
            }
        }
        self.settle(e.index, e.term, &e.context, outputs, outcomes);
        Ok(())
    }

    /// Hands `outputs` to the callers of the entry at `index` if this node proposed it; fails
    /// callers of earlier or overwritten entries with [`RaftError::ProposalDropped`].
    fn settle(
        &mut self,
        index: u64,
        term: u64,
        context: &[u8],
        outputs: Vec<SM::Output>,
        outcomes: &mut Outcomes<SM::Output>,
    ) {
        let mut outputs = Some(outputs);
        while let Some(entry) = self.pending.first_entry() {
            let at = *entry.key();
            if at > index {
                break;
            }
            let p = entry.remove();
            let mine = at == index
                && p.term == term
                && batch::parse_context(context) == Some((self.config.id, p.batch))
                && outputs.as_ref().is_some_and(|o| o.len() == p.replies.len());
            match outputs.take() {
                Some(outputs) if mine => outcomes.outputs.extend(p.replies.into_iter().zip(outputs)),
                other => {
                    outputs = other;
                    outcomes
                        .failures
                        .extend(p.replies.into_iter().map(|r| (r, RaftError::ProposalDropped)));
                }
            }
        }
    }

    /// Installs a snapshot received from the leader: machine tables and raft log in one txn.
    fn restore_snapshot(
        &mut self,
        txn: &WriteTransaction,
        staged: &mut Staged<'_, SM::Output>,
        snap: &Snapshot,
    ) -> Result<(), RaftError> {
        let index = snap.get_metadata().index;
        let (members, stored) = self.restore_machine(txn, snap)?;
        staged.log.apply_snapshot(&stored, members)?;
        // Entries this node proposed up to the snapshot were replaced before it could apply them.
        let later = self.pending.split_off(&(index + 1));
        for (_, p) in std::mem::replace(&mut self.pending, later) {
            staged
                .outcomes
                .failures
                .extend(p.replies.into_iter().map(|r| (r, RaftError::OutcomeUnknown)));
        }
        if let Some(p) = self.pending_change.take_if(|p| p.index <= index) {
            staged
                .outcomes
                .memberships
                .push((p.reply, Err(RaftError::OutcomeUnknown)));
        }
        tracing::info!(id = self.config.id, index, "raft snapshot installed");
        Ok(())
    }
}
