//! The level-triggered controller loop (leader only).
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use skiff_api::{Kind, LabelSelector, Object};
use skiff_state::StateError;
use tokio::sync::watch;

use crate::error::{ApiError, WriteError};
use crate::plane::ControlPlane;
use crate::plane::LoadSample;
use skiff_api::{PodStats, PodTraffic};
use skiff_controllers::{self as reconcile, HeartbeatClock, RandomIds, Snapshot};

/// How long the controller waits for an agent's traffic counts.
const TRAFFIC_TIMEOUT: Duration = Duration::from_millis(500);

/// Shortest span a function pod's concurrency is measured over.
const LOAD_SPAN: Duration = Duration::from_millis(900);

/// Longest pause between two passes when nothing changes.
const RESYNC: Duration = Duration::from_secs(1);
/// Quiet period that batches a burst of changes into one pass.
const DEBOUNCE: Duration = Duration::from_millis(5);

impl ControlPlane {
    /// Runs the controllers and the scheduler until `shutdown` turns true. They act only while this
    /// node leads; every pass reads the whole state, so a restart or a new leader simply continues.
    ///
    /// The event dispatcher (see `dispatch.rs`) runs alongside, on the same shutdown signal.
    pub fn spawn_controllers(&self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let _dispatcher = self.spawn_dispatcher(shutdown.clone());
        // On every member, leader or not: each keeps its own artifact store.
        let _collector = crate::artifact_gc::spawn(
            self.inner.reader.clone(),
            self.inner.artifacts.clone(),
            self.inner.config.artifact_grace,
            self.inner.config.artifact_gc_every,
            shutdown.clone(),
        );
        let plane = self.clone();
        tokio::spawn(async move {
            let mut events = plane.inner.events.subscribe();
            let mut pass: u64 = 0;
            // Heartbeat ages by this leader's clock; a new term starts them afresh.
            let mut heartbeats = HeartbeatClock::default();
            loop {
                if *shutdown.borrow() {
                    return;
                }
                if plane.is_leader() {
                    pass += 1;
                    if let Err(e) = plane.ensure_namespace(skiff_api::DEFAULT_NAMESPACE).await {
                        tracing::warn!(error = %e, "cannot create the default namespace yet");
                    }
                    plane.promote_learners().await;
                    if let Err(e) = plane.reconcile_once(pass, &mut heartbeats).await {
                        tracing::warn!(error = %e.body.message, "controller pass failed; retrying");
                    }
                } else {
                    heartbeats = HeartbeatClock::default();
                }
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(RESYNC) => {}
                    r = events.recv() => {
                        if r.is_ok() {
                            tokio::time::sleep(DEBOUNCE).await;
                        }
                        // Drain what queued up meanwhile: one pass covers it all.
                        while events.try_recv().is_ok() {}
                    }
                }
            }
        })
    }

    /// One pass of every controller over the current state. Each controller's changes are proposed as
    /// their own command, so one conflict (a pod changed meanwhile) does not hold back the others;
    /// the next pass retries from fresh state.
    ///
    /// `heartbeats` carries, from pass to pass, when each node's heartbeat was seen to change (keep
    /// one per leadership term).
    ///
    /// # Errors
    /// Reading the state failed.
    #[tracing::instrument(level = "debug", skip(self, heartbeats))]
    pub async fn reconcile_once(&self, pass: u64, heartbeats: &mut HeartbeatClock) -> Result<(), ApiError> {
        let mut snapshot = self.snapshot()?;
        if let Some(now) = snapshot.now {
            heartbeats.observe(&snapshot.nodes, now);
        }
        snapshot.heartbeats = heartbeats.clone();
        snapshot.pod_traffic = self.canary_traffic(&snapshot).await;
        snapshot.config_hashes = self.config_hashes(&snapshot);
        let function_load = self.function_load(&snapshot).await;
        let mut commands: Vec<(&str, Vec<skiff_state::Op>)> = Vec::new();
        for ops in reconcile::deployments(&snapshot, &mut RandomIds) {
            // Later controllers of this pass see the deployments' new status (a canary's weight).
            for op in &ops {
                if let skiff_state::Op::UpdateStatus {
                    object: skiff_api::Object::Deployment(next),
                } = op
                    && let Some(d) = snapshot
                        .deployments
                        .iter_mut()
                        .find(|d| d.metadata.uid == next.metadata.uid)
                {
                    d.status = next.status.clone();
                }
            }
            commands.push(("deployment", ops));
        }
        for ops in reconcile::replica_sets(&snapshot, &mut RandomIds) {
            commands.push(("replicaset", ops));
        }
        for ops in reconcile::daemon_sets(&snapshot, &mut RandomIds) {
            commands.push(("daemonset", ops));
        }
        for ops in reconcile::jobs(&snapshot, &mut RandomIds, self.inner.config.job_backoff) {
            commands.push(("job", ops));
        }
        for ops in reconcile::cron_jobs(&snapshot, &mut RandomIds) {
            commands.push(("cronjob", ops));
        }
        for ops in reconcile::functions(&snapshot, &function_load, &mut RandomIds) {
            commands.push(("function", ops));
        }
        commands.push(("garbage", reconcile::garbage(&snapshot)));
        commands.push(("event-expiry", reconcile::expire_events(&snapshot)));
        let config = &self.inner.config;
        for ops in reconcile::node_health(&snapshot, config.node_grace, &mut RandomIds) {
            commands.push(("node-health", ops));
        }
        for ops in reconcile::evict_pods(
            &snapshot,
            config.node_grace,
            config.pod_eviction_grace,
            &mut RandomIds,
        ) {
            commands.push(("node-eviction", ops));
        }
        commands.push(("scheduler", reconcile::schedule(&snapshot, pass, &mut RandomIds)));
        commands.push(("endpoints", reconcile::endpoints(&snapshot, &mut RandomIds)));
        for (controller, ops) in commands {
            if ops.is_empty() {
                continue;
            }
            let n = ops.len();
            match self.propose(ops.clone()).await {
                Ok(_) => tracing::debug!(controller, ops = n, "reconciled"),
                Err(e) if e.is_race() => {
                    tracing::debug!(controller, error = %e, "raced with another write; next pass retries")
                }
                Err(WriteError::State(StateError::QuotaExceeded(_))) => {
                    self.within_quota(controller, &snapshot, ops).await;
                }
                Err(e) => tracing::warn!(controller, error = %e, "reconcile failed"),
            }
        }
        Ok(())
    }

    /// A controller's command refused by a quota: its ops are proposed one by one, so what fits
    /// is made, and the first refused one is recorded as a `FailedCreate` Warning on the
    /// object's owner (once per message a minute, so the record does not itself keep the
    /// controllers busy). The rest waits for the next pass.
    async fn within_quota(&self, controller: &str, s: &Snapshot, ops: Vec<skiff_state::Op>) {
        for op in ops {
            let made = match &op {
                skiff_state::Op::Create { object, .. } | skiff_state::Op::Apply { object, .. } => {
                    Some(object.clone())
                }
                _ => None,
            };
            match self.propose(vec![op]).await {
                Ok(_) => {}
                Err(WriteError::State(StateError::QuotaExceeded(refusal))) => {
                    tracing::info!(controller, namespace = %refusal.namespace, quota = %refusal.quota, "{refusal}");
                    if let Some(object) = made
                        && let Some(op) = failed_create(s, controller, &object, &refusal.to_string())
                        && let Err(e) = self.propose(vec![op]).await
                    {
                        tracing::debug!(controller, error = %e, "cannot record the quota refusal");
                    }
                    return;
                }
                Err(e) => tracing::debug!(controller, error = %e, "reconcile op failed; next pass retries"),
            }
        }
    }

    /// What the agents counted for the pods of canary revisions (pod uid → traffic), fetched
    /// concurrently with a short deadline; a node that does not answer leaves its pods out.
    async fn canary_traffic(&self, s: &Snapshot) -> BTreeMap<String, PodTraffic> {
        let canary_rs: Vec<&str> = s
            .deployments
            .iter()
            .filter_map(|d| {
                let c = d
                    .status
                    .canary
                    .as_ref()
                    .filter(|c| reconcile::splits_traffic(c.phase))?;
                let uid = d.metadata.uid.as_deref()?;
                Some(s.replica_sets.iter().filter(move |r| {
                    r.metadata.controller().is_some_and(|o| o.uid == uid)
                        && r.spec
                            .template
                            .metadata
                            .labels
                            .get(reconcile::TEMPLATE_HASH_LABEL)
                            == Some(&c.canary_hash)
                }))
            })
            .flatten()
            .filter_map(|r| r.metadata.uid.as_deref())
            .collect();
        if canary_rs.is_empty() {
            return BTreeMap::new();
        }
        let pods = s.pods.iter().filter(|p| {
            p.metadata
                .controller()
                .is_some_and(|o| canary_rs.contains(&o.uid.as_str()))
        });
        self.pod_stats(s, pods)
            .await
            .into_iter()
            .map(|(uid, st)| (uid, st.traffic))
            .collect()
    }

    /// What the agents counted for `pods` (by uid), fetched concurrently with a short deadline;
    /// a node that does not answer leaves its pods out.
    async fn pod_stats<'a>(
        &self,
        s: &Snapshot,
        pods: impl Iterator<Item = &'a skiff_api::Pod>,
    ) -> BTreeMap<String, PodStats> {
        let addresses: BTreeMap<&str, &str> = s
            .nodes
            .iter()
            .map(|n| (n.metadata.name.as_str(), n.status.address.as_str()))
            .collect();
        let fetches = pods.filter_map(|p| {
            let address = addresses.get(p.spec.node_name.as_deref()?)?;
            let url = format!(
                "{}{}",
                address.trim_end_matches('/'),
                skiff_api::pod_stats_path(p.metadata.namespace_or_default(), &p.metadata.name)
            );
            let uid = p.metadata.uid.clone()?;
            let http = self.inner.agent_http.clone();
            Some(async move {
                let resp = http
                    .get(skiff_pki::https::https_url(&url))
                    .timeout(TRAFFIC_TIMEOUT)
                    .send()
                    .await
                    .ok()?;
                let body = resp.error_for_status().ok()?;
                let body = crate::answers::read(body, crate::answers::STATS_BYTES, TRAFFIC_TIMEOUT)
                    .await
                    .ok()?;
                let stats: PodStats = serde_json::from_slice(&body).ok()?;
                // A pod re-created under the same name is another pod.
                (stats.uid == uid).then_some((uid, stats))
            })
        });
        futures::future::join_all(fetches)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Each function's load (`namespace/name` → calls in flight on average, and events waiting
    /// in its topics). A pod's busy time is sampled at most about once a second; between samples
    /// the last figure stands, raised to the calls in flight right now.
    async fn function_load(&self, s: &Snapshot) -> BTreeMap<String, reconcile::FunctionLoad> {
        let mut out: BTreeMap<String, reconcile::FunctionLoad> = BTreeMap::new();
        if s.functions.is_empty() {
            return out;
        }
        match self.inner.reader.topics(None) {
            Ok(topics) => {
                for t in topics {
                    for sub in t.subscribers {
                        out.entry(format!("{}/{}", t.namespace, sub.function))
                            .or_default()
                            .backlog += sub.lag;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read topic backlogs"),
        }
        let now = std::time::Instant::now();
        let due: Vec<&skiff_api::Pod> = {
            let samples = self
                .inner
                .function_samples
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            s.pods
                .iter()
                .filter(|p| p.metadata.labels.contains_key(skiff_api::FUNCTION_LABEL))
                .filter(|p| {
                    p.metadata.uid.as_deref().is_none_or(|u| {
                        samples
                            .get(u)
                            .is_none_or(|x| now.duration_since(x.at) >= LOAD_SPAN)
                    })
                })
                .collect()
        };
        let fresh = self.pod_stats(s, due.into_iter()).await;
        let mut samples = self
            .inner
            .function_samples
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (uid, st) in &fresh {
            let concurrency = match samples.get(uid) {
                Some(prev) => {
                    let span = now.duration_since(prev.at).as_micros().max(1) as f64;
                    (st.busy_us.saturating_sub(prev.busy_us) as f64 / span).max(st.inflight as f64)
                }
                None => st.inflight as f64,
            };
            samples.insert(
                uid.clone(),
                LoadSample {
                    at: now,
                    busy_us: st.busy_us,
                    concurrency,
                },
            );
        }
        let live: std::collections::BTreeSet<&str> =
            s.pods.iter().filter_map(|p| p.metadata.uid.as_deref()).collect();
        samples.retain(|u, _| live.contains(u.as_str()));
        for p in &s.pods {
            let (Some(name), Some(uid)) = (
                p.metadata.labels.get(skiff_api::FUNCTION_LABEL),
                p.metadata.uid.as_deref(),
            ) else {
                continue;
            };
            if let Some(x) = samples.get(uid) {
                out.entry(format!("{}/{name}", p.metadata.namespace_or_default()))
                    .or_default()
                    .concurrency += x.concurrency;
            }
        }
        out
    }

    /// Fingerprints of the ConfigMaps and Secrets read by deployments with
    /// `rolloutOnConfigChange` (Secrets opened in memory, fingerprinted under the cluster key).
    fn config_hashes(&self, s: &Snapshot) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for d in s.deployments.iter().filter(|d| d.spec.rollout_on_config_change) {
            let ns = d.metadata.namespace_or_default();
            let spec = &d.spec.template.spec;
            for (kind, names) in [
                (Kind::ConfigMap, spec.config_map_names()),
                (Kind::Secret, spec.secret_names()),
            ] {
                for name in names {
                    let key = reconcile::config_key(ns, kind, name);
                    if out.contains_key(&key) {
                        continue;
                    }
                    let data = match self.inner.reader.get(kind, Some(ns), name) {
                        Ok(mut o) => match self.inner.secrets.open(&mut o) {
                            Ok(()) => match o {
                                skiff_api::Object::ConfigMap(c) => Some(c.data),
                                skiff_api::Object::Secret(c) => Some(c.data),
                                _ => None,
                            },
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot fingerprint a secret");
                                None
                            }
                        },
                        Err(_) => None,
                    };
                    if let Some(data) = data {
                        out.insert(key, self.inner.secrets.fingerprint(&data));
                    }
                }
            }
        }
        out
    }

    fn snapshot(&self) -> Result<Snapshot, ApiError> {
        let all = LabelSelector::default();
        let mut objects = Vec::new();
        for kind in [
            Kind::Node,
            Kind::Pod,
            Kind::Deployment,
            Kind::ReplicaSet,
            Kind::DaemonSet,
            Kind::Job,
            Kind::CronJob,
            Kind::Function,
            Kind::Service,
            Kind::Endpoints,
            Kind::Event,
        ] {
            objects.extend(self.inner.reader.list(kind, None, &all)?.1);
        }
        Ok(Snapshot::from_objects(SystemTime::now(), objects))
    }
}

/// The `FailedCreate` event about `object`'s owner (or the object, when it has none), unless the
/// same message was recorded within the last minute.
fn failed_create(s: &Snapshot, controller: &str, object: &Object, why: &str) -> Option<skiff_state::Op> {
    let meta = object.meta();
    let (kind, mut owner) = match meta.owner_references.first() {
        Some(o) => (
            Kind::parse_any(&o.kind).ok()?,
            skiff_api::ObjectMeta::named(o.name.clone(), meta.namespace.as_deref()),
        ),
        None => (object.kind(), meta.clone()),
    };
    if let Some(o) = meta.owner_references.first() {
        owner.uid = Some(o.uid.clone());
    }
    let message = format!("cannot create {} {:?}: {why}", object.kind(), meta.name);
    let involved = skiff_api::ObjectReference::to(kind, &owner);
    let name = reconcile::event_name(&involved, FAILED_CREATE);
    let now = s.now?;
    let recent = s.events.iter().any(|e| {
        e.metadata.name == name
            && e.message == message
            && e.last_timestamp
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .is_some_and(|t| now.duration_since(t).unwrap_or_default() < QUOTA_EVENT_EVERY)
    });
    let recorder = reconcile::Recorder {
        component: controller,
        now,
    };
    (!recent).then(|| {
        recorder.record(
            s,
            &mut RandomIds,
            kind,
            &owner,
            skiff_api::EventSeverity::Warning,
            FAILED_CREATE,
            message,
        )
    })
}

/// Event reason: a controller could not create an object (a quota refused it).
const FAILED_CREATE: &str = "FailedCreate";
/// How often the same quota refusal is recorded again.
const QUOTA_EVENT_EVERY: Duration = Duration::from_secs(60);
