//! CronJob → Jobs: at each time the schedule names (read in the cron job's time zone, so a daily
//! 09:00 stays 09:00 local across daylight-saving changes) one Job named `<cronjob>-<unix minute>`,
//! so a retried pass can never make two for one slot. Missed runs: the latest one is started if it
//! is within `startingDeadline`; more than 100 missed runs are reported and only the latest is
//! considered. `concurrencyPolicy` decides about a run due while another is active. Finished Jobs
//! beyond the history limits are deleted.
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use skiff_api::{
    ConcurrencyPolicy, CronJob, EventSeverity, JOB_COMPLETE, Job, JobStatus, Kind, Object, ObjectMeta,
    OwnerReference,
};
use skiff_state::Op;

use super::deployments::child_name;
use super::{Ids, Recorder, Snapshot, delete_op, ns_of, rfc3339};

/// The `source.component` of the events the cron job controller records.
pub const CRON_JOB_CONTROLLER: &str = "cronjob-controller";
/// Most missed runs looked at in one pass.
pub const MAX_MISSED: usize = 100;
/// Annotation on a Job: the time it was scheduled for.
pub const SCHEDULED_AT_ANNOTATION: &str = "skiff.dev/scheduled-at";

fn parse(t: Option<&str>) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(t?).ok()
}

/// The scheduled times after `after` up to and including `now`, at most `MAX_MISSED + 1` (more
/// means too many were missed).
pub(crate) fn due_times(
    cron: &croner::Cron,
    tz: chrono_tz::Tz,
    after: SystemTime,
    now: SystemTime,
) -> Vec<SystemTime> {
    let mut out = Vec::new();
    let mut cursor: DateTime<chrono_tz::Tz> = DateTime::<Utc>::from(after).with_timezone(&tz);
    let now_tz: DateTime<chrono_tz::Tz> = DateTime::<Utc>::from(now).with_timezone(&tz);
    while out.len() <= MAX_MISSED {
        let Ok(next) = cron.find_next_occurrence(&cursor, false) else {
            break;
        };
        if next > now_tz {
            break;
        }
        out.push(SystemTime::from(next.with_timezone(&Utc)));
        cursor = next;
    }
    out
}

/// The last scheduled time at or before `now`.
fn latest_at_or_before(cron: &croner::Cron, tz: chrono_tz::Tz, now: SystemTime) -> Option<SystemTime> {
    let now_tz: DateTime<chrono_tz::Tz> = DateTime::<Utc>::from(now).with_timezone(&tz);
    let t = cron.find_previous_occurrence(&now_tz, true).ok()?;
    Some(SystemTime::from(t.with_timezone(&Utc)))
}

fn job_for(cj: &CronJob, at: SystemTime, name: String) -> Job {
    let mut meta = ObjectMeta::named(name, Some(ns_of(&cj.metadata)));
    meta.labels = cj.spec.job_template.metadata.labels.clone();
    meta.annotations = cj.spec.job_template.metadata.annotations.clone();
    meta.annotations
        .insert(SCHEDULED_AT_ANNOTATION.into(), rfc3339(at));
    meta.owner_references = vec![OwnerReference {
        kind: Kind::CronJob.as_str().into(),
        name: cj.metadata.name.clone(),
        uid: cj.metadata.uid.clone().unwrap_or_default(),
        controller: true,
    }];
    Job {
        api_version: Default::default(),
        metadata: meta,
        spec: cj.spec.job_template.spec.clone(),
        status: JobStatus::default(),
    }
}

/// CronJob → Jobs. One command's ops per cron job that needs a change.
pub fn cron_jobs(s: &Snapshot, ids: &mut dyn Ids) -> Vec<Vec<Op>> {
    let Some(now) = s.now else {
        return Vec::new();
    };
    let rec = Recorder {
        component: CRON_JOB_CONTROLLER,
        now,
    };
    let mut out = Vec::new();
    for cj in &s.cron_jobs {
        let Some(uid) = cj.metadata.uid.as_deref() else {
            continue;
        };
        let ns = ns_of(&cj.metadata);
        let mut jobs: Vec<&Job> = s
            .jobs
            .iter()
            .filter(|j| ns_of(&j.metadata) == ns && j.metadata.controller().is_some_and(|o| o.uid == uid))
            .collect();
        jobs.sort_by_key(|j| j.metadata.annotations.get(SCHEDULED_AT_ANNOTATION).cloned());
        let mut ops = Vec::new();
        let mut status = cj.status.clone();
        let mut active: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|j| j.status.finished().is_none())
            .collect();
        let mut active_names: Vec<String> = active.iter().map(|j| j.metadata.name.clone()).collect();

        // History: keep the newest finished jobs within the limits.
        let (ok, failed): (Vec<&Job>, Vec<&Job>) = jobs
            .iter()
            .copied()
            .filter(|j| j.status.finished().is_some())
            .partition(|j| j.status.finished().is_some_and(|c| c.type_ == JOB_COMPLETE));
        for (list, limit) in [
            (ok, cj.spec.successful_jobs_history_limit.unwrap_or(3)),
            (failed, cj.spec.failed_jobs_history_limit.unwrap_or(1)),
        ] {
            let extra = list.len().saturating_sub(limit as usize);
            for j in &list[..extra] {
                ops.push(delete_op(Kind::Job, &j.metadata));
            }
        }

        if !cj.spec.suspend
            && let Ok((cron, tz)) = skiff_api::parse_schedule(&cj.spec.schedule, cj.spec.time_zone.as_deref())
        {
            let after = parse(status.last_schedule_time.as_deref())
                .or_else(|| parse(cj.metadata.creation_timestamp.as_deref()))
                .unwrap_or(now);
            // Missed runs are counted only within startingDeadline of now (older ones could not
            // start anyway); the run acted on is always the latest due, however many were missed.
            let window = cj
                .spec
                .starting_deadline
                .and_then(|d| now.checked_sub(d.0))
                .filter(|w| *w > after)
                .unwrap_or(after);
            let due = due_times(&cron, tz, window, now);
            let latest = match due.last() {
                Some(&t) if due.len() <= MAX_MISSED => Some(t),
                _ => latest_at_or_before(&cron, tz, now).filter(|t| *t > after),
            };
            if due.len() > MAX_MISSED {
                ops.push(rec.record(
                    s,
                    ids,
                    Kind::CronJob,
                    &cj.metadata,
                    EventSeverity::Warning,
                    "TooManyMissedTimes",
                    format!("more than {MAX_MISSED} runs were missed: only the latest is considered"),
                ));
            }
            if let Some(latest) = latest {
                let late = now.duration_since(latest).unwrap_or_default();
                let minute = latest
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs()
                    / 60;
                let name = child_name(&cj.metadata.name, &minute.to_string());
                let exists = jobs.iter().any(|j| j.metadata.name == name);
                status.last_schedule_time = Some(rfc3339(latest));
                if exists {
                    // Made by an earlier pass whose status write was lost.
                } else if cj.spec.starting_deadline.is_some_and(|d| late > d.0) {
                    ops.push(rec.record(
                        s,
                        ids,
                        Kind::CronJob,
                        &cj.metadata,
                        EventSeverity::Warning,
                        "MissSchedule",
                        format!(
                            "missed the run at {} by {}s, past its startingDeadline",
                            rfc3339(latest),
                            late.as_secs()
                        ),
                    ));
                } else if !active.is_empty() && cj.spec.concurrency_policy == ConcurrencyPolicy::Forbid {
                    ops.push(rec.record(
                        s,
                        ids,
                        Kind::CronJob,
                        &cj.metadata,
                        EventSeverity::Normal,
                        "JobAlreadyActive",
                        format!(
                            "skipped the run at {}: {} still runs (Forbid)",
                            rfc3339(latest),
                            active[0].metadata.name
                        ),
                    ));
                } else {
                    if cj.spec.concurrency_policy == ConcurrencyPolicy::Replace {
                        active_names.clear();
                        for j in active.drain(..) {
                            ops.push(delete_op(Kind::Job, &j.metadata));
                            ops.push(rec.record(
                                s,
                                ids,
                                Kind::CronJob,
                                &cj.metadata,
                                EventSeverity::Normal,
                                "SuccessfulDelete",
                                format!("deleted job {} to replace it (Replace)", j.metadata.name),
                            ));
                        }
                    }
                    let job = job_for(cj, latest, name.clone());
                    ops.push(Op::Create {
                        object: Object::Job(job),
                        uid: ids.uid(),
                    });
                    ops.push(rec.record(
                        s,
                        ids,
                        Kind::CronJob,
                        &cj.metadata,
                        EventSeverity::Normal,
                        super::SUCCESSFUL_CREATE,
                        format!("created job {name} for {}", rfc3339(latest)),
                    ));
                    active_names.push(name);
                }
            }
        }
        active_names.sort();
        status.active = active_names;
        if status != cj.status {
            let mut next = cj.clone();
            next.status = status;
            next.metadata.resource_version = None;
            ops.push(Op::UpdateStatus {
                object: Object::CronJob(next),
            });
        }
        if !ops.is_empty() {
            out.push(ops);
        }
    }
    out
}
