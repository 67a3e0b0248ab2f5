//! The state stream of snapshots and backups against real redb files: a full state round-trips
//! byte for byte, damage is refused before anything is committed, and version 1 exports (the JSON
//! document of older releases) still restore.
use skiff_api::{CloudEvent, Kind};
use skiff_state::{Op, check_export};

mod common;
use common::{Fixture, obj};

fn set(key: &str, value: &[u8]) -> Op {
    Op::KvSet {
        namespace: "default".into(),
        store: "s".into(),
        key: key.into(),
        value: value.to_vec(),
    }
}

/// A state with a row in every table: objects and their watch history, a topic with an event,
/// a subscription and an idempotency key, and key-value entries with binary values.
fn full() -> Fixture {
    let mut f = Fixture::new();
    let function = obj(
        serde_json::json!({"kind":"Function","metadata":{"name":"w","namespace":"default"},
        "spec":{"component":{"name":"f","wasm":{"digest":format!("sha256:{}", "a".repeat(64)),"world":"function"}},
        "triggers":[{"event": {"topic": "orders"}}]}}),
    );
    f.run(vec![Op::Create {
        object: function,
        uid: "u".into(),
    }])
    .unwrap();
    f.run(vec![Op::Publish {
        namespace: "default".into(),
        topic: "orders".into(),
        event: CloudEvent {
            specversion: "1.0".into(),
            id: "e1".into(),
            source: "/test".into(),
            type_: "test".into(),
            ..Default::default()
        },
        key: Some("k1".into()),
    }])
    .unwrap();
    f.run(vec![set("b", &[0, 255, 10]), set("a", b""), set("c", &[7; 1000])])
        .unwrap();
    f
}

fn export(f: &Fixture) -> Vec<u8> {
    let mut out = Vec::new();
    let txn = redb::ReadableDatabase::begin_read(&*f.db).unwrap();
    f.machine.snapshot(&txn, &mut out).unwrap();
    out
}

#[test]
fn a_full_state_round_trips_byte_for_byte() {
    let f = full();
    let data = export(&f);
    assert!(data.starts_with(b"SKIFF-STATE\x02"));
    let revision = f.reader().revision().unwrap();
    assert_eq!(check_export(&data).unwrap(), revision);

    let mut g = Fixture::new();
    let txn = g.db.begin_write().unwrap();
    g.machine.restore(&txn, &mut data.as_slice()).unwrap();
    txn.commit().unwrap();
    assert_eq!(export(&g), data, "a restored state exports the same stream");
    assert_eq!(g.reader().revision().unwrap(), revision);
    assert_eq!(
        g.reader().kv_get("default", "s", "b").unwrap(),
        Some(vec![0, 255, 10])
    );
    assert_eq!(
        g.reader().kv_stores(None).unwrap(),
        f.reader().kv_stores(None).unwrap()
    );
    assert_eq!(
        g.reader().subscriptions().unwrap(),
        f.reader().subscriptions().unwrap()
    );
    assert_eq!(
        g.reader().events_since(0).unwrap(),
        f.reader().events_since(0).unwrap()
    );
}

#[test]
fn a_damaged_stream_is_refused_and_nothing_is_written() {
    let data = export(&full());
    let mut g = Fixture::new();
    let before = export(&g);
    for (damaged, why) in [
        (data[..data.len() - 1].to_vec(), "cut short"),
        (data[..data.len() - 13].to_vec(), "end marker"),
        ([&data[..], b"x"].concat(), "follow the end"),
        (b"SKIFF-STATE\x09rest".to_vec(), "upgrade this member"),
        (b"garbage".to_vec(), "neither a state stream"),
    ] {
        let err = check_export(&damaged).unwrap_err().to_string();
        assert!(err.contains(why), "{why}: {err}");
        let txn = g.db.begin_write().unwrap();
        let err = g.machine.restore(&txn, &mut damaged.as_slice()).unwrap_err();
        assert!(err.contains(why), "{why}: {err}");
        drop(txn);
    }
    assert_eq!(
        export(&g),
        before,
        "a refused restore left the tables as they were"
    );
}

#[test]
fn a_version_1_export_still_restores() {
    let v1 = serde_json::json!({
        "revision": 5,
        "compacted": 0,
        "objects": [["Namespace//old", {"kind":"Namespace","apiVersion":"skiff.dev/v1",
            "metadata":{"name":"old","uid":"u1","resourceVersion":5}}]],
        "events": [],
        "keyvalue": [{"store": "old/s", "key": "k", "value": "AQID"}]
    });
    let data = serde_json::to_vec(&v1).unwrap();
    assert_eq!(check_export(&data).unwrap(), 5);
    let mut g = Fixture::new();
    let txn = g.db.begin_write().unwrap();
    g.machine.restore(&txn, &mut data.as_slice()).unwrap();
    txn.commit().unwrap();
    assert_eq!(g.reader().revision().unwrap(), 5);
    assert!(g.reader().get(Kind::Namespace, None, "old").is_ok());
    assert_eq!(g.reader().kv_get("old", "s", "k").unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(g.reader().kv_stores(None).unwrap()[0].keys, 1);
}
