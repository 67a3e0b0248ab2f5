//! A local cache of one kind, kept current by list + watch.
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use skiff_api::{EventType, Kind, Object};
use tokio::sync::watch;

use crate::client::{Client, ListOptions};
use crate::error::ClientError;

/// Keeps every object of one kind (optionally filtered) in memory. It lists, then watches from the
/// list's revision; after a disconnect it resumes from the last revision it saw, and lists again
/// when the server's history is gone. Consumers read [`snapshot`](Informer::snapshot) and wait on
/// [`changed`](Informer::changed): they are level-triggered.
pub struct Informer {
    cache: Arc<RwLock<BTreeMap<(String, String), Object>>>,
    version: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Informer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("revision", &*self.version.borrow())
            .finish()
    }
}

impl Drop for Informer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Informer {
    /// Starts caching `kind` objects in `namespace` (all when `None`).
    pub fn start(client: Client, kind: Kind, namespace: Option<String>, opts: ListOptions) -> Self {
        let cache = Arc::new(RwLock::new(BTreeMap::new()));
        let (tx, version) = watch::channel(0u64);
        let task = tokio::spawn(run(client, kind, namespace, opts, cache.clone(), tx));
        Informer { cache, version, task }
    }

    /// The cached objects, sorted by namespace and name.
    pub fn snapshot(&self) -> Vec<Object> {
        match self.cache.read() {
            Ok(c) => c.values().cloned().collect(),
            Err(p) => p.into_inner().values().cloned().collect(),
        }
    }

    /// A receiver whose value (the last revision seen) changes with the cache; 0 until the first list.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.version.clone()
    }

    /// Waits until the first list has been loaded.
    pub async fn synced(&self) {
        let mut rx = self.version.clone();
        let _ = rx.wait_for(|v| *v > 0).await;
    }
}

fn key(o: &Object) -> (String, String) {
    (o.namespace().unwrap_or("").to_owned(), o.meta().name.clone())
}

async fn run(
    client: Client,
    kind: Kind,
    namespace: Option<String>,
    opts: ListOptions,
    cache: Arc<RwLock<BTreeMap<(String, String), Object>>>,
    tx: watch::Sender<u64>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut revision: Option<u64> = None;
    loop {
        let result: Result<(), ClientError> = async {
            let rev = match revision {
                Some(r) => r,
                None => {
                    let list = client.list(kind, namespace.as_deref(), Some(&opts)).await?;
                    let fresh: BTreeMap<_, _> = list.items.into_iter().map(|o| (key(&o), o)).collect();
                    *cache.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                    let r = list.resource_version.max(1);
                    revision = Some(r);
                    tx.send_replace(r);
                    r
                }
            };
            let mut stream = Box::pin(client.watch(kind, namespace.as_deref(), &opts, rev).await?);
            backoff = Duration::from_millis(100);
            while let Some(ev) = stream.next().await {
                let ev = ev?;
                let rv = ev.object.meta().resource_version.unwrap_or(0);
                {
                    let mut c = cache.write().unwrap_or_else(|p| p.into_inner());
                    match ev.event_type {
                        EventType::Deleted => {
                            c.remove(&key(&ev.object));
                        }
                        EventType::Added | EventType::Modified => {
                            c.insert(key(&ev.object), ev.object);
                        }
                    }
                }
                revision = Some(rv.max(revision.unwrap_or(0)));
                tx.send_replace(revision.unwrap_or(rv));
            }
            Ok(())
        }
        .await;
        match result {
            Err(ClientError::Gone { .. }) => revision = None,
            Err(e) => tracing::debug!(%kind, error = %e, "watch interrupted; retrying"),
            Ok(()) => {}
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
