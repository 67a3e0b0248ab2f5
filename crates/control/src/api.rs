//! The REST API: routes, request parsing and answers.
use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use skiff_api::{Kind, LabelSelector, Object, ObjectList};
use skiff_state::Op;

use crate::answers;
use crate::error::ApiError;
use crate::ids;
use crate::plane::ControlPlane;
use crate::reads::{FieldSelector, Filter, consistent_read};
use crate::watch;

/// Largest JSON body accepted (objects and multi-object applies).
const MAX_JSON_BODY: usize = 4 << 20;
/// Most objects in one apply.
const MAX_APPLY_OBJECTS: usize = 1000;

mod artifacts;
use artifacts::{copy_artifact, download_artifact, upload_artifact};

impl ControlPlane {
    /// The API router (no socket: tests call it directly): every request passes access control
    /// (authentication, authorization, audit) before its handler.
    pub fn router(&self) -> Router {
        self.routes(true)
    }

    /// The API router without access control: anyone may do anything and nothing is audited.
    /// Only for measuring what access control costs (`bench/access.sh`); never serve it.
    #[doc(hidden)]
    pub fn router_without_access_control_for_benchmarks(&self) -> Router {
        self.routes(false)
    }

    fn routes(&self, guarded: bool) -> Router {
        let objects = Router::new()
            .route("/api/v1/namespaces", get(list_cluster_ns).post(create_cluster_ns))
            .route(
                "/api/v1/namespaces/{name}",
                get(get_ns).put(replace_ns).delete(delete_ns),
            )
            .route(
                "/api/v1/namespaces/{ns}/{plural}",
                get(list_namespaced).post(create_namespaced),
            )
            .route(
                "/api/v1/namespaces/{ns}/{plural}/{name}",
                get(get_namespaced)
                    .put(replace_namespaced)
                    .delete(delete_namespaced),
            )
            .route(
                "/api/v1/namespaces/{ns}/{plural}/{name}/{sub}",
                get(get_sub).put(put_sub),
            )
            .route("/api/v1/{plural}", get(list_cluster).post(create_cluster))
            .route(
                "/api/v1/{plural}/{name}",
                get(get_cluster).put(replace_cluster).delete(delete_cluster),
            )
            .route(
                "/api/v1/{plural}/{name}/status",
                axum::routing::put(status_cluster),
            )
            .route("/api/v1/apply", post(apply_many))
            .route("/api/v1/topics", get(crate::functions::list_all_topics))
            .route("/api/v1/keyvalue", get(crate::keyvalue::list_all_stores))
            .route(
                "/api/v1/namespaces/{ns}/keyvalue",
                get(crate::keyvalue::list_stores),
            )
            .route(
                "/api/v1/namespaces/{ns}/keyvalue/{store}",
                get(crate::keyvalue::list_keys),
            )
            .route(
                "/api/v1/namespaces/{ns}/keyvalue/{store}/keys/{*key}",
                get(crate::keyvalue::get_value)
                    .put(crate::keyvalue::put_value)
                    .delete(crate::keyvalue::delete_value)
                    .post(crate::keyvalue::increment),
            )
            .route(
                "/api/v1/namespaces/{ns}/topics",
                get(crate::functions::list_topics),
            )
            .route(
                "/api/v1/namespaces/{ns}/topics/{topic}",
                get(crate::functions::get_topic),
            )
            .route(
                "/api/v1/namespaces/{ns}/topics/{topic}/events",
                get(crate::functions::list_events).post(crate::functions::publish),
            )
            .route(
                "/api/v1/namespaces/{ns}/functions/{name}/invoke",
                post(crate::functions::invoke),
            )
            .route(
                "/api/v1/namespaces/{ns}/functions/{name}/activate",
                post(crate::functions::activate),
            )
            .layer(DefaultBodyLimit::max(MAX_JSON_BODY));
        let artifacts = Router::new()
            .route("/api/v1/artifacts", post(upload_artifact))
            .route(
                "/api/v1/artifacts/{digest}",
                get(download_artifact).put(copy_artifact),
            )
            .layer(DefaultBodyLimit::max(self.inner.artifacts.max_bytes()));
        let routes = Router::new()
            .merge(objects)
            .merge(artifacts)
            .route("/api/v1/cluster", get(cluster))
            .route("/api/v1/members", get(members))
            .route("/api/v1/members/{name}", axum::routing::delete(remove_member))
            .route("/api/v1/snapshot", get(snapshot))
            .route("/api/v1/audit", get(crate::access::list_audit))
            .route("/api/v1/join", post(crate::join::join_node))
            .route("/api/v1/renew", post(crate::join::renew_node))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/openapi.json", get(openapi))
            .fallback(|| async { ApiError::not_found("no such API path: see docs/api.md for the routes") })
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                crate::forward::forward_writes,
            ));
        let routes = if guarded {
            routes.layer(axum::middleware::from_fn_with_state(
                self.clone(),
                crate::access::guard,
            ))
        } else {
            routes
        };
        routes
            .layer(axum::middleware::from_fn(crate::json_errors::json_errors))
            .with_state(self.clone())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    #[serde(default)]
    pub(crate) label_selector: Option<String>,
    #[serde(default)]
    pub(crate) field_selector: Option<String>,
    #[serde(default)]
    pub(crate) watch: Option<bool>,
    #[serde(default)]
    pub(crate) resource_version: Option<u64>,
    #[serde(default)]
    pub(crate) consistency: Option<String>,
}

fn kind_from_plural(plural: &str) -> Result<Kind, ApiError> {
    Kind::ALL
        .into_iter()
        .find(|k| k.plural() == plural)
        .ok_or_else(|| {
            let all: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
            ApiError::not_found(format!(
                "unknown resource type {plural:?}: expected one of {}",
                all.join(", ")
            ))
        })
}

fn namespaced_kind(plural: &str) -> Result<Kind, ApiError> {
    let k = kind_from_plural(plural)?;
    if !k.namespaced() {
        return Err(ApiError::not_found(format!(
            "{k} is cluster-scoped: use /api/v1/{plural} without a namespace"
        )));
    }
    Ok(k)
}

fn cluster_kind(plural: &str) -> Result<Kind, ApiError> {
    kind_from_plural(plural)
}

fn parse_object(
    body: &[u8],
    kind: Kind,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Object, ApiError> {
    let mut o: Object = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("request body is not a valid skiff.dev/v1 {kind}: {e}"))
    })?;
    if o.kind() != kind {
        return Err(ApiError::bad_request(format!(
            "body is a {}, but the URL is for {kind}",
            o.kind()
        )));
    }
    if let Some(ns) = namespace {
        match &o.meta().namespace {
            Some(b) if b != ns => {
                return Err(ApiError::bad_request(format!(
                    "body is in namespace {b:?}, but the URL is for namespace {ns:?}"
                )));
            }
            _ => o.meta_mut().namespace = Some(ns.to_owned()),
        }
    }
    if let Some(n) = name
        && o.meta().name != n
    {
        return Err(ApiError::bad_request(format!(
            "body names {:?}, but the URL is for {n:?}",
            o.meta().name
        )));
    }
    o.validate_for_server()
        .map_err(|e| ApiError::invalid(&o.describe(), &e))?;
    Ok(o)
}

fn check_writable(kind: Kind) -> Result<(), ApiError> {
    if kind.user_writable() {
        Ok(())
    } else {
        Err(ApiError::new(
            skiff_api::ErrorCode::Forbidden,
            format!("{kind} objects are written by Skiff itself"),
        ))
    }
}

async fn read_gate(plane: &ControlPlane, q: &ListQuery) -> Result<(), ApiError> {
    consistent_read(plane, q.consistency.as_deref()).await
}

async fn list_or_watch(
    plane: ControlPlane,
    watcher: Option<Extension<crate::watchers::Watcher>>,
    kind: Kind,
    namespace: Option<String>,
    q: ListQuery,
) -> Result<Response, ApiError> {
    let labels: LabelSelector = q
        .label_selector
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(|e: skiff_api::SelectorError| ApiError::bad_request(e.to_string()))?;
    let filter = Filter {
        kind,
        namespace,
        labels,
        fields: FieldSelector::parse(q.field_selector.as_deref())?,
    };
    if q.watch.unwrap_or(false) {
        return watch::serve(plane, watcher.map(|w| w.0), filter, q.resource_version).await;
    }
    read_gate(&plane, &q).await?;
    let (rev, items) = plane
        .inner
        .reader
        .list(kind, filter.namespace.as_deref(), &filter.labels)?;
    let mut items: Vec<Object> = items.into_iter().filter(|o| filter.fields.matches(o)).collect();
    for o in &mut items {
        plane.reveal(o)?;
    }
    Ok(Json(ObjectList {
        resource_version: rev,
        items,
    })
    .into_response())
}

async fn get_object(
    plane: ControlPlane,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
    q: ListQuery,
) -> Result<Json<Object>, ApiError> {
    read_gate(&plane, &q).await?;
    let mut object = plane.inner.reader.get(kind, ns, name)?;
    plane.reveal(&mut object)?;
    Ok(Json(object))
}

async fn create_object(
    plane: ControlPlane,
    kind: Kind,
    ns: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    check_writable(kind)?;
    let o = parse_object(body, kind, ns, None)?;
    let out = plane
        .propose(vec![Op::Create {
            object: o,
            uid: ids::uid(),
        }])
        .await?;
    Ok((StatusCode::CREATED, Json(first(out)?)).into_response())
}

/// Replaces an object's spec and metadata (`status_only: false`, status kept) or only its status.
async fn update_object(
    plane: ControlPlane,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
    body: &[u8],
    status_only: bool,
) -> Result<Json<Object>, ApiError> {
    if !status_only {
        check_writable(kind)?;
    }
    let object = parse_object(body, kind, ns, Some(name))?;
    let mut ops = Vec::new();
    if status_only && let Object::Pod(new) = &object {
        ops.extend(pod_events(&plane, ns, name, new));
    }
    // The object goes last: its stored form is what the call returns.
    ops.push(if status_only {
        Op::UpdateStatus { object }
    } else {
        Op::Replace { object }
    });
    Ok(Json(first(plane.propose(ops).await?)?))
}

/// The events an agent's pod status report deserves (none when the pod cannot be read: the
/// status write then fails on its own).
fn pod_events(plane: &ControlPlane, ns: Option<&str>, name: &str, new: &skiff_api::Pod) -> Vec<Op> {
    let Ok(Object::Pod(old)) = plane.inner.reader.get(Kind::Pod, ns, name) else {
        return Vec::new();
    };
    let involved = skiff_api::ObjectReference::to(Kind::Pod, &old.metadata);
    let existing = [
        skiff_controllers::STARTED,
        skiff_controllers::RESTARTED,
        skiff_controllers::BACK_OFF,
        skiff_controllers::UNHEALTHY,
        skiff_controllers::FAILED,
        skiff_controllers::COMPLETED,
        skiff_controllers::FUEL_THROTTLED,
        skiff_controllers::OUTBOUND_DENIED,
    ]
    .into_iter()
    .filter_map(|reason| {
        let event_name = skiff_controllers::event_name(&involved, reason);
        match plane
            .inner
            .reader
            .get(Kind::Event, Some(involved.event_namespace()), &event_name)
        {
            Ok(Object::Event(e)) => Some(e),
            _ => None,
        }
    })
    .collect();
    skiff_controllers::pod_status_events(
        existing,
        &old,
        &new.status,
        std::time::SystemTime::now(),
        &mut skiff_controllers::RandomIds,
    )
}

async fn delete_object(
    plane: ControlPlane,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<Json<Object>, ApiError> {
    check_writable(kind)?;
    let op = Op::Delete {
        kind,
        namespace: ns.map(str::to_owned),
        name: name.to_owned(),
        uid: None,
        resource_version: None,
    };
    // A deleted node's certificates are revoked in the same command: nothing can use them once
    // the node is gone, on any member.
    let mut ops = vec![op];
    if kind == Kind::Node {
        ops.push(crate::access::revocation_op("agent", name, "node deleted"));
    }
    let mut out = plane.propose(ops).await?;
    out.truncate(1);
    Ok(Json(first(out)?))
}

fn first(mut v: Vec<Object>) -> Result<Object, ApiError> {
    v.pop()
        .ok_or_else(|| ApiError::internal("command applied without output"))
}

// --- route adapters -------------------------------------------------------------------------

async fn list_cluster_ns(
    State(p): State<ControlPlane>,
    watcher: Option<Extension<crate::watchers::Watcher>>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    list_or_watch(p, watcher, Kind::Namespace, None, q).await
}
async fn create_cluster_ns(State(p): State<ControlPlane>, body: Bytes) -> Result<Response, ApiError> {
    create_object(p, Kind::Namespace, None, &body).await
}
async fn get_ns(
    State(p): State<ControlPlane>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Object>, ApiError> {
    get_object(p, Kind::Namespace, None, &name, q).await
}
async fn replace_ns(
    State(p): State<ControlPlane>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    update_object(p, Kind::Namespace, None, &name, &body, false).await
}
async fn delete_ns(
    State(p): State<ControlPlane>,
    Path(name): Path<String>,
) -> Result<Json<Object>, ApiError> {
    delete_object(p, Kind::Namespace, None, &name).await
}
async fn list_namespaced(
    State(p): State<ControlPlane>,
    watcher: Option<Extension<crate::watchers::Watcher>>,
    Path((ns, plural)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    list_or_watch(p, watcher, namespaced_kind(&plural)?, Some(ns), q).await
}
async fn create_namespaced(
    State(p): State<ControlPlane>,
    Path((ns, plural)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    create_object(p, namespaced_kind(&plural)?, Some(&ns), &body).await
}
async fn get_namespaced(
    State(p): State<ControlPlane>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Object>, ApiError> {
    get_object(p, namespaced_kind(&plural)?, Some(&ns), &name, q).await
}
async fn replace_namespaced(
    State(p): State<ControlPlane>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    update_object(p, namespaced_kind(&plural)?, Some(&ns), &name, &body, false).await
}
async fn delete_namespaced(
    State(p): State<ControlPlane>,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> Result<Json<Object>, ApiError> {
    delete_object(p, namespaced_kind(&plural)?, Some(&ns), &name).await
}
async fn get_sub(
    State(p): State<ControlPlane>,
    Path((ns, plural, name, sub)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let kind = namespaced_kind(&plural)?;
    match (kind, sub.as_str()) {
        (Kind::Pod, "log") => pod_log(p, &ns, &name).await,
        (_, "status") => Ok(get_object(p, kind, Some(&ns), &name, ListQuery::default())
            .await?
            .into_response()),
        _ => Err(ApiError::not_found(format!(
            "{kind} has no sub-resource {sub:?} (pods have log; all have status)"
        ))),
    }
}
async fn put_sub(
    State(p): State<ControlPlane>,
    Path((ns, plural, name, sub)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    let kind = namespaced_kind(&plural)?;
    if sub != "status" {
        return Err(ApiError::not_found(format!(
            "cannot write sub-resource {sub:?}: only status is writable"
        )));
    }
    update_object(p, kind, Some(&ns), &name, &body, true).await
}
async fn list_cluster(
    State(p): State<ControlPlane>,
    watcher: Option<Extension<crate::watchers::Watcher>>,
    Path(plural): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    list_or_watch(p, watcher, cluster_kind(&plural)?, None, q).await
}
async fn create_cluster(
    State(p): State<ControlPlane>,
    Path(plural): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = cluster_kind(&plural)?;
    if kind.namespaced() {
        return Err(ApiError::not_found(format!(
            "{kind} is namespaced: POST to /api/v1/namespaces/{{namespace}}/{plural}"
        )));
    }
    create_object(p, kind, None, &body).await
}
async fn get_cluster(
    State(p): State<ControlPlane>,
    Path((plural, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Object>, ApiError> {
    let kind = cluster_only(&plural)?;
    get_object(p, kind, None, &name, q).await
}
async fn replace_cluster(
    State(p): State<ControlPlane>,
    Path((plural, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    update_object(p, cluster_only(&plural)?, None, &name, &body, false).await
}
async fn delete_cluster(
    State(p): State<ControlPlane>,
    Path((plural, name)): Path<(String, String)>,
) -> Result<Json<Object>, ApiError> {
    delete_object(p, cluster_only(&plural)?, None, &name).await
}
async fn status_cluster(
    State(p): State<ControlPlane>,
    Path((plural, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    update_object(p, cluster_only(&plural)?, None, &name, &body, true).await
}

fn cluster_only(plural: &str) -> Result<Kind, ApiError> {
    let kind = cluster_kind(plural)?;
    if kind.namespaced() {
        return Err(ApiError::not_found(format!(
            "{kind} is namespaced: use /api/v1/namespaces/{{namespace}}/{plural}/{{name}}"
        )));
    }
    Ok(kind)
}

// --- apply, artifacts, logs, health -----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    objects: Vec<serde_json::Value>,
}

/// Creates or updates many objects in ONE command: all are stored, or none.
async fn apply_many(State(p): State<ControlPlane>, body: Bytes) -> Result<Response, ApiError> {
    let body: ApplyBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("apply body must be {{\"objects\": [...]}}: {e}")))?;
    if body.objects.len() > MAX_APPLY_OBJECTS {
        return Err(ApiError::bad_request(format!(
            "{} objects in one apply: at most {MAX_APPLY_OBJECTS}",
            body.objects.len()
        )));
    }
    let mut ops = Vec::new();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, v) in body.objects.into_iter().enumerate() {
        let o: Object = match serde_json::from_value(v) {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("objects[{i}]: {e}"));
                continue;
            }
        };
        if !o.kind().user_writable() {
            problems.push(format!(
                "objects[{i}]: {} objects are written by Skiff itself",
                o.kind()
            ));
            continue;
        }
        if let Err(e) = o.validate_for_server() {
            problems.push(format!("objects[{i}] ({}): {e}", o.describe()));
            continue;
        }
        if !seen.insert(o.describe()) {
            problems.push(format!(
                "objects[{i}]: {} appears twice in one apply",
                o.describe()
            ));
            continue;
        }
        ops.push(Op::Apply {
            object: o,
            uid: ids::uid(),
        });
    }
    if !problems.is_empty() {
        let mut e = ApiError::new(
            skiff_api::ErrorCode::Invalid,
            format!("nothing was applied: {}", problems.join("; ")),
        );
        e.body.details = Some(serde_json::json!(problems));
        return Err(e);
    }
    // Namespaces first, so objects in a namespace created by the same apply find it.
    ops.sort_by_key(|op| match op {
        Op::Apply { object, .. } => Kind::ALL
            .iter()
            .position(|k| *k == object.kind())
            .unwrap_or(usize::MAX),
        _ => usize::MAX,
    });
    let objects = p.propose(ops).await?;
    Ok(Json(serde_json::json!({ "objects": objects })).into_response())
}

/// Fetches a pod's captured output from the agent of its node.
async fn pod_log(p: ControlPlane, ns: &str, name: &str) -> Result<Response, ApiError> {
    let pod = match p.inner.reader.get(Kind::Pod, Some(ns), name)? {
        Object::Pod(pod) => pod,
        _ => return Err(ApiError::internal("pod key holds another kind")),
    };
    let Some(node_name) = pod.spec.node_name.clone() else {
        return Err(ApiError::new(
            skiff_api::ErrorCode::NotScheduled,
            format!(
                "pod {ns}/{name} is not scheduled yet, so it has no logs: see `skiff describe pod {name}`"
            ),
        ));
    };
    let address = match p.inner.reader.get(Kind::Node, None, &node_name)? {
        Object::Node(n) => n.status.address,
        _ => return Err(ApiError::internal("node key holds another kind")),
    };
    let url = format!("{}/skiff/pods/{ns}/{name}/log", address.trim_end_matches('/'));
    let resp = p
        .inner
        .agent_http
        .get(skiff_pki::https::https_url(&url))
        .timeout(answers::AGENT_TIMEOUT)
        .send()
        .await
        .map_err(|e| {
            ApiError::unavailable(format!(
                "node {node_name} at {address} did not answer for logs: {e}"
            ))
        })?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let bytes = answers::read(resp, answers::LOG_BYTES, answers::AGENT_TIMEOUT)
        .await
        .map_err(|e| ApiError::unavailable(format!("reading logs from node {node_name}: {e}")))?;
    if !status.is_success() {
        return Err(ApiError::with_status(
            status,
            skiff_api::ErrorCode::NodeError,
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        bytes,
    )
        .into_response())
}

async fn cluster(State(p): State<ControlPlane>) -> Json<serde_json::Value> {
    Json(p.cluster_info())
}

async fn members(State(p): State<ControlPlane>) -> Json<Vec<crate::members::MemberView>> {
    Json(p.members())
}

async fn remove_member(
    State(p): State<ControlPlane>,
    Path(name): Path<String>,
) -> Result<Json<crate::members::MemberView>, ApiError> {
    Ok(Json(p.remove_member(&name).await?))
}

/// A backup of the whole state, taken after a linearizable read barrier in one read transaction.
async fn snapshot(State(p): State<ControlPlane>) -> Result<Response, ApiError> {
    p.read_barrier().await?;
    let (revision, export) = p.inner.reader.export()?;
    let file = skiff_api::backup::encode(revision, &export, &ids::now());
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_string(),
            ),
            (
                axum::http::HeaderName::from_static("x-skiff-revision"),
                revision.to_string(),
            ),
        ],
        file,
    )
        .into_response())
}

/// The OpenAPI document of this API.
async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}

async fn readyz(State(p): State<ControlPlane>) -> Result<&'static str, ApiError> {
    let status = p.inner.raft.status();
    if status.stopped {
        let why = status.failure.unwrap_or_else(|| "it was shut down".into());
        return Err(ApiError::unavailable(format!(
            "this member's Raft driver has stopped ({why}): it serves nothing until restarted"
        )));
    }
    if status.leader.is_some() {
        Ok("ok")
    } else {
        Err(ApiError::unavailable("no raft leader yet"))
    }
}
