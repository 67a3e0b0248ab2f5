//! Memory a worker can give: `--max-instance-memory` is reported as the node's
//! `capacity.instanceMemory`, a pod whose component asks more per instance is not placed there
//! (Pending, with the reason), one that fits runs, and the flag refuses sizes no wasm memory has.
use std::time::Duration;

use crate::harness::{SKIFF, Skiff, hello_wasm};

fn pod(name: &str, memory: &str) -> String {
    format!(
        "apiVersion: skiff.dev/v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  components:\n    - name: web\n      wasm:\n        path: {}\n      resources:\n        memory: {memory}\n",
        hello_wasm().display()
    )
}

#[test]
fn a_pod_asking_more_per_instance_than_the_worker_gives_stays_pending_with_the_reason() {
    let s = Skiff::start_with(&["--max-instance-memory".into(), "64Mi".into()]);
    s.wait_until(
        "the node reports its instance cap",
        Duration::from_secs(30),
        || {
            s.cli_ok(&["get", "nodes", "-o", "json"])
                .contains("\"instanceMemory\": \"64Mi\"")
        },
    );
    for (name, memory) in [("big", "128Mi"), ("fits", "64Mi")] {
        let f = s.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&f, pod(name, memory)).expect("write");
        s.cli_ok(&["apply", "-f", f.to_str().expect("utf-8")]);
    }
    s.wait_until("the pod that fits runs", Duration::from_secs(60), || {
        s.cli_ok(&["get", "pod", "fits"]).contains("Running")
    });
    s.wait_until(
        "the big pod is unschedulable, saying why",
        Duration::from_secs(30),
        || {
            s.cli_ok(&["describe", "pod", "big"])
                .contains("component web asks 128Mi per instance, the node's instances get at most 64Mi")
        },
    );
    let big = s.cli_ok(&["get", "pod", "big"]);
    assert!(big.contains("Unschedulable"), "{big}");
}

#[test]
fn the_instance_memory_flag_refuses_what_no_wasm_memory_can_hold() {
    let out = std::process::Command::new(SKIFF)
        .args(["up", "--max-instance-memory", "8Gi"])
        .output()
        .expect("run skiff");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give a size from 1Mi to 4Gi"), "{err}");
}
