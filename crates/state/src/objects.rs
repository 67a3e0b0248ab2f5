//! The object changes of one command, staged before anything is written: each object op has
//! its own method on [`ObjectStage`], which reads through the changes staged so far (so later ops
//! of a command see earlier ones) and fails without touching the tables; [`ObjectStage::write`]
//! then writes them all at once.
use std::collections::BTreeMap;

use redb::{ReadableTable, Table};
use skiff_api::{EventType, Kind, Object};

use crate::error::StateError;
use crate::reader::object_key;
use crate::tables::decode;

/// An object change, in the order the command made it.
pub(crate) type Change = (EventType, Object);

/// The object changes of one command.
pub(crate) struct ObjectStage<'a, T> {
    objects: &'a T,
    now: &'a str,
    /// Key → the object after the command (`None`: deleted).
    overlay: BTreeMap<String, Option<Object>>,
    /// What changed, for the watch history and the state's followers.
    pub(crate) changes: Vec<Change>,
    /// One answer per op.
    pub(crate) outputs: Vec<Object>,
    /// The revision of the last change.
    pub(crate) rev: u64,
}

impl<'a, T: ReadableTable<&'static str, &'static [u8]>> ObjectStage<'a, T> {
    /// An empty stage over the stored `objects`, at revision `rev`, for a command made at `now`.
    pub(crate) fn new(objects: &'a T, rev: u64, now: &'a str) -> Self {
        ObjectStage {
            objects,
            now,
            overlay: BTreeMap::new(),
            changes: Vec::new(),
            outputs: Vec::new(),
            rev,
        }
    }

    /// The object under `key` as the command has it so far.
    fn read(&self, key: &str) -> Result<Option<Object>, StateError> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        match self.objects.get(key).map_err(StateError::storage)? {
            Some(v) => decode(v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn stage(&mut self, key: String, event_type: EventType, object: Object) {
        self.rev += 1;
        let mut object = object;
        object.meta_mut().resource_version = Some(self.rev);
        self.overlay.insert(key, Some(object.clone()));
        self.changes.push((event_type, object.clone()));
        self.outputs.push(object);
    }

    /// Fails unless the namespace exists (as the command has it so far).
    pub(crate) fn require_namespace(&self, namespace: &str) -> Result<(), StateError> {
        if self
            .read(&object_key(Kind::Namespace, None, namespace))?
            .is_none()
        {
            return Err(StateError::NamespaceNotFound {
                namespace: namespace.to_owned(),
            });
        }
        Ok(())
    }

    /// `Create` (fails when the object exists) or `Apply` (replaces it when it does).
    pub(crate) fn put(&mut self, object: &Object, uid: &str, upsert: bool) -> Result<(), StateError> {
        let key = key_of(object);
        match self.read(&key)? {
            Some(_) if !upsert => Err(StateError::AlreadyExists {
                kind: object.kind().to_string(),
                namespace: object.namespace().map(str::to_owned),
                name: object.meta().name.clone(),
            }),
            Some(old) => self.change(key, old, object, replace),
            None => {
                if let Some(ns) = object.namespace() {
                    self.require_namespace(ns)?;
                }
                let mut new = object.clone();
                let m = new.meta_mut();
                if object.kind().namespaced() {
                    m.namespace = Some(object.meta().namespace_or_default().to_owned());
                }
                m.uid = Some(uid.to_owned());
                m.generation = Some(1);
                m.creation_timestamp = Some(self.now.to_owned());
                new.drop_computed_status();
                self.stage(key, EventType::Added, new);
                Ok(())
            }
        }
    }

    /// `Replace` (`status: false`) or `UpdateStatus` (`status: true`) of an existing object.
    pub(crate) fn update(&mut self, object: &Object, status: bool) -> Result<(), StateError> {
        let key = key_of(object);
        let Some(old) = self.read(&key)? else {
            return Err(not_found(object.kind(), object.namespace(), &object.meta().name));
        };
        self.change(key, old, object, if status { update_status } else { replace })
    }

    /// Stages `how(old, object)`, or answers `old` when it changes nothing.
    fn change(
        &mut self,
        key: String,
        old: Object,
        object: &Object,
        how: fn(&Object, &Object, u64) -> Result<Option<Object>, StateError>,
    ) -> Result<(), StateError> {
        match how(&old, object, self.rev + 1)? {
            Some(new) => self.stage(key, EventType::Modified, new),
            None => self.outputs.push(old),
        }
        Ok(())
    }

    /// `Delete`, checked against `uid` and `resource_version` when given; a namespace takes
    /// everything in it along (in key order, the namespace itself reported last).
    pub(crate) fn delete(
        &mut self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
        uid: Option<&str>,
        resource_version: Option<u64>,
    ) -> Result<(), StateError> {
        let key = object_key(kind, namespace, name);
        let Some(old) = self.read(&key)? else {
            return Err(not_found(kind, namespace, name));
        };
        if let Some(u) = uid
            && old.meta().uid.as_deref() != Some(u)
        {
            return Err(StateError::Conflict {
                kind: kind.to_string(),
                name: name.to_owned(),
                current: old.meta().resource_version.unwrap_or(0),
                given: resource_version.unwrap_or(0),
            });
        }
        check_rv(&old, resource_version)?;
        let mut victims = vec![(key, old.clone())];
        if kind == Kind::Namespace {
            for k in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
                victims.extend(self.list(k, name, true)?);
            }
            victims.rotate_left(1);
        }
        for (k, mut o) in victims {
            self.rev += 1;
            o.meta_mut().resource_version = Some(self.rev);
            self.overlay.insert(k, None);
            self.changes.push((EventType::Deleted, o));
        }
        let mut last = self.changes.last().map(|(_, o)| o.clone()).unwrap_or(old);
        last.meta_mut().resource_version = Some(self.rev);
        self.outputs.push(last);
        Ok(())
    }

    /// Every object of `kind` in `namespace` by key: as stored before the command
    /// (`staged: false`) or as the command has it so far (`staged: true`).
    pub(crate) fn list(
        &self,
        kind: Kind,
        namespace: &str,
        staged: bool,
    ) -> Result<BTreeMap<String, Object>, StateError> {
        let (prefix, end) = namespace_range(kind, namespace);
        let mut found: BTreeMap<String, Object> = BTreeMap::new();
        for item in self
            .objects
            .range(prefix.as_str()..end.as_str())
            .map_err(StateError::storage)?
        {
            let (k, v) = item.map_err(StateError::storage)?;
            found.insert(k.value().to_owned(), decode(v.value())?);
        }
        if staged {
            for (k, v) in self.overlay.range(prefix..end) {
                match v {
                    Some(o) => found.insert(k.clone(), o.clone()),
                    None => found.remove(k),
                };
            }
        }
        Ok(found)
    }

    /// How many objects of `kind` are in `namespace`, as stored or as staged (see
    /// [`list`](Self::list)); counts keys without decoding the objects.
    pub(crate) fn count(&self, kind: Kind, namespace: &str, staged: bool) -> Result<u64, StateError> {
        let (prefix, end) = namespace_range(kind, namespace);
        let mut n = 0u64;
        for item in self
            .objects
            .range(prefix.as_str()..end.as_str())
            .map_err(StateError::storage)?
        {
            item.map_err(StateError::storage)?;
            n += 1;
        }
        if staged {
            for (k, v) in self.overlay.range(prefix..end) {
                let stored = self
                    .objects
                    .get(k.as_str())
                    .map_err(StateError::storage)?
                    .is_some();
                match (stored, v.is_some()) {
                    (false, true) => n += 1,
                    (true, false) => n -= 1,
                    _ => {}
                }
            }
        }
        Ok(n)
    }

    /// The staged changes, ready to be written (the stage's borrow of the table ends).
    pub(crate) fn finish(self) -> Staged {
        Staged {
            overlay: self.overlay,
            changes: self.changes,
            outputs: self.outputs,
            rev: self.rev,
        }
    }
}

/// A command's object changes, staged and checked.
pub(crate) struct Staged {
    overlay: BTreeMap<String, Option<Object>>,
    /// The changes, in order.
    pub(crate) changes: Vec<Change>,
    /// One answer per object op.
    pub(crate) outputs: Vec<Object>,
    /// The revision of the last change.
    pub(crate) rev: u64,
}

impl Staged {
    /// Writes every change into `table` (the table the stage read).
    pub(crate) fn write(&self, table: &mut Table<'_, &'static str, &'static [u8]>) -> Result<(), StateError> {
        for (key, value) in &self.overlay {
            match value {
                Some(o) => {
                    let bytes = serde_json::to_vec(o).map_err(StateError::storage)?;
                    table
                        .insert(key.as_str(), bytes.as_slice())
                        .map_err(StateError::storage)?;
                }
                None => {
                    table.remove(key.as_str()).map_err(StateError::storage)?;
                }
            }
        }
        Ok(())
    }
}

/// The key range of `kind`'s objects in `namespace`.
fn namespace_range(kind: Kind, namespace: &str) -> (String, String) {
    let prefix = format!("{}/{}/", kind.as_str(), namespace);
    let end = format!("{prefix}\u{10FFFF}");
    (prefix, end)
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
