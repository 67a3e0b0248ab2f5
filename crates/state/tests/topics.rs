//! Topics in the state machine against real redb files: publish, idempotency, subscriptions that
//! follow Functions, acks, retries, trimming, back-pressure, and export/restore.
use skiff_api::{CloudEvent, Object};
use skiff_state::{Op, Outcome, StateError};

mod common;
use common::{Fixture, obj, publish};

impl Fixture {
    fn publish(
        &mut self,
        topic: &str,
        id: &str,
        key: Option<&str>,
    ) -> Result<skiff_api::PublishResult, StateError> {
        let out = self.run(vec![publish(topic, id, key)])?;
        Ok(out.published[0].clone())
    }
}

fn function(name: &str, uid_topics: &[&str]) -> Object {
    let triggers: Vec<_> = uid_topics
        .iter()
        .map(|t| serde_json::json!({"event": {"topic": t}}))
        .collect();
    obj(
        serde_json::json!({"kind":"Function","metadata":{"name":name,"namespace":"default"},
        "spec":{"component":{"name":"f","wasm":{"digest":format!("sha256:{}", "a".repeat(64)),"world":"function"}},
        "triggers":triggers}}),
    )
}

fn ack(function: &str, topic: &str, cursor: u64, outcomes: Vec<Outcome>) -> Op {
    Op::Ack {
        namespace: "default".into(),
        topic: topic.into(),
        function: function.into(),
        cursor,
        outcomes,
    }
}

#[test]
fn publish_numbers_events_and_dedupes_by_key() {
    let mut f = Fixture::new();
    let a = f.publish("orders", "e1", Some("k1")).unwrap();
    let b = f.publish("orders", "e2", Some("k2")).unwrap();
    let again = f.publish("orders", "e1-retry", Some("k1")).unwrap();
    assert_eq!((a.sequence, b.sequence), (1, 2));
    assert!(!a.duplicate && !b.duplicate);
    assert!(again.duplicate, "same idempotency key: nothing stored");
    assert_eq!(again.sequence, 1);
    let topics = f.reader().topics(Some("default")).unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!((topics[0].published, topics[0].stored), (2, 2));
    let events = f.reader().topic_events("default", "orders", 1, 10).unwrap();
    let ids: Vec<&str> = events.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(ids, ["e1", "e2"]);

    // A day later the key is forgotten.
    f.now = "2026-01-02T00:00:01Z".into();
    let later = f.publish("orders", "e1-again", Some("k1")).unwrap();
    assert!(!later.duplicate);
    assert_eq!(later.sequence, 3);
}

#[test]
fn publish_checks_namespace_and_topic_name() {
    let mut f = Fixture::new();
    let err = f
        .run(vec![Op::Publish {
            namespace: "nope".into(),
            topic: "t".into(),
            event: CloudEvent {
                id: "x".into(),
                ..Default::default()
            },
            key: None,
        }])
        .unwrap_err();
    assert!(matches!(err, StateError::NamespaceNotFound { .. }), "{err}");
    let err = f.publish("Bad/Name", "x", None).unwrap_err();
    assert!(err.to_string().contains("topic name"), "{err}");
    assert!(
        f.reader().topics(None).unwrap().is_empty(),
        "a failed command stores nothing"
    );
}

#[test]
fn subscriptions_follow_functions_and_acks_trim() {
    let mut f = Fixture::new();
    f.publish("orders", "before", None).unwrap();
    f.run(vec![Op::Create {
        object: function("billing", &["orders"]),
        uid: "fn-1".into(),
    }])
    .unwrap();
    let subs = f.reader().subscriptions().unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].cursor, 2, "a new subscriber starts after the last event");

    for i in 0..3 {
        f.publish("orders", &format!("e{i}"), None).unwrap();
    }
    let t = &f.reader().topics(Some("default")).unwrap()[0];
    assert_eq!(t.backlog, 3);
    assert_eq!(t.subscribers[0].lag, 3);

    // 2 delivered, 3 failed once and is retried later, 4 delivered: cursor moves past all three,
    // 3 is kept for its retry.
    f.run(vec![ack(
        "billing",
        "orders",
        5,
        vec![
            Outcome::Delivered { seq: 2 },
            Outcome::Retry {
                seq: 3,
                attempts: 1,
                due_ms: 1,
            },
            Outcome::Delivered { seq: 4 },
        ],
    )])
    .unwrap();
    let t = &f.reader().topics(Some("default")).unwrap()[0];
    assert_eq!(
        (
            t.subscribers[0].lag,
            t.subscribers[0].retrying,
            t.subscribers[0].delivered
        ),
        (1, 1, 2)
    );
    let stored: Vec<u64> = f
        .reader()
        .topic_events("default", "orders", 0, 10)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(stored, [3, 4], "events before the lowest open one are trimmed");

    // The retry fails for good: dead-lettered in the same command as its publish to the DLQ.
    f.run(vec![
        publish("orders-dlq", "e1", Some("dlq:billing:orders:3")),
        ack("billing", "orders", 5, vec![Outcome::Dead { seq: 3 }]),
    ])
    .unwrap();
    let topics = f.reader().topics(Some("default")).unwrap();
    let orders = topics.iter().find(|t| t.name == "orders").unwrap();
    assert_eq!(
        (orders.backlog, orders.stored, orders.subscribers[0].dead_lettered),
        (0, 0, 1)
    );
    let dlq = topics.iter().find(|t| t.name == "orders-dlq").unwrap();
    assert_eq!(dlq.stored, 1, "a topic without subscribers keeps its events");

    // An old leader's duplicate ack changes nothing.
    f.run(vec![ack(
        "billing",
        "orders",
        3,
        vec![Outcome::Delivered { seq: 2 }],
    )])
    .unwrap();
    let orders = f.reader().topics(Some("default")).unwrap();
    let orders = orders.iter().find(|t| t.name == "orders").unwrap();
    assert_eq!(orders.subscribers[0].delivered, 2);

    // Deleting the function drops its subscription.
    f.run(vec![Op::Delete {
        kind: skiff_api::Kind::Function,
        namespace: Some("default".into()),
        name: "billing".into(),
        uid: None,
        resource_version: None,
    }])
    .unwrap();
    assert!(f.reader().subscriptions().unwrap().is_empty());
}

#[test]
fn changing_triggers_moves_subscriptions() {
    let mut f = Fixture::new();
    f.run(vec![Op::Create {
        object: function("w", &["a", "b"]),
        uid: "u".into(),
    }])
    .unwrap();
    let topics: Vec<String> = f
        .reader()
        .subscriptions()
        .unwrap()
        .into_iter()
        .map(|s| s.topic)
        .collect();
    assert_eq!(topics, ["a", "b"]);
    f.run(vec![Op::Apply {
        object: function("w", &["b", "c"]),
        uid: "ignored".into(),
    }])
    .unwrap();
    let topics: Vec<String> = f
        .reader()
        .subscriptions()
        .unwrap()
        .into_iter()
        .map(|s| s.topic)
        .collect();
    assert_eq!(topics, ["b", "c"]);
}

#[test]
fn export_and_restore_keep_topics() {
    let mut f = Fixture::new();
    f.run(vec![Op::Create {
        object: function("w", &["a"]),
        uid: "u".into(),
    }])
    .unwrap();
    f.publish("a", "e1", Some("k")).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&*f.db).unwrap();
    let mut data = Vec::new();
    skiff_state::export(&txn, &mut data).unwrap();
    drop(txn);

    let mut g = Fixture::new();
    let txn = g.db.begin_write().unwrap();
    g.machine.restore(&txn, &mut data.as_slice()).unwrap();
    txn.commit().unwrap();
    assert_eq!(g.reader().topics(None).unwrap(), f.reader().topics(None).unwrap());
    assert_eq!(
        g.reader().subscriptions().unwrap(),
        f.reader().subscriptions().unwrap()
    );
    assert!(
        g.publish("a", "e1", Some("k")).unwrap().duplicate,
        "idempotency keys survive a restore"
    );
}

#[test]
fn a_full_topic_refuses_publishes_instead_of_dropping() {
    let mut f = Fixture::new();
    f.run(vec![Op::Create {
        object: function("slow", &["t"]),
        uid: "u".into(),
    }])
    .unwrap();
    let ops: Vec<Op> = (0..skiff_state::MAX_BACKLOG)
        .map(|i| publish("t", &format!("e{i}"), None))
        .collect();
    f.run(ops).unwrap();
    let err = f.publish("t", "one-more", None).unwrap_err();
    assert!(matches!(err, StateError::TopicFull { .. }), "{err}");
    assert!(err.to_string().contains("slow down"), "{err}");
    let t = &f.reader().topics(None).unwrap()[0];
    assert_eq!(
        (t.published, t.stored, t.backlog),
        (
            skiff_state::MAX_BACKLOG,
            skiff_state::MAX_BACKLOG,
            skiff_state::MAX_BACKLOG
        )
    );
}
