//! What an agent's data plane counts for each pod it serves, and reports to control nodes at
//! `GET /skiff/pods/{namespace}/{name}/stats` ([`pod_stats_path`]): the canary analysis reads the
//! traffic, function autoscaling the busy time. Both sides use these types.
use serde::{Deserialize, Serialize};

/// What one pod's data plane counted since the pod started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PodTraffic {
    /// Requests answered.
    pub requests: u64,
    /// Of those, answers with a 5xx status.
    pub errors: u64,
}

/// A pod's counters as its node reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// The pod's uid (a pod re-created under the same name is another pod).
    pub uid: String,
    /// Requests answered and failed.
    #[serde(flatten)]
    pub traffic: PodTraffic,
    /// Requests refused because the pod was at its concurrency limit.
    #[serde(default)]
    pub shed: u64,
    /// Microseconds spent serving, all requests together.
    #[serde(default)]
    pub busy_us: u64,
    /// Requests in flight now.
    #[serde(default)]
    pub inflight: u64,
}

/// The data-plane path of a pod's stats. `namespace` and `name` are validated DNS labels, so
/// they need no encoding.
pub fn pod_stats_path(namespace: &str, name: &str) -> String {
    format!("/skiff/pods/{namespace}/{name}/stats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_have_their_wire_shape() {
        let s = PodStats {
            uid: "u1".into(),
            traffic: PodTraffic {
                requests: 7,
                errors: 1,
            },
            shed: 2,
            busy_us: 900,
            inflight: 3,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"uid": "u1", "requests": 7, "errors": 1, "shed": 2, "busyUs": 900, "inflight": 3})
        );
        assert_eq!(serde_json::from_value::<PodStats>(v).unwrap(), s);
        assert_eq!(
            pod_stats_path("default", "web-1"),
            "/skiff/pods/default/web-1/stats"
        );
    }
}
