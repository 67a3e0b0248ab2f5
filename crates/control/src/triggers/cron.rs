//! Cron triggers: the leader publishes each due tick of a function's `cron` trigger as an event
//! of the trigger's internal topic, once (the idempotency key is the trigger and the tick's
//! time), and the dispatcher delivers it like any event. Which ticks are due is decided by the
//! pure `skiff_controllers::cron_ticks`.
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use skiff_api::{Kind, Object};

use crate::plane::ControlPlane;

impl ControlPlane {
    /// The time cron triggers go by: the clock file's when configured, else the system clock.
    pub(crate) fn cron_now(&self) -> SystemTime {
        let Some(file) = &self.inner.config.clock_file else {
            return SystemTime::now();
        };
        match std::fs::read_to_string(file) {
            Ok(t) => humantime::parse_rfc3339_weak(t.trim()).unwrap_or_else(|e| {
                tracing::warn!(file = %file.display(), error = %e, "clock file holds no RFC 3339 time; using the system clock");
                SystemTime::now()
            }),
            Err(_) => SystemTime::now(),
        }
    }

    /// Publishes the cron ticks that are due (each once: the idempotency key is the trigger and
    /// the tick's time), one command for all functions.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn cron_pass(&self, since: &mut BTreeMap<String, BTreeMap<usize, SystemTime>>) {
        let all = skiff_api::LabelSelector::default();
        let Ok((_, functions)) = self.inner.reader.list(Kind::Function, None, &all) else {
            return;
        };
        let now = self.cron_now();
        let mut ops = Vec::new();
        let mut marks: Vec<(String, usize, SystemTime)> = Vec::new();
        let mut live = BTreeSet::new();
        for o in functions {
            let Object::Function(f) = o else { continue };
            let Some(uid) = f.metadata.uid.clone() else {
                continue;
            };
            live.insert(uid.clone());
            let seen = since.entry(uid.clone()).or_default();
            for (i, at, op) in skiff_controllers::cron_ticks(&f, now, seen) {
                ops.push(op);
                marks.push((uid.clone(), i, at));
            }
        }
        since.retain(|u, _| live.contains(u));
        if ops.is_empty() {
            return;
        }
        let n = ops.len();
        match self.propose_applied(ops).await {
            Ok(applied) => {
                for (uid, i, at) in marks {
                    let m = since.entry(uid).or_default().entry(i).or_insert(at);
                    *m = (*m).max(at);
                }
                let fresh = applied.published.iter().filter(|r| !r.duplicate).count();
                tracing::debug!(ticks = n, fresh, "cron ticks published");
                self.inner.dispatch.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "cannot publish cron ticks yet; retrying"),
        }
    }
}
