//! # skiff-scheduler: where should this pod run?
//!
//! A pure function from a snapshot of the cluster to a placement, with a reason for every node
//! that was not chosen. No I/O, no clock, no global randomness: the control plane calls it on the
//! leader with a seed, and the same inputs always give the same answer.
//!
//! ```text
//!   pod + nodes (+ pods already on them) + seed
//!            │
//!   filter   │  node name → ready → not cordoned → taints tolerated → nodeSelector → node affinity →
//!            │  runtime → pod count → memory → cpu; then, with the whole cluster: pod affinity →
//!            │  pod anti-affinity → topology spread
//!            │  (first failure rejects the node, with a reason)
//!            ▼
//!   score    │  spread ×2 + least-loaded ×1 + artifact cached ×1 + preferred node affinity ×1
//!            │  + soft topology spread ×1   (each 0..=100)
//!            ▼
//!   select   │  seeded shuffle, then the highest total
//!            ▼
//!   Decision { node, rejected, scores, message }
//! ```
//!
//! ```
//! use skiff_api::{ByteSize, Component, Node, ObjectMeta, Pod, Resources, WasmSpec};
//! use skiff_scheduler::{NodeInfo, schedule};
//!
//! let node = |name: &str, mem: u64| {
//!     let mut n = Node { metadata: ObjectMeta::named(name, None), ..Default::default() };
//!     n.status.ready = true;
//!     n.status.runtimes = vec!["wasm".into()];
//!     n.status.capacity.memory = ByteSize(mem << 20);
//!     n.status.capacity.pods = 10;
//!     NodeInfo::new(n)
//! };
//! let mut pod = Pod { metadata: ObjectMeta::named("web", None), ..Default::default() };
//! pod.spec.components.push(Component {
//!     name: "web".into(),
//!     wasm: Some(WasmSpec { url: Some("https://example.com/web.wasm".into()), ..Default::default() }),
//!     resources: Resources { memory: Some(ByteSize(128 << 20)), ..Default::default() },
//!     ..Default::default()
//! });
//!
//! let nodes = [node("small", 64), node("big", 1024), node("mid", 256)];
//! let d = schedule(&pod, &nodes, 42);
//! assert_eq!(d.node.as_deref(), Some("big"));
//! assert_eq!(
//!     d.rejected["small"],
//!     "insufficient memory: the pod requests 128Mi, the node has 64Mi free (0 of 64Mi used by 0 pods)"
//! );
//! assert!(d.message.starts_with("2/3 nodes are available: 1 insufficient memory; chose big"));
//! ```
//!
//! ## Core concepts
//! - [`NodeInfo`]: a [`skiff_api::Node`] with a [`PodSummary`] of each pod bound to it; build them
//!   with [`NodeInfo::from_cluster`] from the stored nodes and pods. Cheap to clone.
//! - Filters ([`FilterKind`], [`check`]) decide whether a node *can* take the pod; a failure is a
//!   [`Rejection`] with a sentence naming the label, runtime or numbers involved.
//! - Scorers ([`ScorerKind`]) rate feasible nodes 0..=100 each; [`ScorerKind::weight`] sets how
//!   much each counts in the total.
//! - [`schedule`] runs the pipeline for one pod; [`schedule_batch`] places several, counting each
//!   placement before the next, so N replicas on N equal nodes land one per node.
//! - [`Decision`] holds the chosen node, every rejection and score, and a Kubernetes-style summary;
//!   [`Decision::to_status`] turns it into a pod's `status.scheduling`.
//!
//! ## Decisions
//! - Nodes are sorted by name before anything else, so the input order never changes a decision;
//!   the seed alone breaks ties (Fisher–Yates with SplitMix64, no `rand`).
//! - In clusters over 100 nodes the filter stops once [`feasible_enough`] nodes passed (kube-
//!   scheduler's `percentageOfNodesToScore`), starting at a seeded offset in name order; the
//!   summary then says how many nodes were evaluated.
//! - A node is rejected by the *first* filter it fails, and the summary counts those, like
//!   kube-scheduler. A pod with `spec.nodeName` only fits that node.
//! - Capacities are taken literally: a node reporting `capacity.pods: 0` or no memory takes no pod.
//! - Spread weighs twice the others: losing one node should lose as few replicas as possible. A
//!   cached artifact counts as much as free memory, because compiling a large component can take
//!   seconds.
#![deny(missing_docs)]

mod filter;
mod node_info;
mod pipeline;
mod rng;
mod score;
mod topology;

pub use filter::{FilterKind, Rejection, check, run as run_filter};
pub use node_info::{NodeInfo, PodSummary};
pub use pipeline::{
    Decision, STATUS_ENTRIES, feasible_enough, schedule, schedule_batch, schedule_batch_owned,
};
pub use score::{MAX_TOTAL, ScorerKind, score as score_node, total as total_score};
