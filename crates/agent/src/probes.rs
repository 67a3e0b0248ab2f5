//! Health of the pods this node runs: readiness and liveness probes, and restarts with an
//! exponential back-off.
//!
//! Every pod the agent starts gets one supervising task ([`supervise`]). It starts the pod (or
//! takes over one restored from local state), then probes the serving component in-process
//! through its handler: a `GET` to the probe's path with the pod header, 2xx/3xx within the
//! probe's timeout being a success.
//!
//! - **Readiness** sets `status.ready` (written through the API only when it changes), which the
//!   endpoints controller and the gateway follow. A pod with a readiness probe starts not ready.
//! - **Liveness**: after `failureThreshold` consecutive failures the pod's handler is dropped and
//!   a new one is made for the same uid after a back-off of `base · 2^n` (10 s, 20 s, 40 s … capped
//!   at 5 min; `n` goes back to 0 after 10 min of running), while the pod reports reason
//!   `CrashLoopBackOff` with the next restart time; `status.restartCount` counts the restarts.
//!   Under `restartPolicy: Never` the pod goes `Failed` with reason `LivenessProbeFailed`.
//! - **Failed starts** that may succeed on a retry (an instantiation error) are retried with the
//!   same back-off under `Always`/`OnFailure`; failures a retry cannot change (an invalid spec,
//!   a missing, oversized or mismatching artifact, a compile error) fail the pod as before, so a
//!   controller replaces it.
//!
//! While a pod waits in back-off its uid stays in the table's `busy` set, so the periodic sync
//! neither starts it a second time nor reports it running.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Empty;
use skiff_api::{POD_NAME_HEADER, Pod, PodPhase, PodStatus, Probe, RestartPolicy};

use crate::pods::{PodTable, RunningPod};

/// Longest wait between two restarts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// After running this long, a restart waits the base delay again.
pub(crate) const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// Default first wait before a restart.
pub(crate) const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);

/// The wait before the restart that follows `previous` back-to-back restarts: `base · 2^previous`,
/// at most [`MAX_BACKOFF`].
pub(crate) fn backoff(base: Duration, previous: u32) -> Duration {
    base.saturating_mul(1u32 << previous.min(20)).min(MAX_BACKOFF)
}

/// Whether a start that failed with `reason` may succeed when retried.
pub(crate) fn start_is_retryable(reason: &str) -> bool {
    !matches!(
        reason,
        "InvalidSpec"
            | "InvalidImage"
            | "ArtifactNotFound"
            | "ArtifactDigestMismatch"
            | "ArtifactTooLarge"
            | "CompileError"
            | "ImageNotFound"
            | "ImageDigestMismatch"
            | "RuntimeUnavailable"
    )
}

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

/// How a started pod stopped being supervised.
enum Ended {
    /// No longer this task's pod (deleted, re-created, held, or there is nothing to watch).
    Gone,
    /// Its liveness probe failed; why.
    LivenessFailed(String),
    /// One of its containers ended with this code.
    Exited { component: String, code: i32 },
}

/// Probes a started pod until it is no longer the table's or its liveness probe fails.
async fn watch(table: &PodTable, pod: &Pod, key: &str, running: &Arc<RunningPod>) -> Ended {
    let Some(c) = pod.spec.components.first() else {
        return Ended::Gone;
    };
    let (readiness, liveness) = (c.readiness_probe.as_ref(), c.liveness_probe.as_ref());
    let containers = running.container_ids();
    if readiness.is_none() && liveness.is_none() && containers.is_empty() {
        return Ended::Gone;
    }
    let start = tokio::time::Instant::now();
    let mut next_ready = readiness.map(|p| start + p.initial_delay());
    let mut next_live = liveness.map(|p| start + p.initial_delay());
    let mut next_exit = (!containers.is_empty()).then(|| start + CONTAINER_CHECK);
    let mut ready = ProbeState::new(running.ready.load(Ordering::Relaxed));
    let mut alive = ProbeState::new(true);
    loop {
        let Some(next) = [next_ready, next_live, next_exit].into_iter().flatten().min() else {
            return Ended::Gone;
        };
        tokio::time::sleep_until(next).await;
        if !table.is_current(key, running) {
            return Ended::Gone;
        }
        if let Some(at) = next_exit
            && at <= next
        {
            for (component, id) in &containers {
                if let Some(code) = table.containers.exit_code_of(id).await {
                    if !table.is_current(key, running) {
                        return Ended::Gone;
                    }
                    return Ended::Exited {
                        component: component.clone(),
                        code,
                    };
                }
            }
            next_exit = Some(at + CONTAINER_CHECK);
        }
        if let (Some(p), Some(at)) = (readiness, next_ready)
            && at <= next
        {
            let result = probe_once(running, key, p).await;
            if let Some(now_ready) =
                ready.observe(result.is_ok(), p.failure_threshold(), p.success_threshold())
            {
                tracing::info!(pod = %key, ready = now_ready, detail = ?result.err(), "readiness changed");
                running.ready.store(now_ready, Ordering::Relaxed);
                if table.is_current(key, running) {
                    table.report_running(pod, running).await;
                }
            }
            next_ready = Some(at + p.period());
        }
        if let (Some(p), Some(at)) = (liveness, next_live)
            && at <= next
        {
            let result = probe_once(running, key, p).await;
            let why = result.as_ref().err().cloned();
            if alive.observe(result.is_ok(), p.failure_threshold(), 1) == Some(false) {
                return Ended::LivenessFailed(format!(
                    "liveness probe failed {} times in a row: {}",
                    p.failure_threshold(),
                    why.unwrap_or_default()
                ));
            }
            next_live = Some(at + p.period());
        }
    }
}

/// What follows the end of [`watch`]: `None` when supervision is over (the pod is gone, or ended
/// for good and was reported so), else the failure to restart after.
async fn after(
    table: &PodTable,
    pod: &Pod,
    key: &str,
    running: &Arc<RunningPod>,
    ended: Ended,
    restarts: u32,
) -> Option<(&'static str, String)> {
    match ended {
        Ended::Gone => None,
        Ended::LivenessFailed(why) => table
            .take_back(key, running)
            .then_some(("LivenessProbeFailed", why)),
        Ended::Exited { component, code } => {
            if !table.take_back(key, running) {
                return None;
            }
            let done = match pod.spec.restart_policy {
                RestartPolicy::Always => false,
                RestartPolicy::OnFailure => code == 0,
                RestartPolicy::Never => true,
            };
            let why = format!("container {component} exited with code {code}");
            if !done {
                return Some(("ContainerExited", why));
            }
            tracing::info!(pod = %key, code, "{why}; not restarted (restartPolicy {:?})", pod.spec.restart_policy);
            let status = PodStatus {
                phase: if code == 0 {
                    PodPhase::Succeeded
                } else {
                    PodPhase::Failed
                },
                ready: false,
                reason: Some(if code == 0 { "Completed" } else { "ContainerExited" }.into()),
                message: Some(why),
                finished_at: Some(now_rfc3339()),
                exit_code: Some(code),
                restarts,
                ..pod.status.clone()
            };
            table.report(pod, status).await;
            None // stays busy: not started again
        }
    }
}

/// How [`supervise`] begins.
pub(crate) enum Begin {
    /// Start the pod (its uid is in the table's busy set).
    Start,
    /// The pod already runs (restored from local state) under this handler.
    Running(Arc<RunningPod>),
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Starts, probes and restarts one pod until it is gone, terminal or held (see the module docs).
pub(crate) async fn supervise(table: Arc<PodTable>, pod: Pod, begin: Begin) {
    let key = crate::pods::key(&pod);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ready_at_start = pod
        .spec
        .components
        .first()
        .is_none_or(|c| c.readiness_probe.is_none());
    let mut restarts = pod.status.restarts;
    let mut previous = 0u32; // back-to-back restarts so far
    let mut ran = pod.status.start_time.is_some();
    let mut begin = Some(begin);
    loop {
        let failure: (&'static str, String) = match begin.take().unwrap_or(Begin::Start) {
            Begin::Running(running) => {
                let ended = watch(&table, &pod, &key, &running).await;
                match after(&table, &pod, &key, &running, ended, restarts).await {
                    Some(f) => f,
                    None => return,
                }
            }
            Begin::Start => {
                let started = table.start(&pod).await;
                if table.is_held(&uid) || !table.is_busy(&uid) {
                    // Held (no contact past its stopAfter) or gone while it was starting.
                    table.forget_busy(&uid);
                    return;
                }
                match started {
                    Ok(mut running) => {
                        running.restarts = restarts;
                        running.ready.store(ready_at_start, Ordering::Relaxed);
                        let running = Arc::new(running);
                        table.insert_running(&key, running.clone());
                        table.forget_busy(&uid);
                        ran = true;
                        tracing::info!(pod = %key, restarts, "pod running");
                        table.report_running(&pod, &running).await;
                        let since = Instant::now();
                        let ended = watch(&table, &pod, &key, &running).await;
                        match after(&table, &pod, &key, &running, ended, restarts).await {
                            Some(f) => {
                                if since.elapsed() >= BACKOFF_RESET {
                                    previous = 0;
                                }
                                f
                            }
                            None => return,
                        }
                    }
                    Err(e)
                        if pod.spec.restart_policy == RestartPolicy::Never
                            || !start_is_retryable(e.reason) =>
                    {
                        tracing::warn!(pod = %key, reason = e.reason, error = %e.message, "pod failed to start");
                        let status = PodStatus {
                            phase: PodPhase::Failed,
                            ready: false,
                            reason: Some(e.reason.into()),
                            message: Some(e.message),
                            finished_at: Some(now_rfc3339()),
                            restarts,
                            ..pod.status.clone()
                        };
                        table.report(&pod, status).await;
                        return; // stays busy: not retried
                    }
                    Err(e) => (e.reason, e.message),
                }
            }
        };
        let (reason, why) = failure;
        if pod.spec.restart_policy == RestartPolicy::Never {
            tracing::warn!(pod = %key, reason, error = %why, "pod failed (restartPolicy Never)");
            let status = PodStatus {
                phase: PodPhase::Failed,
                ready: false,
                reason: Some(reason.into()),
                message: Some(why),
                start_time: pod.status.start_time.clone(),
                finished_at: Some(now_rfc3339()),
                restarts,
                ..pod.status.clone()
            };
            table.report(&pod, status).await;
            return;
        }
        let delay = backoff(table.restart_backoff(), previous);
        previous = previous.saturating_add(1);
        let next = humantime::format_rfc3339_millis(SystemTime::now() + delay);
        let message = format!(
            "back-off {} restarting the pod ({reason}: {why}); next restart at {next}",
            humantime::format_duration(delay).to_string().replace(' ', "")
        );
        tracing::warn!(pod = %key, restarts, "{message}");
        let status = PodStatus {
            phase: if ran { PodPhase::Running } else { PodPhase::Pending },
            ready: false,
            reason: Some("CrashLoopBackOff".into()),
            message: Some(message),
            restarts,
            finished_at: None,
            ..pod.status.clone()
        };
        table.report(&pod, status).await;
        tokio::time::sleep(delay).await;
        if !table.is_busy(&uid) || table.is_held(&uid) {
            table.forget_busy(&uid);
            return; // deleted, terminal or held meanwhile
        }
        restarts = restarts.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_five_minutes() {
        let base = Duration::from_secs(10);
        let waits: Vec<u64> = (0..8).map(|n| backoff(base, n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(base, u32::MAX), MAX_BACKOFF);
        let fast = Duration::from_millis(200);
        assert_eq!(backoff(fast, 0), fast);
        assert_eq!(backoff(fast, 3), Duration::from_millis(1600));
    }

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

    #[test]
    fn only_failures_a_retry_may_fix_are_retried() {
        assert!(start_is_retryable("InstantiateError"));
        for r in [
            "InvalidSpec",
            "CompileError",
            "ArtifactDigestMismatch",
            "ArtifactNotFound",
        ] {
            assert!(!start_is_retryable(r), "{r}");
        }
    }
}
