//! The Job controller as a pure function, time driven through `Snapshot.now`: completions with
//! parallelism, retries with exponential back-off up to backoffLimit, activeDeadline.
use std::time::{Duration, SystemTime};

use serde_json::json;
use skiff_api::{ConditionStatus, Job, JobStatus, Object, Pod, PodPhase};
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

const BASE: Duration = Duration::from_secs(10);

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn rfc(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn job(spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec":{"restartPolicy":"Never","components":[{"name":"t",
        "wasm":{"digest":format!("sha256:{}", "a".repeat(64)),"world":"command"}}]}});
    let mut j: Job = serde_json::from_value(
        json!({"metadata":{"name":"batch","namespace":"default","uid":"j1"},"spec":spec}),
    )
    .unwrap();
    j.status.start_time = Some(rfc(t0()));
    j
}

fn pod(name: &str, phase: PodPhase, finished: Option<SystemTime>) -> Pod {
    let mut p: Pod = serde_json::from_value(json!({"metadata":{"name":name,"namespace":"default","uid":format!("u-{name}"),
        "ownerReferences":[{"kind":"Job","name":"batch","uid":"j1","controller":true}]},
        "spec":{"nodeName":"n1","restartPolicy":"Never","components":[{"name":"t","wasm":{"digest":format!("sha256:{}", "a".repeat(64)),"world":"command"}}]}}))
    .unwrap();
    p.status.phase = phase;
    p.status.finished_at = finished.map(rfc);
    p
}

struct Pass {
    created: usize,
    deleted: Vec<String>,
    status: Option<JobStatus>,
    reasons: Vec<String>,
}

fn pass(j: &Job, pods: Vec<Pod>, now: SystemTime) -> Pass {
    let s = Snapshot {
        now: Some(now),
        jobs: vec![j.clone()],
        pods,
        ..Default::default()
    };
    let mut out = Pass {
        created: 0,
        deleted: Vec::new(),
        status: None,
        reasons: Vec::new(),
    };
    for op in reconcile::jobs(&s, &mut Counted(0), BASE).into_iter().flatten() {
        match op {
            Op::Create {
                object: Object::Pod(p),
                ..
            } => {
                assert_eq!(p.metadata.labels[reconcile::JOB_NAME_LABEL], "batch");
                assert_eq!(p.metadata.controller().map(|o| o.uid.as_str()), Some("j1"));
                out.created += 1;
            }
            Op::Delete { name, .. } => out.deleted.push(name),
            Op::UpdateStatus {
                object: Object::Job(j),
            } => out.status = Some(j.status),
            Op::Apply {
                object: Object::Event(e),
                ..
            } => out.reasons.push(e.reason),
            other => panic!("unexpected op {other:?}"),
        }
    }
    out
}

#[test]
fn completions_run_parallelism_at_a_time_then_complete() {
    let j = job(json!({"completions":3,"parallelism":2}));
    let p = pass(&j, vec![], t0());
    assert_eq!(p.created, 2);
    assert_eq!(p.status.map(|s| s.active), Some(2));
    // One succeeded, one runs: one more (3 − 1 = 2 still needed, 1 running).
    let pods = vec![
        pod("a", PodPhase::Succeeded, Some(t0())),
        pod("b", PodPhase::Running, None),
    ];
    assert_eq!(pass(&j, pods, t0()).created, 1);
    // Two succeeded, one runs: nothing more than the last one needed.
    let pods = vec![
        pod("a", PodPhase::Succeeded, Some(t0())),
        pod("b", PodPhase::Succeeded, Some(t0())),
        pod("c", PodPhase::Running, None),
    ];
    assert_eq!(pass(&j, pods, t0()).created, 0);
    // Three succeeded: Complete, with a completion time and an event.
    let pods = vec![
        pod("a", PodPhase::Succeeded, Some(t0())),
        pod("b", PodPhase::Succeeded, Some(t0())),
        pod("c", PodPhase::Succeeded, Some(t0())),
    ];
    let later = t0() + Duration::from_secs(5);
    let p = pass(&j, pods, later);
    let st = p.status.expect("status");
    assert_eq!((st.succeeded, st.active, st.failed), (3, 0, 0));
    assert_eq!(st.finished().map(|c| c.type_.as_str()), Some("Complete"));
    assert_eq!(st.completion_time, Some(rfc(later)));
    assert_eq!(st.conditions[0].status, ConditionStatus::True);
    assert!(p.reasons.contains(&"Completed".to_owned()), "{:?}", p.reasons);
}

#[test]
fn failed_pods_are_retried_with_backoff_until_the_limit_then_the_job_fails() {
    let j = job(json!({"backoffLimit":2}));
    // First failure at t0: the retry waits 10 s.
    let mut pods = vec![pod("a", PodPhase::Failed, Some(t0()))];
    assert_eq!(pass(&j, pods.clone(), t0() + Duration::from_secs(9)).created, 0);
    let p = pass(&j, pods.clone(), t0() + BASE);
    assert_eq!(p.created, 1);
    assert_eq!(p.status.map(|s| s.failed), Some(1));
    // Second failure at t1: 20 s.
    let t1 = t0() + Duration::from_secs(30);
    pods.push(pod("b", PodPhase::Failed, Some(t1)));
    assert_eq!(pass(&j, pods.clone(), t1 + Duration::from_secs(19)).created, 0);
    assert_eq!(pass(&j, pods.clone(), t1 + Duration::from_secs(20)).created, 1);
    // Third failure: more than backoffLimit 2 → Failed, nothing new; the failed pods stay.
    pods.push(pod("c", PodPhase::Failed, Some(t1 + Duration::from_secs(40))));
    let p = pass(&j, pods.clone(), t1 + Duration::from_secs(3600));
    assert_eq!((p.created, p.deleted.len()), (0, 0));
    let st = p.status.expect("status");
    assert_eq!(st.failed, 3);
    let c = st.finished().filter(|c| c.type_ == "Failed").expect("failed");
    assert_eq!(c.reason, "BackoffLimitExceeded");
    assert!(p.reasons.contains(&"BackoffLimitExceeded".to_owned()));
    assert!(st.completion_time.is_none());
    // A finished job stays finished and makes nothing.
    let mut done = j.clone();
    done.status = st;
    let p = pass(&done, pods, t1 + Duration::from_secs(7200));
    assert_eq!((p.created, p.status), (0, None));
}

#[test]
fn restarts_in_place_under_on_failure_count_as_failures() {
    let j = job(json!({"backoffLimit":1}));
    let mut p = pod("a", PodPhase::Running, None);
    p.status.restarts = 2;
    let out = pass(&j, vec![p], t0());
    let st = out.status.expect("status");
    assert_eq!(st.failed, 2);
    assert_eq!(st.finished().map(|c| c.type_.as_str()), Some("Failed"));
    assert_eq!(out.deleted, ["a"], "its running pod is stopped");
}

#[test]
fn active_deadline_fails_the_job_and_deletes_its_running_pods() {
    let j = job(json!({"parallelism":2,"completions":4,"activeDeadline":"30s"}));
    let pods = vec![
        pod("a", PodPhase::Running, None),
        pod("b", PodPhase::Pending, None),
        pod("c", PodPhase::Succeeded, Some(t0())),
    ];
    let p = pass(&j, pods.clone(), t0() + Duration::from_secs(29));
    assert!(p.deleted.is_empty() && p.status.as_ref().is_none_or(|s| s.finished().is_none()));
    let p = pass(&j, pods, t0() + Duration::from_secs(30));
    let mut deleted = p.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, ["a", "b"]);
    assert_eq!(p.created, 0);
    let st = p.status.expect("status");
    let c = st.finished().filter(|c| c.type_ == "Failed").expect("failed");
    assert_eq!(c.reason, "DeadlineExceeded");
    assert!(p.reasons.contains(&"DeadlineExceeded".to_owned()));
}

#[test]
fn a_new_job_gets_its_start_time_and_lowered_parallelism_removes_extra_pods() {
    let mut j = job(json!({"parallelism":1,"completions":5}));
    j.status = JobStatus::default();
    let p = pass(&j, vec![], t0());
    assert_eq!(p.status.and_then(|s| s.start_time), Some(rfc(t0())));
    let j = job(json!({"parallelism":1,"completions":5}));
    let mut unscheduled = pod("b", PodPhase::Pending, None);
    unscheduled.spec.node_name = None;
    let p = pass(&j, vec![pod("a", PodPhase::Running, None), unscheduled], t0());
    assert_eq!(p.deleted, ["b"]);
}

#[test]
fn command_pods_are_never_endpoints() {
    let svc: skiff_api::Service = serde_json::from_value(
        json!({"metadata":{"name":"s","namespace":"default","uid":"s1"},"spec":{"selector":{"app":"x"}}}),
    )
    .unwrap();
    let node: skiff_api::Node = serde_json::from_value(json!({"metadata":{"name":"n1"},
        "status":{"address":"http://n1:7071","ready":true,"capacity":{"memory":"1Gi","pods":10},"runtimes":["wasm"]}}))
    .unwrap();
    let mut p = pod("a", PodPhase::Running, None);
    p.metadata.labels.insert("app".into(), "x".into());
    p.status.ready = true;
    let s = Snapshot {
        now: Some(t0()),
        services: vec![svc],
        nodes: vec![node],
        pods: vec![p],
        ..Default::default()
    };
    let ops = reconcile::endpoints(&s, &mut reconcile::RandomIds);
    let Some(Op::Apply {
        object: Object::Endpoints(e),
        ..
    }) = ops.first()
    else {
        panic!("an endpoints object: {ops:?}")
    };
    assert!(e.endpoints.is_empty(), "{:?}", e.endpoints);
}

#[test]
fn the_backoff_doubles_per_failure_and_stops_growing_at_six_minutes() {
    let j = job(json!({"backoffLimit":20}));
    let last = t0() + Duration::from_secs(10_000);
    let failures = |n: usize| -> Vec<Pod> {
        (0..n)
            .map(|i| {
                pod(
                    &format!("f{i}"),
                    PodPhase::Failed,
                    Some(last - Duration::from_secs(i as u64)),
                )
            })
            .collect()
    };
    // 3 failures: 10 s · 2² = 40 s after the latest.
    assert_eq!(pass(&j, failures(3), last + Duration::from_secs(39)).created, 0);
    assert_eq!(pass(&j, failures(3), last + Duration::from_secs(40)).created, 1);
    // 8 failures: 10 s · 2⁷ = 1280 s, capped at 360 s.
    assert_eq!(pass(&j, failures(8), last + Duration::from_secs(359)).created, 0);
    assert_eq!(pass(&j, failures(8), last + Duration::from_secs(360)).created, 1);
}
