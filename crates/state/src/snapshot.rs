//! The state as one document: what a Raft snapshot and a backup hold, and how it is written.
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::tables::{COMPACTED, EVENTS, META, OBJECTS, REVISION};
use crate::topics::{TopicsExport, export_topics};

/// Every table of the state.
#[derive(Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) revision: u64,
    pub(crate) compacted: u64,
    pub(crate) objects: Vec<(String, serde_json::Value)>,
    pub(crate) events: Vec<(u64, serde_json::Value)>,
    /// Topics, their events and subscriptions (absent in exports of older releases).
    #[serde(default)]
    pub(crate) topics: TopicsExport,
    /// Key-value store entries (absent in exports of older releases).
    #[serde(default)]
    pub(crate) keyvalue: Vec<crate::keyvalue::KvEntry>,
}

/// Serializes the state tables as seen by `txn` (the format of snapshots and backups). Any thread
/// may call it with its own read transaction.
///
/// # Errors
/// A storage message.
pub fn export(txn: &redb::ReadTransaction) -> Result<Vec<u8>, String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    let objects_t = txn.open_table(OBJECTS).map_err(|e| s(&e))?;
    let events_t = txn.open_table(EVENTS).map_err(|e| s(&e))?;
    let meta_t = txn.open_table(META).map_err(|e| s(&e))?;
    let get = |k: &str| -> Result<u64, String> {
        Ok(meta_t.get(k).map_err(|e| s(&e))?.map(|g| g.value()).unwrap_or(0))
    };
    let mut snap = Snapshot {
        revision: get(REVISION)?,
        compacted: get(COMPACTED)?,
        objects: vec![],
        events: vec![],
        topics: export_topics(txn)?,
        keyvalue: crate::keyvalue::export_kv(txn)?,
    };
    for item in objects_t.iter().map_err(|e| s(&e))? {
        let (k, v) = item.map_err(|e| s(&e))?;
        let json = serde_json::from_slice(v.value()).map_err(|e| s(&e))?;
        snap.objects.push((k.value().to_owned(), json));
    }
    for item in events_t.iter().map_err(|e| s(&e))? {
        let (k, v) = item.map_err(|e| s(&e))?;
        let json = serde_json::from_slice(v.value()).map_err(|e| s(&e))?;
        snap.events.push((k.value(), json));
    }
    serde_json::to_vec(&snap).map_err(|e| s(&e))
}
