//! Data in a URL path never leaves its segment: arbitrary names, namespaces, stores, topics and
//! keys — `..`, `/`, `%2e%2e`, `?`, `#`, backslashes, control characters, any Unicode — are sent
//! by the real client to a real HTTP server on loopback whose router has the API's route shapes,
//! and each request must land on the route meant, with the value meant.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{MatchedPath, Path, State};
use axum::http::{Method, Uri};
use axum::routing::{any as any_method, get};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use skiff_api::Kind;
use skiff_client::{Client, ClientError};

/// What the server saw: method, route template (or `fallback`), decoded captures.
type Seen = (String, String, HashMap<String, String>);

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().expect("log"))
    }
}

async fn record(
    State(log): State<Log>,
    method: Method,
    route: MatchedPath,
    Path(params): Path<HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let route = route.as_str().to_owned();
    log.0
        .lock()
        .expect("log")
        .push((method.to_string(), route.clone(), params));
    // An answer every client call accepts: a ConfigMap for object reads, empty otherwise.
    if route.ends_with("/{plural}/{name}") && method == Method::GET {
        let body = r#"{"kind":"ConfigMap","metadata":{"name":"echo"}}"#;
        return ([("content-type", "application/json")], body).into_response();
    }
    if route.ends_with("/events") {
        return ([("content-type", "application/json")], "[]").into_response();
    }
    "".into_response()
}

async fn fallback(State(log): State<Log>, method: Method, uri: Uri) -> axum::http::StatusCode {
    log.0.lock().expect("log").push((
        method.to_string(),
        "fallback".into(),
        HashMap::from([("path".into(), uri.to_string())]),
    ));
    axum::http::StatusCode::NOT_FOUND
}

/// The control plane's route shapes (crates/control/src/api.rs), each answering with [`record`].
async fn server() -> (String, Log) {
    let log = Log::default();
    let app = Router::new()
        .route("/api/v1/namespaces/{ns}/{plural}", any_method(record))
        .route("/api/v1/namespaces/{ns}/{plural}/{name}", any_method(record))
        .route(
            "/api/v1/namespaces/{ns}/{plural}/{name}/{sub}",
            any_method(record),
        )
        .route("/api/v1/namespaces/{ns}/keyvalue/{store}", get(record))
        .route(
            "/api/v1/namespaces/{ns}/keyvalue/{store}/keys/{*key}",
            any_method(record),
        )
        .route(
            "/api/v1/namespaces/{ns}/topics/{topic}/events",
            any_method(record),
        )
        .route(
            "/api/v1/namespaces/{ns}/functions/{name}/invoke",
            any_method(record),
        )
        .route(
            "/api/v1/namespaces/{ns}/functions/{name}/activate",
            any_method(record),
        )
        .route("/api/v1/artifacts/{digest}", any_method(record))
        .fallback(fallback)
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, log)
}

/// Values that URL parsers, routers and decoders treat specially, mixed with anything at all.
fn value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("."),
        Just(".."),
        Just("/"),
        Just("\\"),
        Just("%2e"),
        Just("%2E%2e"),
        Just("%2F"),
        Just("%"),
        Just("?"),
        Just("#"),
        Just(" "),
        Just("\t"),
        Just("\n"),
        Just(";"),
        Just("deployments"),
        Just("configmaps"),
        Just("é"),
    ];
    prop_oneof![
        any::<String>(),
        prop::collection::vec(piece, 1..8).prop_map(|p| p.concat()),
        Just("../../../../../deployments".to_owned()),
        Just("a/../../b".to_owned()),
        Just("%2e%2e/x".to_owned()),
    ]
}

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

/// Whether `v` cannot be a segment at all (the client must refuse it, sending nothing).
fn unsendable(v: &str) -> bool {
    matches!(v, "" | "." | "..")
}

/// Checks one call: refused without a request when a value is unsendable, otherwise exactly one
/// request on `route` with `expected` captures.
fn check<T: std::fmt::Debug>(
    log: &Log,
    result: Result<T, ClientError>,
    values: &[&str],
    method: &str,
    route: &str,
    expected: HashMap<String, String>,
) -> Result<(), TestCaseError> {
    let seen = log.take();
    if values.iter().any(|v| unsendable(v)) {
        prop_assert!(
            matches!(result, Err(ClientError::InvalidPath { .. })),
            "{values:?}: expected a refusal, got {result:?}"
        );
        prop_assert!(seen.is_empty(), "{values:?}: refused yet sent {seen:?}");
        return Ok(());
    }
    prop_assert_eq!(seen.len(), 1, "{:?}: {:?} ({:?})", values, seen, result);
    let (m, r, p) = &seen[0];
    prop_assert_eq!(m.as_str(), method);
    prop_assert_eq!(r.as_str(), route, "{:?} landed elsewhere: {:?}", values, p);
    prop_assert_eq!(p, &expected);
    Ok(())
}

#[test]
fn every_value_lands_on_its_route_as_it_was_given() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (url, log) = rt.block_on(server());
    let client = Client::new(&url, "t").expect("client");
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    runner
        .run(&(value(), value(), value(), value()), |(ns, name, store, key)| {
            rt.block_on(async {
                let r = client.kv_get(&ns, &store, &key).await;
                check(
                    &log,
                    r,
                    &[&ns, &store, &key],
                    "GET",
                    "/api/v1/namespaces/{ns}/keyvalue/{store}/keys/{*key}",
                    params(&[("ns", &ns), ("store", &store), ("key", &key)]),
                )?;
                let r = client.kv_set(&ns, &store, &key, b"v".to_vec()).await;
                check(
                    &log,
                    r,
                    &[&ns, &store, &key],
                    "PUT",
                    "/api/v1/namespaces/{ns}/keyvalue/{store}/keys/{*key}",
                    params(&[("ns", &ns), ("store", &store), ("key", &key)]),
                )?;
                let r = client.get(Kind::ConfigMap, Some(&ns), &name).await;
                check(
                    &log,
                    r,
                    &[&ns, &name],
                    "GET",
                    "/api/v1/namespaces/{ns}/{plural}/{name}",
                    params(&[("ns", &ns), ("plural", "configmaps"), ("name", &name)]),
                )?;
                let r = client.delete(Kind::Secret, Some(&ns), &name).await;
                // The delete's answer is empty, so only where it landed matters here.
                let r = r.map(drop).or_else(|e| match e {
                    ClientError::Decode { .. } => Ok(()),
                    e => Err(e),
                });
                check(
                    &log,
                    r,
                    &[&ns, &name],
                    "DELETE",
                    "/api/v1/namespaces/{ns}/{plural}/{name}",
                    params(&[("ns", &ns), ("plural", "secrets"), ("name", &name)]),
                )?;
                let r = client.logs(&ns, &name).await;
                check(
                    &log,
                    r,
                    &[&ns, &name],
                    "GET",
                    "/api/v1/namespaces/{ns}/{plural}/{name}/{sub}",
                    params(&[("ns", &ns), ("plural", "pods"), ("name", &name), ("sub", "log")]),
                )?;
                let r = client.publish(&ns, &store, &[]).await;
                check(
                    &log,
                    r,
                    &[&ns, &store],
                    "POST",
                    "/api/v1/namespaces/{ns}/topics/{topic}/events",
                    params(&[("ns", &ns), ("topic", &store)]),
                )?;
                let r = client.invoke(&ns, &name, Vec::new(), "text/plain", &[]).await;
                check(
                    &log,
                    r,
                    &[&ns, &name],
                    "POST",
                    "/api/v1/namespaces/{ns}/functions/{name}/invoke",
                    params(&[("ns", &ns), ("name", &name)]),
                )?;
                let r = client.activate(&ns, &name).await;
                check(
                    &log,
                    r,
                    &[&ns, &name],
                    "POST",
                    "/api/v1/namespaces/{ns}/functions/{name}/activate",
                    params(&[("ns", &ns), ("name", &name)]),
                )?;
                let r = client.artifact(&key).await;
                check(
                    &log,
                    r,
                    &[&key],
                    "GET",
                    "/api/v1/artifacts/{digest}",
                    params(&[("digest", &key)]),
                )
            })
        })
        .expect("every request landed on its route");
}

#[test]
fn the_reported_attack_reads_a_literal_key() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (url, log) = server().await;
        let client = Client::new(&url, "t").expect("client");
        for key in [
            "../../../../../deployments",
            "%2e%2e/x",
            "a/../../b",
            "../configmaps",
        ] {
            client.kv_get("demo", "demo", key).await.expect("get");
            let seen = log.take();
            assert_eq!(seen.len(), 1);
            assert_eq!(
                seen[0].1, "/api/v1/namespaces/{ns}/keyvalue/{store}/keys/{*key}",
                "{key}"
            );
            assert_eq!(seen[0].2["key"], key);
        }
        let e = client.kv_get("demo", "demo", "..").await.expect_err("refused");
        assert!(e.to_string().contains("`.` and `..`"), "{e}");
        assert!(log.take().is_empty());
    });
}
