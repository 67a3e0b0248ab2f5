//! A toy state machine and helpers shared by the driver tests.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use skiff_raft::{RaftConfig, StateMachine};

/// Counters by name.
pub(crate) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("test_counters");
/// How many proposals were applied in total (to prove exactly-once).
pub(crate) const APPLIES: TableDefinition<&str, u64> = TableDefinition::new("test_applies");

/// A map of counters. A proposal `name=delta` adds `delta` to `name` and returns the new value;
/// anything else returns an error string (and changes nothing but the apply count).
#[derive(Default)]
pub(crate) struct Counters {
    /// How often `committed` was called.
    pub(crate) commits: Arc<AtomicUsize>,
    /// How often `restore` was called (a snapshot received from the leader).
    pub(crate) restores: Arc<AtomicUsize>,
    /// When set, `snapshot` fails (to test that the driver stops cleanly). Set it after start:
    /// bootstrapping a group snapshots the initial machine.
    pub(crate) fail_snapshot: Arc<AtomicBool>,
    /// Take snapshots on a thread of their own (through `exporter`), as the control plane does.
    pub(crate) background_snapshots: bool,
}

/// The counters' snapshot format: one `tag key value` line per row.
fn dump(fail: &AtomicBool, txn: &redb::ReadTransaction, out: &mut dyn Write) -> Result<(), String> {
    if fail.load(Ordering::Relaxed) {
        return Err("snapshot refused by the test".to_string());
    }
    for (table, tag) in [(COUNTERS, "c"), (APPLIES, "a")] {
        let t = txn.open_table(table).map_err(|e| e.to_string())?;
        for item in t.iter().map_err(|e| e.to_string())? {
            let (k, v) = item.map_err(|e| e.to_string())?;
            writeln!(out, "{tag} {} {}", k.value(), v.value()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn parse(p: &[u8]) -> Result<(&str, u64), String> {
    let text = std::str::from_utf8(p).map_err(|e| e.to_string())?;
    let (name, delta) = text
        .split_once('=')
        .ok_or_else(|| format!("no '=' in {text:?}"))?;
    Ok((
        name,
        delta.parse().map_err(|e| format!("bad delta {delta:?}: {e}"))?,
    ))
}

/// Counts one applied proposal and adds its delta (a refused proposal is an error output).
fn count(txn: &redb::WriteTransaction, proposal: &[u8]) -> Result<u64, String> {
    let mut applies = txn.open_table(APPLIES).map_err(|e| e.to_string())?;
    let n = applies
        .get("n")
        .map_err(|e| e.to_string())?
        .map_or(0, |v| v.value());
    applies.insert("n", n + 1).map_err(|e| e.to_string())?;
    let (name, delta) = parse(proposal)?;
    let mut t = txn.open_table(COUNTERS).map_err(|e| e.to_string())?;
    let v = t.get(name).map_err(|e| e.to_string())?.map_or(0, |v| v.value()) + delta;
    t.insert(name, v).map_err(|e| e.to_string())?;
    Ok(v)
}

impl StateMachine for Counters {
    type Output = Result<u64, String>;

    fn init(&mut self, txn: &redb::WriteTransaction) -> Result<(), String> {
        txn.open_table(COUNTERS).map_err(|e| e.to_string())?;
        txn.open_table(APPLIES).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn apply(
        &mut self,
        txn: &redb::WriteTransaction,
        _index: u64,
        proposal: &[u8],
    ) -> Result<Self::Output, skiff_raft::Fatal> {
        // Stands for a storage failure while applying: the member must stop.
        if proposal == b"fatal" {
            return Err(skiff_raft::Fatal("the disk failed".into()));
        }
        Ok(count(txn, proposal))
    }

    fn committed(&mut self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self, txn: &redb::ReadTransaction, out: &mut dyn Write) -> Result<(), String> {
        dump(&self.fail_snapshot, txn, out)
    }

    fn exporter(&self) -> Option<skiff_raft::Exporter> {
        let fail = self.fail_snapshot.clone();
        self.background_snapshots
            .then(|| -> skiff_raft::Exporter { Box::new(move |txn, out| dump(&fail, txn, out)) })
    }

    fn restore(&mut self, txn: &redb::WriteTransaction, data: &mut dyn Read) -> Result<(), String> {
        self.restores.fetch_add(1, Ordering::Relaxed);
        let mut text = String::new();
        data.read_to_string(&mut text).map_err(|e| e.to_string())?;
        let mut counters = txn.open_table(COUNTERS).map_err(|e| e.to_string())?;
        let mut applies = txn.open_table(APPLIES).map_err(|e| e.to_string())?;
        counters.retain(|_, _| false).map_err(|e| e.to_string())?;
        applies.retain(|_, _| false).map_err(|e| e.to_string())?;
        for line in text.lines() {
            let mut parts = line.split(' ');
            let (Some(tag), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("bad snapshot line {line:?}"));
            };
            let v: u64 = v.parse().map_err(|e| format!("bad value in {line:?}: {e}"))?;
            let t = if tag == "c" { &mut counters } else { &mut applies };
            t.insert(k, v).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Opens (or creates) the database file at `path`.
pub(crate) fn open_db(path: &Path) -> Arc<Database> {
    Arc::new(Database::create(path).expect("create redb file"))
}

/// Reads counter `name` straight from the file.
pub(crate) fn counter(db: &Database, name: &str) -> u64 {
    read(db, COUNTERS, name)
}

/// Reads how many proposals were applied, straight from the file.
pub(crate) fn applies(db: &Database) -> u64 {
    read(db, APPLIES, "n")
}

fn read(db: &Database, table: TableDefinition<&str, u64>, key: &str) -> u64 {
    let txn = db.begin_read().expect("begin read");
    let t = txn.open_table(table).expect("open table");
    t.get(key).expect("get").map_or(0, |v| v.value())
}

/// A fast-ticking configuration for node `id` in a group of `voters`, its snapshot files in
/// `dir/snapshots-<id>`.
pub(crate) fn config(dir: &Path, id: u64, voters: &[u64]) -> RaftConfig {
    RaftConfig {
        id,
        voters: voters.to_vec(),
        snapshot_dir: dir.join(format!("snapshots-{id}")),
        tick: Duration::from_millis(10),
        election_tick: 10,
        heartbeat_tick: 2,
        ..RaftConfig::default()
    }
}

/// Polls `cond` until it holds or `timeout` passes.
pub(crate) async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
