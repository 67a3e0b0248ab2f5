//! A control plane of several `skiff server` processes, for the HA tests: on loopback, or each in
//! its own network namespace (a separate host that can be partitioned).
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Proc, free_port, poll};
use crate::netns::Net;

/// One control node.
pub(crate) struct Member {
    pub(crate) name: String,
    /// The address it listens on.
    pub(crate) host: String,
    /// Its network namespace, when it runs as a separate host.
    pub(crate) netns: Option<String>,
    pub(crate) api: u16,
    pub(crate) peer: u16,
    pub(crate) dir: PathBuf,
    pub(crate) proc: Option<Proc>,
    /// Extra `skiff server` flags.
    pub(crate) extra: Vec<String>,
}

/// Several control nodes forming one cluster.
pub(crate) struct Cluster {
    // Drop order: processes first, then the namespaces, then the files.
    pub(crate) members: Vec<Member>,
    pub(crate) net: Option<Net>,
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) http: reqwest::blocking::Client,
    pub(crate) token: String,
    spawned: usize,
}

impl Cluster {
    /// Starts `n` control nodes: the first initialises the cluster, the others join it; returns
    /// once every one is a voter.
    pub(crate) fn start(n: usize, extra: &[&str]) -> Cluster {
        Self::start_on(None, n, extra)
    }

    /// As [`Cluster::start`], each member a separate host in its own network namespace.
    pub(crate) fn start_hosts(n: usize, extra: &[&str]) -> Cluster {
        Self::start_on(Some(Net::create(n)), n, extra)
    }

    fn start_on(net: Option<Net>, n: usize, extra: &[&str]) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster {
            net,
            members: Vec::new(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
            token: String::new(),
            spawned: 0,
            tmp,
        };
        for i in 0..n {
            c.add_member(i, extra);
            if i == 0 {
                let path = c.members[0].dir.join("admin.token");
                c.wait_until("the admin token is written", Duration::from_secs(60), |_| {
                    std::fs::read_to_string(&path).is_ok_and(|t| !t.trim().is_empty())
                });
                c.token = std::fs::read_to_string(&path)
                    .expect("admin token")
                    .trim()
                    .to_owned();
                c.http = crate::harness::https_client(&c.ca(), Duration::from_secs(5));
                c.wait_until("the first member leads", Duration::from_secs(60), |c| {
                    c.cluster_info(0)
                        .is_some_and(|v| v["raft"]["leader"] == v["raft"]["id"])
                });
            }
            c.wait_until(&format!("{} voters", i + 1), Duration::from_secs(60), |c| {
                c.voters_seen_by(0) == i + 1
            });
        }
        c
    }

    fn add_member(&mut self, i: usize, extra: &[&str]) {
        let dir = self.tmp.path().join(format!("m{i}"));
        let (host, netns, api, peer) = match &self.net {
            Some(net) => (net.host(i), Some(net.ns(i)), 7070, 7443),
            None => ("127.0.0.1".to_owned(), None, free_port(), free_port()),
        };
        self.members.push(Member {
            name: format!("m{i}"),
            host,
            netns,
            api,
            peer,
            dir,
            proc: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        });
        self.spawn(i);
    }

    /// (Re)starts member `i` on its state dir (joining through member 0 on its first start).
    pub(crate) fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let mut args: Vec<String> = vec![
            "server".into(),
            "--dir".into(),
            m.dir.display().to_string(),
            "--name".into(),
            m.name.clone(),
            "--api".into(),
            format!("{}:{}", m.host, m.api),
            "--peer-listen".into(),
            format!("{}:{}", m.host, m.peer),
        ];
        if i > 0 && !m.dir.join("cluster.json").exists() {
            let token = std::fs::read_to_string(self.members[0].dir.join("join.token")).expect("join token");
            args.extend([
                "--join".into(),
                format!("{}:{}", self.members[0].host, self.members[0].peer),
                "--join-token".into(),
                token.trim().to_owned(),
            ]);
        }
        if self.net.is_none() {
            // On loopback the tests call the API in plain HTTP too; separate hosts use HTTPS.
            args.push("--plain-http".into());
        }
        args.extend(m.extra.iter().cloned());
        self.spawned += 1;
        let log = self.tmp.path().join(format!("{}.{}.log", m.name, self.spawned));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let netns = self.members[i].netns.clone();
        self.members[i].proc = Some(Proc::spawn_in(netns.as_deref(), &args, log));
    }

    /// The API URL of member `i`.
    pub(crate) fn url(&self, i: usize) -> String {
        let scheme = if self.net.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.members[i].host, self.members[i].api)
    }

    /// Every member's API URL, comma-separated (for `--server`).
    pub(crate) fn servers(&self) -> String {
        (0..self.members.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `GET /api/v1/cluster` of member `i`, if it answers.
    pub(crate) fn cluster_info(&self, i: usize) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/api/v1/cluster", self.url(i)))
            .bearer_auth(&self.token)
            .timeout(Duration::from_millis(500))
            .send()
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().ok()
    }

    /// How many voters member `i` knows of.
    pub(crate) fn voters_seen_by(&self, i: usize) -> usize {
        self.cluster_info(i)
            .and_then(|v| v["raft"]["voters"].as_array().map(Vec::len))
            .unwrap_or(0)
    }

    /// The index of the member that says it leads, among those in `among`.
    pub(crate) fn leader_among(&self, among: &[usize]) -> Option<usize> {
        among.iter().copied().find(|&i| {
            self.cluster_info(i)
                .is_some_and(|v| v["raft"]["leader"] == v["raft"]["id"] && !v["raft"]["id"].is_null())
        })
    }

    /// Kills member `i` with SIGKILL and waits for it to exit.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(p) = self.members[i].proc.take() {
            p.signal("KILL");
            drop(p);
        }
    }

    /// Sends a signal to member `i`'s process.
    pub(crate) fn signal(&self, i: usize, sig: &str) {
        self.members[i].proc.as_ref().expect("running").signal(sig);
    }

    /// Every log so far, for failure messages.
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        let mut entries: Vec<_> = std::fs::read_dir(self.tmp.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for p in entries {
            if p.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                out.push_str(&format!("--- {} (last lines) ---\n", p.display()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Polls `f` until true, or panics with every member's log.
    pub(crate) fn wait_until(&self, what: &str, limit: Duration, mut f: impl FnMut(&Cluster) -> bool) {
        poll(what, limit, || f(self), || self.logs());
    }

    /// The cluster CA (every member's is the same).
    pub(crate) fn ca(&self) -> PathBuf {
        self.members[0].dir.join("pki").join("ca.crt")
    }

    /// Runs the CLI against the whole cluster (every member as --server).
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(crate::harness::SKIFF)
            .args(args)
            .args(["--server", &self.servers(), "--token", &self.token])
            .arg("--ca")
            .arg(self.ca())
            .current_dir(self.tmp.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run skiff")
    }
}
