//! Checks of resource quotas.
use super::Checker;
use crate::quota::ResourceQuota;

impl Checker {
    /// A ResourceQuota: it must limit something (a `status` sent along is ignored: usage
    /// is computed when the quota is read).
    pub(super) fn resource_quota(&mut self, q: &ResourceQuota) {
        if q.spec.hard.limited().next().is_none() {
            self.err(
                "spec.hard",
                "names no amount: limit at least one of objects, pods, requests.memory, keyvalue.bytes, keyvalue.keys, topics.backlog, artifacts.bytes, fuel.perMinute",
            );
        }
    }
}
