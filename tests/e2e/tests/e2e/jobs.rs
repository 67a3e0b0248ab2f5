//! Jobs on `skiff up` with a real command component: a succeeding one completes its completions
//! (its output in `skiff logs`), a failing one is retried up to its backoffLimit and fails.
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Skiff, job_wasm};

fn job(s: &Skiff, name: &str) -> Value {
    serde_json::from_str(&s.cli_ok(&["get", "job", name, "-o", "json"])).expect("json")
}

fn condition(j: &Value) -> Option<(String, String)> {
    let c = j["status"]["conditions"].as_array()?.first()?;
    Some((c["type"].as_str()?.to_owned(), c["reason"].as_str()?.to_owned()))
}

#[test]
fn jobs_run_command_components_to_completion_and_retry_failures_to_their_limit() {
    let s = Skiff::start();
    let wasm = job_wasm();
    let manifest = format!(
        r#"apiVersion: skiff.dev/v1
kind: Job
metadata: {{name: works}}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      components:
        - name: main
          wasm: {{path: {wasm}, world: command}}
          args: [ok]
          env: [{{name: GREETING, value: from-a-job}}]
---
apiVersion: skiff.dev/v1
kind: Job
metadata: {{name: breaks}}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      components:
        - name: main
          wasm: {{path: {wasm}, world: command}}
          args: [fail]
"#,
        wasm = wasm.display()
    );
    let file = s.dir.path().join("jobs.yaml");
    std::fs::write(&file, manifest).expect("write");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);

    s.wait_until("the working job completes", Duration::from_secs(90), || {
        condition(&job(&s, "works")).is_some()
    });
    let works = job(&s, "works");
    assert_eq!(condition(&works), Some(("Complete".into(), "Completed".into())));
    assert_eq!(works["status"]["succeeded"], 3);
    let table = s.cli_ok(&["get", "jobs"]);
    assert!(
        table.contains("works") && table.contains("Complete") && table.contains("3/3"),
        "{table}"
    );
    let pods: Value =
        serde_json::from_str(&s.cli_ok(&["get", "pods", "-l", "skiff.dev/job-name=works", "-o", "json"]))
            .expect("json");
    let pods = pods["items"].as_array().expect("items").clone();
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Succeeded", "{p}");
        assert_eq!(p["status"]["exitCode"], 0);
    }
    let name = pods[0]["metadata"]["name"].as_str().expect("name");
    let logs = s.cli_ok(&["logs", name]);
    assert!(logs.contains("job done: from-a-job"), "{logs}");

    // Two failures (the second after the 10 s back-off) exceed backoffLimit 1.
    s.wait_until("the failing job fails", Duration::from_secs(90), || {
        condition(&job(&s, "breaks")).is_some()
    });
    let breaks = job(&s, "breaks");
    assert_eq!(
        condition(&breaks),
        Some(("Failed".into(), "BackoffLimitExceeded".into()))
    );
    assert_eq!(breaks["status"]["failed"], 2);
    let pods: Value =
        serde_json::from_str(&s.cli_ok(&["get", "pods", "-l", "skiff.dev/job-name=breaks", "-o", "json"]))
            .expect("json");
    let pods = pods["items"].as_array().expect("items").clone();
    assert_eq!(pods.len(), 2, "one try plus one retry");
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Failed", "{p}");
        assert_eq!(p["status"]["exitCode"], 1);
    }
    let name = pods[0]["metadata"]["name"].as_str().expect("name");
    assert!(s.cli_ok(&["logs", name]).contains("job failing on purpose"));
    let events = s.cli_ok(&["get", "events"]);
    assert!(events.contains("BackoffLimitExceeded"), "{events}");
    // Deleting a job takes its pods along.
    s.cli_ok(&["delete", "job", "works"]);
    s.wait_until("the job's pods are collected", Duration::from_secs(30), || {
        !s.cli_ok(&["get", "pods", "-l", "skiff.dev/job-name=works"])
            .contains("works-")
    });
}
