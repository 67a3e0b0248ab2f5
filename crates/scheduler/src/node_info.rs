//! The scheduler's view of the cluster: each [`Node`] with a summary of the pods already on it.
use std::collections::BTreeMap;

use skiff_api::{ByteSize, Node, Pod, PodPhase};

/// What the scheduler needs to know about a pod that already occupies a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSummary {
    /// `namespace/name` of the pod (for messages and debugging).
    pub name: String,
    /// The pod's memory request ([`skiff_api::PodSpec::memory_request`]), in bytes.
    pub memory: u64,
    /// The pod's CPU request ([`skiff_api::PodSpec::cpu_request`]), in millicores.
    pub cpu: u64,
    /// Uid of the pod's controller owner (its Deployment), used to spread replicas.
    pub owner_uid: Option<String>,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
}

impl PodSummary {
    /// Summarizes `pod`.
    pub fn of(pod: &Pod) -> Self {
        PodSummary {
            name: format!("{}/{}", pod.metadata.namespace_or_default(), pod.metadata.name),
            memory: pod.spec.memory_request(),
            cpu: pod.spec.cpu_request(),
            owner_uid: pod.metadata.controller().map(|o| o.uid.clone()),
            labels: pod.metadata.labels.clone(),
        }
    }
}

/// A node and the pods bound to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInfo {
    /// The node as registered by its agent.
    pub node: Node,
    /// Pods bound to the node that still hold resources (not Succeeded or Failed). Prefer
    /// [`NodeInfo::add_pod`] to pushing here: it keeps the sums the filters read up to date.
    pub pods: Vec<PodSummary>,
    /// Sums over `pods`, valid while `totals.pods == pods.len()` (recomputed otherwise).
    totals: Totals,
}

/// What the filters and scorers read about a node's pods, kept as running sums so placing a pod
/// costs O(1) per node instead of a walk over the node's pods.
#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    pods: usize,
    memory: u64,
    cpu: u64,
    owners: BTreeMap<String, usize>,
}

impl Totals {
    fn add(&mut self, p: &PodSummary) {
        self.pods += 1;
        self.memory += p.memory;
        self.cpu += p.cpu;
        if let Some(o) = &p.owner_uid {
            *self.owners.entry(o.clone()).or_default() += 1;
        }
    }

    fn of(pods: &[PodSummary]) -> Totals {
        let mut t = Totals::default();
        for p in pods {
            t.add(p);
        }
        t
    }
}

impl NodeInfo {
    /// A node with no pods on it.
    pub fn new(node: Node) -> Self {
        NodeInfo {
            node,
            pods: Vec::new(),
            totals: Totals::default(),
        }
    }

    /// Indexes `pods` by `spec.nodeName` onto `nodes`. Terminated pods (Succeeded, Failed) hold no
    /// resources and are left out, as are pods bound to nodes not in `nodes`. The result is sorted
    /// by node name.
    pub fn from_cluster(nodes: &[Node], pods: &[Pod]) -> Vec<NodeInfo> {
        let mut by_name: BTreeMap<&str, NodeInfo> = nodes
            .iter()
            .map(|n| (n.metadata.name.as_str(), NodeInfo::new(n.clone())))
            .collect();
        for pod in pods {
            if matches!(pod.status.phase, PodPhase::Succeeded | PodPhase::Failed) {
                continue;
            }
            if let Some(info) = pod.spec.node_name.as_deref().and_then(|n| by_name.get_mut(n)) {
                info.add_pod(PodSummary::of(pod));
            }
        }
        by_name.into_values().collect()
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.node.metadata.name
    }

    /// Binds a pod to the node (for the scheduler's accounting).
    pub fn add_pod(&mut self, pod: PodSummary) {
        if self.totals.pods != self.pods.len() {
            self.totals = Totals::of(&self.pods);
        }
        self.totals.add(&pod);
        self.pods.push(pod);
    }

    fn totals(&self) -> std::borrow::Cow<'_, Totals> {
        if self.totals.pods == self.pods.len() {
            std::borrow::Cow::Borrowed(&self.totals)
        } else {
            std::borrow::Cow::Owned(Totals::of(&self.pods))
        }
    }

    /// Memory requested by the pods already on the node, in bytes.
    pub fn memory_used(&self) -> u64 {
        self.totals().memory
    }

    /// Memory the node can still give, in bytes (capacity minus what its pods request).
    pub fn memory_free(&self) -> u64 {
        self.node
            .status
            .capacity
            .memory
            .0
            .saturating_sub(self.memory_used())
    }

    /// The node's memory capacity.
    pub fn memory_capacity(&self) -> ByteSize {
        self.node.status.capacity.memory
    }

    /// CPU requested by the pods already on the node, in millicores.
    pub fn cpu_used(&self) -> u64 {
        self.totals().cpu
    }

    /// How many pods of the controller `owner_uid` are on the node.
    pub fn pods_of_owner(&self, owner_uid: &str) -> usize {
        self.totals().owners.get(owner_uid).copied().unwrap_or(0)
    }
}
