//! A rejected apply stores nothing and says where the problem is.
use crate::harness::Skiff;

#[test]
fn rejected_apply_stores_nothing_and_names_the_problem() {
    let s = Skiff::start();
    let file = s.dir.path().join("mixed.yaml");
    std::fs::write(
        &file,
        "apiVersion: skiff.dev/v1\nkind: Service\nmetadata: {name: good}\nspec: {selector: {app: good}}\n---\n\
         apiVersion: skiff.dev/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  replicas: -2\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec: {components: [{name: c, wasm: {digest: 'sha256:00'}}]}\n",
    )
    .expect("write");
    let out = s.cli(&["apply", "-f", file.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mixed.yaml: document 2: spec.replicas"), "{err}");
    assert!(
        err.contains("spec.template.spec.components[0].wasm.digest"),
        "{err}"
    );
    assert!(err.contains("nothing was applied"), "{err}");
    let list = s.cli(&["get", "svc", "good"]);
    assert!(
        !list.status.success(),
        "the valid Service of a rejected apply must not be stored"
    );

    // The server refuses on its own too: two objects of one apply, the second a duplicate.
    let dup = s.dir.path().join("dup.yaml");
    std::fs::write(&dup, "apiVersion: skiff.dev/v1\nkind: Service\nmetadata: {name: twice}\nspec: {selector: {app: a}}\n---\napiVersion: skiff.dev/v1\nkind: Service\nmetadata: {name: twice}\nspec: {selector: {app: b}}\n").expect("write");
    let out = s.cli(&["apply", "-f", dup.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("document 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A wrong token is a clear error.
    let out = std::process::Command::new(crate::harness::SKIFF)
        .args([
            "get",
            "pods",
            "--server",
            &format!("http://127.0.0.1:{}", s.api),
            "--token",
            "wrong",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rejected the token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An unreachable server too.
    let out = std::process::Command::new(crate::harness::SKIFF)
        .args(["get", "pods", "--server", "http://127.0.0.1:1", "--token", "x"])
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the Skiff server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
