//! Placement throughput through the real scheduler and the real state machine (redb), without
//! Raft or HTTP: `N` ready nodes, `P` pending pods; each pass reads the state like the control
//! plane's scheduler loop does, places up to `B` pending pods (`skiff_controllers::schedule`, with their
//! `Scheduled` events) and commits the bindings in one state-machine command.
//!
//! ```sh
//! cargo run --release -p skiff-controllers --example placement -- NODES PODS BATCH
//! ```
//! Prints placements committed per second (scheduling + commit; and end to end including the
//! state reads). See docs/benchmarks.md.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use skiff_api::{ByteSize, Kind, LabelSelector, Node, Object, ObjectMeta, Pod};
use skiff_controllers::{RandomIds, Snapshot, schedule};
use skiff_state::{Command, Machine, Op, Reader};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (nodes, pods, batch) = (arg(1, 1000), arg(2, 100_000), arg(3, 1000));
    let dir = tempfile::tempdir()?;
    let db = Arc::new(redb::Database::create(dir.path().join("state.redb"))?);
    let mut machine = Machine::new(db.clone());
    let reader = Reader::new(db.clone());
    let mut index = 0u64;
    let mut commit = |machine: &mut Machine, ops: Vec<Op>| -> Result<(), Box<dyn std::error::Error>> {
        index += 1;
        let txn = db.begin_write()?;
        if index == 1 {
            machine.init(&txn)?;
        }
        let cmd = Command::new(
            humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            ops,
        );
        machine.apply(&txn, index, &cmd.encode())?;
        txn.commit()?;
        machine.committed();
        Ok(())
    };

    // The cluster: namespace, nodes (zones a–e), pending pods of 20 deployments-like groups.
    let ns: Object = serde_json::from_value(serde_json::json!({"kind": "Namespace",
        "apiVersion": "skiff.dev/v1", "metadata": {"name": "default"}}))?;
    commit(
        &mut machine,
        vec![Op::Create {
            object: ns,
            uid: "ns".into(),
        }],
    )?;
    for chunk in (0..nodes).collect::<Vec<_>>().chunks(1000) {
        let ops = chunk
            .iter()
            .map(|i| {
                let mut n = Node {
                    metadata: ObjectMeta::named(format!("node-{i:05}"), None),
                    ..Default::default()
                };
                n.metadata.labels.insert("zone".into(), format!("zone-{}", i % 5));
                n.status.ready = true;
                n.status.runtimes = vec!["wasm".into()];
                n.status.capacity.memory = ByteSize(64 << 30);
                n.status.capacity.pods = 1000;
                Op::Create {
                    object: Object::Node(n),
                    uid: format!("n{i}"),
                }
            })
            .collect();
        commit(&mut machine, ops)?;
    }
    for chunk in (0..pods).collect::<Vec<_>>().chunks(5000) {
        let ops = chunk
            .iter()
            .map(|i| -> Result<Op, serde_json::Error> {
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "apiVersion": "skiff.dev/v1",
                    "metadata": {"name": format!("pod-{i:06}"), "namespace": "default",
                                 "labels": {"app": format!("app-{}", i % 20)}},
                    "spec": {"components": [{"name": "web",
                        "wasm": {"digest": format!("sha256:{}", "c".repeat(64))},
                        "resources": {"memory": "16Mi"}}]}
                }))?;
                Ok(Op::Create {
                    object: Object::Pod(pod),
                    uid: format!("p{i}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        commit(&mut machine, ops)?;
    }
    eprintln!("{nodes} nodes and {pods} pending pods stored; placing {batch} per pass");

    let (mut placed, mut busy, start) = (0usize, Duration::ZERO, Instant::now());
    let mut pass = 0u64;
    loop {
        let node_list: Vec<Node> = reader
            .list(Kind::Node, None, &LabelSelector::default())?
            .1
            .into_iter()
            .filter_map(|o| match o {
                Object::Node(n) => Some(n),
                _ => None,
            })
            .collect();
        let (mut bound, mut pending) = (Vec::new(), Vec::new());
        for o in reader.list(Kind::Pod, None, &LabelSelector::default())?.1 {
            if let Object::Pod(p) = o {
                if p.spec.node_name.is_some() {
                    bound.push(p);
                } else if pending.len() < batch {
                    pending.push(p);
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        let t = Instant::now();
        let n = pending.len();
        let mut snapshot = Snapshot {
            now: Some(SystemTime::now()),
            nodes: node_list,
            ..Default::default()
        };
        snapshot.pods = bound;
        snapshot.pods.extend(pending);
        pass += 1;
        let ops = schedule(&snapshot, pass, &mut RandomIds);
        commit(&mut machine, ops)?;
        busy += t.elapsed();
        placed += n;
    }
    let total = start.elapsed();
    println!(
        "placements: {placed} pods on {nodes} nodes in {:.2} s scheduling+commit ({:.0}/s); {:.2} s end to end with state reads ({:.0}/s)",
        busy.as_secs_f64(),
        placed as f64 / busy.as_secs_f64(),
        total.as_secs_f64(),
        placed as f64 / total.as_secs_f64()
    );
    Ok(())
}
