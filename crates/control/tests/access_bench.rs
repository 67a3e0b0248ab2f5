//! What access control costs on the API write path: the same control plane (one member, real
//! Raft on redb with its fsyncs) served twice on loopback — with authentication, authorization
//! and audit, and without — and the same apply written through both, alternating.
//!
//! Run by the test suite as a seconds-long smoke (it checks that every write succeeded through
//! both and that the load generator was not the limit, and prints the figures); `bench/access.sh`
//! runs it in release with longer rounds (`SKIFF_BENCH_SECONDS`, `SKIFF_BENCH_ROUNDS`) and
//! checks the goal: at most 10 % more than without.
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use skiff_control::{ControlConfig, ControlPlane};
use tokio::net::TcpListener;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Serves `router` on a loopback port; its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// One measured run: requests done, how long, sorted latencies (µs).
struct Run {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> u64 {
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(i).copied().unwrap_or(0)
    }

    fn merge(runs: Vec<Run>) -> Run {
        let mut all = Run {
            requests: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
        };
        for r in runs {
            all.requests += r.requests;
            all.elapsed += r.elapsed;
            all.latencies.extend(r.latencies);
        }
        all.latencies.sort_unstable();
        all
    }
}

/// `clients` keep-alive connections each sending requests back to back for `length`; a write
/// (`apply` true) is a one-object apply of ConfigMap `bench-<n mod 1000>` (an upsert), otherwise
/// `GET /healthz`. Every answer must be a success.
async fn load(url: &str, token: Option<&str>, clients: usize, length: Duration, apply: bool) -> Run {
    let start = Instant::now();
    let deadline = start + length;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .expect("client");
        let url = url.to_owned();
        let token = token.map(str::to_owned);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = c * 7919;
            while Instant::now() < deadline {
                n += 1;
                let t0 = Instant::now();
                let req = if apply {
                    let body = json!({"objects": [{"apiVersion": "skiff.dev/v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("bench-{}", n % 1000), "namespace": "default"},
                        "data": {"n": n.to_string()}}]});
                    http.post(format!("{url}/api/v1/apply")).json(&body)
                } else {
                    http.get(format!("{url}/healthz"))
                };
                let req = match &token {
                    Some(t) => req.bearer_auth(t),
                    None => req,
                };
                let resp = req.send().await.expect("request");
                let status = resp.status();
                let _ = resp.bytes().await;
                assert!(status.is_success(), "{url}: {status}");
                latencies.push(t0.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("client task"));
    }
    latencies.sort_unstable();
    Run {
        requests: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_control_costs_little_on_the_write_path() {
    let seconds = env_number("SKIFF_BENCH_SECONDS", 1);
    let rounds = env_number("SKIFF_BENCH_ROUNDS", 1) as usize;
    let enforce_goal = std::env::var("SKIFF_BENCH_GOAL").is_ok_and(|v| v == "1");
    let length = Duration::from_secs(seconds);

    let dir = tempfile::tempdir().expect("tempdir");
    let plane = ControlPlane::open(ControlConfig::new(dir.path()))
        .await
        .expect("plane");
    let guarded = serve(plane.router()).await;
    let bare = serve(plane.router_without_access_control_for_benchmarks()).await;
    // The costliest caller: an API token (looked up, hash checked) with a namespace-limited role,
    // so every apply is parsed and each object checked, and every write audited.
    let secret = "b".repeat(32);
    let token = json!({"kind": "ApiToken", "metadata": {"name": "bench1"},
        "spec": {"secretHash": hex::encode(Sha256::digest(secret.as_bytes())), "role": "edit",
                 "namespaces": ["default"]}});
    let r = reqwest::Client::new()
        .post(format!("{guarded}/api/v1/apitokens"))
        .bearer_auth(plane.admin_token())
        .json(&token)
        .send()
        .await
        .expect("create token");
    assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
    let token = format!("skt1.bench1.{secret}");

    println!(
        "access-control benchmark: {} alternating pairs of {seconds} s per case",
        rounds * 2
    );
    println!(
        "{:<10} {:>8} {:>12} {:>10} {:>10}",
        "clients", "access", "writes/s", "p50 µs", "p99 µs"
    );
    let mut ratios = Vec::new();
    for clients in [1usize, 16] {
        // Many short pairs in ABBA order: neither side always runs second (the state and the Raft
        // log grow as it runs), and the median pair is robust to a noisy second on a small VM.
        let (mut with, mut without, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds * 2 {
            let (a, b) = if round % 2 == 0 {
                let a = load(&bare, None, clients, length, true).await;
                (a, load(&guarded, Some(&token), clients, length, true).await)
            } else {
                let b = load(&guarded, Some(&token), clients, length, true).await;
                (load(&bare, None, clients, length, true).await, b)
            };
            pairs.push(if clients == 1 {
                b.percentile(0.5) as f64 / a.percentile(0.5).max(1) as f64
            } else {
                a.rate() / b.rate().max(f64::MIN_POSITIVE)
            });
            without.push(a);
            with.push(b);
        }
        let (with, without) = (Run::merge(with), Run::merge(without));
        for (name, r) in [("without", &without), ("with", &with)] {
            println!(
                "{clients:<10} {name:>8} {:>12.0} {:>10} {:>10}",
                r.rate(),
                r.percentile(0.5),
                r.percentile(0.99)
            );
        }
        pairs.sort_by(f64::total_cmp);
        ratios.push((clients, pairs[pairs.len() / 2], pairs));

        // The generator must be able to go much faster than what it measured.
        let ceiling = load(&bare, None, clients, length, false).await;
        println!(
            "{clients:<10} {:>8} {:>12.0}   (the load generator's own ceiling: GET /healthz)",
            "-",
            ceiling.rate()
        );
        assert!(
            ceiling.rate() >= 2.0 * without.rate(),
            "the load generator was the limit: {:.0} requests/s on /healthz vs {:.0} writes/s",
            ceiling.rate(),
            without.rate()
        );
    }
    for (clients, cost, pairs) in &ratios {
        let what = if *clients == 1 {
            "p50 latency"
        } else {
            "throughput"
        };
        let pairs: Vec<String> = pairs.iter().map(|p| format!("{p:.3}")).collect();
        println!(
            "{clients} client(s): with access control / without = {cost:.3} ({what}, median of {} pairs: {}); goal ≤ 1.10",
            pairs.len(),
            pairs.join(" ")
        );
        if enforce_goal {
            assert!(
                *cost <= 1.10,
                "access control costs {cost:.3}× at {clients} client(s)"
            );
        }
    }
    let audited = std::fs::read_to_string(dir.path().join("audit").join("audit.log")).unwrap_or_default();
    assert!(audited.lines().count() > 0, "the guarded writes were audited");
}
