//! Access control: who is calling, whether they may, and a record of it.
//!
//! Every request passes [`guard`] before any handler runs:
//!
//! ```text
//!  request ──► parse (verb, resource, namespace, name) ──► authenticate ──► authorize ──► handler
//!                                                             │ 401            │ 403        │
//!                                                             └────────────────┴────────────┴──► audit line
//! ```
//!
//! | caller | recognised by | may |
//! |---|---|---|
//! | cluster admin | `Authorization: Bearer <admin.token>` | everything |
//! | API token | `Authorization: Bearer skt1.<id>.<secret>` (an [`ApiToken`](skiff_api::ApiToken)) | what its role allows, in its namespaces ([`rbac`]) |
//! | control member | TLS client certificate with a control identity | everything (members forward writes and copy artifacts) |
//! | agent, gateway | TLS client certificate of the node | the node rules ([`nodes`]) |
//!
//! Writes and refused requests are recorded in the member's audit log ([`audit`]); a write a
//! follower forwarded to the leader is recorded once, by the follower, with the leader's answer.
mod nodes;
mod rbac;
mod request;

use std::borrow::Cow;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skiff_api::{ApiToken, AuditRecord, Kind, Object, RoleSpec};
use skiff_pki::{Identity, Role as PeerRole};
use tracing::Instrument;

use rbac::Grant;
use request::Target;

use crate::conn::Conn;
use crate::digest::constant_time_eq;
use crate::error::ApiError;
use crate::headers::REQUEST_ID_HEADER;
use crate::plane::ControlPlane;

/// Largest body read to authorize an apply (the apply route's own limit).
const MAX_INSPECTED_BODY: usize = 4 << 20;

/// Who is calling.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// The cluster admin token.
    Admin,
    /// An API token.
    Token {
        /// Its id.
        id: String,
        /// Its role and namespaces.
        grant: Grant,
    },
    /// A node certificate (control member, agent or gateway).
    Node(Identity),
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Admin => f.write_str("admin"),
            Caller::Token { id, .. } => write!(f, "token:{id}"),
            Caller::Node(i) => write!(f, "{i} (node certificate)"),
        }
    }
}

impl Caller {
    /// How the audit log names the caller.
    fn audit_name(&self) -> String {
        match self {
            Caller::Node(i) => i.to_string(),
            other => other.to_string(),
        }
    }
}

/// Authenticates, authorizes and audits every request.
pub(crate) async fn guard(State(plane): State<ControlPlane>, req: Request, next: Next) -> Response {
    let conn = req.extensions().get::<Conn>().cloned().unwrap_or_default();
    let request_id = request_id(&req);
    let method = req.method().clone();
    let mut record = AuditRecord {
        time: String::new(),
        request_id: request_id.clone(),
        caller: "anonymous".into(),
        source: conn.remote.map(|a| a.to_string()).unwrap_or_default(),
        method: method.to_string(),
        verb: String::new(),
        resource: String::new(),
        namespace: String::new(),
        name: String::new(),
        code: 0,
        reason: String::new(),
    };
    // A write another member forwarded is recorded by that member, with the final answer.
    let forwarded = req.headers().contains_key(crate::headers::FORWARDED_HEADER)
        && conn
            .identity
            .as_ref()
            .is_some_and(|i| matches!(i.role, PeerRole::Control { .. }));
    // Everything the request does is logged under its id, method and path.
    let span =
        tracing::info_span!("request", request = %request_id, method = %method, path = %req.uri().path());
    let mut response = match admit(&plane, &conn, req, &mut record)
        .instrument(span.clone())
        .await
    {
        Ok(req) => next.run(req).instrument(span).await,
        Err(e) => {
            record.reason = e.body.message.clone();
            e.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let status = response.status();
    let write = !matches!(method, Method::GET | Method::HEAD);
    let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    if (write || refused) && !forwarded {
        record.code = status.as_u16();
        record.time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        plane.inner.audit.record(&record).await;
    }
    response
}

/// The request, once its caller is known and allowed; fills in `record` as it learns.
async fn admit(
    plane: &ControlPlane,
    conn: &Conn,
    req: Request,
    record: &mut AuditRecord,
) -> Result<Request, ApiError> {
    let target =
        request::parse(req.method(), req.uri().path(), req.uri().query()).map_err(ApiError::bad_request)?;
    let info = match target {
        Target::Public => {
            if req.uri().path() == "/api/v1/join" {
                record.caller = "join".into();
                record.verb = "create".into();
                record.resource = "join".into();
            }
            return Ok(req);
        }
        Target::Api(info) => {
            record.verb = info.verb.into();
            record.resource = info.resource.clone();
            record.namespace = info.namespace.clone().unwrap_or_default();
            record.name = info.name.clone().unwrap_or_default();
            Some(info)
        }
        Target::Unknown => None,
    };
    let caller = authenticate(plane, conn, &req)?;
    record.caller = caller.audit_name();
    let mut req = req;
    req.extensions_mut()
        .insert(crate::watchers::Watcher(caller.audit_name()));
    let refuse =
        |why: String| ApiError::new(skiff_api::ErrorCode::Forbidden, format!("{caller} may not {why}"));
    match (&caller, info) {
        (Caller::Admin, _) => Ok(req),
        (Caller::Node(i), _) if matches!(i.role, PeerRole::Control { .. }) => Ok(req),
        (_, None) => Err(refuse(format!(
            "{} {}: no such API route (see docs/api.md)",
            req.method(),
            req.uri().path()
        ))),
        (Caller::Token { grant, .. }, Some(info)) if info.resource == "apply" => {
            let (req, body) = buffer(req).await?;
            for (i, (resource, namespace)) in applied_objects(&body)?.into_iter().enumerate() {
                for verb in ["create", "update"] {
                    grant
                        .check(verb, &resource, namespace.as_deref(), None)
                        .map_err(|why| refuse(format!("{why} (objects[{i}] of the apply)")))?;
                }
            }
            Ok(req)
        }
        (Caller::Token { grant, .. }, Some(info)) => grant.check_request(&info).map(|()| req).map_err(refuse),
        (Caller::Node(i), Some(info)) if i.role == PeerRole::Gateway => {
            nodes::gateway(&info).map(|()| req).map_err(refuse)
        }
        (Caller::Node(i), Some(info)) => {
            let decision = nodes::agent(&plane.inner.reader, i, &info).map_err(refuse)?;
            if matches!(decision, nodes::AgentDecision::Allow) {
                return Ok(req);
            }
            let (req, body) = buffer(req).await?;
            match decision {
                nodes::AgentDecision::IfOnlyAgentLabels(stored) => nodes::check_node_update(&stored, &body),
                _ => nodes::check_registration(i, &body),
            }
            .map(|()| req)
            .map_err(refuse)
        }
    }
}

/// Who is calling, from the bearer token or the TLS client certificate.
fn authenticate(plane: &ControlPlane, conn: &Conn, req: &Request) -> Result<Caller, ApiError> {
    let unauthorized = |m: String| ApiError::new(skiff_api::ErrorCode::Unauthorized, m);
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim) else {
        let Some(identity) = conn.identity.clone() else {
            return Err(unauthorized(
                "missing bearer token: send `Authorization: Bearer <token>` (the admin token is in \
                 <state dir>/admin.token; `skiff auth token create` makes others)"
                    .into(),
            ));
        };
        if let Some(at) = revoked_at(plane, &identity, conn.issued_at) {
            return Err(unauthorized(format!(
                "the certificate of {identity} was revoked at {at} (its node was deleted or its member \
                 removed): join again with a new token"
            )));
        }
        return Ok(Caller::Node(identity));
    };
    if !conn.tls
        && let Some(remote) = conn.remote
        && !remote.ip().is_loopback()
    {
        return Err(unauthorized(format!(
            "a bearer token over plain HTTP from {remote} is refused (it would cross the network in \
             clear): use https:// with the cluster CA (<state dir>/pki/ca.crt)"
        )));
    }
    if constant_time_eq(given.as_bytes(), plane.inner.admin_token.as_bytes()) {
        return Ok(Caller::Admin);
    }
    let Some((id, secret)) = skiff_api::parse_api_token(given) else {
        return Err(unauthorized(
            "invalid bearer token: use the admin token (admin.token in a control node's state dir) or \
             an API token (skt1.…) from `skiff auth token create`"
                .into(),
        ));
    };
    let token = match plane.inner.reader.get(Kind::ApiToken, None, id) {
        Ok(Object::ApiToken(t)) => t,
        _ => return Err(unauthorized(format!("token {id} is unknown or was revoked"))),
    };
    let hash = crate::digest::sha256_hex(secret);
    if !constant_time_eq(hash.as_bytes(), token.spec.secret_hash.as_bytes()) {
        return Err(unauthorized(format!("token {id}: wrong secret")));
    }
    if let Some(expires) = &token.spec.expires
        && humantime::parse_rfc3339(expires).is_ok_and(|t| t <= SystemTime::now())
    {
        return Err(unauthorized(format!(
            "token {id} expired at {expires}: make a new one with `skiff auth token create`"
        )));
    }
    Ok(Caller::Token {
        id: id.to_owned(),
        grant: grant_of(plane, &token),
    })
}

/// When `identity`'s certificates issued at `issued` were revoked, if they were.
fn revoked_at(plane: &ControlPlane, identity: &Identity, issued: Option<SystemTime>) -> Option<String> {
    let name = skiff_api::revocation_name(identity.kind(), &identity.name);
    let Ok(Object::Revocation(r)) = plane.inner.reader.get(Kind::Revocation, None, &name) else {
        return None;
    };
    let at = humantime::parse_rfc3339(&r.spec.revoked_at).ok()?;
    // A certificate whose issue time cannot be read is treated as revoked.
    issued.is_none_or(|i| i <= at).then_some(r.spec.revoked_at)
}

/// Records that every certificate of `role/name` issued until now is revoked, in the same
/// command as `ops` (a Node's deletion) or alone.
pub(crate) fn revocation_op(role: &str, name: &str, reason: &str) -> skiff_state::Op {
    skiff_state::Op::Apply {
        object: Object::Revocation(skiff_api::Revocation {
            metadata: skiff_api::ObjectMeta::named(skiff_api::revocation_name(role, name), None),
            spec: skiff_api::RevocationSpec {
                identity: format!("{role}/{name}"),
                revoked_at: crate::ids::now(),
                reason: reason.to_owned(),
            },
            ..Default::default()
        }),
        uid: crate::ids::uid(),
    }
}

/// The role and namespaces of `token`; a role that does not exist grants nothing.
fn grant_of(plane: &ControlPlane, token: &ApiToken) -> Grant {
    let role = &token.spec.role;
    let rules = RoleSpec::builtin(role).map_or_else(
        || match plane.inner.reader.get(Kind::Role, None, role) {
            Ok(Object::Role(r)) => Cow::Owned(r.spec),
            _ => Cow::Owned(RoleSpec::default()),
        },
        Cow::Borrowed,
    );
    Grant {
        role: role.clone(),
        rules,
        namespaces: token.spec.namespaces.clone(),
    }
}

/// The resource and namespace of each object of an apply body.
fn applied_objects(body: &[u8]) -> Result<Vec<(String, Option<String>)>, ApiError> {
    #[derive(Deserialize)]
    struct Body {
        objects: Vec<Head>,
    }
    #[derive(Deserialize)]
    struct Head {
        kind: String,
        #[serde(default)]
        metadata: Meta,
    }
    #[derive(Default, Deserialize)]
    struct Meta {
        #[serde(default)]
        namespace: Option<String>,
    }
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("apply body must be {{\"objects\": [...]}}: {e}")))?;
    body.objects
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let kind: Kind = h
                .kind
                .parse()
                .map_err(|e| ApiError::bad_request(format!("objects[{i}]: {e}")))?;
            let ns = kind.namespaced().then(|| {
                h.metadata
                    .namespace
                    .unwrap_or_else(|| skiff_api::DEFAULT_NAMESPACE.into())
            });
            Ok((kind.plural().to_owned(), ns))
        })
        .collect()
}

/// The client's request id when it is well-formed, or a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(crate::ids::request_id)
}

/// Reads a (small) body so it can be inspected, and puts it back.
async fn buffer(req: Request) -> Result<(Request, bytes::Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_INSPECTED_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
    Ok((Request::from_parts(parts, Body::from(bytes.clone())), bytes))
}

/// `?limit=` of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/v1/audit?limit=N`: this member's newest audit records, oldest first.
pub(crate) async fn list_audit(
    State(plane): State<ControlPlane>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let log = plane.inner.audit.clone();
    let limit = q.limit.unwrap_or(100);
    let records = tokio::task::spawn_blocking(move || log.recent(limit))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(axum::Json(records).into_response())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;

    use super::{Caller, authenticate};
    use crate::conn::Conn;
    use crate::plane::{ControlConfig, ControlPlane};

    #[tokio::test]
    async fn a_bearer_token_over_plain_http_is_accepted_only_from_loopback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plane = ControlPlane::open(ControlConfig::new(dir.path()))
            .await
            .expect("plane");
        let request = || {
            Request::builder()
                .uri("/api/v1/pods")
                .header("authorization", format!("Bearer {}", plane.admin_token()))
                .body(Body::empty())
                .expect("request")
        };
        let conn = |remote: &str, tls: bool| Conn {
            tls,
            identity: None,
            remote: Some(remote.parse().expect("address")),
            issued_at: None,
        };
        let far = authenticate(&plane, &conn("10.1.2.3:40000", false), &request()).expect_err("refused");
        assert_eq!(far.status, axum::http::StatusCode::UNAUTHORIZED);
        assert!(
            far.body.message.contains("over plain HTTP from 10.1.2.3:40000"),
            "{}",
            far.body.message
        );
        for (remote, tls) in [
            ("127.0.0.1:40000", false),
            ("[::1]:40000", false),
            ("10.1.2.3:40000", true),
        ] {
            let caller = authenticate(&plane, &conn(remote, tls), &request()).expect("accepted");
            assert!(matches!(caller, Caller::Admin), "{remote} tls={tls}");
        }
        plane.shutdown();
    }
}
