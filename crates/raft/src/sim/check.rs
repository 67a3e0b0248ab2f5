//! The simulation's safety checks, over what the nodes persisted.

use std::collections::BTreeMap;

use raft::Storage as _;

use super::World;
use crate::driver::core::Core;
use crate::sim::SimMachine;

/// One node's log: index → (term, entry data).
pub(super) type Log = BTreeMap<u64, (u64, Vec<u8>)>;

/// The entries in a node's log (after its compaction point).
pub(super) fn log_of(core: &Core<SimMachine>) -> Result<Log, String> {
    let store = core.raw().store();
    let state = store.state();
    let first = state.truncated_index + 1;
    let entries = store
        .entries(
            first,
            state.last_index + 1,
            None,
            raft::GetEntriesContext::empty(false),
        )
        .map_err(|e| format!("node {}: cannot read its log: {e}", core.id()))?;
    Ok(entries
        .into_iter()
        .map(|e| (e.index, (e.term, e.data.to_vec())))
        .collect())
}

/// Log matching (Raft §5.3): if two logs have an entry with the same index and term, the logs
/// are identical up to and including that index.
pub(super) fn log_matching(logs: &[(u64, Log)]) -> Result<(), String> {
    for (i, (a_id, a)) in logs.iter().enumerate() {
        for (b_id, b) in &logs[i + 1..] {
            // The highest common index where the terms agree.
            let Some(top) = a
                .iter()
                .rev()
                .find(|(idx, (term, _))| b.get(idx).is_some_and(|(t, _)| t == term))
                .map(|(idx, _)| *idx)
            else {
                continue;
            };
            for (idx, ea) in a.range(..=top) {
                if let Some(eb) = b.get(idx)
                    && ea != eb
                {
                    return Err(format!(
                        "log matching violated: nodes {a_id} and {b_id} agree on the term at \
                             index {top} but differ at index {idx} (terms {} and {})",
                        ea.0, eb.0
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Committed entries never change (Raft §5.4, state machine safety): every entry at or below a
/// node's commit index must equal what any node ever saw committed at that index.
pub(super) fn committed_stable(
    committed: &mut BTreeMap<u64, (u64, Vec<u8>)>,
    id: u64,
    commit: u64,
    log: &Log,
) -> Result<(), String> {
    for (idx, entry) in log.range(..=commit) {
        match committed.get(idx) {
            Some(seen) if seen != entry => {
                return Err(format!(
                    "committed entry changed: node {id} has term {} at index {idx}, term {} was \
                     committed there before",
                    entry.0, seen.0
                ));
            }
            Some(_) => {}
            None => {
                committed.insert(*idx, entry.clone());
            }
        }
    }
    Ok(())
}

/// State-machine agreement: every node applied a prefix of the same sequence, with no proposal
/// applied twice.
pub(super) fn applied_agree(applied: &[(u64, Vec<Vec<u8>>)]) -> Result<(), String> {
    for (id, seq) in applied {
        let mut seen = std::collections::BTreeSet::new();
        for p in seq {
            if !seen.insert(p) {
                return Err(format!(
                    "node {id} applied {:?} twice",
                    String::from_utf8_lossy(p)
                ));
            }
        }
    }
    let Some((long_id, longest)) = applied.iter().max_by_key(|(_, s)| s.len()) else {
        return Ok(());
    };
    for (id, seq) in applied {
        if let Some(pos) = seq.iter().zip(longest).position(|(a, b)| a != b) {
            return Err(format!(
                "state machines diverge: node {id} and node {long_id} applied different proposals \
                 at position {} ({:?} vs {:?})",
                pos + 1,
                String::from_utf8_lossy(&seq[pos]),
                String::from_utf8_lossy(&longest[pos])
            ));
        }
    }
    Ok(())
}

impl World {
    /// Log matching and committed-entry stability over every running node.
    pub(super) fn check_logs(&mut self) -> Result<(), String> {
        let mut logs = Vec::new();
        for n in &self.nodes {
            if let Some(core) = &n.core {
                let log = log_of(core)?;
                let commit = core.raw().raft.raft_log.committed;
                committed_stable(&mut self.committed, n.id, commit, &log)?;
                logs.push((n.id, log));
            }
        }
        log_matching(&logs)?;
        let mut applied = Vec::new();
        for n in &self.nodes {
            if let Some(core) = &n.core {
                applied.push((n.id, SimMachine::applied(core.db())?));
            }
        }
        applied_agree(&applied)
    }

    /// A leader whose commit covers its log, applied by every member.
    pub(super) fn settled(&self) -> bool {
        let Some(leader) = self.leader() else { return false };
        let Some(core) = self.nodes[self.index_of(leader)].core.as_ref() else {
            return false;
        };
        let s = core.raw().store().state();
        let commit = core.raw().raft.raft_log.committed;
        if commit < s.last_index || s.applied < commit || self.change.is_some() {
            return false;
        }
        let m = core.membership();
        m.voters.iter().chain(&m.learners).all(|id| {
            self.nodes[self.index_of(*id)]
                .core
                .as_ref()
                .is_some_and(|c| c.raw().store().state().applied >= commit)
        })
    }

    /// Every acknowledged write is applied on every member, where its acknowledgement said.
    pub(super) fn check_acknowledged(&mut self) -> Result<(), String> {
        let leader = self.leader().ok_or("no leader after the quiet period")?;
        let core = self.nodes[self.index_of(leader)]
            .core
            .as_ref()
            .ok_or("the leader is not running")?;
        let m = core.membership();
        self.report.voters = m.voters.clone();
        for id in m.voters.iter().chain(&m.learners) {
            let n = &self.nodes[self.index_of(*id)];
            let core = n.core.as_ref().ok_or(format!("member {id} is not running"))?;
            let applied = SimMachine::applied(core.db())?;
            for (w, pos) in &self.acked {
                let at = applied.get((*pos - 1) as usize);
                if at.map(Vec::as_slice) != Some(format!("w{w}").as_bytes()) {
                    return Err(format!(
                        "acknowledged write w{w} (position {pos}) is not applied there on member \
                         {id} (found {:?})",
                        at.map(|a| String::from_utf8_lossy(a).into_owned())
                    ));
                }
            }
        }
        self.report.acknowledged = self.acked.len() as u64;
        Ok(())
    }

    /// Every running node's snapshot directory holds its stored snapshot's file, nothing half
    /// written, and no file the stored snapshot supersedes.
    pub(super) fn check_files(&self) -> Result<(), String> {
        for n in &self.nodes {
            let Some(core) = &n.core else { continue };
            let stored = crate::driver::snapshots::stored_id(core.raw().store())
                .map_err(|e| format!("node {}: {e}", n.id))?;
            let names = n.files.list();
            let fail = |what: &str| Err(format!("node {}: {what} (files: {names:?})", n.id));
            if names.iter().any(|f| f.ends_with(".tmp")) {
                return fail("a temporary snapshot file was left behind");
            }
            let Some(stored) = stored else {
                if names.is_empty() {
                    continue;
                }
                return fail("snapshot files without a stored snapshot");
            };
            if !names.contains(&stored.file_name()) {
                return fail(&format!(
                    "the stored snapshot's file {} is missing",
                    stored.file_name()
                ));
            }
            let superseded = names.iter().any(|f| {
                *f != stored.file_name()
                    && crate::snapshot::SnapshotId::parse(f).is_some_and(|(_, index)| index <= stored.index)
            });
            if superseded {
                return fail(&format!("a file superseded by snapshot {} stayed", stored.index));
            }
        }
        Ok(())
    }

    /// Every node's raft position, for failure messages.
    pub(super) fn describe(&self) -> String {
        let mut out = Vec::new();
        for n in &self.nodes {
            let Some(core) = &n.core else {
                out.push(format!("node {}: down", n.id));
                continue;
            };
            let raft = &core.raw().raft;
            let s = core.raw().store().state();
            let m = core.membership();
            out.push(format!(
                "node {}: {:?} term {} leader {} commit {} applied {} last {} voters {:?} learners {:?} pending change {}",
                n.id,
                raft.state,
                raft.term,
                raft.leader_id,
                raft.raft_log.committed,
                s.applied,
                s.last_index,
                m.voters,
                m.learners,
                core.change_pending()
            ));
        }
        if self.change.is_some() {
            out.push("a membership change is unanswered".to_string());
        }
        out.join("; ")
    }
}
