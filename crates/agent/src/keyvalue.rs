//! Key-value stores for the guests on this worker: `wasi:keyvalue` calls become calls of the
//! control plane's key-value API with the node's credentials (which may use a store only while a
//! pod bound here is granted it), so every write is committed through Raft before the guest sees
//! it succeed, and every worker reads the same values.
use std::sync::Arc;

use skiff_api::{Component, Pod};
use skiff_client::Client;
use skiff_runtime_wasm::{KeyValueBackend, KeyValueGrant, KvFuture};

/// The control plane's key-value stores of one namespace.
struct ControlStores {
    client: Client,
    namespace: String,
}

impl KeyValueBackend for ControlStores {
    fn get<'a>(&'a self, store: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let v = self.client.kv_get(&self.namespace, store, key).await;
            v.map(|v| v.map(|b| b.to_vec())).map_err(|e| e.to_string())
        })
    }

    fn set<'a>(&'a self, store: &'a str, key: &'a str, value: Vec<u8>) -> KvFuture<'a, ()> {
        Box::pin(async move {
            let r = self.client.kv_set(&self.namespace, store, key, value).await;
            r.map_err(|e| e.to_string())
        })
    }

    fn delete<'a>(&'a self, store: &'a str, key: &'a str) -> KvFuture<'a, ()> {
        Box::pin(async move {
            let r = self.client.kv_delete(&self.namespace, store, key).await;
            r.map_err(|e| e.to_string())
        })
    }

    fn keys<'a>(
        &'a self,
        store: &'a str,
        after: Option<&'a str>,
    ) -> KvFuture<'a, (Vec<String>, Option<String>)> {
        Box::pin(async move {
            let page = self.client.kv_keys(&self.namespace, store, "", after).await;
            page.map(|p| (p.keys, p.next)).map_err(|e| e.to_string())
        })
    }

    fn increment<'a>(&'a self, store: &'a str, key: &'a str, delta: i64) -> KvFuture<'a, i64> {
        Box::pin(async move {
            let r = self.client.kv_increment(&self.namespace, store, key, delta).await;
            r.map_err(|e| e.to_string())
        })
    }
}

/// What component `c` of `pod` may open, or `None` when it is granted no store.
pub(crate) fn grant(client: &Client, pod: &Pod, c: &Component) -> Option<KeyValueGrant> {
    if c.capabilities.key_value.is_empty() {
        return None;
    }
    Some(KeyValueGrant {
        backend: Arc::new(ControlStores {
            client: client.clone(),
            namespace: pod.metadata.namespace_or_default().to_owned(),
        }),
        stores: c.capabilities.key_value.clone(),
    })
}
