//! Snapshots of any size between real `skiff server` processes: a member killed while 300 MiB of
//! key-value values are written, and the log compacted past it, catches up through one snapshot
//! of at least 250 MiB streamed to it in chunks, then the rest of the log.
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;

/// Values written while the member is down: 1 200 of the largest a key may hold (256 KiB).
const VALUES: usize = 1200;
/// The leader snapshots every this many entries: near the end of the writes (a few values share
/// an entry at most), when at least 1 000 values (250 MiB) are in the state.
const SNAPSHOT_EVERY: u64 = 1000;
const VALUE_BYTES: usize = 256 << 10;
/// Writers at once.
const WRITERS: usize = 4;

/// The value of key `i`: bytes no two keys share (a pseudo-random block, rotated by `i`),
/// cheap to make and to check.
fn value(i: usize) -> Vec<u8> {
    static BLOCK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let block = BLOCK.get_or_init(|| {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..VALUE_BYTES / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect()
    });
    let at = i * 8 % VALUE_BYTES;
    [&block[at..], &block[..at]].concat()
}

fn key_url(c: &Cluster, member: usize, i: usize) -> String {
    format!(
        "{}/api/v1/namespaces/default/keyvalue/bulk/keys/k-{i:05}",
        c.url(member)
    )
}

/// `field` of member `i`'s raft status.
fn raft(c: &Cluster, i: usize, field: &str) -> u64 {
    c.cluster_info(i)
        .and_then(|v| v["raft"][field].as_u64())
        .unwrap_or(0)
}

/// The snapshot files of member `i`: (name, bytes).
fn snapshot_files(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir.join("snapshots"))
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().into_owned(), len)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The highest resident set the process `pid` reached, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// `line` without terminal colour codes.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Every line of every member's log files (the cluster's `*.log`) that contains `needle`.
fn log_lines(c: &Cluster, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(c.tmp.path())
        .expect("the cluster's directory")
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.extend(text.lines().map(plain).filter(|l| l.contains(needle)));
        }
    }
    out
}

/// Resets the peak resident set of process `pid` (`VmHWM`) to its current size.
fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

#[test]
fn a_member_far_behind_catches_up_through_a_300_mib_snapshot() {
    let started = Instant::now();
    let every = SNAPSHOT_EVERY.to_string();
    let mut c = Cluster::start(3, &["--raft-snapshot-every", &every]);
    let all = [0, 1, 2];
    let leader = c.leader_among(&all).expect("a leader");
    let lagging = (leader + 1) % 3;
    c.kill(lagging);
    let behind = raft(&c, leader, "commit");
    eprintln!("cluster of 3 up in {:.1?}", started.elapsed());

    // 300 MiB of values through the leader, four writers at a time.
    let t0 = Instant::now();
    let http = crate::harness::https_client(&c.ca(), Duration::from_secs(60));
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (c, http) = (&c, &http);
            s.spawn(move || {
                for i in (w..VALUES).step_by(WRITERS) {
                    let r = http
                        .put(key_url(c, leader, i))
                        .bearer_auth(&c.token)
                        .body(value(i))
                        .send()
                        .expect("write a value");
                    assert!(r.status().is_success(), "write {i}: {}", r.status());
                }
            });
        }
    });
    eprintln!(
        "wrote {VALUES} values of {} KiB in {:.1?} (log index {})",
        VALUE_BYTES >> 10,
        t0.elapsed(),
        raft(&c, leader, "applied")
    );

    // The leader's snapshot is written and its log compacted past the stopped member. Should
    // the writes have shared entries more than usual (a loaded machine batches more), small
    // writes, one entry each, bring the log to the snapshot point.
    let t0 = Instant::now();
    let mut small = 0;
    let keep = SNAPSHOT_EVERY / 5;
    c.wait_until(
        "the leader compacted its log past the stopped member",
        Duration::from_secs(60),
        |c| {
            if raft(c, leader, "snapshotIndex") > behind + keep && raft(c, leader, "firstIndex") > behind + 1
            {
                return true;
            }
            // Up to 50 small writes a poll, one after another (each its own entry), until the
            // log reaches the snapshot point.
            let missing = (behind + SNAPSHOT_EVERY + 10).saturating_sub(raft(c, leader, "applied"));
            for _ in 0..missing.min(50) {
                small += 1;
                let url = format!(
                    "{}/api/v1/namespaces/default/keyvalue/small/keys/s-{small}",
                    c.url(leader)
                );
                let _ = http.put(url).bearer_auth(&c.token).body("x").send();
            }
            false
        },
    );
    let leader_files = snapshot_files(&c.members[leader].dir);
    let size = leader_files.iter().map(|(_, len)| *len).max().unwrap_or(0);
    eprintln!(
        "snapshot at index {} ({} MiB) ready {:.1?} after the writes ({small} small writes): \
         {leader_files:?}",
        raft(&c, leader, "snapshotIndex"),
        size >> 20,
        t0.elapsed()
    );
    assert!(size >= 250 << 20, "the snapshot is {size} bytes");

    // The member comes back: only a snapshot can bring it up.
    let pid = |c: &Cluster, i: usize| c.members[i].proc.as_ref().map_or(0, |p| p.pid());
    reset_peak_rss(pid(&c, leader));
    let leader_rss_before = peak_rss_mib(pid(&c, leader));
    let t0 = Instant::now();
    c.spawn(lagging);
    let commit = raft(&c, leader, "commit");
    c.wait_until("the member caught up", Duration::from_secs(60), |c| {
        raft(c, lagging, "applied") >= commit
    });
    let caught_up = t0.elapsed();
    assert!(
        raft(&c, lagging, "snapshotIndex") > behind + keep,
        "the member caught up without the snapshot"
    );

    // It holds every value: the store's counts, and sampled values byte for byte.
    let stores: Value = c
        .http
        .get(format!(
            "{}/api/v1/namespaces/default/keyvalue?consistency=stale",
            c.url(lagging)
        ))
        .bearer_auth(&c.token)
        .send()
        .expect("list stores")
        .json()
        .expect("stores");
    let bulk_store = stores
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "bulk"))
        .unwrap_or_else(|| panic!("no bulk store on the member: {stores}"));
    assert_eq!(bulk_store["keys"], VALUES as u64);
    assert_eq!(bulk_store["bytes"], (VALUES * VALUE_BYTES) as u64);
    for i in (0..VALUES).step_by(97).chain([VALUES - 1]) {
        let got = http
            .get(format!("{}?consistency=stale", key_url(&c, lagging, i)))
            .bearer_auth(&c.token)
            .send()
            .expect("read a value")
            .bytes()
            .expect("value bytes");
        assert!(
            got.as_ref() == value(i).as_slice(),
            "value {i} differs on the member"
        );
    }

    // Its snapshot directory holds the one installed file, nothing half-written.
    let files = snapshot_files(&c.members[lagging].dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].0.ends_with(".snap") && files[0].1 == size, "{files:?}");
    let streamed = log_lines(&c, "raft snapshot streamed to peer");
    let streamed = streamed.iter().find(|l| l.contains(&size.to_string()));
    assert!(
        streamed.is_some(),
        "the leader logged no transfer of {size} bytes"
    );
    eprintln!(
        "member caught up in {caught_up:.1?} (started, received {} MiB, installed, applied the \
         rest); streamed:{}; written:{}; peak RSS during the transfer: leader {} MiB (from {} \
         MiB), member {} MiB; test {:.1?}",
        size >> 20,
        streamed.map_or("", |l| l.rsplit("streamed to peer").next().unwrap_or(l)),
        log_lines(&c, "raft snapshot file written")
            .last()
            .map_or("", |l| l.rsplit("file written").next().unwrap_or(l)),
        peak_rss_mib(pid(&c, leader)),
        leader_rss_before,
        peak_rss_mib(pid(&c, lagging)),
        started.elapsed()
    );
}
