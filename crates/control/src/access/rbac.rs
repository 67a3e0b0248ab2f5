//! Role-based decisions for API-token callers: pure functions of the token's grant and the
//! request.
//!
//! A request is allowed when the token's role has a rule for its verb and resource, and — for a
//! token limited to some namespaces — when it acts in one of them. Such a token reaches the
//! cluster-scoped API only to read the cluster summary, read and upload artifacts (as its role
//! allows), and read its own namespaces.
use std::borrow::Cow;

use skiff_api::RoleSpec;

use super::request::RequestInfo;

/// What a token may do: its role and where.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// The role's name (for messages).
    pub(crate) role: String,
    /// The role's rules; empty when the role does not exist.
    pub(crate) rules: Cow<'static, RoleSpec>,
    /// The namespaces the token acts in; empty = everywhere.
    pub(crate) namespaces: Vec<String>,
}

/// Cluster-scoped resources a namespace-limited token may still use (as its role allows).
const CLUSTER_WIDE_FOR_NAMESPACED: [&str; 2] = ["cluster", "artifacts"];

impl Grant {
    /// Whether the grant covers `verb` on `resource` in `namespace` (`None`: cluster-scoped),
    /// or why not.
    ///
    /// # Errors
    /// Why the request is refused, and which built-in role would allow it.
    pub(crate) fn check(
        &self,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), String> {
        if !self.namespaces.is_empty() {
            let inside = match namespace {
                Some(ns) => self.namespaces.iter().any(|n| n == ns),
                None if resource == "namespaces" && verb == "get" => {
                    name.is_some_and(|n| self.namespaces.iter().any(|x| x == n))
                }
                None => CLUSTER_WIDE_FOR_NAMESPACED.contains(&resource),
            };
            if !inside {
                let limit = self.namespaces.join(", ");
                return Err(match namespace {
                    Some(ns) => format!(
                        "{verb} {resource} in namespace {ns:?}: the token acts only in namespaces [{limit}]"
                    ),
                    None => format!(
                        "{verb} {resource} across the cluster: the token acts only in namespaces \
                         [{limit}]; name one of them (-n NAMESPACE)"
                    ),
                });
            }
        }
        if self.rules.allows(verb, resource) {
            return Ok(());
        }
        let would = ["view", "edit", "admin"]
            .into_iter()
            .find(|r| RoleSpec::builtin(r).is_some_and(|s| s.allows(verb, resource)))
            .unwrap_or("admin");
        let place = namespace
            .map(|ns| format!(" in namespace {ns:?}"))
            .unwrap_or_default();
        let role = if self.rules.rules.is_empty() && RoleSpec::builtin(&self.role).is_none() {
            format!(
                "role {:?}, which does not exist (create the Role or bind the token to another)",
                self.role
            )
        } else {
            format!("role {:?}", self.role)
        };
        Err(format!(
            "{verb} {resource}{place}: {role} does not allow it; the {would} role does"
        ))
    }

    /// [`Grant::check`] for a parsed request.
    ///
    /// # Errors
    /// As [`Grant::check`].
    pub(crate) fn check_request(&self, info: &RequestInfo) -> Result<(), String> {
        self.check(
            info.verb,
            &info.resource,
            info.namespace.as_deref(),
            info.name.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use skiff_api::{RoleRule, RoleSpec};

    use super::Grant;

    fn grant(role: &str, namespaces: &[&str]) -> Grant {
        Grant {
            role: role.into(),
            rules: RoleSpec::builtin(role).map_or_else(Default::default, Cow::Borrowed),
            namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    #[test]
    fn roles_and_namespaces() {
        let a = Some("team-a");
        let b = Some("team-b");
        let edit_a = grant("edit", &["team-a"]);
        assert!(edit_a.check("create", "deployments", a, None).is_ok());
        let e = edit_a
            .check("create", "deployments", b, None)
            .expect_err("other namespace");
        assert!(e.contains("acts only in namespaces [team-a]"), "{e}");
        let e = edit_a
            .check("list", "pods", None, None)
            .expect_err("all namespaces");
        assert!(e.contains("-n NAMESPACE"), "{e}");
        assert!(
            edit_a.check("create", "artifacts", None, None).is_ok(),
            "push for apply"
        );
        assert!(edit_a.check("get", "namespaces", None, Some("team-a")).is_ok());
        assert!(edit_a.check("get", "namespaces", None, Some("team-b")).is_err());
        let e = edit_a
            .check("delete", "members", None, None)
            .expect_err("cluster admin work");
        assert!(e.contains("acts only in"), "{e}");

        let view = grant("view", &[]);
        assert!(view.check("list", "pods", None, None).is_ok());
        let e = view
            .check("delete", "deployments", a, Some("web"))
            .expect_err("view");
        assert_eq!(
            e,
            "delete deployments in namespace \"team-a\": role \"view\" does not allow it; the edit role does"
        );
        let e = view
            .check("get", "secrets", a, Some("s"))
            .expect_err("no secrets");
        assert!(e.ends_with("the edit role does"), "{e}");
        let e = grant("edit", &[])
            .check("create", "apitokens", None, None)
            .expect_err("admin only");
        assert!(e.ends_with("the admin role does"), "{e}");

        let missing = grant("auditor", &[]);
        let e = missing.check("get", "pods", a, None).expect_err("no such role");
        assert!(e.contains("does not exist"), "{e}");

        let custom = Grant {
            role: "deployer".into(),
            rules: Cow::Owned(RoleSpec {
                rules: vec![RoleRule::new(&["update"], &["deployments"])],
            }),
            namespaces: vec![],
        };
        assert!(custom.check("update", "deployments", a, Some("web")).is_ok());
        assert!(custom.check("delete", "deployments", a, Some("web")).is_err());
    }
}
