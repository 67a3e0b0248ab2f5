//! Who may do what: the admin bearer token, and node certificates of the cluster CA.
//!
//! | caller | how it is recognised | may |
//! |---|---|---|
//! | admin | `Authorization: Bearer <admin.token>` (HTTP or HTTPS) | everything |
//! | control node | TLS client certificate with a control identity | everything (members forward writes and copy artifacts) |
//! | agent `N` | TLS client certificate `skiff://agent/N` | read nodes, pods, services, endpoints, routes, events, configmaps, artifacts; read (get, not list or watch) a Secret that a pod bound to `N` references in its namespace; create and update Node `N` and its status; update the status of pods bound to `N` |
//! | gateway | TLS client certificate `skiff://gateway/…` | read routes, services, endpoints (never configmaps or secrets) |
//!
//! A node certificate never grants admin rights: anything else is refused with 403 before it
//! reaches a handler (so nothing changes). `POST /api/v1/join` needs no caller: the join token
//! in its body is the credential.
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use skiff_api::{Kind, Object};
use skiff_peer::{Identity, Role};

use crate::error::ApiError;
use crate::plane::ControlPlane;
use crate::serve::Conn;

/// Largest body an agent may send to a path whose body must be inspected.
const MAX_INSPECTED_BODY: usize = 1 << 20;

/// Authenticates every request and refuses what the caller may not do.
pub(crate) async fn authorize(
    State(plane): State<ControlPlane>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" || (path == "/api/v1/join" && req.method() == Method::POST) {
        return Ok(next.run(req).await);
    }
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    if let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) {
        if !constant_time_eq(given.trim().as_bytes(), plane.inner.admin_token.as_bytes()) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "invalid bearer token: use the admin token (admin.token in a control node's state dir)",
            ));
        }
        return Ok(next.run(req).await);
    }
    let identity = req.extensions().get::<Conn>().and_then(|c| c.identity.clone());
    let Some(identity) = identity else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "missing bearer token: send `Authorization: Bearer <token>` (the admin token is in <state dir>/admin.token)",
        ));
    };
    let req = match identity.role {
        Role::Control { .. } => req,
        Role::Agent => agent_may(&plane, &identity, req).await?,
        Role::Gateway => {
            gateway_may(&identity, &req)?;
            req
        }
    };
    Ok(next.run(req).await)
}

fn forbidden(identity: &Identity, req: &Request, allowed: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{identity} (node certificate) may not {} {}: a node certificate allows {allowed}; \
             use the admin token for this",
            req.method(),
            req.uri().path()
        ),
    )
}

const AGENT_ALLOWS: &str = "registering and updating its own Node, reporting the status of pods \
                            bound to it, and reading";
const AGENT_READS: [&str; 7] = [
    "nodes",
    "pods",
    "services",
    "endpoints",
    "httproutes",
    "events",
    "configmaps",
];
const GATEWAY_READS: [&str; 4] = ["services", "endpoints", "httproutes", "functions"];

/// A resource path: `(plural, namespace, name, sub-resource)`.
type Resource<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// The resource path of a request.
fn resource(path: &str) -> Option<Resource<'_>> {
    let rest = path.strip_prefix("/api/v1/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["namespaces", ns, plural] => Some((plural, Some(ns), None, None)),
        ["namespaces", ns, plural, name] => Some((plural, Some(ns), Some(name), None)),
        ["namespaces", ns, plural, name, sub] => Some((plural, Some(ns), Some(name), Some(sub))),
        [plural] => Some((plural, None, None, None)),
        [plural, name] => Some((plural, None, Some(name), None)),
        [plural, name, sub] => Some((plural, None, Some(name), Some(sub))),
        _ => None,
    }
}

async fn agent_may(plane: &ControlPlane, identity: &Identity, req: Request) -> Result<Request, ApiError> {
    let node = identity.name.as_str();
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if let Some((ns, store)) = kv_path(&path) {
        if node_may_use_store(&plane.inner.reader, node, ns, store) {
            return Ok(req);
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{identity} may use key-value store {ns}/{store} only while a pod bound to node {node} \
                 is granted it (capabilities.keyValue); none is"
            ),
        ));
    }
    let res = resource(&path);
    if method == Method::GET || method == Method::HEAD {
        let readable = match res {
            Some(("artifacts", None, Some(_), None)) | Some(("cluster", None, None, None)) => true,
            Some(("secrets", Some(ns), Some(name), None)) => {
                if node_may_read_secret(&plane.inner.reader, node, ns, name) {
                    return Ok(req);
                }
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "{identity} may read Secret {ns}/{name} only while a pod bound to node {node} \
                         references it (env valueFrom.secretKeyRef); none does"
                    ),
                ));
            }
            Some((plural, _, _, sub)) => AGENT_READS.contains(&plural) && sub.is_none_or(|s| s == "status"),
            None => false,
        };
        return if readable {
            Ok(req)
        } else {
            Err(forbidden(identity, &req, AGENT_ALLOWS))
        };
    }
    match (method.clone(), res) {
        // Its own Node, and its status.
        (Method::PUT, Some(("nodes", None, Some(name), None | Some("status")))) if name == node => Ok(req),
        (Method::POST, Some(("nodes", None, None, None))) => {
            let (req, body) = buffer(req).await?;
            let named = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.pointer("/metadata/name")
                        .and_then(|n| n.as_str())
                        .map(str::to_owned)
                });
            if named.as_deref() == Some(node) {
                Ok(req)
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "{identity} may register only the Node named {node:?} (its certificate's name), not {:?}",
                        named.unwrap_or_default()
                    ),
                ))
            }
        }
        // The status of pods bound to it.
        (Method::PUT, Some(("pods", Some(ns), Some(name), Some("status")))) => {
            let bound = match plane.inner.reader.get(Kind::Pod, Some(ns), name) {
                Ok(Object::Pod(p)) => p.spec.node_name.as_deref() == Some(node),
                _ => false,
            };
            if bound {
                Ok(req)
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "{identity} may report the status only of pods bound to node {node}; pod {ns}/{name} is not"
                    ),
                ))
            }
        }
        _ => Err(forbidden(identity, &req, AGENT_ALLOWS)),
    }
}

/// Whether node `node` may read Secret `ns/name`: some pod in `ns` bound to the node references it
/// through `env[].valueFrom.secretKeyRef` (the rule Kubernetes' node authorizer applies).
/// The namespace and store of a key-value path (`/api/v1/namespaces/{ns}/keyvalue/{store}[/…]`).
fn kv_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (ns, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("keyvalue/")?;
    let store = rest.split('/').next()?;
    (!store.is_empty()).then_some((ns, store))
}

/// Whether a pod bound to `node` has a component granted key-value store `ns/store`.
fn node_may_use_store(reader: &skiff_state::Reader, node: &str, ns: &str, store: &str) -> bool {
    let Ok((_, pods)) = reader.list(Kind::Pod, Some(ns), &skiff_api::LabelSelector::default()) else {
        return false;
    };
    pods.iter().any(|o| match o {
        Object::Pod(p) => {
            p.spec.node_name.as_deref() == Some(node)
                && p.spec
                    .components
                    .iter()
                    .any(|c| c.capabilities.key_value.iter().any(|s| s == store))
        }
        _ => false,
    })
}

pub(crate) fn node_may_read_secret(reader: &skiff_state::Reader, node: &str, ns: &str, name: &str) -> bool {
    let Ok((_, pods)) = reader.list(Kind::Pod, Some(ns), &skiff_api::LabelSelector::default()) else {
        return false;
    };
    pods.iter().any(|o| match o {
        Object::Pod(p) => p.spec.node_name.as_deref() == Some(node) && p.spec.secret_names().contains(&name),
        _ => false,
    })
}

fn gateway_may(identity: &Identity, req: &Request) -> Result<(), ApiError> {
    let readable = (req.method() == Method::GET || req.method() == Method::HEAD)
        && match resource(req.uri().path()) {
            Some((plural, _, _, None)) => GATEWAY_READS.contains(&plural),
            _ => false,
        };
    // Asking for a pod of a function scaled to zero, for a request that found none.
    let activates = req.method() == Method::POST
        && matches!(
            resource(req.uri().path()),
            Some(("functions", Some(_), Some(_), Some("activate")))
        );
    if readable || activates {
        Ok(())
    } else {
        Err(forbidden(
            identity,
            req,
            "reading services, endpoints, routes and functions, and activating functions",
        ))
    }
}

/// Reads a (small) body so it can be inspected, and puts it back.
async fn buffer(req: Request) -> Result<(Request, bytes::Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_INSPECTED_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
    Ok((Request::from_parts(parts, Body::from(bytes.clone())), bytes))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::{kv_path, node_may_use_store, resource};

    #[test]
    fn key_value_paths_name_their_store() {
        assert_eq!(
            kv_path("/api/v1/namespaces/iot/keyvalue/readings/keys/kitchen/count"),
            Some(("iot", "readings"))
        );
        assert_eq!(
            kv_path("/api/v1/namespaces/iot/keyvalue/readings"),
            Some(("iot", "readings"))
        );
        assert_eq!(kv_path("/api/v1/namespaces/iot/keyvalue"), None);
        assert_eq!(kv_path("/api/v1/keyvalue"), None);
        assert_eq!(kv_path("/api/v1/namespaces/iot/pods/p"), None);
    }

    #[test]
    fn a_node_uses_only_stores_granted_to_pods_bound_to_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = std::sync::Arc::new(redb::Database::create(dir.path().join("s.redb")).expect("db"));
        let mut machine = skiff_state::Machine::new(db.clone());
        let txn = db.begin_write().expect("txn");
        machine.init(&txn).expect("init");
        let objects = [
            serde_json::json!({"kind": "Namespace", "metadata": {"name": "iot"}}),
            serde_json::json!({"kind": "Pod", "metadata": {"name": "agg", "namespace": "iot"},
                "spec": {"nodeName": "w1", "components": [{"name": "fn",
                    "wasm": {"digest": format!("sha256:{}", "a".repeat(64)), "world": "function"},
                    "capabilities": {"keyValue": ["readings"]}}]}}),
        ];
        let ops = objects
            .into_iter()
            .enumerate()
            .map(|(i, o)| skiff_state::Op::Create {
                object: serde_json::from_value(o).expect("object"),
                uid: format!("u{i}"),
            })
            .collect();
        let cmd = skiff_state::Command::new("2026-01-01T00:00:00Z", ops);
        machine.apply(&txn, 1, &cmd.encode()).expect("apply");
        txn.commit().expect("commit");
        let reader = skiff_state::Reader::new(db);
        assert!(node_may_use_store(&reader, "w1", "iot", "readings"));
        assert!(
            !node_may_use_store(&reader, "w2", "iot", "readings"),
            "another node"
        );
        assert!(
            !node_may_use_store(&reader, "w1", "iot", "secrets"),
            "an ungranted store"
        );
        assert!(
            !node_may_use_store(&reader, "w1", "default", "readings"),
            "another namespace"
        );
    }

    #[test]
    fn resource_paths() {
        assert_eq!(resource("/api/v1/nodes"), Some(("nodes", None, None, None)));
        assert_eq!(
            resource("/api/v1/nodes/w1/status"),
            Some(("nodes", None, Some("w1"), Some("status")))
        );
        assert_eq!(
            resource("/api/v1/namespaces/default/pods/p/status"),
            Some(("pods", Some("default"), Some("p"), Some("status")))
        );
        assert_eq!(resource("/healthz"), None);
        assert_eq!(resource("/api/v1/a/b/c/d"), None);
    }
}
