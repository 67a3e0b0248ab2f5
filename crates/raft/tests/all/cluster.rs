//! Three in-process nodes over the in-memory transport.

use std::sync::atomic::Ordering;
use std::time::Duration;

use skiff_raft::transport::MemNetwork;
use skiff_raft::{RaftConfig, RaftError, RaftHandle, Role, StartOptions, start_with};

use crate::support::{Counters, config, counter, eventually, open_db};

const WAIT: Duration = Duration::from_secs(20);

type Node = RaftHandle<Result<u64, String>>;

fn leader_of(nodes: &[Node]) -> Option<usize> {
    nodes.iter().position(|n| n.status().role == Role::Leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_replicate_and_fail_over() {
    let dir = tempfile::tempdir().unwrap();
    let net = MemNetwork::new();
    let voters = [1, 2, 3];
    let mut dbs = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut restores = Vec::new();
    for id in voters {
        let db = open_db(&dir.path().join(format!("node{id}.redb")));
        // Snapshots every few entries so the lagging node below catches up through one.
        let cfg = RaftConfig {
            snapshot_every: 8,
            keep_entries: 2,
            ..config(dir.path(), id, &voters)
        };
        let options = StartOptions {
            transport: net.transport(id),
            ..StartOptions::default()
        };
        let sm = Counters {
            background_snapshots: true,
            ..Counters::default()
        };
        restores.push(sm.restores.clone());
        let node = start_with(db.clone(), sm, cfg, options).unwrap();
        net.register(id, node.clone());
        dbs.push(db);
        nodes.push(node);
    }
    let leader = nodes[0].wait_leader(WAIT).await.unwrap();
    eventually("one node is leader", WAIT, || leader_of(&nodes).is_some()).await;
    let l = leader_of(&nodes).unwrap();
    assert_eq!(nodes[l].status().id, leader);

    // Followers refuse proposals and name the leader.
    let f = (l + 1) % 3;
    eventually("follower knows the leader", WAIT, || {
        nodes[f].status().leader == Some(leader)
    })
    .await;
    assert_eq!(
        nodes[f].propose(b"a=1".to_vec()).await,
        Err(RaftError::NotLeader { leader: Some(leader) })
    );

    assert_eq!(nodes[l].propose(b"a=5".to_vec()).await.unwrap(), Ok(5));
    let commit = nodes[l].status().commit;
    eventually("every node applied the proposal", WAIT, || {
        nodes.iter().all(|n| n.status().applied >= commit)
    })
    .await;
    for db in &dbs {
        assert_eq!(counter(db, "a"), 5);
    }
    // A linearizable read through a follower.
    let index = nodes[f].read_index().await.unwrap();
    assert!(index >= commit && nodes[f].status().applied >= index);

    // Cut the leader off: the other two elect a new one and keep accepting writes.
    net.isolate(leader);
    let others: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    eventually("a new leader among the rest", WAIT, || {
        others
            .iter()
            .any(|&i| nodes[i].status().role == Role::Leader && nodes[i].status().id != leader)
    })
    .await;
    let nl = *others
        .iter()
        .find(|&&i| nodes[i].status().role == Role::Leader)
        .unwrap();
    for _ in 0..20 {
        nodes[nl].propose(b"a=1".to_vec()).await.unwrap().unwrap();
    }
    assert_eq!(counter(&dbs[nl], "a"), 25);

    // Heal: the old leader steps down and catches up (through a snapshot: its log fell behind
    // the compaction point).
    net.heal();
    let commit = nodes[nl].status().commit;
    eventually("the old leader caught up", WAIT, || {
        nodes[l].status().applied >= commit
    })
    .await;
    assert_eq!(counter(&dbs[l], "a"), 25);
    assert_ne!(nodes[l].status().role, Role::Leader);
    assert!(
        restores[l].load(Ordering::Relaxed) >= 1,
        "the old leader caught up through a snapshot"
    );
    assert!(nodes[l].status().snapshot_index > 0);
    for node in &nodes {
        node.shutdown();
    }
}
