//! Who may do what through the API: [`Role`]s (sets of verbs on resources, shaped like Kubernetes
//! ClusterRoles) and [`ApiToken`]s (bearer tokens bound to one role, optionally only in some
//! namespaces — the binding Kubernetes keeps in a RoleBinding).
//!
//! Three roles are built in and cannot be redefined: `admin` (everything), `edit` (write
//! workloads, configuration, secrets, functions, topics and key-value stores; read nodes and
//! namespaces) and `view` (read everything but Secrets and access-control objects). A `Role`
//! object adds another; an `ApiToken` names a role by name.
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};

/// Verbs a rule may name (`*` for all).
pub const VERBS: [&str; 6] = ["get", "list", "watch", "create", "update", "delete"];

/// Resources a rule may name besides the plural of a kind (`*` for all): sub-resources and the
/// API's other routes.
pub const EXTRA_RESOURCES: [&str; 14] = [
    "pods/log",
    "pods/status",
    "nodes/status",
    "functions/invoke",
    "functions/activate",
    "topics",
    "topics/events",
    "keyvalue",
    "artifacts",
    "cluster",
    "members",
    "snapshot",
    "audit",
    "apply",
];

/// The built-in roles, which no `Role` object may be named.
pub const BUILTIN_ROLES: [&str; 3] = ["admin", "edit", "view"];

/// A named set of permissions (cluster-scoped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Role {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata; the name is what tokens refer to.
    pub metadata: ObjectMeta,
    /// What the role allows.
    #[serde(default)]
    pub spec: RoleSpec,
}

/// The rules of a role: a request is allowed when any rule allows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    /// The rules (at most 64).
    #[serde(default)]
    pub rules: Vec<RoleRule>,
}

/// Verbs allowed on resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRule {
    /// Some of [`VERBS`], or `*`.
    pub verbs: Vec<String>,
    /// Plurals of kinds (`deployments`), sub-resources and routes ([`EXTRA_RESOURCES`]), or `*`.
    /// A sub-resource is allowed only when named (or by `*`): `pods` does not allow `pods/log`.
    pub resources: Vec<String>,
}

impl RoleRule {
    /// A rule of `verbs` on `resources`.
    pub fn new(verbs: &[&str], resources: &[&str]) -> Self {
        RoleRule {
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    /// Whether the rule allows `verb` on `resource`.
    pub fn allows(&self, verb: &str, resource: &str) -> bool {
        let any = |list: &[String], x: &str| list.iter().any(|v| v == "*" || v == x);
        any(&self.verbs, verb) && any(&self.resources, resource)
    }
}

/// Namespaced resources the `edit` role writes.
const EDITABLE: [&str; 17] = [
    "pods",
    "pods/log",
    "deployments",
    "replicasets",
    "daemonsets",
    "jobs",
    "cronjobs",
    "services",
    "httproutes",
    "configmaps",
    "secrets",
    "functions",
    "functions/invoke",
    "topics",
    "topics/events",
    "keyvalue",
    "apply",
];

/// What no role but `admin` reads.
const ADMIN_ONLY_READS: [&str; 6] = ["secrets", "jointokens", "apitokens", "roles", "snapshot", "audit"];

impl RoleSpec {
    /// The rules of built-in role `name`, or `None` when it is not built in (made once).
    pub fn builtin(name: &str) -> Option<&'static RoleSpec> {
        static ADMIN: LazyLock<RoleSpec> = LazyLock::new(|| RoleSpec::make_builtin("admin"));
        static EDIT: LazyLock<RoleSpec> = LazyLock::new(|| RoleSpec::make_builtin("edit"));
        static VIEW: LazyLock<RoleSpec> = LazyLock::new(|| RoleSpec::make_builtin("view"));
        match name {
            "admin" => Some(&ADMIN),
            "edit" => Some(&EDIT),
            "view" => Some(&VIEW),
            _ => None,
        }
    }

    fn make_builtin(name: &str) -> RoleSpec {
        let read = ["get", "list", "watch"];
        let rules = match name {
            "admin" => vec![RoleRule::new(&["*"], &["*"])],
            "edit" => vec![
                RoleRule::new(&["*"], &EDITABLE),
                RoleRule::new(
                    &read,
                    &[
                        "endpoints",
                        "events",
                        "namespaces",
                        "nodes",
                        "members",
                        "resourcequotas",
                    ],
                ),
                RoleRule::new(&["get"], &["cluster"]),
                RoleRule::new(&["get", "create"], &["artifacts"]),
            ],
            "view" => vec![RoleRule {
                verbs: read.iter().map(|v| (*v).to_owned()).collect(),
                resources: crate::Kind::ALL
                    .iter()
                    .map(|k| k.plural())
                    .chain(EXTRA_RESOURCES.iter().copied())
                    .filter(|r| {
                        !ADMIN_ONLY_READS.contains(r) && !matches!(*r, "apply" | "functions/activate")
                    })
                    .filter(|r| !r.ends_with("/status"))
                    .map(str::to_owned)
                    .collect(),
            }],
            _ => Vec::new(),
        };
        RoleSpec { rules }
    }

    /// Whether any rule allows `verb` on `resource`.
    pub fn allows(&self, verb: &str, resource: &str) -> bool {
        self.rules.iter().any(|r| r.allows(verb, resource))
    }
}

/// A bearer token for API clients (cluster-scoped), bound to a role.
///
/// The token a user is given is `skt1.<id>.<secret>`: the object is named by `<id>` (6
/// characters of `a-z0-9`) and stores only the SHA-256 of `<secret>` (32 characters of `a-z0-9`),
/// so reading tokens back reveals nothing that lets anyone call the API. Deleting the object
/// revokes the token at once; `spec.expires` bounds its life. `skiff auth token create` makes one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiToken {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata; the name is the token id.
    pub metadata: ObjectMeta,
    /// The role, where, and until when.
    pub spec: ApiTokenSpec,
}

/// The stored part of an API token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiTokenSpec {
    /// Hex SHA-256 of the secret part (64 lowercase hex characters).
    pub secret_hash: String,
    /// The role: `admin`, `edit`, `view`, or the name of a `Role` object.
    pub role: String,
    /// The namespaces the token acts in; empty = every namespace and the cluster-scoped kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// When the token stops working (RFC 3339, UTC); absent = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Free text for operators (at most 256 characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The prefix of API tokens (`skt1.<id>.<secret>`).
pub const API_TOKEN_PREFIX: &str = "skt1.";
/// Characters of an API token's secret.
pub const API_TOKEN_SECRET_LEN: usize = 32;

/// Splits `skt1.<id>.<secret>` into `(id, secret)`; `None` for anything else.
pub fn parse_api_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(API_TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('.')?;
    let word =
        |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (word(id, crate::TOKEN_ID_LEN) && word(secret, API_TOKEN_SECRET_LEN)).then_some((id, secret))
}

/// A revoked node identity (cluster-scoped): every control member refuses each certificate of
/// `spec.identity` issued at or before `spec.revokedAt`, on every request. Written with the
/// command that deletes a Node (`agent/<node>`) or removes a control member (`control/<name>`);
/// an admin may write one to revoke a gateway. A certificate issued later (a new join) is not
/// affected, so the name can be used again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revocation {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata; the name is [`revocation_name`] of the identity (`agent.w1`).
    pub metadata: ObjectMeta,
    /// What is revoked since when.
    pub spec: RevocationSpec,
}

/// The revoked identity and the time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevocationSpec {
    /// `agent/<name>`, `gateway/<name>` or `control/<name>`.
    pub identity: String,
    /// Certificates issued at or before this time (RFC 3339, UTC, whole seconds) are refused.
    pub revoked_at: String,
    /// Why (free text, at most 256 characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The object name of the revocation of identity `role/name` (`agent.w1`).
pub fn revocation_name(role: &str, name: &str) -> String {
    format!("{role}.{name}")
}

/// One audited request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When the answer was sent (RFC 3339, milliseconds, UTC).
    pub time: String,
    /// The request id (also in the answer's `x-request-id` header).
    pub request_id: String,
    /// Who asked: `admin`, `token:<id>`, a node identity (`skiff://agent/w1`), `join`, or
    /// `anonymous`.
    pub caller: String,
    /// The client's address (`ip:port`), when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The HTTP method.
    pub method: String,
    /// The access-control verb (`create`, `update`, `delete`, …), when the path was understood.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verb: String,
    /// The resource (`deployments`, `pods/log`, `keyvalue`, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// The namespace, when the request named one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The object, store, topic or member named.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The HTTP status of the answer.
    pub code: u16,
    /// Why a request was refused (401/403), empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::{RoleSpec, parse_api_token};

    #[test]
    fn builtin_roles() {
        let admin = RoleSpec::builtin("admin").expect("admin");
        let edit = RoleSpec::builtin("edit").expect("edit");
        let view = RoleSpec::builtin("view").expect("view");
        assert!(admin.allows("delete", "members"));
        assert!(edit.allows("create", "deployments"));
        assert!(edit.allows("update", "secrets"));
        assert!(!edit.allows("create", "namespaces"));
        assert!(!edit.allows("update", "pods/status"), "status is the agents'");
        assert!(!edit.allows("create", "apitokens"));
        assert!(!edit.allows("update", "resourcequotas"), "quotas are the admins'");
        assert!(edit.allows("get", "resourcequotas"));
        assert!(view.allows("list", "resourcequotas"));
        assert!(view.allows("list", "deployments"));
        assert!(view.allows("get", "pods/log"));
        assert!(!view.allows("get", "secrets"), "no Secret values");
        assert!(!view.allows("list", "apitokens"));
        assert!(!view.allows("create", "deployments"));
        assert!(!view.allows("get", "snapshot"), "a snapshot holds every Secret");
        assert!(RoleSpec::builtin("root").is_none());
    }

    #[test]
    fn token_strings() {
        let secret = "a".repeat(32);
        assert_eq!(
            parse_api_token(&format!("skt1.abc123.{secret}")),
            Some(("abc123", secret.as_str()))
        );
        assert_eq!(parse_api_token("skt1.abc123.short"), None);
        assert_eq!(parse_api_token(&format!("skt1.ABC123.{secret}")), None);
        assert_eq!(parse_api_token("admin-token"), None);
    }
}
