//! [`ConfigMap`] and [`Secret`]: named maps of strings that pods read as environment variables.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};

/// Largest total size of an object's `data` (keys and values), in bytes.
pub const MAX_CONFIG_DATA_BYTES: usize = 1 << 20;
/// Longest key of a ConfigMap or Secret.
pub const MAX_CONFIG_KEY_LEN: usize = 253;

/// Plain configuration a pod can read (namespaced).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMap {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Key → value. Keys use `[-._a-zA-Z0-9]`, at most 253 characters; at most 1 MiB in all.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// Sensitive configuration a pod can read (namespaced).
///
/// In the API the values are plain UTF-8 strings (not base64 as in Kubernetes). The control plane
/// encrypts every value before it is stored or replicated and decrypts it only for callers allowed
/// to read secrets; the CLI redacts values unless asked to show them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Key → plain UTF-8 value. Keys use `[-._a-zA-Z0-9]`, at most 253 characters; at most 1 MiB
    /// in all.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// What is wrong with a ConfigMap or Secret key, if anything.
pub fn config_key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("is empty: use letters, digits, '-', '_' and '.'".into());
    }
    if key.len() > MAX_CONFIG_KEY_LEN {
        return Some(format!("is longer than {MAX_CONFIG_KEY_LEN} characters"));
    }
    if key == "." || key == ".." {
        return Some("may not be '.' or '..'".into());
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some("may only hold letters, digits, '-', '_' and '.'".into());
    }
    None
}

/// Problems of a `data` map: bad keys, and a total over [`MAX_CONFIG_DATA_BYTES`].
pub(crate) fn data_problems(data: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for (k, v) in data {
        total += k.len() + v.len();
        if let Some(why) = config_key_problem(k) {
            out.push((format!("data[{k:?}]"), format!("key {why}")));
        }
    }
    if total > MAX_CONFIG_DATA_BYTES {
        out.push((
            "data".into(),
            format!("holds {total} bytes: at most {MAX_CONFIG_DATA_BYTES} (1 MiB) in all"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_kubernetes_rule() {
        assert!(config_key_problem("DB_URL").is_none());
        assert!(config_key_problem("app.properties").is_none());
        assert!(config_key_problem("a-b_c.d").is_none());
        assert!(config_key_problem("").is_some());
        assert!(config_key_problem("a b").is_some());
        assert!(config_key_problem("a/b").is_some());
        assert!(config_key_problem("..").is_some());
        assert!(config_key_problem(&"k".repeat(254)).is_some());
    }

    #[test]
    fn data_is_bounded() {
        let mut d = BTreeMap::new();
        d.insert("big".to_owned(), "x".repeat(MAX_CONFIG_DATA_BYTES));
        let p = data_problems(&d);
        assert_eq!(p.len(), 1);
        assert!(p[0].1.contains("1 MiB"), "{p:?}");
    }

    fn pod_with_env(env: &str) -> crate::Object {
        let json = format!(
            r#"{{"kind":"Pod","apiVersion":"skiff.dev/v1","metadata":{{"name":"p"}},
            "spec":{{"components":[{{"name":"c","wasm":{{"digest":"sha256:{}"}},"env":{env}}}]}}}}"#,
            "0".repeat(64)
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn env_value_from_is_checked() {
        let ok = pod_with_env(
            r#"[{"name":"A","value":"x"},{"name":"B","valueFrom":{"secretKeyRef":{"name":"db","key":"password"}}},
            {"name":"C","valueFrom":{"configMapKeyRef":{"name":"settings","key":"level"}}}]"#,
        );
        ok.validate().unwrap();
        let crate::Object::Pod(p) = &ok else {
            unreachable!()
        };
        assert_eq!(p.spec.secret_names(), ["db"]);
        let bad = pod_with_env(
            r#"[{"name":"A","value":"x","valueFrom":{"secretKeyRef":{"name":"db","key":"k"}}},
            {"name":"B","valueFrom":{}},
            {"name":"C","valueFrom":{"secretKeyRef":{"name":"db","key":"k"},"configMapKeyRef":{"name":"c","key":"k"}}},
            {"name":"D","valueFrom":{"secretKeyRef":{"name":"Bad_Name","key":"a/b"}}}]"#,
        );
        let e = bad.validate().unwrap_err();
        let got: Vec<String> = e.0.iter().map(ToString::to_string).collect();
        let paths: Vec<&str> = e.0.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.components[0].env[0].valueFrom",
                "spec.components[0].env[1].valueFrom",
                "spec.components[0].env[2].valueFrom",
                "spec.components[0].env[3].valueFrom.secretKeyRef.name",
                "spec.components[0].env[3].valueFrom.secretKeyRef.key",
            ],
            "{got:?}"
        );
        assert!(got[0].contains("not both"), "{got:?}");
        assert!(got[2].contains("exactly one"), "{got:?}");
    }
}
