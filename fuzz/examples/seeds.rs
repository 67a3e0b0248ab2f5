//! Writes the seed corpora under `fuzz/corpus/<target>/` from Skiff's own encoders: a few valid
//! inputs per target, so the fuzzer starts from the real formats instead of discovering them.
//!
//! ```text
//! cd fuzz && cargo +nightly run --example seeds
//! ```
use std::path::Path;
use std::sync::Arc;

use raft::eraftpb::{Entry, Message, MessageType, Snapshot};
use serde_json::json;
use skiff_api::Object;
use skiff_api::backup;
use skiff_peer::fuzzing::encode_peer_stream;
use skiff_plugin_protocol as proto;
use skiff_raft::snapshot::SnapshotDescriptor;
use skiff_state::{Command, Machine, Op, Reader};

const NOW: &str = "2026-01-01T00:00:00Z";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    let commands = commands();
    write(
        &corpus,
        "command_decode",
        commands.iter().map(Command::encode).enumerate(),
    );
    let exports = exports(&commands);
    write(
        &corpus,
        "backup_decode",
        exports
            .iter()
            .map(|(revision, export)| backup::encode(*revision, export, NOW))
            .enumerate(),
    );
    write(
        &corpus,
        "snapshot_decode",
        exports
            .into_iter()
            .map(|(_, export)| export)
            .chain(descriptors())
            .enumerate(),
    );
    write(&corpus, "peer_frames", peer().into_iter().enumerate());
    write(
        &corpus,
        "manifest_parse",
        manifests(&root.join("../examples")).into_iter().enumerate(),
    );
    write(&corpus, "plugin_protocol", plugin().into_iter().enumerate());
}

/// Replaces `corpus/<target>/seed-*` with `inputs`.
fn write(corpus: &Path, target: &str, inputs: impl Iterator<Item = (usize, Vec<u8>)>) {
    let dir = corpus.join(target);
    std::fs::create_dir_all(&dir).expect("creating the corpus directory");
    for entry in std::fs::read_dir(&dir).expect("listing the corpus directory") {
        let path = entry.expect("listing the corpus directory").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        {
            std::fs::remove_file(&path).expect("removing an old seed");
        }
    }
    for (i, bytes) in inputs {
        std::fs::write(dir.join(format!("seed-{i}")), bytes).expect("writing a seed");
    }
}

fn object(value: serde_json::Value) -> Object {
    serde_json::from_value(value).expect("a sample object")
}

/// One command of each op.
fn commands() -> Vec<Command> {
    let ns = object(json!({"kind": "Namespace", "apiVersion": "skiff.dev/v1", "metadata": {"name": "shop"}}));
    let svc = object(json!({"kind": "Service", "apiVersion": "skiff.dev/v1",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}}));
    let op = |v: serde_json::Value| -> Op { serde_json::from_value(v).expect("a sample op") };
    vec![
        Command::new(
            NOW,
            vec![Op::Create {
                object: ns,
                uid: "u-1".into(),
            }],
        ),
        Command::new(
            NOW,
            vec![
                Op::Apply {
                    object: svc.clone(),
                    uid: "u-2".into(),
                },
                Op::Replace { object: svc },
            ],
        ),
        Command::new(
            NOW,
            vec![
                Op::KvSet {
                    namespace: "shop".into(),
                    store: "carts".into(),
                    key: "a".into(),
                    value: vec![0, 159, 255],
                },
                Op::KvIncrement {
                    namespace: "shop".into(),
                    store: "carts".into(),
                    key: "n".into(),
                    delta: -3,
                },
                Op::KvDelete {
                    namespace: "shop".into(),
                    store: "carts".into(),
                    key: "a".into(),
                },
            ],
        ),
        Command::new(
            NOW,
            vec![
                op(
                    json!({"op": "publish", "namespace": "shop", "topic": "orders", "key": "k1",
                    "event": {"specversion": "1.0", "id": "e1", "source": "/shop", "type": "order.created",
                              "data": {"total": 12}, "traceparent": "00-1-2-01"}}),
                ),
                op(
                    json!({"op": "ack", "namespace": "shop", "topic": "orders", "function": "bill", "cursor": 1,
                    "outcomes": [{"outcome": "delivered", "seq": 0}]}),
                ),
            ],
        ),
        Command::new(
            NOW,
            vec![Op::Delete {
                kind: skiff_api::Kind::Namespace,
                namespace: None,
                name: "shop".into(),
                uid: Some("u-1".into()),
                resource_version: Some(1),
            }],
        ),
    ]
}

/// State exports (with their revisions) of an empty state and of the state after `commands`
/// (each applied as far as it goes): what snapshot files and backups hold.
fn exports(commands: &[Command]) -> Vec<(u64, Vec<u8>)> {
    let dir = std::env::temp_dir().join(format!("skiff-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    let db = Arc::new(redb::Database::create(dir.join("state.redb")).expect("creating a database"));
    let mut machine = Machine::new(db.clone());
    let txn = db.begin_write().expect("a write transaction");
    machine.init(&txn).expect("initializing the tables");
    txn.commit().expect("committing");
    let mut out = Vec::new();
    let snapshot = |out: &mut Vec<(u64, Vec<u8>)>| {
        out.push(Reader::new(db.clone()).export().expect("exporting the state"));
    };
    snapshot(&mut out);
    for (i, cmd) in commands[..commands.len() - 1].iter().enumerate() {
        let txn = db.begin_write().expect("a write transaction");
        // A command the state refuses still leaves a valid state.
        let _ = machine.apply(&txn, i as u64 + 1, &cmd.encode());
        txn.commit().expect("committing");
        machine.committed();
    }
    snapshot(&mut out);
    std::fs::remove_dir_all(&dir).expect("removing the scratch directory");
    out
}

/// Raft snapshot descriptors: a one-member group's and a three-member group's with meta.
fn descriptors() -> Vec<Vec<u8>> {
    let one = SnapshotDescriptor {
        members: [(1, Vec::new())].into(),
        size: 0,
        sha256: [0; 32],
    };
    let three = SnapshotDescriptor {
        members: (1..=3)
            .map(|id| (id, format!("{{\"name\":\"cp-{id}\"}}").into_bytes()))
            .collect(),
        size: 300 << 20,
        sha256: [0xab; 32],
    };
    vec![one.encode(), three.encode()]
}

/// Peer connections: a heartbeat, an append with entries, a snapshot, one message sent as chunks,
/// and join request and response payloads.
fn peer() -> Vec<Vec<u8>> {
    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    (heartbeat.from, heartbeat.to, heartbeat.term, heartbeat.commit) = (1, 2, 3, 10);
    let mut append = heartbeat.clone();
    append.set_msg_type(MessageType::MsgAppend);
    (append.log_term, append.index) = (3, 10);
    for (i, data) in [&b"{\"v\":1}"[..], b"", b"x"].into_iter().enumerate() {
        let mut e = Entry::default();
        (e.term, e.index, e.data) = (3, 11 + i as u64, data.to_vec().into());
        append.mut_entries().push(e);
    }
    let mut snap = heartbeat.clone();
    snap.set_msg_type(MessageType::MsgSnapshot);
    let mut s = Snapshot::default();
    s.data = br#"{"revision":7}"#.to_vec().into();
    s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    (s.mut_metadata().index, s.mut_metadata().term) = (10, 3);
    snap.set_snapshot(s);

    // The transport chunks only messages over 4 MiB; this splits a small one the same way.
    let one = encode_peer_stream(std::slice::from_ref(&append));
    let encoded = &one[5..];
    let mut chunked = Vec::new();
    for part in encoded.chunks(encoded.len() / 2 + 1) {
        chunked.push(2);
        chunked.extend_from_slice(&(8 + part.len() as u32).to_be_bytes());
        chunked.extend_from_slice(&(encoded.len() as u64).to_be_bytes());
        chunked.extend_from_slice(part);
    }

    let request = skiff_peer::JoinRequest {
        token_secret: "s3cret".into(),
        name: "cp-2".into(),
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n".into(),
        peer_addr: "10.0.0.2:7946".into(),
        api_url: "https://10.0.0.2:6443".into(),
    };
    let response = skiff_peer::JoinResponse {
        raft_id: 2,
        cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        ca_pem: "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n".into(),
        members: vec![skiff_peer::JoinMember {
            raft_id: 1,
            name: "cp-1".into(),
            peer_addr: "10.0.0.1:7946".into(),
            api_url: "https://10.0.0.1:6443".into(),
        }],
        handover: json!({"secrets": {"k": "v"}}),
    };
    vec![
        encode_peer_stream(&[heartbeat, append, snap]),
        chunked,
        serde_json::to_vec(&request).expect("serializing"),
        serde_json::to_vec(&json!({ "ok": response })).expect("serializing"),
        serde_json::to_vec(&json!({ "err": "the token expired" })).expect("serializing"),
    ]
}

/// The example manifests as written, and the hello example's objects as JSON with its local
/// artifact swapped for a digest (what `skiff apply` sends). The IoT example's components are
/// built from source, so only its text is a seed.
fn manifests(examples: &Path) -> Vec<Vec<u8>> {
    let hello = examples.join("hello-http/app.yaml");
    let mut out: Vec<Vec<u8>> = [&hello, &examples.join("iot/iot.yaml")]
        .into_iter()
        .map(|f| std::fs::read(f).expect("reading an example"))
        .collect();
    let docs = skiff_manifest::load_path(&hello).expect("the hello example loads");
    let objects: Vec<Object> = docs
        .into_iter()
        .map(|mut doc| {
            for a in &doc.artifacts {
                skiff_manifest::set_digest(
                    &mut doc.object,
                    &a.field_path,
                    format!("sha256:{}", "ab".repeat(32)),
                )
                .expect("swapping a path for a digest");
            }
            doc.object
        })
        .collect();
    out.push(serde_json::to_vec_pretty(&objects).expect("serializing"));
    out
}

/// One value of every request and answer.
fn plugin() -> Vec<Vec<u8>> {
    let spec = proto::ContainerSpec {
        id: "skiff-u-web".into(),
        image: "busybox".into(),
        command: Some(vec!["/bin/sh".into()]),
        args: Some(vec!["-c".into(), "true".into()]),
        env: vec![("PORT".into(), "30001".into())],
        working_dir: Some("/".into()),
        memory: Some(64 << 20),
        cpu_millis: Some(500),
        pids: Some(64),
        volumes: vec!["/tmp".into()],
        writable_root: false,
        port: Some(30001),
    };
    let exited = proto::ContainerState::Exited {
        code: 137,
        finished_at: NOW.into(),
    };
    let to = |v: &dyn erased::Json| v.json();
    vec![
        to(&spec),
        to(&proto::ImageRequest {
            image: None,
            layout: Some("/var/lib/img".into()),
            tag: Some("app:1".into()),
        }),
        to(&proto::StopRequest {
            grace_millis: Some(5000),
        }),
        to(&proto::Handshake {
            protocol: 1,
            name: "skiff-oci".into(),
            version: "0.1.0".into(),
            kinds: vec!["oci".into()],
        }),
        to(&proto::StateAnswer {
            id: "skiff-u-web".into(),
            state: proto::ContainerState::Running { pid: 4242 },
        }),
        to(&vec![proto::ContainerInfo { spec, state: exited }]),
        to(&proto::ErrorAnswer {
            code: proto::ErrorCode::ContainerConflict,
            message: "it runs".into(),
        }),
    ]
}

/// A little object-safe wrapper so one list can hold values of different types.
mod erased {
    /// A value that serializes to JSON.
    pub(crate) trait Json {
        fn json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Vec<u8> {
            serde_json::to_vec(self).expect("serializing")
        }
    }
}
