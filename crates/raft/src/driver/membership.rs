//! Membership changes: checking and proposing them on the leader, applying them on every node.
//!
//! A change is one raft `ConfChange` (v1, a single node). Its `context` carries the member meta:
//! empty to keep the stored meta, or `[1][meta bytes]` to set it. The entry context names the
//! proposer and a batch id, like a batch of proposals, so the proposer finds its caller.

use std::collections::BTreeMap;

use protobuf::Message as _;
use raft::StateRole;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType};

use super::core::{Core, Outcomes, PendingChange};
use crate::handle::Reply;
use crate::storage::LogWriter;
use crate::{Membership, MembershipChange, RaftError, StateMachine, batch};

const SET_META: u8 = 1;

impl<SM: StateMachine> Core<SM> {
    /// Checks and proposes a membership change; the caller is answered when it is applied.
    pub(super) fn on_change_membership(&mut self, change: MembershipChange, reply: Reply<Membership>) {
        match self.propose_change(&change) {
            Ok((index, term, batch)) => {
                self.pending_change = Some(PendingChange {
                    index,
                    term,
                    batch,
                    reply,
                });
            }
            Err(e) => reply.send(Err(e)),
        }
    }

    /// The applied membership.
    pub(crate) fn membership(&self) -> Membership {
        let state = self.node.store().state();
        Membership::from_parts(&state.conf_state, &state.members)
    }

    /// Whether a change was proposed (by this node or an earlier leader) and is not applied yet.
    pub(crate) fn change_pending(&self) -> bool {
        // Against the applied index in the file: raft's own one lags until `advance_apply`.
        self.pending_change.is_some() || self.node.raft.pending_conf_index > self.node.store().state().applied
    }

    fn propose_change(&mut self, change: &MembershipChange) -> Result<(u64, u64, u64), RaftError> {
        if self.node.raft.state != StateRole::Leader {
            return Err(self.not_leader());
        }
        if self.change_pending() {
            // raft-rs would silently turn the proposal into an empty entry.
            return Err(RaftError::MembershipRefused(format!(
                "another membership change (up to log index {}) is not applied yet; retry when \
                 the status no longer shows pending_membership_change",
                self.node.raft.pending_conf_index
            )));
        }
        self.membership()
            .check(change)
            .map_err(RaftError::MembershipRefused)?;
        if *change == (MembershipChange::Remove { id: self.config.id }) {
            return Err(self.hand_over_leadership());
        }
        let (change_type, context) = match change {
            MembershipChange::AddLearner { meta, .. } => (ConfChangeType::AddLearnerNode, set_meta(meta)),
            MembershipChange::Promote { .. } => (ConfChangeType::AddNode, Vec::new()),
            MembershipChange::Remove { .. } => (ConfChangeType::RemoveNode, Vec::new()),
            MembershipChange::SetMeta { id, meta } => {
                // Adding a node as what it already is changes nothing in raft.
                let kind = if self.membership().voters.contains(id) {
                    ConfChangeType::AddNode
                } else {
                    ConfChangeType::AddLearnerNode
                };
                (kind, set_meta(meta))
            }
        };
        let mut cc = ConfChange {
            node_id: change.id(),
            context: context.into(),
            ..Default::default()
        };
        cc.set_change_type(change_type);
        let batch = self.next_batch;
        self.next_batch += 1;
        self.node
            .propose_conf_change(batch::context(self.config.id, batch), cc)
            .map_err(|e| {
                tracing::debug!(id = self.config.id, error = %e, "raft dropped a membership change");
                RaftError::ProposalDropped
            })?;
        let index = self.node.raft.raft_log.last_index();
        if self.node.raft.pending_conf_index != index {
            return Err(RaftError::MembershipRefused(
                "raft refused the change as another one is pending; retry shortly".to_string(),
            ));
        }
        tracing::info!(
            id = self.config.id,
            index,
            ?change_type,
            node = change.id(),
            "membership change proposed"
        );
        Ok((index, self.node.raft.term, batch))
    }

    /// The leader cannot remove itself safely: it hands leadership to the most up-to-date other
    /// voter and refuses, so the caller retries on the new leader.
    fn hand_over_leadership(&mut self) -> RaftError {
        let me = self.config.id;
        let target = self
            .node
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != me && self.node.raft.prs().conf().voters().contains(**id))
            .max_by_key(|(id, pr)| (pr.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id);
        match target {
            Some(target) => {
                self.node.transfer_leader(target);
                RaftError::MembershipRefused(format!(
                    "node {me} is the leader and cannot remove itself; leadership is being handed \
                     to node {target}: retry the removal there"
                ))
            }
            None => RaftError::MembershipRefused(format!(
                "node {me} is the leader and the only voter; add and promote another node first"
            )),
        }
    }

    /// Applies a configuration change entry: membership and member meta in the apply transaction.
    pub(super) fn apply_conf_change(
        &mut self,
        log: &mut LogWriter<'_>,
        outcomes: &mut Outcomes<SM::Output>,
        e: &Entry,
    ) -> Result<(), RaftError> {
        let (result, changes) = if e.get_entry_type() == EntryType::EntryConfChange {
            let cc = ConfChange::parse_from_bytes(&e.data)?;
            let change = (cc.get_change_type(), cc.node_id, cc.context.to_vec());
            (self.node.apply_conf_change(&cc), vec![change])
        } else {
            let cc = ConfChangeV2::parse_from_bytes(&e.data)?;
            let changes = cc
                .changes
                .iter()
                .map(|c| (c.get_change_type(), c.node_id, Vec::new()))
                .collect();
            (self.node.apply_conf_change(&cc), changes)
        };
        let result = match result {
            Ok(cs) => {
                tracing::info!(id = self.config.id, index = e.index, voters = ?cs.voters, learners = ?cs.learners, "raft membership changed");
                let members = new_members(&log.state().members, &cs, &changes);
                log.set_conf_state(cs)?;
                log.set_members(members)?;
                let state = log.state();
                Ok(Membership::from_parts(&state.conf_state, &state.members))
            }
            Err(err) => {
                // Every member refuses the same change the same way, so skipping stays deterministic.
                tracing::error!(id = self.config.id, index = e.index, error = %err, "raft refused a membership change; skipping it");
                Err(RaftError::MembershipRefused(format!(
                    "raft refused to apply it: {err}"
                )))
            }
        };
        self.settle_change(e, Some(result), outcomes);
        Ok(())
    }

    /// A leader elected before it applied its own removal (the entry was committed, not yet
    /// applied) must not go on leading a group it is no longer in: raft-rs leaves it leader
    /// without its own progress. It steps down into the next term, between two Readys (raft-rs
    /// requires that), and the voters elect a leader.
    pub(super) fn step_down_if_removed(&mut self) {
        let removed = !self
            .node
            .store()
            .state()
            .conf_state
            .voters
            .contains(&self.config.id);
        let raft = &mut self.node.raft;
        if raft.state == StateRole::Leader && removed {
            tracing::warn!(
                id = self.config.id,
                term = raft.term,
                "this leader was removed from the group; stepping down"
            );
            let term = raft.term + 1;
            raft.become_follower(term, raft::INVALID_ID);
        }
    }

    /// Answers the pending change's caller if `e` is its entry (with `result`), or fails it if
    /// `e` replaced it at its index or came after it.
    pub(super) fn settle_change(
        &mut self,
        e: &Entry,
        result: Option<Result<Membership, RaftError>>,
        outcomes: &mut Outcomes<SM::Output>,
    ) {
        let Some(p) = self.pending_change.take_if(|p| p.index <= e.index) else {
            return;
        };
        let mine = p.index == e.index
            && p.term == e.term
            && batch::parse_context(&e.context) == Some((self.config.id, p.batch));
        let answer = match result {
            Some(result) if mine => result,
            _ => Err(RaftError::ProposalDropped),
        };
        outcomes.memberships.push((p.reply, answer));
    }
}

fn set_meta(meta: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(meta.len() + 1);
    out.push(SET_META);
    out.extend_from_slice(meta);
    out
}

/// The member meta after `changes` (type, node, conf change context) led to `cs`.
fn new_members(
    old: &BTreeMap<u64, Vec<u8>>,
    cs: &ConfState,
    changes: &[(ConfChangeType, u64, Vec<u8>)],
) -> BTreeMap<u64, Vec<u8>> {
    let mut members = old.clone();
    for (kind, id, context) in changes {
        match kind {
            ConfChangeType::RemoveNode => {
                members.remove(id);
            }
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                let meta = match context.split_first() {
                    Some((&SET_META, meta)) => Some(meta.to_vec()),
                    _ => None,
                };
                match meta {
                    Some(meta) => {
                        members.insert(*id, meta);
                    }
                    None => {
                        members.entry(*id).or_default();
                    }
                }
            }
        }
    }
    for id in cs.voters.iter().chain(&cs.learners) {
        members.entry(*id).or_default();
    }
    members
}
