//! The OpenAPI document (`GET /openapi.json`) against the router it describes: every route the
//! router serves is in the document, every operation in the document reaches a handler, every
//! reference resolves, and a schema name always means one schema. (scripts/api-fuzz.sh then
//! fuzzes a live `skiff up` with schemathesis from this document.)
use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use skiff_control::{ControlConfig, ControlPlane};
use tower::ServiceExt;

/// The route templates the router registers, read from its source.
fn router_routes() -> Vec<String> {
    let src = include_str!("../src/api.rs");
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let quoted = rest.trim_start();
        let path = quoted
            .strip_prefix('"')
            .and_then(|q| q.split_once('"'))
            .map(|(p, _)| p.to_owned())
            .expect("a .route( call starts with a string literal");
        out.push(path);
    }
    assert!(out.len() > 20, "read only {} routes from api.rs", out.len());
    out
}

/// Whether the router's template `route` (with `{plural}`, `{sub}` standing for a word and
/// `{ns}`, `{*key}` named differently) covers the document's `path`.
fn covers(route: &str, path: &str) -> bool {
    let r: Vec<&str> = route.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    r.len() == p.len()
        && r.iter().zip(&p).all(|(r, p)| match *r {
            "{plural}" | "{sub}" => !p.starts_with('{'),
            r if r.starts_with('{') => p.starts_with('{'),
            r => r == *p,
        })
}

fn document() -> Value {
    serde_json::from_str(&skiff_control::openapi::document().to_json().unwrap()).unwrap()
}

#[test]
fn every_route_of_the_router_is_in_the_document() {
    let doc = document();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for route in router_routes() {
        assert!(
            paths.iter().any(|p| covers(&route, p)),
            "the router serves {route} but the document has no path for it"
        );
    }
}

#[test]
fn every_reference_resolves_and_a_name_means_one_schema() {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (name, schema) in skiff_control::openapi::component_schemas() {
        let json = serde_json::to_string(&schema).unwrap();
        if let Some(before) = seen.insert(name.clone(), json.clone()) {
            assert_eq!(before, json, "two different schemas are named {name}");
        }
    }
    let doc = document();
    let components = doc["components"]["schemas"].as_object().unwrap();
    let mut refs = BTreeSet::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "only {} references", refs.len());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("reference {r} is not to a schema component"));
        assert!(components.contains_key(name), "{r} points nowhere");
    }
    // Each kind's schema carries its `kind` tag, as the objects travel.
    for kind in skiff_api::Kind::ALL {
        let s = &components[kind.as_str()];
        assert_eq!(s["properties"]["kind"]["enum"][0], kind.as_str(), "{kind}: {s}");
        assert!(
            s["required"].as_array().unwrap().contains(&"kind".into()),
            "{kind}"
        );
    }
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.insert(r.clone());
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// A value for a path parameter that the router routes (handlers may still refuse it).
fn sample(param: &str) -> &'static str {
    match param {
        "{namespace}" => "default",
        "{digest}" => "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        _ => "x",
    }
}

#[tokio::test]
async fn every_operation_of_the_document_reaches_a_handler_and_errors_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let plane = ControlPlane::open(ControlConfig::new(dir.path())).await.unwrap();
    let doc = document();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let uri: Vec<&str> = path
                .split('/')
                .map(|s| if s.starts_with('{') { sample(s) } else { s })
                .collect();
            let uri = uri.join("/");
            if uri.ends_with("/invoke") {
                continue; // waits for a function's pod; the function does not exist: see below
            }
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header("authorization", format!("Bearer {}", plane.admin_token()))
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let resp = plane.router().oneshot(req).await.unwrap();
            let status = resp.status();
            let kind = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&body);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {text}");
            assert!(
                !text.contains("no such API path"),
                "{method} {uri} is in the document but the router has no such path"
            );
            if status.is_client_error() || status.is_server_error() {
                assert_eq!(
                    kind.as_deref(),
                    Some("application/json"),
                    "{method} {uri}: {text}"
                );
                let e: Value = serde_json::from_slice(&body).unwrap();
                assert!(
                    e["code"].is_string() && e["message"].is_string(),
                    "{method} {uri}: {e}"
                );
            }
            operations += 1;
        }
    }
    assert!(operations > 100, "only {operations} operations");
}

#[tokio::test]
async fn answers_of_the_router_itself_are_json_errors_too() {
    let dir = tempfile::tempdir().unwrap();
    let plane = ControlPlane::open(ControlConfig::new(dir.path())).await.unwrap();
    let token = format!("Bearer {}", plane.admin_token());
    let cases: [(&str, &str, &str, Body, StatusCode, &str); 4] = [
        // A method the path does not take: the router's 405.
        (
            "PATCH",
            "/api/v1/namespaces/default/services/x",
            "",
            Body::empty(),
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
        // A query string that does not parse: the extractor's 400.
        (
            "GET",
            "/api/v1/namespaces/default/services?resourceVersion=minus-one",
            "",
            Body::empty(),
            StatusCode::BAD_REQUEST,
            "BadRequest",
        ),
        // A JSON body of the wrong shape: the extractor's 422.
        (
            "POST",
            "/api/v1/renew",
            "application/json",
            Body::from("[1]"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "BadRequest",
        ),
        // A body over the limit.
        (
            "POST",
            "/api/v1/apply",
            "application/json",
            Body::from(vec![b' '; 5 << 20]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "TooLarge",
        ),
    ];
    for (method, uri, content_type, body, want, code) in cases {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", &token);
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        let resp = plane.router().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let kind = resp.headers().get("content-type").cloned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let e: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{method} {uri}: not JSON: {}", String::from_utf8_lossy(&body)));
        assert_eq!(
            (status, e["code"].as_str()),
            (want, Some(code)),
            "{method} {uri}: {e}"
        );
        assert_eq!(kind.unwrap(), "application/json");
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn the_document_is_served_to_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let plane = ControlPlane::open(ControlConfig::new(dir.path())).await.unwrap();
    let req = Request::builder()
        .uri("/openapi.json")
        .body(Body::empty())
        .unwrap();
    let resp = plane.router().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served, document());
}
