//! The highly available control plane under faults: real `skiff server` processes, a steady
//! write/read load whose history is checked for linearizability, kill -9, SIGSTOP, restarts.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::lincheck::{self, Op, OpKind};

const KEYS: usize = 4;

fn key(i: usize) -> String {
    format!("lin-{i}")
}

/// A namespace whose label `v` is the register's value.
fn ns_body(name: &str, value: &str) -> Value {
    json!({"apiVersion": "skiff.dev/v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": {"v": value}}})
}

/// Creates namespace `name` (label `v` = `value`) through member `i`.
fn create_ns(c: &Cluster, i: usize, name: &str, value: &str) -> reqwest::Result<reqwest::blocking::Response> {
    c.http
        .post(format!("{}/api/v1/namespaces", c.url(i)))
        .bearer_auth(&c.token)
        .json(&ns_body(name, value))
        .timeout(Duration::from_secs(4))
        .send()
}

/// Runs `skiff server ARGS…` (with fresh API and peer ports) to its exit.
fn server_run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::harness::SKIFF)
        .arg("server")
        .args(["--api", &format!("127.0.0.1:{}", crate::harness::free_port())])
        .args([
            "--peer-listen",
            &format!("127.0.0.1:{}", crate::harness::free_port()),
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run skiff server")
}

/// Records operations from several client threads, each talking to the members in turn.
struct Load {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Op>>>,
    acked_writes: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
    start: Instant,
}

impl Load {
    fn start(c: &Cluster, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let history = Arc::new(Mutex::new(Vec::new()));
        let acked_writes = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let urls: Vec<String> = (0..c.members.len()).map(|i| c.url(i)).collect();
        let ca = c.ca();
        let mut threads = Vec::new();
        for t in 0..clients {
            let (stop, history, acked) = (stop.clone(), history.clone(), acked_writes.clone());
            let (urls, token, ca) = (urls.clone(), c.token.clone(), ca.clone());
            threads.push(std::thread::spawn(move || {
                let http = crate::harness::https_client_builder(&ca)
                    .timeout(Duration::from_secs(2))
                    .connect_timeout(Duration::from_millis(300))
                    .build()
                    .expect("client");
                let mut server = t % urls.len();
                let mut seq = 0u64;
                // Bounded: stops by itself even if the test forgets to.
                for _ in 0..200_000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    seq += 1;
                    let k = key((seq as usize * 7 + t) % KEYS);
                    let url = format!("{}/api/v1/namespaces/{k}", urls[server]);
                    let write = seq.is_multiple_of(2);
                    let invoke = start.elapsed().as_nanos() as u64;
                    let value = format!("c{t}-{seq}");
                    let resp = if write {
                        http.put(&url)
                            .bearer_auth(&token)
                            .json(&ns_body(&k, &value))
                            .send()
                    } else {
                        http.get(&url).bearer_auth(&token).send()
                    };
                    let complete = start.elapsed().as_nanos() as u64;
                    let op = match resp {
                        Ok(r) if r.status().is_success() => {
                            if write {
                                acked.fetch_add(1, Ordering::Relaxed);
                                Some(Op {
                                    key: k,
                                    invoke,
                                    complete: Some(complete),
                                    kind: OpKind::Write(value),
                                })
                            } else {
                                let v: Value = r.json().unwrap_or(Value::Null);
                                let read = v["metadata"]["labels"]["v"].as_str().map(str::to_owned);
                                Some(Op {
                                    key: k,
                                    invoke,
                                    complete: Some(complete),
                                    kind: OpKind::Read(read),
                                })
                            }
                        }
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body: Value = r.json().unwrap_or(Value::Null);
                            let certainly_not_applied = status == 503 && body["code"] == "NoLeader";
                            server = (server + 1) % urls.len();
                            // A write that may have happened stays, with no completion.
                            (write && !certainly_not_applied).then_some(Op {
                                key: k,
                                invoke,
                                complete: None,
                                kind: OpKind::Write(value),
                            })
                        }
                        Err(e) => {
                            server = (server + 1) % urls.len();
                            (write && !e.is_connect()).then_some(Op {
                                key: k,
                                invoke,
                                complete: None,
                                kind: OpKind::Write(value),
                            })
                        }
                    };
                    if let Some(op) = op {
                        history.lock().expect("history").push(op);
                    }
                }
            }));
        }
        Load {
            stop,
            history,
            acked_writes,
            threads,
            start,
        }
    }

    fn acked(&self) -> usize {
        self.acked_writes.load(Ordering::Relaxed)
    }

    /// Waits until `more` writes beyond the current count are acknowledged.
    fn wait_for_writes(&self, c: &Cluster, more: usize, what: &str) -> Duration {
        let target = self.acked() + more;
        let t0 = Instant::now();
        c.wait_until(what, Duration::from_secs(60), |_| self.acked() >= target);
        t0.elapsed()
    }

    fn finish(self) -> (Vec<Op>, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("client thread");
        }
        let h = std::mem::take(&mut *self.history.lock().expect("history"));
        (h, self.start.elapsed())
    }
}

fn create_keys(c: &Cluster) -> BTreeMap<String, Option<String>> {
    let mut initial = BTreeMap::new();
    for i in 0..KEYS {
        let r = create_ns(c, 0, &key(i), "init").expect("create key");
        assert!(
            r.status().is_success(),
            "create {}: {}",
            key(i),
            r.text().unwrap_or_default()
        );
        initial.insert(key(i), Some("init".to_owned()));
    }
    initial
}

/// Asserts that at no sample two members claim to lead in the same term.
fn assert_no_split_brain(c: &Cluster, among: &[usize]) {
    let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
    for &i in among {
        if let Some(v) = c.cluster_info(i)
            && v["raft"]["leader"] == v["raft"]["id"]
        {
            let term = v["raft"]["term"].as_u64().unwrap_or(0);
            let id = v["raft"]["id"].as_u64().unwrap_or(0);
            if let Some(other) = leaders.insert(term, id) {
                assert_eq!(other, id, "two leaders in term {term}\n{}", c.logs());
            }
        }
    }
}

fn check_history(c: &Cluster, reader: usize, history: &[Op], initial: &BTreeMap<String, Option<String>>) {
    let writes = history
        .iter()
        .filter(|o| matches!(o.kind, OpKind::Write(_)))
        .count();
    let unknown = history.iter().filter(|o| o.complete.is_none()).count();
    let bad = lincheck::check(history, initial);
    eprintln!(
        "linearizability: {} operations ({writes} writes, {unknown} with unknown outcome), {} violations",
        history.len(),
        bad.len()
    );
    assert!(bad.is_empty(), "not linearizable: {bad:?}\n{}", c.logs());
    // Every acknowledged write is in the final state or was overwritten by a later one: the final
    // linearizable read of each key must be a value that some write (or the initial value) put.
    for (k, init) in initial {
        let r = c
            .http
            .get(format!("{}/api/v1/namespaces/{k}", c.url(reader)))
            .bearer_auth(&c.token)
            .send()
            .expect("final read");
        assert!(r.status().is_success(), "final read of {k}: {}", r.status());
        let v: Value = r.json().expect("json");
        let final_value = v["metadata"]["labels"]["v"].as_str().map(str::to_owned);
        let mut with_final = history.to_vec();
        let t = u64::MAX - 1;
        with_final.push(Op {
            key: k.clone(),
            invoke: t - 1,
            complete: Some(t),
            kind: OpKind::Read(final_value),
        });
        let one: BTreeMap<String, Option<String>> = [(k.clone(), init.clone())].into();
        let own: Vec<Op> = with_final.into_iter().filter(|o| &o.key == k).collect();
        assert!(
            lincheck::check(&own, &one).is_empty(),
            "final value of {k} loses an acknowledged write"
        );
    }
}

/// Whether every member in `among` follows the same leader (never two leaders in one term).
fn one_leader(c: &Cluster, among: &[usize]) -> bool {
    assert_no_split_brain(c, among);
    let leaders: Vec<Option<u64>> = among
        .iter()
        .map(|&i| c.cluster_info(i).and_then(|v| v["raft"]["leader"].as_u64()))
        .collect();
    leaders.iter().all(|l| l.is_some() && *l == leaders[0])
}

/// Waits until every member in `among` has applied the same revision.
fn wait_converged(c: &Cluster, among: &[usize]) {
    c.wait_until(
        "all members converge on one revision",
        Duration::from_secs(60),
        |c| {
            let revs: Vec<Option<u64>> = among
                .iter()
                .map(|&i| c.cluster_info(i).and_then(|v| v["revision"].as_u64()))
                .collect();
            revs.iter().all(Option::is_some) && revs.windows(2).all(|w| w[0] == w[1])
        },
    );
}

#[test]
fn three_members_survive_kill_and_pause_of_the_leader_linearizably() {
    let mut c = Cluster::start(3, &[]);
    let initial = create_keys(&c);
    let all = [0, 1, 2];
    let load = Load::start(&c, 3);
    load.wait_for_writes(&c, 50, "writes flow");

    // kill -9 the leader under load: a new leader, writes resume.
    let old = c.leader_among(&all).expect("a leader");
    c.kill(old);
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != old).collect();
    c.wait_until("a new leader among the survivors", Duration::from_secs(30), |c| {
        c.leader_among(&rest).is_some()
    });
    let resumed = load.wait_for_writes(&c, 20, "writes resume after the leader was killed");
    eprintln!("writes resumed {resumed:?} after a new leader was seen");
    c.spawn(old);
    wait_converged(&c, &all);

    // SIGSTOP the leader, then resume it: a new leader meanwhile, never two in one term.
    let paused = c.leader_among(&all).expect("a leader");
    c.signal(paused, "STOP");
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != paused).collect();
    c.wait_until(
        "a new leader while the old one is paused",
        Duration::from_secs(30),
        |c| {
            assert_no_split_brain(c, &rest);
            c.leader_among(&rest).is_some()
        },
    );
    load.wait_for_writes(&c, 20, "writes continue while the old leader is paused");
    c.signal(paused, "CONT");
    c.wait_until(
        "the resumed node follows the new leader",
        Duration::from_secs(30),
        |c| one_leader(c, &all),
    );
    load.wait_for_writes(&c, 20, "writes after the paused leader is back");
    let (history, ran) = load.finish();
    eprintln!("load ran {ran:?}");
    wait_converged(&c, &all);
    check_history(&c, 0, &history, &initial);
}

#[test]
fn five_members_survive_two_failures() {
    let mut c = Cluster::start(5, &[]);
    let initial = create_keys(&c);
    let all = [0, 1, 2, 3, 4];
    let load = Load::start(&c, 3);
    load.wait_for_writes(&c, 30, "writes flow");
    let leader = c.leader_among(&all).expect("a leader");
    let other = (leader + 1) % 5;
    c.kill(leader);
    c.kill(other);
    let rest: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| i != leader && i != other)
        .collect();
    c.wait_until("a leader among the three left", Duration::from_secs(30), |c| {
        c.leader_among(&rest).is_some()
    });
    load.wait_for_writes(&c, 30, "writes continue with two of five members down");
    let (history, _) = load.finish();
    wait_converged(&c, &rest);
    check_history(&c, rest[0], &history, &initial);
}

#[test]
fn a_member_restarted_after_compaction_catches_up_by_snapshot() {
    let mut c = Cluster::start(3, &["--raft-snapshot-every", "50"]);
    let all = [0, 1, 2];
    let leader = c.leader_among(&all).expect("leader");
    let lagging = (leader + 1) % 3;
    c.kill(lagging);
    for i in 0..150 {
        let r = create_ns(&c, leader, &format!("bulk-{i}"), "x").expect("write");
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    }
    c.wait_until("the leader compacted its log", Duration::from_secs(30), |c| {
        c.cluster_info(leader)
            .is_some_and(|v| v["raft"]["firstIndex"].as_u64().unwrap_or(0) > 50)
    });
    c.spawn(lagging);
    wait_converged(&c, &all);
    let v = c.cluster_info(lagging).expect("info");
    assert!(
        v["raft"]["snapshotIndex"].as_u64().unwrap_or(0) > 0,
        "the restarted member caught up without a snapshot: {v}"
    );
    let r = c
        .http
        .get(format!(
            "{}/api/v1/namespaces/bulk-149?consistency=stale",
            c.url(lagging)
        ))
        .bearer_auth(&c.token)
        .send()
        .expect("read");
    assert!(r.status().is_success(), "the lagging member lacks the data");
}

#[test]
fn membership_changes_and_refusals() {
    let mut c = Cluster::start(3, &[]);
    // Writes through a follower are forwarded to the leader.
    let all = [0, 1, 2];
    let leader = c.leader_among(&all).expect("leader");
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    // A watch served by the other follower sees the write.
    let rev = c.cluster_info(other).expect("info")["revision"]
        .as_u64()
        .expect("revision");
    let watch_url = format!(
        "{}/api/v1/namespaces?watch=true&resourceVersion={rev}",
        c.url(other)
    );
    let token = c.token.clone();
    let http = crate::harness::https_client(&c.ca(), Duration::from_secs(20));
    let watcher = std::thread::spawn(move || {
        use std::io::BufRead;
        let resp = http.get(&watch_url).bearer_auth(&token).send().expect("watch");
        for line in std::io::BufReader::new(resp).lines() {
            let Ok(line) = line else { return false };
            if line.contains("via-follower") {
                return true;
            }
        }
        false
    });
    let r = create_ns(&c, follower, "via-follower", "1").expect("write");
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
    assert!(
        watcher.join().expect("watcher"),
        "the follower's watch did not see the write"
    );

    let out = c.cli(&["member", "list"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for m in ["m0", "m1", "m2"] {
        assert!(text.contains(m), "member list lacks {m}:\n{text}");
    }
    assert_eq!(text.matches("voter").count(), 3, "{text}");

    // A wrong join token is refused with a clear error, and nothing changes.
    let bad_dir = c.tmp.path().join("intruder");
    let token = std::fs::read_to_string(c.members[0].dir.join("join.token")).expect("token");
    let (hash, _) = token.trim().split_once("::").expect("token format");
    let dir = bad_dir.to_str().expect("utf-8");
    let join = format!("127.0.0.1:{}", c.members[0].peer);
    let wrong = format!("{hash}::wrongsecret");
    let join_with = |token: &str| {
        server_run(&[
            "--dir",
            dir,
            "--name",
            "intruder",
            "--join",
            &join,
            "--join-token",
            token,
        ])
    };
    let out = join_with(&wrong);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("join refused"), "{err}");
    let out = join_with("K10garbage");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SKF1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.voters_seen_by(0), 3);

    // Remove a follower: two voters remain and still commit.
    let victim = (leader + 2) % 3;
    let name = c.members[victim].name.clone();
    let out = c.cli(&["member", "remove", &name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    c.kill(victim);
    c.wait_until("two voters", Duration::from_secs(30), |c| {
        c.voters_seen_by(leader) == 2
    });
    let r = create_ns(&c, leader, "after-remove", "1").expect("write");
    assert_eq!(r.status().as_u16(), 201);
    // Removing the leader itself: it hands leadership to the other voter, which removes it.
    let leader_name = c.members[leader].name.clone();
    let out = c.cli(&["member", "remove", &leader_name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let survivor = follower;
    c.wait_until("the survivor leads alone", Duration::from_secs(30), |c| {
        c.voters_seen_by(survivor) == 1 && c.leader_among(&[survivor]).is_some()
    });
    c.kill(leader);
    let r = create_ns(&c, survivor, "alone", "1").expect("write");
    assert_eq!(r.status().as_u16(), 201);
    // The last voter cannot be removed.
    let out = c.cli(&["member", "remove", &c.members[survivor].name.clone()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("last voter"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.cli(&["member", "remove", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no control member named"));
}

#[test]
fn backup_and_restore() {
    let c = Cluster::start(1, &[]);
    for i in 0..5 {
        let r = create_ns(&c, 0, &format!("kept-{i}"), "1").expect("write");
        assert!(r.status().is_success());
    }
    let file = c.tmp.path().join("backup.skiff");
    let out = c.cli(&["snapshot", "save", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved revision"));

    // A corrupt copy is refused with a clear error and leaves no state behind.
    let mut bytes = std::fs::read(&file).expect("read backup");
    let last = bytes.len() - 5;
    bytes[last] ^= 0x01;
    let corrupt = c.tmp.path().join("corrupt.skiff");
    std::fs::write(&corrupt, &bytes).expect("write");
    let bad_dir = c.tmp.path().join("from-corrupt");
    let out = server_run(&[
        "--dir",
        bad_dir.to_str().expect("utf-8"),
        "--restore",
        corrupt.to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("corrupt") && err.contains("sha256"), "{err}");
    assert!(
        !bad_dir.join("state.redb").exists(),
        "a refused restore left state behind"
    );

    // The good file starts a new cluster with the data.
    let restored_dir = c.tmp.path().join("restored");
    let api = crate::harness::free_port();
    let proc = crate::harness::Proc::spawn(
        &[
            "server",
            "--dir",
            restored_dir.to_str().expect("utf-8"),
            "--api",
            &format!("127.0.0.1:{api}"),
            "--peer-listen",
            &format!("127.0.0.1:{}", crate::harness::free_port()),
            "--restore",
            file.to_str().expect("utf-8"),
            "--plain-http",
        ],
        c.tmp.path().join("restored.log"),
    );
    crate::harness::poll(
        "the restored server serves the backed-up objects",
        Duration::from_secs(60),
        || {
            let Ok(token) = std::fs::read_to_string(restored_dir.join("admin.token")) else {
                return false;
            };
            let token = token.trim();
            c.http
                .get(format!("http://127.0.0.1:{api}/api/v1/namespaces/kept-4"))
                .bearer_auth(token)
                .send()
                .is_ok_and(|r| r.status().is_success())
        },
        || proc.output(),
    );
}

#[test]
fn a_partitioned_leader_loses_writes_to_the_majority_and_all_converge_after_healing() {
    let c = Cluster::start_hosts(3, &[]);
    let initial = create_keys(&c);
    let all = [0, 1, 2];
    let load = Load::start(&c, 3);
    load.wait_for_writes(&c, 30, "writes flow");
    let cut = c.leader_among(&all).expect("a leader");
    let net = c.net.as_ref().expect("hosts");
    net.isolate(cut);
    let majority: Vec<usize> = all.iter().copied().filter(|&i| i != cut).collect();
    c.wait_until("the majority elects a leader", Duration::from_secs(30), |c| {
        assert_no_split_brain(c, &all);
        c.leader_among(&majority).is_some()
    });
    load.wait_for_writes(&c, 30, "the majority takes writes");
    // The cut-off member refuses writes: it steps down (check-quorum) and knows no reachable leader.
    c.wait_until("the minority side refuses writes", Duration::from_secs(30), |c| {
        let r = create_ns(c, cut, "written-in-the-minority", "x");
        match r {
            Ok(r) => {
                assert_ne!(
                    r.status().as_u16(),
                    201,
                    "the minority accepted a write\n{}",
                    c.logs()
                );
                r.status().as_u16() == 503
            }
            Err(_) => false,
        }
    });
    // It still serves stale reads from its own state.
    let r = c
        .http
        .get(format!(
            "{}/api/v1/namespaces/{}?consistency=stale",
            c.url(cut),
            key(0)
        ))
        .bearer_auth(&c.token)
        .send()
        .expect("stale read");
    assert!(r.status().is_success());
    net.heal();
    c.wait_until(
        "all members follow one leader again",
        Duration::from_secs(30),
        |c| one_leader(c, &all),
    );
    load.wait_for_writes(&c, 20, "writes after healing");
    let (history, _) = load.finish();
    wait_converged(&c, &all);
    let r = c
        .http
        .get(format!(
            "{}/api/v1/namespaces/written-in-the-minority",
            c.url(cut)
        ))
        .bearer_auth(&c.token)
        .send()
        .expect("read");
    assert_eq!(
        r.status().as_u16(),
        404,
        "a write refused in the minority appeared after healing"
    );
    check_history(&c, majority[0], &history, &initial);
}

#[test]
fn artifacts_reach_every_member_and_a_member_that_lacks_one_fetches_it() {
    let mut c = Cluster::start(3, &[]);
    let all = [0, 1, 2];
    let leader = c.leader_among(&all).expect("leader");
    let follower = (leader + 1) % 3;
    let wasm = std::fs::read(crate::harness::repo_root().join("examples/hello-http/hello.wasm"))
        .expect("hello.wasm");
    // Uploaded through a follower: forwarded to the leader, which copies it to the others.
    let r = c
        .http
        .post(format!("{}/api/v1/artifacts", c.url(follower)))
        .bearer_auth(&c.token)
        .body(wasm.clone())
        .send()
        .expect("upload");
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
    let v: Value = r.json().expect("json");
    let digest = v["digest"].as_str().expect("digest").to_owned();
    let hex = digest.trim_start_matches("sha256:").to_owned();
    for m in &c.members {
        let file = m.dir.join("artifacts/sha256").join(&hex);
        assert!(file.exists(), "{} lacks the artifact", m.name);
    }
    // The leader dies; the others still serve it from their own store.
    c.kill(leader);
    let r = c
        .http
        .get(format!(
            "{}/api/v1/artifacts/{digest}?local=true",
            c.url(follower)
        ))
        .bearer_auth(&c.token)
        .send()
        .expect("download");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().expect("bytes").as_ref(), wasm.as_slice());
    // A member that lost its copy fetches it from another member, checks it and keeps it.
    let other = (leader + 2) % 3;
    let file = c.members[other].dir.join("artifacts/sha256").join(&hex);
    std::fs::remove_file(&file).expect("remove");
    let r = c
        .http
        .get(format!("{}/api/v1/artifacts/{digest}", c.url(other)))
        .bearer_auth(&c.token)
        .send()
        .expect("download");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().expect("bytes").as_ref(), wasm.as_slice());
    assert!(file.exists(), "the fetched artifact was not kept");
    // A copy whose content does not match its digest is refused.
    let wrong = "sha256:".to_owned() + &"0".repeat(64);
    let r = c
        .http
        .put(format!("{}/api/v1/artifacts/{wrong}", c.url(other)))
        .bearer_auth(&c.token)
        .body(wasm)
        .send()
        .expect("put");
    assert_eq!(r.status().as_u16(), 400);
}
