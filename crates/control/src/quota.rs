//! The part of resource quotas the replicated state cannot decide: the bytes of the artifacts a
//! namespace references live in each member's artifact store, not in the state. Writes that
//! would take a namespace past its `artifacts.bytes` are refused here, before they are proposed
//! (checked against this member's store, so two concurrent writes through two members can pass
//! it together by at most one object each); every other amount is enforced by the state machine
//! (`skiff-state`). Reading a quota fills in its `status` from both.
use std::collections::{BTreeMap, BTreeSet};

use skiff_api::{
    Kind, LabelSelector, Object, QuotaAmounts, QuotaResource, ResourceQuota, ResourceQuotaStatus,
};
use skiff_state::{Op, StateError};

use skiff_state::Reader;

use crate::artifacts::ArtifactStore;
use crate::error::WriteError;

/// Kinds whose objects reference components.
pub(crate) const WITH_COMPONENTS: [Kind; 7] = [
    Kind::Pod,
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::DaemonSet,
    Kind::Job,
    Kind::CronJob,
    Kind::Function,
];

/// Refuses `ops` if they take a namespace past its `artifacts.bytes`.
pub(crate) fn check_artifacts(reader: &Reader, store: &ArtifactStore, ops: &[Op]) -> Result<(), WriteError> {
    let mut written: BTreeMap<&str, Vec<&Object>> = BTreeMap::new();
    for op in ops {
        if let Op::Create { object, .. } | Op::Apply { object, .. } | Op::Replace { object } = op
            && let Some(ns) = object.namespace()
            && !object.components().is_empty()
        {
            written.entry(ns).or_default().push(object);
        }
    }
    for (ns, objects) in written {
        let quotas: Vec<ResourceQuota> = quotas(reader, ns)?
            .into_iter()
            .filter(|q| q.spec.hard.artifacts_bytes.is_some())
            .collect();
        if quotas.is_empty() {
            continue;
        }
        let mut stored = referencing(reader, ns)?;
        let before = artifact_bytes(store, stored.values());
        for o in objects {
            stored.insert((o.kind(), o.meta().name.clone()), o.clone());
        }
        let after = artifact_bytes(store, stored.values());
        skiff_state::check_quota_amounts(ns, &quotas, &[QuotaResource::ArtifactsBytes], &[before], &[after])
            .map_err(WriteError::State)?;
    }
    Ok(())
}

/// Fills in `q.status`: the limits and the namespace's usage of each.
pub(crate) fn fill_status(
    reader: &Reader,
    store: &ArtifactStore,
    q: &mut ResourceQuota,
) -> Result<(), StateError> {
    let ns = q.metadata.namespace_or_default().to_owned();
    let all = reader.quota_usage(&ns)?;
    let mut used = QuotaAmounts::default();
    for (r, _) in q.spec.hard.limited() {
        let n = match r {
            QuotaResource::ArtifactsBytes => Some(artifact_bytes(store, referencing(reader, &ns)?.values())),
            // Fuel is metered on each worker against its own budget; no total is kept.
            QuotaResource::FuelPerMinute => None,
            _ => all.get(r),
        };
        used.set(r, n);
    }
    q.status = Some(ResourceQuotaStatus {
        hard: q.spec.hard.clone(),
        used,
    });
    Ok(())
}

fn quotas(reader: &Reader, ns: &str) -> Result<Vec<ResourceQuota>, StateError> {
    let (_, items) = reader.list(Kind::ResourceQuota, Some(ns), &LabelSelector::default())?;
    Ok(items
        .into_iter()
        .filter_map(|o| match o {
            Object::ResourceQuota(q) => Some(q),
            _ => None,
        })
        .collect())
}

/// The stored objects of `ns` that reference components, by kind and name.
fn referencing(reader: &Reader, ns: &str) -> Result<BTreeMap<(Kind, String), Object>, StateError> {
    let mut out = BTreeMap::new();
    for kind in WITH_COMPONENTS {
        let (_, items) = reader.list(kind, Some(ns), &LabelSelector::default())?;
        out.extend(items.into_iter().map(|o| ((kind, o.meta().name.clone()), o)));
    }
    Ok(out)
}

/// The distinct artifact digests `objects` reference.
pub(crate) fn digests<'a>(objects: impl Iterator<Item = &'a Object>) -> BTreeSet<&'a str> {
    objects
        .flat_map(|o| o.components().into_iter().map(|(_, c)| c))
        .filter_map(|c| c.wasm.as_ref()?.digest.as_deref())
        .collect()
}

/// Bytes of the distinct artifacts `objects` reference that this member's store holds.
fn artifact_bytes<'a>(store: &ArtifactStore, objects: impl Iterator<Item = &'a Object>) -> u64 {
    digests(objects)
        .into_iter()
        .filter_map(|d| store.size_of(d))
        .sum()
}
