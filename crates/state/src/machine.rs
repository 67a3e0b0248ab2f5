//! Deterministic application of commands to the tables.
use std::sync::Arc;

use redb::{Database, ReadableTable, WriteTransaction};
use skiff_api::{EventType, Object, WatchEvent};
use tokio::sync::broadcast;

use crate::command::{Command, Op};
use crate::error::StateError;
use crate::objects::{Change, ObjectStage};
use crate::snapshot::export;
use crate::tables::{COMPACTED, EVENT_RETENTION, EVENTS, META, OBJECTS, REVISION};
use crate::topics::Topics;

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

    /// Applies one command: every op is checked and staged first (a failing op writes
    /// nothing), then the object changes, their consequences, the topic and key-value ops and the
    /// watch history are written.
    fn apply_command(&mut self, txn: &WriteTransaction, cmd: &Command) -> Result<Applied, StateError> {
        let topics = Topics::new(txn, &cmd.now);
        let kv = crate::keyvalue::KvStage::new(txn, &cmd.ops)?;
        let mut objects = txn.open_table(OBJECTS).map_err(StateError::storage)?;
        let base_rev = current_revision(txn)?;
        let staged = {
            let mut stage = ObjectStage::new(&objects, base_rev, &cmd.now);
            for op in &cmd.ops {
                stage_op(&mut stage, &topics, op)?;
            }
            crate::quota_check::check_objects(&stage)?;
            crate::quota_check::check_publishes(&stage, &topics, &cmd.ops)?;
            stage.finish()
        };
        staged.write(&mut objects)?;
        follow_functions(&topics, &staged.changes)?;
        let incremented = kv.write(txn)?;
        drop_namespace_stores(txn, &staged.changes)?;
        let published = topic_ops(&topics, &cmd.ops)?;
        self.record_history(txn, base_rev, staged.rev, staged.changes)?;
        Ok(Applied {
            objects: staged.outputs,
            published,
            incremented,
        })
    }

    /// Appends `changes` to the watch history (revisions after `base_rev`), moves the revision to
    /// `rev` and compacts the history past [`EVENT_RETENTION`].
    fn record_history(
        &mut self,
        txn: &WriteTransaction,
        base_rev: u64,
        rev: u64,
        changes: Vec<Change>,
    ) -> Result<(), StateError> {
        let mut events = txn.open_table(EVENTS).map_err(StateError::storage)?;
        let mut meta = txn.open_table(META).map_err(StateError::storage)?;
        let mut r = base_rev;
        for (event_type, object) in changes {
            r += 1;
            let event = WatchEvent { event_type, object };
            let bytes = serde_json::to_vec(&event).map_err(StateError::storage)?;
            events.insert(r, bytes.as_slice()).map_err(StateError::storage)?;
            self.pending.push(Arc::new(StoredEvent { revision: r, event }));
        }
        if rev == base_rev {
            return Ok(());
        }
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
        Ok(())
    }

    /// Writes the tables, as `txn` sees them, to `out` in the state stream format (see
    /// [`export`]): what a Raft snapshot holds.
    ///
    /// # Errors
    /// A storage message, or the write error of `out`.
    pub fn snapshot(&self, txn: &redb::ReadTransaction, out: &mut dyn std::io::Write) -> Result<(), String> {
        export(txn, out)
    }

    /// Replaces the tables with the state stream read from `data` (a Raft snapshot or a backup's
    /// export, of this release or an older one), row by row. On an error nothing of it may be
    /// committed: the caller drops `txn`.
    ///
    /// # Errors
    /// What is wrong with the stream, or a storage message.
    pub fn restore(&mut self, txn: &WriteTransaction, data: &mut dyn std::io::Read) -> Result<(), String> {
        crate::snapshot::restore(txn, data).map_err(|e| format!("cannot restore the state snapshot: {e}"))
    }
}

/// The state's revision before a command.
fn current_revision(txn: &WriteTransaction) -> Result<u64, StateError> {
    let meta = txn.open_table(META).map_err(StateError::storage)?;
    Ok(meta
        .get(REVISION)
        .map_err(StateError::storage)?
        .map(|g| g.value())
        .unwrap_or(0))
}

/// Checks and stages one op: the dispatch per operation kind.
fn stage_op<T>(stage: &mut ObjectStage<'_, T>, topics: &Topics<'_>, op: &Op) -> Result<(), StateError>
where
    T: redb::ReadableTable<&'static str, &'static [u8]>,
{
    match op {
        Op::Create { object, uid } => stage.put(object, uid, false),
        Op::Apply { object, uid } => stage.put(object, uid, true),
        Op::Replace { object } => stage.update(object, false),
        Op::UpdateStatus { object } => stage.update(object, true),
        Op::Delete {
            kind,
            namespace,
            name,
            uid,
            resource_version,
        } => stage.delete(
            *kind,
            namespace.as_deref(),
            name,
            uid.as_deref(),
            *resource_version,
        ),
        Op::Publish {
            namespace,
            topic,
            event,
            key,
        } => {
            // Checked against the stored backlog and the publishes staged before it.
            topics.check_publish(namespace, topic, event, key.as_deref())?;
            stage.require_namespace(namespace)
        }
        Op::KvSet { namespace, .. } | Op::KvDelete { namespace, .. } | Op::KvIncrement { namespace, .. } => {
            stage.require_namespace(namespace)
        }
        Op::Ack { .. } => Ok(()),
    }
}

/// Functions written or deleted: their topic subscriptions follow.
fn follow_functions(topics: &Topics<'_>, changes: &[Change]) -> Result<(), StateError> {
    for (event_type, object) in changes {
        if let Object::Function(f) = object {
            let ns = f.metadata.namespace_or_default();
            let current = (*event_type != EventType::Deleted).then_some(f);
            topics.sync_function(ns, &f.metadata.name, current)?;
        }
    }
    Ok(())
}

/// A deleted namespace takes its key-value stores along.
fn drop_namespace_stores(txn: &WriteTransaction, changes: &[Change]) -> Result<(), StateError> {
    for (event_type, object) in changes {
        if let (EventType::Deleted, Object::Namespace(n)) = (event_type, object) {
            crate::keyvalue::drop_namespace(txn, &n.metadata.name)?;
        }
    }
    Ok(())
}

/// The topic ops, in command order: publishes (answered) and acknowledgements.
fn topic_ops(topics: &Topics<'_>, ops: &[Op]) -> Result<Vec<skiff_api::PublishResult>, StateError> {
    let mut published = Vec::new();
    for op in ops {
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
    Ok(published)
}
