//! Resource quotas in the state machine against real redb files: every amount the state holds is
//! refused past its limit with an error naming the quota, only rises are refused, a command is
//! refused whole, and the usage the reader reports matches.
use skiff_api::{Object, QuotaResource};
use skiff_state::{Op, StateError};

mod common;
use common::{Fixture, obj, publish};

fn quota(hard: serde_json::Value) -> Op {
    Op::Apply {
        object: obj(serde_json::json!({"kind": "ResourceQuota",
            "metadata": {"name": "team", "namespace": "default"},
            "spec": {"hard": hard}})),
        uid: "q".into(),
    }
}

fn pod(name: &str, memory: &str) -> Op {
    Op::Create {
        object: obj(serde_json::json!({"kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"components": [{"name": "c",
                "wasm": {"digest": format!("sha256:{}", "a".repeat(64))},
                "resources": {"memory": memory}}]}})),
        uid: format!("uid-{name}"),
    }
}

fn config_map(name: &str) -> Op {
    Op::Create {
        object: obj(serde_json::json!({"kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v"}})),
        uid: format!("uid-{name}"),
    }
}

fn delete(kind: skiff_api::Kind, name: &str) -> Op {
    Op::Delete {
        kind,
        namespace: Some("default".into()),
        name: name.into(),
        uid: None,
        resource_version: None,
    }
}

fn exceeded(e: StateError) -> (String, String, String, String) {
    match e {
        StateError::QuotaExceeded(r) => (r.namespace, r.quota, r.resource, r.hard),
        other => panic!("expected QuotaExceeded, got {other}"),
    }
}

#[test]
fn pods_past_the_limit_are_refused_naming_the_quota() {
    let mut f = Fixture::new();
    f.run(vec![quota(serde_json::json!({"pods": 2}))]).unwrap();
    f.run(vec![pod("a", "16Mi"), pod("b", "16Mi")]).unwrap();
    let err = f.run(vec![pod("c", "16Mi")]).unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        exceeded(err),
        ("default".into(), "team".into(), "pods".into(), "2".into())
    );
    assert!(
        msg.contains("2 used of 2") && msg.contains("ResourceQuota \"team\""),
        "{msg}"
    );
    assert!(
        f.reader()
            .get(skiff_api::Kind::Pod, Some("default"), "c")
            .is_err()
    );
    // A pod that finished no longer counts.
    let Object::Pod(mut a) = f
        .reader()
        .get(skiff_api::Kind::Pod, Some("default"), "a")
        .unwrap()
    else {
        panic!()
    };
    a.status.phase = skiff_api::PodPhase::Succeeded;
    f.run(vec![Op::UpdateStatus {
        object: Object::Pod(a),
    }])
    .unwrap();
    f.run(vec![pod("c", "16Mi")]).unwrap();
}

#[test]
fn a_command_over_quota_is_refused_whole() {
    let mut f = Fixture::new();
    f.run(vec![quota(serde_json::json!({"objects": 3}))]).unwrap();
    // The quota itself is one object.
    let err = f
        .run(vec![config_map("a"), config_map("b"), config_map("c")])
        .unwrap_err();
    assert_eq!(exceeded(err).2, "objects");
    assert!(
        f.reader()
            .get(skiff_api::Kind::ConfigMap, Some("default"), "a")
            .is_err()
    );
    f.run(vec![config_map("a"), config_map("b")]).unwrap();
    // Events are the server's and are not counted.
    f.run(vec![Op::Create {
        object: obj(serde_json::json!({"kind": "Event",
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "a"}, "reason": "R", "message": "m"})),
        uid: "e1".into(),
    }])
    .unwrap();
}

#[test]
fn memory_requests_are_summed_and_only_a_rise_is_refused() {
    let mut f = Fixture::new();
    f.run(vec![pod("a", "64Mi"), pod("b", "64Mi")]).unwrap();
    // A quota below what is already used: nothing is taken away, but nothing more gets in.
    f.run(vec![quota(serde_json::json!({"requests.memory": "100Mi"}))])
        .unwrap();
    let err = f.run(vec![pod("c", "1Mi")]).unwrap_err();
    let (_, _, resource, hard) = exceeded(err);
    assert_eq!((resource.as_str(), hard.as_str()), ("requests.memory", "100Mi"));
    // Deleting always passes, even while over.
    f.run(vec![delete(skiff_api::Kind::Pod, "b")]).unwrap();
    f.run(vec![pod("c", "36Mi")]).unwrap();
    let err = f.run(vec![pod("d", "1Mi")]).unwrap_err();
    assert_eq!(exceeded(err).2, "requests.memory");
    let used = f.reader().quota_usage("default").unwrap();
    assert_eq!(used.get(QuotaResource::RequestsMemory), Some(100 << 20));
    assert_eq!(used.get(QuotaResource::Pods), Some(2));
    assert_eq!(used.get(QuotaResource::Objects), Some(3));
}

#[test]
fn key_value_keys_and_bytes_are_limited_per_namespace() {
    let mut f = Fixture::new();
    f.run(vec![quota(
        serde_json::json!({"keyvalue.keys": 3, "keyvalue.bytes": 100}),
    )])
    .unwrap();
    let set = |store: &str, key: &str, len: usize| Op::KvSet {
        namespace: "default".into(),
        store: store.into(),
        key: key.into(),
        value: vec![b'x'; len],
    };
    // Two stores count together.
    f.run(vec![set("s1", "a", 40), set("s2", "b", 40)]).unwrap();
    let err = f.run(vec![set("s2", "c", 30)]).unwrap_err();
    assert_eq!(exceeded(err).2, "keyvalue.bytes");
    f.run(vec![set("s2", "c", 20)]).unwrap();
    let err = f.run(vec![set("s1", "d", 0)]).unwrap_err();
    assert_eq!(exceeded(err).2, "keyvalue.keys");
    // Overwriting with a smaller value, and deleting, pass.
    f.run(vec![set("s1", "a", 10)]).unwrap();
    f.run(vec![Op::KvDelete {
        namespace: "default".into(),
        store: "s2".into(),
        key: "b".into(),
    }])
    .unwrap();
    f.run(vec![set("s1", "d", 5)]).unwrap();
    let used = f.reader().quota_usage("default").unwrap();
    assert_eq!(used.get(QuotaResource::KeyValueKeys), Some(3));
    assert_eq!(used.get(QuotaResource::KeyValueBytes), Some(35));
}

#[test]
fn topic_backlog_is_limited_across_the_namespace_topics() {
    let mut f = Fixture::new();
    let function = |name: &str, topic: &str| Op::Create {
        object: obj(serde_json::json!({"kind": "Function",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"component": {"name": "f", "wasm": {"digest": format!("sha256:{}", "a".repeat(64)), "world": "function"}},
                "triggers": [{"event": {"topic": topic}}]}})),
        uid: format!("uid-{name}"),
    };
    f.run(vec![function("f1", "t1"), function("f2", "t2")]).unwrap();
    f.run(vec![quota(serde_json::json!({"topics.backlog": 3}))])
        .unwrap();
    let publish = |topic: &str, id: &str| publish(topic, id, Some(id));
    f.run(vec![publish("t1", "1"), publish("t2", "2")]).unwrap();
    let err = f.run(vec![publish("t1", "3"), publish("t2", "4")]).unwrap_err();
    assert_eq!(exceeded(err).2, "topics.backlog");
    f.run(vec![publish("t1", "3")]).unwrap();
    // A repeat of a published key stores nothing and passes.
    f.run(vec![publish("t1", "3")]).unwrap();
    // A topic nobody subscribes to holds no backlog.
    f.run(vec![publish("nobody", "5")]).unwrap();
    let err = f.run(vec![publish("t2", "6")]).unwrap_err();
    assert_eq!(exceeded(err).2, "topics.backlog");
    assert_eq!(
        f.reader()
            .quota_usage("default")
            .unwrap()
            .get(QuotaResource::TopicsBacklog),
        Some(3)
    );
}

#[test]
fn another_namespace_is_not_limited_and_a_quota_stores_no_status() {
    let mut f = Fixture::new();
    f.run(vec![Op::Create {
        object: obj(serde_json::json!({"kind": "Namespace", "metadata": {"name": "free"}})),
        uid: "free".into(),
    }])
    .unwrap();
    let mut q = quota(serde_json::json!({"pods": 0}));
    if let Op::Apply {
        object: Object::ResourceQuota(r),
        ..
    } = &mut q
    {
        r.status = Some(Default::default());
    }
    f.run(vec![q]).unwrap();
    let Object::ResourceQuota(stored) = f
        .reader()
        .get(skiff_api::Kind::ResourceQuota, Some("default"), "team")
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(stored.status, None);
    assert!(f.run(vec![pod("a", "1Mi")]).is_err());
    let mut other = pod("a", "1Mi");
    if let Op::Create { object, .. } = &mut other {
        object.meta_mut().namespace = Some("free".into());
    }
    f.run(vec![other]).unwrap();
}
