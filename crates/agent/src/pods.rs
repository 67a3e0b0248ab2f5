//! The registry of this node's pods: by uid, the handle of each pod's driver task; by
//! `namespace/name`, the pods being served (what the data plane answers for).
//!
//! The registry holds no lifecycle logic: it tells a pod's driver what happened to it (deleted,
//! held, released) through the driver's bounded event queue, and the driver, following the
//! state machine of `lifecycle.rs`, publishes and unpublishes the pod here.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use skiff_runtime_wasm::{HttpHandler, LogBuffer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::containers::{Containers, RunningContainer};
use crate::function::FunctionServer;
use crate::lifecycle::{Event, PodFacts};
use crate::util::lock;

/// A pod serving on this node.
pub(crate) struct RunningPod {
    pub(crate) uid: String,
    /// What serves the pod's traffic: its first component.
    pub(crate) handler: Serving,
    /// Its OCI components' containers (taken out when the pod stops).
    pub(crate) containers: Mutex<Vec<RunningContainer>>,
    pub(crate) logs: Arc<LogBuffer>,
    /// When this agent process started serving it.
    pub(crate) started: SystemTime,
    /// Its `spec.disconnect.stopAfter`.
    pub(crate) stop_after: Option<Duration>,
    /// Whether it passes its readiness probe (true without one): its `status.ready`.
    pub(crate) ready: AtomicBool,
    /// Its `status.restartCount` (restarts by this agent included).
    pub(crate) restarts: u32,
    /// Requests it takes at once (its first component's `resources.concurrency`); more get 429.
    pub(crate) concurrency: Option<u32>,
    /// Requests being served now.
    pub(crate) inflight: AtomicU32,
}

impl RunningPod {
    /// Its containers, taken out (to be removed); empty the second time.
    pub(crate) fn take_containers(&self) -> Vec<RunningContainer> {
        std::mem::take(&mut *lock(&self.containers))
    }

    /// (component, container) pairs of its containers still running here.
    pub(crate) fn container_ids(&self) -> Vec<(String, String)> {
        lock(&self.containers)
            .iter()
            .map(|c| (c.component.clone(), c.id.clone()))
            .collect()
    }
}

/// The serving component of a pod: a wasm handler, or a container reached on its port.
pub(crate) enum Serving {
    Wasm(HttpHandler),
    Function(FunctionServer),
    Container { containers: Arc<Containers>, port: u16 },
}

impl Serving {
    /// Serves one request.
    pub(crate) async fn handle<B>(
        &self,
        req: http::Request<B>,
    ) -> http::Response<skiff_runtime_wasm::ResponseBody>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self {
            Serving::Wasm(h) => h.handle(req).await,
            Serving::Function(f) => f.handle(req).await,
            Serving::Container { containers, port } => containers.proxy(*port, req).await,
        }
    }
}

/// A pod this agent is serving, as [`Agent::pods`](crate::Agent::pods) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPod {
    /// `namespace/name`.
    pub key: String,
    /// The pod's uid.
    pub uid: String,
    /// When this agent process started serving it (a restart of the pod changes it).
    pub started: SystemTime,
}

/// How many events a driver's queue holds (the registry sends a few: delete, hold, release).
pub(crate) const DRIVER_QUEUE: usize = 8;

/// The registry's handle on one pod's driver task.
pub(crate) struct DriverHandle {
    /// The pod's `namespace/name`.
    pub(crate) key: String,
    /// The driver's event queue.
    pub(crate) events: mpsc::Sender<Event>,
    /// The driver task (finished once the pod ended for good).
    pub(crate) task: JoinHandle<()>,
    /// Whether the driver was told to hold the pod (and not yet to release it).
    held: bool,
}

impl DriverHandle {
    pub(crate) fn new(key: String, events: mpsc::Sender<Event>, task: JoinHandle<()>) -> Self {
        DriverHandle {
            key,
            events,
            task,
            held: false,
        }
    }

    /// Tells the driver about `event`; false when it ended (its pod is over).
    fn tell(&self, uid: &str, event: Event) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(e)) => {
                // A driver reads its queue between any two actions; a full queue means a stuck
                // driver, and the event is the one that ends it: say so.
                tracing::error!(pod = %self.key, uid, event = ?e, "pod driver queue full: event dropped");
                false
            }
        }
    }
}

/// This node's pods (see the module docs).
pub(crate) struct PodTable {
    /// Containers of OCI components, through the runtime plugins.
    pub(crate) containers: Arc<Containers>,
    node: String,
    /// Pods being served, by `namespace/name`.
    serving: RwLock<HashMap<String, Arc<RunningPod>>>,
    /// Every pod that has a driver, by uid: starting, serving, in back-off, held, or ended for
    /// good (kept, so not started again, until the assigned set no longer has it).
    drivers: Mutex<HashMap<String, DriverHandle>>,
    /// Output of `world: command` pods (running or finished), by `namespace/name`, for `skiff logs`.
    command_logs: Mutex<HashMap<String, Arc<LogBuffer>>>,
}

impl PodTable {
    pub(crate) fn new(node: String, containers: Arc<Containers>) -> Self {
        PodTable {
            containers,
            node,
            serving: RwLock::new(HashMap::new()),
            drivers: Mutex::new(HashMap::new()),
            command_logs: Mutex::new(HashMap::new()),
        }
    }

    /// The node's name.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// The pod served under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<RunningPod>> {
        self.serving
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Serves `running` under `key`. A pod that serves is not held (a hold that reached its
    /// driver between two runs was ignored, and the next one is sent).
    pub(crate) fn publish(&self, key: &str, running: Arc<RunningPod>) {
        if let Some(d) = lock(&self.drivers).get_mut(&running.uid) {
            d.held = false;
        }
        self.serving
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), running);
    }

    /// Stops serving `running` under `key` (when it is what is served there) and removes its
    /// containers (its wasm handler goes with the last reference to it).
    pub(crate) fn unpublish(&self, key: &str, running: &Arc<RunningPod>) {
        {
            let mut serving = self.serving.write().unwrap_or_else(|p| p.into_inner());
            if serving.get(key).is_some_and(|r| Arc::ptr_eq(r, running)) {
                serving.remove(key);
            }
        }
        self.retire(running);
    }

    /// Stops the containers of a pod no longer served.
    pub(crate) fn retire(&self, running: &RunningPod) {
        for rc in running.take_containers() {
            self.containers.retire(rc);
        }
    }

    /// The pods being served, sorted by key.
    pub(crate) fn list(&self) -> Vec<LocalPod> {
        let mut out: Vec<LocalPod> = self
            .serving
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, r)| LocalPod {
                key: k.clone(),
                uid: r.uid.clone(),
                started: r.started,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Uids of the pods being served.
    pub(crate) fn serving_uids(&self) -> HashSet<String> {
        self.serving
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|r| r.uid.clone())
            .collect()
    }

    /// (uid, `stopAfter`) of every pod being served.
    pub(crate) fn stop_after_of_serving(&self) -> Vec<(String, Option<Duration>)> {
        self.serving
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|r| (r.uid.clone(), r.stop_after))
            .collect()
    }

    /// Whether the pod with `uid` has a driver (whatever its state).
    pub(crate) fn has_driver(&self, uid: &str) -> bool {
        lock(&self.drivers).contains_key(uid)
    }

    /// Registers the driver of the pod with `uid`.
    pub(crate) fn adopt(&self, uid: String, driver: DriverHandle) {
        if let Some(old) = lock(&self.drivers).insert(uid.clone(), driver) {
            // Not expected (one driver per uid); the old one is told its pod is gone.
            old.tell(&uid, Event::Delete);
        }
    }

    /// Forgets every pod whose uid is not in `keep` and tells its driver it is gone; returns
    /// the keys of those that were being served.
    pub(crate) fn forget_all_but(&self, keep: &HashSet<&str>) -> Vec<String> {
        let gone: Vec<(String, DriverHandle)> = {
            let mut drivers = lock(&self.drivers);
            let uids: Vec<String> = drivers
                .keys()
                .filter(|u| !keep.contains(u.as_str()))
                .cloned()
                .collect();
            uids.into_iter()
                .filter_map(|u| drivers.remove(&u).map(|d| (u, d)))
                .collect()
        };
        let mut stopped = Vec::new();
        for (uid, driver) in gone {
            if self.get(&driver.key).is_some_and(|r| r.uid == uid) {
                stopped.push(driver.key.clone());
            }
            if !driver.task.is_finished() {
                driver.tell(&uid, Event::Delete);
            }
        }
        stopped
    }

    /// Tells the drivers of the pods with these uids (pods being served) to stop them and keep
    /// them stopped until [`release`](Self::release).
    pub(crate) fn hold(&self, uids: &[String]) {
        let mut drivers = lock(&self.drivers);
        for uid in uids {
            let Some(d) = drivers.get_mut(uid) else {
                continue;
            };
            if d.held {
                continue;
            }
            tracing::warn!(pod = %d.key, uid = %uid, node = %self.node, "pod stopped: no contact with the control plane for its disconnect.stopAfter");
            d.held = d.tell(uid, Event::Hold);
        }
    }

    /// (uid, `namespace/name`) of the held pods.
    pub(crate) fn held(&self) -> Vec<(String, String)> {
        lock(&self.drivers)
            .iter()
            .filter(|(_, d)| d.held)
            .map(|(u, d)| (u.clone(), d.key.clone()))
            .collect()
    }

    /// Tells the driver of the held pod with `uid` to start it again, as `facts` say.
    pub(crate) fn release(&self, uid: &str, facts: PodFacts) {
        if let Some(d) = lock(&self.drivers).get_mut(uid)
            && d.held
        {
            d.held = false;
            d.tell(uid, Event::Release { facts });
        }
    }

    /// Keeps the output of the command pod `key` for `skiff logs`.
    pub(crate) fn keep_command_logs(&self, key: &str, logs: Arc<LogBuffer>) {
        lock(&self.command_logs).insert(key.to_owned(), logs);
    }

    /// The output of the command pod `key`.
    pub(crate) fn command_logs(&self, key: &str) -> Option<Arc<LogBuffer>> {
        lock(&self.command_logs).get(key).cloned()
    }

    /// Drops the output of command pods that no longer exist.
    pub(crate) fn retain_command_logs(&self, keys: &HashSet<String>) {
        lock(&self.command_logs).retain(|k, _| keys.contains(k));
    }
}
