//! The simulation's state machine: an append-only list of every applied proposal, so the checks
//! can compare what each node applied, in order.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::{Fatal, StateMachine};

const APPLIED: TableDefinition<u64, &[u8]> = TableDefinition::new("sim_applied");

/// Appends each proposal to a table keyed by its position; the output is that position.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimMachine;

impl SimMachine {
    /// Every proposal applied in `db`, in order.
    ///
    /// # Errors
    ///
    /// redb's error as text.
    pub fn applied(db: &redb::Database) -> Result<Vec<Vec<u8>>, String> {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let t = txn.open_table(APPLIED).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| e.to_string())? {
            let (_, v) = item.map_err(|e| e.to_string())?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }
}

impl StateMachine for SimMachine {
    type Output = u64;

    fn init(&mut self, txn: &WriteTransaction) -> Result<(), String> {
        txn.open_table(APPLIED).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn apply(&mut self, txn: &WriteTransaction, _index: u64, proposal: &[u8]) -> Result<u64, Fatal> {
        let fatal = |e: redb::Error| Fatal(e.to_string());
        let mut t = txn.open_table(APPLIED).map_err(|e| fatal(e.into()))?;
        let next = t
            .last()
            .map_err(|e| fatal(e.into()))?
            .map_or(1, |(k, _)| k.value() + 1);
        t.insert(next, proposal).map_err(|e| fatal(e.into()))?;
        Ok(next)
    }

    fn committed(&mut self) {}

    fn snapshot(&self, txn: &redb::ReadTransaction) -> Result<Vec<u8>, String> {
        let t = txn.open_table(APPLIED).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| e.to_string())? {
            let (_, v) = item.map_err(|e| e.to_string())?;
            out.extend_from_slice(&(v.value().len() as u32).to_le_bytes());
            out.extend_from_slice(v.value());
        }
        Ok(out)
    }

    fn restore(&mut self, txn: &WriteTransaction, mut data: &[u8]) -> Result<(), String> {
        let mut t = txn.open_table(APPLIED).map_err(|e| e.to_string())?;
        t.retain(|_, _| false).map_err(|e| e.to_string())?;
        let mut key = 1;
        while let Some((len, rest)) = data.split_first_chunk::<4>() {
            let len = u32::from_le_bytes(*len) as usize;
            let value = rest.get(..len).ok_or("truncated simulation snapshot")?;
            t.insert(key, value).map_err(|e| e.to_string())?;
            key += 1;
            data = &rest[len..];
        }
        if !data.is_empty() {
            return Err("trailing bytes in the simulation snapshot".to_string());
        }
        Ok(())
    }
}
