//! The IoT example (`examples/iot`) end to end: its manifest on `skiff up`, Debian's mosquitto as
//! the broker and `mosquitto_pub` as the sensors; readings folded into the replicated `readings`
//! key-value store by `aggregator`, served by `dashboard` through the gateway; a bad reading in the
//! dead-letter topic; a function without the store's grant cannot open it.
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::functions::{Broker, api, connection, http, mosquitto_pub as publish, token, topic};
use crate::harness::{Skiff, repo_root};

/// Builds the example's functions once; returns their directory.
fn example_wasm_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| crate::harness::build_wasm_project(&repo_root().join("examples/iot")))
        .clone()
}

fn kv(s: &Skiff, key: &str) -> Option<String> {
    let r = http()
        .get(format!(
            "{}/api/v1/namespaces/default/keyvalue/readings/keys/{key}",
            api(s)
        ))
        .bearer_auth(token(s))
        .send()
        .ok()?;
    r.status().is_success().then(|| r.text().ok()).flatten()
}

fn sensor<'a>(v: &'a Value, name: &str) -> &'a Value {
    crate::functions::item(&v["sensors"], "sensor", name)
}

#[test]
fn sensor_readings_over_mqtt_are_aggregated_into_the_store_and_served_over_http() {
    if Command::new("mosquitto").arg("-h").output().is_err() {
        skiff_testkit::tool_missing("mosquitto");
        return;
    }
    let wasm_dir = example_wasm_dir();
    let s = Skiff::start();
    let port = crate::harness::free_port();
    let _broker = Broker::start(s.dir.path(), port).expect("mosquitto");

    // The committed manifest, pointed at this broker and the freshly built components.
    let manifest = std::fs::read_to_string(repo_root().join("examples/iot/iot.yaml"))
        .expect("examples/iot/iot.yaml")
        .replace("127.0.0.1:1883", &format!("127.0.0.1:{port}"))
        .replace("target/wasm32-wasip2/release", &wasm_dir.display().to_string());
    let file = s.dir.path().join("iot.yaml");
    std::fs::write(&file, manifest).expect("write");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    s.wait_until(
        "the aggregator's MQTT trigger is connected",
        Duration::from_secs(30),
        || connection(&s, "aggregator") == Some(true),
    );

    // The broker's subscription is in place once a probe reading gets through.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while kv(&s, "probe/count").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no probe reading arrived\n{}",
            s.log()
        );
        publish(port, "sensors/probe/temperature", "1");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Each reading once (QoS 1: the broker redelivers until the aggregator's Raft commit).
    for (sensor, value) in [
        ("kitchen", "21.5"),
        ("garage", "-3.25"),
        ("kitchen", "22.5"),
        ("garage", "-2.75"),
        ("kitchen", "20"),
    ] {
        publish(port, &format!("sensors/{sensor}/temperature"), value);
    }
    s.wait_until("every reading is counted", Duration::from_secs(60), || {
        kv(&s, "kitchen/count").as_deref() == Some("3") && kv(&s, "garage/count").as_deref() == Some("2")
    });
    assert_eq!(kv(&s, "kitchen/sum").as_deref(), Some("6400"), "hundredths");
    assert_eq!(kv(&s, "garage/sum").as_deref(), Some("-600"));

    // The dashboard (scaled to zero until now) answers through the gateway.
    let mut page = Value::Null;
    s.wait_until(
        "the dashboard serves the aggregates",
        Duration::from_secs(60),
        || match s.gateway_get("/readings") {
            Some((200, body)) => {
                page = serde_json::from_str(&body).unwrap_or(Value::Null);
                true
            }
            _ => false,
        },
    );
    let kitchen = sensor(&page, "kitchen");
    assert_eq!(kitchen["count"], 3, "{page}");
    assert_eq!(kitchen["mean"].as_f64(), Some(21.33), "{page}");
    assert_eq!(kitchen["last"].as_f64(), Some(20.0), "{page}");
    let garage = sensor(&page, "garage");
    assert_eq!(garage["count"], 2, "{page}");
    assert_eq!(garage["mean"].as_f64(), Some(-3.0), "{page}");
    assert_eq!(garage["last"].as_f64(), Some(-2.75), "{page}");
    let (status, one) = s.gateway_get("/readings/garage").expect("gateway");
    assert_eq!(status, 200, "{one}");
    assert_eq!(serde_json::from_str::<Value>(&one).expect("json")["count"], 2);
    let (status, none) = s.gateway_get("/readings/attic").expect("gateway");
    assert_eq!(status, 422, "a sensor without readings: {none}");

    // The stores through the API and the CLI.
    let out = s.cli_ok(&["get", "keyvalue", "-o", "json"]);
    let stores: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(stores[0]["name"], "readings", "{out}");
    assert_eq!(
        stores[0]["keys"], 9,
        "count, sum and last of three sensors: {out}"
    );
    assert_eq!(s.cli_ok(&["kv", "get", "readings", "kitchen/last"]).trim(), "20");

    // A reading that is not a number is invalid: it lands in the dead-letter topic.
    publish(port, "sensors/kitchen/temperature", "hot");
    s.wait_until(
        "the bad reading is dead-lettered",
        Duration::from_secs(60),
        || topic(&s, "bad-readings").is_some_and(|t| t["published"].as_u64().unwrap_or(0) >= 1),
    );
    assert_eq!(kv(&s, "kitchen/count").as_deref(), Some("3"));

    // Without capabilities.keyValue the same component cannot open the store.
    let denied = format!(
        "apiVersion: skiff.dev/v1\nkind: Function\nmetadata: {{name: ungranted}}\nspec:\n  component: {{wasm: {{path: {}, world: function}}}}\n  triggers: [{{event: {{topic: ungranted-readings}}}}]\n",
        wasm_dir.join("aggregator.wasm").display()
    );
    let file = s.dir.path().join("ungranted.yaml");
    std::fs::write(&file, denied).expect("write");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    let r = http()
        .post(format!(
            "{}/api/v1/namespaces/default/functions/ungranted/invoke",
            api(&s)
        ))
        .bearer_auth(token(&s))
        .header("ce-id", "x1")
        .header("ce-type", "dev.skiff.mqtt.message")
        .header("ce-source", "test")
        .header("ce-subject", "sensors/kitchen/temperature")
        .body("25")
        .send()
        .expect("invoke");
    let status = r.status().as_u16();
    let body = r.text().unwrap_or_default();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    assert_eq!(kv(&s, "kitchen/count").as_deref(), Some("3"));
}
