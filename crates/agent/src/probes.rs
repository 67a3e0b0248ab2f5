//! Health of a served pod: readiness and liveness probes, and whether its containers still run.
//!
//! A [`Watcher`] probes the serving component in-process through its handler (a `GET` to the
//! probe's path with the pod header, 2xx/3xx within the probe's timeout being a success) and asks
//! the runtime plugin every second whether the pod's containers still run. It turns what it sees
//! into lifecycle events for the pod's driver:
//!
//! - **Readiness** flips ([`Event::ReadinessChanged`]) after `successThreshold` successes or
//!   `failureThreshold` failures in a row; a pod with a readiness probe starts not ready.
//! - **Liveness** fails ([`Event::LivenessFailed`]) after `failureThreshold` failures in a row.
//! - A container that ended is [`Event::ContainerExited`].
//!
//! What follows (restart after the back-off, `Failed`, …) is the lifecycle machine's decision.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Empty;
use skiff_api::{POD_NAME_HEADER, Pod, Probe};
use tokio::time::Instant as TokioInstant;

use crate::containers::Containers;
use crate::lifecycle::{Event, Now};
use crate::pods::RunningPod;

/// The outcome of a probe's consecutive results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeState {
    /// Whether the probe passes now.
    pub(crate) passing: bool,
    failures: u32,
    successes: u32,
}

impl ProbeState {
    /// A probe that starts `passing` (liveness) or not (readiness).
    pub(crate) fn new(passing: bool) -> Self {
        ProbeState {
            passing,
            failures: 0,
            successes: 0,
        }
    }

    /// Records one result; returns the new state when it flipped.
    pub(crate) fn observe(
        &mut self,
        ok: bool,
        failure_threshold: u32,
        success_threshold: u32,
    ) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if !self.passing && self.successes >= success_threshold.max(1) {
                self.passing = true;
                return Some(true);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.passing && self.failures >= failure_threshold.max(1) {
                self.passing = false;
                return Some(false);
            }
        }
        None
    }
}

/// Calls `probe` on the pod's serving handler once: `Ok` for 2xx/3xx in time, else why not.
async fn probe_once(running: &RunningPod, pod_key: &str, probe: &Probe) -> Result<(), String> {
    let path = &probe.http_get.path;
    let req = http::Request::get(path.as_str())
        .header(POD_NAME_HEADER, pod_key)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("GET {path}: {e}"))?;
    match tokio::time::timeout(probe.timeout(), running.handler.handle(req)).await {
        Ok(resp) if resp.status().is_success() || resp.status().is_redirection() => Ok(()),
        Ok(resp) => Err(format!("GET {path} answered {}", resp.status())),
        Err(_) => Err(format!(
            "GET {path} did not answer within {}",
            humantime::format_duration(probe.timeout())
        )),
    }
}

/// How often the containers of a pod are asked whether they still run.
const CONTAINER_CHECK: Duration = Duration::from_secs(1);

/// Both clocks, now.
fn now() -> Now {
    Now {
        instant: Instant::now(),
        wall: SystemTime::now(),
    }
}

/// Watches one served pod: its probes and its containers.
pub(crate) struct Watcher {
    pod_key: String,
    running: Arc<RunningPod>,
    readiness: Option<Probe>,
    liveness: Option<Probe>,
    /// (component, container id) of its containers.
    containers: Vec<(String, String)>,
    /// Who runs them.
    runtime: Arc<Containers>,
    next_ready: Option<TokioInstant>,
    next_live: Option<TokioInstant>,
    next_exit: Option<TokioInstant>,
    ready: ProbeState,
    alive: ProbeState,
}

impl Watcher {
    /// A watcher of `running` (serving `pod` under `pod_key`), or `None` when there is nothing
    /// to watch (no probes, no containers).
    pub(crate) fn new(
        pod: &Pod,
        pod_key: &str,
        running: Arc<RunningPod>,
        runtime: Arc<Containers>,
    ) -> Option<Watcher> {
        let c = pod.spec.components.first()?;
        let (readiness, liveness) = (c.readiness_probe.clone(), c.liveness_probe.clone());
        let containers = running.container_ids();
        if readiness.is_none() && liveness.is_none() && containers.is_empty() {
            return None;
        }
        let start = TokioInstant::now();
        let ready = ProbeState::new(running.ready.load(std::sync::atomic::Ordering::Relaxed));
        Some(Watcher {
            pod_key: pod_key.to_owned(),
            next_ready: readiness.as_ref().map(|p| start + p.initial_delay()),
            next_live: liveness.as_ref().map(|p| start + p.initial_delay()),
            next_exit: (!containers.is_empty()).then(|| start + CONTAINER_CHECK),
            readiness,
            liveness,
            containers,
            runtime,
            running,
            ready,
            alive: ProbeState::new(true),
        })
    }

    /// Probes until something happens to the pod: its readiness flips, its liveness probe fails
    /// or one of its containers ends. Cancel-safe between probes (a cancelled probe is made again).
    pub(crate) async fn next(&mut self) -> Event {
        loop {
            let Some(next) = [self.next_ready, self.next_live, self.next_exit]
                .into_iter()
                .flatten()
                .min()
            else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(next).await;
            if let Some(at) = self.next_exit
                && at <= next
            {
                for (component, id) in &self.containers {
                    if let Some(code) = self.runtime.exit_code_of(id).await {
                        self.next_exit = None;
                        return Event::ContainerExited {
                            component: component.clone(),
                            code,
                            at: now(),
                        };
                    }
                }
                self.next_exit = Some(at + CONTAINER_CHECK);
            }
            if let (Some(p), Some(at)) = (&self.readiness, self.next_ready)
                && at <= next
            {
                let result = probe_once(&self.running, &self.pod_key, p).await;
                let flipped =
                    self.ready
                        .observe(result.is_ok(), p.failure_threshold(), p.success_threshold());
                self.next_ready = Some(at + p.period());
                if let Some(now_ready) = flipped {
                    tracing::info!(pod = %self.pod_key, ready = now_ready, detail = ?result.err(), "readiness changed");
                    return Event::ReadinessChanged {
                        ready: now_ready,
                        at: now(),
                    };
                }
            }
            if let (Some(p), Some(at)) = (&self.liveness, self.next_live)
                && at <= next
            {
                let result = probe_once(&self.running, &self.pod_key, p).await;
                let why = result.as_ref().err().cloned();
                self.next_live = Some(at + p.period());
                if self.alive.observe(result.is_ok(), p.failure_threshold(), 1) == Some(false) {
                    return Event::LivenessFailed {
                        why: format!(
                            "liveness probe failed {} times in a row: {}",
                            p.failure_threshold(),
                            why.unwrap_or_default()
                        ),
                        at: now(),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_its_successes_and_loses_them_after_the_failures() {
        let mut s = ProbeState::new(false);
        assert_eq!(s.observe(true, 3, 2), None, "one success of two");
        assert_eq!(s.observe(true, 3, 2), Some(true));
        assert_eq!(s.observe(false, 3, 2), None);
        assert_eq!(s.observe(false, 3, 2), None);
        assert_eq!(s.observe(true, 3, 2), None, "a success resets the failures");
        assert_eq!(s.observe(false, 3, 2), None);
        assert_eq!(s.observe(false, 3, 2), None);
        assert_eq!(s.observe(false, 3, 2), Some(false));
        assert!(!s.passing);
        assert_eq!(s.observe(false, 3, 2), None, "reported once");
    }

    #[test]
    fn liveness_fails_once_after_the_threshold() {
        let mut s = ProbeState::new(true);
        assert_eq!(s.observe(false, 1, 1), Some(false));
        let mut s = ProbeState::new(true);
        assert_eq!(s.observe(false, 2, 1), None);
        assert_eq!(s.observe(true, 2, 1), None);
        assert_eq!(s.observe(false, 2, 1), None);
        assert_eq!(s.observe(false, 2, 1), Some(false));
    }
}
