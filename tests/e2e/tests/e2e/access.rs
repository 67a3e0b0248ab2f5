//! The trust boundary end to end: guest and user data never becomes a path to another resource.
use std::time::Duration;

use serde_json::Value;

use crate::functions::{api, http, token};
use crate::harness::{Skiff, guest_wasm};

/// Invokes the key-value guest (`tests/guests/keyvalue`) once: `(status, body)`.
fn guest(s: &Skiff, op: &str, store: &str, key: &str) -> (u16, String) {
    let r = http()
        .post(format!(
            "{}/api/v1/namespaces/default/functions/kv/invoke",
            api(s)
        ))
        .bearer_auth(token(s))
        .header("ce-id", format!("{op}-{}", key.len()))
        .header("ce-type", op)
        .header("ce-source", "access-test")
        .header("ce-subject", store)
        .body(key.to_owned())
        .send()
        .expect("invoke");
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default())
}

#[test]
fn guest_and_cli_keys_never_reach_another_resource() {
    let s = Skiff::start();
    let manifest = format!(
        r#"apiVersion: skiff.dev/v1
kind: Function
metadata: {{name: kv}}
spec:
  component:
    wasm: {{path: {wasm}, world: function}}
    capabilities: {{keyValue: [demo]}}
  triggers: [{{event: {{topic: kv-unused}}}}]
---
apiVersion: skiff.dev/v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{colour: teal-configmap-value}}
---
apiVersion: skiff.dev/v1
kind: Secret
metadata: {{name: password}}
data: {{value: hunter2-secret-value}}
"#,
        wasm = guest_wasm("keyvalue").display()
    );
    let file = s.dir.path().join("kv.yaml");
    std::fs::write(&file, manifest).expect("write");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    // A literal key that looks like a way out, written by the admin through the CLI.
    s.cli_ok(&["kv", "set", "demo", "a/../../b", "literal"]);

    let leaks = |body: &str| {
        ["teal-configmap-value", "hunter2", "\"items\"", "\"kind\""]
            .iter()
            .any(|l| body.contains(l))
    };
    s.wait_until("the guest answers", Duration::from_secs(60), || {
        guest(&s, "get", "demo", "a/../../b") == (200, "literal".into())
    });
    for key in [
        "../../../../../configmaps",
        "../../../../../deployments",
        "../../../../../secrets/password",
        "%2e%2e/x",
        "%2E%2E%2F%2E%2E%2Fconfigmaps",
        "../../../../../nodes/skiff-local/status",
        "..\\..\\configmaps",
        "a/../../b/../../../pods",
    ] {
        let (status, body) = guest(&s, "get", "demo", key);
        assert!(!leaks(&body), "{key}: another resource leaked: {body}");
        assert_eq!(status, 422, "{key}: {body}");
        assert!(body.trim_end().ends_with("invalid: absent"), "{key}: {body}");
    }
    // The two values no URL can carry get a clear error; nothing is sent.
    for key in ["..", "."] {
        let (status, body) = guest(&s, "set", "demo", key);
        assert_eq!(status, 503, "{key}: {body}");
        assert!(body.contains("cannot be addressed"), "{key}: {body}");
    }

    // Writes land on exactly the literal key, and nothing else changed.
    for key in ["%2e%2e/x", "../../../../../configmaps/settings"] {
        assert_eq!(guest(&s, "set", "demo", key).0, 204, "{key}");
        assert_eq!(
            s.cli_ok(&["kv", "get", "demo", key]).trim(),
            "written by the guest",
            "{key}"
        );
    }
    let (status, keys) = guest(&s, "list", "demo", "");
    assert_eq!(status, 200, "{keys}");
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["%2e%2e/x", "../../../../../configmaps/settings", "a/../../b"]
    );
    let cm: Value =
        serde_json::from_str(&s.cli_ok(&["get", "configmap", "settings", "-o", "json"])).expect("json");
    assert_eq!(cm["data"]["colour"], "teal-configmap-value", "{cm}");

    // The CLI sends the key from the report as a key, not as a path.
    let out = s.cli(&["kv", "get", "demo", "../../../../../deployments"]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{printed}");
    assert!(!leaks(&printed), "{printed}");
    let out = s.cli(&["kv", "get", "demo", ".."]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`.` and `..`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.cli(&["get", "configmap", ".."]);
    assert!(!out.status.success());
    assert!(!leaks(&String::from_utf8_lossy(&out.stdout)));
}

#[test]
fn api_tokens_are_made_used_refused_revoked_and_audited_from_the_cli() {
    let s = Skiff::start();
    let ns = "apiVersion: skiff.dev/v1\nkind: Namespace\nmetadata: {name: team-a}\n---\napiVersion: skiff.dev/v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: team-a}\ndata: {colour: teal}\n";
    let file = s.dir.path().join("team-a.yaml");
    std::fs::write(&file, ns).expect("write");
    s.cli_ok(&["apply", "-f", file.to_str().expect("utf-8")]);

    let out = s.cli(&[
        "auth", "token", "create", "--role", "view", "-n", "team-a", "--ttl", "1h",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("skt1."), "{token}");
    let id = token.split('.').nth(1).expect("id").to_owned();
    let listed = s.cli_ok(&["auth", "token", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("view") && listed.contains("team-a"),
        "{listed}"
    );

    // Reads in its namespace work; writes and other namespaces are refused with the reason.
    let as_view = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--token", token.as_str()]);
        s.cli(&all)
    };
    let out = as_view(&["get", "configmap", "settings", "-n", "team-a", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = as_view(&["delete", "configmap", "settings", "-n", "team-a"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("may not delete configmaps in namespace \"team-a\"")
            && err.contains("the edit role does"),
        "{err}"
    );
    let out = as_view(&["get", "pods", "-n", "default"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("acts only in namespaces [team-a]"),
        "{err}"
    );
    let out = as_view(&["audit"]);
    assert!(!out.status.success(), "view does not read the audit log");

    // The audit log has the refused delete once, with the token as the caller.
    let refusals = || {
        let audit = s.cli_ok(&["audit", "--limit", "1000", "-o", "json"]);
        let found: Vec<Value> = audit
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["caller"] == format!("token:{id}") && r["verb"] == "delete")
            .collect();
        found
    };
    // Lines reach the file in batches: poll for it.
    s.wait_until("the refused delete is audited", Duration::from_secs(10), || {
        !refusals().is_empty()
    });
    let refused = refusals();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["code"], 403);
    assert_eq!(refused[0]["name"], "settings");

    // Revoked: refused from the next request on.
    s.cli_ok(&["auth", "token", "revoke", &id]);
    let out = as_view(&["get", "configmap", "settings", "-n", "team-a"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("revoked"), "{err}");
}

#[test]
fn the_api_speaks_https_by_default_and_the_cli_finds_the_ca_in_client_yaml() {
    let s = Skiff::start_https_only();
    let client = std::fs::read_to_string(s.state_dir().join("client.yaml")).expect("client.yaml");
    assert!(
        client.contains(&format!("server: https://127.0.0.1:{}", s.api)) && client.contains("ca: "),
        "{client}"
    );
    // The CLI goes over HTTPS, checking the server against the CA client.yaml names.
    s.cli_ok(&["get", "pods"]);
    // Plain HTTP gets a clear refusal, and a token sent that way is not acted on.
    let r = http()
        .delete(format!("http://127.0.0.1:{}/api/v1/namespaces/default", s.api))
        .bearer_auth(token(&s))
        .send()
        .expect("plain request");
    let status = r.status().as_u16();
    let body = r.text().unwrap_or_default();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("PlainHttpRefused") && body.contains(&format!("https://127.0.0.1:{}", s.api)),
        "{body}"
    );
    assert!(s.cli_ok(&["get", "namespace", "default"]).contains("default"));
    // The gateway, which serves the apps, is unchanged: plain HTTP as before.
    assert!(s.gateway_get("/").is_some());
}

/// GET `path` with the client certificate in `pki` on member `i`: the status.
fn as_node(c: &crate::cluster::Cluster, pki: &std::path::Path, i: usize, path: &str) -> (u16, String) {
    let url = format!("https://{}:{}{path}", c.members[i].host, c.members[i].api);
    match crate::harness::client_with_cert(pki).get(url).send() {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

#[test]
fn deleting_a_node_or_removing_a_member_revokes_its_certificate_on_every_member() {
    let c = crate::cluster::Cluster::start(3, &[]);
    // An agent's certificate from the cluster CA, and its Node registered with it.
    let agent_pki = c.tmp.path().join("w9-pki");
    let ca = skiff_pki::ClusterCa::load(&c.members[0].dir.join("pki")).expect("CA");
    ca.issue(&skiff_pki::Identity::agent("w9"), Duration::from_secs(3600))
        .expect("certificate")
        .save(&agent_pki)
        .expect("save");
    let node = serde_json::json!({"apiVersion": "skiff.dev/v1", "kind": "Node", "metadata": {"name": "w9"}});
    let mut registered = false;
    c.wait_until("w9 registers", Duration::from_secs(30), |c| {
        for i in 0..3 {
            let url = format!("https://{}:{}/api/v1/nodes", c.members[i].host, c.members[i].api);
            let r = crate::harness::client_with_cert(&agent_pki)
                .post(url)
                .json(&node)
                .send();
            registered |= r.is_ok_and(|r| r.status().is_success() || r.status().as_u16() == 409);
        }
        registered
    });
    for i in 0..3 {
        c.wait_until(&format!("member {i} knows w9"), Duration::from_secs(30), |c| {
            as_node(c, &agent_pki, i, "/api/v1/nodes/w9").0 == 200
        });
    }

    // The operator deletes the node: its certificate stops working on every member.
    let out = c.cli(&["delete", "node", "w9"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deleted = std::time::Instant::now();
    for i in 0..3 {
        c.wait_until(&format!("member {i} refuses w9"), Duration::from_secs(10), |c| {
            let (status, body) = as_node(c, &agent_pki, i, "/api/v1/nodes/w9");
            status == 401 && body.contains("was revoked")
        });
    }
    let took = deleted.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let revocations = c.cli(&["get", "revocations", "-o", "json"]);
    assert!(String::from_utf8_lossy(&revocations.stdout).contains("agent/w9"));

    // A removed member's certificate loses its rights on the others at once.
    let m2_pki = c.members[2].dir.join("pki");
    assert_eq!(
        as_node(&c, &m2_pki, 0, "/api/v1/nodes").0,
        200,
        "a member may read"
    );
    let out = c.cli(&["member", "remove", "m2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for i in 0..2 {
        c.wait_until(&format!("member {i} refuses m2"), Duration::from_secs(10), |c| {
            let (status, body) = as_node(c, &m2_pki, i, "/api/v1/nodes");
            status == 401 && body.contains("was revoked")
        });
    }
}

#[test]
fn a_worker_and_a_gateway_renew_short_lived_certificates_while_serving() {
    let s = Skiff::start_with(&["--node-cert-lifetime".into(), "6s".into()]);
    let app = crate::harness::repo_root().join("examples/hello-http/app.yaml");
    s.cli_ok(&["apply", "-f", app.to_str().expect("utf-8")]);
    s.wait_until("the gateway serves hello", Duration::from_secs(60), || {
        s.gateway_get("/").is_some_and(|(status, _)| status == 200)
    });
    let cert = |who: &str| {
        std::fs::read_to_string(s.state_dir().join(who).join("pki").join("node.crt")).unwrap_or_default()
    };
    let mut seen: std::collections::BTreeMap<&str, std::collections::BTreeSet<String>> = Default::default();
    let (mut served, mut failed) = (0, Vec::new());
    // Three lifetimes: each certificate must be replaced at least twice while every request is
    // answered (the old certificate still works until its successor is in place).
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while std::time::Instant::now() < deadline {
        for who in ["agent", "gateway"] {
            seen.entry(who).or_default().insert(cert(who));
        }
        match s.gateway_get("/") {
            Some((200, _)) => served += 1,
            other => failed.push(other),
        }
        if seen.values().all(|certs| certs.len() >= 3) && served > 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        failed.is_empty(),
        "requests failed while certificates were renewed: {failed:?}"
    );
    for (who, certs) in &seen {
        assert!(
            certs.len() >= 3,
            "the {who}'s certificate was renewed {} times in 40 s with a 6 s lifetime\n{}",
            certs.len().saturating_sub(1),
            s.log()
        );
    }
    // The renewed certificate is what the worker presents: the control plane still hears its
    // heartbeats (a stale certificate would have expired by now).
    let node: Value = serde_json::from_str(&s.cli_ok(&["get", "node", "local", "-o", "json"])).expect("json");
    assert_eq!(node["status"]["ready"], true, "{node}");
}

#[test]
fn control_members_renew_their_certificates_while_writes_flow() {
    let c = crate::cluster::Cluster::start(3, &["--member-cert-lifetime", "6s"]);
    let cert =
        |i: usize| std::fs::read_to_string(c.members[i].dir.join("pki").join("node.crt")).unwrap_or_default();
    let mut seen: Vec<std::collections::BTreeSet<String>> = vec![Default::default(); 3];
    let (mut written, mut failed) = (0usize, Vec::new());
    // Writes go to every member in turn (followers forward them to the leader over HTTPS with
    // their member certificates; Raft replicates them over the peer transport).
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    let mut n = 0usize;
    while std::time::Instant::now() < deadline {
        for (i, certs) in seen.iter_mut().enumerate() {
            certs.insert(cert(i));
        }
        n += 1;
        let ns = serde_json::json!({"apiVersion": "skiff.dev/v1", "kind": "Namespace",
            "metadata": {"name": format!("renew-{}", n % 20), "labels": {"n": n.to_string()}}});
        let url = format!("{}/api/v1/apply", c.url(n % 3));
        match c
            .http
            .post(url)
            .bearer_auth(&c.token)
            .json(&serde_json::json!({"objects": [ns]}))
            .send()
        {
            Ok(r) if r.status().is_success() => written += 1,
            Ok(r) => failed.push(format!("{} {}", r.status(), r.text().unwrap_or_default())),
            Err(e) => failed.push(e.to_string()),
        }
        if seen.iter().all(|s| s.len() >= 3) && written > 50 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        failed.is_empty(),
        "{} writes failed while members renewed: {failed:?}",
        failed.len()
    );
    for (i, certs) in seen.iter().enumerate() {
        assert!(
            certs.len() >= 3,
            "member {i}'s certificate was renewed {} times in 45 s with a 6 s lifetime\n{}",
            certs.len().saturating_sub(1),
            c.logs()
        );
        // A new connection gets the renewed certificate: the one on disk, or a newer one.
        let file = c.members[i].dir.join("pki").join("node.crt");
        let addr = format!("{}:{}", c.members[i].host, c.members[i].api);
        let before = crate::harness::certificate_der(&file);
        let presented = crate::harness::presented_certificate(&addr, &c.ca());
        let after = crate::harness::certificate_der(&file);
        assert!(
            presented == before || presented == after,
            "member {i} presents a stale certificate"
        );
    }
}
