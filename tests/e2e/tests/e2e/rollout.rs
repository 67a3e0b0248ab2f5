//! Rollouts of the example app on `skiff up` under a steady client load through the gateway:
//! a rolling update and an undo drop no request and stay within maxSurge / maxUnavailable at every
//! pod change (watched, not sampled); a good canary is promoted step by step with the configured
//! traffic weights (measured from the answers); a failing canary is reverted and gets no request
//! afterwards.
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Skiff, repo_root};

/// The example app with `replicas`, a strategy (YAML under `strategy:`) and an environment.
fn manifest(dir: &Path, name: &str, replicas: u32, strategy: &str, env: &[(&str, &str)]) -> PathBuf {
    let wasm = repo_root().join("examples/hello-http/hello.wasm");
    let env: String = env
        .iter()
        .map(|(k, v)| format!("            - name: {k}\n              value: \"{v}\"\n"))
        .collect();
    let text = format!(
        "apiVersion: skiff.dev/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: hello
  strategy:
{strategy}
  template:
    metadata:
      labels:
        app: hello
    spec:
      components:
        - name: web
          wasm:
            path: {wasm}
          env:
{env}          resources:
            memory: 32Mi
---
apiVersion: skiff.dev/v1
kind: Service
metadata:
  name: hello
spec:
  selector:
    app: hello
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata:
  name: hello
spec:
  rules:
    - pathPrefix: /
      backends:
        - service: hello
",
        wasm = wasm.display()
    );
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path
}

/// Clients hammering `GET /` through the gateway until stopped, counting answers by greeting.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<Mutex<BTreeMap<String, u64>>>,
    failures: Arc<Mutex<Vec<String>>>,
    total: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(s: &Skiff, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(Mutex::new(BTreeMap::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let total = Arc::new(AtomicU64::new(0));
        let url = format!("http://127.0.0.1:{}/", s.gateway);
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failures, total, url) = (
                    stop.clone(),
                    ok.clone(),
                    failures.clone(),
                    total.clone(),
                    url.clone(),
                );
                std::thread::spawn(move || {
                    let http = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .expect("client");
                    // Bounded: at most 200,000 requests per client.
                    for _ in 0..200_000 {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        total.fetch_add(1, Ordering::Relaxed);
                        match http.get(&url).send() {
                            Ok(r) if r.status().is_success() => {
                                let body = r.text().unwrap_or_default();
                                let greeting = body.split_whitespace().next().unwrap_or("").to_owned();
                                *ok.lock().expect("lock").entry(greeting).or_default() += 1;
                            }
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let body = r.text().unwrap_or_default();
                                failures
                                    .lock()
                                    .expect("lock")
                                    .push(format!("{status} {}", body.trim()));
                            }
                            Err(e) => failures.lock().expect("lock").push(format!("error: {e}")),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            total,
            threads,
        }
    }

    fn seen(&self, greeting: &str) -> u64 {
        self.ok.lock().expect("lock").get(greeting).copied().unwrap_or(0)
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().expect("lock").clone()
    }

    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().expect("load thread");
        }
        (self.total.load(Ordering::Relaxed), self.failures())
    }
}

/// Watches the app's pods and keeps the most pods and the fewest ready pods seen at any change
/// after `armed` is set.
struct PodWatch {
    armed: Arc<AtomicBool>,
    ready_now: Arc<AtomicU64>,
    max_live: Arc<AtomicU64>,
    min_ready: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
}

impl PodWatch {
    fn start(s: &Skiff) -> PodWatch {
        let armed = Arc::new(AtomicBool::new(false));
        let max_live = Arc::new(AtomicU64::new(0));
        let min_ready = Arc::new(AtomicU64::new(u64::MAX));
        let events = Arc::new(AtomicU64::new(0));
        let ready_now = Arc::new(AtomicU64::new(0));
        let token = std::fs::read_to_string(s.state_dir().join("admin.token")).expect("admin token");
        let url = format!(
            "http://127.0.0.1:{}/api/v1/namespaces/default/pods?watch=true&labelSelector=app%3Dhello",
            s.api
        );
        let (a, mx, mn, ev_n, now) = (
            armed.clone(),
            max_live.clone(),
            min_ready.clone(),
            events.clone(),
            ready_now.clone(),
        );
        // Detached: it ends with the process (the stream closes when skiff stops).
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(None::<Duration>)
                .build()
                .expect("client");
            let Ok(resp) = http.get(&url).bearer_auth(token.trim()).send() else {
                return;
            };
            let mut pods: BTreeMap<String, (bool, bool)> = BTreeMap::new();
            for line in std::io::BufReader::new(resp).lines() {
                let Ok(line) = line else { return };
                let Ok(ev) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let o = &ev["object"];
                let name = o["metadata"]["name"].as_str().unwrap_or("").to_owned();
                let phase = o["status"]["phase"].as_str().unwrap_or("Pending");
                let terminal = matches!(phase, "Failed" | "Succeeded");
                let ready = o["status"]["ready"].as_bool().unwrap_or(false) && !terminal;
                if ev["type"] == "DELETED" {
                    pods.remove(&name);
                } else {
                    pods.insert(name, (!terminal, ready));
                }
                let live = pods.values().filter(|p| p.0).count() as u64;
                let ready = pods.values().filter(|p| p.1).count() as u64;
                now.store(ready, Ordering::Relaxed);
                if a.load(Ordering::Relaxed) {
                    mx.fetch_max(live, Ordering::Relaxed);
                    mn.fetch_min(ready, Ordering::Relaxed);
                    ev_n.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        PodWatch {
            armed,
            ready_now,
            max_live,
            min_ready,
            events,
        }
    }
}

/// The deployment as JSON.
fn deployment(s: &Skiff) -> Value {
    serde_json::from_str(&s.cli_ok(&["get", "deploy", "hello", "-o", "json"])).expect("json")
}

/// The canary's (step, weight, phase), if there is one.
fn canary(s: &Skiff) -> Option<(u64, u64, String)> {
    let d = deployment(s);
    let c = d["status"]["canary"].as_object()?.clone();
    Some((
        c["step"].as_u64()?,
        c["weight"].as_u64()?,
        c["phase"].as_str()?.to_owned(),
    ))
}

/// Waits until every answer of a bounded probe carries `greeting`.
fn wait_for_greeting(s: &Skiff, greeting: &str) {
    s.wait_until(
        &format!("every answer says {greeting:?}"),
        Duration::from_secs(90),
        || {
            (0..20).all(|_| {
                s.gateway_get("/")
                    .is_some_and(|(st, b)| st == 200 && b.starts_with(greeting))
            })
        },
    );
}

/// Share of `n` answers that start with `greeting`.
fn share(s: &Skiff, greeting: &str, n: usize) -> f64 {
    let hits = (0..n)
        .filter(|_| s.gateway_get("/").is_some_and(|(_, b)| b.starts_with(greeting)))
        .count();
    hits as f64 / n as f64
}

#[test]
fn rolling_update_and_undo_under_load_drop_no_request_and_respect_the_bounds() {
    let s = Skiff::start();
    let strategy = "    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0";
    let v1 = manifest(s.dir.path(), "v1.yaml", 3, strategy, &[("GREETING", "hello")]);
    let v2 = manifest(s.dir.path(), "v2.yaml", 3, strategy, &[("GREETING", "howdy")]);
    s.cli_ok(&["apply", "-f", v1.to_str().expect("utf-8")]);
    s.cli_ok(&["rollout", "status", "deployment/hello", "--timeout", "2m"]);
    wait_for_greeting(&s, "hello");

    let watch = PodWatch::start(&s);
    s.wait_until(
        "the pod watch sees the 3 ready pods",
        Duration::from_secs(30),
        || watch.ready_now.load(Ordering::Relaxed) == 3,
    );
    watch.armed.store(true, Ordering::Relaxed);
    let load = Load::start(&s, 4);
    s.wait_until("the load gets answers", Duration::from_secs(30), || {
        load.seen("hello") > 50
    });

    // Rolling update to v2: `rollout status` follows it to the end.
    s.cli_ok(&["apply", "-f", v2.to_str().expect("utf-8")]);
    let out = s.cli_ok(&["rollout", "status", "deployment/hello", "--timeout", "2m"]);
    assert!(out.contains("successfully rolled out (revision 2)"), "{out}");
    assert!(
        out.contains("Waiting for deployment"),
        "progress is shown while waiting: {out}"
    );
    let before = load.seen("howdy");
    s.wait_until("the load gets v2 answers", Duration::from_secs(30), || {
        load.seen("howdy") > before + 100
    });

    // Undo: back to v1 as revision 3.
    let out = s.cli_ok(&["rollout", "undo", "deployment/hello"]);
    assert!(out.contains("rolled back to revision 1"), "{out}");
    let out = s.cli_ok(&["rollout", "status", "deployment/hello", "--timeout", "2m"]);
    assert!(out.contains("successfully rolled out (revision 3)"), "{out}");
    let before = load.seen("hello");
    s.wait_until("the load gets v1 answers again", Duration::from_secs(30), || {
        load.seen("hello") > before + 100
    });
    let (total, failures) = load.finish();
    let (max_live, min_ready) = (
        watch.max_live.load(Ordering::Relaxed),
        watch.min_ready.load(Ordering::Relaxed),
    );
    assert!(
        watch.events.load(Ordering::Relaxed) >= 12,
        "the watch saw the pod changes"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed during the rollouts: {:?}\n--- log ---\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        s.log()
    );
    assert!(total > 300, "only {total} requests were sent");
    assert!(max_live <= 4, "{max_live} pods at once > replicas 3 + maxSurge 1");
    assert!(
        min_ready >= 3,
        "{min_ready} ready pods < replicas 3 - maxUnavailable 0"
    );

    // History: three revisions; the first is gone from the list once it became revision 3.
    let history = s.cli_ok(&["rollout", "history", "deployment/hello"]);
    assert!(history.contains("component web: env"), "{history}");
    assert!(history.contains("rollback to revision 1 (current)"), "{history}");
    let lines: Vec<&str> = history
        .lines()
        .filter(|l| l.starts_with(char::is_numeric))
        .collect();
    assert_eq!(lines.len(), 2, "{history}");
    assert!(
        lines[0].starts_with('2') && lines[1].starts_with('3'),
        "{history}"
    );
    let v2_template = s.cli_ok(&["rollout", "history", "deployment/hello", "--revision", "2"]);
    assert!(v2_template.contains("howdy"), "{v2_template}");
    // Undo to an unknown revision is refused with the known ones.
    let out = s.cli(&["rollout", "undo", "deployment/hello", "--to-revision", "9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no revision 9; it has 2, 3"));
    // Restart: a new revision with the same template; pause holds a change.
    s.cli_ok(&["rollout", "restart", "deployment/hello"]);
    let out = s.cli_ok(&["rollout", "status", "deployment/hello", "--timeout", "2m"]);
    assert!(out.contains("(revision 4)"), "{out}");
    // (`apply` replaces the whole spec, `paused` included: a restart keeps it.)
    s.cli_ok(&["rollout", "pause", "deployment/hello"]);
    s.cli_ok(&["rollout", "restart", "deployment/hello"]);
    s.wait_until(
        "the paused deployment reports it",
        Duration::from_secs(30),
        || {
            deployment(&s)["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["reason"] == "DeploymentPaused"))
        },
    );
    assert_eq!(
        deployment(&s)["status"]["revision"],
        4,
        "no new revision while paused"
    );
    s.cli_ok(&["rollout", "resume", "deployment/hello"]);
    let out = s.cli_ok(&["rollout", "status", "deployment/hello", "--timeout", "2m"]);
    assert!(out.contains("(revision 5)"), "{out}");
}

#[test]
fn canary_good_version_is_promoted_by_its_weights_and_a_failing_one_reverted() {
    let s = Skiff::start();
    let strategy = "    type: Canary
    canary:
      steps:
        - weight: 25
        - pause: {}
        - weight: 50
        - pause: {}
        - weight: 75
        - pause: {duration: 2s}
      analysis:
        maxErrorPercent: 5
        minRequests: 20";
    let v1 = manifest(s.dir.path(), "v1.yaml", 4, strategy, &[("GREETING", "hello")]);
    let good = manifest(s.dir.path(), "good.yaml", 4, strategy, &[("GREETING", "howdy")]);
    let bad = manifest(
        s.dir.path(),
        "bad.yaml",
        4,
        strategy,
        &[("GREETING", "broken"), ("HELLO_STATUS", "503")],
    );
    s.cli_ok(&["apply", "-f", v1.to_str().expect("utf-8")]);
    s.cli_ok(&["rollout", "status", "deployment/hello", "--timeout", "2m"]);
    wait_for_greeting(&s, "hello");
    assert!(
        canary(&s).is_none(),
        "the first revision has nothing to compare with"
    );

    // Good version: measured at each manual pause, then resumed.
    s.cli_ok(&["apply", "-f", good.to_str().expect("utf-8")]);
    for (step, weight) in [(1u64, 25u64), (3, 50)] {
        s.wait_until(
            &format!("the canary pauses at {weight}%"),
            Duration::from_secs(60),
            || canary(&s) == Some((step, weight, "Paused".to_owned())),
        );
        let measured = share(&s, "howdy", 400);
        let expected = weight as f64 / 100.0;
        assert!(
            (measured - expected).abs() < 0.1,
            "at step {step} the new version took {measured:.2} of the answers, configured {expected:.2}"
        );
        s.cli_ok(&["rollout", "resume", "deployment/hello"]);
    }
    // 75%, then a timed pause, then promotion without anyone resuming.
    let out = s.cli_ok(&["rollout", "status", "deployment/hello", "--timeout", "2m"]);
    assert!(out.contains("canary: step"), "progress shows the canary: {out}");
    assert!(out.contains("successfully rolled out (revision 2)"), "{out}");
    assert_eq!(canary(&s).map(|c| c.2), Some("Promoted".to_owned()));
    wait_for_greeting(&s, "howdy");

    // Failing version under load: reverted once its pods answered 20 requests with 5xx.
    let load = Load::start(&s, 2);
    s.cli_ok(&["apply", "-f", bad.to_str().expect("utf-8")]);
    let out = s.cli(&["rollout", "status", "deployment/hello", "--timeout", "2m"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a reverted canary is a failed rollout");
    assert!(stderr.contains("canary reverted"), "{stderr}");
    let d = deployment(&s);
    assert_eq!(d["status"]["canary"]["phase"], "Reverted");
    let env = d["spec"]["template"]["spec"]["components"][0]["env"].to_string();
    assert!(
        env.contains("howdy") && !env.contains("503"),
        "the template is the stable one again: {env}"
    );
    // Once the endpoints give the failing pods no weight, no request reaches them.
    let token = std::fs::read_to_string(s.state_dir().join("admin.token")).expect("token");
    let http = reqwest::blocking::Client::new();
    s.wait_until(
        "the endpoints drop the failing revision",
        Duration::from_secs(30),
        || {
            let ep: Value = http
                .get(format!(
                    "http://127.0.0.1:{}/api/v1/namespaces/default/endpoints/hello",
                    s.api
                ))
                .bearer_auth(token.trim())
                .send()
                .and_then(|r| r.json())
                .unwrap_or(Value::Null);
            let pods = s.cli_ok(&["get", "pods", "-o", "json"]);
            let bad_pods: Vec<String> = serde_json::from_str::<Value>(&pods).expect("json")["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["spec"]["components"][0]["env"].to_string().contains("503"))
                .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
                .collect();
            ep["endpoints"].as_array().is_some_and(|eps| {
                eps.iter().all(|e| {
                    !bad_pods.iter().any(|b| e["pod"] == b.as_str())
                        || e["weight"] == 0
                        || e["ready"] == false
                })
            })
        },
    );
    let failures_before = load.failures().len();
    let after = share(&s, "howdy", 300);
    let (_, failures) = load.finish();
    assert_eq!(
        after, 1.0,
        "after the revert every answer comes from the stable version"
    );
    assert_eq!(
        failures.len(),
        failures_before,
        "no failure after the revert: {:?}",
        &failures[failures_before..]
    );
    assert!(
        failures.iter().all(|f| f.starts_with("503")),
        "before the revert only the failing version's 503s: {:?}",
        &failures[..failures.len().min(5)]
    );
    let events = s.cli_ok(&["get", "events"]);
    assert!(events.contains("CanaryReverted"), "{events}");
    assert!(events.contains("CanaryPromoted"), "{events}");
    let history = s.cli_ok(&["rollout", "history", "deployment/hello"]);
    assert!(history.contains("auto-revert"), "{history}");
}

#[test]
fn a_config_map_change_rolls_the_pods_that_read_it() {
    let s = Skiff::start();
    let wasm = repo_root().join("examples/hello-http/hello.wasm");
    let write = |greeting: &str| {
        let text = format!(
            "apiVersion: skiff.dev/v1
kind: ConfigMap
metadata:
  name: greeting
data:
  greeting: {greeting}
---
apiVersion: skiff.dev/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 2
  rolloutOnConfigChange: true
  selector:
    matchLabels:
      app: hello
  template:
    metadata:
      labels:
        app: hello
    spec:
      components:
        - name: web
          wasm:
            path: {}
          env:
            - name: GREETING
              valueFrom:
                configMapKeyRef:
                  name: greeting
                  key: greeting
---
apiVersion: skiff.dev/v1
kind: Service
metadata:
  name: hello
spec:
  selector:
    app: hello
---
apiVersion: skiff.dev/v1
kind: HTTPRoute
metadata:
  name: hello
spec:
  rules:
    - pathPrefix: /
      backends:
        - service: hello
",
            wasm.display()
        );
        let path = s.dir.path().join(format!("{greeting}.yaml"));
        std::fs::write(&path, text).expect("write");
        path
    };
    let first = write("hello");
    s.cli_ok(&["apply", "-f", first.to_str().expect("utf-8")]);
    s.cli_ok(&["rollout", "status", "deployment/hello", "--timeout", "2m"]);
    wait_for_greeting(&s, "hello");
    // The same data again changes nothing; new data rolls the pods, which read it at start.
    s.cli_ok(&["apply", "-f", first.to_str().expect("utf-8")]);
    assert_eq!(deployment(&s)["status"]["revision"], 1);
    let second = write("hola");
    s.cli_ok(&["apply", "-f", second.to_str().expect("utf-8")]);
    let out = s.cli_ok(&["rollout", "status", "deployment/hello", "--timeout", "2m"]);
    assert!(out.contains("(revision 2)"), "{out}");
    wait_for_greeting(&s, "hola");
    let history = s.cli_ok(&["rollout", "history", "deployment/hello"]);
    assert!(
        history.contains("configuration changed (configmap/greeting)"),
        "{history}"
    );
}
