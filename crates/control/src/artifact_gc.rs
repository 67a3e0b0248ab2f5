//! Artifact garbage collection, on every member: an artifact no object references (no pod, no
//! template, no function) is deleted from this member's store once it has been unreferenced for
//! the grace period without a break, and is older than the grace period itself (so a component
//! uploaded by `skiff apply` is not taken before the objects naming it are written). Leftover
//! temporary files of interrupted uploads go after the grace period too.
//!
//! The unreferenced-since times are kept in memory: after a restart every artifact waits a whole
//! grace period again, which errs on the side of keeping.
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use skiff_api::LabelSelector;
use skiff_state::Reader;
use tokio::sync::watch;

use crate::artifacts::ArtifactStore;

/// Default grace period.
pub(crate) const DEFAULT_ARTIFACT_GRACE: Duration = Duration::from_secs(3600);

/// The digests every stored object references.
fn referenced(reader: &Reader) -> Result<BTreeSet<String>, skiff_state::StateError> {
    let mut out = BTreeSet::new();
    for kind in crate::quota::WITH_COMPONENTS {
        let (_, items) = reader.list(kind, None, &LabelSelector::default())?;
        out.extend(crate::quota::digests(items.iter()).into_iter().map(str::to_owned));
    }
    Ok(out)
}

/// One collector's memory: when each artifact was first seen unreferenced.
#[derive(Default)]
pub(crate) struct Collector {
    unreferenced_since: HashMap<String, Instant>,
}

impl Collector {
    /// One pass at `now`: deletes what has been unreferenced for `grace`; returns the digests
    /// deleted.
    pub(crate) fn pass(
        &mut self,
        reader: &Reader,
        store: &ArtifactStore,
        grace: Duration,
        now: Instant,
    ) -> Vec<String> {
        let referenced = match referenced(reader) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "artifact collection skipped: cannot read the objects");
                return Vec::new();
            }
        };
        let stored = match store.list() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "artifact collection skipped: cannot list the store");
                return Vec::new();
            }
        };
        let wall = SystemTime::now();
        let old = |modified: SystemTime| wall.duration_since(modified).unwrap_or_default() >= grace;
        let mut deleted = Vec::new();
        let mut seen = BTreeSet::new();
        for entry in stored {
            if entry.temporary {
                if old(entry.modified) {
                    store.remove_file(&entry.path);
                }
                continue;
            }
            seen.insert(entry.digest.clone());
            if referenced.contains(&entry.digest) {
                self.unreferenced_since.remove(&entry.digest);
                continue;
            }
            let since = *self.unreferenced_since.entry(entry.digest.clone()).or_insert(now);
            if now.duration_since(since) >= grace && old(entry.modified) {
                match store.remove(&entry.digest) {
                    Ok(()) => {
                        tracing::info!(digest = %entry.digest, bytes = entry.size, "deleted an artifact no object references");
                        self.unreferenced_since.remove(&entry.digest);
                        deleted.push(entry.digest);
                    }
                    Err(e) => {
                        tracing::warn!(digest = %entry.digest, error = %e, "cannot delete an unreferenced artifact")
                    }
                }
            }
        }
        self.unreferenced_since.retain(|d, _| seen.contains(d));
        deleted
    }
}

/// Collects every `every` until `shutdown`.
pub(crate) fn spawn(
    reader: Reader,
    store: ArtifactStore,
    grace: Duration,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut collector = Collector::default();
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => if *shutdown.borrow() { return },
                _ = tick.tick() => {
                    let (reader, store) = (reader.clone(), store.clone());
                    let c = std::mem::take(&mut collector);
                    // File system work off the async threads.
                    collector = match tokio::task::spawn_blocking(move || {
                        let mut c = c;
                        c.pass(&reader, &store, grace, Instant::now());
                        c
                    })
                    .await
                    {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(error = %e, "artifact collection failed");
                            Collector::default()
                        }
                    };
                }
            }
        }
    })
}
