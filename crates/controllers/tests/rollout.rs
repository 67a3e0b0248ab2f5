//! Deployment rollouts as pure controller passes: revisions, RollingUpdate bounds at every step,
//! Recreate, undo, history limit, pause, progress deadline, canary steps, weights, promotion and
//! revert.
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use skiff_api::{
    CanaryPhase, ConditionStatus, Deployment, Node, Object, PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING_CONDITION, Pod, Service,
};
use skiff_controllers::{self as reconcile, PodTraffic, Snapshot, TEMPLATE_HASH_LABEL};
use skiff_state::Op;

#[path = "support/sim.rs"]
mod sim;
use sim::{Counted, settle, workload_pass};

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn deployment(replicas: i64, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"web","namespace":"default","uid":"d1","generation":1},
        "spec":{"replicas":replicas,"selector":{"matchLabels":{"app":"web"}},"strategy":strategy,
        "template":{"metadata":{"labels":{"app":"web"}},"spec":{"components":[{"name":"c","wasm":{"digest":digest('a')}}]}}}}))
    .unwrap()
}

fn node(name: &str) -> Node {
    serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","metadata":{"name":name},
        "status":{"address":format!("http://{name}:7071"),"ready":true,"capacity":{"memory":"1Gi","pods":100},"runtimes":["wasm"]}}))
    .unwrap()
}

fn service() -> Service {
    serde_json::from_value(
        json!({"apiVersion":"skiff.dev/v1","metadata":{"name":"web","namespace":"default","uid":"s1"},
        "spec":{"selector":{"app":"web"}}}),
    )
    .unwrap()
}

/// A cluster with `d` rolled out and every pod ready.
fn running(d: Deployment) -> Snapshot {
    let mut s = Snapshot {
        now: Some(SystemTime::now()),
        nodes: vec![node("n")],
        services: vec![service()],
        deployments: vec![d],
        ..Default::default()
    };
    settle_ready(&mut s);
    s
}

/// Where the ids of the next settling start (names never repeat within a test).
static NEXT: AtomicU32 = AtomicU32::new(1_000_000);

/// Binds every pod and marks it ready, then runs passes until nothing changes.
fn settle_ready(s: &mut Snapshot) {
    let mut last = Vec::new();
    for _ in 0..20 {
        bind_all(s);
        sim::all_ready(s);
        let ops = workload_pass(s, &mut Counted(NEXT.fetch_add(1000, Ordering::Relaxed)));
        if ops.iter().all(|o| matches!(o, Op::Apply { .. })) {
            return;
        }
        last = ops;
    }
    panic!("did not settle: {last:#?}");
}

fn bind_all(s: &mut Snapshot) {
    for p in &mut s.pods {
        if p.spec.node_name.is_none() {
            p.spec.node_name = Some("n".into());
        }
    }
}

fn change_template(s: &mut Snapshot, c: char) {
    let d = &mut s.deployments[0];
    d.spec.template.spec.components[0].wasm.as_mut().unwrap().digest = Some(digest(c));
    d.metadata.generation = Some(d.metadata.generation.unwrap_or(1) + 1);
}

fn of_hash<'a>(s: &'a Snapshot, hash: &str) -> Vec<&'a Pod> {
    s.pods
        .iter()
        .filter(|p| p.metadata.labels.get(TEMPLATE_HASH_LABEL).map(String::as_str) == Some(hash))
        .collect()
}

fn ready(s: &Snapshot) -> usize {
    s.pods.iter().filter(|p| p.status.ready).count()
}

#[test]
fn rolling_update_stays_within_surge_and_unavailable_at_every_step() {
    let cases = [
        (3, json!({}), 1, 0),
        (4, json!({}), 1, 1),
        (
            4,
            json!({"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}),
            1,
            0,
        ),
        (
            5,
            json!({"rollingUpdate":{"maxSurge":0,"maxUnavailable":2}}),
            0,
            2,
        ),
        (
            10,
            json!({"rollingUpdate":{"maxSurge":"30%","maxUnavailable":"20%"}}),
            3,
            2,
        ),
        (
            1,
            json!({"rollingUpdate":{"maxSurge":0,"maxUnavailable":0}}),
            0,
            1,
        ),
    ];
    for seed in 0..20u64 {
        for (replicas, strategy, surge, unavailable) in &cases {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut st = strategy.clone();
            if let Some(o) = st.as_object_mut() {
                o.insert("type".into(), json!("RollingUpdate"));
            }
            let mut s = running(deployment(*replicas, st));
            change_template(&mut s, 'b');
            let new_hash = reconcile::template_hash(&s.deployments[0]);
            let (max_pods, min_ready) = ((*replicas + surge) as usize, (*replicas - unavailable) as usize);
            let mut done = false;
            for pass in 0..300 {
                workload_pass(&mut s, &mut Counted(1000 + pass * 10));
                let live = s.pods.len();
                assert!(
                    live <= max_pods,
                    "seed {seed} {strategy}: {live} pods > {max_pods} at pass {pass}"
                );
                assert!(
                    ready(&s) >= min_ready,
                    "seed {seed} {strategy}: {} ready < {min_ready} at pass {pass}",
                    ready(&s)
                );
                // Some bound pods of the new revision become ready (in a random order).
                bind_all(&mut s);
                for p in &mut s.pods {
                    if !p.status.ready && rng.random_bool(0.4) {
                        p.status.phase = skiff_api::PodPhase::Running;
                        p.status.ready = true;
                    }
                }
                let st = &s.deployments[0].status;
                if of_hash(&s, &new_hash).len() == *replicas as usize
                    && s.pods.len() == *replicas as usize
                    && ready(&s) == *replicas as usize
                    && st.updated_ready_replicas == *replicas as u64
                    && st.replicas == *replicas as u64
                {
                    done = true;
                    break;
                }
            }
            assert!(done, "seed {seed} {strategy}: the rollout did not finish");
            settle_ready(&mut s);
            let d = &s.deployments[0];
            assert_eq!(d.status.revision, Some(2));
            let cond = d
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == PROGRESSING_CONDITION)
                .unwrap();
            assert_eq!(
                (cond.status, cond.reason.as_str()),
                (ConditionStatus::True, "NewReplicaSetAvailable")
            );
            assert_eq!(s.replica_sets.len(), 2, "the old revision is kept for undo");
            let old = s.replica_sets.iter().find(|r| r.revision() == 1).unwrap();
            assert_eq!(old.spec.replicas, 0);
        }
    }
}

#[test]
fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let mut s = running(deployment(3, json!({"type":"Recreate"})));
    change_template(&mut s, 'b');
    let new_hash = reconcile::template_hash(&s.deployments[0]);
    let mut saw_gap = false;
    for pass in 0..20 {
        workload_pass(&mut s, &mut Counted(1000 + pass * 10));
        let (old, new) = (
            s.pods.len() - of_hash(&s, &new_hash).len(),
            of_hash(&s, &new_hash).len(),
        );
        assert!(old == 0 || new == 0, "old and new pods together at pass {pass}");
        saw_gap |= s.pods.is_empty();
        bind_all(&mut s);
        sim::all_ready(&mut s);
    }
    assert!(saw_gap);
    assert_eq!(of_hash(&s, &new_hash).len(), 3);
}

#[test]
fn undo_reuses_the_old_replica_set_under_a_new_revision_and_history_is_limited() {
    let mut d = deployment(2, json!({}));
    d.spec.revision_history_limit = Some(1);
    let mut s = running(d);
    let first = reconcile::template_hash(&s.deployments[0]);
    change_template(&mut s, 'b');
    settle_ready(&mut s);
    let rs2 = s.replica_sets.iter().find(|r| r.revision() == 2).unwrap();
    assert_eq!(
        rs2.metadata
            .annotations
            .get(skiff_api::CHANGE_CAUSE_ANNOTATION)
            .map(String::as_str),
        Some(format!("component c: wasm to sha256:{}", "b".repeat(12)).as_str())
    );
    // Back to the first template (what `skiff rollout undo` writes).
    change_template(&mut s, 'a');
    s.deployments[0].metadata.annotations.insert(
        skiff_api::CHANGE_CAUSE_ANNOTATION.into(),
        "rollback to revision 1".into(),
    );
    settle_ready(&mut s);
    assert_eq!(reconcile::template_hash(&s.deployments[0]), first);
    let back = s
        .replica_sets
        .iter()
        .find(|r| r.metadata.name.ends_with(&first))
        .unwrap();
    assert_eq!(
        back.revision(),
        3,
        "the old replica set is brought back as revision 3"
    );
    assert_eq!(
        back.metadata
            .annotations
            .get(skiff_api::CHANGE_CAUSE_ANNOTATION)
            .map(String::as_str),
        Some("rollback to revision 1")
    );
    assert_eq!(of_hash(&s, &first).len(), 2);
    assert_eq!(s.deployments[0].status.revision, Some(3));
    // A third template: with a history limit of 1, only the newest old revision stays.
    s.deployments[0].metadata.annotations.clear();
    change_template(&mut s, 'c');
    settle_ready(&mut s);
    let mut revisions: Vec<u64> = s.replica_sets.iter().map(|r| r.revision()).collect();
    revisions.sort();
    assert_eq!(revisions, [3, 4]);
}

#[test]
fn a_paused_deployment_waits_and_a_stalled_one_reports_its_deadline() {
    let mut d = deployment(2, json!({}));
    d.spec.progress_deadline = Some("30s".parse().unwrap());
    let mut s = running(d);
    s.deployments[0].spec.paused = true;
    change_template(&mut s, 'b');
    for _ in 0..3 {
        workload_pass(&mut s, &mut Counted(500));
    }
    assert_eq!(s.replica_sets.len(), 1, "no new revision while paused");
    // Resumed: the new revision starts but its pods never become ready.
    s.deployments[0].spec.paused = false;
    for _ in 0..3 {
        workload_pass(&mut s, &mut Counted(600));
        bind_all(&mut s);
    }
    assert_eq!(s.replica_sets.len(), 2);
    let t0 = s.now.unwrap();
    s.now = Some(t0 + Duration::from_secs(31));
    let ops = workload_pass(&mut s, &mut Counted(700));
    let cond = s.deployments[0]
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == PROGRESSING_CONDITION)
        .unwrap()
        .clone();
    assert_eq!(cond.status, ConditionStatus::False);
    assert_eq!(cond.reason, PROGRESS_DEADLINE_EXCEEDED);
    assert!(
        cond.message.contains("progressDeadline of 30s"),
        "{}",
        cond.message
    );
    assert!(
        ops.iter().any(|o| matches!(o, Op::Apply { object: Object::Event(e), .. } if e.reason == PROGRESS_DEADLINE_EXCEEDED)),
        "an event says so"
    );
    // The old pods still serve.
    assert_eq!(ready(&s), 2);
}

fn canary_deployment(replicas: i64) -> Deployment {
    deployment(
        replicas,
        json!({"type":"Canary","canary":{
            "steps":[{"weight":20},{"pause":{"duration":"30s"}},{"weight":60},{"pause":{}}],
            "analysis":{"maxErrorPercent":5,"minRequests":20}}}),
    )
}

/// Weights of the ready endpoints, summed per template hash.
fn shares(s: &Snapshot) -> std::collections::BTreeMap<String, u32> {
    let ops = reconcile::endpoints(s, &mut reconcile::RandomIds);
    let mut out = std::collections::BTreeMap::new();
    for op in ops {
        if let Op::Apply {
            object: Object::Endpoints(e),
            ..
        } = op
        {
            for a in e.endpoints.iter().filter(|a| a.ready) {
                let p = s.pods.iter().find(|p| p.metadata.name == a.pod).unwrap();
                let h = p.metadata.labels[TEMPLATE_HASH_LABEL].clone();
                *out.entry(h).or_default() += a.weight.unwrap_or(0);
            }
        }
    }
    out
}

fn canary_pass(s: &mut Snapshot, n: u32) -> Vec<Op> {
    let ops = workload_pass(s, &mut Counted(10_000 + n * 10));
    bind_all(s);
    sim::all_ready(s);
    ops
}

#[test]
fn a_good_canary_goes_through_its_steps_with_the_weights_and_is_promoted() {
    let mut s = running(canary_deployment(5));
    let stable = reconcile::template_hash(&s.deployments[0]);
    change_template(&mut s, 'b');
    let canary = reconcile::template_hash(&s.deployments[0]);
    let status = |s: &Snapshot| s.deployments[0].status.canary.clone().unwrap();
    // Step 0: one canary pod (20% of 5), then 20% of the traffic.
    for i in 0..4 {
        canary_pass(&mut s, i);
    }
    assert_eq!(of_hash(&s, &canary).len(), 1);
    assert_eq!(status(&s).weight, 20);
    assert_eq!(status(&s).step, 1, "at the 30 s pause");
    let w = shares(&s);
    assert_eq!((w[&canary], w[&stable]), (20 * 1000, 80 * 1000), "{w:?}");
    // The pause holds until 30 s pass.
    canary_pass(&mut s, 5);
    assert_eq!(status(&s).step, 1);
    s.now = Some(s.now.unwrap() + Duration::from_secs(31));
    for i in 6..14 {
        canary_pass(&mut s, i);
    }
    assert_eq!(status(&s).weight, 60);
    assert_eq!(of_hash(&s, &canary).len(), 3, "60% of 5 rounded up");
    assert_eq!(
        of_hash(&s, &stable).len(),
        5,
        "the stable revision keeps every replica meanwhile"
    );
    // The last step waits for `rollout resume`: the controller pauses the deployment.
    assert_eq!(status(&s).phase, CanaryPhase::Paused);
    assert!(s.deployments[0].spec.paused);
    let w = shares(&s);
    assert_eq!((w[&canary], w[&stable]), (60 * 1000, 40 * 1000), "{w:?}");
    s.deployments[0].spec.paused = false;
    for i in 14..24 {
        canary_pass(&mut s, i);
    }
    assert_eq!(status(&s).phase, CanaryPhase::Promoted, "{:?}", status(&s));
    assert_eq!(of_hash(&s, &canary).len(), 5);
    assert!(of_hash(&s, &stable).is_empty());
    let w = shares(&s);
    assert_eq!(w.len(), 1);
    let cond = s.deployments[0]
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == PROGRESSING_CONDITION)
        .unwrap();
    assert_eq!(cond.reason, "NewReplicaSetAvailable");
}

#[test]
fn a_failing_canary_is_reverted_and_gets_no_more_traffic() {
    let mut s = running(canary_deployment(4));
    let stable = reconcile::template_hash(&s.deployments[0]);
    let stable_template = s.deployments[0].spec.template.clone();
    change_template(&mut s, 'b');
    let canary = reconcile::template_hash(&s.deployments[0]);
    for i in 0..4 {
        canary_pass(&mut s, i);
    }
    assert_eq!(s.deployments[0].status.canary.as_ref().unwrap().weight, 20);
    // Below minRequests nothing happens; above it, 10% errors > 5%.
    let canary_pod = of_hash(&s, &canary)[0].metadata.uid.clone().unwrap();
    s.pod_traffic.insert(
        canary_pod.clone(),
        PodTraffic {
            requests: 10,
            errors: 10,
        },
    );
    canary_pass(&mut s, 5);
    assert_eq!(
        s.deployments[0].status.canary.as_ref().unwrap().phase,
        CanaryPhase::Progressing
    );
    s.pod_traffic.insert(
        canary_pod,
        PodTraffic {
            requests: 40,
            errors: 4,
        },
    );
    let ops = canary_pass(&mut s, 6);
    let c = s.deployments[0].status.canary.clone().unwrap();
    assert_eq!(c.phase, CanaryPhase::Reverted);
    assert!(c.message.contains("4 of 40"), "{}", c.message);
    assert_eq!(
        s.deployments[0].spec.template, stable_template,
        "the template is the stable one again"
    );
    assert!(ops.iter().any(
        |o| matches!(o, Op::Apply { object: Object::Event(e), .. } if e.reason == reconcile::CANARY_REVERTED)
    ));
    // In the endpoints computed from this state the canary pod takes nothing.
    let w = shares(&s);
    assert_eq!(w.get(&canary).copied().unwrap_or(0), 0, "{w:?}");
    for i in 7..12 {
        canary_pass(&mut s, i);
    }
    assert!(of_hash(&s, &canary).is_empty(), "the canary's pods are gone");
    assert_eq!(of_hash(&s, &stable).len(), 4);
    assert_eq!(
        s.deployments[0].status.canary.as_ref().unwrap().phase,
        CanaryPhase::Reverted
    );
    let cond = s.deployments[0]
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == PROGRESSING_CONDITION)
        .unwrap();
    assert_eq!(cond.reason, "NewReplicaSetAvailable");
}

#[test]
fn pods_owned_directly_by_a_deployment_are_retired_by_its_first_replica_set() {
    let d = deployment(2, json!({}));
    let mut s = Snapshot {
        now: Some(SystemTime::now()),
        nodes: vec![node("n")],
        deployments: vec![d.clone()],
        ..Default::default()
    };
    for name in ["legacy-1", "legacy-2"] {
        let mut p: Pod = serde_json::from_value(json!({"apiVersion":"skiff.dev/v1",
            "metadata":{"name":name,"namespace":"default","uid":format!("u-{name}"),"labels":{"app":"web"},
                "ownerReferences":[{"kind":"Deployment","name":"web","uid":"d1","controller":true}]},
            "spec": d.spec.template.spec.clone()}))
        .unwrap();
        p.spec.node_name = Some("n".into());
        p.status.phase = skiff_api::PodPhase::Running;
        p.status.ready = true;
        s.pods.push(p);
    }
    for i in 0..30 {
        workload_pass(&mut s, &mut Counted(100 + i * 10));
        assert!(
            ready(&s) >= 2 || s.pods.iter().any(|p| !p.status.ready),
            "availability kept"
        );
        assert!(s.pods.len() <= 3);
        bind_all(&mut s);
        sim::all_ready(&mut s);
    }
    settle(&mut s, &mut Counted(900));
    assert!(s.pods.iter().all(|p| !p.metadata.name.starts_with("legacy")));
    assert_eq!(s.pods.len(), 2);
}

#[test]
fn a_config_change_rolls_only_the_deployments_that_ask_for_it() {
    let with_ref = |name: &str, uid: &str, roll: bool| {
        let mut d = deployment(2, json!({}));
        d.metadata.name = name.into();
        d.metadata.uid = Some(uid.into());
        d.spec.selector.match_labels.insert("app".into(), name.into());
        d.spec.template.metadata.labels.insert("app".into(), name.into());
        d.spec.template.spec.components[0].env = serde_json::from_value(json!([
            {"name":"GREETING","valueFrom":{"configMapKeyRef":{"name":"cfg","key":"greeting"}}}
        ]))
        .unwrap();
        d.spec.rollout_on_config_change = roll;
        d
    };
    let mut s = Snapshot {
        now: Some(SystemTime::now()),
        nodes: vec![node("n")],
        deployments: vec![with_ref("rolls", "d1", true), with_ref("stays", "d2", false)],
        ..Default::default()
    };
    let key = reconcile::config_key("default", skiff_api::Kind::ConfigMap, "cfg");
    s.config_hashes.insert(key.clone(), "first".into());
    settle_ready(&mut s);
    let revision = |s: &Snapshot, name: &str| {
        s.deployments
            .iter()
            .find(|d| d.metadata.name == name)
            .unwrap()
            .status
            .revision
    };
    assert_eq!((revision(&s, "rolls"), revision(&s, "stays")), (Some(1), Some(1)));
    // Same data again (a re-apply): nothing moves.
    settle_ready(&mut s);
    assert_eq!(revision(&s, "rolls"), Some(1));
    s.config_hashes.insert(key, "second".into());
    settle_ready(&mut s);
    assert_eq!((revision(&s, "rolls"), revision(&s, "stays")), (Some(2), Some(1)));
    let rs = s.replica_sets.iter().find(|r| r.revision() == 2).unwrap();
    assert_eq!(
        rs.metadata
            .annotations
            .get(skiff_api::CHANGE_CAUSE_ANNOTATION)
            .map(String::as_str),
        Some("configuration changed (configmap/cfg)")
    );
    assert!(
        rs.spec
            .template
            .metadata
            .annotations
            .contains_key(skiff_api::CONFIG_HASH_ANNOTATION)
    );
    let pods_of = |name: &str| {
        s.pods
            .iter()
            .filter(|p| p.metadata.name.starts_with(name))
            .count()
    };
    assert_eq!((pods_of("rolls-"), pods_of("stays-")), (2, 2));
}
