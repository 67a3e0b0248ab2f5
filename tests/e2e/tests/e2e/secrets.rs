//! Secrets across a real three-member cluster (issue 5, item 4): members joined later got the
//! cluster secrets key at join (they open values the leader sealed), and after a Raft snapshot no
//! file of any member's state dir and no process log holds the plaintext.
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::Cluster;

fn files(dir: &Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn joined_members_open_secrets_and_no_member_stores_or_logs_the_plaintext() {
    let marker = format!("e2e-secret-{}-Kq9w", std::process::id());
    let mut c = Cluster::start(3, &["--raft-snapshot-every", "20"]);
    let all = [0, 1, 2];
    let leader = c.leader_among(&all).expect("leader");
    let secret = json!({"apiVersion": "skiff.dev/v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "default"}, "data": {"password": marker}});
    let r = c
        .http
        .post(format!("{}/api/v1/namespaces/default/secrets", c.url(leader)))
        .bearer_auth(&c.token)
        .json(&secret)
        .send()
        .expect("create");
    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    for i in 0..60 {
        let cm = json!({"apiVersion": "skiff.dev/v1", "kind": "ConfigMap",
            "metadata": {"name": format!("fill-{i}"), "namespace": "default"}, "data": {"i": "x"}});
        let r = c
            .http
            .post(format!("{}/api/v1/namespaces/default/configmaps", c.url(leader)))
            .bearer_auth(&c.token)
            .json(&cm)
            .send()
            .expect("write");
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    }
    c.wait_until(
        "every member took a raft snapshot",
        Duration::from_secs(30),
        |c| {
            all.iter().all(|&i| {
                c.cluster_info(i)
                    .is_some_and(|v| v["raft"]["snapshotIndex"].as_u64().unwrap_or(0) > 0)
            })
        },
    );
    for i in all {
        let url = format!("{}/api/v1/namespaces/default/secrets/db", c.url(i));
        let v: Value = c
            .http
            .get(url)
            .bearer_auth(&c.token)
            .send()
            .expect("read")
            .json()
            .expect("json");
        assert_eq!(v["data"]["password"], marker.as_str(), "member {i}: {v}");
    }
    let key = |i: usize| std::fs::read(c.members[i].dir.join("pki/secrets.key")).expect("secrets.key");
    assert_eq!(key(0), key(1), "a joined member holds the cluster key");
    assert_eq!(key(0), key(2), "a joined member holds the cluster key");
    for i in all {
        c.kill(i);
    }
    let mut everything = Vec::new();
    files(c.tmp.path(), &mut everything);
    assert!(everything.iter().any(|(p, _)| p.ends_with("state.redb")));
    assert!(
        everything
            .iter()
            .any(|(p, _)| p.extension().is_some_and(|e| e == "log"))
    );
    for (p, bytes) in &everything {
        assert!(!contains(bytes, &marker), "{} holds the plaintext", p.display());
    }
}
