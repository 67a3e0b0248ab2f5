//! Filters: can this node take this pod at all? Each filter either passes or rejects the node with a
//! [`Rejection`] that says which rule failed and with what numbers or labels.
use std::fmt;

use skiff_api::{ByteSize, Millicores, Pod, TaintEffect, untolerated};

use crate::node_info::NodeInfo;

/// Which filter rejected a node. The order of the variants is the order the filters run in, and the
/// order reasons are listed in a summary when counts tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FilterKind {
    /// The pod names a node (`spec.nodeName`) and this is not it.
    NodeName,
    /// The node's agent does not report it ready.
    NotReady,
    /// The node is cordoned (`spec.unschedulable`).
    Unschedulable,
    /// The node has a `NoSchedule` or `NoExecute` taint the pod does not tolerate.
    Taint,
    /// A `nodeSelector` label is missing or different on the node.
    NodeSelector,
    /// The node matches none of the pod's required node-affinity terms.
    NodeAffinity,
    /// The node does not offer a runtime one of the pod's components needs.
    Runtime,
    /// The node already holds `capacity.pods` pods.
    TooManyPods,
    /// The node's free memory is below the pod's request.
    InsufficientMemory,
    /// The node's free CPU is below the pod's request.
    InsufficientCpu,
    /// A required pod-affinity term has no matching pod in the node's domain (cluster-wide).
    PodAffinity,
    /// A pod-anti-affinity term has a matching pod in the node's domain (cluster-wide).
    PodAntiAffinity,
    /// Placing the pod on the node would exceed a topology spread constraint's skew (cluster-wide).
    TopologySpread,
}

impl FilterKind {
    /// Every filter that looks at one node only, in the order they run ([`check`]).
    pub const ALL: [FilterKind; 10] = [
        FilterKind::NodeName,
        FilterKind::NotReady,
        FilterKind::Unschedulable,
        FilterKind::Taint,
        FilterKind::NodeSelector,
        FilterKind::NodeAffinity,
        FilterKind::Runtime,
        FilterKind::TooManyPods,
        FilterKind::InsufficientMemory,
        FilterKind::InsufficientCpu,
    ];

    /// The filters that need the whole cluster (other nodes' pods and labels); [`schedule`]
    /// runs them after the node passed every one of [`FilterKind::ALL`].
    ///
    /// [`schedule`]: crate::schedule
    pub const CLUSTER: [FilterKind; 3] = [
        FilterKind::PodAffinity,
        FilterKind::PodAntiAffinity,
        FilterKind::TopologySpread,
    ];

    /// The short phrase used when counting rejections (`2 insufficient memory`).
    pub fn summary(self) -> &'static str {
        match self {
            FilterKind::NodeName => "node name mismatch",
            FilterKind::NotReady => "node not ready",
            FilterKind::Unschedulable => "node cordoned",
            FilterKind::Taint => "untolerated taint",
            FilterKind::NodeSelector => "node selector mismatch",
            FilterKind::Runtime => "runtime missing",
            FilterKind::TooManyPods => "too many pods",
            FilterKind::InsufficientMemory => "insufficient memory",
            FilterKind::InsufficientCpu => "insufficient cpu",
            FilterKind::NodeAffinity => "node affinity mismatch",
            FilterKind::PodAffinity => "pod affinity unmet",
            FilterKind::PodAntiAffinity => "pod anti-affinity conflict",
            FilterKind::TopologySpread => "topology spread skew",
        }
    }
}

impl fmt::Display for FilterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.summary())
    }
}

/// Why a node cannot take a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The filter that failed.
    pub filter: FilterKind,
    /// What failed, with the numbers or labels involved.
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// `1 pod`, `3 pods`.
fn pods(n: usize) -> String {
    if n == 1 {
        "1 pod".into()
    } else {
        format!("{n} pods")
    }
}

fn reject(filter: FilterKind, reason: String) -> Result<(), Rejection> {
    Err(Rejection { filter, reason })
}

/// Runs every filter on one node, in [`FilterKind::ALL`] order, and returns the first rejection.
///
/// # Errors
/// The first filter the node fails, with its reason.
pub fn check(pod: &Pod, node: &NodeInfo) -> Result<(), Rejection> {
    for filter in FilterKind::ALL {
        run(filter, pod, node)?;
    }
    Ok(())
}

/// Runs one filter.
///
/// # Errors
/// The filter's rejection, when the node fails it.
pub fn run(filter: FilterKind, pod: &Pod, node: &NodeInfo) -> Result<(), Rejection> {
    match filter {
        FilterKind::NodeName => node_name(pod, node),
        FilterKind::NotReady => ready(node),
        FilterKind::Unschedulable => schedulable(node),
        FilterKind::Taint => taints(pod, node),
        FilterKind::NodeSelector => node_selector(pod, node),
        FilterKind::Runtime => runtime(pod, node),
        FilterKind::TooManyPods => pod_count(node),
        FilterKind::InsufficientMemory => memory(pod, node),
        FilterKind::InsufficientCpu => cpu(pod, node),
        FilterKind::NodeAffinity => node_affinity(pod, node),
        // Need the other nodes: evaluated by `schedule` (see FilterKind::CLUSTER).
        FilterKind::PodAffinity | FilterKind::PodAntiAffinity | FilterKind::TopologySpread => Ok(()),
    }
}

fn node_name(pod: &Pod, node: &NodeInfo) -> Result<(), Rejection> {
    match pod.spec.node_name.as_deref() {
        Some(wanted) if wanted != node.name() => reject(
            FilterKind::NodeName,
            format!("the pod asks for node {wanted:?} (spec.nodeName)"),
        ),
        _ => Ok(()),
    }
}

fn ready(node: &NodeInfo) -> Result<(), Rejection> {
    if node.node.status.ready {
        Ok(())
    } else {
        reject(
            FilterKind::NotReady,
            "node is not ready: its agent is not reporting a fresh lease".into(),
        )
    }
}

fn schedulable(node: &NodeInfo) -> Result<(), Rejection> {
    if node.node.spec.unschedulable {
        reject(
            FilterKind::Unschedulable,
            "node is cordoned (spec.unschedulable is true): it takes no new pods".into(),
        )
    } else {
        Ok(())
    }
}

fn taints(pod: &Pod, node: &NodeInfo) -> Result<(), Rejection> {
    match untolerated(
        &node.node.spec.taints,
        &pod.spec.tolerations,
        &[TaintEffect::NoSchedule, TaintEffect::NoExecute],
    ) {
        Some(t) => reject(
            FilterKind::Taint,
            format!(
                "untolerated taint: the node has {t} and the pod has no matching toleration (spec.tolerations)"
            ),
        ),
        None => Ok(()),
    }
}

fn node_selector(pod: &Pod, node: &NodeInfo) -> Result<(), Rejection> {
    let labels = &node.node.metadata.labels;
    for (key, want) in &pod.spec.node_selector {
        match labels.get(key) {
            Some(have) if have == want => {}
            Some(have) => {
                return reject(
                    FilterKind::NodeSelector,
                    format!("node selector mismatch: the pod needs {key}={want}, the node has {key}={have}"),
                );
            }
            None => {
                return reject(
                    FilterKind::NodeSelector,
                    format!(
                        "node selector mismatch: the pod needs {key}={want}, the node has no label {key}"
                    ),
                );
            }
        }
    }
    Ok(())
}

fn node_affinity(pod: &Pod, node: &NodeInfo) -> Result<(), Rejection> {
    let Some(required) = pod
        .spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .map(|n| &n.required)
        .filter(|r| !r.is_empty())
    else {
        return Ok(());
    };
    let labels = &node.node.metadata.labels;
    if required.iter().any(|t| t.matches(labels)) {
        return Ok(());
    }
    let terms: Vec<String> = required.iter().map(|t| format!("[{t}]")).collect();
    reject(
        FilterKind::NodeAffinity,
        format!(
            "node affinity mismatch: the node matches none of the required terms {} (spec.affinity.nodeAffinity.required)",
            terms.join(" or ")
        ),
    )
}

fn runtime(pod: &Pod, node: &NodeInfo) -> Result<(), Rejection> {
    let offered = &node.node.status.runtimes;
    for c in &pod.spec.components {
        let needed = c.runtime();
        if !offered.iter().any(|r| r == needed) {
            let list = if offered.is_empty() {
                "none".to_owned()
            } else {
                offered.join(", ")
            };
            return reject(
                FilterKind::Runtime,
                format!(
                    "runtime missing: component {:?} needs the {needed} runtime, the node offers {list}",
                    c.name
                ),
            );
        }
    }
    Ok(())
}

fn pod_count(node: &NodeInfo) -> Result<(), Rejection> {
    let max = node.node.status.capacity.pods as usize;
    let have = node.pods.len();
    if have >= max {
        reject(
            FilterKind::TooManyPods,
            format!(
                "too many pods: the node already holds {have} of at most {}",
                pods(max)
            ),
        )
    } else {
        Ok(())
    }
}

fn memory(pod: &Pod, node: &NodeInfo) -> Result<(), Rejection> {
    // A node reporting no per-instance cap (0) places none.
    let cap = node.node.status.capacity.instance_memory;
    if cap.0 > 0
        && let Some(c) = pod
            .spec
            .components
            .iter()
            .filter(|c| c.wasm.is_some())
            .find(|c| c.resources.memory_or_default().0 > cap.0)
    {
        return reject(
            FilterKind::InsufficientMemory,
            format!(
                "component {} asks {} per instance, the node's instances get at most {} (skiff agent --max-instance-memory)",
                c.name,
                c.resources.memory_or_default(),
                cap
            ),
        );
    }
    let want = pod.spec.memory_request();
    let free = node.memory_free();
    if want > free {
        reject(
            FilterKind::InsufficientMemory,
            format!(
                "insufficient memory: the pod requests {}, the node has {} free ({} of {} used by {})",
                ByteSize(want),
                ByteSize(free),
                ByteSize(node.memory_used()),
                node.memory_capacity(),
                pods(node.pods.len())
            ),
        )
    } else {
        Ok(())
    }
}

fn cpu(pod: &Pod, node: &NodeInfo) -> Result<(), Rejection> {
    let want = pod.spec.cpu_request();
    let capacity = node.node.status.capacity.cpu.0;
    // A node that does not report CPU places no CPU limit; a pod asking none always fits.
    if want == 0 || capacity == 0 {
        return Ok(());
    }
    let used = node.cpu_used();
    let free = capacity.saturating_sub(used);
    if want > free {
        reject(
            FilterKind::InsufficientCpu,
            format!(
                "insufficient cpu: the pod requests {}, the node has {} free ({} of {} used by {})",
                Millicores(want),
                Millicores(free),
                Millicores(used),
                Millicores(capacity),
                pods(node.pods.len())
            ),
        )
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use skiff_api::{ByteSize, Component, Node, ObjectMeta, Resources, WasmSpec};

    use super::*;
    use crate::node_info::PodSummary;

    fn node() -> NodeInfo {
        let mut n = Node {
            metadata: ObjectMeta::named("n1", None),
            ..Default::default()
        };
        n.status.ready = true;
        n.status.runtimes = vec!["wasm".into()];
        n.status.capacity.memory = ByteSize(256 << 20);
        n.status.capacity.pods = 4;
        NodeInfo::new(n)
    }

    fn pod(mem_mi: u64) -> Pod {
        let mut p = Pod {
            metadata: ObjectMeta::named("p", None),
            ..Default::default()
        };
        p.spec.components.push(Component {
            name: "web".into(),
            wasm: Some(WasmSpec {
                url: Some("https://example.com/a.wasm".into()),
                ..Default::default()
            }),
            resources: Resources {
                memory: Some(ByteSize(mem_mi << 20)),
                ..Default::default()
            },
            ..Default::default()
        });
        p
    }

    fn reason(p: &Pod, n: &NodeInfo) -> (FilterKind, String) {
        let r = check(p, n).unwrap_err();
        (r.filter, r.reason)
    }

    #[test]
    fn a_fitting_node_passes() {
        assert_eq!(check(&pod(64), &node()), Ok(()));
    }

    #[test]
    fn not_ready() {
        let mut n = node();
        n.node.status.ready = false;
        assert_eq!(
            reason(&pod(64), &n),
            (
                FilterKind::NotReady,
                "node is not ready: its agent is not reporting a fresh lease".into()
            )
        );
    }

    #[test]
    fn cordoned() {
        let mut n = node();
        n.node.spec.unschedulable = true;
        assert_eq!(
            reason(&pod(64), &n),
            (
                FilterKind::Unschedulable,
                "node is cordoned (spec.unschedulable is true): it takes no new pods".into()
            )
        );
    }

    #[test]
    fn node_selector_names_the_label() {
        let mut p = pod(64);
        p.spec.node_selector.insert("zone".into(), "eu".into());
        let mut n = node();
        assert_eq!(
            reason(&p, &n),
            (
                FilterKind::NodeSelector,
                "node selector mismatch: the pod needs zone=eu, the node has no label zone".into()
            )
        );
        n.node.metadata.labels.insert("zone".into(), "us".into());
        assert_eq!(
            reason(&p, &n).1,
            "node selector mismatch: the pod needs zone=eu, the node has zone=us"
        );
        n.node.metadata.labels.insert("zone".into(), "eu".into());
        assert_eq!(check(&p, &n), Ok(()));
    }

    #[test]
    fn runtime_support() {
        let mut n = node();
        n.node.status.runtimes = vec![];
        assert_eq!(
            reason(&pod(64), &n),
            (
                FilterKind::Runtime,
                "runtime missing: component \"web\" needs the wasm runtime, the node offers none".into()
            )
        );
        n.node.status.runtimes = vec!["oci".into()];
        assert_eq!(
            reason(&pod(64), &n).1,
            "runtime missing: component \"web\" needs the wasm runtime, the node offers oci"
        );
        // A container needs a node whose agent runs the oci plugin.
        let mut p = pod(64);
        p.spec.components[0].wasm = None;
        p.spec.components[0].oci = Some(skiff_api::OciSpec {
            image: "127.0.0.1:5000/site:v1".into(),
            ..Default::default()
        });
        n.node.status.runtimes = vec!["wasm".into()];
        assert_eq!(
            reason(&p, &n).1,
            "runtime missing: component \"web\" needs the oci runtime, the node offers wasm"
        );
        n.node.status.runtimes = vec!["wasm".into(), "oci".into()];
        assert_eq!(check(&p, &n), Ok(()));
    }

    #[test]
    fn insufficient_memory_says_the_numbers() {
        let mut n = node();
        n.pods.push(PodSummary {
            name: "default/a".into(),
            memory: 200 << 20,
            ..Default::default()
        });
        assert_eq!(
            reason(&pod(64), &n),
            (
                FilterKind::InsufficientMemory,
                "insufficient memory: the pod requests 64Mi, the node has 56Mi free (200Mi of 256Mi used by 1 pod)".into()
            )
        );
        assert_eq!(check(&pod(56), &n), Ok(()));
    }

    #[test]
    fn a_component_larger_than_the_node_gives_an_instance_is_not_placed_there() {
        let mut n = node();
        n.node.status.capacity.memory = ByteSize(8 << 30);
        // Not reported: no cap.
        assert_eq!(check(&pod(1024), &n), Ok(()));
        n.node.status.capacity.instance_memory = ByteSize(256 << 20);
        assert_eq!(
            reason(&pod(1024), &n),
            (
                FilterKind::InsufficientMemory,
                "component web asks 1Gi per instance, the node's instances get at most 256Mi (skiff agent --max-instance-memory)".into()
            )
        );
        assert_eq!(check(&pod(256), &n), Ok(()));
    }

    #[test]
    fn insufficient_cpu_says_the_numbers() {
        let mut n = node();
        let mut p = pod(1);
        p.spec.components[0].resources.cpu = Some(Millicores(600));
        // A node that reports no CPU takes any request.
        assert_eq!(check(&p, &n), Ok(()));
        n.node.status.capacity.cpu = Millicores(2000);
        n.pods.push(PodSummary {
            name: "default/a".into(),
            cpu: 1500,
            ..Default::default()
        });
        assert_eq!(
            reason(&p, &n),
            (
                FilterKind::InsufficientCpu,
                "insufficient cpu: the pod requests 600m, the node has 500m free (1500m of 2 used by 1 pod)"
                    .into()
            )
        );
        p.spec.components[0].resources.cpu = Some(Millicores(500));
        assert_eq!(check(&p, &n), Ok(()));
    }

    #[test]
    fn too_many_pods() {
        let mut n = node();
        n.node.status.capacity.pods = 2;
        n.pods = vec![PodSummary::default(), PodSummary::default()];
        assert_eq!(
            reason(&pod(1), &n),
            (
                FilterKind::TooManyPods,
                "too many pods: the node already holds 2 of at most 2 pods".into()
            )
        );
    }

    #[test]
    fn node_name_pins_the_pod() {
        let mut p = pod(64);
        p.spec.node_name = Some("n2".into());
        assert_eq!(
            reason(&p, &node()),
            (
                FilterKind::NodeName,
                "the pod asks for node \"n2\" (spec.nodeName)".into()
            )
        );
        p.spec.node_name = Some("n1".into());
        assert_eq!(check(&p, &node()), Ok(()));
    }

    #[test]
    fn first_failing_filter_wins() {
        let mut n = node();
        n.node.status.ready = false;
        n.node.spec.unschedulable = true;
        assert_eq!(reason(&pod(1024), &n).0, FilterKind::NotReady);
    }

    #[test]
    fn untolerated_taints_reject_with_the_taint() {
        let mut n = node();
        n.node.spec.taints = vec![
            "dedicated=edge:NoSchedule".parse().unwrap(),
            "maintenance:NoExecute".parse().unwrap(),
        ];
        let mut p = pod(64);
        assert_eq!(
            reason(&p, &n),
            (
                FilterKind::Taint,
                "untolerated taint: the node has dedicated=edge:NoSchedule and the pod has no matching \
                 toleration (spec.tolerations)"
                    .into()
            )
        );
        p.spec.tolerations.push(skiff_api::Toleration {
            key: "dedicated".into(),
            value: "edge".into(),
            effect: Some(TaintEffect::NoSchedule),
            ..Default::default()
        });
        assert_eq!(
            reason(&p, &n).1,
            "untolerated taint: the node has maintenance:NoExecute and the pod has no matching toleration \
             (spec.tolerations)"
        );
        p.spec.tolerations.push(skiff_api::Toleration {
            operator: skiff_api::TolerationOperator::Exists,
            effect: Some(TaintEffect::NoExecute),
            ..Default::default()
        });
        assert_eq!(check(&p, &n), Ok(()));
    }
}
