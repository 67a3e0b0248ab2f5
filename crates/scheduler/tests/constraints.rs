//! Node affinity, pod (anti-)affinity and topology spread: exact decisions, and properties over
//! random clusters (capacity never exceeded, required constraints always honoured, spread within
//! skew).
use std::collections::BTreeMap;

use proptest::prelude::*;
use skiff_api::{
    Affinity, ByteSize, Component, LabelOperator, LabelRequirement, Millicores, Node, NodeAffinity,
    NodeSelectorTerm, ObjectMeta, Pod, PodAffinityTerm, PreferredTerm, Resources, TopologySpreadConstraint,
    WasmSpec, WhenUnsatisfiable,
};
use skiff_scheduler::{NodeInfo, schedule, schedule_batch};

fn node(name: &str, zone: &str) -> NodeInfo {
    let mut n = Node {
        metadata: ObjectMeta::named(name, None),
        ..Default::default()
    };
    n.metadata.labels.insert("zone".into(), zone.into());
    n.metadata.labels.insert("skiff.dev/hostname".into(), name.into());
    n.status.ready = true;
    n.status.runtimes = vec!["wasm".into()];
    n.status.capacity.memory = ByteSize(1 << 30);
    n.status.capacity.pods = 50;
    NodeInfo::new(n)
}

fn app_pod(name: &str, app: &str) -> Pod {
    let mut p = Pod {
        metadata: ObjectMeta::named(name, Some("default")),
        ..Default::default()
    };
    p.metadata.labels.insert("app".into(), app.into());
    p.spec.components.push(Component {
        name: "web".into(),
        wasm: Some(WasmSpec {
            digest: Some(format!("sha256:{}", "b".repeat(64))),
            ..Default::default()
        }),
        resources: Resources {
            memory: Some(ByteSize(16 << 20)),
            ..Default::default()
        },
        ..Default::default()
    });
    p
}

fn app(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), name.to_owned())])
}

fn zone_in(zones: &[&str]) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: vec![LabelRequirement {
            key: "zone".into(),
            operator: LabelOperator::In,
            values: zones.iter().map(|z| z.to_string()).collect(),
        }],
    }
}

#[test]
fn required_node_affinity_filters_with_the_terms_in_the_reason() {
    let mut p = app_pod("p", "web");
    p.spec.affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required: vec![zone_in(&["eu"])],
            ..Default::default()
        }),
        ..Default::default()
    });
    let d = schedule(&p, &[node("a", "us"), node("b", "eu")], 1);
    assert_eq!(d.node.as_deref(), Some("b"));
    assert_eq!(
        d.rejected["a"],
        "node affinity mismatch: the node matches none of the required terms [zone in (eu)] (spec.affinity.nodeAffinity.required)"
    );
}

#[test]
fn preferred_node_affinity_wins_a_tie() {
    let mut p = app_pod("p", "web");
    p.spec.affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            preferred: vec![PreferredTerm {
                weight: 50,
                preference: zone_in(&["us"]),
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    for seed in 0..20 {
        let d = schedule(&p, &[node("a", "eu"), node("b", "us"), node("c", "eu")], seed);
        assert_eq!(d.node.as_deref(), Some("b"), "seed {seed}");
    }
}

#[test]
fn anti_affinity_by_host_leaves_the_third_replica_pending() {
    let mut pods = Vec::new();
    for i in 0..3 {
        let mut p = app_pod(&format!("web-{i}"), "web");
        p.spec.affinity = Some(Affinity {
            pod_anti_affinity: vec![PodAffinityTerm {
                label_selector: app("web"),
                topology_key: "skiff.dev/hostname".into(),
            }],
            ..Default::default()
        });
        pods.push(p);
    }
    let out = schedule_batch(&pods, &[node("a", "eu"), node("b", "eu")], 7);
    let placed: Vec<_> = out.iter().filter_map(|(_, d)| d.node.clone()).collect();
    assert_eq!(placed.len(), 2);
    assert_ne!(placed[0], placed[1]);
    let third = &out[2].1;
    assert!(third.node.is_none());
    assert!(
        third.rejected["a"]
            .starts_with("pod anti-affinity: skiff.dev/hostname=a already runs 1 pod(s) matching app=web"),
        "{third:?}"
    );
    assert!(
        third.message.contains("2 pod anti-affinity conflict"),
        "{}",
        third.message
    );
}

#[test]
fn pod_affinity_follows_the_first_of_the_group() {
    let mut cache = app_pod("cache", "cache");
    let mut web = app_pod("web", "web");
    web.spec.affinity = Some(Affinity {
        pod_affinity: vec![PodAffinityTerm {
            label_selector: app("cache"),
            topology_key: "zone".into(),
        }],
        ..Default::default()
    });
    let nodes = [node("a", "eu"), node("b", "us"), node("c", "us")];
    // No cache yet: web needs one in its zone and the selector is not its own, so it waits.
    let d = schedule(&web, &nodes, 3);
    assert!(d.node.is_none(), "{d:?}");
    assert!(
        d.rejected["a"].starts_with("pod affinity: no pod matching app=cache"),
        "{d:?}"
    );
    // The cache lands on b (zone us); web then goes to a node in zone us.
    cache.spec.node_name = Some("b".into());
    let out = schedule_batch(&[cache, web], &nodes, 3);
    let web_node = out[1].1.node.clone().expect("web placed");
    assert!(web_node == "b" || web_node == "c", "{web_node}");
    // A group whose selector matches itself may start anywhere.
    let mut first = app_pod("first", "group");
    first.spec.affinity = Some(Affinity {
        pod_affinity: vec![PodAffinityTerm {
            label_selector: app("group"),
            topology_key: "zone".into(),
        }],
        ..Default::default()
    });
    assert!(schedule(&first, &nodes, 1).node.is_some());
}

#[test]
fn topology_spread_keeps_zones_within_skew() {
    // Zone eu has one node, zone us three: spreading by zone must still alternate.
    let nodes = [node("a", "eu"), node("b", "us"), node("c", "us"), node("d", "us")];
    let pods: Vec<Pod> = (0..6)
        .map(|i| {
            let mut p = app_pod(&format!("web-{i}"), "web");
            p.spec.topology_spread_constraints.push(TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "zone".into(),
                when_unsatisfiable: WhenUnsatisfiable::DoNotSchedule,
                label_selector: app("web"),
            });
            p
        })
        .collect();
    let out = schedule_batch(&pods, &nodes, 11);
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, d) in &out {
        let n = d.node.as_deref().expect("placed");
        let zone = if n == "a" { "eu" } else { "us" };
        *per_zone.entry(zone).or_default() += 1;
    }
    assert_eq!(per_zone, BTreeMap::from([("eu", 3), ("us", 3)]));
    // A node without the label cannot take a spread pod.
    let mut bare = node("e", "eu");
    bare.node.metadata.labels.remove("zone");
    let d = schedule(&pods[0], &[bare], 1);
    assert!(d.rejected["e"].contains("has no label zone"), "{d:?}");
}

fn arb_node(i: usize) -> impl Strategy<Value = NodeInfo> {
    (
        prop::sample::select(vec!["eu", "us", "ap"]),
        32u64..512,
        1u32..6,
        prop::option::of(500u64..4000),
    )
        .prop_map(move |(zone, mem, pods, cpu)| {
            let mut n = node(&format!("n{i}"), zone);
            n.node.status.capacity.memory = ByteSize(mem << 20);
            n.node.status.capacity.pods = pods;
            n.node.status.capacity.cpu = Millicores(cpu.unwrap_or(0));
            n
        })
}

fn arb_cluster() -> impl Strategy<Value = Vec<NodeInfo>> {
    (1usize..8).prop_flat_map(|n| (0..n).map(arb_node).collect::<Vec<_>>())
}

fn arb_pods() -> impl Strategy<Value = Vec<Pod>> {
    prop::collection::vec(
        (
            1u64..128,
            prop::option::of(100u64..1500),
            prop::option::of(prop::sample::select(vec!["eu", "us"])),
            any::<bool>(),
        ),
        1..16,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (mem, cpu, zone, spread))| {
                let mut p = app_pod(&format!("p{i}"), "web");
                p.spec.components[0].resources.memory = Some(ByteSize(mem << 20));
                p.spec.components[0].resources.cpu = cpu.map(Millicores);
                if let Some(z) = zone {
                    p.spec.affinity = Some(Affinity {
                        node_affinity: Some(NodeAffinity {
                            required: vec![zone_in(&[z])],
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
                if spread {
                    p.spec.topology_spread_constraints.push(TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: "zone".into(),
                        when_unsatisfiable: WhenUnsatisfiable::DoNotSchedule,
                        label_selector: app("web"),
                    });
                }
                p
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn placements_respect_capacity_required_affinity_and_skew(nodes in arb_cluster(), pods in arb_pods(), seed: u64) {
        let out = schedule_batch(&pods, &nodes, seed);
        let mut mem: BTreeMap<String, u64> = BTreeMap::new();
        let mut cpu: BTreeMap<String, u64> = BTreeMap::new();
        let mut count: BTreeMap<String, u32> = BTreeMap::new();
        let mut zone_count: BTreeMap<String, usize> = BTreeMap::new();
        let zones: Vec<String> = {
            let mut z: Vec<String> = nodes.iter().map(|n| n.node.metadata.labels["zone"].clone()).collect();
            z.sort();
            z.dedup();
            z
        };
        for (pod, (_, d)) in pods.iter().zip(&out) {
            let Some(chosen) = &d.node else { continue };
            let n = nodes.iter().find(|n| n.name() == chosen).expect("chosen exists");
            *mem.entry(chosen.clone()).or_default() += pod.spec.memory_request();
            *cpu.entry(chosen.clone()).or_default() += pod.spec.cpu_request();
            *count.entry(chosen.clone()).or_default() += 1;
            let zone = n.node.metadata.labels["zone"].clone();
            if let Some(na) = pod.spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref()) {
                prop_assert!(na.required.iter().any(|t| t.matches(&n.node.metadata.labels)));
            }
            // A pod that asked for spread lands only where its zone stays within the skew of the
            // emptiest zone (every pod here has app=web, so every placed pod counts).
            if !pod.spec.topology_spread_constraints.is_empty() {
                let min_before = zones
                    .iter()
                    .map(|z| zone_count.get(z).copied().unwrap_or(0))
                    .min()
                    .unwrap_or(0);
                let after = zone_count.get(&zone).copied().unwrap_or(0) + 1;
                prop_assert!(after <= min_before + 1, "zone skew exceeded placing into {zone}: {zone_count:?}");
            }
            *zone_count.entry(zone).or_default() += 1;
        }
        for n in &nodes {
            let c = &n.node.status.capacity;
            prop_assert!(mem.get(n.name()).copied().unwrap_or(0) <= c.memory.0);
            prop_assert!(count.get(n.name()).copied().unwrap_or(0) <= c.pods);
            if c.cpu.0 > 0 {
                prop_assert!(cpu.get(n.name()).copied().unwrap_or(0) <= c.cpu.0);
            }
        }
    }
}
