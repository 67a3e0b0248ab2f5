//! The topic and function routes: publishing events, reading topics, invoking and activating
//! functions.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/namespaces/{ns}/topics/{topic}/events` | publish one event (structured JSON, or binary mode with `ce-*` headers) or a JSON list of them; answered once committed through Raft |
//! | `GET /api/v1/namespaces/{ns}/topics/{topic}/events?from=N&limit=M` | stored events |
//! | `GET /api/v1/namespaces/{ns}/topics`, `GET /api/v1/topics` | topics with backlog and each subscriber's lag |
//! | `GET /api/v1/namespaces/{ns}/topics/{topic}` | one topic |
//! | `POST /api/v1/namespaces/{ns}/functions/{name}/invoke` | one call with the request body as the event's data (the function is activated when it has no pod) |
//! | `POST /api/v1/namespaces/{ns}/functions/{name}/activate` | ask for a pod of a function scaled to zero (gateways do, on a request that finds none) |
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skiff_api::{
    CloudEvent, FUNCTION_ERROR_HEADER, Function, Kind, Object, POD_NAME_HEADER, PublishResult, TopicStatus,
    is_internal_topic, topic_name_problem,
};
use skiff_state::Op;

use crate::error::ApiError;
use crate::ids;
use crate::plane::ControlPlane;

/// Largest event (its JSON) a publish takes.
pub(crate) const MAX_EVENT_BYTES: usize = 256 << 10;
/// Most events in one publish.
pub(crate) const MAX_BATCH: usize = 1000;
/// Header naming a publish's idempotency key (a single event).
pub(crate) const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// How long an invocation waits for a pod of a function scaled to zero.
const ACTIVATION_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReadQuery {
    #[serde(default)]
    consistency: Option<String>,
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn barrier(p: &ControlPlane, q: &ReadQuery) -> Result<(), ApiError> {
    crate::reads::consistent_read(p, q.consistency.as_deref()).await
}

fn check_topic(topic: &str) -> Result<(), ApiError> {
    if let Some(why) = topic_name_problem(topic) {
        return Err(ApiError::bad_request(why));
    }
    Ok(())
}

/// The events a publish request carries, completed with the server's defaults.
fn events_of(
    topic: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(CloudEvent, Option<String>)>, ApiError> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = h(header::CONTENT_TYPE.as_str()).unwrap_or_default();
    let mut events: Vec<CloudEvent> = if h("ce-id").is_some() || h("ce-type").is_some() {
        // Binary mode: the body is the data.
        let mut e = CloudEvent {
            specversion: "1.0".into(),
            id: h("ce-id").unwrap_or_default(),
            source: h("ce-source").unwrap_or_default(),
            type_: h("ce-type").unwrap_or_default(),
            subject: h("ce-subject"),
            time: h("ce-time"),
            datacontenttype: (!content_type.is_empty()).then(|| content_type.clone()),
            ..Default::default()
        };
        if content_type.contains("json") {
            e.data = Some(serde_json::from_slice(body).map_err(|err| {
                ApiError::bad_request(format!(
                    "the body is not the JSON its content type {content_type} says: {err}"
                ))
            })?);
        } else if let Ok(text) = std::str::from_utf8(body) {
            e.data = Some(serde_json::Value::String(text.to_owned()));
        } else {
            use base64::Engine as _;
            e.data_base64 = Some(base64::engine::general_purpose::STANDARD.encode(body));
        }
        for (name, value) in headers {
            if let Some(ext) = name.as_str().strip_prefix("ce-")
                && !matches!(ext, "id" | "source" | "type" | "subject" | "time" | "specversion")
                && let Ok(v) = value.to_str()
            {
                e.extensions.insert(ext.to_owned(), v.to_owned());
            }
        }
        vec![e]
    } else {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not JSON: {e}; send a CloudEvent ({{\"type\": ..., \"data\": ...}}), a list of them, or the data with ce-type/ce-id headers"
            ))
        })?;
        let list = match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        let mut out = Vec::new();
        for (i, item) in list.into_iter().enumerate() {
            let e: CloudEvent = serde_json::from_value(item)
                .map_err(|e| ApiError::bad_request(format!("event [{i}] is not a CloudEvent: {e}")))?;
            out.push(e);
        }
        out
    };
    if events.is_empty() {
        return Err(ApiError::bad_request("no event to publish: the list is empty"));
    }
    if events.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "{} events in one publish: at most {MAX_BATCH}; split the batch",
            events.len()
        )));
    }
    let explicit_key = h(IDEMPOTENCY_KEY_HEADER);
    if explicit_key.is_some() && events.len() > 1 {
        return Err(ApiError::bad_request(
            "an Idempotency-Key header names one event: for a batch, give each event its own id (the id dedupes)",
        ));
    }
    let now = ids::now();
    let mut out = Vec::new();
    for (i, mut e) in events.drain(..).enumerate() {
        if e.specversion != "1.0" {
            return Err(ApiError::bad_request(format!(
                "event [{i}]: specversion {:?} is not supported: use 1.0",
                e.specversion
            )));
        }
        if e.data.is_some() && e.data_base64.is_some() {
            return Err(ApiError::bad_request(format!(
                "event [{i}] sets both data and data_base64: keep one"
            )));
        }
        if e.source.is_empty() {
            e.source = format!("/topics/{topic}");
        }
        if e.type_.is_empty() {
            e.type_ = "dev.skiff.event".into();
        }
        if e.time.is_none() {
            e.time = Some(now.clone());
        }
        // A client's id dedupes (with its source); the server's never needs to.
        let key = match (&explicit_key, e.id.is_empty()) {
            (Some(k), _) => Some(k.clone()),
            (None, false) => Some(format!("id:{}:{}", e.source, e.id)),
            (None, true) => None,
        };
        if e.id.is_empty() {
            e.id = ids::uid();
        }
        let size = serde_json::to_vec(&e).map(|v| v.len()).unwrap_or(0);
        if size > MAX_EVENT_BYTES {
            return Err(ApiError::new(
                skiff_api::ErrorCode::TooLarge,
                format!(
                    "event [{i}] is {size} bytes: at most {} KiB; store big payloads elsewhere and publish a reference",
                    MAX_EVENT_BYTES >> 10
                ),
            ));
        }
        out.push((e, key));
    }
    Ok(out)
}

/// `POST …/topics/{topic}/events`.
pub(crate) async fn publish(
    State(p): State<ControlPlane>,
    Path((ns, topic)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_topic(&topic)?;
    if is_internal_topic(&topic) {
        return Err(ApiError::bad_request(format!(
            "topic {topic:?} belongs to a function's cron or MQTT trigger: publish to another topic"
        )));
    }
    let events = events_of(&topic, &headers, &body)?;
    let single = events.len() == 1 && !body.trim_ascii_start().starts_with(b"[");
    let ops: Vec<Op> = events
        .into_iter()
        .map(|(event, key)| Op::Publish {
            namespace: ns.clone(),
            topic: topic.clone(),
            event,
            key,
        })
        .collect();
    let applied = p.propose_applied(ops).await?;
    p.inner.dispatch.notify_one();
    let status = if applied.published.iter().all(|r| r.duplicate) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(if single {
        let r: PublishResult = applied.published.into_iter().next().unwrap_or_default();
        (status, Json(r)).into_response()
    } else {
        (status, Json(applied.published)).into_response()
    })
}

/// `GET …/topics/{topic}/events`.
pub(crate) async fn list_events(
    State(p): State<ControlPlane>,
    Path((ns, topic)): Path<(String, String)>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_topic(&topic)?;
    barrier(&p, &q).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events = p
        .inner
        .reader
        .topic_events(&ns, &topic, q.from.unwrap_or(0), limit)?;
    let items: Vec<serde_json::Value> = events
        .into_iter()
        .map(|(seq, e)| serde_json::json!({"sequence": seq, "event": e}))
        .collect();
    Ok(Json(serde_json::json!({ "topic": topic, "events": items })))
}

/// `GET /api/v1/namespaces/{ns}/topics`.
pub(crate) async fn list_topics(
    State(p): State<ControlPlane>,
    Path(ns): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<Vec<TopicStatus>>, ApiError> {
    barrier(&p, &q).await?;
    Ok(Json(p.inner.reader.topics(Some(&ns))?))
}

/// `GET /api/v1/topics`.
pub(crate) async fn list_all_topics(
    State(p): State<ControlPlane>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<Vec<TopicStatus>>, ApiError> {
    barrier(&p, &q).await?;
    Ok(Json(p.inner.reader.topics(None)?))
}

/// `GET /api/v1/namespaces/{ns}/topics/{topic}`.
pub(crate) async fn get_topic(
    State(p): State<ControlPlane>,
    Path((ns, topic)): Path<(String, String)>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<TopicStatus>, ApiError> {
    check_topic(&topic)?;
    barrier(&p, &q).await?;
    p.inner
        .reader
        .topics(Some(&ns))?
        .into_iter()
        .find(|t| t.name == topic)
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "topic {topic:?} in namespace {ns:?} has no events yet (a topic exists once something is published to it or a function subscribes)"
            ))
        })
}

fn function_of(p: &ControlPlane, ns: &str, name: &str) -> Result<Function, ApiError> {
    match p.inner.reader.get(Kind::Function, Some(ns), name)? {
        Object::Function(f) => Ok(f),
        _ => Err(ApiError::internal("function key holds another kind")),
    }
}

impl ControlPlane {
    /// Records that something wants a pod of the function (the scaler keeps one for its
    /// `scaleDownDelay`); written at most once a second per function.
    pub(crate) async fn activate(&self, ns: &str, name: &str) -> Result<(), ApiError> {
        let f = function_of(self, ns, name)?;
        let fresh = f
            .status
            .last_activation
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .is_some_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(1));
        if fresh {
            return Ok(());
        }
        let mut next = f;
        next.status.last_activation = Some(ids::now());
        next.metadata.resource_version = None;
        self.propose(vec![Op::UpdateStatus {
            object: Object::Function(next),
        }])
        .await?;
        Ok(())
    }
}

/// `POST …/functions/{name}/activate`.
pub(crate) async fn activate(
    State(p): State<ControlPlane>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    p.activate(&ns, &name).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({"activated": name}))).into_response())
}

/// `POST …/functions/{name}/invoke`: one call, with the body as the event's data and `ce-*`
/// headers as its attributes; answered with the function's answer.
pub(crate) async fn invoke(
    State(p): State<ControlPlane>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let f = function_of(&p, &ns, &name)?;
    let deadline = Instant::now() + ACTIVATION_WAIT;
    let ep = loop {
        let ready = p.ready_endpoints(&ns, &name);
        let pick = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as usize)
            .unwrap_or(0);
        if let Some(ep) = ready.get(pick % ready.len().max(1)).cloned() {
            break ep;
        }
        p.activate(&ns, &name).await?;
        if Instant::now() >= deadline {
            return Err(ApiError::unavailable(format!(
                "function {ns}/{name} has no ready pod after {}s: see `skiff get pods -l skiff.dev/function={name}` and `skiff describe function {name}`",
                ACTIVATION_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let timeout = f
        .spec
        .timeout
        .map(|t| t.0)
        .unwrap_or(skiff_api::Resources::DEFAULT_TIMEOUT)
        + Duration::from_secs(5);
    let url = skiff_pki::https::https_url(&format!("{}/", ep.address.trim_end_matches('/')));
    let mut req = p
        .inner
        .agent_http
        .post(url)
        .timeout(timeout)
        .header(POD_NAME_HEADER, format!("{ns}/{}", ep.pod));
    for (name, value) in &headers {
        if name.as_str().starts_with("ce-") || name == header::CONTENT_TYPE {
            req = req.header(name.as_str(), value.as_bytes());
        }
    }
    if !headers.contains_key("ce-type") {
        req = req
            .header("ce-specversion", "1.0")
            .header("ce-id", ids::uid())
            .header("ce-source", "/invoke")
            .header("ce-type", "dev.skiff.invoke");
    }
    let resp = req.body(body).send().await.map_err(|e| {
        ApiError::unavailable(format!("pod {} on node {} did not answer: {e}", ep.pod, ep.node))
    })?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out_headers = HeaderMap::new();
    for name in [
        header::CONTENT_TYPE.as_str(),
        FUNCTION_ERROR_HEADER,
        skiff_api::OVERLOADED_HEADER,
    ] {
        if let Some(v) = resp.headers().get(name)
            && let Ok(v) = axum::http::HeaderValue::from_bytes(v.as_bytes())
            && let Ok(n) = axum::http::HeaderName::from_bytes(name.as_bytes())
        {
            out_headers.insert(n, v);
        }
    }
    if let Ok(v) = axum::http::HeaderValue::from_str(&ep.pod) {
        out_headers.insert(axum::http::HeaderName::from_static("x-skiff-pod"), v);
    }
    let bytes = crate::answers::read(resp, crate::answers::REPLY_BYTES, timeout)
        .await
        .map_err(|e| ApiError::unavailable(format!("reading the answer of pod {}: {e}", ep.pod)))?;
    let mut resp = (status, out_headers, bytes).into_response();
    resp.extensions_mut().insert(crate::json_errors::Relayed);
    Ok(resp)
}
