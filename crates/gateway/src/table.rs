//! The routing table: routes and ready endpoints, matched without I/O.
use std::collections::BTreeMap;
use std::time::Duration;

use skiff_api::{EndpointAddress, Endpoints, HttpRoute, Object};

/// A matched rule: where the request may go.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    /// `namespace/route` that matched.
    pub route: String,
    /// The rule's backends with their ready endpoints.
    pub backends: Vec<Backend>,
    /// The rule's deadline.
    pub timeout: Duration,
    /// `(namespace, name)` when the rule is a function's HTTP trigger (activated when it has no
    /// ready pod).
    pub function: Option<(String, String)>,
}

/// One backend service of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// `namespace/service`.
    pub service: String,
    /// Relative weight.
    pub weight: u64,
    /// Ready endpoints.
    pub endpoints: Vec<EndpointAddress>,
}

#[derive(Debug, Clone)]
struct Rule {
    route: String,
    namespace: String,
    hostnames: Vec<String>,
    prefix: String,
    backends: Vec<(String, u64)>,
    timeout: Duration,
    /// Methods the rule takes (any when empty).
    methods: Vec<String>,
    function: Option<(String, String)>,
}

/// Routes and endpoints at one moment.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    rules: Vec<Rule>,
    endpoints: BTreeMap<String, Vec<EndpointAddress>>,
}

/// Whether `path` is under `prefix`, segment-wise (`/api` matches `/api` and `/api/x`, not `/apix`).
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    p.is_empty() || path == p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|h| h.ends_with('.') && h.len() > 1),
        None => pattern == host,
    }
}

impl RouteTable {
    /// Builds a table from the cached routes and endpoints.
    pub fn build(routes: &[Object], endpoints: &[Object], default_timeout: Duration) -> Self {
        Self::build_with_functions(routes, &[], endpoints, default_timeout)
    }

    /// [`build`](Self::build), with the HTTP triggers of `functions` as rules too.
    pub fn build_with_functions(
        routes: &[Object],
        functions: &[Object],
        endpoints: &[Object],
        default_timeout: Duration,
    ) -> Self {
        let mut rules = Vec::new();
        for o in routes {
            let Object::HttpRoute(r) = o else { continue };
            rules.extend(rules_of(r, default_timeout));
        }
        for o in functions {
            let Object::Function(f) = o else { continue };
            rules.extend(function_rules(f, default_timeout));
        }
        // Longest prefix first; among equals, routes with host names before catch-alls.
        rules.sort_by(|a, b| {
            b.prefix
                .trim_end_matches('/')
                .len()
                .cmp(&a.prefix.trim_end_matches('/').len())
                .then(b.hostnames.is_empty().cmp(&a.hostnames.is_empty()).reverse())
                .then(a.route.cmp(&b.route))
        });
        let mut eps = BTreeMap::new();
        for o in endpoints {
            let Object::Endpoints(e) = o else { continue };
            eps.insert(
                service_key(e),
                e.endpoints.iter().filter(|a| a.ready).cloned().collect(),
            );
        }
        RouteTable {
            rules,
            endpoints: eps,
        }
    }

    /// The rule for `host` (port stripped, any case) and `path`, or `None` (404).
    pub fn select(&self, host: &str, path: &str) -> Option<Selected> {
        self.select_method(host, "", path)
    }

    /// [`select`](Self::select) for a request with `method` (rules limited to other methods do
    /// not match; an empty method matches any rule).
    pub fn select_method(&self, host: &str, method: &str, path: &str) -> Option<Selected> {
        let host = host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let host = host.to_ascii_lowercase();
        let rule = self.rules.iter().find(|r| {
            (r.hostnames.is_empty() || r.hostnames.iter().any(|h| host_matches(h, &host)))
                && prefix_matches(&r.prefix, path)
                && (method.is_empty() || r.methods.is_empty() || r.methods.iter().any(|m| m == method))
        })?;
        let backends = rule
            .backends
            .iter()
            .map(|(svc, w)| {
                let key = format!("{}/{}", rule.namespace, svc);
                Backend {
                    endpoints: self.endpoints.get(&key).cloned().unwrap_or_default(),
                    service: key,
                    weight: *w,
                }
            })
            .collect();
        Some(Selected {
            route: rule.route.clone(),
            backends,
            timeout: rule.timeout,
            function: rule.function.clone(),
        })
    }
}

fn service_key(e: &Endpoints) -> String {
    format!("{}/{}", e.metadata.namespace_or_default(), e.metadata.name)
}

fn rules_of(r: &HttpRoute, default_timeout: Duration) -> Vec<Rule> {
    let ns = r.metadata.namespace_or_default().to_owned();
    r.spec
        .rules
        .iter()
        .map(|rule| Rule {
            route: format!("{ns}/{}", r.metadata.name),
            namespace: ns.clone(),
            hostnames: r.spec.hostnames.iter().map(|h| h.to_ascii_lowercase()).collect(),
            prefix: rule.path_prefix.clone(),
            backends: rule
                .backends
                .iter()
                .map(|b| (b.service.clone(), u64::try_from(b.weight).unwrap_or(0)))
                .collect(),
            timeout: rule.timeout.map(|t| t.0).unwrap_or(default_timeout),
            methods: Vec::new(),
            function: None,
        })
        .collect()
}

/// A function's HTTP triggers as rules to its `fn.NAME` endpoints, with the function's timeout
/// (plus the time a pod may take to start from zero).
fn function_rules(f: &skiff_api::Function, default_timeout: Duration) -> Vec<Rule> {
    let ns = f.metadata.namespace_or_default().to_owned();
    let timeout = f.spec.timeout.map(|t| t.0).unwrap_or(default_timeout) + FUNCTION_START_ALLOWANCE;
    f.spec
        .triggers
        .iter()
        .filter_map(|t| t.http.as_ref())
        .map(|h| Rule {
            route: format!("{ns}/function/{}", f.metadata.name),
            namespace: ns.clone(),
            hostnames: h.hostnames.iter().map(|h| h.to_ascii_lowercase()).collect(),
            prefix: h.path.clone(),
            backends: vec![(skiff_api::function_endpoints_name(&f.metadata.name), 1)],
            timeout,
            methods: h.methods.clone(),
            function: Some((ns.clone(), f.metadata.name.clone())),
        })
        .collect()
}

/// Time a request to a function scaled to zero may wait for its first pod, on top of the
/// function's own timeout.
pub(crate) const FUNCTION_START_ALLOWANCE: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    fn route(json: serde_json::Value) -> Object {
        serde_json::from_value(json).unwrap()
    }

    fn table() -> RouteTable {
        let routes = vec![
            route(
                serde_json::json!({"kind":"HTTPRoute","apiVersion":"skiff.dev/v1","metadata":{"name":"all","namespace":"default"},
                "spec":{"rules":[{"pathPrefix":"/","backends":[{"service":"web"}]}]}}),
            ),
            route(
                serde_json::json!({"kind":"HTTPRoute","apiVersion":"skiff.dev/v1","metadata":{"name":"api","namespace":"default"},
                "spec":{"hostnames":["api.example.com"],"rules":[{"pathPrefix":"/v1","backends":[{"service":"api"}],"timeout":"2s"}]}}),
            ),
        ];
        let eps = vec![route(
            serde_json::json!({"kind":"Endpoints","apiVersion":"skiff.dev/v1","metadata":{"name":"web","namespace":"default"},
            "endpoints":[{"pod":"a","node":"n","address":"http://x","ready":true},{"pod":"b","node":"n","address":"http://x","ready":false}]}),
        )];
        RouteTable::build(&routes, &eps, Duration::from_secs(30))
    }

    #[test]
    fn longest_prefix_and_host_win() {
        let t = table();
        let s = t.select("API.example.com:8080", "/v1/users").unwrap();
        assert_eq!(s.route, "default/api");
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert!(s.backends[0].endpoints.is_empty());
        assert_eq!(t.select("api.example.com", "/v1x").unwrap().route, "default/all");
        let s = t.select("other", "/v1/users").unwrap();
        assert_eq!(s.route, "default/all");
        assert_eq!(s.backends[0].endpoints.len(), 1, "only ready endpoints");
    }

    #[test]
    fn no_route_is_none() {
        let t = RouteTable::default();
        assert!(t.select("x", "/").is_none());
        assert!(prefix_matches("/api/", "/api"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
    }
}
