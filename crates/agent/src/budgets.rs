//! Fuel budgets: one [`FuelMeter`] per namespace on this node, its budget the smallest
//! `fuel.perMinute` of the namespace's ResourceQuotas (none: it only counts). Requests over
//! budget are answered 429 by the runtime; what was throttled is added to each pod's
//! `status.throttledRequests` every few seconds, from which the control plane records a
//! `FuelThrottled` Warning on the pod.
//!
//! Each node meters its own: a namespace may burn its budget on every node it runs on. A
//! cluster-wide budget would need a round trip to the control plane per request.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiff_api::{Kind, Object};
use skiff_client::{Client, Informer, ListOptions};
use skiff_runtime_wasm::FuelMeter;
use tokio::sync::watch;

use crate::util::lock;

/// How often throttled requests are reported onto pods.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The fuel meters of this node, by namespace.
pub(crate) struct FuelBudgets {
    meters: Mutex<HashMap<String, Arc<FuelMeter>>>,
    quotas: Informer,
}

impl FuelBudgets {
    /// Budgets following the ResourceQuotas the API has.
    pub(crate) fn start(client: Client) -> Arc<Self> {
        Arc::new(FuelBudgets {
            meters: Mutex::new(HashMap::new()),
            quotas: Informer::start(client, Kind::ResourceQuota, None, ListOptions::default()),
        })
    }

    /// The meter of `namespace` (made on first use, with the namespace's budget).
    pub(crate) fn meter(&self, namespace: &str) -> Arc<FuelMeter> {
        lock(&self.meters)
            .entry(namespace.to_owned())
            .or_insert_with(|| FuelMeter::new(self.budgets().get(namespace).copied()))
            .clone()
    }

    /// The smallest `fuel.perMinute` of each namespace's quotas.
    fn budgets(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for o in self.quotas.snapshot() {
            if let Object::ResourceQuota(q) = o
                && let Some(n) = q.spec.hard.fuel_per_minute
            {
                let ns = q.metadata.namespace_or_default().to_owned();
                out.entry(ns).and_modify(|m| *m = (*m).min(n)).or_insert(n);
            }
        }
        out
    }

    /// Sets every meter's budget from the quotas as they are now.
    fn refresh(&self) {
        let budgets = self.budgets();
        for (ns, m) in lock(&self.meters).iter() {
            m.set_budget(budgets.get(ns).copied());
        }
    }

    /// Requests throttled since the last call, by pod key (`namespace/pod`).
    fn take_throttled(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for m in lock(&self.meters).values() {
            for (handler, n) in m.take_throttled() {
                let (pod, _) = crate::util::handler_pod(&handler);
                *out.entry(pod.to_owned()).or_default() += n;
            }
        }
        out
    }

    /// Keeps the budgets following the quotas and reports throttled requests onto their pods
    /// through `client`, until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, client: Client, mut shutdown: watch::Receiver<bool>) {
        let mut changed = self.quotas.changed();
        let mut report = tokio::time::interval(REPORT_EVERY);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => if *shutdown.borrow() { return },
                r = changed.changed() => {
                    if r.is_err() { return; }
                    self.refresh();
                }
                _ = report.tick() => {
                    for (pod, n) in self.take_throttled() {
                        crate::report::amend_pod_status(&client, &pod, "throttled requests", |s| {
                            s.throttled_requests = s.throttled_requests.saturating_add(n);
                        })
                        .await;
                    }
                }
            }
        }
    }
}
