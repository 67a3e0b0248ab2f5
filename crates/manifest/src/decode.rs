//! From a generic document value to a typed [`Object`], keeping the field path of every problem.
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use skiff_api::{API_VERSION, Deployment, HttpRoute, Kind, Namespace, Object, Pod, Service};

/// A problem inside one document: an optional field path and a message.
pub(crate) type Problem = (Option<String>, String);

/// The kinds a manifest may hold, as listed in messages.
const WRITABLE_KINDS: &str = "Namespace, Pod, Deployment, DaemonSet, Job, CronJob, Function, Service, HTTPRoute, ConfigMap, Secret, Role, Revocation, ResourceQuota";

/// `a string "x"`, `a mapping`, ... for messages.
pub(crate) fn describe_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// Reads `apiVersion` and `kind`, then deserializes the concrete type.
///
/// # Errors
/// Every problem found before the first one that stops decoding (a wrong header stops at once; a
/// field error from serde is one problem).
pub(crate) fn decode(value: Value) -> Result<Object, Vec<Problem>> {
    let Value::Object(mut map) = value else {
        return Err(vec![(
            None,
            format!(
                "the document is {}: expected a mapping with apiVersion, kind, metadata and spec",
                describe_value(&value)
            ),
        )]);
    };
    let mut problems = Vec::new();
    check_api_version(&map, &mut problems);
    let kind = check_kind(&map, &mut problems);
    let Some(kind) = kind.filter(|_| problems.is_empty()) else {
        return Err(problems);
    };
    map.remove("kind");
    let value = Value::Object(map);
    let object = match kind {
        Kind::Namespace => typed::<Namespace>(value).map(Object::Namespace),
        Kind::Pod => typed::<Pod>(value).map(Object::Pod),
        Kind::Deployment => typed::<Deployment>(value).map(Object::Deployment),
        Kind::Service => typed::<Service>(value).map(Object::Service),
        Kind::HttpRoute => typed::<HttpRoute>(value).map(Object::HttpRoute),
        Kind::ConfigMap => typed::<skiff_api::ConfigMap>(value).map(Object::ConfigMap),
        Kind::Secret => typed::<skiff_api::Secret>(value).map(Object::Secret),
        Kind::DaemonSet => typed::<skiff_api::DaemonSet>(value).map(Object::DaemonSet),
        Kind::Job => typed::<skiff_api::Job>(value).map(Object::Job),
        Kind::CronJob => typed::<skiff_api::CronJob>(value).map(Object::CronJob),
        Kind::Function => typed::<skiff_api::Function>(value).map(Object::Function),
        Kind::Role => typed::<skiff_api::Role>(value).map(Object::Role),
        Kind::Revocation => typed::<skiff_api::Revocation>(value).map(Object::Revocation),
        Kind::ResourceQuota => typed::<skiff_api::ResourceQuota>(value).map(Object::ResourceQuota),
        // Rejected by `check_kind`.
        Kind::Node | Kind::Endpoints | Kind::JoinToken | Kind::ApiToken | Kind::Event | Kind::ReplicaSet => {
            Err((Some("kind".into()), server_owned(kind)))
        }
    };
    object.map_err(|p| vec![p])
}

fn check_api_version(map: &Map<String, Value>, problems: &mut Vec<Problem>) {
    let path = Some("apiVersion".to_owned());
    match map.get("apiVersion") {
        None => problems.push((
            path,
            format!("is required but missing: add apiVersion: {API_VERSION}"),
        )),
        Some(Value::String(s)) if s == API_VERSION => {}
        Some(Value::String(s)) => problems.push((
            path,
            format!("unsupported apiVersion {s:?}: Skiff manifests use apiVersion: {API_VERSION}"),
        )),
        Some(other) => problems.push((
            path,
            format!("is {}: expected the string {API_VERSION}", describe_value(other)),
        )),
    }
}

fn check_kind(map: &Map<String, Value>, problems: &mut Vec<Problem>) -> Option<Kind> {
    let path = Some("kind".to_owned());
    let name = match map.get("kind") {
        None => {
            problems.push((
                path,
                format!("is required but missing: add kind: with one of {WRITABLE_KINDS}"),
            ));
            return None;
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            problems.push((
                path,
                format!("is {}: expected one of {WRITABLE_KINDS}", describe_value(other)),
            ));
            return None;
        }
    };
    match name.parse::<Kind>() {
        Ok(kind)
            if kind.user_writable() && !matches!(kind, Kind::Node | Kind::JoinToken | Kind::ApiToken) =>
        {
            Some(kind)
        }
        Ok(kind) => {
            problems.push((path, server_owned(kind)));
            None
        }
        Err(_) => {
            let hint = match Kind::parse_any(name) {
                Ok(k) => format!(" (kinds are case-sensitive: did you mean {}?)", k.as_str()),
                Err(_) => String::new(),
            };
            problems.push((
                path,
                format!("unknown kind {name:?}: expected one of {WRITABLE_KINDS}{hint}"),
            ));
            None
        }
    }
}

fn server_owned(kind: Kind) -> String {
    match kind {
        Kind::Node => "Node objects cannot be applied: each node's agent registers its own Node \
                       when it joins; remove this document (to keep pods off a node, set its \
                       spec.unschedulable)"
            .into(),
        Kind::Endpoints => "Endpoints objects cannot be applied: Skiff keeps one per Service from the \
                            pods its selector matches; remove this document and set the Service's \
                            spec.selector instead"
            .into(),
        Kind::JoinToken => "JoinToken objects cannot be applied: make one with `skiff token create` \
                            (it prints the token once) and revoke it with `skiff token delete ID`"
            .into(),
        Kind::ApiToken => "ApiToken objects cannot be applied: make one with `skiff auth token create \
                           --role ROLE` (it prints the token once) and revoke it with \
                           `skiff auth token revoke ID`"
            .into(),
        Kind::Event => "Event objects cannot be applied: Skiff's controllers record them; remove this \
                         document"
            .into(),
        Kind::ReplicaSet => "ReplicaSet objects cannot be applied: each Deployment makes one per \
                              template revision; apply a Deployment instead (and use `skiff rollout` \
                              to go back to an old revision)"
            .into(),
        other => format!("{other} objects cannot be applied"),
    }
}

fn typed<T: DeserializeOwned>(value: Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = (path != "." && !path.is_empty()).then_some(path);
        rewrite(path, &e.inner().to_string())
    })
}

/// Turns serde's wording into Skiff's: quotes for values, plain names for what is allowed, and the
/// missing field's own path for a missing field.
fn rewrite(path: Option<String>, msg: &str) -> Problem {
    if let Some(rest) = msg.strip_prefix("missing field ") {
        let field = unquote(rest);
        let full = match path {
            Some(p) => format!("{p}.{field}"),
            None => field,
        };
        return (Some(full), "is required but missing".into());
    }
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (field, allowed) = split_expected(rest);
        let mut m = format!("unknown field {field:?}");
        if let Some(a) = &allowed {
            m.push_str(&format!(", expected {a}"));
            if let Some(s) = suggestion(&field, a) {
                m.push_str(&format!(" (did you mean {s:?}?)"));
            }
        }
        return (path, m);
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let (value, allowed) = split_expected(rest);
        let mut m = format!("unknown value {value:?}");
        if let Some(a) = allowed {
            m.push_str(&format!(", expected {a}"));
        }
        return (path, m);
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.rsplit_once(", expected ")
    {
        let found = unquote_value(found);
        let mut m = format!("wrong type: expected {}, found {found}", type_name(expected));
        let scalar = ["integer", "floating point", "boolean"]
            .iter()
            .any(|t| found.starts_with(t));
        if expected == "a string" && scalar {
            m.push_str(": put the value in quotes to make it a string");
        }
        return (path, m);
    }
    (path, msg.to_owned())
}

/// `` `x`, expected one of `a`, `b` `` → (`x`, `one of a, b`).
fn split_expected(rest: &str) -> (String, Option<String>) {
    match rest.split_once(", expected ") {
        Some((name, allowed)) => (unquote(name), Some(allowed.replace('`', ""))),
        None => match rest.split_once(", there are no ") {
            Some((name, _)) => (unquote(name), Some("no fields here".into())),
            None => (unquote(rest), None),
        },
    }
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('`').to_owned()
}

/// `integer `1`` → `integer 1`; strings keep their double quotes.
fn unquote_value(found: &str) -> String {
    let f = found.replace('`', "");
    match f.as_str() {
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        "unit value" => "null".into(),
        _ => f,
    }
}

fn type_name(expected: &str) -> String {
    match expected {
        "i64" | "i32" => "an integer".into(),
        "u64" | "u32" | "u16" | "u8" | "usize" => "a non-negative integer".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "a boolean" | "bool" => "true or false".into(),
        e if e.starts_with("struct ") => "a mapping".into(),
        e if e.starts_with("enum ") => "one of its allowed values".into(),
        e => e.to_owned(),
    }
}

/// The allowed name closest to `field`, if it is a likely typo (edit distance ≤ 2).
fn suggestion(field: &str, allowed: &str) -> Option<String> {
    allowed
        .trim_start_matches("one of ")
        .split(", ")
        .flat_map(|a| a.split(" or "))
        .map(|a| (distance(&field.to_ascii_lowercase(), &a.to_ascii_lowercase()), a))
        .filter(|(d, _)| *d <= 2 && *d < field.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.to_owned())
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_serde_messages() {
        assert_eq!(
            rewrite(
                Some("spec.wasm.pth".into()),
                "unknown field `pth`, expected one of `path`, `digest`"
            ),
            (
                Some("spec.wasm.pth".into()),
                "unknown field \"pth\", expected one of path, digest (did you mean \"path\"?)".into()
            )
        );
        assert_eq!(
            rewrite(Some("spec".into()), "missing field `components`"),
            (Some("spec.components".into()), "is required but missing".into())
        );
        assert_eq!(
            rewrite(None, "invalid type: string \"two\", expected i64").1,
            "wrong type: expected an integer, found string \"two\""
        );
        assert_eq!(
            rewrite(None, "invalid type: map, expected a sequence").1,
            "wrong type: expected a list, found a mapping"
        );
        assert_eq!(
            rewrite(None, "unknown variant `cmd`, expected `http`").1,
            "unknown value \"cmd\", expected http"
        );
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("pth", "path"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
