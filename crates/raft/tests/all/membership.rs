//! Membership changes over the in-memory network: join as a learner, catch up by snapshot,
//! promote, remove, refusals, member meta, and bootstrapping from a backup.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redb::{Database, ReadableDatabase};
use skiff_raft::transport::MemNetwork;
use skiff_raft::{
    MembershipChange, RaftConfig, RaftError, RaftHandle, Role, StartOptions, StateMachine, start_with,
};

use crate::support::{Counters, config, counter, eventually, open_db};

const WAIT: Duration = Duration::from_secs(20);

type Handle = RaftHandle<Result<u64, String>>;

struct Node {
    handle: Handle,
    db: Arc<Database>,
    restores: Arc<AtomicUsize>,
}

/// Nodes in temporary files joined by one in-memory network.
struct Cluster {
    dir: tempfile::TempDir,
    net: MemNetwork,
    nodes: BTreeMap<u64, Node>,
}

impl Cluster {
    fn new() -> Self {
        Cluster {
            dir: tempfile::tempdir().unwrap(),
            net: MemNetwork::new(),
            nodes: BTreeMap::new(),
        }
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node{id}.redb"))
    }

    /// Starts (or restarts) node `id`; `voters` matter only for a new file.
    fn start(&mut self, id: u64, voters: &[u64], meta: &[u8]) {
        let cfg = RaftConfig {
            meta: meta.to_vec(),
            // Compact early so a joining node needs a snapshot with data in it.
            snapshot_every: 4,
            keep_entries: 0,
            ..config(self.dir.path(), id, voters)
        };
        self.start_with(cfg);
    }

    fn start_with(&mut self, cfg: RaftConfig) {
        let id = cfg.id;
        let db = open_db(&self.path(id));
        let options = StartOptions {
            transport: self.net.transport(id),
            ..StartOptions::default()
        };
        let sm = Counters::default();
        let restores = sm.restores.clone();
        let handle = start_with(db.clone(), sm, cfg, options).unwrap();
        self.net.register(id, handle.clone());
        self.nodes.insert(id, Node { handle, db, restores });
    }

    /// Stops node `id` as a crash would (its file stays).
    fn stop(&mut self, id: u64) {
        self.net.unregister(id);
        if let Some(node) = self.nodes.remove(&id) {
            node.handle.shutdown();
        }
    }

    fn node(&self, id: u64) -> &Handle {
        &self.nodes[&id].handle
    }

    async fn leader(&self) -> u64 {
        let mut found = None;
        eventually("a leader among the running nodes", WAIT, || {
            found = self
                .nodes
                .iter()
                .find(|(_, n)| n.handle.status().role == Role::Leader)
                .map(|(id, _)| *id);
            found.is_some()
        })
        .await;
        found.unwrap()
    }

    /// Waits until every running node applied what the leader has committed.
    async fn converge(&self) {
        let leader = self.leader().await;
        let commit = self.node(leader).status().commit;
        eventually("every running node applied the leader's commit", WAIT, || {
            self.nodes.values().all(|n| n.handle.status().applied >= commit)
        })
        .await;
    }

    async fn change(&self, change: MembershipChange) -> skiff_raft::Membership {
        let leader = self.leader().await;
        self.node(leader).change_membership(change).await.unwrap()
    }

    /// Waits until the leader reports `id` has replicated everything it has.
    async fn caught_up(&self, id: u64) {
        let leader = self.leader().await;
        eventually("the new member caught up", WAIT, || {
            let s = self.node(leader).status();
            s.progress.get(&id).is_some_and(|m| *m >= s.last_index)
        })
        .await;
    }
}

fn meta_of(pairs: &[(u64, &str)]) -> BTreeMap<u64, Vec<u8>> {
    pairs.iter().map(|(id, m)| (*id, m.as_bytes().to_vec())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_as_learners_get_promoted_survive_a_failure_and_leave() {
    let mut c = Cluster::new();
    c.start(1, &[1], b"one");
    c.node(1).wait_leader(WAIT).await.unwrap();
    for _ in 0..10 {
        c.node(1).propose(b"a=1".to_vec()).await.unwrap().unwrap();
    }
    eventually("the log was compacted", WAIT, || {
        c.node(1).status().first_index > 2
    })
    .await;

    // Node 2 starts on an empty file without voters: uninitialised, waiting for the leader.
    c.start(2, &[], b"");
    let s = c.node(2).status();
    assert!(s.voters.is_empty() && s.learners.is_empty(), "{s:?}");
    let m = c
        .change(MembershipChange::AddLearner {
            id: 2,
            meta: b"two".to_vec(),
        })
        .await;
    assert_eq!((m.voters, m.learners), (vec![1], vec![2]));
    c.caught_up(2).await;
    c.converge().await;
    assert_eq!(counter(&c.nodes[&2].db, "a"), 10, "the learner has the data");
    assert!(
        c.nodes[&2].restores.load(Ordering::Relaxed) >= 1,
        "the learner was initialised by a snapshot"
    );
    assert_eq!(c.node(2).status().role, Role::Follower);
    assert_eq!(c.node(2).status().members, meta_of(&[(1, "one"), (2, "two")]));

    let m = c.change(MembershipChange::Promote { id: 2 }).await;
    assert_eq!((m.voters, m.learners), (vec![1, 2], vec![]));
    c.start(3, &[], b"");
    c.change(MembershipChange::AddLearner {
        id: 3,
        meta: b"three".to_vec(),
    })
    .await;
    c.caught_up(3).await;
    let m = c.change(MembershipChange::Promote { id: 3 }).await;
    assert_eq!(m.voters, vec![1, 2, 3]);
    let all = meta_of(&[(1, "one"), (2, "two"), (3, "three")]);
    assert_eq!(m.meta, all);
    c.node(1).propose(b"a=1".to_vec()).await.unwrap().unwrap();
    c.converge().await;
    for id in [1, 2, 3] {
        let s = c.node(id).status();
        assert_eq!(
            (s.voters.as_slice(), &s.members),
            (&[1, 2, 3][..], &all),
            "node {id}"
        );
        assert!(!s.pending_membership_change);
        assert_eq!(counter(&c.nodes[&id].db, "a"), 11);
    }
    let leader = c.leader().await;
    let progress = c.node(leader).status().progress;
    assert_eq!(progress.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    let follower = [1, 2, 3].into_iter().find(|&i| i != leader).unwrap();
    assert!(c.node(follower).status().progress.is_empty());
    assert_eq!(
        c.node(follower)
            .change_membership(MembershipChange::Remove { id: leader })
            .await,
        Err(RaftError::NotLeader { leader: Some(leader) })
    );

    // The three-member group survives losing its leader, and member meta survives a restart.
    c.stop(leader);
    let next = c.leader().await;
    assert_ne!(next, leader);
    assert_eq!(c.node(next).propose(b"a=1".to_vec()).await.unwrap(), Ok(12));
    c.start(leader, &[], b"ignored on restart");
    c.converge().await;
    assert_eq!(c.node(leader).status().members, all);
    assert_eq!(counter(&c.nodes[&leader].db, "a"), 12);

    // A removed follower stops receiving the log.
    let leader = c.leader().await;
    let gone = [1, 2, 3].into_iter().find(|&i| i != leader).unwrap();
    let m = c.change(MembershipChange::Remove { id: gone }).await;
    assert!(!m.contains(gone) && m.voters.len() == 2, "{m:?}");
    let removal = c.node(leader).status().applied;
    for _ in 0..5 {
        c.node(leader).propose(b"a=1".to_vec()).await.unwrap().unwrap();
    }
    let stay = [1, 2, 3].into_iter().find(|&i| i != leader && i != gone).unwrap();
    let commit = c.node(leader).status().commit;
    eventually("the remaining voter applied the writes", WAIT, || {
        c.node(stay).status().applied >= commit
    })
    .await;
    assert!(
        c.node(gone).status().applied <= removal,
        "the removed node got nothing after its removal"
    );
    assert_eq!(counter(&c.nodes[&gone].db, "a"), 12);
    assert_eq!(c.node(stay).status().members.len(), 2);
    for id in c.nodes.keys().copied().collect::<Vec<_>>() {
        c.stop(id);
    }
}

#[tokio::test]
async fn unsafe_or_invalid_changes_are_refused() {
    let mut c = Cluster::new();
    // A long election timeout: the leader must not step down (check-quorum) while it waits for
    // a voter that never runs.
    c.start_with(RaftConfig {
        election_tick: 1000,
        ..config(c.dir.path(), 1, &[1])
    });
    let node = c.node(1).clone();
    node.wait_leader(WAIT).await.unwrap();
    let refused = |r: Result<skiff_raft::Membership, RaftError>, what: &str| match r {
        Err(RaftError::MembershipRefused(m)) => assert!(m.contains(what), "{m:?} lacks {what:?}"),
        other => panic!("expected a refusal mentioning {what:?}, got {other:?}"),
    };
    refused(
        node.change_membership(MembershipChange::Remove { id: 1 }).await,
        "last voter",
    );
    refused(
        node.change_membership(MembershipChange::AddLearner { id: 1, meta: vec![] })
            .await,
        "already a voter",
    );
    refused(
        node.change_membership(MembershipChange::Promote { id: 1 }).await,
        "not a learner",
    );
    refused(
        node.change_membership(MembershipChange::Remove { id: 9 }).await,
        "not a member",
    );
    // Node 2 never runs: once it is a voter, nothing more can commit, so the next change stays
    // pending and any further one is refused.
    node.change_membership(MembershipChange::AddLearner { id: 2, meta: vec![] })
        .await
        .unwrap();
    refused(
        node.change_membership(MembershipChange::AddLearner { id: 2, meta: vec![] })
            .await,
        "already a learner",
    );
    let m = node
        .change_membership(MembershipChange::Promote { id: 2 })
        .await
        .unwrap();
    assert_eq!(m.voters, vec![1, 2]);
    let stuck = tokio::spawn({
        let node = node.clone();
        async move {
            node.change_membership(MembershipChange::AddLearner { id: 3, meta: vec![] })
                .await
        }
    });
    eventually("the change is pending", WAIT, || {
        node.status().pending_membership_change
    })
    .await;
    refused(
        node.change_membership(MembershipChange::Remove { id: 2 }).await,
        "not applied yet",
    );
    c.stop(1);
    assert_eq!(stuck.await.unwrap(), Err(RaftError::Stopped));
}

#[tokio::test]
async fn the_leader_hands_over_instead_of_removing_itself_and_meta_can_change() {
    let mut c = Cluster::new();
    c.start(1, &[1], b"one");
    c.node(1).wait_leader(WAIT).await.unwrap();
    c.start(2, &[], b"");
    c.change(MembershipChange::AddLearner {
        id: 2,
        meta: b"two".to_vec(),
    })
    .await;
    c.caught_up(2).await;
    c.change(MembershipChange::Promote { id: 2 }).await;
    let m = c
        .change(MembershipChange::SetMeta {
            id: 1,
            meta: b"one, moved".to_vec(),
        })
        .await;
    assert_eq!(m.meta, meta_of(&[(1, "one, moved"), (2, "two")]));
    c.converge().await;
    assert_eq!(c.node(2).status().members, m.meta);
    let leader = c.leader().await;
    match c
        .node(leader)
        .change_membership(MembershipChange::Remove { id: leader })
        .await
    {
        Err(RaftError::MembershipRefused(m)) => assert!(m.contains("retry the removal there"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let other = if leader == 1 { 2 } else { 1 };
    eventually("leadership moved", WAIT, || {
        c.node(other).status().role == Role::Leader
    })
    .await;
    let m = c
        .node(other)
        .change_membership(MembershipChange::Remove { id: leader })
        .await
        .unwrap();
    assert_eq!((m.voters, m.learners), (vec![other], vec![]));
    assert_eq!(c.node(other).propose(b"z=1".to_vec()).await.unwrap(), Ok(1));
    for id in [1, 2] {
        c.stop(id);
    }
}

#[tokio::test]
async fn a_group_bootstraps_from_a_backup_of_the_machine() {
    let mut c = Cluster::new();
    c.start(1, &[1], b"");
    c.node(1).wait_leader(WAIT).await.unwrap();
    for _ in 0..7 {
        c.node(1).propose(b"b=3".to_vec()).await.unwrap().unwrap();
    }
    let backup = {
        let txn = c.nodes[&1].db.begin_read().unwrap();
        let mut out = Vec::new();
        Counters::default().snapshot(&txn, &mut out).unwrap();
        out
    };
    c.stop(1);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restored.redb");
    let options = StartOptions {
        bootstrap_snapshot: Some(backup.clone()),
        ..StartOptions::default()
    };
    let cfg = RaftConfig {
        meta: b"five".to_vec(),
        ..config(dir.path(), 5, &[5, 6, 7])
    };
    let db = open_db(&path);
    let node = start_with(db.clone(), Counters::default(), cfg.clone(), options.clone()).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    let s = node.status();
    assert_eq!((s.voters, s.members), (vec![5], meta_of(&[(5, "five")])));
    assert_eq!(counter(&db, "b"), 21);
    assert_eq!(node.propose(b"b=1".to_vec()).await.unwrap(), Ok(22));
    node.shutdown();
    drop(db);

    // On a file that already holds a group the backup is ignored.
    let db = open_db(&path);
    let node = start_with(db.clone(), Counters::default(), cfg, options).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    assert_eq!(node.propose(b"b=1".to_vec()).await.unwrap(), Ok(23));
    node.shutdown();

    // A backup the machine cannot restore stops the start with the machine's error.
    let db = open_db(&dir.path().join("corrupt.redb"));
    let options = StartOptions {
        bootstrap_snapshot: Some(b"c x not-a-number\n".to_vec()),
        ..StartOptions::default()
    };
    match start_with(db, Counters::default(), config(dir.path(), 1, &[1]), options) {
        Err(RaftError::StateMachine(m)) => assert!(m.contains("bootstrap snapshot"), "{m}"),
        other => panic!("expected a state machine error, got {other:?}"),
    }
}
