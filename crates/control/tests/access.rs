//! Access control over the real router and a real control plane: every API route × every role,
//! token expiry and revocation, and the audit log.
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use skiff_control::{ControlConfig, ControlPlane};
use tower::ServiceExt;

struct Api {
    dir: tempfile::TempDir,
    plane: ControlPlane,
}

/// Sends one request; `(status, body)`.
async fn call(
    plane: &ControlPlane,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
    id: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    let req = req
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .expect("request");
    let resp = plane.router().oneshot(req).await.expect("answer");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let plane = ControlPlane::open(ControlConfig::new(dir.path()))
            .await
            .expect("plane");
        Api { dir, plane }
    }

    async fn admin(&self, method: &str, uri: &str, body: Value) -> Value {
        let (s, v) = call(
            &self.plane,
            method,
            uri,
            Some(self.plane.admin_token()),
            Some(body),
            None,
        )
        .await;
        assert!(s.is_success(), "{method} {uri}: {s} {v}");
        v
    }

    /// Makes an API token with `role` in `namespaces` (and `expires`); returns its string.
    async fn token(&self, id: &str, role: &str, namespaces: &[&str], expires: Option<&str>) -> String {
        let secret = format!("{id}{}", "s".repeat(32 - id.len()));
        let mut spec = json!({
            "secretHash": hex::encode(Sha256::digest(secret.as_bytes())),
            "role": role,
            "namespaces": namespaces,
        });
        if let Some(e) = expires {
            spec["expires"] = json!(e);
        }
        self.admin(
            "POST",
            "/api/v1/apitokens",
            json!({"kind": "ApiToken", "metadata": {"name": id}, "spec": spec}),
        )
        .await;
        format!("skt1.{id}.{secret}")
    }
}

fn object(kind: &str, name: &str, ns: &str) -> Value {
    match kind {
        "Secret" | "ConfigMap" => {
            json!({"apiVersion": "skiff.dev/v1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}})
        }
        _ => json!({"apiVersion": "skiff.dev/v1", "kind": kind, "metadata": {"name": name}}),
    }
}

/// Who may: admin always; then edit limited to team-a, and view everywhere.
#[derive(Clone, Copy, Debug)]
struct May {
    edit_a: bool,
    view: bool,
}

const ALL: May = May {
    edit_a: true,
    view: true,
};
const EDIT: May = May {
    edit_a: true,
    view: false,
};
const VIEW: May = May {
    edit_a: false,
    view: true,
};
const ADMIN: May = May {
    edit_a: false,
    view: false,
};

#[tokio::test]
async fn every_route_is_checked_against_every_role_before_its_handler_runs() {
    let api = Api::new().await;
    for ns in ["team-a", "team-b"] {
        api.admin("POST", "/api/v1/namespaces", object("Namespace", ns, ""))
            .await;
        api.admin(
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            object("ConfigMap", "cm", ns),
        )
        .await;
        api.admin(
            "POST",
            &format!("/api/v1/namespaces/{ns}/secrets"),
            object("Secret", "s", ns),
        )
        .await;
    }
    let edit_a = api.token("edita1", "edit", &["team-a"], None).await;
    let view = api.token("view01", "view", &[], None).await;
    let digest = format!("sha256:{}", "0".repeat(64));
    let cm_b = json!({"objects": [object("ConfigMap", "x", "team-b")]});
    let cm_a = json!({"objects": [object("ConfigMap", "x", "team-a")]});
    let routes: Vec<(&str, String, Option<Value>, May)> = vec![
        ("GET", "/api/v1/namespaces".into(), None, VIEW),
        (
            "POST",
            "/api/v1/namespaces".into(),
            Some(object("Namespace", "team-c", "")),
            ADMIN,
        ),
        ("GET", "/api/v1/namespaces/team-a".into(), None, ALL),
        ("GET", "/api/v1/namespaces/team-b".into(), None, VIEW),
        (
            "PUT",
            "/api/v1/namespaces/team-c".into(),
            Some(object("Namespace", "team-c", "")),
            ADMIN,
        ),
        ("GET", "/api/v1/namespaces/team-a/configmaps".into(), None, ALL),
        (
            "POST",
            "/api/v1/namespaces/team-a/configmaps".into(),
            Some(object("ConfigMap", "new", "team-a")),
            EDIT,
        ),
        ("GET", "/api/v1/namespaces/team-b/configmaps".into(), None, VIEW),
        (
            "POST",
            "/api/v1/namespaces/team-b/configmaps".into(),
            Some(object("ConfigMap", "new", "team-b")),
            ADMIN,
        ),
        ("GET", "/api/v1/namespaces/team-a/configmaps/cm".into(), None, ALL),
        (
            "PUT",
            "/api/v1/namespaces/team-a/configmaps/cm".into(),
            Some(object("ConfigMap", "cm", "team-a")),
            EDIT,
        ),
        ("GET", "/api/v1/namespaces/team-a/secrets".into(), None, EDIT),
        ("GET", "/api/v1/namespaces/team-a/secrets/s".into(), None, EDIT),
        ("GET", "/api/v1/namespaces/team-b/secrets/s".into(), None, ADMIN),
        ("GET", "/api/v1/namespaces/team-a/pods/p/log".into(), None, ALL),
        (
            "PUT",
            "/api/v1/namespaces/team-a/pods/p/status".into(),
            Some(json!({})),
            ADMIN,
        ),
        ("GET", "/api/v1/namespaces/team-a/keyvalue".into(), None, ALL),
        ("GET", "/api/v1/namespaces/team-a/keyvalue/st".into(), None, ALL),
        (
            "PUT",
            "/api/v1/namespaces/team-a/keyvalue/st/keys/k".into(),
            Some(json!(1)),
            EDIT,
        ),
        (
            "GET",
            "/api/v1/namespaces/team-a/keyvalue/st/keys/k".into(),
            None,
            ALL,
        ),
        (
            "POST",
            "/api/v1/namespaces/team-a/keyvalue/st/keys/n".into(),
            Some(json!({"delta": 1})),
            EDIT,
        ),
        (
            "DELETE",
            "/api/v1/namespaces/team-a/keyvalue/st/keys/k".into(),
            None,
            EDIT,
        ),
        (
            "PUT",
            "/api/v1/namespaces/team-b/keyvalue/st/keys/k".into(),
            Some(json!(1)),
            ADMIN,
        ),
        ("GET", "/api/v1/namespaces/team-a/topics".into(), None, ALL),
        ("GET", "/api/v1/namespaces/team-a/topics/t".into(), None, ALL),
        (
            "GET",
            "/api/v1/namespaces/team-a/topics/t/events".into(),
            None,
            ALL,
        ),
        (
            "POST",
            "/api/v1/namespaces/team-a/topics/t/events".into(),
            Some(json!([])),
            EDIT,
        ),
        (
            "POST",
            "/api/v1/namespaces/team-a/functions/f/invoke".into(),
            Some(json!({})),
            EDIT,
        ),
        (
            "POST",
            "/api/v1/namespaces/team-a/functions/f/activate".into(),
            Some(json!({})),
            ADMIN,
        ),
        ("GET", "/api/v1/pods".into(), None, VIEW),
        ("GET", "/api/v1/nodes".into(), None, VIEW),
        ("GET", "/api/v1/nodes/n1".into(), None, VIEW),
        ("PUT", "/api/v1/nodes/n1".into(), Some(json!({})), ADMIN),
        ("PUT", "/api/v1/nodes/n1/status".into(), Some(json!({})), ADMIN),
        ("POST", "/api/v1/apply".into(), Some(cm_a), EDIT),
        ("POST", "/api/v1/apply".into(), Some(cm_b), ADMIN),
        ("GET", "/api/v1/topics".into(), None, VIEW),
        ("GET", "/api/v1/keyvalue".into(), None, VIEW),
        ("POST", "/api/v1/artifacts".into(), Some(json!("not wasm")), EDIT),
        ("GET", format!("/api/v1/artifacts/{digest}"), None, ALL),
        (
            "PUT",
            format!("/api/v1/artifacts/{digest}"),
            Some(json!("x")),
            ADMIN,
        ),
        ("GET", "/api/v1/cluster".into(), None, ALL),
        ("GET", "/api/v1/members".into(), None, VIEW),
        ("DELETE", "/api/v1/members/nobody".into(), None, ADMIN),
        ("GET", "/api/v1/snapshot".into(), None, ADMIN),
        ("GET", "/api/v1/audit".into(), None, ADMIN),
        (
            "POST",
            "/api/v1/renew".into(),
            Some(json!({"csrPem": "x"})),
            ADMIN,
        ),
        ("GET", "/api/v1/apitokens".into(), None, ADMIN),
        ("GET", "/api/v1/roles".into(), None, ADMIN),
        (
            "POST",
            "/api/v1/roles".into(),
            Some(json!({"kind": "Role", "metadata": {"name": "r"}, "spec": {}})),
            ADMIN,
        ),
        ("GET", "/api/v1/jointokens".into(), None, ADMIN),
        (
            "DELETE",
            "/api/v1/namespaces/team-a/configmaps/new".into(),
            None,
            EDIT,
        ),
        ("DELETE", "/api/v1/namespaces/team-c".into(), None, ADMIN),
    ];
    let admin = api.plane.admin_token().to_owned();
    for (method, uri, body, may) in routes {
        for (who, token, allowed) in [
            ("nobody", None, false),
            (
                "a bad token",
                Some("skt1.nope00.ssssssssssssssssssssssssssssssss"),
                false,
            ),
            ("view", Some(view.as_str()), may.view),
            ("edit in team-a", Some(edit_a.as_str()), may.edit_a),
            ("admin", Some(admin.as_str()), true),
        ] {
            let (status, answer) = call(&api.plane, method, &uri, token, body.clone(), None).await;
            let refused = status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED;
            assert_eq!(
                !refused, allowed,
                "{who}: {method} {uri} answered {status} {answer}"
            );
            if token.is_none() || who == "a bad token" {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{who}: {method} {uri}");
            } else if !allowed {
                let msg = answer["message"].as_str().unwrap_or_default();
                assert!(
                    msg.contains("role does") || msg.contains("acts only in namespaces"),
                    "{who}: {method} {uri}: the refusal says what would allow it: {msg}"
                );
            }
        }
    }
}

#[tokio::test]
async fn refusals_name_the_role_that_would_allow_and_tokens_expire_and_are_revoked() {
    let api = Api::new().await;
    let view = api.token("view02", "view", &[], None).await;
    let (status, v) = call(
        &api.plane,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/x",
        Some(&view),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        v["message"],
        "token:view02 may not delete configmaps in namespace \"default\": role \"view\" does not allow it; the edit role does"
    );

    let expired = api
        .token("old001", "admin", &[], Some("2020-01-01T00:00:00Z"))
        .await;
    let (status, v) = call(&api.plane, "GET", "/api/v1/pods", Some(&expired), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired at 2020-01-01"),
        "{v}"
    );

    let wrong = view.replace(".view02s", ".view02x");
    let (status, _) = call(&api.plane, "GET", "/api/v1/pods", Some(&wrong), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a wrong secret");

    api.admin("DELETE", "/api/v1/apitokens/view02", json!(null)).await;
    let (status, v) = call(&api.plane, "GET", "/api/v1/pods", Some(&view), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked: {v}");
    assert!(
        v["message"].as_str().unwrap_or_default().contains("revoked"),
        "{v}"
    );

    // A token whose role does not exist may do nothing, and says why.
    let orphan = api.token("orph01", "auditor", &[], None).await;
    let (status, v) = call(&api.plane, "GET", "/api/v1/pods", Some(&orphan), None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist"),
        "{v}"
    );
    // Once the Role exists, it allows what its rules say.
    api.admin(
        "POST",
        "/api/v1/roles",
        json!({"kind": "Role", "metadata": {"name": "auditor"},
               "spec": {"rules": [{"verbs": ["list"], "resources": ["pods", "audit"]}]}}),
    )
    .await;
    let (status, v) = call(&api.plane, "GET", "/api/v1/pods", Some(&orphan), None, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, _) = call(&api.plane, "GET", "/api/v1/nodes", Some(&orphan), None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Built-in roles cannot be redefined; bad rules are refused with their paths.
    let (status, v) = call(
        &api.plane,
        "POST",
        "/api/v1/roles",
        Some(api.plane.admin_token()),
        Some(json!({"kind": "Role", "metadata": {"name": "view"},
                    "spec": {"rules": [{"verbs": ["steal"], "resources": ["gold"]}]}})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(msg.contains("built-in role"), "{msg}");
    assert!(msg.contains("spec.rules[0].verbs[0]"), "{msg}");
    assert!(msg.contains("spec.rules[0].resources[0]"), "{msg}");
}

#[tokio::test]
async fn an_apply_a_refused_delete_and_a_failed_login_are_each_audited_once() {
    let api = Api::new().await;
    let view = api.token("view03", "view", &[], None).await;
    let admin = api.plane.admin_token().to_owned();
    let secret = json!({"objects": [{"apiVersion": "skiff.dev/v1", "kind": "Secret",
        "metadata": {"name": "db"}, "data": {"password": "hunter2-in-the-body"}}]});
    let (s, _) = call(
        &api.plane,
        "POST",
        "/api/v1/apply",
        Some(&admin),
        Some(secret),
        Some("apply-1"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &api.plane,
        "DELETE",
        "/api/v1/namespaces/default/secrets/db",
        Some(&view),
        None,
        Some("delete-1"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &api.plane,
        "GET",
        "/api/v1/pods",
        Some("guess"),
        None,
        Some("login-1"),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Reads that are allowed are not audited.
    let (s, _) = call(
        &api.plane,
        "GET",
        "/api/v1/pods",
        Some(&view),
        None,
        Some("read-1"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let (s, v) = call(
            &api.plane,
            "GET",
            "/api/v1/audit?limit=1000",
            Some(&admin),
            None,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        records = v.as_array().cloned().unwrap_or_default();
        if records.iter().any(|r| r["requestId"] == "login-1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let find = |id: &str| {
        records
            .iter()
            .filter(|r| r["requestId"] == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    let apply = find("apply-1");
    assert_eq!(apply.len(), 1, "{records:?}");
    assert_eq!(apply[0]["caller"], "admin");
    assert_eq!(apply[0]["method"], "POST");
    assert_eq!(apply[0]["resource"], "apply");
    assert_eq!(apply[0]["code"], 200);
    let delete = find("delete-1");
    assert_eq!(delete.len(), 1, "{records:?}");
    assert_eq!(delete[0]["caller"], "token:view03");
    assert_eq!(delete[0]["verb"], "delete");
    assert_eq!(delete[0]["resource"], "secrets");
    assert_eq!(delete[0]["namespace"], "default");
    assert_eq!(delete[0]["name"], "db");
    assert_eq!(delete[0]["code"], 403);
    assert!(
        delete[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("the edit role does")
    );
    let login = find("login-1");
    assert_eq!(login.len(), 1, "{records:?}");
    assert_eq!(login[0]["caller"], "anonymous");
    assert_eq!(login[0]["code"], 401);
    assert!(find("read-1").is_empty(), "allowed reads are not audited");

    let file = std::fs::read_to_string(api.dir.path().join("audit").join("audit.log")).expect("audit file");
    assert!(!file.contains("hunter2"), "a Secret value reached the audit log");
    assert!(
        file.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "one JSON object per line"
    );
}

/// Opens a watch as `token`; the response (its body holds the stream open).
async fn open_watch(plane: &ControlPlane, token: &str) -> axum::response::Response {
    let req = Request::get("/api/v1/namespaces/default/configmaps?watch=true")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    plane.router().oneshot(req).await.expect("answer")
}

#[tokio::test]
async fn one_caller_holds_at_most_its_share_of_watches_and_a_closed_one_frees_its_place() {
    let api = Api::new().await;
    let a = api.token("watcha", "view", &[], None).await;
    let b = api.token("watchb", "view", &[], None).await;
    let mut open = Vec::new();
    for _ in 0..128 {
        let w = open_watch(&api.plane, &a).await;
        assert_eq!(w.status(), StatusCode::OK);
        open.push(w);
    }
    let refused = open_watch(&api.plane, &a).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = refused.into_body().collect().await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!(body["code"], "TooManyWatches", "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("token:watcha"),
        "{body}"
    );
    // Another caller is not affected.
    assert_eq!(open_watch(&api.plane, &b).await.status(), StatusCode::OK);
    // A watch whose client went away frees its place once the stream notices.
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let w = open_watch(&api.plane, &a).await;
        if w.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed watch's place was never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
