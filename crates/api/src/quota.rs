//! [`ResourceQuota`]: what one namespace may hold and use.
//!
//! A namespace without a quota is unlimited (up to the per-store and per-topic limits every
//! namespace has). Each quota in a namespace is enforced on its own: a write that would take a
//! namespace past any `spec.hard` amount of any of its quotas is refused with 403
//! `QuotaExceeded`, naming the quota and the amount. Writes that lower usage always pass, so a
//! namespace over a lowered quota can still be cleaned up.
use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};
use crate::quantity::ByteSize;

/// Limits on one namespace (namespaced; any number per namespace, each enforced).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuota {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The limits.
    pub spec: ResourceQuotaSpec,
    /// What the namespace uses now, filled in when the quota is read (`get`, `list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResourceQuotaStatus>,
}

/// The limits of a [`ResourceQuota`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuotaSpec {
    /// The most the namespace may hold of each amount named; amounts not named are not limited.
    pub hard: QuotaAmounts,
}

/// A namespace's usage of the amounts a quota limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuotaStatus {
    /// The limits, as in `spec.hard`.
    pub hard: QuotaAmounts,
    /// The namespace's usage of each limited amount.
    pub used: QuotaAmounts,
}

/// Amounts a namespace holds or uses; in a quota's `hard`, the most it may.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaAmounts {
    /// Objects of every kind in the namespace, except the server-owned Events and Endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<u64>,
    /// Pods not yet finished (phase other than Succeeded and Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<u64>,
    /// The memory requests of those pods ([`crate::PodSpec::memory_request`]), summed.
    #[serde(default, rename = "requests.memory", skip_serializing_if = "Option::is_none")]
    pub requests_memory: Option<ByteSize>,
    /// Bytes of values in the namespace's key-value stores.
    #[serde(default, rename = "keyvalue.bytes", skip_serializing_if = "Option::is_none")]
    pub keyvalue_bytes: Option<ByteSize>,
    /// Keys in the namespace's key-value stores.
    #[serde(default, rename = "keyvalue.keys", skip_serializing_if = "Option::is_none")]
    pub keyvalue_keys: Option<u64>,
    /// Events the subscribers of the namespace's topics have not finished with, summed over the
    /// topics.
    #[serde(default, rename = "topics.backlog", skip_serializing_if = "Option::is_none")]
    pub topics_backlog: Option<u64>,
    /// Bytes of the distinct artifacts (components) the namespace's objects reference.
    #[serde(default, rename = "artifacts.bytes", skip_serializing_if = "Option::is_none")]
    pub artifacts_bytes: Option<ByteSize>,
    /// Fuel (roughly, wasm instructions) the namespace's components may burn per minute on each
    /// worker; requests past it get 429 until the budget refills.
    #[serde(default, rename = "fuel.perMinute", skip_serializing_if = "Option::is_none")]
    pub fuel_per_minute: Option<u64>,
}

/// One amount a quota can limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaResource {
    /// [`QuotaAmounts::objects`].
    Objects,
    /// [`QuotaAmounts::pods`].
    Pods,
    /// [`QuotaAmounts::requests_memory`].
    RequestsMemory,
    /// [`QuotaAmounts::keyvalue_bytes`].
    KeyValueBytes,
    /// [`QuotaAmounts::keyvalue_keys`].
    KeyValueKeys,
    /// [`QuotaAmounts::topics_backlog`].
    TopicsBacklog,
    /// [`QuotaAmounts::artifacts_bytes`].
    ArtifactsBytes,
    /// [`QuotaAmounts::fuel_per_minute`].
    FuelPerMinute,
}

impl QuotaResource {
    /// Every amount, in the order they are reported.
    pub const ALL: [QuotaResource; 8] = [
        QuotaResource::Objects,
        QuotaResource::Pods,
        QuotaResource::RequestsMemory,
        QuotaResource::KeyValueBytes,
        QuotaResource::KeyValueKeys,
        QuotaResource::TopicsBacklog,
        QuotaResource::ArtifactsBytes,
        QuotaResource::FuelPerMinute,
    ];

    /// Its name in `spec.hard`.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaResource::Objects => "objects",
            QuotaResource::Pods => "pods",
            QuotaResource::RequestsMemory => "requests.memory",
            QuotaResource::KeyValueBytes => "keyvalue.bytes",
            QuotaResource::KeyValueKeys => "keyvalue.keys",
            QuotaResource::TopicsBacklog => "topics.backlog",
            QuotaResource::ArtifactsBytes => "artifacts.bytes",
            QuotaResource::FuelPerMinute => "fuel.perMinute",
        }
    }

    /// Whether the amount is a number of bytes (shown as `64Mi`).
    pub fn is_bytes(self) -> bool {
        matches!(
            self,
            QuotaResource::RequestsMemory | QuotaResource::KeyValueBytes | QuotaResource::ArtifactsBytes
        )
    }

    /// `n` as this amount is written (`64Mi` for bytes, `12` otherwise).
    pub fn show(self, n: u64) -> String {
        if self.is_bytes() {
            ByteSize(n).to_string()
        } else {
            n.to_string()
        }
    }
}

impl std::fmt::Display for QuotaResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl QuotaAmounts {
    /// The amount of `r`, if set.
    pub fn get(&self, r: QuotaResource) -> Option<u64> {
        match r {
            QuotaResource::Objects => self.objects,
            QuotaResource::Pods => self.pods,
            QuotaResource::RequestsMemory => self.requests_memory.map(|b| b.0),
            QuotaResource::KeyValueBytes => self.keyvalue_bytes.map(|b| b.0),
            QuotaResource::KeyValueKeys => self.keyvalue_keys,
            QuotaResource::TopicsBacklog => self.topics_backlog,
            QuotaResource::ArtifactsBytes => self.artifacts_bytes.map(|b| b.0),
            QuotaResource::FuelPerMinute => self.fuel_per_minute,
        }
    }

    /// Sets the amount of `r`.
    pub fn set(&mut self, r: QuotaResource, n: Option<u64>) {
        match r {
            QuotaResource::Objects => self.objects = n,
            QuotaResource::Pods => self.pods = n,
            QuotaResource::RequestsMemory => self.requests_memory = n.map(ByteSize),
            QuotaResource::KeyValueBytes => self.keyvalue_bytes = n.map(ByteSize),
            QuotaResource::KeyValueKeys => self.keyvalue_keys = n,
            QuotaResource::TopicsBacklog => self.topics_backlog = n,
            QuotaResource::ArtifactsBytes => self.artifacts_bytes = n.map(ByteSize),
            QuotaResource::FuelPerMinute => self.fuel_per_minute = n,
        }
    }

    /// The amounts that are set, in [`QuotaResource::ALL`] order.
    pub fn limited(&self) -> impl Iterator<Item = (QuotaResource, u64)> + '_ {
        QuotaResource::ALL
            .into_iter()
            .filter_map(|r| self.get(r).map(|n| (r, n)))
    }
}

impl ResourceQuota {
    /// The first amount of this quota that `after` exceeds while rising above `before`: a write
    /// taking usage from `before` to `after` is refused for it. `usage` gives the namespace's
    /// usage of an amount before and after the write.
    pub fn exceeded_by(&self, mut usage: impl FnMut(QuotaResource) -> (u64, u64)) -> Option<QuotaExcess> {
        self.spec.hard.limited().find_map(|(resource, hard)| {
            let (before, after) = usage(resource);
            (after > hard && after > before).then(|| QuotaExcess {
                resource,
                hard,
                used: before,
                requested: after - before,
            })
        })
    }
}

/// How a write would exceed a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExcess {
    /// The amount.
    pub resource: QuotaResource,
    /// Its limit.
    pub hard: u64,
    /// The namespace's usage before the write.
    pub used: u64,
    /// What the write adds.
    pub requested: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(hard: serde_json::Value) -> ResourceQuota {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "q", "namespace": "team"},
            "spec": {"hard": hard},
        }))
        .unwrap()
    }

    #[test]
    fn hard_amounts_use_their_quota_names() {
        let q = quota(serde_json::json!({
            "pods": 3, "requests.memory": "1Gi", "keyvalue.bytes": "64Mi", "fuel.perMinute": 1_000_000
        }));
        assert_eq!(q.spec.hard.pods, Some(3));
        assert_eq!(q.spec.hard.requests_memory, Some(ByteSize(1 << 30)));
        assert_eq!(q.spec.hard.keyvalue_bytes, Some(ByteSize(64 << 20)));
        assert_eq!(q.spec.hard.fuel_per_minute, Some(1_000_000));
        let names: Vec<_> = q.spec.hard.limited().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            names,
            ["pods", "requests.memory", "keyvalue.bytes", "fuel.perMinute"]
        );
        let back = serde_json::to_value(&q.spec).unwrap();
        assert_eq!(back["hard"]["requests.memory"], "1Gi");
    }

    #[test]
    fn an_unknown_amount_is_refused_by_name() {
        let err = serde_json::from_value::<QuotaAmounts>(serde_json::json!({"pod": 3})).unwrap_err();
        assert!(err.to_string().contains("unknown field `pod`"), "{err}");
    }

    #[test]
    fn only_a_rise_past_the_limit_is_an_excess() {
        let q = quota(serde_json::json!({"pods": 3, "objects": 10}));
        let e = q.exceeded_by(|r| if r == QuotaResource::Pods { (3, 4) } else { (5, 6) });
        assert_eq!(
            e,
            Some(QuotaExcess {
                resource: QuotaResource::Pods,
                hard: 3,
                used: 3,
                requested: 1
            })
        );
        // Over a lowered limit already, going down or staying is allowed.
        assert_eq!(q.exceeded_by(|_| (12, 11)), None);
        assert_eq!(q.exceeded_by(|_| (12, 12)), None);
        // Up to the limit exactly is allowed.
        assert_eq!(q.exceeded_by(|_| (2, 3)), None);
    }
}
