//! Key-value stores: named, namespaced maps of string keys to byte values, kept in the replicated
//! state and opened by components through `wasi:keyvalue` when their `capabilities.keyValue` names
//! the store.
use serde::{Deserialize, Serialize};

use crate::validate::dns_label_problem;

/// Longest key, in bytes.
pub const MAX_KV_KEY_BYTES: usize = 1024;
/// Largest value, in bytes (a value travels in one Raft entry).
pub const MAX_KV_VALUE_BYTES: usize = 256 << 10;
/// Most keys one store holds.
pub const MAX_KV_KEYS_PER_STORE: u64 = 100_000;

/// Why `name` cannot name a key-value store, or `None` when it can (a DNS label).
pub fn store_name_problem(name: &str) -> Option<String> {
    dns_label_problem(name).map(|why| format!("key-value store name {name:?} {why}"))
}

/// Why `key` cannot be a key, or `None` when it can (1 to [`MAX_KV_KEY_BYTES`] bytes, no NUL,
/// not `.` or `..`).
pub fn kv_key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("the key is empty: give at least one character".into());
    }
    if key.len() > MAX_KV_KEY_BYTES {
        return Some(format!(
            "the key is {} bytes long: at most {MAX_KV_KEY_BYTES} are allowed",
            key.len()
        ));
    }
    if key.contains('\0') {
        return Some("the key contains a NUL character".into());
    }
    if key == "." || key == ".." {
        return Some(format!(
            "the key {key:?} cannot be addressed: `.` and `..` mean \"this\" and \"parent\" in a URL path; \
             use another key (any other text, `/` included, is fine)"
        ));
    }
    None
}

/// A key-value store as the API lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyValueStore {
    /// Namespace.
    pub namespace: String,
    /// Store name.
    pub name: String,
    /// Keys stored.
    pub keys: u64,
    /// Bytes of values stored.
    pub bytes: u64,
}

/// One page of a store's keys, in byte order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyPage {
    /// The keys.
    pub keys: Vec<String>,
    /// Where the next page starts (pass it as `after`), or `None` after the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}
