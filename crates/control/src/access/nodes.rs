//! What node certificates allow: the rules for agents and gateways (the node authorizer).
//!
//! An agent sees what its own pods need and changes only what it reports about itself:
//!
//! | caller | may |
//! |---|---|
//! | agent `N` | get Node `N`; register Node `N` (its own labels and registration taints; never `unschedulable`); update Node `N` only in labels under [`AGENT_LABEL_PREFIX`], and its status; list and watch pods only with `fieldSelector=spec.nodeName=N`, get a pod bound to `N`; update the status of pods bound to `N`; get a ConfigMap or Secret a pod bound to `N` references; use a key-value store a pod bound to `N` is granted; read services, endpoints and routes; get artifacts and the cluster summary |
//! | gateway | read services, endpoints, routes and functions; activate functions |
use skiff_api::{Kind, LabelSelector, Node, Object};
use skiff_pki::Identity;
use skiff_state::Reader;

use super::request::RequestInfo;

/// The labels an agent may change on its own Node after registering (architecture, OS,
/// hostname and whatever else it reports about itself); every other label is the operator's.
pub(crate) const AGENT_LABEL_PREFIX: &str = "skiff.dev/";

/// What an agent reads beyond its own pods and their configuration.
const AGENT_READS: [&str; 5] = [
    "services",
    "endpoints",
    "httproutes",
    "revocations",
    "resourcequotas",
];
const GATEWAY_READS: [&str; 4] = ["services", "endpoints", "httproutes", "functions"];

/// Whether an agent's request is allowed, or allowed once its body is checked.
#[derive(Debug, Clone)]
pub(crate) enum AgentDecision {
    /// Allowed.
    Allow,
    /// Allowed when the body registers the agent's own node ([`check_registration`]).
    IfRegistersItself,
    /// Allowed when the body changes nothing of the stored Node but agent labels
    /// ([`check_node_update`]).
    IfOnlyAgentLabels(Box<Node>),
}

fn is_read(verb: &str) -> bool {
    matches!(verb, "get" | "list" | "watch")
}

/// Whether agent `identity` may make the request.
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
    let allow = |ok: bool, why: String| if ok { Ok(AgentDecision::Allow) } else { Err(why) };
    match (info.verb, resource, ns, name) {
        (_, "keyvalue", Some(ns), Some(store)) => allow(
            node_may_use_store(reader, node, ns, store),
            format!(
                "use key-value store {ns}/{store}: only while a pod bound to node {node} is \
                 granted it (capabilities.keyValue); none is"
            ),
        ),
        ("get", "secrets", Some(ns), Some(name)) => allow(
            node_may_read_secret(reader, node, ns, name),
            format!(
                "read Secret {ns}/{name}: only while a pod bound to node {node} references it \
                 (env valueFrom.secretKeyRef); none does"
            ),
        ),
        ("get", "configmaps", Some(ns), Some(name)) => allow(
            bound_pods(reader, node, ns).any(|p| p.spec.config_map_names().contains(&name)),
            format!(
                "read ConfigMap {ns}/{name}: only while a pod bound to node {node} references it \
                 (configMapKeyRef); none does"
            ),
        ),
        ("get", "pods", Some(ns), Some(pod)) => {
            let bound_or_gone = match reader.get(Kind::Pod, Some(ns), pod) {
                Ok(Object::Pod(p)) => p.spec.node_name.as_deref() == Some(node),
                _ => true,
            };
            allow(
                bound_or_gone,
                format!("read pod {ns}/{pod}: it is bound to another node"),
            )
        }
        ("list" | "watch", "pods", _, None) => {
            let own = format!("spec.nodeName={node}");
            allow(
                info.field_selector.as_deref() == Some(own.as_str()),
                format!("{} pods: only its own, with fieldSelector={own}", info.verb),
            )
        }
        ("update", "pods/status", Some(ns), Some(pod)) => allow(
            matches!(
                reader.get(Kind::Pod, Some(ns), pod),
                Ok(Object::Pod(p)) if p.spec.node_name.as_deref() == Some(node)
            ),
            format!("report the status of pod {ns}/{pod}: only of pods bound to node {node}"),
        ),
        ("get", "artifacts" | "cluster", _, _) | ("create", "renew", None, None) => Ok(AgentDecision::Allow),
        ("get", "nodes", None, Some(n)) if n == node => Ok(AgentDecision::Allow),
        ("update", "nodes/status", None, Some(n)) if n == node => Ok(AgentDecision::Allow),
        ("update", "nodes", None, Some(n)) if n == node => match reader.get(Kind::Node, None, n) {
            Ok(Object::Node(stored)) => Ok(AgentDecision::IfOnlyAgentLabels(Box::new(stored))),
            _ => Err(format!(
                "update Node {n}: it is not registered; register it first"
            )),
        },
        ("create", "nodes", None, None) => Ok(AgentDecision::IfRegistersItself),
        (verb, resource, _, _) if is_read(verb) && AGENT_READS.contains(&resource) => {
            Ok(AgentDecision::Allow)
        }
        (verb, resource, ns, name) => {
            let what = match (ns, name) {
                (Some(ns), Some(name)) => format!(" {ns}/{name}"),
                (None, Some(name)) => format!(" {name}"),
                (Some(ns), None) => format!(" in namespace {ns}"),
                (None, None) => String::new(),
            };
            Err(format!(
                "{verb} {resource}{what}: an agent reads only its own Node, the pods bound to it and \
                 what they reference, and services, endpoints and routes; it writes only its own \
                 Node's status and agent labels and its pods' status"
            ))
        }
    }
}

/// Checks a Node an agent registers: its own name, not unschedulable.
///
/// # Errors
/// Why the body is refused.
pub(crate) fn check_registration(identity: &Identity, body: &[u8]) -> Result<(), String> {
    let node = node_body(body, "register a Node")?;
    if node.metadata.name != identity.name {
        return Err(format!(
            "register a Node named {:?}: only the Node named {:?} (its certificate's name)",
            node.metadata.name, identity.name
        ));
    }
    if node.spec.unschedulable {
        return Err(
            "register a Node as unschedulable: cordoning is the operator's (skiff node cordon)".into(),
        );
    }
    Ok(())
}

/// Checks a full update an agent makes of its own Node: the spec, annotations and every label
/// outside [`AGENT_LABEL_PREFIX`] must stay as stored.
///
/// # Errors
/// Why the body is refused.
pub(crate) fn check_node_update(stored: &Node, body: &[u8]) -> Result<(), String> {
    let next = node_body(body, "update a Node")?;
    if next.spec != stored.spec {
        return Err(format!(
            "change the spec of Node {} (taints, unschedulable): that is the operator's",
            stored.metadata.name
        ));
    }
    if next.metadata.annotations != stored.metadata.annotations {
        return Err(format!("change the annotations of Node {}", stored.metadata.name));
    }
    let operators = |n: &Node| {
        n.metadata
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with(AGENT_LABEL_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    if operators(&next) != operators(stored) {
        return Err(format!(
            "change labels of Node {} outside {AGENT_LABEL_PREFIX}: those are the operator's",
            stored.metadata.name
        ));
    }
    Ok(())
}

/// The Node in a request body.
fn node_body(body: &[u8], doing: &str) -> Result<Node, String> {
    match serde_json::from_slice::<Object>(body) {
        Ok(Object::Node(n)) => Ok(n),
        Ok(other) => Err(format!("{doing}: the body is a {}, not a Node", other.kind())),
        Err(e) => Err(format!("{doing}: the body is not a Node: {e}")),
    }
}

/// Whether a gateway may make the request.
///
/// # Errors
/// Why not.
pub(crate) fn gateway(info: &RequestInfo) -> Result<(), String> {
    let reads = is_read(info.verb) && GATEWAY_READS.contains(&info.resource.as_str());
    // Asking for a pod of a function scaled to zero, for a request that found none.
    let activates = info.verb == "create" && matches!(info.resource.as_str(), "functions/activate" | "renew");
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
