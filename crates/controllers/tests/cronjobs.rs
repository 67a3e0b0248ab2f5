//! The CronJob controller as a pure function; time is only `Snapshot.now`, so every test picks the
//! instants it needs (no sleeps): firing minutes in a time zone across DST changes, concurrency
//! policies, startingDeadline, missed runs, history limits, idempotent Job names, suspend.
use std::time::{Duration, SystemTime};

use serde_json::json;
use skiff_api::{ConditionStatus, CronJob, JOB_COMPLETE, JOB_FAILED, Job, NodeCondition, Object};
use skiff_controllers::{self as reconcile, Ids, Snapshot};
use skiff_state::Op;

struct Counted(u32);

impl Ids for Counted {
    fn uid(&mut self) -> String {
        self.0 += 1;
        format!("uid-{}", self.0)
    }
    fn suffix(&mut self) -> String {
        self.0 += 1;
        format!("s{}", self.0)
    }
}

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

fn rfc(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn cron_job(spec: serde_json::Value, created: &str) -> CronJob {
    let mut spec = spec;
    spec["jobTemplate"] = json!({"spec":{"template":{"spec":{"restartPolicy":"Never","components":[{"name":"t",
        "wasm":{"digest":format!("sha256:{}", "a".repeat(64)),"world":"command"}}]}}}});
    serde_json::from_value(
        json!({"metadata":{"name":"tick","namespace":"default","uid":"cj1",
        "creationTimestamp":created},"spec":spec}),
    )
    .unwrap()
}

/// `<cronjob>-<minutes since 1970 of the slot>`.
fn job_name_for(cron_job: &str, t: SystemTime) -> String {
    let minutes = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() / 60;
    format!("{cron_job}-{minutes}")
}

fn job_at(t: SystemTime, finished: Option<&str>) -> Job {
    let mut j: Job = serde_json::from_value(json!({"metadata":{"name":job_name_for("tick", t),
        "annotations":{reconcile::SCHEDULED_AT_ANNOTATION: rfc(t)},
        "namespace":"default","uid":format!("uj-{}", rfc(t)),"creationTimestamp":rfc(t),
        "ownerReferences":[{"kind":"CronJob","name":"tick","uid":"cj1","controller":true}]},
        "spec":{"template":{"spec":{"restartPolicy":"Never","components":[{"name":"t","wasm":{"digest":format!("sha256:{}", "a".repeat(64))}}]}}}}))
    .unwrap();
    if let Some(type_) = finished {
        j.status.conditions.push(NodeCondition {
            type_: type_.into(),
            status: ConditionStatus::True,
            reason: String::new(),
            message: String::new(),
            last_transition_time: Some(rfc(t)),
        });
        if type_ == JOB_COMPLETE {
            j.status.completion_time = Some(rfc(t + Duration::from_secs(30)));
        }
    }
    j
}

#[derive(Debug, Default)]
struct Pass {
    created: Vec<String>,
    deleted: Vec<String>,
    status: Option<skiff_api::CronJobStatus>,
    reasons: Vec<String>,
}

fn pass(cj: &CronJob, jobs: Vec<Job>, now: SystemTime) -> Pass {
    let s = Snapshot {
        now: Some(now),
        cron_jobs: vec![cj.clone()],
        jobs,
        ..Default::default()
    };
    let mut out = Pass::default();
    for op in reconcile::cron_jobs(&s, &mut Counted(0)).into_iter().flatten() {
        match op {
            Op::Create {
                object: Object::Job(j),
                ..
            } => {
                assert_eq!(j.metadata.controller().map(|o| o.uid.as_str()), Some("cj1"));
                out.created.push(j.metadata.name);
            }
            Op::Delete { name, .. } => out.deleted.push(name),
            Op::UpdateStatus {
                object: Object::CronJob(c),
            } => out.status = Some(c.status),
            Op::Apply {
                object: Object::Event(e),
                ..
            } => out.reasons.push(e.reason),
            other => panic!("unexpected op {other:?}"),
        }
    }
    out
}

/// The cron job after a pass: its status taken in.
fn after(cj: &CronJob, p: &Pass) -> CronJob {
    let mut next = cj.clone();
    if let Some(s) = &p.status {
        next.status = s.clone();
    }
    next
}

fn name(t: &str) -> String {
    job_name_for("tick", at(t))
}

#[test]
fn fires_at_the_scheduled_minutes_once_per_slot() {
    let cj = cron_job(json!({"schedule":"*/15 * * * *"}), "2026-06-01T10:07:00Z");
    assert!(pass(&cj, vec![], at("2026-06-01T10:14:59Z")).created.is_empty());
    let p = pass(&cj, vec![], at("2026-06-01T10:15:20Z"));
    assert_eq!(p.created, [name("2026-06-01T10:15:00Z")]);
    assert_eq!(
        name("2026-06-01T10:15:00Z"),
        format!(
            "tick-{}",
            at("2026-06-01T10:15:00Z")
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                / 60
        )
    );
    let st = p.status.clone().expect("status");
    assert_eq!(st.last_schedule_time.as_deref(), Some("2026-06-01T10:15:00Z"));
    assert_eq!(st.active.len(), 1);
    assert!(p.reasons.contains(&"SuccessfulCreate".to_owned()));
    // Next pass, same minute: the slot is done.
    let cj = after(&cj, &p);
    let running = vec![job_at(at("2026-06-01T10:15:00Z"), None)];
    let p = pass(&cj, running.clone(), at("2026-06-01T10:29:00Z"));
    assert!(p.created.is_empty(), "{p:?}");
    // A retried pass that lost its status write finds the Job and makes no second one.
    let stale = cron_job(json!({"schedule":"*/15 * * * *"}), "2026-06-01T10:07:00Z");
    let p = pass(&stale, running, at("2026-06-01T10:15:40Z"));
    assert!(p.created.is_empty());
    assert_eq!(
        p.status.and_then(|s| s.last_schedule_time).as_deref(),
        Some("2026-06-01T10:15:00Z")
    );
}

#[test]
fn a_time_zone_schedule_follows_the_wall_clock_across_dst_changes() {
    // 09:00 in Paris: 08:00Z in winter, 07:00Z once the clocks go forward on 2026-03-29, and
    // 08:00Z again after they go back on 2026-10-25.
    let mut cj = cron_job(
        json!({"schedule":"0 9 * * *","timeZone":"Europe/Paris"}),
        "2026-03-27T12:00:00Z",
    );
    let mut fired = Vec::new();
    let mut now = at("2026-03-27T12:00:00Z");
    // Drive the clock minute by minute over three days, as the controller loop would.
    while now < at("2026-03-30T12:00:00Z") {
        let p = pass(&cj, vec![], now);
        fired.extend(p.created.clone());
        cj = after(&cj, &p);
        now += Duration::from_secs(60);
    }
    assert_eq!(
        fired,
        [
            name("2026-03-28T08:00:00Z"),
            name("2026-03-29T07:00:00Z"),
            name("2026-03-30T07:00:00Z")
        ]
    );
    let cj = cron_job(
        json!({"schedule":"0 9 * * *","timeZone":"Europe/Paris"}),
        "2026-10-24T12:00:00Z",
    );
    assert!(pass(&cj, vec![], at("2026-10-25T07:59:00Z")).created.is_empty());
    assert_eq!(
        pass(&cj, vec![], at("2026-10-25T08:00:00Z")).created,
        [name("2026-10-25T08:00:00Z")]
    );
}

#[test]
fn a_slot_inside_the_spring_forward_gap_runs_once_just_after_it() {
    // 02:30 does not exist in Paris on 2026-03-29 (02:00 → 03:00, i.e. 01:00Z).
    let cj = cron_job(
        json!({"schedule":"30 2 * * *","timeZone":"Europe/Paris"}),
        "2026-03-28T12:00:00Z",
    );
    let p = pass(&cj, vec![], at("2026-03-29T02:00:00Z"));
    assert_eq!(p.created.len(), 1, "{p:?}");
    let t = p.status.and_then(|s| s.last_schedule_time).expect("scheduled");
    let t = at(&t);
    assert_eq!(
        rfc(t),
        "2026-03-29T01:00:00Z",
        "03:00 Paris, the first instant after the gap"
    );
}

#[test]
fn forbid_waits_allow_runs_alongside_replace_deletes_the_running_job() {
    let running = vec![job_at(at("2026-06-01T10:00:00Z"), None)];
    let now = at("2026-06-01T10:05:10Z");
    let mk = |policy: &str| {
        let mut cj = cron_job(
            json!({"schedule":"*/5 * * * *","concurrencyPolicy":policy}),
            "2026-06-01T09:00:00Z",
        );
        cj.status.last_schedule_time = Some("2026-06-01T10:00:00Z".into());
        cj.status.active = vec![running[0].metadata.name.clone()];
        cj
    };
    // Forbid skips the run (recorded), and lastScheduleTime moves past it.
    let p = pass(&mk("Forbid"), running.clone(), now);
    assert!(p.created.is_empty() && p.deleted.is_empty());
    assert_eq!(p.reasons, ["JobAlreadyActive"]);
    let skipped = after(&mk("Forbid"), &p);
    assert_eq!(
        skipped.status.last_schedule_time.as_deref(),
        Some("2026-06-01T10:05:00Z")
    );
    // The job ends: the skipped run is not made up; the next slot runs.
    let done = vec![job_at(at("2026-06-01T10:00:00Z"), Some(JOB_COMPLETE))];
    assert!(
        pass(&skipped, done.clone(), at("2026-06-01T10:06:00Z"))
            .created
            .is_empty()
    );
    let p = pass(&skipped, done, at("2026-06-01T10:10:00Z"));
    assert_eq!(p.created, [name("2026-06-01T10:10:00Z")]);
    let p = pass(&mk("Allow"), running.clone(), now);
    assert_eq!(p.created, [name("2026-06-01T10:05:00Z")]);
    assert_eq!(p.status.expect("status").active.len(), 2);
    let p = pass(&mk("Replace"), running.clone(), now);
    assert_eq!(p.created, [name("2026-06-01T10:05:00Z")]);
    assert_eq!(p.deleted, [running[0].metadata.name.clone()]);
    let active = p.status.expect("status").active;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0], name("2026-06-01T10:05:00Z"));
}

#[test]
fn runs_later_than_the_starting_deadline_are_skipped() {
    let mut cj = cron_job(
        json!({"schedule":"*/15 * * * *","startingDeadline":"60s"}),
        "2026-06-01T09:00:00Z",
    );
    cj.status.last_schedule_time = Some("2026-06-01T10:00:00Z".into());
    // 10:15 is 90 s late: skipped, with an event, and not retried.
    let p = pass(&cj, vec![], at("2026-06-01T10:16:30Z"));
    assert!(p.created.is_empty());
    assert_eq!(p.reasons, ["MissSchedule"]);
    let skipped = after(&cj, &p);
    assert_eq!(
        skipped.status.last_schedule_time.as_deref(),
        Some("2026-06-01T10:15:00Z")
    );
    let p = pass(&skipped, vec![], at("2026-06-01T10:20:00Z"));
    assert!(p.created.is_empty() && p.reasons.is_empty());
    let mut cj2 = cj.clone();
    cj2.spec.starting_deadline = Some("100s".parse().unwrap());
    let p = pass(&cj2, vec![], at("2026-06-01T10:16:30Z"));
    assert_eq!(p.created, [name("2026-06-01T10:15:00Z")]);
    // A slot inside the window but late: with a 120 s deadline, 10:15 at 10:17:10 is 130 s late
    // — outside; at 10:16:59 it is 119 s late — inside.
    cj2.spec.starting_deadline = Some("120s".parse().unwrap());
    assert!(pass(&cj2, vec![], at("2026-06-01T10:17:10Z")).created.is_empty());
    assert_eq!(pass(&cj2, vec![], at("2026-06-01T10:16:59Z")).created.len(), 1);
}

#[test]
fn with_a_starting_deadline_only_recent_misses_count() {
    let mut cj = cron_job(
        json!({"schedule":"* * * * *","startingDeadline":"30s"}),
        "2026-06-01T09:00:00Z",
    );
    cj.status.last_schedule_time = Some("2026-06-01T10:00:00Z".into());
    // Two hours later: only runs newer than 30 s are due; 12:00:00 at 12:00:20 is.
    let p = pass(&cj, vec![], at("2026-06-01T12:00:20Z"));
    assert_eq!(p.created, [name("2026-06-01T12:00:00Z")]);
    assert!(!p.reasons.contains(&"TooManyMissedTimes".to_owned()));
}

#[test]
fn more_than_a_hundred_missed_runs_record_an_event_and_run_only_the_latest() {
    let mut cj = cron_job(json!({"schedule":"* * * * *"}), "2026-06-01T09:00:00Z");
    cj.status.last_schedule_time = Some("2026-06-01T09:00:00Z".into());
    let p = pass(&cj, vec![], at("2026-06-01T12:00:30Z"));
    assert_eq!(p.created, [name("2026-06-01T12:00:00Z")]);
    assert!(
        p.reasons.contains(&"TooManyMissedTimes".to_owned()),
        "{:?}",
        p.reasons
    );
    // 30 missed: no event, still only the latest runs.
    let p = pass(&cj, vec![], at("2026-06-01T09:30:30Z"));
    assert_eq!(p.created, [name("2026-06-01T09:30:00Z")]);
    assert!(!p.reasons.contains(&"TooManyMissedTimes".to_owned()));
}

#[test]
fn finished_jobs_beyond_the_history_limits_are_deleted_oldest_first() {
    let cj = cron_job(
        json!({"schedule":"0 * * * *","successfulJobsHistoryLimit":2,"failedJobsHistoryLimit":1}),
        "2026-06-01T00:00:00Z",
    );
    let hours = |h: u32| at(&format!("2026-06-01T{h:02}:00:00Z"));
    let mut jobs: Vec<Job> = (1..=4).map(|h| job_at(hours(h), Some(JOB_COMPLETE))).collect();
    jobs.push(job_at(hours(5), Some(JOB_FAILED)));
    jobs.push(job_at(hours(6), Some(JOB_FAILED)));
    jobs.push(job_at(hours(7), None));
    let mut cj = cj;
    cj.status.last_schedule_time = Some(rfc(hours(7)));
    let p = pass(&cj, jobs, hours(7) + Duration::from_secs(60));
    let mut deleted = p.deleted.clone();
    deleted.sort();
    let mut want = vec![
        job_name_for("tick", hours(1)),
        job_name_for("tick", hours(2)),
        job_name_for("tick", hours(5)),
    ];
    want.sort();
    assert_eq!(deleted, want);
    let st = p.status.expect("status");
    assert_eq!(st.active.len(), 1);
}

#[test]
fn suspended_cron_jobs_and_bad_schedules_make_nothing() {
    let cj = cron_job(
        json!({"schedule":"* * * * *","suspend":true}),
        "2026-06-01T09:00:00Z",
    );
    assert!(pass(&cj, vec![], at("2026-06-01T10:00:00Z")).created.is_empty());
    let bad = cron_job(json!({"schedule":"every minute"}), "2026-06-01T09:00:00Z");
    let p = pass(&bad, vec![], at("2026-06-01T10:00:00Z"));
    assert!(p.created.is_empty());
}
