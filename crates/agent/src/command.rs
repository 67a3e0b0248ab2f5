//! `world: command` pods (the pods of Jobs): the first component runs once to its exit. Exit 0 is
//! `Succeeded`; anything else is `Failed` (with `exitCode` and the reason) under `restartPolicy:
//! Never`, and a restart in place after the back-off under `OnFailure` (`restartCount` counts
//! them; the Job controller counts them as failures). Deleting the pod stops the run.
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use skiff_api::{Pod, PodPhase, PodStatus, RestartPolicy, World};
use skiff_runtime_wasm::LogBuffer;

use crate::pods::{PodTable, key};
use crate::probes::backoff;

/// Per-pod output kept for `skiff logs`.
const LOG_BYTES: usize = 1 << 20;
/// How often a running command checks that its pod still exists.
const GONE_CHECK: Duration = Duration::from_millis(100);

/// Whether the pod runs a command (its first component is `world: command`).
pub(crate) fn is_command(pod: &Pod) -> bool {
    pod.spec
        .components
        .first()
        .and_then(|c| c.wasm.as_ref())
        .is_some_and(|w| w.world == World::Command)
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Runs the pod to its end (the pod's uid is in the table's busy set, and stays there: a finished
/// pod is never started again).
pub(crate) async fn run(table: Arc<PodTable>, pod: Pod) {
    let key = key(&pod);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let logs = Arc::new(LogBuffer::new(LOG_BYTES));
    table
        .command_logs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone(), logs.clone());
    let started = pod.status.start_time.clone().unwrap_or_else(now);
    let mut restarts = pod.status.restarts;
    let mut previous = 0u32;
    loop {
        let running = PodStatus {
            phase: PodPhase::Running,
            ready: false,
            reason: None,
            message: None,
            start_time: Some(started.clone()),
            restarts,
            ..pod.status.clone()
        };
        table.report(&pod, running).await;
        tracing::info!(pod = %key, restarts, "command running");
        let gone = async {
            loop {
                tokio::time::sleep(GONE_CHECK).await;
                if !table.is_busy(&uid) {
                    return;
                }
            }
        };
        let outcome = tokio::select! {
            r = table.run_command(&pod, logs.clone()) => r,
            () = gone => {
                tracing::info!(pod = %key, "command stopped: its pod was deleted");
                return;
            }
        };
        let (code, reason, message) = match outcome {
            Ok(exit) if exit.success() => {
                tracing::info!(pod = %key, "command succeeded");
                let done = PodStatus {
                    phase: PodPhase::Succeeded,
                    ready: false,
                    reason: Some("Completed".into()),
                    message: None,
                    start_time: Some(started),
                    finished_at: Some(now()),
                    restarts,
                    exit_code: Some(0),
                    ..pod.status.clone()
                };
                table.report(&pod, done).await;
                return;
            }
            Ok(exit) => (Some(exit.code), "Error", exit.message.unwrap_or_default()),
            Err(e) => (None, e.reason, e.message),
        };
        tracing::warn!(pod = %key, ?code, reason, %message, "command failed");
        if pod.spec.restart_policy != RestartPolicy::OnFailure
            || reason != "Error" && !crate::probes::start_is_retryable(reason)
        {
            let failed = PodStatus {
                phase: PodPhase::Failed,
                ready: false,
                reason: Some(reason.into()),
                message: Some(message),
                start_time: Some(started),
                finished_at: Some(now()),
                restarts,
                exit_code: code,
                ..pod.status.clone()
            };
            table.report(&pod, failed).await;
            return;
        }
        let delay = backoff(table.restart_backoff(), previous);
        previous = previous.saturating_add(1);
        let waiting = PodStatus {
            phase: PodPhase::Running,
            ready: false,
            reason: Some("CrashLoopBackOff".into()),
            message: Some(format!(
                "back-off {} restarting the command ({reason}: {message})",
                humantime::format_duration(delay).to_string().replace(' ', "")
            )),
            start_time: Some(started.clone()),
            restarts,
            exit_code: code,
            ..pod.status.clone()
        };
        table.report(&pod, waiting).await;
        tokio::time::sleep(delay).await;
        if !table.is_busy(&uid) {
            return;
        }
        restarts = restarts.saturating_add(1);
    }
}
