//! Both ends of a snapshot transfer: what the leader hands its transport, and what a follower
//! writes the arriving chunks into.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use raft::eraftpb::{Message, MessageType};
use tokio::sync::OwnedSemaphorePermit;

use super::files::{SnapshotFiles, SnapshotWriter};
use super::{SnapshotDescriptor, descriptor::hex};
use crate::RaftError;

/// How a transfer ended, as the driver learns it: (to, snapshot index, outcome).
pub(crate) type TransferOutcome = (u64, u64, Result<(), String>);

/// Where transfer outcomes wait for the driver.
pub(crate) type TransferOutcomes = Arc<Mutex<Vec<TransferOutcome>>>;

/// Tells the leader's driver how one snapshot transfer ended, exactly once: through
/// [`SnapshotReport::finished`] or [`SnapshotReport::failed`], or as a failure when dropped
/// (a transport that loses the transfer still unblocks raft, which then sends a new one).
pub struct SnapshotReport {
    to: u64,
    index: u64,
    outcomes: Option<TransferOutcomes>,
}

impl std::fmt::Debug for SnapshotReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReport")
            .field("to", &self.to)
            .field("index", &self.index)
            .finish()
    }
}

impl SnapshotReport {
    pub(crate) fn new(to: u64, index: u64, outcomes: TransferOutcomes) -> Self {
        SnapshotReport {
            to,
            index,
            outcomes: Some(outcomes),
        }
    }

    /// The follower received the whole file, checked it and took the message.
    pub fn finished(mut self) {
        self.send(Ok(()));
    }

    /// The transfer failed; `why` is logged by the driver, and raft sends the snapshot again.
    pub fn failed(mut self, why: impl Into<String>) {
        self.send(Err(why.into()));
    }

    fn send(&mut self, outcome: Result<(), String>) {
        if let Some(outcomes) = self.outcomes.take() {
            outcomes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((self.to, self.index, outcome));
        }
    }
}

impl Drop for SnapshotReport {
    fn drop(&mut self) {
        self.send(Err("the transport dropped the transfer".into()));
    }
}

/// A snapshot for a follower: the raft message (which carries a [`SnapshotDescriptor`], not the
/// state) and the file's content, to stream to the follower before the message.
///
/// The data reader was opened when the transfer began, so it keeps reading the same content even
/// if a newer snapshot replaces the file meanwhile.
pub struct OutgoingSnapshot {
    message: Message,
    data: Box<dyn Read + Send>,
    size: u64,
    report: SnapshotReport,
}

impl std::fmt::Debug for OutgoingSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingSnapshot")
            .field("to", &self.message.to)
            .field("index", &self.report.index)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl OutgoingSnapshot {
    pub(crate) fn new(
        message: Message,
        data: Box<dyn Read + Send>,
        size: u64,
        report: SnapshotReport,
    ) -> Self {
        OutgoingSnapshot {
            message,
            data,
            size,
            report,
        }
    }

    /// The node it goes to.
    pub fn to(&self) -> u64 {
        self.message.to
    }

    /// The snapshot's log index.
    pub fn index(&self) -> u64 {
        self.report.index
    }

    /// Bytes of data to stream.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The `MsgSnapshot` to deliver after the data.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message, the data (exactly [`OutgoingSnapshot::size`] bytes) and the report.
    pub fn into_parts(self) -> (Message, Box<dyn Read + Send>, SnapshotReport) {
        (self.message, self.data, self.report)
    }
}

/// A snapshot arriving from the leader: its chunks go to a temporary file in this node's snapshot
/// directory, hashed on the way; [`IncomingSnapshot::finish`] checks the size and the digest
/// against the message's descriptor, makes the file durable under its final name and hands back
/// the message to step. Dropped before that, it removes the file: a transfer cut off or refused
/// leaves nothing behind, and the leader sends the snapshot again.
pub struct IncomingSnapshot {
    message: Message,
    descriptor: SnapshotDescriptor,
    writer: SnapshotWriter,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for IncomingSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingSnapshot")
            .field("from", &self.message.from)
            .field("index", &self.index())
            .field("size", &self.descriptor.size)
            .field("received", &self.writer.size())
            .finish_non_exhaustive()
    }
}

impl IncomingSnapshot {
    /// Checks `message` (a `MsgSnapshot` with a descriptor) and opens its temporary file.
    pub(crate) fn begin(
        files: &SnapshotFiles,
        message: Message,
        permit: OwnedSemaphorePermit,
    ) -> Result<Self, RaftError> {
        if message.get_msg_type() != MessageType::MsgSnapshot {
            return Err(RaftError::InvalidMessage(format!(
                "a snapshot transfer must carry a MsgSnapshot, not {:?}",
                message.get_msg_type()
            )));
        }
        let descriptor = SnapshotDescriptor::decode(&message.get_snapshot().data)?;
        let writer = files.writer("incoming")?;
        Ok(IncomingSnapshot {
            message,
            descriptor,
            writer,
            _permit: permit,
        })
    }

    /// The node sending it.
    pub fn from(&self) -> u64 {
        self.message.from
    }

    /// The snapshot's log index.
    pub fn index(&self) -> u64 {
        self.message.get_snapshot().get_metadata().index
    }

    /// Bytes the file will hold.
    pub fn size(&self) -> u64 {
        self.descriptor.size
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.writer.size()
    }

    /// Appends the next chunk.
    ///
    /// # Errors
    ///
    /// [`RaftError::SnapshotTransfer`] when the chunks exceed the announced size;
    /// [`RaftError::Storage`] when the file cannot be written (the disk is full, say). Either way
    /// drop the transfer: its file is removed.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), RaftError> {
        if self.writer.size() + chunk.len() as u64 > self.descriptor.size {
            return Err(self.refused(format!(
                "more data arrived than the {} bytes announced",
                self.descriptor.size
            )));
        }
        self.writer.write_all(chunk).map_err(|e| {
            RaftError::Storage(format!(
                "cannot write the snapshot at index {} from node {} to {}: {e}; check the disk \
                 (free space, permissions): the leader sends it again",
                self.index(),
                self.from(),
                self.writer.path().display()
            ))
        })
    }

    /// Checks that the whole file arrived intact, makes it durable under its final name, and
    /// returns the message to step into raft ([`crate::RaftHandle::step`]).
    ///
    /// # Errors
    ///
    /// [`RaftError::SnapshotTransfer`] when bytes are missing or the digest differs (the file is
    /// removed; the leader sends the snapshot again); [`RaftError::Storage`] when it cannot be
    /// synced or renamed.
    pub fn finish(self) -> Result<Message, RaftError> {
        let got = self.writer.size();
        if got != self.descriptor.size {
            return Err(self.refused(format!(
                "it was cut short: {got} of {} bytes arrived",
                self.descriptor.size
            )));
        }
        let digest = self.writer.digest();
        if digest != self.descriptor.sha256 {
            return Err(self.refused(format!(
                "its data hashes to sha256 {}, the leader announced {}: it was damaged on the way",
                hex(&digest),
                self.descriptor.sha256_hex()
            )));
        }
        let meta = self.message.get_snapshot().get_metadata();
        let (term, index) = (meta.term, meta.index);
        let IncomingSnapshot { message, writer, .. } = self;
        writer.finish(term, index)?;
        Ok(message)
    }

    fn refused(&self, why: String) -> RaftError {
        RaftError::SnapshotTransfer(format!(
            "snapshot at index {} from node {} refused: {why}; the leader sends it again",
            self.index(),
            self.from()
        ))
    }
}
