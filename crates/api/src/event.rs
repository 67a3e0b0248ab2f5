//! [`Event`]: a record of something that happened to an object (a node went not ready, a pod was
//! scheduled or evicted), written by Skiff's controllers and shown by `skiff get events` and
//! `skiff describe`.
use serde::{Deserialize, Serialize};

use crate::kind::Kind;
use crate::meta::{ApiVersion, DEFAULT_NAMESPACE, ObjectMeta};

/// Whether an event is routine or needs attention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventSeverity {
    /// Routine (`Scheduled`, `NodeReady`).
    #[default]
    Normal,
    /// Something went wrong (`FailedScheduling`, `NodeNotReady`, `PodEvicted`).
    Warning,
}

/// The object an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    /// Its kind (`Pod`, `Node`).
    pub kind: String,
    /// Its namespace (absent for cluster-scoped kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its uid, so that an event of a deleted object is not shown for a new one of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl ObjectReference {
    /// A reference to the object of `kind` with metadata `meta`.
    pub fn to(kind: Kind, meta: &ObjectMeta) -> Self {
        ObjectReference {
            kind: kind.as_str().to_owned(),
            namespace: kind.namespaced().then(|| meta.namespace_or_default().to_owned()),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
        }
    }

    /// The namespace its events live in: its own, or `default` for cluster-scoped objects.
    pub fn event_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}

/// Who recorded an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSource {
    /// The component (`node-controller`, `scheduler`).
    #[serde(default)]
    pub component: String,
    /// The host it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Something that happened to an object. Repeats of the same reason for the same object are one
/// event whose `count` grows and whose `lastTimestamp` moves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata; the namespace is the involved object's (`default` for cluster-scoped ones).
    pub metadata: ObjectMeta,
    /// The object it is about.
    pub involved_object: ObjectReference,
    /// Short CamelCase reason (`NodeNotReady`, `Scheduled`).
    pub reason: String,
    /// What a person should know.
    #[serde(default)]
    pub message: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type", default)]
    pub type_: EventSeverity,
    /// How many times it happened.
    #[serde(default)]
    pub count: u32,
    /// RFC 3339 time it first happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<String>,
    /// RFC 3339 time it last happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<String>,
    /// Who recorded it.
    #[serde(default)]
    pub source: EventSource,
}
