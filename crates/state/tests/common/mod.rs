//! The state machine over a real redb file in a temporary directory, for the state tests.
use std::sync::Arc;

use skiff_api::{CloudEvent, Object};
use skiff_state::{Applied, Command, Machine, Op, Reader, StateError};

/// A machine with namespace `default` created.
pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) db: Arc<redb::Database>,
    pub(crate) machine: Machine,
    index: u64,
    pub(crate) now: String,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("state.redb")).unwrap());
        let mut machine = Machine::new(db.clone());
        let txn = db.begin_write().unwrap();
        machine.init(&txn).unwrap();
        txn.commit().unwrap();
        let mut f = Fixture {
            _dir: dir,
            db,
            machine,
            index: 0,
            now: "2026-01-01T00:00:00Z".into(),
        };
        f.run(vec![Op::Create {
            object: obj(serde_json::json!({"kind":"Namespace","metadata":{"name":"default"}})),
            uid: "ns".into(),
        }])
        .unwrap();
        f
    }

    pub(crate) fn run(&mut self, ops: Vec<Op>) -> Result<Applied, StateError> {
        self.index += 1;
        let txn = self.db.begin_write().unwrap();
        let out = self
            .machine
            .apply_full(&txn, self.index, &Command::new(self.now.clone(), ops).encode());
        txn.commit().unwrap();
        self.machine.committed();
        out
    }

    pub(crate) fn reader(&self) -> Reader {
        Reader::new(self.db.clone())
    }
}

/// An object from its JSON.
pub(crate) fn obj(json: serde_json::Value) -> Object {
    serde_json::from_value(json).unwrap()
}

/// A publish of event `id` to `topic` in `default`, with idempotency `key`.
#[allow(dead_code, reason = "not every test binary publishes")]
pub(crate) fn publish(topic: &str, id: &str, key: Option<&str>) -> Op {
    Op::Publish {
        namespace: "default".into(),
        topic: topic.into(),
        event: CloudEvent {
            specversion: "1.0".into(),
            id: id.into(),
            source: "/test".into(),
            type_: "test".into(),
            data: Some(serde_json::json!({"id": id})),
            ..Default::default()
        },
        key: key.map(str::to_owned),
    }
}
