//! `wasi:keyvalue` (store and atomics, 0.2.0-draft; `wit/keyvalue`) for guests: `open` succeeds
//! for the stores a component is granted, and every operation goes to a [`KeyValueBackend`] that
//! the embedder supplies (the agent's sends them to the control plane, which replicates them).
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, Resource};

use crate::state::HostState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: { "wasi:keyvalue/store.bucket": super::Bucket },
    });
}

use bindings::wasi::keyvalue::{atomics, store};

/// A boxed future of a [`KeyValueBackend`] call.
pub type KvFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Where a component's key-value stores live. Every method names the store; an `Err` is a
/// message the guest receives as `error::other`.
pub trait KeyValueBackend: Send + Sync + 'static {
    /// The value of `key`, `None` when absent.
    fn get<'a>(&'a self, store: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>>;
    /// Sets `key`.
    fn set<'a>(&'a self, store: &'a str, key: &'a str, value: Vec<u8>) -> KvFuture<'a, ()>;
    /// Deletes `key` (absent is fine).
    fn delete<'a>(&'a self, store: &'a str, key: &'a str) -> KvFuture<'a, ()>;
    /// A page of keys after `after`, and the key to continue after (`None`: last page).
    fn keys<'a>(
        &'a self,
        store: &'a str,
        after: Option<&'a str>,
    ) -> KvFuture<'a, (Vec<String>, Option<String>)>;
    /// Adds `delta` to the integer `key` holds (0 when absent), atomically; the new value.
    fn increment<'a>(&'a self, store: &'a str, key: &'a str, delta: i64) -> KvFuture<'a, i64>;
}

/// The stores one component may open, and where they live.
#[derive(Clone)]
pub struct KeyValueGrant {
    /// Where the stores live.
    pub backend: Arc<dyn KeyValueBackend>,
    /// The store names the component may open.
    pub stores: Vec<String>,
}

impl std::fmt::Debug for KeyValueGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueGrant")
            .field("stores", &self.stores)
            .finish()
    }
}

/// An open store (the guest's `bucket` resource).
#[allow(unreachable_pub, reason = "named by the generated bindings")]
pub struct Bucket {
    store: String,
    /// `list-keys` cursors handed out: cursor `n` continues after `cursors[n]`.
    cursors: Vec<String>,
}

/// Most `list-keys` pages one open bucket may page through (its cursors are kept until it is
/// dropped).
const MAX_CURSORS: usize = 10_000;

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    store::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    atomics::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}

impl HostState {
    fn grant(&self) -> Result<&KeyValueGrant, store::Error> {
        self.key_value.as_ref().ok_or(store::Error::AccessDenied)
    }

    fn bucket(&self, b: &Resource<Bucket>) -> wasmtime::Result<(Arc<dyn KeyValueBackend>, String)> {
        let store = self.table.get(b)?.store.clone();
        // A bucket exists only after a granted open.
        let backend = self
            .key_value
            .as_ref()
            .map(|g| g.backend.clone())
            .ok_or_else(|| wasmtime::Error::msg("bucket without a key-value grant"))?;
        Ok((backend, store))
    }

    /// The backend and store of an open bucket, once `key` is known to be a key: a key that is
    /// not (empty, too long, `..`) is refused here, before anything is sent anywhere.
    #[allow(clippy::type_complexity, reason = "the host-binding result shape")]
    fn keyed(
        &self,
        b: &Resource<Bucket>,
        key: &str,
    ) -> wasmtime::Result<Result<(Arc<dyn KeyValueBackend>, String), store::Error>> {
        if let Some(why) = skiff_api::kv_key_problem(key) {
            return Ok(Err(other(why)));
        }
        self.bucket(b).map(Ok)
    }
}

fn other(e: String) -> store::Error {
    store::Error::Other(e)
}

impl store::Host for HostState {
    async fn open(&mut self, identifier: String) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        let granted = match self.grant() {
            Ok(g) => g.stores.contains(&identifier),
            Err(e) => return Ok(Err(e)),
        };
        if !granted {
            tracing::debug!(store = %identifier, "guest opened a key-value store it is not granted");
            return Ok(Err(store::Error::AccessDenied));
        }
        let bucket = self.table.push(Bucket {
            store: identifier,
            cursors: Vec::new(),
        })?;
        Ok(Ok(bucket))
    }
}

impl store::HostBucket for HostState {
    async fn get(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let (backend, store) = match self.keyed(&b, &key)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        Ok(backend.get(&store, &key).await.map_err(other))
    }

    async fn set(
        &mut self,
        b: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (backend, store) = match self.keyed(&b, &key)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        Ok(backend.set(&store, &key, value).await.map_err(other))
    }

    async fn delete(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (backend, store) = match self.keyed(&b, &key)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        Ok(backend.delete(&store, &key).await.map_err(other))
    }

    async fn exists(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let (backend, store) = match self.keyed(&b, &key)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        Ok(backend
            .get(&store, &key)
            .await
            .map(|v| v.is_some())
            .map_err(other))
    }

    async fn list_keys(
        &mut self,
        b: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let (backend, store) = self.bucket(&b)?;
        let after = match cursor {
            None => None,
            Some(c) => match self.table.get(&b)?.cursors.get(c as usize) {
                Some(after) => Some(after.clone()),
                None => {
                    return Ok(Err(other(format!(
                        "list-keys cursor {c} was not handed out by this bucket"
                    ))));
                }
            },
        };
        let (keys, next) = match backend.keys(&store, after.as_deref()).await {
            Ok(page) => page,
            Err(e) => return Ok(Err(other(e))),
        };
        let cursor = match next {
            None => None,
            Some(next) => {
                let bucket = self.table.get_mut(&b)?;
                if bucket.cursors.len() >= MAX_CURSORS {
                    return Ok(Err(other(format!(
                        "more than {MAX_CURSORS} list-keys pages through one open bucket: open it again"
                    ))));
                }
                bucket.cursors.push(next);
                Some(bucket.cursors.len() as u64 - 1)
            }
        };
        Ok(Ok(store::KeyResponse { keys, cursor }))
    }

    async fn drop(&mut self, b: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    async fn increment(
        &mut self,
        b: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, store::Error>> {
        let (backend, store) = match self.keyed(&b, &key)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        // Counters are 64-bit two's complement: a delta above i64::MAX subtracts (wrapping
        // u64 arithmetic and i64 arithmetic agree), so a guest can count down too.
        Ok(backend
            .increment(&store, &key, delta as i64)
            .await
            .map(|v| v as u64)
            .map_err(other))
    }
}
