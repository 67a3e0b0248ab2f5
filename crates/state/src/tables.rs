//! The redb tables of the state machine.
use redb::TableDefinition;

/// `Kind/namespace/name` (namespace empty for cluster-scoped kinds) → object JSON.
pub(crate) const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("state_objects");
/// Revision → watch event JSON.
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("state_events");
/// Counters: [`REVISION`], [`COMPACTED`].
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("state_meta");

/// The current global revision.
pub(crate) const REVISION: &str = "revision";
/// Events at or below this revision have been dropped from [`EVENTS`].
pub(crate) const COMPACTED: &str = "compacted";

/// How many past revisions of watch events are kept for watchers that resume.
pub const EVENT_RETENTION: u64 = 20_000;

/// `namespace/topic` → topic counters JSON.
pub(crate) const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("state_topics");
/// (`namespace/topic`, sequence number) → event JSON.
pub(crate) const TOPIC_EVENTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("state_topic_events");
/// `namespace/topic/function` → subscription JSON.
pub(crate) const SUBSCRIPTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("state_subscriptions");
/// `namespace/topic\0key` → (sequence number, ms published) JSON.
pub(crate) const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("state_idempotency");
/// (ms published, idempotency table key) → (), to expire keys in time order.
pub(crate) const IDEMPOTENCY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("state_idempotency_expiry");
/// (`namespace/store`, key) → value bytes.
pub(crate) const KV_VALUES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("state_kv_values");
/// `namespace/store` → the store's counters JSON.
pub(crate) const KV_STORES: TableDefinition<&str, &[u8]> = TableDefinition::new("state_kv_stores");

/// Decodes an object as stored in [`OBJECTS`].
pub(crate) fn decode(bytes: &[u8]) -> Result<skiff_api::Object, crate::error::StateError> {
    serde_json::from_slice(bytes).map_err(|e| crate::error::StateError::Storage {
        message: format!("corrupt object: {e}"),
    })
}
