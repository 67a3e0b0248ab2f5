//! Snapshots in the driver: taking them into files, storing their descriptors, sending them to
//! followers and learning how that went, installing received ones, removing old files.

use std::collections::BTreeMap;

use raft::eraftpb::{ConfState, Message, Snapshot};
use raft::{ProgressState, StateRole};
use redb::{ReadableDatabase, WriteTransaction};

use super::core::Core;
use crate::membership::MemberMeta;
use crate::snapshot::files::{HashingReader, SnapshotWriter};
use crate::snapshot::{
    OutgoingSnapshot, SnapshotData, SnapshotDescriptor, SnapshotFiles, SnapshotId, SnapshotReport,
};
use crate::storage::RedbStorage;
use crate::{RaftError, StateMachine};

/// Ticks to wait before trying again after a snapshot could not be written to the disk.
const RETRY_TICKS: u64 = 100;

/// Where the raft log stood when a snapshot was taken.
pub(super) struct Taken {
    index: u64,
    term: u64,
    conf_state: ConfState,
    members: BTreeMap<u64, Vec<u8>>,
}

/// A snapshot another thread is writing from a read transaction taken at `taken.index`.
pub(super) struct SnapshotJob {
    taken: Taken,
    done: std::sync::mpsc::Receiver<Result<(SnapshotId, u64), Failure>>,
}

/// Why a snapshot could not be taken.
pub(super) enum Failure {
    /// The machine could not read its tables: the driver stops, as for any machine error.
    Machine(String),
    /// The file could not be written (the disk is full, say): tried again later.
    Disk(RaftError),
}

/// Runs `write` into `writer` and makes the file durable: its id and size.
fn write_file(
    write: impl FnOnce(&mut SnapshotWriter) -> Result<(), String>,
    mut writer: SnapshotWriter,
    term: u64,
    index: u64,
) -> Result<(SnapshotId, u64), Failure> {
    match write(&mut writer) {
        Ok(()) => {
            let size = writer.size();
            writer
                .finish(term, index)
                .map(|id| (id, size))
                .map_err(Failure::Disk)
        }
        Err(e) if writer.failed() => Err(Failure::Disk(RaftError::Storage(format!(
            "cannot write snapshot file {}: {e}",
            writer.path().display()
        )))),
        Err(e) => Err(Failure::Machine(e)),
    }
}

/// The file of the stored snapshot, if there is one.
pub(crate) fn stored_id(storage: &RedbStorage) -> Result<Option<SnapshotId>, RaftError> {
    let Some(snap) = storage.stored_snapshot()? else {
        return Ok(None);
    };
    let meta = snap.get_metadata();
    Ok(match SnapshotData::parse(&snap.data)? {
        SnapshotData::Descriptor(d) => Some(SnapshotId {
            term: meta.term,
            index: meta.index,
            sha256: d.sha256,
        }),
        SnapshotData::Inline { .. } => None,
    })
}

/// At start: moves a stored snapshot of an older release (its data inline in redb) into a file,
/// and removes temporary and superseded files.
pub(super) fn prepare_files(storage: &mut RedbStorage, files: &SnapshotFiles) -> Result<(), RaftError> {
    if let Some(snap) = storage.stored_snapshot()?
        && let SnapshotData::Inline { members, machine } = SnapshotData::parse(&snap.data)?
    {
        let (term, index) = (snap.get_metadata().term, snap.get_metadata().index);
        let stored = to_file(files, &snap, members, machine)?;
        storage.write(|w| w.store_snapshot(&stored))?;
        tracing::info!(
            index,
            term,
            bytes = machine.len(),
            "moved the stored raft snapshot into a file"
        );
    }
    let stored = stored_id(storage)?;
    if let Some(id) = &stored
        && !files.exists(id)
    {
        tracing::warn!(
            file = %files.path(id).display(),
            "the stored raft snapshot's file is missing; a new snapshot is taken before one is sent"
        );
    }
    files.clean(stored.as_ref(), true);
    Ok(())
}

/// Writes inline snapshot data to a file; the snapshot to store instead, with a descriptor.
fn to_file(
    files: &SnapshotFiles,
    snap: &Snapshot,
    members: MemberMeta,
    machine: &[u8],
) -> Result<Snapshot, RaftError> {
    let meta = snap.get_metadata();
    let id = files.write_all(meta.term, meta.index, machine)?;
    let descriptor = SnapshotDescriptor {
        members,
        size: machine.len() as u64,
        sha256: id.sha256,
    };
    let mut stored = snap.clone();
    stored.data = descriptor.encode().into();
    Ok(stored)
}

impl<SM: StateMachine> Core<SM> {
    /// Takes a snapshot and compacts the log when enough entries were applied since the last one,
    /// or when raft asked for a newer snapshot to send to a follower.
    pub(super) fn maybe_snapshot(&mut self) -> Result<(), RaftError> {
        if let Some(job) = &self.snapshot_job {
            let result = match job.done.try_recv() {
                Err(std::sync::mpsc::TryRecvError::Empty) => return Ok(()),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.snapshot_job = None;
                    return Err(RaftError::StateMachine(
                        "the snapshot thread ended without a result".into(),
                    ));
                }
                Ok(result) => result,
            };
            let job = self.snapshot_job.take().ok_or(RaftError::Stopped)?;
            return self.snapshot_written(&job.taken, result);
        }
        if self.ticks < self.snapshot_retry_at {
            return Ok(());
        }
        let wanted = self.node.store().take_snapshot_wanted() || self.snapshot_forced;
        let state = self.node.store().state().clone();
        let due = state.applied >= state.snapshot_index.saturating_add(self.config.snapshot_every);
        let newer = state.applied > state.snapshot_index || self.snapshot_forced;
        if !(due || wanted) || !newer || state.applied == 0 {
            return Ok(());
        }
        let term = raft::Storage::term(self.node.store(), state.applied)
            .map_err(|e| RaftError::Storage(format!("cannot read term of {}: {e}", state.applied)))?;
        let taken = Taken {
            index: state.applied,
            term,
            conf_state: state.conf_state,
            members: state.members,
        };
        let writer = match self.files.writer("local") {
            Ok(w) => w,
            Err(e) => return self.snapshot_written(&taken, Err(Failure::Disk(e))),
        };
        // Taken here, on the thread that does every write, the read transaction sees exactly the
        // state at `applied`; redb keeps that view while writes go on.
        let txn = self.db.begin_read()?;
        let Some(exporter) = self.sm.exporter() else {
            let result = write_file(|w| self.sm.snapshot(&txn, w), writer, term, taken.index);
            drop(txn);
            return self.snapshot_written(&taken, result);
        };
        let (tx, done) = std::sync::mpsc::channel();
        let (id, index) = (self.config.id, taken.index);
        std::thread::Builder::new()
            .name(format!("skiff-raft-{id}-snapshot"))
            .spawn(move || {
                // This thread is outside the deterministic core: it may read the clock.
                let started = std::time::Instant::now();
                let result = write_file(|w| exporter(&txn, w), writer, term, index);
                if let Ok((_, bytes)) = &result {
                    let millis = started.elapsed().as_millis() as u64;
                    tracing::info!(id, index, bytes, millis, "raft snapshot file written");
                }
                let _ = tx.send(result);
            })
            .map_err(|e| RaftError::Storage(format!("cannot spawn the snapshot thread: {e}")))?;
        tracing::debug!(id = self.config.id, index, "raft snapshot started");
        self.snapshot_job = Some(SnapshotJob { taken, done });
        Ok(())
    }

    /// Stores a written snapshot and compacts the log behind it, or handles why it failed.
    fn snapshot_written(
        &mut self,
        taken: &Taken,
        result: Result<(SnapshotId, u64), Failure>,
    ) -> Result<(), RaftError> {
        let (file, size) = match result {
            Ok(written) => written,
            Err(Failure::Machine(e)) => return Err(RaftError::StateMachine(e)),
            Err(Failure::Disk(e)) => {
                self.snapshot_retry_at = self.ticks + RETRY_TICKS;
                tracing::error!(
                    id = self.config.id,
                    error = %e,
                    retry_in_ticks = RETRY_TICKS,
                    "cannot write a raft snapshot: the log is not compacted and lagging members \
                     cannot catch up until it succeeds; free disk space"
                );
                return Ok(());
            }
        };
        let state = self.node.store().state().clone();
        if taken.index < state.snapshot_index
            || (taken.index == state.snapshot_index && !self.snapshot_forced)
        {
            // A snapshot received from the leader meanwhile is newer; this file is superseded.
            self.clean_snapshots();
            return Ok(());
        }
        self.snapshot_forced = false;
        let descriptor = SnapshotDescriptor {
            members: taken.members.clone(),
            size,
            sha256: file.sha256,
        };
        let mut snap = Snapshot {
            data: descriptor.encode().into(),
            ..Default::default()
        };
        let meta = snap.mut_metadata();
        meta.index = taken.index;
        meta.term = taken.term;
        meta.set_conf_state(taken.conf_state.clone());
        let compact_to = taken
            .index
            .saturating_sub(self.config.keep_entries)
            .max(state.truncated_index);
        self.node.mut_store().write(|w| {
            w.store_snapshot(&snap)?;
            w.compact(compact_to)
        })?;
        tracing::info!(
            id = self.config.id,
            index = taken.index,
            bytes = size,
            file = %self.files.path(&file).display(),
            compacted_to = compact_to,
            "raft snapshot taken"
        );
        self.clean_snapshots();
        Ok(())
    }

    /// Removes snapshot files the stored snapshot supersedes.
    pub(super) fn clean_snapshots(&self) {
        match stored_id(self.node.store()) {
            Ok(stored) => self.files.clean(stored.as_ref(), false),
            Err(e) => {
                tracing::warn!(id = self.config.id, error = %e, "cannot read the stored snapshot; old snapshot files stay")
            }
        }
    }

    /// Hands a `MsgSnapshot` to the transport with a reader of its file.
    pub(super) fn send_snapshot(&mut self, msg: Message) {
        let (to, meta) = (msg.to, msg.get_snapshot().get_metadata());
        let (index, term) = (meta.index, meta.term);
        let report = SnapshotReport::new(to, index, self.transfers.clone());
        let opened = SnapshotDescriptor::decode(&msg.get_snapshot().data)
            .and_then(|d| self.files.open_snapshot(term, index, &d));
        match opened {
            Ok((data, size)) => {
                tracing::info!(
                    id = self.config.id,
                    to,
                    index,
                    bytes = size,
                    "sending a raft snapshot"
                );
                self.transport
                    .send_snapshot(OutgoingSnapshot::new(msg, data, size, report));
            }
            Err(e) => {
                // Take a new one: raft asks again after the failure, and gets the new file.
                self.snapshot_forced = true;
                tracing::error!(id = self.config.id, to, index, error = %e, "cannot send a raft snapshot; taking a new one");
                report.failed(e.to_string());
            }
        }
    }

    /// Tells raft how the snapshot transfers that ended went: `Finish` once the follower took
    /// the whole file, `Failure` otherwise (raft then sends a snapshot again). An outcome that
    /// no longer matches the follower's progress (a newer transfer, another term) is only logged.
    pub(super) fn settle_transfers(&mut self) {
        let outcomes = std::mem::take(
            &mut *self
                .transfers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (to, index, result) in outcomes {
            let current =
                self.node.raft.state == StateRole::Leader
                    && self.node.raft.prs().get(to).is_some_and(|pr| {
                        pr.state == ProgressState::Snapshot && pr.pending_snapshot == index
                    });
            let status = match result {
                Ok(()) => {
                    tracing::info!(id = self.config.id, to, index, "raft snapshot delivered");
                    raft::SnapshotStatus::Finish
                }
                Err(why) => {
                    tracing::warn!(id = self.config.id, to, index, error = %why, "raft snapshot transfer failed; it is sent again");
                    raft::SnapshotStatus::Failure
                }
            };
            if current {
                self.node.report_snapshot(to, status);
            }
        }
    }

    /// Restores the machine from a received snapshot inside `txn`: from its file, streamed and
    /// hashed on the way (the file was checked when it arrived; this catches a disk that changed
    /// it since), or from inline data an older leader sent (then written to a file, for sending
    /// it on). Returns the members and the snapshot to store.
    pub(super) fn restore_machine(
        &mut self,
        txn: &WriteTransaction,
        snap: &Snapshot,
    ) -> Result<(MemberMeta, Snapshot), RaftError> {
        let (term, index) = (snap.get_metadata().term, snap.get_metadata().index);
        match SnapshotData::parse(&snap.data)? {
            SnapshotData::Descriptor(desc) => {
                let (data, _) = self.files.open_snapshot(term, index, &desc)?;
                let path = self.files.path(&SnapshotId {
                    term,
                    index,
                    sha256: desc.sha256,
                });
                let mut reader = HashingReader::new(data);
                self.sm
                    .restore(txn, &mut reader)
                    .map_err(RaftError::StateMachine)?;
                reader.verify(&desc, &path)?;
                Ok((desc.members, snap.clone()))
            }
            SnapshotData::Inline { members, machine } => {
                self.sm
                    .restore(txn, &mut &machine[..])
                    .map_err(RaftError::StateMachine)?;
                let stored = to_file(&self.files, snap, members.clone(), machine)?;
                Ok((members, stored))
            }
        }
    }
}
