//! Worker node verbs: `skiff node cordon | uncordon | drain`.
//!
//! Cordon and uncordon flip `spec.unschedulable` by read-modify-write with the node's
//! `resourceVersion` (a concurrent change gets a retry). Drain cordons, then deletes the node's pods
//! that a Deployment owns — the deployment controller creates replacements, which the scheduler
//! cannot put on the cordoned node — and waits until none is left on it.
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use skiff_api::{Kind, Object, Pod, PodPhase};
use skiff_client::{Client, ListOptions};

use crate::config::Connection;

/// How often drain looks at the node's pods while it waits.
const POLL: Duration = Duration::from_millis(500);
/// How many times a read-modify-write is retried when the node keeps changing.
const RETRIES: usize = 5;

/// `skiff node`.
#[derive(Args, Debug)]
pub(crate) struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Mark a node unschedulable: it keeps its pods but takes no new ones.
    Cordon {
        /// Node name (see `skiff get nodes`).
        name: String,
    },
    /// Make a cordoned node schedulable again.
    Uncordon {
        /// Node name.
        name: String,
    },
    /// Cordon a node, then move its deployment pods elsewhere and wait until they are gone.
    Drain {
        /// Node name.
        name: String,
        /// How long to wait for the node's pods to go (`30s`, `2m`).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

pub(crate) async fn node(conn: &Connection, a: NodeArgs) -> Result<()> {
    let client = conn.client()?;
    match a.command {
        NodeCommand::Cordon { name } => {
            let changed = set_unschedulable(&client, &name, true).await?;
            println!(
                "node/{name} {}",
                if changed { "cordoned" } else { "already cordoned" }
            );
        }
        NodeCommand::Uncordon { name } => {
            let changed = set_unschedulable(&client, &name, false).await?;
            println!(
                "node/{name} {}",
                if changed {
                    "uncordoned"
                } else {
                    "already schedulable"
                }
            );
        }
        NodeCommand::Drain { name, timeout } => drain(&client, &name, timeout).await?,
    }
    Ok(())
}

/// Sets `spec.unschedulable`; `false` when it already had that value.
async fn set_unschedulable(client: &Client, name: &str, value: bool) -> Result<bool> {
    for _ in 0..RETRIES {
        let mut obj = client.get(Kind::Node, None, name).await?;
        let Object::Node(n) = &mut obj else {
            bail!("node/{name}: the server answered with a {} instead", obj.kind());
        };
        if n.spec.unschedulable == value {
            return Ok(false);
        }
        n.spec.unschedulable = value;
        match client.replace(&obj).await {
            Ok(_) => return Ok(true),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("node/{name} kept changing underneath; try again")
}

/// What drain does with the pods bound to a node.
#[derive(Debug, Default, PartialEq)]
struct DrainPlan {
    /// `(namespace, name)` of live pods a Deployment owns: deleted, and replaced elsewhere.
    evict: Vec<(String, String)>,
    /// `(namespace, name)` of live pods nobody would replace: left in place.
    keep: Vec<(String, String)>,
}

fn plan(pods: &[Object]) -> DrainPlan {
    let mut plan = DrainPlan::default();
    for o in pods {
        let Object::Pod(p) = o else { continue };
        if is_finished(p) {
            continue;
        }
        let key = (
            p.metadata.namespace_or_default().to_owned(),
            p.metadata.name.clone(),
        );
        if p.metadata.controller().is_some_and(|c| c.kind == "Deployment") {
            plan.evict.push(key);
        } else {
            plan.keep.push(key);
        }
    }
    plan
}

fn is_finished(p: &Pod) -> bool {
    matches!(p.status.phase, PodPhase::Failed | PodPhase::Succeeded)
}

async fn pods_on(client: &Client, node: &str) -> Result<Vec<Object>> {
    let opts = ListOptions {
        label_selector: None,
        field_selector: Some(format!("spec.nodeName={node}")),
    };
    Ok(client.list(Kind::Pod, None, Some(&opts)).await?.items)
}

async fn drain(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    if set_unschedulable(client, name, true).await? {
        println!("node/{name} cordoned");
    } else {
        println!("node/{name} already cordoned");
    }
    let first = plan(&pods_on(client, name).await?);
    for (ns, pod) in &first.keep {
        println!(
            "pod/{pod} (namespace {ns}) left in place: no deployment owns it, so nothing would replace it"
        );
    }
    for (ns, pod) in &first.evict {
        match client.delete(Kind::Pod, Some(ns), pod).await {
            Ok(_) => println!("pod/{pod} (namespace {ns}) evicted"),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    loop {
        let left = plan(&pods_on(client, name).await?).evict;
        if left.is_empty() {
            println!(
                "node/{name} drained: {} pod(s) evicted, {} left in place",
                first.evict.len(),
                first.keep.len()
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            let names: Vec<&str> = left.iter().map(|(_, p)| p.as_str()).collect();
            bail!(
                "node/{name} still has {} deployment pod(s) after {}: {}; run drain again or raise --timeout",
                left.len(),
                humantime::format_duration(timeout),
                names.join(", ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, owner: Option<&str>, phase: &str) -> Object {
        let owners: Vec<serde_json::Value> = owner
            .map(|k| json!({"kind": k, "name": "web", "uid": "u1", "controller": true}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({"apiVersion":"skiff.dev/v1","kind":"Pod",
            "metadata":{"name":name,"namespace":"default","ownerReferences":owners},
            "spec":{"nodeName":"n1","components":[{"name":"c","wasm":{"digest":format!("sha256:{}", "a".repeat(64))}}]},
            "status":{"phase":phase}}))
        .unwrap()
    }

    #[test]
    fn drain_evicts_live_deployment_pods_and_keeps_the_rest() {
        let pods = [
            pod("web-1", Some("Deployment"), "Running"),
            pod("web-2", Some("Deployment"), "Failed"),
            pod("bare", None, "Running"),
            pod("done", None, "Succeeded"),
        ];
        let d = |n: &str| ("default".to_owned(), n.to_owned());
        assert_eq!(
            plan(&pods),
            DrainPlan {
                evict: vec![d("web-1")],
                keep: vec![d("bare")],
            }
        );
    }
}
