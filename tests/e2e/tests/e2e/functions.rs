//! Functions on `skiff up` with the real function guest: an HTTP trigger through the gateway
//! from zero pods, events published through the API and the CLI, retries then the dead-letter
//! topic, the timeout, 429 at maxScale, `skiff invoke`, `skiff get topics` and scale back to zero.
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Skiff, function_wasm};

pub(crate) fn api(s: &Skiff) -> String {
    format!("http://127.0.0.1:{}", s.api)
}

pub(crate) fn token(s: &Skiff) -> String {
    std::fs::read_to_string(s.state_dir().join("admin.token"))
        .expect("admin token")
        .trim()
        .to_owned()
}

pub(crate) fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

pub(crate) fn topic(s: &Skiff, name: &str) -> Option<Value> {
    let r = http()
        .get(format!("{}/api/v1/namespaces/default/topics/{name}", api(s)))
        .bearer_auth(token(s))
        .send()
        .ok()?;
    r.status().is_success().then(|| r.json().ok()).flatten()
}

/// The item of a JSON list whose `field` is `value` (null when none is).
pub(crate) fn item<'a>(list: &'a Value, field: &str, value: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|s| s[field] == value))
        .unwrap_or(&Value::Null)
}

fn subscriber<'a>(t: &'a Value, function: &str) -> &'a Value {
    item(&t["subscribers"], "function", function)
}

fn function_pods(s: &Skiff, name: &str) -> usize {
    let out = s.cli_ok(&[
        "get",
        "pods",
        "-l",
        &format!("skiff.dev/function={name}"),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).expect("json");
    v["items"].as_array().map(|a| a.len()).unwrap_or(0)
}

#[test]
fn functions_scale_from_zero_take_events_retry_dead_letter_time_out_and_shed_load() {
    let mut s = Skiff::start();
    let wasm = function_wasm();
    let manifest = format!(
        r#"apiVersion: skiff.dev/v1
kind: Function
metadata: {{name: echo}}
spec:
  component: {{wasm: {{path: {wasm}, world: function}}}}
  scaleDownDelay: 3s
  triggers:
    - http: {{path: /fn/echo}}
    - event: {{topic: orders}}
---
apiVersion: skiff.dev/v1
kind: Function
metadata: {{name: flaky}}
spec:
  component: {{wasm: {{path: {wasm}, world: function}}}}
  retry: {{attempts: 3, backoff: 100ms}}
  deadLetterTopic: jobs-dlq
  triggers:
    - event: {{topic: jobs}}
---
apiVersion: skiff.dev/v1
kind: Function
metadata: {{name: slow}}
spec:
  component: {{wasm: {{path: {wasm}, world: function}}}}
  timeout: 500ms
  concurrency: 1
  maxScale: 1
  triggers:
    - http: {{path: /fn/slow, methods: [POST]}}
"#,
        wasm = wasm.display()
    );
    let file = s.dir.path().join("functions.yaml");
    std::fs::write(&file, manifest).expect("write");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    let table = s.cli_ok(&["get", "functions"]);
    assert!(
        table.contains("echo") && table.contains("http:/fn/echo,event:orders"),
        "{table}"
    );
    assert_eq!(
        function_pods(&s, "echo"),
        0,
        "minScale 0: no pod before the first request"
    );

    // The first request through the gateway finds no pod, activates one and is answered.
    let gw = format!("http://127.0.0.1:{}", s.gateway);
    let r = http()
        .post(format!("{gw}/fn/echo/x"))
        .header("ce-type", "upper")
        .header("ce-id", "first")
        .header("ce-source", "/test")
        .body("hello")
        .send()
        .expect("gateway");
    assert_eq!(r.status().as_u16(), 200, "{}", s.log());
    assert_eq!(r.text().expect("body"), "HELLO");
    // A plain HTTP request is an event too (type dev.skiff.http.request: no payload).
    let r = http().get(format!("{gw}/fn/echo")).send().expect("gateway");
    assert_eq!(r.status().as_u16(), 204);

    // Events through the API and the CLI reach the subscriber; the same id twice is stored once.
    let r = http()
        .post(format!(
            "{}/api/v1/namespaces/default/topics/orders/events",
            api(&s)
        ))
        .bearer_auth(token(&s))
        .json(&serde_json::json!({"type": "echo", "id": "order-1", "data": {"n": 1}}))
        .send()
        .expect("publish");
    assert_eq!(r.status().as_u16(), 201);
    let first: Value = r.json().expect("json");
    assert_eq!(
        (first["sequence"].as_u64(), first["duplicate"].as_bool()),
        (Some(1), Some(false))
    );
    let publish_order_2 = || {
        s.cli_ok(&[
            "publish",
            "orders",
            "--type",
            "echo",
            "--id",
            "order-2",
            "--data",
            r#"{"n":2}"#,
        ])
    };
    let out = publish_order_2();
    assert!(out.contains("published to topic orders as #2"), "{out}");
    let out = publish_order_2();
    assert!(out.contains("duplicate"), "{out}");
    s.wait_until("both orders are delivered", Duration::from_secs(60), || {
        topic(&s, "orders").is_some_and(|t| subscriber(&t, "echo")["delivered"] == 2 && t["backlog"] == 0)
    });
    let topics = s.cli_ok(&["get", "topics"]);
    assert!(
        topics.contains("orders") && topics.contains("echo:0/0/0"),
        "{topics}"
    );

    // A failing function: a retryable failure is tried 3 times, then dead-lettered; an invalid
    // event goes to the dead-letter topic at once.
    s.cli_ok(&["publish", "jobs", "--type", "retry", "--id", "job-1"]);
    s.cli_ok(&["publish", "jobs", "--type", "invalid", "--id", "job-2"]);
    s.cli_ok(&[
        "publish", "jobs", "--type", "echo", "--id", "job-3", "--data", "fine",
    ]);
    s.wait_until(
        "two jobs are dead-lettered, one delivered",
        Duration::from_secs(60),
        || {
            topic(&s, "jobs").is_some_and(|t| {
                let sub = subscriber(&t, "flaky");
                sub["deadLettered"] == 2 && sub["delivered"] == 1 && sub["lag"] == 0
            })
        },
    );
    let dlq: Value = http()
        .get(format!(
            "{}/api/v1/namespaces/default/topics/jobs-dlq/events",
            api(&s)
        ))
        .bearer_auth(token(&s))
        .send()
        .expect("dlq")
        .json()
        .expect("json");
    let events = dlq["events"].as_array().expect("events");
    let ids: Vec<&str> = events.iter().filter_map(|e| e["event"]["id"].as_str()).collect();
    assert_eq!(ids.len(), 2, "{dlq}");
    assert!(ids.contains(&"job-1") && ids.contains(&"job-2"), "{dlq}");
    let retried = events
        .iter()
        .find(|e| e["event"]["id"] == "job-1")
        .expect("job-1");
    assert_eq!(retried["event"]["skiffdeadletterfunction"], "flaky");
    assert!(
        retried["event"]["skiffdeadletterreason"]
            .as_str()
            .is_some_and(|r| r.contains("try again later")),
        "{retried}"
    );

    // `skiff invoke` calls a function once and prints its answer.
    let out = s.cli_ok(&["invoke", "fn/echo", "--type", "upper", "--data", "from the cli"]);
    assert_eq!(out.trim(), "FROM THE CLI");
    let failed = s.cli(&["invoke", "fn/echo", "--type", "invalid"]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("invalid"));

    // A slow call is cut at the timeout (504); a second one while the only pod (maxScale 1,
    // concurrency 1) is busy is shed with 429.
    let call = |gw: String| {
        std::thread::spawn(move || {
            let r = http()
                .post(format!("{gw}/fn/slow"))
                .header("ce-type", "spin")
                .header("ce-id", "spin")
                .header("ce-source", "/test")
                .send()
                .expect("gateway");
            (
                r.status().as_u16(),
                r.headers().contains_key("x-skiff-overloaded"),
            )
        })
    };
    let warm = http()
        .post(format!("{gw}/fn/slow"))
        .header("ce-type", "upper")
        .header("ce-id", "w")
        .header("ce-source", "/t")
        .body("w")
        .send()
        .expect("warm");
    assert_eq!(warm.status().as_u16(), 200, "the slow function starts");
    let a = call(gw.clone());
    let b = call(gw.clone());
    let mut answers = vec![a.join().expect("a"), b.join().expect("b")];
    answers.sort();
    assert_eq!(
        answers,
        vec![(429, true), (504, false)],
        "one cut at its timeout, one shed"
    );
    assert!(s.alive(), "the node survived");
    let r = http().get(format!("{gw}/fn/slow")).send().expect("gateway");
    assert_eq!(
        r.status().as_u16(),
        404,
        "GET is not one of the trigger's methods"
    );

    // Idle for scaleDownDelay: back to zero pods.
    s.wait_until("echo scales back to zero", Duration::from_secs(60), || {
        function_pods(&s, "echo") == 0
    });
}

/// `event ID` lines the function's pods printed (`skiff logs fn/NAME`), with repeats.
fn recorded(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once("event ").map(|(_, id)| id.trim().to_owned()))
        .collect()
}

/// An RFC 3339 time `secs` after `base`.
fn at(base: std::time::SystemTime, secs: u64) -> String {
    humantime::format_rfc3339_seconds(base + Duration::from_secs(secs)).to_string()
}

#[test]
fn killing_the_leader_loses_no_acknowledged_event_and_no_cron_tick_doubles() {
    use std::collections::BTreeSet;

    use crate::cluster::Cluster;
    use crate::harness::{Proc, free_port, poll};

    // Cron time is under the test's control: a clock file every member reads. It starts an
    // hour ahead (past the function's creation), 45 s into a minute; the 90 s catch-up window
    // then holds one tick (the minute's start).
    let clock_dir = tempfile::tempdir().expect("tempdir");
    let clock = clock_dir.path().join("now");
    let now = std::time::SystemTime::now();
    let secs = now.duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let base = std::time::UNIX_EPOCH + Duration::from_secs((secs / 60 + 60) * 60);
    std::fs::write(&clock, at(base, 45)).expect("clock");
    let clock_arg = clock.display().to_string();
    let mut c = Cluster::start(3, &["--clock-file", &clock_arg]);

    let join = std::fs::read_to_string(c.members[0].dir.join("join.token")).expect("join token");
    let _agent = Proc::spawn(
        &[
            "agent",
            "--server",
            &c.servers(),
            "--token",
            join.trim(),
            "--name",
            "w1",
            "--dir",
            c.tmp.path().join("w1").to_str().expect("utf-8"),
            "--data-plane",
            &format!("127.0.0.1:{}", free_port()),
        ],
        c.tmp.path().join("w1.log"),
    );
    let manifest = format!(
        r#"apiVersion: skiff.dev/v1
kind: Function
metadata: {{name: counter}}
spec:
  component: {{wasm: {{path: {wasm}, world: function}}}}
  minScale: 1
  triggers:
    - event: {{topic: readings}}
    - cron: {{schedule: "* * * * *", catchUpWindow: 90s}}
"#,
        wasm = function_wasm().display()
    );
    let file = c.tmp.path().join("counter.yaml");
    std::fs::write(&file, manifest).expect("write");
    let out = c.cli(&["apply", "-f", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    c.wait_until("the function's pod is ready", Duration::from_secs(90), |c| {
        let out = c.cli(&["get", "function", "counter", "-o", "json"]);
        serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|f| f["status"]["readyReplicas"] == 1)
    });
    let topic_of = |c: &Cluster, name: &str| -> Option<Value> {
        (0..c.members.len()).find_map(|i| {
            c.http
                .get(format!("{}/api/v1/namespaces/default/topics/{name}", c.url(i)))
                .bearer_auth(&c.token)
                .send()
                .ok()
                .filter(|r| r.status().is_success())
                .and_then(|r| r.json::<Value>().ok())
        })
    };
    let ticks = |c: &Cluster| {
        topic_of(c, "cron.counter.1")
            .and_then(|t| t["published"].as_u64())
            .unwrap_or(0)
    };
    c.wait_until(
        "the minute's first tick is published",
        Duration::from_secs(30),
        |c| ticks(c) == 1,
    );

    // The minute turns: one more tick.
    std::fs::write(&clock, at(base, 65)).expect("clock");
    c.wait_until("the next tick is published", Duration::from_secs(30), |c| {
        ticks(c) == 2
    });

    // Publish events through every member in turn while the leader is killed; an event counts
    // as acknowledged when a publish answered 2xx. Failed publishes are retried with the same id.
    let total = 150;
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut killed = None;
    for n in 0..total {
        let id = format!("r-{n}");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut member = n;
        loop {
            let i = member % c.members.len();
            member += 1;
            if killed == Some(i) {
                continue;
            }
            let r = c
                .http
                .post(format!(
                    "{}/api/v1/namespaces/default/topics/readings/events",
                    c.url(i)
                ))
                .bearer_auth(&c.token)
                .json(&serde_json::json!({"id": id, "source": "/sensor", "type": "record"}))
                .send();
            if r.is_ok_and(|r| r.status().is_success()) {
                acked.insert(id.clone());
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "publishing {id} kept failing:\n{}",
                c.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if n == 50 {
            let leader = c.leader_among(&[0, 1, 2]).expect("a leader");
            c.kill(leader);
            killed = Some(leader);
            // The next minute is due while there is no leader: the new one must catch it up,
            // and re-publishes the previous tick (still in its window) without doubling it.
            std::fs::write(&clock, at(base, 125)).expect("clock");
        }
    }
    assert_eq!(acked.len(), total);
    let alive: Vec<usize> = (0..3).filter(|i| Some(*i) != killed).collect();
    c.wait_until("a new leader", Duration::from_secs(30), |c| {
        c.leader_among(&alive).is_some()
    });
    c.wait_until("every event is delivered", Duration::from_secs(120), |c| {
        topic_of(c, "readings").is_some_and(|t| t["backlog"] == 0 && t["published"] == total)
    });
    c.wait_until(
        "the tick due without a leader is caught up",
        Duration::from_secs(30),
        |c| ticks(c) == 3,
    );

    // What the function saw: every acknowledged event (repeats only as at-least-once allows).
    let seen = std::cell::RefCell::new(Vec::<String>::new());
    poll(
        "the function printed every event",
        Duration::from_secs(30),
        || {
            let out = c.cli(&["logs", "fn/counter"]);
            *seen.borrow_mut() = recorded(&String::from_utf8_lossy(&out.stdout));
            acked.iter().all(|id| seen.borrow().contains(id))
        },
        || format!("seen {} of {}:\n{}", seen.borrow().len(), acked.len(), c.logs()),
    );
    let seen = seen.into_inner();
    let distinct: BTreeSet<&String> = seen.iter().filter(|id| id.starts_with("r-")).collect();
    assert_eq!(distinct.len(), total, "nothing beyond what was published");
    let cron_seen: Vec<&String> = seen.iter().filter(|id| id.starts_with("counter-1-")).collect();
    let cron_distinct: BTreeSet<&&String> = cron_seen.iter().collect();
    assert_eq!(cron_distinct.len(), 3, "each tick once: {cron_seen:?}");
    assert_eq!(ticks(&c), 3, "no tick doubled by the leader change");
}

/// A `mosquitto` broker on a loopback port, stopped on drop.
pub(crate) struct Broker {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Broker {
    /// Starts Debian's mosquitto on `port`; `None` when it is not installed (scripts/test.sh
    /// installs it).
    pub(crate) fn start(dir: &std::path::Path, port: u16) -> Option<Broker> {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .expect("conf");
        let log = dir.join(format!("mosquitto-{port}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let child = std::process::Command::new("mosquitto")
            .args(["-c", conf.to_str().expect("utf-8")])
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .ok()?;
        let b = Broker { child, log };
        crate::harness::poll(
            "mosquitto listens",
            Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            || std::fs::read_to_string(&b.log).unwrap_or_default(),
        );
        Some(b)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Publishes `msg` on `topic` with QoS 1 through the broker on `port`, as a device would.
pub(crate) fn mosquitto_pub(port: u16, topic: &str, msg: &str) {
    let st = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            msg,
        ])
        .status()
        .expect("mosquitto_pub");
    assert!(st.success(), "mosquitto_pub failed");
}

pub(crate) fn connection(s: &Skiff, name: &str) -> Option<bool> {
    let out = s.cli_ok(&["get", "function", name, "-o", "json"]);
    let f: Value = serde_json::from_str(&out).ok()?;
    f["status"]["connections"][0]["connected"].as_bool()
}

#[test]
fn mqtt_messages_from_a_device_reach_the_function_and_its_replies_go_back() {
    if std::process::Command::new("mosquitto")
        .arg("-h")
        .output()
        .is_err()
    {
        skiff_testkit::tool_missing("mosquitto");
        return;
    }
    let s = Skiff::start();
    let port = crate::harness::free_port();
    let mut broker = Broker::start(s.dir.path(), port).expect("mosquitto");
    let manifest = format!(
        r#"apiVersion: skiff.dev/v1
kind: Function
metadata: {{name: sensor}}
spec:
  component: {{wasm: {{path: {wasm}, world: function}}}}
  triggers:
    - mqtt: {{broker: "mqtt://127.0.0.1:{port}", topic: "sensors/+/temp", qos: 1, replyTopic: replies}}
"#,
        wasm = function_wasm().display()
    );
    let file = s.dir.path().join("sensor.yaml");
    std::fs::write(&file, manifest).expect("write");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    s.wait_until("the MQTT trigger is connected", Duration::from_secs(30), || {
        connection(&s, "sensor") == Some(true)
    });

    // The device publishes; the function's answer comes back on the reply topic.
    let sub = std::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "replies",
            "-C",
            "1",
            "-W",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    let publish = |msg: &str| mosquitto_pub(port, "sensors/kitchen/temp", msg);
    // mosquitto_sub subscribes asynchronously: publish until the reply arrives.
    let out = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| sub.wait_with_output().expect("sub output"));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !waiter.is_finished() && std::time::Instant::now() < deadline {
            publish("21.5");
            std::thread::sleep(Duration::from_millis(300));
        }
        waiter.join().expect("sub")
    });
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ack:21.5",
        "{}",
        s.log()
    );
    let t = topic(&s, "mqtt.sensor.0").expect("the trigger's topic");
    assert!(
        subscriber(&t, "sensor")["delivered"].as_u64().unwrap_or(0) >= 1,
        "{t}"
    );

    // The broker goes away: visible in status; it comes back: the connector reconnects and
    // messages flow again.
    broker.stop();
    s.wait_until(
        "the lost connection shows in status",
        Duration::from_secs(30),
        || connection(&s, "sensor") == Some(false),
    );
    let out = s.cli_ok(&["get", "function", "sensor", "-o", "json"]);
    assert!(out.contains("broker mqtt://127.0.0.1"), "{out}");
    let _broker = Broker::start(s.dir.path(), port).expect("mosquitto again");
    s.wait_until("the connector reconnects", Duration::from_secs(30), || {
        connection(&s, "sensor") == Some(true)
    });
    let before = subscriber(&topic(&s, "mqtt.sensor.0").expect("topic"), "sensor")["delivered"]
        .as_u64()
        .unwrap_or(0);
    publish("19.0");
    s.wait_until(
        "the message after the reconnect is delivered",
        Duration::from_secs(30),
        || {
            topic(&s, "mqtt.sensor.0")
                .is_some_and(|t| subscriber(&t, "sensor")["delivered"].as_u64().unwrap_or(0) > before)
        },
    );
}
