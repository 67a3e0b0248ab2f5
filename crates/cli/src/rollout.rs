//! `skiff rollout status | history | undo | pause | resume | restart` for deployments.
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use skiff_api::TEMPLATE_HASH_LABEL;
use skiff_api::{
    CHANGE_CAUSE_ANNOTATION, CanaryPhase, DEFAULT_NAMESPACE, Deployment, Kind, Object,
    PROGRESS_DEADLINE_EXCEEDED, PROGRESSING_CONDITION, RESTARTED_AT_ANNOTATION, ReplicaSet,
};
use skiff_client::Client;

use crate::config::Connection;

/// `skiff rollout`.
#[derive(Args, Debug)]
pub(crate) struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

/// The deployment a rollout verb acts on.
#[derive(Args, Debug)]
struct Target {
    /// `deployment/NAME`, or `deployment` followed by NAME.
    target: String,
    /// Name, when the target is just the kind.
    name: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
}

#[derive(Subcommand, Debug)]
enum RolloutCommand {
    /// Follow a rollout until every pod runs the current revision (exit 1 if it fails or reverts).
    Status {
        #[command(flatten)]
        target: Target,
        /// Give up after this long (e.g. 5m; default: wait for the deployment's progress deadline).
        #[arg(long)]
        timeout: Option<humantime::Duration>,
    },
    /// List the revisions with their change cause, or show one revision's template.
    History {
        #[command(flatten)]
        target: Target,
        /// Show this revision's pod template.
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Go back to the previous revision (or --to-revision N).
    Undo {
        #[command(flatten)]
        target: Target,
        /// The revision to go back to (see `skiff rollout history`).
        #[arg(long)]
        to_revision: Option<u64>,
    },
    /// Hold the rollout: template changes wait until `resume`.
    Pause {
        #[command(flatten)]
        target: Target,
    },
    /// Continue a paused rollout (also the next step of a canary paused at a `pause: {}` step).
    Resume {
        #[command(flatten)]
        target: Target,
    },
    /// Replace every pod through a new revision (same template, new `skiff.dev/restartedAt`).
    Restart {
        #[command(flatten)]
        target: Target,
    },
}

impl Target {
    fn name(&self) -> Result<String> {
        let (kind, name) = match self.target.split_once('/') {
            Some((k, n)) => (k.to_owned(), n.to_owned()),
            None => match &self.name {
                Some(n) => (self.target.clone(), n.clone()),
                None => ("deployment".to_owned(), self.target.clone()),
            },
        };
        let k = Kind::parse_any(&kind).map_err(|e| anyhow::anyhow!("{e}"))?;
        if k != Kind::Deployment {
            bail!("rollouts are about deployments, not {kind}: use deployment/NAME");
        }
        Ok(name)
    }
}

pub(crate) async fn rollout(conn: &Connection, a: RolloutArgs) -> Result<()> {
    let client = conn.client()?;
    match a.command {
        RolloutCommand::Status { target, timeout } => {
            status(
                &client,
                &target.namespace,
                &target.name()?,
                timeout.map(Into::into),
            )
            .await
        }
        RolloutCommand::History { target, revision } => {
            history(&client, &target.namespace, &target.name()?, revision).await
        }
        RolloutCommand::Undo { target, to_revision } => {
            let name = target.name()?;
            let (ns, c) = (target.namespace.as_str(), &client);
            let rs = revisions(c, ns, &get(c, ns, &name).await?).await?;
            let revision = update(c, ns, &name, |d| undo(d, &rs, to_revision)).await?;
            println!("deployment/{name} rolled back to revision {revision}");
            Ok(())
        }
        RolloutCommand::Pause { target } => {
            let name = target.name()?;
            update(&client, &target.namespace, &name, |d| {
                d.spec.paused = true;
                Ok(())
            })
            .await?;
            println!("deployment/{name} paused");
            Ok(())
        }
        RolloutCommand::Resume { target } => {
            let name = target.name()?;
            update(&client, &target.namespace, &name, |d| {
                if !d.spec.paused {
                    bail!("deployment/{} is not paused", d.metadata.name);
                }
                d.spec.paused = false;
                Ok(())
            })
            .await?;
            println!("deployment/{name} resumed");
            Ok(())
        }
        RolloutCommand::Restart { target } => {
            let name = target.name()?;
            let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
            update(&client, &target.namespace, &name, |d| {
                d.spec
                    .template
                    .metadata
                    .annotations
                    .insert(RESTARTED_AT_ANNOTATION.into(), now.clone());
                d.metadata.annotations.insert(
                    CHANGE_CAUSE_ANNOTATION.into(),
                    format!("rollout restart at {now}"),
                );
                Ok(())
            })
            .await?;
            println!("deployment/{name} restarted");
            Ok(())
        }
    }
}

async fn get(client: &Client, ns: &str, name: &str) -> Result<Deployment> {
    match client.get(Kind::Deployment, Some(ns), name).await? {
        Object::Deployment(d) => Ok(d),
        _ => bail!("deployment/{name} holds another kind"),
    }
}

/// Read-modify-write of a deployment with its resourceVersion, retried on a conflict.
async fn update<T>(
    client: &Client,
    ns: &str,
    name: &str,
    mut change: impl FnMut(&mut Deployment) -> Result<T>,
) -> Result<T> {
    for _ in 0..5 {
        let mut d = get(client, ns, name).await?;
        let out = change(&mut d)?;
        match client.replace(&Object::Deployment(d)).await {
            Ok(_) => return Ok(out),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("deployment/{name} kept changing underneath; try again")
}

/// The deployment's ReplicaSets, oldest revision first.
async fn revisions(client: &Client, ns: &str, d: &Deployment) -> Result<Vec<ReplicaSet>> {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let mut out: Vec<ReplicaSet> = client
        .list(Kind::ReplicaSet, Some(ns), None)
        .await?
        .items
        .into_iter()
        .filter_map(|o| match o {
            Object::ReplicaSet(r) if r.metadata.controller().is_some_and(|o| o.uid == uid) => Some(r),
            _ => None,
        })
        .collect();
    out.sort_by_key(ReplicaSet::revision);
    Ok(out)
}

/// Puts the template of revision `to` (default: the one before the current) back into `d`.
fn undo(d: &mut Deployment, revisions: &[ReplicaSet], to: Option<u64>) -> Result<u64> {
    let current = d.status.revision.unwrap_or(0);
    let target = match to {
        Some(n) => revisions.iter().find(|r| r.revision() == n).with_context(|| {
            let known: Vec<String> = revisions.iter().map(|r| r.revision().to_string()).collect();
            format!(
                "deployment/{} has no revision {n}; it has {} (see `skiff rollout history`)",
                d.metadata.name,
                known.join(", ")
            )
        })?,
        None => revisions
            .iter()
            .rev()
            .find(|r| r.revision() < current)
            .with_context(|| {
                format!(
                    "deployment/{} has no revision before {current} to go back to",
                    d.metadata.name
                )
            })?,
    };
    let mut template = target.spec.template.clone();
    template.metadata.labels.remove(TEMPLATE_HASH_LABEL);
    template
        .metadata
        .annotations
        .remove(skiff_api::CONFIG_HASH_ANNOTATION);
    if template == d.spec.template {
        bail!(
            "deployment/{} already runs the template of revision {}",
            d.metadata.name,
            target.revision()
        );
    }
    d.spec.template = template;
    d.metadata.annotations.insert(
        CHANGE_CAUSE_ANNOTATION.into(),
        format!("rollback to revision {}", target.revision()),
    );
    Ok(target.revision())
}

async fn history(client: &Client, ns: &str, name: &str, revision: Option<u64>) -> Result<()> {
    let d = get(client, ns, name).await?;
    let revs = revisions(client, ns, &d).await?;
    if let Some(n) = revision {
        let r = revs
            .iter()
            .find(|r| r.revision() == n)
            .with_context(|| format!("deployment/{name} has no revision {n}"))?;
        println!("deployment/{name} revision {n}");
        println!(
            "change cause: {}",
            r.metadata
                .annotations
                .get(CHANGE_CAUSE_ANNOTATION)
                .map_or("<none>", String::as_str)
        );
        print!("{}", serde_saphyr::to_string(&r.spec.template)?);
        return Ok(());
    }
    println!("deployment/{name}");
    println!("{:<10} {:<10} CHANGE-CAUSE", "REVISION", "REPLICAS");
    for r in &revs {
        let cause = r
            .metadata
            .annotations
            .get(CHANGE_CAUSE_ANNOTATION)
            .map_or("<none>", String::as_str);
        let mark = if Some(r.revision()) == d.status.revision {
            " (current)"
        } else {
            ""
        };
        println!("{:<10} {:<10} {cause}{mark}", r.revision(), r.status.replicas);
    }
    Ok(())
}

/// One line saying where the rollout stands, and whether it is over (`Ok(true)` done, `Err` failed).
pub(crate) fn progress(d: &Deployment) -> (String, Result<bool, String>) {
    let name = &d.metadata.name;
    let s = &d.status;
    let want = d.spec.replicas.max(0) as u64;
    if s.observed_generation < d.metadata.generation.unwrap_or(0) {
        return (
            format!("Waiting for deployment {name:?} spec update to be observed..."),
            Ok(false),
        );
    }
    let progressing = s.conditions.iter().find(|c| c.type_ == PROGRESSING_CONDITION);
    if let Some(c) = progressing.filter(|c| c.reason == PROGRESS_DEADLINE_EXCEEDED) {
        return (
            String::new(),
            Err(format!(
                "deployment {name:?} exceeded its progress deadline: {}",
                c.message
            )),
        );
    }
    if let Some(c) = &s.canary {
        match c.phase {
            CanaryPhase::Reverted => {
                return (
                    String::new(),
                    Err(format!("deployment {name:?} canary reverted: {}", c.message)),
                );
            }
            CanaryPhase::Progressing | CanaryPhase::Paused | CanaryPhase::Promoting => {
                let steps = d.spec.strategy.canary.as_ref().map_or(0, |x| x.steps.len());
                let note = if c.message.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", c.message)
                };
                return (
                    format!(
                        "Waiting for deployment {name:?} canary: step {}/{steps}, {}% of traffic, {}, {} requests / {} errors{note}",
                        c.step.min(steps as u32),
                        c.weight,
                        c.phase,
                        c.requests,
                        c.errors
                    ),
                    Ok(false),
                );
            }
            CanaryPhase::Promoted => {}
        }
    }
    if d.spec.paused {
        return (
            format!("Deployment {name:?} is paused: `skiff rollout resume deployment/{name}` continues it"),
            Ok(false),
        );
    }
    let line = if s.updated_replicas < want {
        format!(
            "Waiting for deployment {name:?} rollout to finish: {} out of {want} new replicas have been updated...",
            s.updated_replicas
        )
    } else if s.replicas > s.updated_replicas {
        format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            s.replicas - s.updated_replicas
        )
    } else if s.updated_ready_replicas < want {
        format!(
            "Waiting for deployment {name:?} rollout to finish: {} of {want} updated replicas are available...",
            s.updated_ready_replicas
        )
    } else {
        return (
            format!(
                "deployment {name:?} successfully rolled out (revision {})",
                s.revision.unwrap_or(0)
            ),
            Ok(true),
        );
    };
    (line, Ok(false))
}

async fn status(client: &Client, ns: &str, name: &str, timeout: Option<Duration>) -> Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let d = get(client, ns, name).await?;
        let limit = timeout.unwrap_or(d.spec.progress_deadline() + Duration::from_secs(30));
        let (line, state) = progress(&d);
        if line != last && !line.is_empty() {
            println!("{line}");
            last = line;
        }
        match state {
            Ok(true) => return Ok(()),
            Err(e) => bail!("{e}"),
            Ok(false) => {}
        }
        if started.elapsed() > limit {
            bail!(
                "timed out after {}s waiting for deployment/{name} to roll out",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
