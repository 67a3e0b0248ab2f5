//! Why a command was not applied.
use serde::{Deserialize, Serialize};

/// Why a command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StateError {
    /// The object does not exist.
    #[error("{kind} {name:?} not found{}", ns_suffix(namespace))]
    NotFound {
        /// Kind.
        kind: String,
        /// Namespace.
        namespace: Option<String>,
        /// Name.
        name: String,
    },
    /// The object exists already.
    #[error(
        "{kind} {name:?} already exists{}: replace it, or delete it first",
        ns_suffix(namespace)
    )]
    AlreadyExists {
        /// Kind.
        kind: String,
        /// Namespace.
        namespace: Option<String>,
        /// Name.
        name: String,
    },
    /// The write was based on a stale version of the object.
    #[error(
        "{kind} {name:?} was changed meanwhile: you sent resourceVersion {given}, it is now at {current}; read it again and retry"
    )]
    Conflict {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// The stored revision.
        current: u64,
        /// The revision the writer sent.
        given: u64,
    },
    /// The namespace of a namespaced object does not exist.
    #[error("namespace {namespace:?} not found: create it first (kind: Namespace)")]
    NamespaceNotFound {
        /// The missing namespace.
        namespace: String,
    },
    /// The command is not applicable as written.
    #[error("invalid command: {message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
    /// A watch asked for changes from before the oldest one kept.
    #[error(
        "resourceVersion {since} is too old: history starts after {compacted}; list again and watch from the list's resourceVersion"
    )]
    Compacted {
        /// The revision asked for.
        since: u64,
        /// The newest revision no longer in the history.
        compacted: u64,
    },
    /// A topic holds as many undelivered events as it may.
    #[error(
        "topic {topic:?} in namespace {namespace:?} has {backlog} events its subscribers have not finished (limit {limit}): slow down, or scale the subscribing functions"
    )]
    TopicFull {
        /// Namespace.
        namespace: String,
        /// Topic.
        topic: String,
        /// Events not yet finished by the slowest subscriber.
        backlog: u64,
        /// The limit.
        limit: u64,
    },
    /// A key-value store holds as many keys as it may.
    #[error(
        "key-value store {store:?} in namespace {namespace:?} holds {limit} keys, the most it may: delete keys, or use another store"
    )]
    StoreFull {
        /// Namespace.
        namespace: String,
        /// Store.
        store: String,
        /// The limit.
        limit: u64,
    },
    /// The write would take a namespace past one of its quotas.
    #[error("{0}")]
    QuotaExceeded(Box<QuotaRefusal>),
    /// The command bytes could not be decoded.
    #[error("undecodable command: {message}")]
    Decode {
        /// Decoder message.
        message: String,
    },
    /// The database failed.
    #[error("state storage failed: {message}")]
    Storage {
        /// Storage message.
        message: String,
    },
}

fn ns_suffix(ns: &Option<String>) -> String {
    ns.as_ref()
        .map(|n| format!(" in namespace {n:?}"))
        .unwrap_or_default()
}

impl StateError {
    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        StateError::Storage {
            message: e.to_string(),
        }
    }
}

/// Which quota a refused write would exceed, and by how much.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error(
    "namespace {namespace:?} is at its quota {quota:?} for {resource}: {used} used of {hard}, and this write adds {requested}; free some, or raise {resource} in spec.hard of ResourceQuota {quota:?}"
)]
pub struct QuotaRefusal {
    /// Namespace.
    pub namespace: String,
    /// The quota's name.
    pub quota: String,
    /// The amount (`pods`, `requests.memory`, …).
    pub resource: String,
    /// Usage before the write.
    pub used: String,
    /// What the write adds.
    pub requested: String,
    /// The limit.
    pub hard: String,
}
