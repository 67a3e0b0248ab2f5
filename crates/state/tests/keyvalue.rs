//! Key-value stores in the state machine against real redb files: set, get, delete, increments,
//! limits, all-or-nothing commands, namespace deletion and export/restore.
use skiff_api::{Kind, MAX_KV_VALUE_BYTES};
use skiff_state::{Op, StateError};

mod common;
use common::{Fixture, obj};

fn set(store: &str, key: &str, value: &[u8]) -> Op {
    Op::KvSet {
        namespace: "default".into(),
        store: store.into(),
        key: key.into(),
        value: value.to_vec(),
    }
}

fn incr(store: &str, key: &str, delta: i64) -> Op {
    Op::KvIncrement {
        namespace: "default".into(),
        store: store.into(),
        key: key.into(),
        delta,
    }
}

#[test]
fn values_are_set_read_listed_and_deleted() {
    let mut f = Fixture::new();
    f.run(vec![
        set("readings", "b", b"2"),
        set("readings", "a", &[0, 255, 7]),
    ])
    .unwrap();
    let r = f.reader();
    assert_eq!(
        r.kv_get("default", "readings", "a").unwrap(),
        Some(vec![0, 255, 7])
    );
    assert_eq!(r.kv_get("default", "readings", "zz").unwrap(), None);
    assert_eq!(r.kv_get("default", "other", "a").unwrap(), None);
    assert_eq!(
        r.kv_keys("default", "readings", "", None, 10).unwrap().keys,
        ["a", "b"]
    );
    let stores = r.kv_stores(Some("default")).unwrap();
    assert_eq!((stores.len(), stores[0].keys, stores[0].bytes), (1, 2, 4));

    f.run(vec![set("readings", "a", b"x")]).unwrap();
    assert_eq!(
        f.reader().kv_stores(None).unwrap()[0].bytes,
        2,
        "an overwrite replaces the size"
    );
    f.run(vec![Op::KvDelete {
        namespace: "default".into(),
        store: "readings".into(),
        key: "a".into(),
    }])
    .unwrap();
    f.run(vec![Op::KvDelete {
        namespace: "default".into(),
        store: "readings".into(),
        key: "never".into(),
    }])
    .expect("deleting an absent key is not an error");
    assert_eq!(
        f.reader()
            .kv_keys("default", "readings", "", None, 10)
            .unwrap()
            .keys,
        ["b"]
    );
    f.run(vec![Op::KvDelete {
        namespace: "default".into(),
        store: "readings".into(),
        key: "b".into(),
    }])
    .unwrap();
    assert!(
        f.reader().kv_stores(None).unwrap().is_empty(),
        "an empty store is gone"
    );
}

#[test]
fn keys_page_by_prefix_in_byte_order() {
    let mut f = Fixture::new();
    let ops = (0..25)
        .map(|i| set("s", &format!("sensor-{i:02}/count"), b"1"))
        .chain([set("s", "other", b"1"), set("s", "sensor", b"1")])
        .collect();
    f.run(ops).unwrap();
    let r = f.reader();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = r
            .kv_keys("default", "s", "sensor-", after.as_deref(), 10)
            .unwrap();
        seen.extend(page.keys.clone());
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let want: Vec<String> = (0..25).map(|i| format!("sensor-{i:02}/count")).collect();
    assert_eq!(seen, want);
}

#[test]
fn increments_are_atomic_counters_inside_one_command_too() {
    let mut f = Fixture::new();
    let out = f
        .run(vec![incr("c", "n", 5), incr("c", "n", -2), incr("c", "m", 1)])
        .unwrap();
    assert_eq!(out.incremented, [5, 3, 1]);
    assert_eq!(
        f.reader().kv_get("default", "c", "n").unwrap(),
        Some(b"3".to_vec())
    );
    f.run(vec![set("c", "text", b"hello")]).unwrap();
    let err = f.run(vec![incr("c", "text", 1)]).unwrap_err();
    assert!(err.to_string().contains("not a decimal integer"), "{err}");
    f.run(vec![set("c", "big", i64::MAX.to_string().as_bytes())])
        .unwrap();
    let err = f.run(vec![incr("c", "big", 1)]).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");
}

#[test]
fn a_failing_op_writes_nothing_of_its_command() {
    let mut f = Fixture::new();
    let err = f.run(vec![set("s", "ok", b"1"), set("s", "", b"1")]).unwrap_err();
    assert!(err.to_string().contains("key is empty"), "{err}");
    let err = f
        .run(vec![
            set("s", "ok", b"1"),
            set("s", "big", &vec![0; MAX_KV_VALUE_BYTES + 1]),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("KiB"), "{err}");
    let err = f.run(vec![set("Bad_Store", "k", b"1")]).unwrap_err();
    assert!(err.to_string().contains("store name"), "{err}");
    let err = f
        .run(vec![Op::KvSet {
            namespace: "missing".into(),
            store: "s".into(),
            key: "k".into(),
            value: b"1".to_vec(),
        }])
        .unwrap_err();
    assert!(matches!(err, StateError::NamespaceNotFound { .. }), "{err}");
    assert_eq!(f.reader().kv_get("default", "s", "ok").unwrap(), None);
    assert!(f.reader().kv_stores(None).unwrap().is_empty());
}

#[test]
fn deleting_a_namespace_drops_its_stores_only() {
    let mut f = Fixture::new();
    f.run(vec![Op::Create {
        object: obj(serde_json::json!({"kind":"Namespace","metadata":{"name":"iot"}})),
        uid: "ns2".into(),
    }])
    .unwrap();
    f.run(vec![
        set("s", "k", b"1"),
        Op::KvSet {
            namespace: "iot".into(),
            store: "s".into(),
            key: "k".into(),
            value: b"2".to_vec(),
        },
    ])
    .unwrap();
    f.run(vec![Op::Delete {
        kind: Kind::Namespace,
        namespace: None,
        name: "iot".into(),
        uid: None,
        resource_version: None,
    }])
    .unwrap();
    let r = f.reader();
    assert_eq!(r.kv_get("iot", "s", "k").unwrap(), None);
    assert_eq!(r.kv_get("default", "s", "k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(r.kv_stores(None).unwrap().len(), 1);
}

#[test]
fn export_and_restore_keep_stores() {
    let mut f = Fixture::new();
    f.run(vec![set("s", "a", &[1, 2, 3]), incr("s", "n", 41)])
        .unwrap();
    let txn = redb::ReadableDatabase::begin_read(&*f.db).unwrap();
    let mut data = Vec::new();
    skiff_state::export(&txn, &mut data).unwrap();
    drop(txn);
    let mut g = Fixture::new();
    let txn = g.db.begin_write().unwrap();
    g.machine.restore(&txn, &mut data.as_slice()).unwrap();
    txn.commit().unwrap();
    assert_eq!(
        g.reader().kv_stores(None).unwrap(),
        f.reader().kv_stores(None).unwrap()
    );
    assert_eq!(
        g.reader().kv_get("default", "s", "a").unwrap(),
        Some(vec![1, 2, 3])
    );
    assert_eq!(g.run(vec![incr("s", "n", 1)]).unwrap().incremented, [42]);
}
