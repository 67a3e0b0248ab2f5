//! Checks of the access objects: join tokens, API tokens and roles.
use super::Checker;
use crate::access::{ApiToken, BUILTIN_ROLES, EXTRA_RESOURCES, Revocation, Role, VERBS, revocation_name};
use crate::token::JoinToken;

/// Most rules one role may hold.
const MAX_RULES: usize = 64;

impl Checker {
    /// A JoinToken.
    pub(super) fn join_token(&mut self, t: &JoinToken) {
        let s = &t.spec;
        self.token_fields(
            &t.metadata.name,
            &s.secret_hash,
            s.expires.as_deref(),
            &s.description,
            "skiff token create",
        );
        if let Some(n) = &s.replaces {
            self.dns_label("spec.replaces", n, "node name");
        }
    }

    /// An ApiToken.
    pub(super) fn api_token(&mut self, t: &ApiToken) {
        let s = &t.spec;
        self.token_fields(
            &t.metadata.name,
            &s.secret_hash,
            s.expires.as_deref(),
            &s.description,
            "skiff auth token create",
        );
        if s.role.is_empty() {
            self.err(
                "spec.role",
                "is required: admin, edit, view or the name of a Role",
            );
        } else {
            self.dns_label("spec.role", &s.role, "role");
        }
        for (i, ns) in s.namespaces.iter().enumerate() {
            self.dns_label(&format!("spec.namespaces[{i}]"), ns, "namespace");
        }
    }

    /// What join and API tokens share: a 6-character id, the secret's SHA-256, an RFC 3339
    /// expiry and a short description.
    fn token_fields(&mut self, id: &str, hash: &str, expires: Option<&str>, description: &str, maker: &str) {
        if id.len() != crate::TOKEN_ID_LEN
            || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            self.err(
                "metadata.name",
                format!(
                    "{id:?} is not a token id: use {} characters of a-z and 0-9 (`{maker}` makes one)",
                    crate::TOKEN_ID_LEN
                ),
            );
        }
        if hash.len() != 64
            || !hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            self.err(
                "spec.secretHash",
                "must be the SHA-256 of the secret as 64 lowercase hex characters",
            );
        }
        if let Some(e) = expires
            && humantime::parse_rfc3339(e).is_err()
        {
            self.err(
                "spec.expires",
                format!("{e:?} is not an RFC 3339 UTC time such as 2026-01-02T03:04:05Z"),
            );
        }
        if description.chars().count() > 256 {
            self.err("spec.description", "is longer than 256 characters");
        }
    }

    /// A Revocation.
    pub(super) fn revocation(&mut self, r: &Revocation) {
        let s = &r.spec;
        match s.identity.split_once('/') {
            Some((role @ ("agent" | "gateway" | "control"), name)) => {
                self.dns_label("spec.identity", name, "node name");
                if r.metadata.name != revocation_name(role, name) {
                    self.err(
                        "metadata.name",
                        format!(
                            "must be {:?} (the identity with . for /)",
                            revocation_name(role, name)
                        ),
                    );
                }
            }
            _ => self.err(
                "spec.identity",
                format!(
                    "{:?} is not a node identity: use agent/NAME, gateway/NAME or control/NAME",
                    s.identity
                ),
            ),
        }
        if humantime::parse_rfc3339(&s.revoked_at).is_err() {
            self.err(
                "spec.revokedAt",
                format!(
                    "{:?} is not an RFC 3339 UTC time such as 2026-01-02T03:04:05Z",
                    s.revoked_at
                ),
            );
        }
        if s.reason.chars().count() > 256 {
            self.err("spec.reason", "is longer than 256 characters");
        }
    }

    /// A Role.
    pub(super) fn role(&mut self, r: &Role) {
        if BUILTIN_ROLES.contains(&r.metadata.name.as_str()) {
            self.err(
                "metadata.name",
                format!(
                    "{:?} is a built-in role and cannot be redefined: pick another name",
                    r.metadata.name
                ),
            );
        }
        if r.spec.rules.len() > MAX_RULES {
            self.err(
                "spec.rules",
                format!("has {} rules: at most {MAX_RULES}", r.spec.rules.len()),
            );
        }
        let known_resource = |x: &str| {
            x == "*" || EXTRA_RESOURCES.contains(&x) || crate::Kind::ALL.iter().any(|k| k.plural() == x)
        };
        for (i, rule) in r.spec.rules.iter().enumerate() {
            if rule.verbs.is_empty() {
                self.err(
                    format!("spec.rules[{i}].verbs"),
                    "is empty: name at least one verb",
                );
            }
            for (j, v) in rule.verbs.iter().enumerate() {
                if v != "*" && !VERBS.contains(&v.as_str()) {
                    self.err(
                        format!("spec.rules[{i}].verbs[{j}]"),
                        format!("unknown verb {v:?}: use {} or *", VERBS.join(", ")),
                    );
                }
            }
            if rule.resources.is_empty() {
                self.err(
                    format!("spec.rules[{i}].resources"),
                    "is empty: name at least one resource",
                );
            }
            for (j, x) in rule.resources.iter().enumerate() {
                if !known_resource(x) {
                    self.err(
                        format!("spec.rules[{i}].resources[{j}]"),
                        format!(
                            "unknown resource {x:?}: use the plural of a kind (deployments), one of {}, or *",
                            EXTRA_RESOURCES.join(", ")
                        ),
                    );
                }
            }
        }
    }
}
