//! Deterministic application of commands to the tables.
use std::collections::BTreeMap;
use std::sync::Arc;

use redb::{Database, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use skiff_api::{EventType, Kind, Object, WatchEvent};
use tokio::sync::broadcast;

use crate::command::{Command, Op};
use crate::error::StateError;
use crate::reader::{decode, object_key};
use crate::tables::{COMPACTED, EVENT_RETENTION, EVENTS, META, OBJECTS, REVISION};
use crate::topics::{Topics, TopicsExport, export_topics, restore_topics};

/// A watch event with the revision that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The revision.
    pub revision: u64,
    /// The event.
    pub event: WatchEvent,
}

/// What one applied command produced: the stored objects (one per object op; for a namespace
/// delete, the namespace) and the result of each `Publish` op, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// Objects, one per object op.
    pub objects: Vec<Object>,
    /// One per `Publish` op.
    pub published: Vec<skiff_api::PublishResult>,
    /// One per `KvIncrement` op: the key's value after it.
    pub incremented: Vec<i64>,
}

/// The state machine: applies commands inside the Raft driver's write transactions and publishes
/// watch events once they are durable.
pub struct Machine {
    db: Arc<Database>,
    events: broadcast::Sender<Arc<StoredEvent>>,
    pending: Vec<Arc<StoredEvent>>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// Capacity of the in-memory event channel; a watcher that falls further behind resumes from the
/// `events` table.
const CHANNEL_CAPACITY: usize = 4096;

#[derive(Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) revision: u64,
    pub(crate) compacted: u64,
    pub(crate) objects: Vec<(String, serde_json::Value)>,
    pub(crate) events: Vec<(u64, serde_json::Value)>,
    /// Topics, their events and subscriptions (absent in exports of older releases).
    #[serde(default)]
    pub(crate) topics: TopicsExport,
    /// Key-value store entries (absent in exports of older releases).
    #[serde(default)]
    pub(crate) keyvalue: Vec<crate::keyvalue::KvEntry>,
}

impl Machine {
    /// A machine over `db` (the database the Raft driver writes).
    pub fn new(db: Arc<Database>) -> Self {
        let (events, _) = broadcast::channel(CHANNEL_CAPACITY);
        Machine {
            db,
            events,
            pending: Vec::new(),
        }
    }

    /// The database.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// A sender whose receivers see every event after its transaction commits.
    pub fn event_sender(&self) -> broadcast::Sender<Arc<StoredEvent>> {
        self.events.clone()
    }

    /// Creates the tables if missing.
    ///
    /// # Errors
    /// A storage message.
    pub fn init(&mut self, txn: &WriteTransaction) -> Result<(), String> {
        txn.open_table(OBJECTS).map_err(|e| e.to_string())?;
        txn.open_table(EVENTS).map_err(|e| e.to_string())?;
        txn.open_table(META).map_err(|e| e.to_string())?;
        crate::topics::init(txn)?;
        crate::keyvalue::init(txn)?;
        Ok(())
    }

    /// Applies one encoded [`Command`] committed at log `index`, all-or-nothing, returning the stored
    /// objects (one per op; for a namespace delete, the namespace).
    ///
    /// # Errors
    /// The first op that cannot apply; nothing is written then.
    pub fn apply(
        &mut self,
        txn: &WriteTransaction,
        index: u64,
        bytes: &[u8],
    ) -> Result<Vec<Object>, StateError> {
        self.apply_full(txn, index, bytes).map(|a| a.objects)
    }

    /// [`apply`](Self::apply), with the results of `Publish` ops too.
    ///
    /// # Errors
    /// The first op that cannot apply; nothing is written then.
    pub fn apply_full(
        &mut self,
        txn: &WriteTransaction,
        index: u64,
        bytes: &[u8],
    ) -> Result<Applied, StateError> {
        let cmd = Command::decode(bytes)?;
        let result = self.apply_command(txn, &cmd);
        if let Err(e) = &result {
            tracing::debug!(index, error = %e, "command rejected");
        }
        result
    }

    /// Publishes the events of committed transactions.
    pub fn committed(&mut self) {
        for ev in self.pending.drain(..) {
            // No receiver is fine: watchers resume from the table.
            let _ = self.events.send(ev);
        }
    }

    fn apply_command(&mut self, txn: &WriteTransaction, cmd: &Command) -> Result<Applied, StateError> {
        let topics = Topics::new(txn, &cmd.now);
        // Topic ops are checked before anything is written (a failing command writes nothing);
        // within one command, publishes to one topic are checked against the stored backlog.
        for op in &cmd.ops {
            if let Op::Publish {
                namespace,
                topic,
                event,
                key,
            } = op
            {
                topics.check_publish(namespace, topic, event, key.as_deref())?;
            }
        }
        let kv = crate::keyvalue::KvStage::new(txn, &cmd.ops)?;
        let mut objects = txn.open_table(OBJECTS).map_err(StateError::storage)?;
        let mut meta = txn.open_table(META).map_err(StateError::storage)?;
        let base_rev = meta
            .get(REVISION)
            .map_err(StateError::storage)?
            .map(|g| g.value())
            .unwrap_or(0);

        // Stage every change in an overlay first, so a failing op leaves the tables untouched.
        let mut overlay: BTreeMap<String, Option<Object>> = BTreeMap::new();
        let mut staged: Vec<(EventType, Object)> = Vec::new();
        let mut outputs = Vec::new();
        let mut rev = base_rev;
        let read =
            |overlay: &BTreeMap<String, Option<Object>>, key: &str| -> Result<Option<Object>, StateError> {
                if let Some(v) = overlay.get(key) {
                    return Ok(v.clone());
                }
                match objects.get(key).map_err(StateError::storage)? {
                    Some(v) => decode(v.value()).map(Some),
                    None => Ok(None),
                }
            };

        for op in &cmd.ops {
            match op {
                Op::Create { object, uid } | Op::Apply { object, uid } => {
                    let key = key_of(object);
                    let existing = read(&overlay, &key)?;
                    match (existing, matches!(op, Op::Apply { .. })) {
                        (Some(_), false) => {
                            return Err(StateError::AlreadyExists {
                                kind: object.kind().to_string(),
                                namespace: object.namespace().map(str::to_owned),
                                name: object.meta().name.clone(),
                            });
                        }
                        (Some(old), true) => {
                            if let Some(new) = replace(&old, object, rev + 1)? {
                                rev += 1;
                                overlay.insert(key, Some(new.clone()));
                                staged.push((EventType::Modified, new.clone()));
                                outputs.push(new);
                            } else {
                                outputs.push(old);
                            }
                        }
                        (None, _) => {
                            if let Some(ns) = object.namespace() {
                                let ns_key = object_key(Kind::Namespace, None, ns);
                                if read(&overlay, &ns_key)?.is_none() {
                                    return Err(StateError::NamespaceNotFound {
                                        namespace: ns.to_owned(),
                                    });
                                }
                            }
                            rev += 1;
                            let mut new = object.clone();
                            let m = new.meta_mut();
                            if object.kind().namespaced() {
                                m.namespace = Some(object.meta().namespace_or_default().to_owned());
                            }
                            m.uid = Some(uid.clone());
                            m.resource_version = Some(rev);
                            m.generation = Some(1);
                            m.creation_timestamp = Some(cmd.now.clone());
                            overlay.insert(key, Some(new.clone()));
                            staged.push((EventType::Added, new.clone()));
                            outputs.push(new);
                        }
                    }
                }
                Op::Replace { object } | Op::UpdateStatus { object } => {
                    let key = key_of(object);
                    let Some(old) = read(&overlay, &key)? else {
                        return Err(not_found(object.kind(), object.namespace(), &object.meta().name));
                    };
                    let new = if matches!(op, Op::Replace { .. }) {
                        replace(&old, object, rev + 1)?
                    } else {
                        update_status(&old, object, rev + 1)?
                    };
                    match new {
                        Some(new) => {
                            rev += 1;
                            overlay.insert(key, Some(new.clone()));
                            staged.push((EventType::Modified, new.clone()));
                            outputs.push(new);
                        }
                        None => outputs.push(old),
                    }
                }
                Op::Delete {
                    kind,
                    namespace,
                    name,
                    uid,
                    resource_version,
                } => {
                    let key = object_key(*kind, namespace.as_deref(), name);
                    let Some(old) = read(&overlay, &key)? else {
                        return Err(not_found(*kind, namespace.as_deref(), name));
                    };
                    if let Some(u) = uid
                        && old.meta().uid.as_ref() != Some(u)
                    {
                        return Err(StateError::Conflict {
                            kind: kind.to_string(),
                            name: name.clone(),
                            current: old.meta().resource_version.unwrap_or(0),
                            given: resource_version.unwrap_or(0),
                        });
                    }
                    check_rv(&old, *resource_version)?;
                    let mut victims = vec![(key, old.clone())];
                    if *kind == Kind::Namespace {
                        // Everything in the namespace goes with it, in key order (deterministic).
                        for k in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
                            let prefix = format!("{}/{}/", k.as_str(), name);
                            let end = format!("{prefix}\u{10FFFF}");
                            let mut keys: BTreeMap<String, Object> = BTreeMap::new();
                            for item in objects
                                .range(prefix.as_str()..end.as_str())
                                .map_err(StateError::storage)?
                            {
                                let (k, v) = item.map_err(StateError::storage)?;
                                keys.insert(k.value().to_owned(), decode(v.value())?);
                            }
                            for (k, v) in overlay.range(prefix.clone()..end.clone()) {
                                match v {
                                    Some(o) => keys.insert(k.clone(), o.clone()),
                                    None => keys.remove(k),
                                };
                            }
                            victims.extend(keys);
                        }
                        // The namespace itself is reported last.
                        victims.rotate_left(1);
                    }
                    for (k, mut o) in victims {
                        rev += 1;
                        o.meta_mut().resource_version = Some(rev);
                        overlay.insert(k, None);
                        staged.push((EventType::Deleted, o));
                    }
                    let mut last = staged.last().map(|(_, o)| o.clone()).unwrap_or(old);
                    last.meta_mut().resource_version = Some(rev);
                    outputs.push(last);
                }
                Op::Publish { namespace, .. }
                | Op::KvSet { namespace, .. }
                | Op::KvDelete { namespace, .. }
                | Op::KvIncrement { namespace, .. } => {
                    let ns_key = object_key(Kind::Namespace, None, namespace);
                    if read(&overlay, &ns_key)?.is_none() {
                        return Err(StateError::NamespaceNotFound {
                            namespace: namespace.clone(),
                        });
                    }
                }
                Op::Ack { .. } => {}
            }
        }

        // Every op applied: write the overlay, the events and the revision.
        for (key, value) in &overlay {
            match value {
                Some(o) => {
                    let bytes = serde_json::to_vec(o).map_err(StateError::storage)?;
                    objects
                        .insert(key.as_str(), bytes.as_slice())
                        .map_err(StateError::storage)?;
                }
                None => {
                    objects.remove(key.as_str()).map_err(StateError::storage)?;
                }
            }
        }
        // Functions written or deleted: their subscriptions follow.
        for (event_type, object) in &staged {
            if let Object::Function(f) = object {
                let ns = f.metadata.namespace_or_default();
                let current = (*event_type != EventType::Deleted).then_some(f);
                topics.sync_function(ns, &f.metadata.name, current)?;
            }
        }
        let incremented = kv.write(txn)?;
        // A deleted namespace takes its key-value stores along.
        for (event_type, object) in &staged {
            if let (EventType::Deleted, Object::Namespace(n)) = (event_type, object) {
                crate::keyvalue::drop_namespace(txn, &n.metadata.name)?;
            }
        }
        let mut published = Vec::new();
        for op in &cmd.ops {
            match op {
                Op::Publish {
                    namespace,
                    topic,
                    event,
                    key,
                } => published.push(topics.publish(namespace, topic, event, key.as_deref())?),
                Op::Ack {
                    namespace,
                    topic,
                    function,
                    cursor,
                    outcomes,
                } => topics.ack(namespace, topic, function, *cursor, outcomes)?,
                _ => {}
            }
        }
        if !published.is_empty() {
            topics.expire_keys()?;
        }
        let mut events = txn.open_table(EVENTS).map_err(StateError::storage)?;
        let mut r = base_rev;
        for (event_type, object) in staged {
            r += 1;
            let event = WatchEvent { event_type, object };
            let bytes = serde_json::to_vec(&event).map_err(StateError::storage)?;
            events.insert(r, bytes.as_slice()).map_err(StateError::storage)?;
            self.pending.push(Arc::new(StoredEvent { revision: r, event }));
        }
        if rev != base_rev {
            meta.insert(REVISION, rev).map_err(StateError::storage)?;
            if rev > EVENT_RETENTION {
                let keep_from = rev - EVENT_RETENTION;
                let old_compacted = meta
                    .get(COMPACTED)
                    .map_err(StateError::storage)?
                    .map(|g| g.value())
                    .unwrap_or(0);
                for gone in old_compacted + 1..=keep_from {
                    events.remove(gone).map_err(StateError::storage)?;
                }
                meta.insert(COMPACTED, keep_from).map_err(StateError::storage)?;
            }
        }
        Ok(Applied {
            objects: outputs,
            published,
            incremented,
        })
    }

    /// Serializes the tables for a Raft snapshot.
    ///
    /// # Errors
    /// A storage message.
    pub fn snapshot(&self, txn: &redb::ReadTransaction) -> Result<Vec<u8>, String> {
        export(txn)
    }

    /// Replaces the tables with a snapshot's content.
    ///
    /// # Errors
    /// A storage or decode message.
    pub fn restore(&mut self, txn: &WriteTransaction, data: &[u8]) -> Result<(), String> {
        let snap: Snapshot =
            serde_json::from_slice(data).map_err(|e| format!("corrupt state snapshot: {e}"))?;
        let s = |e: &dyn std::fmt::Display| e.to_string();
        txn.delete_table(OBJECTS).map_err(|e| s(&e))?;
        txn.delete_table(EVENTS).map_err(|e| s(&e))?;
        txn.delete_table(META).map_err(|e| s(&e))?;
        let mut objects = txn.open_table(OBJECTS).map_err(|e| s(&e))?;
        for (k, v) in &snap.objects {
            let bytes = serde_json::to_vec(v).map_err(|e| s(&e))?;
            objects.insert(k.as_str(), bytes.as_slice()).map_err(|e| s(&e))?;
        }
        let mut events = txn.open_table(EVENTS).map_err(|e| s(&e))?;
        for (k, v) in &snap.events {
            let bytes = serde_json::to_vec(v).map_err(|e| s(&e))?;
            events.insert(*k, bytes.as_slice()).map_err(|e| s(&e))?;
        }
        let mut meta = txn.open_table(META).map_err(|e| s(&e))?;
        meta.insert(REVISION, snap.revision).map_err(|e| s(&e))?;
        meta.insert(COMPACTED, snap.compacted).map_err(|e| s(&e))?;
        restore_topics(txn, &snap.topics)?;
        crate::keyvalue::restore_kv(txn, &snap.keyvalue)?;
        Ok(())
    }
}

/// Serializes the state tables as seen by `txn` (the format of snapshots and backups). Any thread
/// may call it with its own read transaction.
///
/// # Errors
/// A storage message.
pub fn export(txn: &redb::ReadTransaction) -> Result<Vec<u8>, String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    let objects_t = txn.open_table(OBJECTS).map_err(|e| s(&e))?;
    let events_t = txn.open_table(EVENTS).map_err(|e| s(&e))?;
    let meta_t = txn.open_table(META).map_err(|e| s(&e))?;
    let get = |k: &str| -> Result<u64, String> {
        Ok(meta_t.get(k).map_err(|e| s(&e))?.map(|g| g.value()).unwrap_or(0))
    };
    let mut snap = Snapshot {
        revision: get(REVISION)?,
        compacted: get(COMPACTED)?,
        objects: vec![],
        events: vec![],
        topics: export_topics(txn)?,
        keyvalue: crate::keyvalue::export_kv(txn)?,
    };
    for item in objects_t.iter().map_err(|e| s(&e))? {
        let (k, v) = item.map_err(|e| s(&e))?;
        let json = serde_json::from_slice(v.value()).map_err(|e| s(&e))?;
        snap.objects.push((k.value().to_owned(), json));
    }
    for item in events_t.iter().map_err(|e| s(&e))? {
        let (k, v) = item.map_err(|e| s(&e))?;
        let json = serde_json::from_slice(v.value()).map_err(|e| s(&e))?;
        snap.events.push((k.value(), json));
    }
    serde_json::to_vec(&snap).map_err(|e| s(&e))
}

fn key_of(o: &Object) -> String {
    object_key(o.kind(), o.namespace(), &o.meta().name)
}

fn not_found(kind: Kind, namespace: Option<&str>, name: &str) -> StateError {
    StateError::NotFound {
        kind: kind.to_string(),
        namespace: kind
            .namespaced()
            .then(|| namespace.unwrap_or("default").to_owned()),
        name: name.to_owned(),
    }
}

fn check_rv(old: &Object, given: Option<u64>) -> Result<(), StateError> {
    let current = old.meta().resource_version.unwrap_or(0);
    match given {
        Some(g) if g != current => Err(StateError::Conflict {
            kind: old.kind().to_string(),
            name: old.meta().name.clone(),
            current,
            given: g,
        }),
        _ => Ok(()),
    }
}

/// The stored object after replacing `old`'s spec, labels and annotations by `new`'s, or `None` when
/// nothing changes.
fn replace(old: &Object, new: &Object, rev: u64) -> Result<Option<Object>, StateError> {
    check_rv(old, new.meta().resource_version)?;
    let mut next = new.clone();
    next.keep_status_from(old);
    let (om, nm) = (old.meta(), next.meta_mut());
    nm.namespace = om.namespace.clone();
    nm.uid = om.uid.clone();
    nm.creation_timestamp = om.creation_timestamp.clone();
    nm.resource_version = om.resource_version;
    nm.generation = om.generation;
    if nm.owner_references.is_empty() {
        nm.owner_references = om.owner_references.clone();
    }
    if next == *old {
        return Ok(None);
    }
    if next.spec_json() != old.spec_json() {
        let m = next.meta_mut();
        m.generation = Some(m.generation.unwrap_or(0) + 1);
    }
    next.meta_mut().resource_version = Some(rev);
    Ok(Some(next))
}

/// The stored object after taking `new`'s status into `old`, or `None` when nothing changes.
fn update_status(old: &Object, new: &Object, rev: u64) -> Result<Option<Object>, StateError> {
    check_rv(old, new.meta().resource_version)?;
    let mut next = old.clone();
    match (&mut next, new) {
        (Object::Pod(n), Object::Pod(s)) => n.status = s.status.clone(),
        (Object::Deployment(n), Object::Deployment(s)) => n.status = s.status.clone(),
        (Object::ReplicaSet(n), Object::ReplicaSet(s)) => n.status = s.status.clone(),
        (Object::DaemonSet(n), Object::DaemonSet(s)) => n.status = s.status.clone(),
        (Object::Job(n), Object::Job(s)) => n.status = s.status.clone(),
        (Object::CronJob(n), Object::CronJob(s)) => n.status = s.status.clone(),
        (Object::Function(n), Object::Function(s)) => n.status = s.status.clone(),
        (Object::Node(n), Object::Node(s)) => n.status = s.status.clone(),
        (Object::Endpoints(n), Object::Endpoints(s)) => n.endpoints = s.endpoints.clone(),
        _ => {
            return Err(StateError::Invalid {
                message: format!("{} has no status", old.kind()),
            });
        }
    }
    if next == *old {
        return Ok(None);
    }
    next.meta_mut().resource_version = Some(rev);
    Ok(Some(next))
}
