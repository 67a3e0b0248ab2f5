//! Envelopes of the REST and watch API.
use serde::{Deserialize, Serialize};

use crate::object::Object;

/// What happened to an object, in a watch stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Deleted (the object is its last state, with the deleting revision).
    Deleted,
}

/// One line of a watch stream (`?watch=true`), newline-delimited JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The object after the change.
    pub object: Object,
}

/// A list of objects at one revision: `GET /api/v1/.../{plural}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectList {
    /// The revision the list was read at; watch from here to miss nothing.
    pub resource_version: u64,
    /// The objects, sorted by namespace and name.
    pub items: Vec<Object>,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code (`NotFound`, `Conflict`, `Invalid`, `Unauthorized`, ...).
    pub code: crate::ErrorCode,
    /// What failed, with what input, and what to do.
    pub message: String,
    /// Structured detail (e.g. field errors), when there is any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}
