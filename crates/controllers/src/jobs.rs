//! Job → Pods: runs pods of the template until `completions` succeed, at most `parallelism` at
//! once. Failures (failed pods, and restarts in place under `OnFailure`) count against
//! `backoffLimit`; a new pod after a failure waits an exponential back-off (base · 2^(failures−1),
//! at most 6 min). Past `backoffLimit` or `activeDeadline` the job fails and its running pods are
//! deleted; finished pods stay (for their logs) until the job is deleted.
use std::time::{Duration, SystemTime};

use skiff_api::{
    ConditionStatus, EventSeverity, JOB_COMPLETE, JOB_FAILED, Job, Kind, NodeCondition, Object, ObjectMeta,
    OwnerReference, Pod, PodPhase, PodStatus,
};
use skiff_state::Op;

use super::deployments::child_name;
use super::replicasets::owned_by;
use super::{Ids, Recorder, Snapshot, delete_op, is_terminal, ns_of, rfc3339};

/// The `source.component` of the events the job controller records.
pub const JOB_CONTROLLER: &str = "job-controller";
/// Label every pod of a job carries: the job's name.
pub const JOB_NAME_LABEL: &str = "skiff.dev/job-name";
/// Longest wait before a new pod after failures.
pub const MAX_JOB_BACKOFF: Duration = Duration::from_secs(360);
/// Event / condition reason: more failures than `backoffLimit`.
pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
/// Event / condition reason: the job ran past `activeDeadline`.
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

/// Whether the pod's serving component (its first) is a `command`: such a pod runs to its exit
/// and is never a service endpoint.
pub(super) fn runs_command(p: &Pod) -> bool {
    p.spec
        .components
        .first()
        .and_then(|c| c.wasm.as_ref())
        .is_some_and(|w| w.world == skiff_api::World::Command)
}

fn parse(t: Option<&str>) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(t?).ok()
}

fn pod_for(job: &Job, ids: &mut dyn Ids) -> Pod {
    let mut labels = job.spec.template.metadata.labels.clone();
    labels.insert(JOB_NAME_LABEL.into(), job.metadata.name.clone());
    Pod {
        api_version: Default::default(),
        metadata: ObjectMeta {
            name: child_name(&job.metadata.name, &ids.suffix()),
            namespace: Some(ns_of(&job.metadata).to_owned()),
            labels,
            annotations: job.spec.template.metadata.annotations.clone(),
            owner_references: vec![OwnerReference {
                kind: Kind::Job.as_str().into(),
                name: job.metadata.name.clone(),
                uid: job.metadata.uid.clone().unwrap_or_default(),
                controller: true,
            }],
            ..Default::default()
        },
        spec: job.spec.template.spec.clone(),
        status: PodStatus::default(),
    }
}

fn condition(type_: &str, reason: &str, message: String, now: SystemTime) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: ConditionStatus::True,
        reason: reason.into(),
        message,
        last_transition_time: Some(rfc3339(now)),
    }
}

/// Job → Pods. `base_backoff` is the wait before the pod after the first failure (10 s in
/// production). One command's ops per job that needs a change.
pub fn jobs(s: &Snapshot, ids: &mut dyn Ids, base_backoff: Duration) -> Vec<Vec<Op>> {
    let Some(now) = s.now else {
        return Vec::new();
    };
    let rec = Recorder {
        component: JOB_CONTROLLER,
        now,
    };
    let mut out = Vec::new();
    for job in &s.jobs {
        let Some(uid) = job.metadata.uid.as_deref() else {
            continue;
        };
        let pods = owned_by(s, ns_of(&job.metadata), uid);
        let active: Vec<&Pod> = pods.iter().copied().filter(|p| !is_terminal(p)).collect();
        let mut ops = Vec::new();
        let mut status = job.status.clone();
        if job.status.finished().is_some() {
            // Done: nothing runs any more.
            for p in &active {
                ops.push(delete_op(Kind::Pod, &p.metadata));
            }
            status.active = 0;
        } else {
            let succeeded = pods
                .iter()
                .filter(|p| p.status.phase == PodPhase::Succeeded)
                .count() as u32;
            let failed_pods: Vec<&&Pod> = pods
                .iter()
                .filter(|p| p.status.phase == PodPhase::Failed)
                .collect();
            let failed = failed_pods.len() as u32 + pods.iter().map(|p| p.status.restarts).sum::<u32>();
            let start = parse(job.status.start_time.as_deref()).unwrap_or(now);
            status.start_time = Some(rfc3339(start));
            status.succeeded = succeeded;
            status.failed = failed;
            let spec = &job.spec;
            let verdict = if succeeded >= spec.completions() {
                Some((
                    JOB_COMPLETE,
                    "Completed",
                    format!("{succeeded} of {} completions succeeded", spec.completions()),
                ))
            } else if failed > spec.backoff_limit() {
                Some((
                    JOB_FAILED,
                    BACKOFF_LIMIT_EXCEEDED,
                    format!(
                        "{failed} failures, more than the backoffLimit of {}",
                        spec.backoff_limit()
                    ),
                ))
            } else if let Some(d) = spec.active_deadline
                && now.duration_since(start).unwrap_or_default() >= d.0
            {
                Some((
                    JOB_FAILED,
                    DEADLINE_EXCEEDED,
                    format!("the job ran longer than its activeDeadline of {d}"),
                ))
            } else {
                None
            };
            match verdict {
                Some((type_, reason, message)) => {
                    for p in &active {
                        ops.push(delete_op(Kind::Pod, &p.metadata));
                    }
                    let severity = if type_ == JOB_COMPLETE {
                        EventSeverity::Normal
                    } else {
                        EventSeverity::Warning
                    };
                    ops.push(rec.record(
                        s,
                        ids,
                        Kind::Job,
                        &job.metadata,
                        severity,
                        reason,
                        message.clone(),
                    ));
                    status.conditions.push(condition(type_, reason, message, now));
                    if type_ == JOB_COMPLETE {
                        status.completion_time = Some(rfc3339(now));
                    }
                    status.active = 0;
                }
                None => {
                    let remaining = spec.completions() - succeeded;
                    let want = spec.parallelism().min(remaining) as usize;
                    // After a failure, the next pod waits its back-off from the latest failure.
                    let last_failure = failed_pods
                        .iter()
                        .filter_map(|p| parse(p.status.finished_at.as_deref()))
                        .max();
                    let wait = if failed == 0 {
                        Duration::ZERO
                    } else {
                        base_backoff
                            .saturating_mul(1u32 << (failed - 1).min(16))
                            .min(MAX_JOB_BACKOFF)
                    };
                    let ready_to_create =
                        last_failure.is_none_or(|t| now.duration_since(t).unwrap_or_default() >= wait);
                    let mut made = Vec::new();
                    if active.len() > want {
                        // Parallelism lowered: the least advanced pods go (unscheduled, then
                        // not yet running, then the newest).
                        let mut extra = active.clone();
                        extra.sort_by_key(|p| {
                            (
                                p.spec.node_name.is_some(),
                                p.status.phase == PodPhase::Running,
                                std::cmp::Reverse(p.metadata.resource_version),
                            )
                        });
                        for p in &extra[..active.len() - want] {
                            ops.push(delete_op(Kind::Pod, &p.metadata));
                        }
                    }
                    if active.len() < want && ready_to_create {
                        for _ in active.len()..want {
                            let pod = pod_for(job, ids);
                            made.push(pod.metadata.name.clone());
                            ops.push(Op::Create {
                                object: Object::Pod(pod),
                                uid: ids.uid(),
                            });
                        }
                    }
                    if !made.is_empty() {
                        ops.push(rec.record(
                            s,
                            ids,
                            Kind::Job,
                            &job.metadata,
                            EventSeverity::Normal,
                            super::SUCCESSFUL_CREATE,
                            format!(
                                "created pod{} {}",
                                if made.len() == 1 { "" } else { "s" },
                                made.join(", ")
                            ),
                        ));
                    }
                    status.active = (active.len().min(want) + made.len()) as u32;
                }
            }
        }
        if status != job.status {
            let mut next = job.clone();
            next.status = status;
            next.metadata.resource_version = None;
            ops.push(Op::UpdateStatus {
                object: Object::Job(next),
            });
        }
        if !ops.is_empty() {
            out.push(ops);
        }
    }
    out
}
