//! Binds the state machine to the Raft driver.
use skiff_state::{Applied, Machine, StateError};

/// [`Machine`] as the Raft driver's state machine.
pub(crate) struct Replicated(pub(crate) Machine);

impl skiff_raft::StateMachine for Replicated {
    type Output = Result<Applied, StateError>;

    fn init(&mut self, txn: &redb::WriteTransaction) -> Result<(), String> {
        self.0.init(txn)
    }

    fn apply(
        &mut self,
        txn: &redb::WriteTransaction,
        index: u64,
        proposal: &[u8],
    ) -> Result<Self::Output, skiff_raft::Fatal> {
        match self.0.apply_full(txn, index, proposal) {
            // What may differ between members (the disk, bytes that do not decode) stops this
            // one; refusals every member makes alike are the proposer's answer.
            Err(e @ (StateError::Storage { .. } | StateError::Decode { .. })) => {
                Err(skiff_raft::Fatal(e.to_string()))
            }
            other => Ok(other),
        }
    }

    fn committed(&mut self) {
        self.0.committed();
    }

    fn snapshot(&self, txn: &redb::ReadTransaction, out: &mut dyn std::io::Write) -> Result<(), String> {
        self.0.snapshot(txn, out)
    }

    fn exporter(&self) -> Option<skiff_raft::Exporter> {
        Some(Box::new(
            |txn: &redb::ReadTransaction, out: &mut dyn std::io::Write| skiff_state::export(txn, out),
        ))
    }

    fn restore(&mut self, txn: &redb::WriteTransaction, data: &mut dyn std::io::Read) -> Result<(), String> {
        self.0.restore(txn, data)
    }
}
