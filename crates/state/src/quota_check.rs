//! The quota checks of a command's object changes and publishes, made after all its ops are
//! staged: for each namespace whose usage the command may raise, each [`ResourceQuota`] there
//! compares the usage before the command with the usage after it
//! ([`ResourceQuota::exceeded_by`]); only a rise past a limit is refused, so deletes always pass.
use std::collections::BTreeSet;

use redb::ReadableTable;
use skiff_api::{EventType, Kind, Object, QuotaResource, ResourceQuota};

use crate::error::StateError;
use crate::objects::ObjectStage;
use crate::quota::{check_amounts, counted_kinds, pod_holds};

/// The quotas of `namespace`, as the command has them so far.
fn quotas_of<T>(stage: &ObjectStage<'_, T>, namespace: &str) -> Result<Vec<ResourceQuota>, StateError>
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
            EventType::Added => counted_kinds().any(|k| k == o.kind()),
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
        let limited: Vec<QuotaResource> = quotas
            .iter()
            .flat_map(|q| q.spec.hard.limited().map(|(r, _)| r))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut usage = ObjectUsage::new(stage, ns);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for r in &limited {
            let (b, a) = usage.of(*r)?;
            before.push(b);
            after.push(a);
        }
        check_amounts(ns, &quotas, &limited, &before, &after)?;
    }
    Ok(())
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
        for k in counted_kinds() {
            n += self.stage.count(k, self.namespace, staged)?;
        }
        Ok(n)
    }

    /// (pods not finished, their memory requests).
    fn pods_usage(&self, staged: bool) -> Result<(u64, u64), StateError> {
        let mut usage = (0u64, 0u64);
        for o in self.stage.list(Kind::Pod, self.namespace, staged)?.values() {
            if let Object::Pod(p) = o
                && let Some(memory) = pod_holds(p)
            {
                usage.0 += 1;
                usage.1 = usage.1.saturating_add(memory);
            }
        }
        Ok(usage)
    }
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
