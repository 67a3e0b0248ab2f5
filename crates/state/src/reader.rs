//! Read-only queries.
use std::sync::Arc;

use redb::{Database, ReadableDatabase};
use skiff_api::{Kind, LabelSelector, Object, WatchEvent};

use crate::error::StateError;
use crate::tables::{COMPACTED, EVENTS, META, OBJECTS, REVISION, decode};

/// The key of an object in the `objects` table.
pub fn object_key(kind: Kind, namespace: Option<&str>, name: &str) -> String {
    format!(
        "{}/{}/{}",
        kind.as_str(),
        if kind.namespaced() {
            namespace.unwrap_or("default")
        } else {
            ""
        },
        name
    )
}

/// Read access to the state tables from any thread.
#[derive(Clone)]
pub struct Reader {
    db: Arc<Database>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reader")
    }
}

impl Reader {
    /// A reader over `db`.
    pub fn new(db: Arc<Database>) -> Self {
        Reader { db }
    }

    /// The current revision.
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn revision(&self) -> Result<u64, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        let Ok(meta) = txn.open_table(META) else {
            return Ok(0);
        };
        Ok(meta
            .get(REVISION)
            .map_err(StateError::storage)?
            .map(|g| g.value())
            .unwrap_or(0))
    }

    /// Topics (of one namespace, or all) with their subscribers' positions.
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn topics(&self, namespace: Option<&str>) -> Result<Vec<skiff_api::TopicStatus>, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        crate::topics::read_topics(&txn, namespace)
    }

    /// What `namespace` uses of the amounts a ResourceQuota limits, except artifact bytes and
    /// fuel (which the state does not hold): objects, unfinished pods and their memory requests,
    /// key-value keys and bytes, topic backlog.
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn quota_usage(&self, namespace: &str) -> Result<skiff_api::QuotaAmounts, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        read_usage(&txn, namespace)
    }

    /// Every subscription of a function to a topic.
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn subscriptions(&self) -> Result<Vec<crate::Subscription>, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        crate::topics::read_subscriptions(&txn)
    }

    /// Up to `limit` stored events of a topic from sequence number `from` on.
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn topic_events(
        &self,
        namespace: &str,
        topic: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, skiff_api::CloudEvent)>, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        crate::topics::read_events(&txn, namespace, topic, from, limit)
    }

    /// One stored event of a topic.
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn topic_event(
        &self,
        namespace: &str,
        topic: &str,
        seq: u64,
    ) -> Result<Option<skiff_api::CloudEvent>, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        crate::topics::read_event(&txn, namespace, topic, seq)
    }

    /// Key-value stores (of one namespace, or all) with their sizes.
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn kv_stores(&self, namespace: Option<&str>) -> Result<Vec<skiff_api::KeyValueStore>, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        crate::keyvalue::read_stores(&txn, namespace)
    }

    /// The value of one key (`None`: no such key, or no such store).
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn kv_get(&self, namespace: &str, store: &str, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        crate::keyvalue::read_value(&txn, namespace, store, key)
    }

    /// Up to `limit` keys of a store starting with `prefix`, after `after`, in byte order.
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn kv_keys(
        &self,
        namespace: &str,
        store: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<skiff_api::KeyPage, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        crate::keyvalue::read_keys(&txn, namespace, store, prefix, after, limit)
    }

    /// One object.
    ///
    /// # Errors
    /// [`StateError::NotFound`], [`StateError::Storage`].
    pub fn get(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Result<Object, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        let not_found = || StateError::NotFound {
            kind: kind.to_string(),
            namespace: kind
                .namespaced()
                .then(|| namespace.unwrap_or("default").to_owned()),
            name: name.to_owned(),
        };
        let Ok(t) = txn.open_table(OBJECTS) else {
            return Err(not_found());
        };
        match t
            .get(object_key(kind, namespace, name).as_str())
            .map_err(StateError::storage)?
        {
            Some(v) => decode(v.value()),
            None => Err(not_found()),
        }
    }

    /// All objects of `kind` (in `namespace`, or in every namespace when `None`) matching `selector`,
    /// with the revision they were read at.
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> Result<(u64, Vec<Object>), StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        let rev = match txn.open_table(META) {
            Ok(m) => m
                .get(REVISION)
                .map_err(StateError::storage)?
                .map(|g| g.value())
                .unwrap_or(0),
            Err(_) => 0,
        };
        let Ok(t) = txn.open_table(OBJECTS) else {
            return Ok((rev, Vec::new()));
        };
        let prefix = match (kind.namespaced(), namespace) {
            (true, Some(ns)) => format!("{}/{}/", kind.as_str(), ns),
            _ => format!("{}/", kind.as_str()),
        };
        // Keys are `Kind/ns/name`; every key with the prefix sorts before prefix + '\u{10FFFF}'.
        let end = format!("{prefix}\u{10FFFF}");
        let mut out = Vec::new();
        for item in t
            .range(prefix.as_str()..end.as_str())
            .map_err(StateError::storage)?
        {
            let (_, v) = item.map_err(StateError::storage)?;
            let obj = decode(v.value())?;
            if selector.matches(&obj.meta().labels) {
                out.push(obj);
            }
        }
        Ok((rev, out))
    }

    /// The whole state (objects, watch history, topics, key-value stores, revision) as one
    /// consistent export — the stream format of Raft snapshots, used for backups — with the
    /// revision it was taken at.
    ///
    /// Runs in one read transaction, so writes continue while it is taken.
    ///
    /// # Errors
    /// [`StateError::Storage`].
    pub fn export(&self) -> Result<(u64, Vec<u8>), StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        let mut data = Vec::new();
        crate::snapshot::export(&txn, &mut data).map_err(|message| StateError::Storage { message })?;
        let revision = check_export(&data)?;
        Ok((revision, data))
    }

    /// Watch events after revision `since`, oldest first.
    ///
    /// # Errors
    /// [`StateError::Invalid`] when `since` is older than the retained history (the watcher must list
    /// again), [`StateError::Storage`].
    pub fn events_since(&self, since: u64) -> Result<Vec<(u64, WatchEvent)>, StateError> {
        let txn = self.db.begin_read().map_err(StateError::storage)?;
        let compacted = match txn.open_table(META) {
            Ok(m) => m
                .get(COMPACTED)
                .map_err(StateError::storage)?
                .map(|g| g.value())
                .unwrap_or(0),
            Err(_) => 0,
        };
        if since < compacted {
            return Err(StateError::Compacted { since, compacted });
        }
        let Ok(t) = txn.open_table(EVENTS) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.range(since + 1..).map_err(StateError::storage)? {
            let (k, v) = item.map_err(StateError::storage)?;
            let ev: WatchEvent = serde_json::from_slice(v.value()).map_err(|e| StateError::Storage {
                message: format!("corrupt event {}: {e}", k.value()),
            })?;
            out.push((k.value(), ev));
        }
        Ok(out)
    }
}

/// What `namespace` uses of the amounts the state holds (objects, pods, their memory requests,
/// key-value keys and bytes, topic backlog), read on `txn`; artifact bytes and fuel are the
/// caller's to fill in.
fn read_usage(txn: &redb::ReadTransaction, namespace: &str) -> Result<skiff_api::QuotaAmounts, StateError> {
    let mut used = skiff_api::QuotaAmounts::default();
    let (mut objects, mut pods, mut memory) = (0u64, 0u64, 0u64);
    if let Ok(t) = txn.open_table(crate::tables::OBJECTS) {
        for kind in crate::quota::counted_kinds() {
            let prefix = format!("{}/{namespace}/", kind.as_str());
            let end = format!("{prefix}\u{10FFFF}");
            for item in t
                .range(prefix.as_str()..end.as_str())
                .map_err(StateError::storage)?
            {
                let (_, v) = item.map_err(StateError::storage)?;
                objects += 1;
                if kind == Kind::Pod
                    && let Object::Pod(p) = decode(v.value())?
                    && let Some(m) = crate::quota::pod_holds(&p)
                {
                    pods += 1;
                    memory = memory.saturating_add(m);
                }
            }
        }
    }
    used.objects = Some(objects);
    used.pods = Some(pods);
    used.requests_memory = Some(skiff_api::ByteSize(memory));
    let stores = crate::keyvalue::read_stores(txn, Some(namespace))?;
    used.keyvalue_keys = Some(stores.iter().map(|s| s.keys).sum());
    used.keyvalue_bytes = Some(skiff_api::ByteSize(stores.iter().map(|s| s.bytes).sum()));
    let topics = crate::topics::read_topics(txn, Some(namespace))?;
    used.topics_backlog = Some(topics.iter().map(|t| t.backlog).sum());
    Ok(used)
}

/// Checks that `data` is a whole state export (as made by [`Reader::export`], or by an older
/// release) without writing anything, and returns its revision.
///
/// # Errors
/// [`StateError::Decode`] saying what is wrong with it.
pub fn check_export(data: &[u8]) -> Result<u64, StateError> {
    crate::snapshot::check(data).map_err(|e| StateError::Decode {
        message: format!("not a Skiff state export: {e}"),
    })
}
