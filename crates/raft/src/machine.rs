//! The contract between the driver and the replicated state machine.

/// Writes a state machine's tables, as a read transaction sees them, to a snapshot file; see
/// [`StateMachine::exporter`].
pub type Exporter =
    Box<dyn FnOnce(&redb::ReadTransaction, &mut dyn std::io::Write) -> Result<(), String> + Send + 'static>;

/// A failure to apply a committed entry that stops the member (see [`StateMachine::apply`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// The replicated state machine the driver applies committed proposals to.
///
/// The driver owns the `redb::Database` and every write transaction; the machine only writes its own
/// tables inside the transactions it is handed, so its state and the driver's applied index always
/// change together.
///
/// Batching means several proposals can share one log `index`: they are applied in the order they
/// were proposed, each with the same `index`. A machine that needs a per-change revision keeps its
/// own counter in its tables.
pub trait StateMachine: Send + 'static {
    /// What applying one proposal returns to whoever proposed it.
    type Output: Send + 'static;

    /// Creates the machine's tables if missing (called once at start inside a write txn).
    ///
    /// # Errors
    ///
    /// A message saying what could not be created; the driver does not start.
    fn init(&mut self, txn: &redb::WriteTransaction) -> Result<(), String>;

    /// Applies one proposal (opaque bytes) committed at log `index`, inside `txn`; the driver records
    /// the applied index in the SAME transaction and commits it, so a crash never applies an entry
    /// twice or loses one. Must be deterministic and must not panic on bad bytes.
    ///
    /// A proposal the machine refuses (a conflict, a validation failure: the same on every member)
    /// is an `Ok` output that says so. `Err` is for what may differ between members: the storage
    /// failed, or the entry cannot be decoded. The driver then stops without committing the
    /// transaction (fail-stop), so the applied index never advances past an entry this member did
    /// not apply, and replicas cannot diverge.
    ///
    /// # Errors
    ///
    /// [`Fatal`] when this member cannot apply the entry.
    fn apply(
        &mut self,
        txn: &redb::WriteTransaction,
        index: u64,
        proposal: &[u8],
    ) -> Result<Self::Output, Fatal>;

    /// Called after the transaction holding applied entries has committed (the machine publishes
    /// watch events here).
    fn committed(&mut self);

    /// Writes the machine's tables, as `txn` sees them, to `out` (a snapshot file: any size,
    /// so write as you read rather than building the whole in memory). The format is the
    /// machine's own; version it, since [`StateMachine::restore`] may read it on a member of a
    /// later release.
    ///
    /// # Errors
    ///
    /// A message saying what could not be read or written. When a write to `out` failed (the
    /// disk), the driver logs it and tries again later; any other error stops the driver.
    fn snapshot(&self, txn: &redb::ReadTransaction, out: &mut dyn std::io::Write) -> Result<(), String>;

    /// A function that writes the machine's tables from a read transaction, run on a thread of
    /// its own so the driver keeps applying writes while a snapshot is taken. It must produce what
    /// [`StateMachine::snapshot`] would. `None` (the default) takes snapshots on the driver's
    /// thread (what the deterministic simulation wants).
    fn exporter(&self) -> Option<Exporter> {
        None
    }

    /// Replaces the machine's tables with a snapshot's content, read from `data` as it goes (the
    /// driver checks the file's digest as it is read). Must not panic on bad bytes: the
    /// descriptor's digest vouches for the file, not for what the machine makes of it.
    ///
    /// # Errors
    ///
    /// A message saying why the snapshot could not be installed; the driver drops the transaction
    /// and stops.
    fn restore(&mut self, txn: &redb::WriteTransaction, data: &mut dyn std::io::Read) -> Result<(), String>;
}
