//! The state machine against real redb files.
use std::sync::Arc;

use redb::ReadableDatabase;

use skiff_api::{Kind, LabelSelector, Object};
use skiff_state::{Command, Machine, Op, Reader, StateError};

struct Fixture {
    _dir: tempfile::TempDir,
    db: Arc<redb::Database>,
    machine: Machine,
    index: u64,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("state.redb")).unwrap());
        let mut machine = Machine::new(db.clone());
        let txn = db.begin_write().unwrap();
        machine.init(&txn).unwrap();
        txn.commit().unwrap();
        Fixture {
            _dir: dir,
            db,
            machine,
            index: 0,
        }
    }

    fn run(&mut self, ops: Vec<Op>) -> Result<Vec<Object>, StateError> {
        self.index += 1;
        let txn = self.db.begin_write().unwrap();
        let out = self.machine.apply(
            &txn,
            self.index,
            &Command::new("2026-01-01T00:00:00Z", ops).encode(),
        );
        txn.commit().unwrap();
        self.machine.committed();
        out
    }

    fn reader(&self) -> Reader {
        Reader::new(self.db.clone())
    }
}

fn obj(json: serde_json::Value) -> Object {
    serde_json::from_value(json).unwrap()
}

fn ns(name: &str) -> Object {
    obj(serde_json::json!({"kind":"Namespace","apiVersion":"skiff.dev/v1","metadata":{"name":name}}))
}

fn svc(name: &str, app: &str) -> Object {
    obj(serde_json::json!({"kind":"Service","apiVersion":"skiff.dev/v1",
        "metadata":{"name":name,"labels":{"app":app}},"spec":{"selector":{"app":app}}}))
}

fn create(o: Object, uid: &str) -> Op {
    Op::Create {
        object: o,
        uid: uid.into(),
    }
}

#[test]
fn revisions_count_every_change_and_objects_carry_theirs() {
    let mut f = Fixture::new();
    f.run(vec![create(ns("default"), "n1")]).unwrap();
    let out = f
        .run(vec![create(svc("a", "a"), "s1"), create(svc("b", "b"), "s2")])
        .unwrap();
    assert_eq!(out[0].meta().resource_version, Some(2));
    assert_eq!(out[1].meta().resource_version, Some(3));
    assert_eq!(out[1].meta().namespace.as_deref(), Some("default"));
    assert_eq!(out[1].meta().uid.as_deref(), Some("s2"));
    assert_eq!(f.reader().revision().unwrap(), 3);
    let (rev, list) = f
        .reader()
        .list(
            Kind::Service,
            Some("default"),
            &"app=b".parse::<LabelSelector>().unwrap(),
        )
        .unwrap();
    assert_eq!((rev, list.len()), (3, 1));
}

#[test]
fn a_failing_op_leaves_nothing_behind() {
    let mut f = Fixture::new();
    f.run(vec![create(ns("default"), "n1")]).unwrap();
    f.run(vec![create(svc("a", "a"), "s1")]).unwrap();
    let err = f
        .run(vec![create(svc("b", "b"), "s2"), create(svc("a", "a"), "s3")])
        .unwrap_err();
    assert!(matches!(err, StateError::AlreadyExists { .. }), "{err}");
    assert!(matches!(
        f.reader().get(Kind::Service, Some("default"), "b"),
        Err(StateError::NotFound { .. })
    ));
    assert_eq!(f.reader().revision().unwrap(), 2);
}

#[test]
fn stale_resource_version_conflicts_and_noop_keeps_revision() {
    let mut f = Fixture::new();
    f.run(vec![create(ns("default"), "n1")]).unwrap();
    f.run(vec![create(svc("a", "a"), "s1")]).unwrap();
    // Same content again: no new revision, no event.
    let out = f
        .run(vec![Op::Apply {
            object: svc("a", "a"),
            uid: "x".into(),
        }])
        .unwrap();
    assert_eq!(out[0].meta().resource_version, Some(2));
    assert_eq!(f.reader().revision().unwrap(), 2);
    // A change bumps generation and revision.
    let mut changed = svc("a", "a");
    if let Object::Service(s) = &mut changed {
        s.spec.selector.insert("tier".into(), "web".into());
    }
    let out = f
        .run(vec![Op::Replace {
            object: changed.clone(),
        }])
        .unwrap();
    assert_eq!(out[0].meta().resource_version, Some(3));
    assert_eq!(out[0].meta().generation, Some(2));
    // A writer that read revision 2 conflicts.
    changed.meta_mut().resource_version = Some(2);
    let err = f.run(vec![Op::Replace { object: changed }]).unwrap_err();
    assert_eq!(
        err,
        StateError::Conflict {
            kind: "Service".into(),
            name: "a".into(),
            current: 3,
            given: 2
        }
    );
}

#[test]
fn namespaced_objects_need_their_namespace_and_go_with_it() {
    let mut f = Fixture::new();
    let err = f.run(vec![create(svc("a", "a"), "s1")]).unwrap_err();
    assert_eq!(
        err,
        StateError::NamespaceNotFound {
            namespace: "default".into()
        }
    );
    f.run(vec![
        create(ns("default"), "n1"),
        create(svc("a", "a"), "s1"),
        create(svc("b", "b"), "s2"),
    ])
    .unwrap();
    let mut rx = f.machine.event_sender().subscribe();
    f.run(vec![Op::Delete {
        kind: Kind::Namespace,
        namespace: None,
        name: "default".into(),
        uid: None,
        resource_version: None,
    }])
    .unwrap();
    let mut deleted = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        deleted.push((ev.revision, ev.event.object.describe()));
    }
    assert_eq!(
        deleted,
        [
            (4, "Service/default/a".to_string()),
            (5, "Service/default/b".to_string()),
            (6, "Namespace/default".to_string())
        ]
    );
    let events = f.reader().events_since(3).unwrap();
    assert_eq!(events.len(), 3);
    assert!(
        f.reader()
            .list(Kind::Service, None, &LabelSelector::default())
            .unwrap()
            .1
            .is_empty()
    );
}

#[test]
fn snapshot_restores_into_a_fresh_database() {
    let mut f = Fixture::new();
    f.run(vec![create(ns("default"), "n1"), create(svc("a", "a"), "s1")])
        .unwrap();
    let mut snap = Vec::new();
    f.machine
        .snapshot(&f.db.begin_read().unwrap(), &mut snap)
        .unwrap();
    let mut g = Fixture::new();
    let txn = g.db.begin_write().unwrap();
    g.machine.restore(&txn, &mut snap.as_slice()).unwrap();
    txn.commit().unwrap();
    assert_eq!(g.reader().revision().unwrap(), 2);
    assert_eq!(
        g.reader()
            .get(Kind::Service, Some("default"), "a")
            .unwrap()
            .meta()
            .uid
            .as_deref(),
        Some("s1")
    );
    assert_eq!(g.reader().events_since(0).unwrap().len(), 2);
}

#[test]
fn undecodable_and_future_commands_are_refused() {
    let mut f = Fixture::new();
    let txn = f.db.begin_write().unwrap();
    assert!(matches!(
        f.machine.apply(&txn, 1, b"garbage"),
        Err(StateError::Decode { .. })
    ));
    let mut c = Command::new("t", vec![]);
    c.v = 99;
    let err = f.machine.apply(&txn, 2, &c.encode()).unwrap_err();
    assert!(err.to_string().contains("upgrade this node"), "{err}");
}
