//! What node certificates allow: the rules for agents and gateways (the node authorizer).
//!
//! | caller | may |
//! |---|---|
//! | agent `N` | read nodes, pods, services, endpoints, routes, events, configmaps, artifacts, the cluster summary; get a Secret that a pod bound to `N` references; use a key-value store while a pod bound to `N` is granted it; register Node `N` and update it and its status; update the status of pods bound to `N` |
//! | gateway | read services, endpoints, routes and functions; activate functions |
use skiff_api::{Kind, LabelSelector, Object};
use skiff_peer::Identity;
use skiff_state::Reader;

use super::request::RequestInfo;

const AGENT_READS: [&str; 7] = [
    "nodes",
    "pods",
    "services",
    "endpoints",
    "httproutes",
    "events",
    "configmaps",
];
const GATEWAY_READS: [&str; 4] = ["services", "endpoints", "httproutes", "functions"];

/// What an agent needs decided beyond the path: the name in a Node it registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentDecision {
    /// Allowed.
    Allow,
    /// Allowed when the body's `metadata.name` is the agent's own node.
    IfRegistersItself,
}

fn is_read(verb: &str) -> bool {
    matches!(verb, "get" | "list" | "watch")
}

/// Whether agent `node` may make the request.
///
/// # Errors
/// Why not.
pub(crate) fn agent(
    reader: &Reader,
    identity: &Identity,
    info: &RequestInfo,
) -> Result<AgentDecision, String> {
    let node = identity.name.as_str();
    let ns = info.namespace.as_deref();
    let name = info.name.as_deref();
    let resource = info.resource.as_str();
    match (info.verb, resource, ns, name) {
        (_, "keyvalue", Some(ns), Some(store)) => {
            return if node_may_use_store(reader, node, ns, store) {
                Ok(AgentDecision::Allow)
            } else {
                Err(format!(
                    "use key-value store {ns}/{store}: only while a pod bound to node {node} is \
                     granted it (capabilities.keyValue); none is"
                ))
            };
        }
        ("get", "secrets", Some(ns), Some(name)) => {
            return if node_may_read_secret(reader, node, ns, name) {
                Ok(AgentDecision::Allow)
            } else {
                Err(format!(
                    "read Secret {ns}/{name}: only while a pod bound to node {node} references it \
                     (env valueFrom.secretKeyRef); none does"
                ))
            };
        }
        ("get", "artifacts" | "cluster", _, _) => return Ok(AgentDecision::Allow),
        ("update", "nodes" | "nodes/status", None, Some(n)) if n == node => return Ok(AgentDecision::Allow),
        ("create", "nodes", None, None) => return Ok(AgentDecision::IfRegistersItself),
        ("update", "pods/status", Some(ns), Some(pod)) => {
            let bound = matches!(
                reader.get(Kind::Pod, Some(ns), pod),
                Ok(Object::Pod(p)) if p.spec.node_name.as_deref() == Some(node)
            );
            return if bound {
                Ok(AgentDecision::Allow)
            } else {
                Err(format!(
                    "report the status of pod {ns}/{pod}: only of pods bound to node {node}"
                ))
            };
        }
        _ => {}
    }
    let plural = resource.strip_suffix("/status").unwrap_or(resource);
    if is_read(info.verb) && AGENT_READS.contains(&plural) {
        return Ok(AgentDecision::Allow);
    }
    Err(format!(
        "{} {resource}: a node certificate allows registering and updating its own Node, \
         reporting the status of pods bound to it, and reading",
        info.verb
    ))
}

/// Whether a gateway may make the request.
///
/// # Errors
/// Why not.
pub(crate) fn gateway(info: &RequestInfo) -> Result<(), String> {
    let reads = is_read(info.verb) && GATEWAY_READS.contains(&info.resource.as_str());
    // Asking for a pod of a function scaled to zero, for a request that found none.
    let activates = info.verb == "create" && info.resource == "functions/activate";
    if reads || activates {
        Ok(())
    } else {
        Err(format!(
            "{} {}: a gateway certificate allows reading services, endpoints, routes and functions, \
             and activating functions",
            info.verb, info.resource
        ))
    }
}

/// Whether a pod bound to `node` has a component granted key-value store `ns/store`.
pub(crate) fn node_may_use_store(reader: &Reader, node: &str, ns: &str, store: &str) -> bool {
    bound_pods(reader, node, ns).any(|p| {
        p.spec
            .components
            .iter()
            .any(|c| c.capabilities.key_value.iter().any(|s| s == store))
    })
}

/// Whether node `node` may read Secret `ns/name`: some pod in `ns` bound to the node references it
/// through `env[].valueFrom.secretKeyRef` (the rule Kubernetes' node authorizer applies).
pub(crate) fn node_may_read_secret(reader: &Reader, node: &str, ns: &str, name: &str) -> bool {
    bound_pods(reader, node, ns).any(|p| p.spec.secret_names().contains(&name))
}

/// The pods of `ns` bound to `node`.
fn bound_pods<'a>(reader: &Reader, node: &'a str, ns: &str) -> impl Iterator<Item = skiff_api::Pod> + 'a {
    let pods = reader
        .list(Kind::Pod, Some(ns), &LabelSelector::default())
        .map(|(_, pods)| pods)
        .unwrap_or_default();
    pods.into_iter().filter_map(move |o| match o {
        Object::Pod(p) if p.spec.node_name.as_deref() == Some(node) => Some(p),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::node_may_use_store;

    #[test]
    fn a_node_uses_only_stores_granted_to_pods_bound_to_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = std::sync::Arc::new(redb::Database::create(dir.path().join("s.redb")).expect("db"));
        let mut machine = skiff_state::Machine::new(db.clone());
        let txn = db.begin_write().expect("txn");
        machine.init(&txn).expect("init");
        let objects = [
            serde_json::json!({"kind": "Namespace", "metadata": {"name": "iot"}}),
            serde_json::json!({"kind": "Pod", "metadata": {"name": "agg", "namespace": "iot"},
                "spec": {"nodeName": "w1", "components": [{"name": "fn",
                    "wasm": {"digest": format!("sha256:{}", "a".repeat(64)), "world": "function"},
                    "capabilities": {"keyValue": ["readings"]}}]}}),
        ];
        let ops = objects
            .into_iter()
            .enumerate()
            .map(|(i, o)| skiff_state::Op::Create {
                object: serde_json::from_value(o).expect("object"),
                uid: format!("u{i}"),
            })
            .collect();
        let cmd = skiff_state::Command::new("2026-01-01T00:00:00Z", ops);
        machine.apply(&txn, 1, &cmd.encode()).expect("apply");
        txn.commit().expect("commit");
        let reader = skiff_state::Reader::new(db);
        assert!(node_may_use_store(&reader, "w1", "iot", "readings"));
        assert!(
            !node_may_use_store(&reader, "w2", "iot", "readings"),
            "another node"
        );
        assert!(
            !node_may_use_store(&reader, "w1", "iot", "secrets"),
            "an ungranted store"
        );
        assert!(
            !node_may_use_store(&reader, "w1", "default", "readings"),
            "another namespace"
        );
    }
}
