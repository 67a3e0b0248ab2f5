//! The simulation's state machine: an append-only list of every applied proposal, so the checks
//! can compare what each node applied, in order.

use std::io::{Read, Write};

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

    fn snapshot(&self, txn: &redb::ReadTransaction, out: &mut dyn Write) -> Result<(), String> {
        let t = txn.open_table(APPLIED).map_err(|e| e.to_string())?;
        for item in t.iter().map_err(|e| e.to_string())? {
            let (_, v) = item.map_err(|e| e.to_string())?;
            out.write_all(&(v.value().len() as u32).to_le_bytes())
                .and_then(|()| out.write_all(v.value()))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn restore(&mut self, txn: &WriteTransaction, data: &mut dyn Read) -> Result<(), String> {
        let mut t = txn.open_table(APPLIED).map_err(|e| e.to_string())?;
        t.retain(|_, _| false).map_err(|e| e.to_string())?;
        let mut key = 1;
        loop {
            let mut len = [0u8; 4];
            match data.read(&mut len[..1]) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
            data.read_exact(&mut len[1..])
                .map_err(|_| "truncated simulation snapshot")?;
            let len = u64::from(u32::from_le_bytes(len));
            let mut value = Vec::new();
            let got = (&mut *data)
                .take(len)
                .read_to_end(&mut value)
                .map_err(|e| e.to_string())?;
            if got as u64 != len {
                return Err("truncated simulation snapshot".to_string());
            }
            t.insert(key, value.as_slice()).map_err(|e| e.to_string())?;
            key += 1;
        }
    }
}
