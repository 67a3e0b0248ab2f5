//! Version 1 of the state stream: one JSON document, as releases before streamed snapshots wrote
//! exports and backups. Read (whole, into memory) so old backups still restore; never written.
use serde::Deserialize;

use super::record::Record;
use crate::topics::{Subscription, TopicMeta};

/// The version 1 document.
#[derive(Deserialize)]
struct Document {
    revision: u64,
    compacted: u64,
    objects: Vec<(String, serde_json::Value)>,
    events: Vec<(u64, serde_json::Value)>,
    /// Absent in exports of older releases.
    #[serde(default)]
    topics: Topics,
    /// Absent in exports of older releases.
    #[serde(default)]
    keyvalue: Vec<KvEntry>,
}

#[derive(Default, Deserialize)]
struct Topics {
    topics: Vec<(String, TopicMeta)>,
    events: Vec<(String, u64, serde_json::Value)>,
    subscriptions: Vec<Subscription>,
    keys: Vec<(String, (u64, u64))>,
}

#[derive(Deserialize)]
struct KvEntry {
    store: String,
    key: String,
    #[serde(with = "crate::command::base64_bytes")]
    value: Vec<u8>,
}

/// Parses a version 1 document and hands its rows to `put` in the order a version 2 stream
/// holds them (key-value entries sorted, as the table holds them).
///
/// # Errors
/// Why the document does not parse, or the first error of `put`.
pub(super) fn replay(
    data: &[u8],
    put: &mut dyn FnMut(Record<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let doc: Document = serde_json::from_slice(data)
        .map_err(|e| format!("neither a state stream nor a version 1 JSON document: {e}"))?;
    put(Record::Meta {
        revision: doc.revision,
        compacted: doc.compacted,
    })?;
    for (key, value) in &doc.objects {
        put(Record::Object {
            key,
            json: &json(value)?,
        })?;
    }
    for (revision, value) in &doc.events {
        put(Record::Event {
            revision: *revision,
            json: &json(value)?,
        })?;
    }
    for (name, meta) in &doc.topics.topics {
        put(Record::Topic {
            name,
            json: &json(meta)?,
        })?;
    }
    for (topic, seq, value) in &doc.topics.events {
        put(Record::TopicEvent {
            topic,
            seq: *seq,
            json: &json(value)?,
        })?;
    }
    for sub in &doc.topics.subscriptions {
        put(Record::Subscription { json: &json(sub)? })?;
    }
    for (key, (seq, ms)) in &doc.topics.keys {
        put(Record::Idempotency {
            key,
            seq: *seq,
            ms: *ms,
        })?;
    }
    let mut kv: Vec<&KvEntry> = doc.keyvalue.iter().collect();
    kv.sort_by(|a, b| (&a.store, &a.key).cmp(&(&b.store, &b.key)));
    kv.dedup_by(|a, b| (&a.store, &a.key) == (&b.store, &b.key));
    for e in kv {
        put(Record::Kv {
            store: &e.store,
            key: &e.key,
            value: &e.value,
        })?;
    }
    Ok(())
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("cannot re-encode a row of the export: {e}"))
}
