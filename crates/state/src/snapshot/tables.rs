//! Between the tables and the records: every row of a read transaction out as a record, and
//! records into emptied tables of a write transaction.
use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, TableError, WriteTransaction};

use super::record::{Encoder, Record};
use crate::keyvalue::StoreMeta;
use crate::tables::{
    COMPACTED, EVENTS, IDEMPOTENCY, IDEMPOTENCY_EXPIRY, KV_STORES, KV_VALUES, META, OBJECTS, REVISION,
    SUBSCRIPTIONS, TOPIC_EVENTS, TOPICS,
};
use crate::topics::{Subscription, TopicMeta, sub_key};

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Opens a table for reading; `None` when it was never created.
fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, String> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(s(e)),
    }
}

/// Writes every row `txn` sees, table by table in key order.
pub(super) fn export_tables(txn: &ReadTransaction, enc: &mut Encoder<'_>) -> Result<(), String> {
    let (mut revision, mut compacted) = (0, 0);
    if let Some(meta) = open(txn, META)? {
        revision = meta.get(REVISION).map_err(s)?.map_or(0, |g| g.value());
        compacted = meta.get(COMPACTED).map_err(s)?.map_or(0, |g| g.value());
    }
    enc.put(&Record::Meta { revision, compacted }).map_err(s)?;
    if let Some(t) = open(txn, OBJECTS)? {
        for item in t.iter().map_err(s)? {
            let (k, v) = item.map_err(s)?;
            enc.put(&Record::Object {
                key: k.value(),
                json: v.value(),
            })
            .map_err(s)?;
        }
    }
    if let Some(t) = open(txn, EVENTS)? {
        for item in t.iter().map_err(s)? {
            let (k, v) = item.map_err(s)?;
            enc.put(&Record::Event {
                revision: k.value(),
                json: v.value(),
            })
            .map_err(s)?;
        }
    }
    if let Some(t) = open(txn, TOPICS)? {
        for item in t.iter().map_err(s)? {
            let (k, v) = item.map_err(s)?;
            enc.put(&Record::Topic {
                name: k.value(),
                json: v.value(),
            })
            .map_err(s)?;
        }
    }
    if let Some(t) = open(txn, TOPIC_EVENTS)? {
        for item in t.iter().map_err(s)? {
            let (k, v) = item.map_err(s)?;
            let (topic, seq) = k.value();
            enc.put(&Record::TopicEvent {
                topic,
                seq,
                json: v.value(),
            })
            .map_err(s)?;
        }
    }
    if let Some(t) = open(txn, SUBSCRIPTIONS)? {
        for item in t.iter().map_err(s)? {
            let (_, v) = item.map_err(s)?;
            enc.put(&Record::Subscription { json: v.value() }).map_err(s)?;
        }
    }
    if let Some(t) = open(txn, IDEMPOTENCY)? {
        for item in t.iter().map_err(s)? {
            let (k, v) = item.map_err(s)?;
            let (seq, ms): (u64, u64) = serde_json::from_slice(v.value())
                .map_err(|e| format!("stored idempotency key {:?} is corrupt: {e}", k.value()))?;
            enc.put(&Record::Idempotency {
                key: k.value(),
                seq,
                ms,
            })
            .map_err(s)?;
        }
    }
    if let Some(t) = open(txn, KV_VALUES)? {
        for item in t.iter().map_err(s)? {
            let (k, v) = item.map_err(s)?;
            let (store, key) = k.value();
            enc.put(&Record::Kv {
                store,
                key,
                value: v.value(),
            })
            .map_err(s)?;
        }
    }
    Ok(())
}

/// The state tables of one write transaction, emptied, filled record by record.
pub(super) struct Restorer<'t> {
    txn: &'t WriteTransaction,
    objects: Table<'t, &'static str, &'static [u8]>,
    events: Table<'t, u64, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    topics: Table<'t, &'static str, &'static [u8]>,
    topic_events: Table<'t, (&'static str, u64), &'static [u8]>,
    subscriptions: Table<'t, &'static str, &'static [u8]>,
    idempotency: Table<'t, &'static str, &'static [u8]>,
    expiry: Table<'t, (u64, &'static str), ()>,
    kv: Table<'t, (&'static str, &'static str), &'static [u8]>,
    /// Each store's counters, written at the end.
    stores: BTreeMap<String, StoreMeta>,
}

impl<'t> Restorer<'t> {
    /// Empties every state table of `txn`.
    pub(super) fn new(txn: &'t WriteTransaction) -> Result<Self, String> {
        txn.delete_table(OBJECTS).map_err(s)?;
        txn.delete_table(EVENTS).map_err(s)?;
        txn.delete_table(META).map_err(s)?;
        txn.delete_table(TOPICS).map_err(s)?;
        txn.delete_table(TOPIC_EVENTS).map_err(s)?;
        txn.delete_table(SUBSCRIPTIONS).map_err(s)?;
        txn.delete_table(IDEMPOTENCY).map_err(s)?;
        txn.delete_table(IDEMPOTENCY_EXPIRY).map_err(s)?;
        txn.delete_table(KV_VALUES).map_err(s)?;
        txn.delete_table(KV_STORES).map_err(s)?;
        Ok(Restorer {
            txn,
            objects: txn.open_table(OBJECTS).map_err(s)?,
            events: txn.open_table(EVENTS).map_err(s)?,
            meta: txn.open_table(META).map_err(s)?,
            topics: txn.open_table(TOPICS).map_err(s)?,
            topic_events: txn.open_table(TOPIC_EVENTS).map_err(s)?,
            subscriptions: txn.open_table(SUBSCRIPTIONS).map_err(s)?,
            idempotency: txn.open_table(IDEMPOTENCY).map_err(s)?,
            expiry: txn.open_table(IDEMPOTENCY_EXPIRY).map_err(s)?,
            kv: txn.open_table(KV_VALUES).map_err(s)?,
            stores: BTreeMap::new(),
        })
    }

    /// Writes one record's row.
    pub(super) fn put(&mut self, record: Record<'_>) -> Result<(), String> {
        match record {
            Record::Meta { revision, compacted } => {
                self.meta.insert(REVISION, revision).map_err(s)?;
                self.meta.insert(COMPACTED, compacted).map_err(s)?;
            }
            Record::Object { key, json } => {
                self.objects.insert(key, json).map_err(s)?;
            }
            Record::Event { revision, json } => {
                self.events.insert(revision, json).map_err(s)?;
            }
            Record::Topic { name, json } => {
                serde_json::from_slice::<TopicMeta>(json)
                    .map_err(|e| format!("a topic is malformed: {e}"))?;
                self.topics.insert(name, json).map_err(s)?;
            }
            Record::TopicEvent { topic, seq, json } => {
                self.topic_events.insert((topic, seq), json).map_err(s)?;
            }
            Record::Subscription { json } => {
                let sub: Subscription =
                    serde_json::from_slice(json).map_err(|e| format!("a subscription is malformed: {e}"))?;
                let key = sub_key(&sub.namespace, &sub.topic, &sub.function);
                self.subscriptions.insert(key.as_str(), json).map_err(s)?;
            }
            Record::Idempotency { key, seq, ms } => {
                let v = serde_json::to_vec(&(seq, ms)).map_err(s)?;
                self.idempotency.insert(key, v.as_slice()).map_err(s)?;
                self.expiry.insert((ms, key), ()).map_err(s)?;
            }
            Record::Kv { store, key, value } => {
                self.kv.insert((store, key), value).map_err(s)?;
                let m = self.stores.entry(store.to_owned()).or_default();
                m.keys += 1;
                m.bytes += value.len() as u64;
            }
        }
        Ok(())
    }

    /// Writes what is derived from the rows (the key-value stores' counters).
    pub(super) fn finish(self) -> Result<(), String> {
        let Restorer { txn, stores, .. } = self;
        let mut t = txn.open_table(KV_STORES).map_err(s)?;
        for (store, meta) in stores {
            let b = serde_json::to_vec(&meta).map_err(s)?;
            t.insert(store.as_str(), b.as_slice()).map_err(s)?;
        }
        Ok(())
    }
}
