//! # skiff-state: the replicated state machine
//!
//! Every change to Skiff's desired or observed state is a [`Command`]: a batch of [`Op`]s that is
//! proposed through Raft and, once committed, applied by [`Machine::apply`] on every control node in
//! log order. `apply` is deterministic: it reads no clock, no randomness and no environment — the
//! time and the uids a command needs travel inside it — so every node computes the same tables.
//!
//! ```
//! use skiff_state::{Command, Machine, Op, Reader};
//! use skiff_api::Object;
//! # let dir = tempfile::tempdir().unwrap();
//! let db = std::sync::Arc::new(redb::Database::create(dir.path().join("s.redb")).unwrap());
//! let mut machine = Machine::new(db.clone());
//! let txn = db.begin_write().unwrap();
//! machine.init(&txn).unwrap();
//! let ns: Object = serde_json::from_str(
//!     r#"{"kind":"Namespace","apiVersion":"skiff.dev/v1","metadata":{"name":"default"}}"#).unwrap();
//! let cmd = Command::new("2026-01-01T00:00:00Z", vec![Op::Create { object: ns, uid: "u1".into() }]);
//! let out = machine.apply(&txn, 1, &cmd.encode());
//! txn.commit().unwrap();
//! machine.committed();
//! assert_eq!(out.unwrap()[0].meta().resource_version, Some(1));
//! assert_eq!(Reader::new(db).revision().unwrap(), 1);
//! ```
//!
//! ## Core concepts
//! - [`Command`] — the versioned Raft log payload (not the public API type): a time stamp and a list
//!   of [`Op`]s applied all-or-nothing. A command that fails changes nothing and uses no revision.
//! - **Revision** — a global counter bumped by every object change. Each object's
//!   `metadata.resourceVersion` is the revision of its last change; a write that names a stale
//!   `resourceVersion` fails with [`StateError::Conflict`]. Writes that change nothing are no-ops and
//!   keep the revision (level-triggered controllers rewrite status freely).
//! - **Tables** (redb, in the same database file as the Raft log): `objects` (kind/namespace/name →
//!   JSON), `events` (revision → watch event, the last [`EVENT_RETENTION`] kept for watch resume) and
//!   `state_meta` (revision, compaction point).
//! - [`Reader`] — read-only queries (get, list with label selectors, events since a revision) that
//!   any thread may run on a redb read transaction.
//! - **Topics** — durable event logs: `Publish` appends an event at the topic's next sequence
//!   number (an idempotency key seen within a day stores nothing again); each Function with an
//!   event, cron or MQTT trigger has a [`Subscription`] per topic, made and removed by the same
//!   command that writes the Function, whose cursor the leader's dispatcher moves with `Ack`
//!   ([`Outcome`]: delivered, retry later, dead-lettered). Events every subscription has passed
//!   are trimmed; a topic whose slowest subscriber is [`MAX_BACKLOG`] behind refuses publishes.
//! - **Key-value stores** — per namespace and store name, string keys to byte values: `KvSet`,
//!   `KvDelete` and `KvIncrement` (a decimal integer, read-modify-write inside the apply, so
//!   concurrent increments never lose one). A store exists while it holds keys; namespaces take
//!   theirs along when deleted.
//! - **Snapshots and backups** — [`export`] (and [`Machine::snapshot`]) write every table, as one
//!   read transaction sees it, as a versioned stream of records (`SKIFF-STATE`, version 2: a
//!   record per row, key-value values as raw bytes, an end marker counting the records);
//!   [`Machine::restore`] reads such a stream back into emptied tables a row at a time, and
//!   [`check_export`] reads one without writing. Memory use does not grow with the state, so
//!   Raft snapshots of any size stream through files. Version 1 (the single JSON document older
//!   releases wrote) is still read, so their backups restore.
//! - Watch events are published on a `tokio::sync::broadcast` channel after the transaction that
//!   wrote them commits ([`Machine::committed`]); a watcher replays history from the `events` table,
//!   then follows the channel.
#![deny(missing_docs)]

mod command;
mod error;
mod keyvalue;
mod machine;
mod objects;
mod quota;
mod quota_check;
mod reader;
mod snapshot;
mod tables;
mod topics;

pub use command::{COMMAND_VERSION, Command, Op};
pub use error::{QuotaRefusal, StateError};
pub use machine::{Applied, Machine, StoredEvent};
pub use quota::check_amounts as check_quota_amounts;
pub use reader::{Reader, check_export, object_key};
pub use snapshot::export;
pub use tables::EVENT_RETENTION;
pub use topics::{
    IDEMPOTENCY_WINDOW_MS, MAX_BACKLOG, Outcome, Retry, Subscription, UNSUBSCRIBED_RETENTION, function_topics,
};
