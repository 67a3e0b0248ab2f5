//! Events for what an agent reports about its pods: recorded by the control plane in the same
//! command as the status write, so the history and the status never disagree.
use std::time::SystemTime;

use skiff_api::{Event, EventSeverity, Kind, Pod, PodPhase, PodStatus};

use super::Ids;
use skiff_state::Op;

use super::{Recorder, Snapshot};

/// The `source.component` of the events recorded from agents' reports.
pub const AGENT: &str = "agent";
/// Event reason: the pod runs.
pub const STARTED: &str = "Started";
/// Event reason: the pod stopped passing its readiness probe.
pub const UNHEALTHY: &str = "Unhealthy";
/// Event reason: the pod waits to be restarted (crash loop), or to try its start again.
pub const BACK_OFF: &str = "BackOff";
/// Event reason: the pod's node compiles a component before it can start the pod.
pub const COMPILING: &str = "Compiling";
/// Event reason: the pod was restarted on its node.
pub const RESTARTED: &str = "Restarted";
/// Event reason: the pod ended in failure.
pub const FAILED: &str = "Failed";
/// Event reason: the pod ran to completion.
pub const COMPLETED: &str = "Completed";
/// Event reason: requests of the pod were answered 429 because its namespace used its fuel
/// budget on the pod's node.
pub const FUEL_THROTTLED: &str = "FuelThrottled";
/// Reason of the event recorded when a pod's outbound requests were denied.
pub const OUTBOUND_DENIED: &str = "OutboundDenied";

/// The events that the change from `old`'s status to `new` deserves (`existing` holds the events
/// already recorded about the pod, for their counts).
pub fn pod_status_events(
    existing: Vec<Event>,
    old: &Pod,
    new: &PodStatus,
    now: SystemTime,
    ids: &mut dyn Ids,
) -> Vec<Op> {
    let s = Snapshot {
        events: existing,
        ..Default::default()
    };
    let rec = Recorder {
        component: AGENT,
        now,
    };
    let node = old.spec.node_name.as_deref().unwrap_or("-");
    let mut out = Vec::new();
    let mut record = |severity, reason: &str, message: String| {
        out.push(rec.record(&s, ids, Kind::Pod, &old.metadata, severity, reason, message));
    };
    let was = &old.status;
    let compiling = |st: &PodStatus| st.reason.as_deref() == Some(COMPILING);
    if compiling(new) && !compiling(was) {
        record(
            EventSeverity::Normal,
            COMPILING,
            format!(
                "on node {node}: {}",
                new.message.as_deref().unwrap_or("compiling the pod's components")
            ),
        );
    }
    if new.phase == PodPhase::Running && (was.phase != PodPhase::Running || new.restarts > was.restarts) {
        if new.restarts > was.restarts {
            record(
                EventSeverity::Normal,
                RESTARTED,
                format!("restarted on node {node} (restart {})", new.restarts),
            );
        } else {
            record(EventSeverity::Normal, STARTED, format!("started on node {node}"));
        }
    }
    // A crash loop, or a start that waits on the node (its reason is the failure's own,
    // `CompileError`, `InvalidComponent`, …; the agent's message then starts with the wait).
    let back_off = |st: &PodStatus| {
        st.reason.as_deref() == Some("CrashLoopBackOff")
            || (st.phase != PodPhase::Failed
                && st.message.as_deref().is_some_and(|m| m.starts_with("back-off ")))
    };
    if back_off(new) && (!back_off(was) || new.message != was.message) {
        record(
            EventSeverity::Warning,
            BACK_OFF,
            new.message.clone().unwrap_or_default(),
        );
    }
    if new.phase == PodPhase::Running
        && !back_off(new)
        && was.ready
        && !new.ready
        && was.phase == PodPhase::Running
    {
        record(
            EventSeverity::Warning,
            UNHEALTHY,
            "readiness probe failing: the pod left its services' ready endpoints".into(),
        );
    }
    if new.phase == PodPhase::Failed && was.phase != PodPhase::Failed {
        record(
            EventSeverity::Warning,
            FAILED,
            format!(
                "{}: {}",
                new.reason.as_deref().unwrap_or("Failed"),
                new.message.as_deref().unwrap_or("")
            ),
        );
    }
    if new.throttled_requests > was.throttled_requests {
        record(
            EventSeverity::Warning,
            FUEL_THROTTLED,
            format!(
                "{} requests answered 429 on node {node}: the namespace used its fuel budget (fuel.perMinute of its ResourceQuota); {} in all",
                new.throttled_requests - was.throttled_requests,
                new.throttled_requests
            ),
        );
    }
    let denied = |s: &PodStatus| s.denied_outbound.as_ref().map_or(0, |d| d.count);
    if let Some(d) = &new.denied_outbound
        && d.count > denied(was)
    {
        let hint = if d.missing.contains("://") && !d.missing.contains(' ') {
            format!(
                "add {:?} to capabilities.outbound of component {}",
                d.missing, d.component
            )
        } else {
            format!("component {}: {}", d.component, d.missing)
        };
        record(
            EventSeverity::Warning,
            OUTBOUND_DENIED,
            format!(
                "{} outbound requests denied on node {node}: no grant allows them; latest: {hint}; {} in all",
                d.count - denied(was),
                d.count
            ),
        );
    }
    if new.phase == PodPhase::Succeeded && was.phase != PodPhase::Succeeded {
        record(
            EventSeverity::Normal,
            COMPLETED,
            format!("ran to completion on node {node}"),
        );
    }
    out
}
