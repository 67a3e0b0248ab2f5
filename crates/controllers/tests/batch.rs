//! DaemonSet, Job and CronJob controllers as pure passes, with time under test control.
use std::time::{Duration, SystemTime};

use chrono::{TimeZone, Utc};
use serde_json::json;
use skiff_api::{CronJob, DaemonSet, Job, Kind, Node, Object, PodPhase};
use skiff_controllers::{self as reconcile, Snapshot};
use skiff_state::Op;

#[path = "support/sim.rs"]
mod sim;
use sim::{Counted, apply};

fn digest() -> String {
    format!("sha256:{}", "a".repeat(64))
}

fn node(name: &str, labels: serde_json::Value) -> Node {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":name,"labels":labels},
        "status":{"address":format!("http://{name}:7071"),"ready":true,"capacity":{"memory":"1Gi","pods":10},"runtimes":["wasm"]}}))
    .unwrap()
}

fn daemon_set(greeting: &str, max_unavailable: u32) -> DaemonSet {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"agentd","namespace":"default","uid":"ds1","generation":1},
        "spec":{"selector":{"matchLabels":{"app":"agentd"}},
        "updateStrategy":{"rollingUpdate":{"maxUnavailable":max_unavailable}},
        "template":{"metadata":{"labels":{"app":"agentd"}},"spec":{"nodeSelector":{"role":"edge"},
            "components":[{"name":"c","wasm":{"digest":digest()},"env":[{"name":"G","value":greeting}]}]}}}}))
    .unwrap()
}

fn pass(s: &mut Snapshot, n: u32) -> Vec<Op> {
    let ops = reconcile::daemon_sets(s, &mut Counted(n * 100)).concat();
    apply(s, &ops);
    ops
}

fn placement(s: &Snapshot) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = s
        .pods
        .iter()
        .map(|p| {
            (
                p.spec.node_name.clone().unwrap_or_default(),
                p.spec.components[0].env[0].value.clone(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_daemon_set_follows_nodes_joining_leaving_and_relabelled() {
    let mut s = Snapshot {
        now: Some(SystemTime::now()),
        nodes: vec![
            node("a", json!({"role":"edge"})),
            node("b", json!({"role":"core"})),
        ],
        daemon_sets: vec![daemon_set("v1", 1)],
        ..Default::default()
    };
    pass(&mut s, 1);
    assert_eq!(
        placement(&s),
        [("a".to_owned(), "v1".to_owned())],
        "only the matching node"
    );
    assert_eq!(
        pass(&mut s, 2)
            .iter()
            .filter(|o| !matches!(o, Op::UpdateStatus { .. }))
            .count(),
        0,
        "stable"
    );
    // A node joins.
    s.nodes.push(node("c", json!({"role":"edge"})));
    pass(&mut s, 3);
    assert_eq!(placement(&s).len(), 2);
    // b is relabelled into the set, a out of it.
    s.nodes[1].metadata.labels.insert("role".into(), "edge".into());
    s.nodes[0].metadata.labels.insert("role".into(), "core".into());
    pass(&mut s, 4);
    let nodes: Vec<String> = placement(&s).into_iter().map(|(n, _)| n).collect();
    assert_eq!(nodes, ["b", "c"]);
    // c leaves (its Node object is deleted).
    s.nodes.retain(|n| n.metadata.name != "c");
    pass(&mut s, 5);
    let nodes: Vec<String> = placement(&s).into_iter().map(|(n, _)| n).collect();
    assert_eq!(nodes, ["b"]);
    // A tainted node is skipped unless tolerated.
    let mut tainted = node("d", json!({"role":"edge"}));
    tainted.spec.taints =
        serde_json::from_value(json!([{"key":"dedicated","value":"x","effect":"NoSchedule"}])).unwrap();
    s.nodes.push(tainted);
    pass(&mut s, 6);
    assert_eq!(placement(&s).len(), 1);
    let st = &s.daemon_sets[0].status;
    assert_eq!((st.desired_number_scheduled, st.current_number_scheduled), (1, 1));
}

#[test]
fn a_daemon_set_rolls_a_new_template_at_most_max_unavailable_nodes_at_a_time() {
    let mut s = Snapshot {
        now: Some(SystemTime::now()),
        nodes: (0..5)
            .map(|i| node(&format!("n{i}"), json!({"role":"edge"})))
            .collect(),
        daemon_sets: vec![daemon_set("v1", 2)],
        ..Default::default()
    };
    pass(&mut s, 1);
    sim::all_ready(&mut s);
    s.daemon_sets[0] = daemon_set("v2", 2);
    let mut done = false;
    for i in 0..30 {
        pass(&mut s, 10 + i);
        let serving = s.pods.iter().filter(|p| p.status.ready).count();
        assert!(
            serving >= 3,
            "at most 2 of 5 nodes without a serving pod, saw {serving} serving"
        );
        // New pods become ready one pass later.
        sim::all_ready(&mut s);
        if placement(&s).iter().all(|(_, g)| g == "v2") && s.pods.len() == 5 {
            done = true;
            break;
        }
    }
    assert!(done, "{:?}", placement(&s));
    pass(&mut s, 99);
    let st = &s.daemon_sets[0].status;
    assert_eq!((st.updated_number_scheduled, st.number_ready), (5, 5));
}

fn job(completions: u32, parallelism: u32, backoff_limit: u32, deadline: Option<&str>) -> Job {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"batch","namespace":"default","uid":"j1"},
        "spec":{"completions":completions,"parallelism":parallelism,"backoffLimit":backoff_limit,"activeDeadline":deadline,
        "template":{"spec":{"restartPolicy":"Never","components":[{"name":"c","wasm":{"digest":digest(),"world":"command"}}]}}}}))
    .unwrap()
}

const BASE: Duration = Duration::from_secs(10);

fn job_pass(s: &mut Snapshot, n: u32) -> Vec<Op> {
    let ops = reconcile::jobs(s, &mut Counted(n * 100), BASE).concat();
    apply(s, &ops);
    ops
}

fn finish(s: &mut Snapshot, phase: PodPhase) {
    let t = humantime::format_rfc3339_seconds(s.now.unwrap()).to_string();
    for p in s.pods.iter_mut().filter(|p| p.status.phase == PodPhase::Pending) {
        p.status.phase = phase;
        p.status.finished_at = Some(t.clone());
    }
}

fn job_condition(s: &Snapshot) -> Option<(String, String)> {
    s.jobs[0]
        .status
        .finished()
        .map(|c| (c.type_.clone(), c.reason.clone()))
}

#[test]
fn a_job_runs_its_completions_with_parallelism() {
    let mut s = Snapshot {
        now: Some(SystemTime::now()),
        jobs: vec![job(5, 2, 6, None)],
        ..Default::default()
    };
    for i in 0..10 {
        job_pass(&mut s, i);
        let running = s
            .pods
            .iter()
            .filter(|p| p.status.phase == PodPhase::Pending)
            .count();
        assert!(running <= 2, "parallelism 2, {running} running");
        finish(&mut s, PodPhase::Succeeded);
        if job_condition(&s).is_some() {
            break;
        }
    }
    assert_eq!(job_condition(&s), Some(("Complete".into(), "Completed".into())));
    assert_eq!(s.jobs[0].status.succeeded, 5);
    assert_eq!(s.pods.len(), 5, "no pod beyond the completions");
    assert!(s.jobs[0].status.completion_time.is_some());
}

#[test]
fn a_failing_job_is_retried_with_back_off_up_to_its_limit_then_fails() {
    let t0 = SystemTime::now();
    let mut s = Snapshot {
        now: Some(t0),
        jobs: vec![job(1, 1, 2, None)],
        ..Default::default()
    };
    job_pass(&mut s, 0);
    assert_eq!(s.pods.len(), 1);
    finish(&mut s, PodPhase::Failed);
    // First retry after the base back-off (10 s), the second after 20 s.
    job_pass(&mut s, 1);
    assert_eq!(s.pods.len(), 1, "waits its back-off");
    s.now = Some(t0 + Duration::from_secs(10));
    job_pass(&mut s, 2);
    assert_eq!(s.pods.len(), 2);
    finish(&mut s, PodPhase::Failed);
    s.now = Some(t0 + Duration::from_secs(29));
    job_pass(&mut s, 3);
    assert_eq!(s.pods.len(), 2, "the second wait is 20 s");
    s.now = Some(t0 + Duration::from_secs(31));
    job_pass(&mut s, 4);
    assert_eq!(s.pods.len(), 3);
    finish(&mut s, PodPhase::Failed);
    let ops = job_pass(&mut s, 5);
    assert_eq!(
        job_condition(&s),
        Some(("Failed".into(), "BackoffLimitExceeded".into()))
    );
    assert_eq!(s.jobs[0].status.failed, 3);
    assert!(ops.iter().any(
        |o| matches!(o, Op::Apply { object: Object::Event(e), .. } if e.reason == "BackoffLimitExceeded")
    ));
    job_pass(&mut s, 6);
    assert_eq!(s.pods.len(), 3, "no more pods, failed ones kept for their logs");
}

#[test]
fn a_job_past_its_active_deadline_fails_and_its_pods_are_deleted() {
    let t0 = SystemTime::now();
    let mut s = Snapshot {
        now: Some(t0),
        jobs: vec![job(1, 1, 6, Some("30s"))],
        ..Default::default()
    };
    job_pass(&mut s, 0);
    assert_eq!(s.pods.len(), 1);
    s.now = Some(t0 + Duration::from_secs(31));
    job_pass(&mut s, 1);
    assert_eq!(
        job_condition(&s),
        Some(("Failed".into(), "DeadlineExceeded".into()))
    );
    assert!(s.pods.is_empty(), "the running pod was deleted");
}

fn cron(schedule: &str, tz: Option<&str>, policy: &str, deadline: Option<&str>) -> CronJob {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"nightly","namespace":"default","uid":"cj1",
        "creationTimestamp":"2026-03-01T00:00:00Z"},
        "spec":{"schedule":schedule,"timeZone":tz,"concurrencyPolicy":policy,"startingDeadline":deadline,
            "successfulJobsHistoryLimit":2,
        "jobTemplate":{"spec":{"template":{"spec":{"restartPolicy":"Never","components":[{"name":"c","wasm":{"digest":digest(),"world":"command"}}]}}}}}}))
    .unwrap()
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> SystemTime {
    SystemTime::from(Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap())
}

fn cron_pass(s: &mut Snapshot, now: SystemTime) -> Vec<Op> {
    s.now = Some(now);
    let ops = reconcile::cron_jobs(s, &mut Counted(0)).concat();
    apply(s, &ops);
    ops
}

fn scheduled(s: &Snapshot) -> Vec<String> {
    let mut v: Vec<String> = s
        .jobs
        .iter()
        .map(|j| j.metadata.annotations[reconcile::SCHEDULED_AT_ANNOTATION].clone())
        .collect();
    v.sort();
    v
}

fn complete_all(s: &mut Snapshot) {
    for j in &mut s.jobs {
        if j.status.finished().is_none() {
            j.status.conditions.push(skiff_api::NodeCondition {
                type_: "Complete".into(),
                status: skiff_api::ConditionStatus::True,
                reason: "Completed".into(),
                message: String::new(),
                last_transition_time: None,
            });
        }
    }
}

#[test]
fn a_cron_job_fires_at_local_time_across_daylight_saving_and_never_twice() {
    // 09:00 in New York: 14:00 UTC before 2026-03-08 (EST), 13:00 UTC after (EDT).
    let mut s = Snapshot {
        cron_jobs: vec![cron("0 9 * * *", Some("America/New_York"), "Allow", None)],
        ..Default::default()
    };
    s.cron_jobs[0].status.last_schedule_time = Some("2026-03-06T15:00:00Z".into());
    cron_pass(&mut s, at(2026, 3, 7, 13, 59));
    assert!(s.jobs.is_empty(), "not yet 09:00 local");
    cron_pass(&mut s, at(2026, 3, 7, 14, 0));
    cron_pass(&mut s, at(2026, 3, 7, 14, 0)); // a retried pass makes nothing new
    complete_all(&mut s);
    cron_pass(&mut s, at(2026, 3, 8, 13, 0));
    complete_all(&mut s);
    cron_pass(&mut s, at(2026, 3, 9, 13, 30));
    assert_eq!(
        scheduled(&s),
        [
            "2026-03-07T14:00:00Z",
            "2026-03-08T13:00:00Z",
            "2026-03-09T13:00:00Z"
        ]
    );
    let name = &s.jobs[0].metadata.name;
    assert!(name.starts_with("nightly-"), "{name}");
    // History: the successful limit is 2.
    complete_all(&mut s);
    cron_pass(&mut s, at(2026, 3, 9, 13, 31));
    assert_eq!(s.jobs.len(), 2);
}

#[test]
fn concurrency_policies_and_starting_deadline() {
    let t = at(2026, 5, 1, 12, 0);
    // Forbid: a run due while one is active is skipped.
    let mut s = Snapshot {
        cron_jobs: vec![cron("*/5 * * * *", None, "Forbid", None)],
        ..Default::default()
    };
    s.cron_jobs[0].status.last_schedule_time = Some("2026-05-01T11:55:00Z".into());
    cron_pass(&mut s, t);
    assert_eq!(s.jobs.len(), 1);
    let ops = cron_pass(&mut s, t + Duration::from_secs(300));
    assert_eq!(s.jobs.len(), 1, "skipped while the first runs");
    assert!(
        ops.iter().any(
            |o| matches!(o, Op::Apply { object: Object::Event(e), .. } if e.reason == "JobAlreadyActive")
        )
    );
    // Replace: the active one is deleted and a new one made.
    let mut s = Snapshot {
        cron_jobs: vec![cron("*/5 * * * *", None, "Replace", None)],
        ..Default::default()
    };
    s.cron_jobs[0].status.last_schedule_time = Some("2026-05-01T11:55:00Z".into());
    cron_pass(&mut s, t);
    let first = s.jobs[0].metadata.name.clone();
    let ops = cron_pass(&mut s, t + Duration::from_secs(300));
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::Delete { kind: Kind::Job, name, .. } if *name == first))
    );
    assert_eq!(s.jobs.len(), 1);
    assert_ne!(s.jobs[0].metadata.name, first);
    // Allow: both run.
    let mut s = Snapshot {
        cron_jobs: vec![cron("*/5 * * * *", None, "Allow", None)],
        ..Default::default()
    };
    s.cron_jobs[0].status.last_schedule_time = Some("2026-05-01T11:55:00Z".into());
    cron_pass(&mut s, t);
    cron_pass(&mut s, t + Duration::from_secs(300));
    assert_eq!(s.jobs.len(), 2);
    assert_eq!(s.cron_jobs[0].status.active.len(), 2);
    // startingDeadline: a run noticed too late is skipped, with an event.
    let mut s = Snapshot {
        cron_jobs: vec![cron("0 * * * *", None, "Allow", Some("60s"))],
        ..Default::default()
    };
    s.cron_jobs[0].status.last_schedule_time = Some("2026-05-01T10:00:00Z".into());
    let ops = cron_pass(&mut s, at(2026, 5, 1, 11, 5));
    assert!(s.jobs.is_empty());
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::Apply { object: Object::Event(e), .. } if e.reason == "MissSchedule"))
    );
    cron_pass(&mut s, at(2026, 5, 1, 12, 0));
    assert_eq!(s.jobs.len(), 1, "the next run on time starts");
    // Suspended: nothing.
    let mut s = Snapshot {
        cron_jobs: vec![cron("* * * * *", None, "Allow", None)],
        ..Default::default()
    };
    s.cron_jobs[0].spec.suspend = true;
    cron_pass(&mut s, at(2026, 5, 1, 12, 0));
    assert!(s.jobs.is_empty());
}

#[test]
fn bad_schedules_and_zones_are_refused_with_the_field() {
    let mut c = cron("0 9 * *", Some("Mars/Olympus"), "Allow", None);
    c.metadata.uid = None;
    let err = Object::CronJob(c).validate().unwrap_err().to_string();
    assert!(
        err.contains("spec.schedule") && err.contains("has 4 fields"),
        "{err}"
    );
    assert!(
        err.contains("spec.timeZone") && err.contains("not an IANA time zone"),
        "{err}"
    );
    let mut j = job(1, 1, 1, None);
    j.spec.template.spec.restart_policy = skiff_api::RestartPolicy::Always;
    j.spec.template.spec.components[0].wasm.as_mut().unwrap().world = skiff_api::World::Http;
    let err = Object::Job(j).validate().unwrap_err().to_string();
    assert!(err.contains("restartPolicy Never or OnFailure"), "{err}");
    assert!(err.contains("set world: command"), "{err}");
}
