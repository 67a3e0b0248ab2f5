//! Resource quotas: how a write that takes a namespace past one of its [`ResourceQuota`]s is
//! found and refused. Enforced where every write is applied: in the state machine, on the same
//! transaction as the write, so concurrent writers through any member cannot together pass a
//! limit, and every replica decides the same way. The object and topic checks of a command are in
//! `quota_check`; key-value writes are checked where they are staged.
use redb::ReadableTable;
use skiff_api::{Kind, Object, QuotaExcess, QuotaResource, ResourceQuota};

use crate::error::StateError;

/// Kinds the `objects` amount does not count: written by the server about other objects.
const UNCOUNTED: [Kind; 2] = [Kind::Event, Kind::Endpoints];

/// The kinds the `objects` amount counts.
pub(crate) fn counted_kinds() -> impl Iterator<Item = Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| k.namespaced() && !UNCOUNTED.contains(k))
}

/// The memory request `p` holds toward `pods` and `requests.memory`; `None` once it finished
/// (Succeeded or Failed pods hold nothing).
pub(crate) fn pod_holds(p: &skiff_api::Pod) -> Option<u64> {
    (!matches!(
        p.status.phase,
        skiff_api::PodPhase::Succeeded | skiff_api::PodPhase::Failed
    ))
    .then(|| p.spec.memory_request())
}

/// The refusal of a write that takes `namespace` past quota `q`.
fn exceeded(namespace: &str, q: &ResourceQuota, e: QuotaExcess) -> StateError {
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
        if let Object::ResourceQuota(q) = crate::tables::decode(v.value())? {
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
