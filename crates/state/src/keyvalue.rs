//! Key-value stores in the state machine: per namespace and store, string keys to byte values.
//!
//! `KvSet`, `KvDelete` and `KvIncrement` ops are staged over an overlay first (every check runs
//! before anything is written, so a failing command writes nothing), then written after the
//! command's object changes. A store exists while it holds a key; its counters (keys, bytes) are
//! kept beside the values so listing stores never scans them.
use std::collections::BTreeMap;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use skiff_api::{
    KeyPage, KeyValueStore, MAX_KV_KEYS_PER_STORE, MAX_KV_VALUE_BYTES, kv_key_problem, store_name_problem,
};

use crate::command::Op;
use crate::error::StateError;
use crate::tables::{KV_STORES, KV_VALUES};

/// A store's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoreMeta {
    /// Keys in the store.
    pub(crate) keys: u64,
    /// Bytes of their values.
    pub(crate) bytes: u64,
}

fn store_key(namespace: &str, store: &str) -> String {
    format!("{namespace}/{store}")
}

fn check(store: &str, key: &str) -> Result<(), StateError> {
    if let Some(why) = store_name_problem(store).or_else(|| kv_key_problem(key)) {
        return Err(StateError::Invalid { message: why });
    }
    Ok(())
}

/// Parses a stored value as the decimal integer `KvIncrement` keeps.
pub(crate) fn as_counter(store: &str, key: &str, value: &[u8]) -> Result<i64, StateError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .ok_or_else(|| StateError::Invalid {
            message: format!(
                "key {key:?} of store {store:?} holds a value that is not a decimal integer: it cannot be incremented (set it to a number, or use another key)"
            ),
        })
}

/// The staged key-value changes of one command.
#[derive(Debug, Default)]
pub(crate) struct KvStage {
    /// (store key, key) → new value (`None`: deleted).
    values: BTreeMap<(String, String), Option<Vec<u8>>>,
    /// Store key → counters after the command.
    stores: BTreeMap<String, StoreMeta>,
    /// One per `KvIncrement` op: the value after it.
    pub(crate) incremented: Vec<i64>,
}

impl KvStage {
    /// Checks and stages every key-value op of `ops`, reading the stored values through the stage.
    pub(crate) fn new(txn: &WriteTransaction, ops: &[Op]) -> Result<Self, StateError> {
        let mut stage = KvStage::default();
        if !ops.iter().any(|op| {
            matches!(
                op,
                Op::KvSet { .. } | Op::KvDelete { .. } | Op::KvIncrement { .. }
            )
        }) {
            return Ok(stage);
        }
        let values = txn.open_table(KV_VALUES).map_err(StateError::storage)?;
        let stores = txn.open_table(KV_STORES).map_err(StateError::storage)?;
        for op in ops {
            let (namespace, store, key, new) = match op {
                Op::KvSet {
                    namespace,
                    store,
                    key,
                    value,
                } => {
                    if value.len() > MAX_KV_VALUE_BYTES {
                        return Err(StateError::Invalid {
                            message: format!(
                                "the value for key {key:?} is {} bytes: at most {} KiB",
                                value.len(),
                                MAX_KV_VALUE_BYTES >> 10
                            ),
                        });
                    }
                    (namespace, store, key, Some(value.clone()))
                }
                Op::KvDelete {
                    namespace,
                    store,
                    key,
                } => (namespace, store, key, None),
                Op::KvIncrement {
                    namespace,
                    store,
                    key,
                    ..
                } => (namespace, store, key, None),
                _ => continue,
            };
            check(store, key)?;
            let sk = store_key(namespace, store);
            let id = (sk.clone(), key.clone());
            let old: Option<Vec<u8>> = match stage.values.get(&id) {
                Some(v) => v.clone(),
                None => values
                    .get((sk.as_str(), key.as_str()))
                    .map_err(StateError::storage)?
                    .map(|g| g.value().to_vec()),
            };
            let new = if let Op::KvIncrement { delta, .. } = op {
                let current = old.as_deref().map(|v| as_counter(store, key, v)).transpose()?;
                let next = current.unwrap_or(0).checked_add(*delta).ok_or_else(|| StateError::Invalid {
                    message: format!("incrementing key {key:?} of store {store:?} by {delta} overflows a 64-bit integer"),
                })?;
                stage.incremented.push(next);
                Some(next.to_string().into_bytes())
            } else {
                new
            };
            let mut meta = match stage.stores.get(&sk) {
                Some(m) => *m,
                None => match stores.get(sk.as_str()).map_err(StateError::storage)? {
                    Some(g) => parse_meta(g.value())?,
                    None => StoreMeta::default(),
                },
            };
            let old_len = old.as_ref().map_or(0, |v| v.len() as u64);
            match (&old, &new) {
                (None, Some(v)) => {
                    if meta.keys >= MAX_KV_KEYS_PER_STORE {
                        return Err(StateError::StoreFull {
                            namespace: namespace.clone(),
                            store: store.clone(),
                            limit: MAX_KV_KEYS_PER_STORE,
                        });
                    }
                    meta.keys += 1;
                    meta.bytes += v.len() as u64;
                }
                (Some(_), Some(v)) => meta.bytes = meta.bytes - old_len + v.len() as u64,
                (Some(_), None) => {
                    meta.keys -= 1;
                    meta.bytes -= old_len;
                }
                (None, None) => {}
            }
            stage.stores.insert(sk, meta);
            stage.values.insert(id, new);
        }
        drop(values);
        stage.check_quotas(txn, &stores)?;
        Ok(stage)
    }

    /// Refuses the staged writes if they take a namespace past its `keyvalue.keys` or
    /// `keyvalue.bytes` quota.
    fn check_quotas(
        &self,
        txn: &WriteTransaction,
        stores: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<(), StateError> {
        let namespaces: std::collections::BTreeSet<&str> = self
            .stores
            .keys()
            .filter_map(|sk| sk.split_once('/').map(|(ns, _)| ns))
            .collect();
        for ns in namespaces {
            let quotas = crate::quota::stored_quotas(txn, ns)?;
            if quotas.is_empty() {
                continue;
            }
            let mut before = [0u64; 2];
            let mut after = [0u64; 2];
            for (sk, meta) in stores_of(stores, Some(ns))? {
                before[0] += meta.keys;
                before[1] += meta.bytes;
                if !self.stores.contains_key(&sk) {
                    after[0] += meta.keys;
                    after[1] += meta.bytes;
                }
            }
            for meta in self
                .stores
                .iter()
                .filter(|(sk, _)| sk.split_once('/').is_some_and(|(n, _)| n == ns))
                .map(|(_, m)| m)
            {
                after[0] += meta.keys;
                after[1] += meta.bytes;
            }
            crate::quota::check_amounts(
                ns,
                &quotas,
                &[
                    skiff_api::QuotaResource::KeyValueKeys,
                    skiff_api::QuotaResource::KeyValueBytes,
                ],
                &before,
                &after,
            )?;
        }
        Ok(())
    }

    /// Writes the staged changes.
    pub(crate) fn write(self, txn: &WriteTransaction) -> Result<Vec<i64>, StateError> {
        if self.values.is_empty() {
            return Ok(self.incremented);
        }
        let mut values = txn.open_table(KV_VALUES).map_err(StateError::storage)?;
        let mut stores = txn.open_table(KV_STORES).map_err(StateError::storage)?;
        for ((sk, key), v) in &self.values {
            match v {
                Some(v) => values.insert((sk.as_str(), key.as_str()), v.as_slice()).map(drop),
                None => values.remove((sk.as_str(), key.as_str())).map(drop),
            }
            .map_err(StateError::storage)?;
        }
        for (sk, meta) in &self.stores {
            if meta.keys == 0 {
                stores.remove(sk.as_str()).map_err(StateError::storage)?;
            } else {
                let b = serde_json::to_vec(meta).map_err(StateError::storage)?;
                stores
                    .insert(sk.as_str(), b.as_slice())
                    .map_err(StateError::storage)?;
            }
        }
        Ok(self.incremented)
    }
}

fn parse_meta(b: &[u8]) -> Result<StoreMeta, StateError> {
    serde_json::from_slice(b).map_err(|e| StateError::Storage {
        message: format!("corrupt key-value store counters: {e}"),
    })
}

/// Creates the key-value tables if missing.
pub(crate) fn init(txn: &WriteTransaction) -> Result<(), String> {
    txn.open_table(KV_VALUES).map_err(|e| e.to_string())?;
    txn.open_table(KV_STORES).map_err(|e| e.to_string())?;
    Ok(())
}

/// The store keys (`namespace/store`) of a namespace.
fn stores_of(
    stores: &impl ReadableTable<&'static str, &'static [u8]>,
    namespace: Option<&str>,
) -> Result<Vec<(String, StoreMeta)>, StateError> {
    let prefix = namespace.map(|ns| format!("{ns}/")).unwrap_or_default();
    let end = format!("{prefix}\u{10FFFF}");
    let mut out = Vec::new();
    for item in stores
        .range(prefix.as_str()..end.as_str())
        .map_err(StateError::storage)?
    {
        let (k, v) = item.map_err(StateError::storage)?;
        out.push((k.value().to_owned(), parse_meta(v.value())?));
    }
    Ok(out)
}

/// Removes every store of a deleted namespace.
pub(crate) fn drop_namespace(txn: &WriteTransaction, namespace: &str) -> Result<(), StateError> {
    let mut stores = txn.open_table(KV_STORES).map_err(StateError::storage)?;
    let mut values = txn.open_table(KV_VALUES).map_err(StateError::storage)?;
    for (sk, _) in stores_of(&stores, Some(namespace))? {
        let doomed: Vec<String> = values
            .range((sk.as_str(), "")..)
            .map_err(StateError::storage)?
            .map_while(|item| match item {
                Ok((k, _)) if k.value().0 == sk => Some(Ok(k.value().1.to_owned())),
                Ok(_) => None,
                Err(e) => Some(Err(StateError::storage(e))),
            })
            .collect::<Result<_, _>>()?;
        for key in doomed {
            values
                .remove((sk.as_str(), key.as_str()))
                .map_err(StateError::storage)?;
        }
        stores.remove(sk.as_str()).map_err(StateError::storage)?;
    }
    Ok(())
}

fn absent(e: &redb::TableError) -> bool {
    matches!(e, redb::TableError::TableDoesNotExist(_))
}

/// Stores of one namespace, or of all.
pub(crate) fn read_stores(
    txn: &redb::ReadTransaction,
    namespace: Option<&str>,
) -> Result<Vec<KeyValueStore>, StateError> {
    let stores = match txn.open_table(KV_STORES) {
        Ok(t) => t,
        Err(e) if absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(StateError::storage(e)),
    };
    Ok(stores_of(&stores, namespace)?
        .into_iter()
        .map(|(sk, meta)| {
            let (ns, name) = sk.split_once('/').unwrap_or(("", &sk));
            KeyValueStore {
                namespace: ns.to_owned(),
                name: name.to_owned(),
                keys: meta.keys,
                bytes: meta.bytes,
            }
        })
        .collect())
}

/// One value.
pub(crate) fn read_value(
    txn: &redb::ReadTransaction,
    namespace: &str,
    store: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, StateError> {
    let values = match txn.open_table(KV_VALUES) {
        Ok(t) => t,
        Err(e) if absent(&e) => return Ok(None),
        Err(e) => return Err(StateError::storage(e)),
    };
    let sk = store_key(namespace, store);
    Ok(values
        .get((sk.as_str(), key))
        .map_err(StateError::storage)?
        .map(|g| g.value().to_vec()))
}

/// Up to `limit` keys of a store that start with `prefix`, after `after`, in byte order.
pub(crate) fn read_keys(
    txn: &redb::ReadTransaction,
    namespace: &str,
    store: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<KeyPage, StateError> {
    let values = match txn.open_table(KV_VALUES) {
        Ok(t) => t,
        Err(e) if absent(&e) => return Ok(KeyPage::default()),
        Err(e) => return Err(StateError::storage(e)),
    };
    let sk = store_key(namespace, store);
    let start = match after {
        Some(a) if a >= prefix => a,
        _ => prefix,
    };
    let mut page = KeyPage::default();
    for item in values
        .range((sk.as_str(), start)..)
        .map_err(StateError::storage)?
    {
        let (k, _) = item.map_err(StateError::storage)?;
        let (s, key) = k.value();
        if s != sk || !key.starts_with(prefix) {
            break;
        }
        if Some(key) == after {
            continue;
        }
        if page.keys.len() == limit {
            page.next = page.keys.last().cloned();
            break;
        }
        page.keys.push(key.to_owned());
    }
    Ok(page)
}
