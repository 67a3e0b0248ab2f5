//! Node lifecycle: heartbeats decide the `Ready` condition; pods of a node that stays not ready
//! past their `disconnect.replaceAfter` (default: the eviction grace) are failed with
//! [`NODE_LOST`] so their owners replace them elsewhere; pods with `replaceAfter: never` stay bound
//! (edge autonomy: assumed running, kept in endpoints). Pods that do not tolerate a `NoExecute`
//! taint of their node are failed with [`TAINT_EVICTION`].
//!
//! ```text
//! heartbeat age:  0 ──── grace ──────── grace + replaceAfter ────▶
//!                 Ready  │ NotReady       │ pods Failed(NodeLost) → replaced on ready nodes
//!                        │ (endpoints not ready, no new pods; `never` pods stay ready)
//! ```
//!
//! Ages are measured by the leader's own clock, from when it saw a node's `status.lastHeartbeat`
//! change ([`HeartbeatClock`]), not from the time the agent wrote in it: a skewed agent clock cannot
//! make a node look dead, and a new leader (or a control plane back from an outage) gives every
//! node a full grace before judging it, instead of evicting the whole cluster at once. Without an
//! observation (pure tests) the age falls back to the agent's timestamp.
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use skiff_api::{
    ConditionStatus, EventSeverity, Kind, Node, NodeCondition, Object, Pod, PodPhase, READY_CONDITION,
    TaintEffect, untolerated,
};
use skiff_state::Op;

use super::events::{NODE_NOT_READY, NODE_READY, POD_EVICTED, Recorder};
use super::{Ids, Snapshot, is_terminal};

/// The `source.component` of the events this controller records.
pub const NODE_CONTROLLER: &str = "node-controller";

/// Reason set on pods failed because their node stopped heartbeating; their deployment replaces
/// them at once (no failed-pod backoff).
pub const NODE_LOST: &str = "NodeLost";
/// Reason set on pods failed because their node has a `NoExecute` taint they do not tolerate;
/// replaced at once, like [`NODE_LOST`].
pub const TAINT_EVICTION: &str = "TaintEviction";
/// Reason of the `Ready=False` condition of a node whose heartbeat is too old.
pub const HEARTBEAT_MISSED: &str = "HeartbeatMissed";
/// Reason of the `Ready=True` condition of a node whose heartbeat is fresh.
pub const HEARTBEAT_FRESH: &str = "HeartbeatFresh";

pub(super) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn parse_time(t: Option<&str>) -> Option<SystemTime> {
    t.and_then(|t| humantime::parse_rfc3339_weak(t).ok())
}

/// When the leader saw each node's heartbeat change, by its own clock. The controller loop keeps one
/// while it leads, calls [`observe`](Self::observe) before every pass and hands it to the pass in
/// [`Snapshot::heartbeats`]; it starts empty on a new leader.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatClock {
    seen: BTreeMap<String, (Option<String>, SystemTime)>,
}

impl HeartbeatClock {
    /// Records the nodes' heartbeats at `now`: a heartbeat seen for the first time or changed since
    /// the last call counts from `now`. Forgets nodes that are gone.
    pub fn observe(&mut self, nodes: &[Node], now: SystemTime) {
        self.seen
            .retain(|name, _| nodes.iter().any(|n| &n.metadata.name == name));
        for n in nodes {
            let beat = &n.status.last_heartbeat;
            match self.seen.get(&n.metadata.name) {
                Some((last, _)) if last == beat => {}
                _ => {
                    self.seen.insert(n.metadata.name.clone(), (beat.clone(), now));
                }
            }
        }
    }

    /// How long since the node's current heartbeat was first seen, if it was.
    fn age(&self, n: &Node, now: SystemTime) -> Option<Duration> {
        let (beat, at) = self.seen.get(&n.metadata.name)?;
        (beat == &n.status.last_heartbeat).then(|| now.duration_since(*at).unwrap_or_default())
    }
}

/// How long ago the node's agent last heartbeated (`None` when it never did).
fn heartbeat_age(s: &Snapshot, n: &Node, now: SystemTime) -> Option<Duration> {
    n.status.last_heartbeat.as_ref()?;
    s.heartbeats.age(n, now).or_else(|| {
        parse_time(n.status.last_heartbeat.as_deref()).map(|t| now.duration_since(t).unwrap_or_default())
    })
}

/// How long the node has been not ready: from the heartbeat age past `grace`, else (no heartbeat
/// ever) from its `Ready=False` condition. `None` while it is ready.
fn not_ready_for(s: &Snapshot, n: &Node, now: SystemTime, grace: Duration) -> Option<Duration> {
    match heartbeat_age(s, n, now) {
        Some(age) if age > grace => Some(age - grace),
        Some(_) => None,
        None => {
            let c = n.condition(READY_CONDITION)?;
            if c.status != ConditionStatus::False {
                return None;
            }
            parse_time(c.last_transition_time.as_deref()).map(|t| now.duration_since(t).unwrap_or_default())
        }
    }
}

/// Marks nodes whose last heartbeat is older than `grace` not ready, with a `Ready=False` condition
/// saying for how long (`no heartbeat for 12s`); records `Ready=True` on nodes heartbeating again.
/// Conditions change only on a transition, so a steady cluster causes no writes; each transition is
/// recorded as a `NodeNotReady` / `NodeReady` event in the same command. Returns one
/// command's ops per node, so a heartbeat racing one node's write does not hold back the others.
pub fn node_health(s: &Snapshot, grace: Duration, ids: &mut dyn Ids) -> Vec<Vec<Op>> {
    let Some(now) = s.now else { return Vec::new() };
    let recorder = Recorder {
        component: NODE_CONTROLLER,
        now,
    };
    let mut out = Vec::new();
    for n in &s.nodes {
        let mut ops = Vec::new();
        let age = heartbeat_age(s, n, now);
        let fresh = age.is_some_and(|a| a <= grace);
        let current = n.condition(READY_CONDITION).map(|c| c.status);
        let wanted = if fresh {
            // The agent says whether it is ready; only a ready, heartbeating node gets `True`.
            if !n.status.ready {
                continue;
            }
            NodeCondition {
                type_: READY_CONDITION.into(),
                status: ConditionStatus::True,
                reason: HEARTBEAT_FRESH.into(),
                message: format!("the agent heartbeats within {}s", grace.as_secs()),
                last_transition_time: Some(rfc3339(now)),
            }
        } else {
            NodeCondition {
                type_: READY_CONDITION.into(),
                status: ConditionStatus::False,
                reason: HEARTBEAT_MISSED.into(),
                message: match age {
                    Some(a) => format!("no heartbeat for {}s", a.as_secs()),
                    None => "the agent never reported a heartbeat".into(),
                },
                last_transition_time: Some(rfc3339(now)),
            }
        };
        if current != Some(wanted.status) {
            let (severity, reason) = match wanted.status {
                ConditionStatus::True => (EventSeverity::Normal, NODE_READY),
                _ => (EventSeverity::Warning, NODE_NOT_READY),
            };
            let message = format!(
                "node {} is {}: {}",
                n.metadata.name,
                match wanted.status {
                    ConditionStatus::True => "ready",
                    _ => "not ready",
                },
                wanted.message
            );
            ops.push(recorder.record(s, ids, Kind::Node, &n.metadata, severity, reason, message));
            // Checked against the snapshot's revision: a concurrent cordon is never undone.
            let mut next = n.clone();
            next.set_condition(wanted);
            ops.push(Op::Replace {
                object: Object::Node(next),
            });
        }
        if !fresh && n.status.ready {
            let mut next = n.clone();
            next.status.ready = false;
            next.metadata.resource_version = None;
            ops.push(Op::UpdateStatus {
                object: Object::Node(next),
            });
        }
        if !ops.is_empty() {
            out.push(ops);
        }
    }
    out
}

/// Why a pod must leave its node now, if it must: [`TAINT_EVICTION`] when the node has a
/// `NoExecute` taint the pod does not tolerate; [`NODE_LOST`] when the node has been not ready
/// (`down`) for at least the pod's `disconnect.replaceAfter` (default `eviction_grace`; `never`
/// keeps it bound). Pure: unit tests call it directly.
pub fn eviction_reason(
    pod: &Pod,
    node: &Node,
    down: Option<Duration>,
    eviction_grace: Duration,
) -> Option<&'static str> {
    if untolerated(
        &node.spec.taints,
        &pod.spec.tolerations,
        &[TaintEffect::NoExecute],
    )
    .is_some()
    {
        return Some(TAINT_EVICTION);
    }
    let after = pod.spec.disconnect_policy().replace_after_or(eviction_grace)?;
    (down? >= after).then_some(NODE_LOST)
}

/// Fails the live pods that must leave their node ([`eviction_reason`]): those of a node not ready
/// for longer than their `replaceAfter` (default `eviction_grace`) with reason [`NODE_LOST`], and
/// those not tolerating a `NoExecute` taint with [`TAINT_EVICTION`]; their deployment then replaces
/// them on nodes that can take them. Each eviction is recorded as a `PodEvicted` event in the same
/// command. Each pod's write is checked against its revision; one command's
/// ops per node.
pub fn evict_pods(
    s: &Snapshot,
    grace: Duration,
    eviction_grace: Duration,
    ids: &mut dyn Ids,
) -> Vec<Vec<Op>> {
    let Some(now) = s.now else { return Vec::new() };
    let recorder = Recorder {
        component: NODE_CONTROLLER,
        now,
    };
    let mut out = Vec::new();
    for n in &s.nodes {
        let down = not_ready_for(s, n, now, grace);
        let lost = match (heartbeat_age(s, n, now), down) {
            (Some(a), _) => format!(
                "node {} has had no heartbeat for {}s",
                n.metadata.name,
                a.as_secs()
            ),
            (None, Some(d)) => format!("node {} has been not ready for {}s", n.metadata.name, d.as_secs()),
            (None, None) => String::new(),
        };
        let mut ops = Vec::new();
        for p in s
            .pods
            .iter()
            .filter(|p| !is_terminal(p) && p.spec.node_name.as_deref() == Some(n.metadata.name.as_str()))
        {
            let Some(reason) = eviction_reason(p, n, down, eviction_grace) else {
                continue;
            };
            let message = match untolerated(&n.spec.taints, &p.spec.tolerations, &[TaintEffect::NoExecute]) {
                Some(t) if reason == TAINT_EVICTION => format!(
                    "node {} has taint {t}, which the pod does not tolerate",
                    n.metadata.name
                ),
                _ => lost.clone(),
            };
            ops.push(recorder.record(
                s,
                ids,
                Kind::Pod,
                &p.metadata,
                EventSeverity::Warning,
                POD_EVICTED,
                format!("evicted ({reason}): {message}"),
            ));
            let mut next = p.clone();
            next.status.phase = PodPhase::Failed;
            next.status.ready = false;
            next.status.reason = Some(reason.into());
            next.status.message = Some(message);
            next.status.finished_at = Some(rfc3339(now));
            ops.push(Op::UpdateStatus {
                object: Object::Pod(next),
            });
        }
        if !ops.is_empty() {
            out.push(ops);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::{DisconnectDelay, DisconnectPolicy, Taint, Toleration, TolerationOperator};

    const GRACE: Duration = Duration::from_secs(5);

    fn pod(replace_after: Option<DisconnectDelay>) -> Pod {
        let mut p = Pod::default();
        p.spec.disconnect = replace_after.map(|r| DisconnectPolicy {
            replace_after: Some(r),
            stop_after: None,
        });
        p
    }

    #[test]
    fn replace_after_decides_when_a_pod_of_a_not_ready_node_is_evicted() {
        let n = Node::default();
        let secs = Duration::from_secs;
        // Ready node: nobody leaves.
        assert_eq!(eviction_reason(&pod(None), &n, None, GRACE), None);
        assert_eq!(
            eviction_reason(&pod(Some(DisconnectDelay::Never)), &n, None, GRACE),
            None
        );
        // Default: the cluster's eviction grace.
        assert_eq!(eviction_reason(&pod(None), &n, Some(secs(4)), GRACE), None);
        assert_eq!(
            eviction_reason(&pod(None), &n, Some(secs(5)), GRACE),
            Some(NODE_LOST)
        );
        // Its own delay, shorter or longer.
        let quick = pod(Some(DisconnectDelay::After(secs(0))));
        assert_eq!(eviction_reason(&quick, &n, Some(secs(0)), GRACE), Some(NODE_LOST));
        let patient = pod(Some(DisconnectDelay::After(secs(60))));
        assert_eq!(eviction_reason(&patient, &n, Some(secs(59)), GRACE), None);
        assert_eq!(
            eviction_reason(&patient, &n, Some(secs(60)), GRACE),
            Some(NODE_LOST)
        );
        // Never: bound for good.
        let edge = pod(Some(DisconnectDelay::Never));
        assert_eq!(eviction_reason(&edge, &n, Some(secs(86_400)), GRACE), None);
    }

    #[test]
    fn no_execute_taints_evict_pods_that_do_not_tolerate_them() {
        let mut n = Node::default();
        n.spec.taints = vec![
            "maintenance:NoExecute".parse::<Taint>().unwrap(),
            "dedicated=edge:NoSchedule".parse::<Taint>().unwrap(),
        ];
        // Even on a ready node, and even with `replaceAfter: never`.
        assert_eq!(eviction_reason(&pod(None), &n, None, GRACE), Some(TAINT_EVICTION));
        assert_eq!(
            eviction_reason(&pod(Some(DisconnectDelay::Never)), &n, None, GRACE),
            Some(TAINT_EVICTION)
        );
        let mut tolerant = pod(None);
        tolerant.spec.tolerations = vec![Toleration {
            key: "maintenance".into(),
            operator: TolerationOperator::Exists,
            ..Default::default()
        }];
        // NoSchedule taints do not evict what already runs.
        assert_eq!(eviction_reason(&tolerant, &n, None, GRACE), None);
    }
}
