//! Object metadata shared by every kind.
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The only API version this release serves.
pub const API_VERSION: &str = "skiff.dev/v1";
/// The namespace used when a namespaced object names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The `apiVersion` field. Only [`API_VERSION`] deserializes; anything else is a clear error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiVersion;

impl Serialize for ApiVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(API_VERSION)
    }
}

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == API_VERSION {
            Ok(ApiVersion)
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported apiVersion {s:?}: this server speaks {API_VERSION:?}"
            )))
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(API_VERSION)
    }
}

/// Metadata every object carries. The server owns `resourceVersion`, `uid`, `generation` and
/// `creationTimestamp`; clients may send them back (a stale `resourceVersion` gets a conflict).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Name, unique per kind and namespace: a DNS label (lowercase letters, digits, `-`, ≤ 63).
    #[serde(default)]
    pub name: String,
    /// Namespace of a namespaced kind; `default` when omitted. Cluster-scoped kinds have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Identifying labels, matched by selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The global revision at which this object last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<u64>,
    /// Unique id assigned at creation; a re-created object gets a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Incremented on every change of the object's spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// RFC 3339 time of creation, set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Objects this one belongs to; it is garbage-collected when its controller owner is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
}

impl ObjectMeta {
    /// Metadata with just a name (and namespace).
    pub fn named(name: impl Into<String>, namespace: Option<&str>) -> Self {
        ObjectMeta {
            name: name.into(),
            namespace: namespace.map(str::to_owned),
            ..Default::default()
        }
    }

    /// The namespace, or [`DEFAULT_NAMESPACE`].
    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    /// The owner reference marked `controller`, if any.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.owner_references.iter().find(|o| o.controller)
    }
}

/// A reference from an object to the object that owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    /// Kind of the owner, e.g. `Deployment`.
    pub kind: String,
    /// Name of the owner (same namespace as the owned object).
    pub name: String,
    /// Uid of the owner: a re-created owner with the same name does not adopt old objects.
    pub uid: String,
    /// Whether the owner manages this object.
    #[serde(default)]
    pub controller: bool,
}
