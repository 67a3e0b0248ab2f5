//! What a request asks for, in the words roles are written in: a verb, a resource, and where.
//!
//! The parser reads the path the way the router does — segment by segment, each one
//! percent-decoded on its own — so what it decides about is what the handler will act on. A path
//! it does not know is [`Target::Unknown`], which only the cluster admin may call (there is
//! nothing else behind it but the router's 404).
use axum::http::Method;
use percent_encoding::percent_decode_str;

/// The verb, resource, namespace and name of an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    /// `get`, `list`, `watch`, `create`, `update` or `delete`.
    pub(crate) verb: &'static str,
    /// A kind's plural (`deployments`), a sub-resource (`pods/log`) or a route (`keyvalue`).
    pub(crate) resource: String,
    /// The namespace in the path; `None` for cluster-scoped requests and all-namespace lists.
    pub(crate) namespace: Option<String>,
    /// The object, store, topic or member named in the path.
    pub(crate) name: Option<String>,
    /// `?fieldSelector=` of a list or watch.
    pub(crate) field_selector: Option<String>,
}

/// What a request is, for access control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Needs no caller: health checks, and joins (the join token in the body is the credential).
    Public,
    /// An API request.
    Api(RequestInfo),
    /// Nothing the API serves.
    Unknown,
}

/// Reads `method path?query`.
///
/// # Errors
/// A message when a path segment does not decode to UTF-8.
pub(crate) fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Target, String> {
    if matches!(path, "/healthz" | "/readyz" | "/openapi.json")
        || (path == "/api/v1/join" && method == Method::POST)
    {
        return Ok(Target::Public);
    }
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return Ok(Target::Unknown);
    };
    let segs = rest
        .split('/')
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("path segment {s:?} is not UTF-8 once decoded"))
        })
        .collect::<Result<Vec<String>, String>>()?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| format!("the query string is not form-encoded: {e}"))?;
    let param = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let watch = param("watch").is_some_and(|v| matches!(v, "true" | "1" | ""));
    let mut target = route(method, &segs, watch).unwrap_or(Target::Unknown);
    if let Target::Api(info) = &mut target {
        info.field_selector = param("fieldSelector").map(str::to_owned);
    }
    Ok(target)
}

/// The verb of a request on one object or store.
fn object_verb(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET | Method::HEAD => "get",
        Method::PUT | Method::PATCH | Method::POST => "update",
        Method::DELETE => "delete",
        _ => return None,
    })
}

/// The verb of a request on a collection.
fn collection_verb(method: &Method, watch: bool) -> Option<&'static str> {
    Some(match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        _ => return None,
    })
}

fn api(verb: &'static str, resource: &str, namespace: Option<&str>, name: Option<&str>) -> Option<Target> {
    Some(Target::Api(RequestInfo {
        verb,
        resource: resource.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        field_selector: None,
    }))
}

fn route(method: &Method, segs: &[&str], watch: bool) -> Option<Target> {
    let get = matches!(*method, Method::GET | Method::HEAD);
    let post = *method == Method::POST;
    match segs {
        ["namespaces", ns, "keyvalue"] if get => api("list", "keyvalue", Some(ns), None),
        ["namespaces", ns, "keyvalue", store] if get => api("get", "keyvalue", Some(ns), Some(store)),
        ["namespaces", ns, "keyvalue", store, "keys", key @ ..] if !key.concat().is_empty() => {
            api(object_verb(method)?, "keyvalue", Some(ns), Some(store))
        }
        ["namespaces", ns, "topics"] if get => api("list", "topics", Some(ns), None),
        ["namespaces", ns, "topics", topic] if get => api("get", "topics", Some(ns), Some(topic)),
        ["namespaces", ns, "topics", topic, "events"] => api(
            collection_verb(method, watch)?,
            "topics/events",
            Some(ns),
            Some(topic),
        ),
        [
            "namespaces",
            ns,
            "functions",
            name,
            action @ ("invoke" | "activate"),
        ] if post => api("create", &format!("functions/{action}"), Some(ns), Some(name)),
        ["namespaces"] => api(collection_verb(method, watch)?, "namespaces", None, None),
        ["namespaces", name] => api(object_verb(method)?, "namespaces", None, Some(name)),
        ["namespaces", ns, plural] => api(collection_verb(method, watch)?, plural, Some(ns), None),
        ["namespaces", ns, plural, name] if !post => api(object_verb(method)?, plural, Some(ns), Some(name)),
        ["namespaces", ns, plural, name, sub] if get || *method == Method::PUT => api(
            object_verb(method)?,
            &format!("{plural}/{sub}"),
            Some(ns),
            Some(name),
        ),
        ["apply"] if post => api("create", "apply", None, None),
        ["topics"] if get => api("list", "topics", None, None),
        ["keyvalue"] if get => api("list", "keyvalue", None, None),
        ["artifacts"] if post => api("create", "artifacts", None, None),
        ["artifacts", digest] if get || *method == Method::PUT => {
            api(object_verb(method)?, "artifacts", None, Some(digest))
        }
        ["cluster"] if get => api("get", "cluster", None, None),
        ["members"] if get => api("list", "members", None, None),
        ["members", name] if *method == Method::DELETE => api("delete", "members", None, Some(name)),
        ["snapshot"] if get => api("get", "snapshot", None, None),
        ["audit"] if get => api("list", "audit", None, None),
        ["renew"] if post => api("create", "renew", None, None),
        [plural] => api(collection_verb(method, watch)?, plural, None, None),
        [plural, name] if !post => api(object_verb(method)?, plural, None, Some(name)),
        [plural, name, "status"] if *method == Method::PUT => {
            api("update", &format!("{plural}/status"), None, Some(name))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::{RequestInfo, Target, parse};

    fn info(verb: &'static str, resource: &str, ns: Option<&str>, name: Option<&str>) -> Target {
        Target::Api(RequestInfo {
            verb,
            resource: resource.into(),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            field_selector: None,
        })
    }

    #[test]
    fn every_route_of_the_api() {
        let d = Some("default");
        let cases: &[(Method, &str, Option<&str>, Target)] = &[
            (Method::GET, "/healthz", None, Target::Public),
            (Method::GET, "/readyz", None, Target::Public),
            (Method::GET, "/openapi.json", None, Target::Public),
            (Method::POST, "/api/v1/join", None, Target::Public),
            (
                Method::GET,
                "/api/v1/join",
                None,
                info("list", "join", None, None),
            ),
            (
                Method::GET,
                "/api/v1/namespaces",
                None,
                info("list", "namespaces", None, None),
            ),
            (
                Method::POST,
                "/api/v1/namespaces",
                None,
                info("create", "namespaces", None, None),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/team-a",
                None,
                info("delete", "namespaces", None, Some("team-a")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                None,
                info("list", "pods", d, None),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                Some("watch=true&resourceVersion=3"),
                info("watch", "pods", d, None),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/deployments",
                None,
                info("create", "deployments", d, None),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/p",
                None,
                info("get", "pods", d, Some("p")),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/default/pods/p",
                None,
                info("update", "pods", d, Some("p")),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/default/secrets/s",
                None,
                info("delete", "secrets", d, Some("s")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/p/log",
                None,
                info("get", "pods/log", d, Some("p")),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/default/pods/p/status",
                None,
                info("update", "pods/status", d, Some("p")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/keyvalue",
                None,
                info("list", "keyvalue", d, None),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/keyvalue/s",
                None,
                info("get", "keyvalue", d, Some("s")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/keyvalue/s/keys/a/b",
                None,
                info("get", "keyvalue", d, Some("s")),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/default/keyvalue/s/keys/..%2F..%2Fx",
                None,
                info("update", "keyvalue", d, Some("s")),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/keyvalue/s/keys/n",
                None,
                info("update", "keyvalue", d, Some("s")),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/default/keyvalue/s/keys/n",
                None,
                info("delete", "keyvalue", d, Some("s")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/topics",
                None,
                info("list", "topics", d, None),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/topics/t",
                None,
                info("get", "topics", d, Some("t")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/topics/t/events",
                None,
                info("list", "topics/events", d, Some("t")),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/topics/t/events",
                None,
                info("create", "topics/events", d, Some("t")),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/functions/f/invoke",
                None,
                info("create", "functions/invoke", d, Some("f")),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/functions/f/activate",
                None,
                info("create", "functions/activate", d, Some("f")),
            ),
            (
                Method::GET,
                "/api/v1/pods",
                None,
                info("list", "pods", None, None),
            ),
            (
                Method::GET,
                "/api/v1/nodes/w1",
                None,
                info("get", "nodes", None, Some("w1")),
            ),
            (
                Method::PUT,
                "/api/v1/nodes/w1/status",
                None,
                info("update", "nodes/status", None, Some("w1")),
            ),
            (
                Method::POST,
                "/api/v1/apply",
                None,
                info("create", "apply", None, None),
            ),
            (
                Method::GET,
                "/api/v1/topics",
                None,
                info("list", "topics", None, None),
            ),
            (
                Method::GET,
                "/api/v1/keyvalue",
                None,
                info("list", "keyvalue", None, None),
            ),
            (
                Method::POST,
                "/api/v1/artifacts",
                None,
                info("create", "artifacts", None, None),
            ),
            (
                Method::GET,
                "/api/v1/artifacts/sha256:ab",
                None,
                info("get", "artifacts", None, Some("sha256:ab")),
            ),
            (
                Method::PUT,
                "/api/v1/artifacts/sha256:ab",
                None,
                info("update", "artifacts", None, Some("sha256:ab")),
            ),
            (
                Method::GET,
                "/api/v1/cluster",
                None,
                info("get", "cluster", None, None),
            ),
            (
                Method::GET,
                "/api/v1/members",
                None,
                info("list", "members", None, None),
            ),
            (
                Method::DELETE,
                "/api/v1/members/c2",
                None,
                info("delete", "members", None, Some("c2")),
            ),
            (
                Method::GET,
                "/api/v1/snapshot",
                None,
                info("get", "snapshot", None, None),
            ),
            (
                Method::GET,
                "/api/v1/audit",
                None,
                info("list", "audit", None, None),
            ),
            (
                Method::POST,
                "/api/v1/renew",
                None,
                info("create", "renew", None, None),
            ),
            (Method::GET, "/metrics", None, Target::Unknown),
            (Method::GET, "/api/v1/a/b/c/d", None, Target::Unknown),
        ];
        for (method, path, query, want) in cases {
            assert_eq!(
                &parse(method, path, *query).expect("parses"),
                want,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn segments_are_decoded_one_by_one() {
        // An encoded slash stays inside its segment: this is one pod name, not a sub-resource.
        assert_eq!(
            parse(&Method::GET, "/api/v1/namespaces/default/pods/a%2Fb", None).expect("parses"),
            info("get", "pods", Some("default"), Some("a/b"))
        );
        assert!(parse(&Method::GET, "/api/v1/namespaces/%FF/pods", None).is_err());
        let Target::Api(info) = parse(
            &Method::GET,
            "/api/v1/pods",
            Some("fieldSelector=spec.nodeName%3Dw1&watch=true"),
        )
        .expect("parses") else {
            panic!("an API request");
        };
        assert_eq!(info.verb, "watch");
        assert_eq!(info.field_selector.as_deref(), Some("spec.nodeName=w1"));
    }
}
