//! Resource quotas, enforced where every write is applied: in the state machine, on the same
//! transaction as the write, so concurrent writers through any member cannot together pass a
//! limit, and every replica decides the same way.
//!
//! A command is checked after all its ops are staged: for each namespace whose usage it may
//! raise, each [`ResourceQuota`] there compares the usage before the command with the usage
//! after it ([`ResourceQuota::exceeded_by`]); only a rise past a limit is refused, so deletes
//! always pass. Key-value and topic amounts are checked where their ops are staged.
use std::collections::BTreeSet;

use redb::ReadableTable;
use skiff_api::{
    ByteSize, EventType, Kind, Object, PodPhase, QuotaAmounts, QuotaExcess, QuotaResource, ResourceQuota,
};

use crate::error::StateError;
use crate::objects::ObjectStage;

/// Kinds the `objects` amount does not count: written by the server about other objects.
const UNCOUNTED: [Kind; 2] = [Kind::Event, Kind::Endpoints];

/// The quotas of `namespace`, as the command has them so far.
pub(crate) fn quotas_of<T>(
    stage: &ObjectStage<'_, T>,
    namespace: &str,
) -> Result<Vec<ResourceQuota>, StateError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    Ok(stage
        .list(Kind::ResourceQuota, namespace, true)?
        .into_values()
        .filter_map(|o| match o {
            Object::ResourceQuota(q) => Some(q),
            _ => None,
        })
        .collect())
}

/// Refuses the staged object changes if they take a namespace past one of its quotas.
pub(crate) fn check_objects<T>(stage: &ObjectStage<'_, T>) -> Result<(), StateError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    let raised: BTreeSet<&str> = stage
        .changes
        .iter()
        .filter(|(t, o)| match t {
            EventType::Added => !UNCOUNTED.contains(&o.kind()),
            EventType::Modified => o.kind() == Kind::Pod,
            _ => false,
        })
        .filter_map(|(_, o)| o.namespace())
        .collect();
    for ns in raised {
        let quotas = quotas_of(stage, ns)?;
        if quotas.is_empty() {
            continue;
        }
        let mut usage = ObjectUsage::new(stage, ns);
        for q in &quotas {
            let mut failed = None;
            let excess = q.exceeded_by(|r| match usage.of(r) {
                Ok(u) => u,
                Err(e) => {
                    failed = Some(e);
                    (0, 0)
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            if let Some(excess) = excess {
                return Err(exceeded(ns, q, excess));
            }
        }
    }
    Ok(())
}

/// The refusal of a write that takes `namespace` past quota `q`.
pub(crate) fn exceeded(namespace: &str, q: &ResourceQuota, e: QuotaExcess) -> StateError {
    let r = e.resource;
    StateError::QuotaExceeded(Box::new(crate::error::QuotaRefusal {
        namespace: namespace.to_owned(),
        quota: q.metadata.name.clone(),
        resource: r.as_str().to_owned(),
        used: r.show(e.used),
        requested: r.show(e.requested),
        hard: r.show(e.hard),
    }))
}

/// A namespace's object amounts before and after the staged changes, each computed once.
struct ObjectUsage<'s, 'a, T> {
    stage: &'s ObjectStage<'a, T>,
    namespace: &'s str,
    objects: Option<(u64, u64)>,
    pods: Option<((u64, u64), (u64, u64))>,
}

impl<'s, 'a, T> ObjectUsage<'s, 'a, T>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    fn new(stage: &'s ObjectStage<'a, T>, namespace: &'s str) -> Self {
        ObjectUsage {
            stage,
            namespace,
            objects: None,
            pods: None,
        }
    }

    /// (before, after) of `r`; amounts objects do not make are unchanged by them (0, 0).
    fn of(&mut self, r: QuotaResource) -> Result<(u64, u64), StateError> {
        Ok(match r {
            QuotaResource::Objects => {
                if self.objects.is_none() {
                    self.objects = Some((self.objects_count(false)?, self.objects_count(true)?));
                }
                self.objects.unwrap_or_default()
            }
            QuotaResource::Pods | QuotaResource::RequestsMemory => {
                if self.pods.is_none() {
                    self.pods = Some((self.pods_usage(false)?, self.pods_usage(true)?));
                }
                let ((count0, mem0), (count1, mem1)) = self.pods.unwrap_or_default();
                if r == QuotaResource::Pods {
                    (count0, count1)
                } else {
                    (mem0, mem1)
                }
            }
            _ => (0, 0),
        })
    }

    fn objects_count(&self, staged: bool) -> Result<u64, StateError> {
        let mut n = 0;
        for k in Kind::ALL
            .into_iter()
            .filter(|k| k.namespaced() && !UNCOUNTED.contains(k))
        {
            n += self.stage.count(k, self.namespace, staged)?;
        }
        Ok(n)
    }

    /// (pods not finished, their memory requests).
    fn pods_usage(&self, staged: bool) -> Result<(u64, u64), StateError> {
        let mut usage = (0u64, 0u64);
        for o in self.stage.list(Kind::Pod, self.namespace, staged)?.values() {
            if let Object::Pod(p) = o
                && !matches!(p.status.phase, PodPhase::Succeeded | PodPhase::Failed)
            {
                usage.0 += 1;
                usage.1 = usage.1.saturating_add(p.spec.memory_request());
            }
        }
        Ok(usage)
    }
}

/// The quotas of `namespace` as stored (for the ops checked before the command's object changes
/// are staged: key-value writes).
pub(crate) fn stored_quotas(
    txn: &redb::WriteTransaction,
    namespace: &str,
) -> Result<Vec<ResourceQuota>, StateError> {
    let objects = txn
        .open_table(crate::tables::OBJECTS)
        .map_err(StateError::storage)?;
    let prefix = format!("{}/{namespace}/", Kind::ResourceQuota.as_str());
    let end = format!("{prefix}\u{10FFFF}");
    let mut out = Vec::new();
    for item in objects
        .range(prefix.as_str()..end.as_str())
        .map_err(StateError::storage)?
    {
        let (_, v) = item.map_err(StateError::storage)?;
        if let Object::ResourceQuota(q) = crate::reader::decode(v.value())? {
            out.push(q);
        }
    }
    Ok(out)
}

/// Refuses a change of `namespace`'s amounts from `before` to `after` (one value per amount in
/// `resources`) that takes it past one of `quotas`, with [`StateError::QuotaExceeded`].
///
/// # Errors
/// [`StateError::QuotaExceeded`] for the first quota and amount exceeded.
pub fn check_amounts(
    namespace: &str,
    quotas: &[ResourceQuota],
    resources: &[QuotaResource],
    before: &[u64],
    after: &[u64],
) -> Result<(), StateError> {
    for q in quotas {
        let excess = q.exceeded_by(|r| match resources.iter().position(|x| *x == r) {
            Some(i) => (before[i], after[i]),
            None => (0, 0),
        });
        if let Some(e) = excess {
            return Err(exceeded(namespace, q, e));
        }
    }
    Ok(())
}

/// Refuses the command's publishes if they take a namespace past its `topics.backlog` quota.
pub(crate) fn check_publishes<T>(
    stage: &ObjectStage<'_, T>,
    topics: &crate::topics::Topics<'_>,
    ops: &[crate::command::Op],
) -> Result<(), StateError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    let mut added: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for op in ops {
        if let crate::command::Op::Publish {
            namespace,
            topic,
            key,
            ..
        } = op
            && topics.publish_adds_backlog(namespace, topic, key.as_deref())?
        {
            *added.entry(namespace.as_str()).or_default() += 1;
        }
    }
    for (ns, n) in added {
        let quotas = quotas_of(stage, ns)?;
        if quotas.is_empty() {
            continue;
        }
        let before = topics.namespace_backlog(ns)?;
        check_amounts(
            ns,
            &quotas,
            &[QuotaResource::TopicsBacklog],
            &[before],
            &[before.saturating_add(n)],
        )?;
    }
    Ok(())
}

/// What `namespace` uses of the amounts the state holds (objects, pods, their memory requests,
/// key-value keys and bytes, topic backlog), read on `txn`; artifact bytes and fuel are the
/// caller's to fill in.
pub(crate) fn read_usage(txn: &redb::ReadTransaction, namespace: &str) -> Result<QuotaAmounts, StateError> {
    let mut used = QuotaAmounts::default();
    let (mut objects, mut pods, mut memory) = (0u64, 0u64, 0u64);
    if let Ok(t) = txn.open_table(crate::tables::OBJECTS) {
        for kind in Kind::ALL
            .into_iter()
            .filter(|k| k.namespaced() && !UNCOUNTED.contains(k))
        {
            let prefix = format!("{}/{namespace}/", kind.as_str());
            let end = format!("{prefix}\u{10FFFF}");
            for item in t
                .range(prefix.as_str()..end.as_str())
                .map_err(StateError::storage)?
            {
                let (_, v) = item.map_err(StateError::storage)?;
                objects += 1;
                if kind == Kind::Pod
                    && let Object::Pod(p) = crate::reader::decode(v.value())?
                    && !matches!(p.status.phase, PodPhase::Succeeded | PodPhase::Failed)
                {
                    pods += 1;
                    memory = memory.saturating_add(p.spec.memory_request());
                }
            }
        }
    }
    used.objects = Some(objects);
    used.pods = Some(pods);
    used.requests_memory = Some(ByteSize(memory));
    let stores = crate::keyvalue::read_stores(txn, Some(namespace))?;
    used.keyvalue_keys = Some(stores.iter().map(|s| s.keys).sum());
    used.keyvalue_bytes = Some(ByteSize(stores.iter().map(|s| s.bytes).sum()));
    let topics = crate::topics::read_topics(txn, Some(namespace))?;
    used.topics_backlog = Some(topics.iter().map(|t| t.backlog).sum());
    Ok(used)
}
