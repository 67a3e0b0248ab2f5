//! The desired set: the pods the control plane assigns to this node, written to the local store
//! and matched by the pods' drivers (one per uid), and the artifacts and containers that no pod
//! needs any more collected.
//!
//! - [`Syncer::restore`] starts the stored pods before the control plane is reached: each that
//!   starts is published and gets a driver that begins `Running`.
//! - [`Syncer::sync`] takes a successful list+watch view: it persists it, tells the drivers of
//!   pods no longer in it that they are gone, and gives every new uid a driver.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_api::{Object, Pod, PodPhase};

use crate::artifacts::ArtifactCache;
use crate::driver::{Begin, Driving};
use crate::error::AgentError;
use crate::lifecycle::{PodFacts, Status};
use crate::store::LocalStore;
use crate::util::{key, lock};

/// How often unused artifacts are collected (also after a pod stops).
const GC_INTERVAL: Duration = Duration::from_secs(60);

/// What identifies a version of the assigned set: (uid, resourceVersion) of every pod, sorted.
type Fingerprint = Vec<(String, u64)>;

fn fingerprint<'a>(pods: impl Iterator<Item = &'a Pod>) -> Fingerprint {
    let mut f: Fingerprint = pods
        .map(|p| {
            (
                p.metadata.uid.clone().unwrap_or_default(),
                p.metadata.resource_version.unwrap_or(0),
            )
        })
        .collect();
    f.sort();
    f
}

/// Keeps this node's pods matching the assigned set (see the module docs).
pub(crate) struct Syncer {
    driving: Arc<Driving>,
    artifacts: Arc<ArtifactCache>,
    store: Arc<LocalStore>,
    /// The assigned set as last written to `store`.
    saved: tokio::sync::Mutex<Option<Fingerprint>>,
    /// When unused artifacts were last collected.
    last_gc: Mutex<Option<Instant>>,
}

impl Syncer {
    pub(crate) fn new(driving: Arc<Driving>, artifacts: Arc<ArtifactCache>, store: Arc<LocalStore>) -> Self {
        Syncer {
            driving,
            artifacts,
            store,
            saved: tokio::sync::Mutex::new(None),
            last_gc: Mutex::new(None),
        }
    }

    fn node(&self) -> &str {
        self.driving.pods.node()
    }

    /// Digests of the components this node loaded (advertised in its status).
    pub(crate) fn cached_artifacts(&self) -> Vec<String> {
        self.driving.starter.loaded()
    }

    /// Closes the local store (the agent stopped).
    pub(crate) fn close_store(&self) {
        self.store.close();
    }

    /// Starts the pods of the local store, without the control plane: artifacts come from the
    /// disk cache. Returns how many were stored and how many now serve. A pod that cannot start
    /// is left to the first sync after the control plane answers.
    #[tracing::instrument(name = "restore", skip_all, fields(node = %self.node()))]
    pub(crate) async fn restore(&self) -> Result<(usize, usize), AgentError> {
        let store = self.store.clone();
        let stored = tokio::task::spawn_blocking(move || store.load())
            .await
            .map_err(|e| AgentError::Storage {
                path: self.store.path().display().to_string(),
                message: format!("loading the stored pods: {e}"),
            })??;
        *self.saved.lock().await = Some(fingerprint(stored.iter()));
        let count = stored.len();
        let mut serving = 0;
        for pod in stored {
            // No status to report while offline: nobody is told of a compile.
            match self.driving.starter.start(&pod, Arc::new(|_: &str| {})).await {
                Ok(running) => {
                    let running = Arc::new(running);
                    self.driving.pods.publish(&key(&pod), running.clone());
                    tracing::info!(pod = %key(&pod), uid = ?pod.metadata.uid, node = %self.node(), "pod running from local state");
                    crate::driver::spawn(&self.driving, pod, Begin::Restored(running));
                    serving += 1;
                }
                Err(e) => {
                    tracing::warn!(pod = %key(&pod), node = %self.node(), reason = e.reason(), error = %e.message, "stored pod failed to start; retried once the control plane answers");
                }
            }
        }
        Ok((count, serving))
    }

    /// Writes the assigned set to the local store when it differs from what was last written.
    async fn persist(&self, desired: &HashMap<String, Pod>) {
        let mut saved = self.saved.lock().await;
        let next = fingerprint(desired.values());
        if saved.as_ref() == Some(&next) {
            return;
        }
        let store = self.store.clone();
        let pods: Vec<Pod> = desired.values().cloned().collect();
        let count = pods.len();
        match tokio::task::spawn_blocking(move || store.save(&pods)).await {
            Ok(Ok(())) => {
                tracing::debug!(node = %self.node(), pods = count, "assigned pods saved to local state");
                *saved = Some(next);
            }
            Ok(Err(e)) => {
                tracing::warn!(node = %self.node(), error = %e, "cannot save the assigned pods; retried at the next sync")
            }
            Err(e) => {
                tracing::warn!(node = %self.node(), error = %e, "cannot save the assigned pods; retried at the next sync")
            }
        }
    }

    /// Makes this node's pods match `pods`: its pods as a successful, synced list+watch of the
    /// API has them (never an empty set standing in for an unreachable control plane). Keyed by
    /// uid: a pod that already has a driver is left to it.
    #[tracing::instrument(name = "sync", skip_all, fields(node = %self.node(), pods = pods.len()))]
    pub(crate) async fn sync(&self, pods: Vec<Object>) {
        let table = &self.driving.pods;
        // Command output is kept while its pod exists (finished ones included).
        let all: HashSet<String> = pods
            .iter()
            .filter_map(|o| match o {
                Object::Pod(p) => Some(key(p)),
                _ => None,
            })
            .collect();
        table.retain_command_logs(&all);
        let desired: HashMap<String, Pod> = pods
            .into_iter()
            .filter_map(|o| match o {
                Object::Pod(p) if !matches!(p.status.phase, PodPhase::Failed | PodPhase::Succeeded) => {
                    Some((key(&p), p))
                }
                _ => None,
            })
            .collect();
        // Persist first: what runs is always what a restart would bring back.
        self.persist(&desired).await;
        // Pods gone or terminal (deleted, or re-created under a new uid) are stopped by their
        // drivers; start failures and finished pods are forgotten with them.
        let gone = {
            let uids: HashSet<&str> = desired
                .values()
                .filter_map(|p| p.metadata.uid.as_deref())
                .collect();
            table.forget_all_but(&uids)
        };
        for k in &gone {
            tracing::info!(pod = %k, node = %self.node(), "pod stopped");
        }
        self.collect_garbage(&desired, !gone.is_empty()).await;
        for (k, pod) in desired {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if let Some(r) = table.get(&k)
                && r.uid == uid
            {
                // Running: make sure the API knows (e.g. after a status write was lost).
                let ready = r.ready.load(std::sync::atomic::Ordering::Relaxed);
                if pod.status.phase != PodPhase::Running
                    || pod.status.ready != ready
                    || pod.status.restarts != r.restarts
                    || pod.status.reason.is_some()
                {
                    let reporter = self.driving.reporter.clone();
                    let status = Status::running(
                        &PodFacts::of(&pod),
                        ready,
                        r.restarts,
                        std::time::SystemTime::now(),
                    );
                    tokio::spawn(async move { reporter.report(&pod, &status).await });
                }
                continue;
            }
            if table.has_driver(&uid) {
                continue; // starting, in back-off, held, or ended for good
            }
            crate::driver::spawn(&self.driving, pod, Begin::Start);
        }
    }

    /// Removes cached artifacts no pod of `desired` pins (`desired` is what the local store
    /// holds, and a superset of what runs), after a pod stopped or every [`GC_INTERVAL`].
    async fn collect_garbage(&self, desired: &HashMap<String, Pod>, stopped: bool) {
        {
            let mut last = lock(&self.last_gc);
            let now = Instant::now();
            if !stopped && last.is_some_and(|t| now.duration_since(t) < GC_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        let containers: HashSet<String> = desired
            .values()
            .flat_map(|p| {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                p.spec
                    .components
                    .iter()
                    .filter(|c| c.oci.is_some())
                    .map(move |c| crate::containers::container_id(&uid, &c.name))
            })
            .collect();
        // In the background: asking the plugin about every container must not hold up the sync.
        let collector = self.driving.pods.containers.clone();
        tokio::spawn(async move { collector.collect_orphans(&containers).await });
        let in_use: HashSet<String> = desired
            .values()
            .flat_map(|p| p.spec.components.iter())
            .filter_map(|c| c.wasm.as_ref())
            .flat_map(ArtifactCache::pins)
            .collect();
        match self.artifacts.collect_garbage(&in_use).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(node = %self.node(), removed = ?removed, "unused artifacts removed");
                self.driving.starter.forget_loaded(&removed);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(node = %self.node(), error = %e, "cannot collect unused artifacts"),
        }
    }
}
