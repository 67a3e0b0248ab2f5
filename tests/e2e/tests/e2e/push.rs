//! `skiff push`: refuses what is not wasm, uploads a component, and the printed digest runs a pod.
use std::time::Duration;

use crate::harness::{Skiff, repo_root};

#[test]
fn push_prints_a_digest_a_pod_runs_from() {
    let s = Skiff::start();
    let missing = s.cli(&["push", "nope.wasm"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("nope.wasm does not exist"), "{err}");

    let text = s.dir.path().join("notes.txt");
    std::fs::write(&text, "not wasm").expect("write");
    let not_wasm = s.cli(&["push", text.to_str().expect("utf-8")]);
    assert!(!not_wasm.status.success());
    let err = String::from_utf8_lossy(&not_wasm.stderr);
    assert!(
        err.contains("is not WebAssembly") && err.contains("nothing was uploaded"),
        "{err}"
    );

    let hello = repo_root().join("examples/hello-http/hello.wasm");
    let out = s.cli(&["push", hello.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("digest: {digest}")),
        "the manifest snippet names the digest"
    );

    let pod = s.dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!(
            "apiVersion: skiff.dev/v1\nkind: Pod\nmetadata: {{name: pushed}}\n\
             spec: {{components: [{{name: web, wasm: {{digest: \"{digest}\"}}}}]}}\n"
        ),
    )
    .expect("write");
    s.cli_ok(&["apply", "-f", pod.to_str().expect("utf-8")]);
    s.wait_until("the pushed component to run", Duration::from_secs(60), || {
        s.cli_ok(&["get", "pods"]).contains("Running")
    });
}
