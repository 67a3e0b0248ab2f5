//! The state as one stream: what a Raft snapshot and a backup hold, how it is written and read.
//!
//! The stream is written and read a record at a time, so a state of any size is exported and
//! restored in bounded memory (one row at a time, plus redb's own cache):
//!
//! ```text
//! stream = "SKIFF-STATE" version:u8 (= 2)  record*  end
//! record = tag:u8  len:u32le  payload[len]                 len <= 16 MiB
//!   1 meta          revision:u64 compacted:u64             first, exactly once
//!   2 object        key:str  object JSON                   Kind/namespace/name
//!   3 event         revision:u64  watch event JSON
//!   4 topic         name:str  counters JSON                namespace/topic
//!   5 topic event   topic:str  seq:u64  event JSON
//!   6 subscription  subscription JSON
//!   7 idempotency   key:str  seq:u64  published ms:u64
//!   8 key-value     store:str  key:str  value bytes        in (store, key) order, no repeats
//! end    = tag 0, len 8, records:u64le                     how many records came before
//! str    = len:u32le  UTF-8 bytes;  integers little-endian
//! ```
//!
//! A stream cut short lacks its end marker (or its count disagrees) and is refused; nothing may
//! follow the end. Version 1 is the single JSON document older releases wrote (`{"revision":…}`):
//! still read, whole, so their backups restore; never written.
mod legacy;
mod record;
mod tables;

use std::io::{BufWriter, Read, Write};

use redb::{ReadTransaction, WriteTransaction};

use self::record::{Decoder, Encoder, Record};
use crate::topics::{Subscription, TopicMeta};

/// Writes the state tables as seen by `txn` to `out` (the format of Raft snapshots and backups).
/// Any thread may call it with its own read transaction; memory use does not grow with the state.
///
/// # Errors
/// A storage message, or the write error of `out`.
pub fn export(txn: &ReadTransaction, out: &mut dyn Write) -> Result<(), String> {
    let mut out = BufWriter::with_capacity(256 << 10, out);
    let mut enc = Encoder::new(&mut out).map_err(|e| format!("writing the state export failed: {e}"))?;
    tables::export_tables(txn, &mut enc)?;
    enc.finish()
        .map_err(|e| format!("writing the state export failed: {e}"))?;
    out.flush()
        .map_err(|e| format!("writing the state export failed: {e}"))
}

/// Replaces the state tables in `txn` with the content of the stream `input` (either version),
/// row by row. On an error the caller must not commit `txn`.
///
/// # Errors
/// What is wrong with the stream (damaged, cut short, a newer version), or a storage message.
pub(crate) fn restore(txn: &WriteTransaction, input: &mut dyn Read) -> Result<(), String> {
    let mut prefix = Vec::new();
    let current = record::read_header(input, &mut prefix)?;
    let mut restorer = tables::Restorer::new(txn)?;
    if current {
        let mut records = Decoder::new(input);
        while let Some(record) = records.next()? {
            restorer.put(record)?;
        }
    } else {
        let mut data = prefix;
        input
            .read_to_end(&mut data)
            .map_err(|e| format!("reading the state stream failed: {e}"))?;
        legacy::replay(&data, &mut |record| restorer.put(record))?;
    }
    restorer.finish()
}

/// Reads a whole export (either version) without writing anything, and returns its revision.
///
/// # Errors
/// What is wrong with it.
pub(crate) fn check(data: &[u8]) -> Result<u64, String> {
    let mut input = data;
    let mut prefix = Vec::new();
    let mut revision = 0;
    let mut seen = |record: Record<'_>| -> Result<(), String> {
        match record {
            Record::Meta { revision: r, .. } => revision = r,
            Record::Topic { json, .. } => {
                serde_json::from_slice::<TopicMeta>(json)
                    .map_err(|e| format!("a topic is malformed: {e}"))?;
            }
            Record::Subscription { json } => {
                serde_json::from_slice::<Subscription>(json)
                    .map_err(|e| format!("a subscription is malformed: {e}"))?;
            }
            _ => {}
        }
        Ok(())
    };
    if record::read_header(&mut input, &mut prefix)? {
        let mut records = Decoder::new(input);
        while let Some(record) = records.next()? {
            seen(record)?;
        }
    } else {
        legacy::replay(data, &mut seen)?;
    }
    Ok(revision)
}
