//! One-member groups: election, ordering, batching, limits, reads.

use std::time::Duration;

use skiff_raft::{RaftConfig, RaftError, Role, start};

use crate::support::{Counters, applies, config, counter, open_db};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn elects_itself_and_applies_proposals_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(&dir.path().join("skiff.redb"));
    let node = start(db.clone(), Counters::default(), config(dir.path(), 1, &[1])).unwrap();
    assert_eq!(node.wait_leader(WAIT).await, Ok(1));
    let mut outputs = Vec::new();
    for delta in 1..=5 {
        outputs.push(node.propose(format!("a={delta}").into_bytes()).await.unwrap());
    }
    assert_eq!(outputs, vec![Ok(1), Ok(3), Ok(6), Ok(10), Ok(15)]);
    // A bad proposal is applied as an error output, not a failure of the driver.
    assert!(node.propose(b"garbage".to_vec()).await.unwrap().is_err());
    let status = node.status();
    assert_eq!(
        (status.role, status.leader, status.voters.as_slice()),
        (Role::Leader, Some(1), &[1u64][..])
    );
    assert_eq!(status.applied, status.commit);
    assert_eq!(counter(&db, "a"), 15);
    assert_eq!(applies(&db), 6);
    node.shutdown();
    assert!(node.status().stopped);
    assert_eq!(node.propose(b"a=1".to_vec()).await, Err(RaftError::Stopped));
}

#[tokio::test]
async fn concurrent_proposals_share_entries() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(&dir.path().join("skiff.redb"));
    let node = start(db.clone(), Counters::default(), config(dir.path(), 1, &[1])).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    // Wait for the leader's own empty entry so the count below is only ours.
    node.read_index().await.unwrap();
    let before = node.status().last_index;
    const N: u64 = 1000;
    let calls = (0..N).map(|_| node.propose(b"n=1".to_vec()));
    let mut outputs: Vec<u64> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("proposal accepted").expect("proposal applied"))
        .collect();
    outputs.sort_unstable();
    assert_eq!(
        outputs,
        (1..=N).collect::<Vec<_>>(),
        "every caller got its own output"
    );
    let entries = node.status().last_index - before;
    assert!(entries < N, "{N} proposals took {entries} entries");
    assert!(
        entries <= N / 2,
        "{N} proposals took {entries} entries; expected batching"
    );
    assert_eq!(counter(&db, "n"), N);
    node.shutdown();
}

#[tokio::test]
async fn oversize_proposals_are_refused_before_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(&dir.path().join("skiff.redb"));
    let cfg = RaftConfig {
        max_proposal_bytes: 16,
        ..config(dir.path(), 1, &[1])
    };
    let node = start(db.clone(), Counters::default(), cfg).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    node.read_index().await.unwrap();
    let last = node.status().last_index;
    let big = format!("x={}", "1".repeat(15)).into_bytes();
    assert_eq!(
        node.propose(big).await,
        Err(RaftError::TooLarge { size: 17, max: 16 })
    );
    assert_eq!(node.status().last_index, last, "nothing reached the log");
    assert_eq!(
        node.propose(b"x=1111111111111".to_vec()).await.unwrap(),
        Ok(1_111_111_111_111)
    );
    node.shutdown();
}

#[tokio::test]
async fn read_index_waits_for_the_local_apply() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(&dir.path().join("skiff.redb"));
    let node = start(db.clone(), Counters::default(), config(dir.path(), 1, &[1])).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    node.propose(b"r=7".to_vec()).await.unwrap().unwrap();
    let index = node.read_index().await.unwrap();
    assert!(node.status().applied >= index);
    assert_eq!(counter(&db, "r"), 7);
    node.shutdown();
    assert_eq!(node.read_index().await, Err(RaftError::Stopped));
}

#[tokio::test]
async fn a_failing_state_machine_stops_the_driver_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(&dir.path().join("skiff.redb"));
    let cfg = RaftConfig {
        snapshot_every: 3,
        ..config(dir.path(), 1, &[1])
    };
    let sm = Counters::default();
    let fail = sm.fail_snapshot.clone();
    let node = start(db.clone(), sm, cfg).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    fail.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut failed = None;
    for _ in 0..10 {
        if let Err(e) = node.propose(b"f=1".to_vec()).await {
            failed = Some(e);
            break;
        }
    }
    assert!(
        failed.is_some(),
        "the driver kept going after the snapshot failed"
    );
    crate::support::eventually("status shows stopped", WAIT, || node.status().stopped).await;
    assert_eq!(node.propose(b"f=1".to_vec()).await, Err(RaftError::Stopped));
    assert_eq!(node.wait_leader(WAIT).await, Err(RaftError::Stopped));
    node.shutdown();
}

#[tokio::test]
async fn inbound_messages_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(&dir.path().join("skiff.redb"));
    let node = start(db, Counters::default(), config(dir.path(), 1, &[1])).unwrap();
    let too_big = vec![0u8; skiff_raft::MAX_MESSAGE_BYTES + 1];
    assert!(matches!(
        node.step_bytes(&too_big),
        Err(RaftError::InvalidMessage(_))
    ));
    assert!(matches!(
        node.step_bytes(&[0xff, 0xff, 0xff]),
        Err(RaftError::InvalidMessage(_))
    ));
    let mut msg = skiff_raft::eraftpb::Message {
        to: 2,
        from: 3,
        ..Default::default()
    };
    assert!(matches!(
        node.step(msg.clone()),
        Err(RaftError::InvalidMessage(_))
    ));
    msg.to = 1;
    msg.set_msg_type(skiff_raft::eraftpb::MessageType::MsgPropose);
    assert!(matches!(node.step(msg), Err(RaftError::InvalidMessage(_))));
    node.shutdown();
}

#[tokio::test]
async fn an_entry_this_member_cannot_apply_stops_it_without_advancing_the_applied_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skiff.redb");
    let db = open_db(&path);
    let node = start(db.clone(), Counters::default(), config(dir.path(), 1, &[1])).unwrap();
    node.wait_leader(WAIT).await.unwrap();
    assert_eq!(node.propose(b"a=1".to_vec()).await.unwrap(), Ok(1));
    let before = node.status().applied;
    // The state machine's storage fails on this entry: the member stops (fail-stop) instead of
    // recording the entry as applied while it holds nothing of it.
    let failed = node.propose(b"fatal".to_vec()).await;
    assert!(
        matches!(&failed, Err(RaftError::ApplyFailed { message, .. }) if message == "the disk failed"),
        "{failed:?}"
    );
    crate::support::eventually("the driver stops", WAIT, || node.status().stopped).await;
    assert_eq!(node.propose(b"a=1".to_vec()).await, Err(RaftError::Stopped));
    assert_eq!(applies(&db), 1, "nothing of the failed entry was committed");
    drop(node);
    drop(db);
    // The entry was not recorded as applied: a restart meets it again (and, the failure
    // lasting, stops again) instead of going on without it.
    let db = open_db(&path);
    let node = start(db.clone(), Counters::default(), config(dir.path(), 1, &[1])).unwrap();
    crate::support::eventually("the restarted driver stops on the same entry", WAIT, || {
        node.status().stopped
    })
    .await;
    assert_eq!(counter(&db, "a"), 1);
    assert_eq!(applies(&db), 1);
    let applied = node.status().applied;
    assert!(
        applied <= before,
        "applied {applied}: past the failed entry (it was {before} before it)"
    );
}
