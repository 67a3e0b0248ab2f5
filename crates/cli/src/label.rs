//! `skiff label KIND NAME key=value… key-`: add, change or remove labels of one object by
//! read-modify-write with its resourceVersion (retried on a conflict).
use anyhow::{Result, bail};
use clap::Args;
use skiff_api::{DEFAULT_NAMESPACE, Kind};

use crate::config::Connection;
use crate::output;

/// `skiff label`.
#[derive(Args, Debug)]
pub(crate) struct LabelArgs {
    /// Kind (node, pod, deployment, …).
    kind: String,
    /// Name.
    name: String,
    /// `key=value` to set, `key-` to remove.
    #[arg(required = true)]
    changes: Vec<String>,
    /// Namespace (namespaced kinds).
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Allow changing the value of a label that is already set.
    #[arg(long)]
    overwrite: bool,
}

enum Change {
    Set(String, String),
    Remove(String),
}

fn parse(changes: &[String]) -> Result<Vec<Change>> {
    changes
        .iter()
        .map(|c| {
            if let Some(key) = c.strip_suffix('-')
                && !c.contains('=')
            {
                return Ok(Change::Remove(key.to_owned()));
            }
            match c.split_once('=') {
                Some((k, v)) => {
                    if let Some(problem) = skiff_api::label_problem(k, v) {
                        bail!("label {c:?}: {problem}");
                    }
                    Ok(Change::Set(k.to_owned(), v.to_owned()))
                }
                None => bail!("{c:?} is neither key=value (set) nor key- (remove)"),
            }
        })
        .collect()
}

pub(crate) async fn label(conn: &Connection, a: LabelArgs) -> Result<()> {
    let kind = Kind::parse_any(&a.kind).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !kind.user_writable() {
        bail!("{kind} objects are written by Skiff; their labels cannot be changed");
    }
    let changes = parse(&a.changes)?;
    let client = conn.client()?;
    let ns = kind.namespaced().then_some(a.namespace.as_str());
    for _ in 0..5 {
        let mut obj = client.get(kind, ns, &a.name).await?;
        let labels = &mut obj.meta_mut().labels;
        for c in &changes {
            match c {
                Change::Set(k, v) => {
                    if let Some(old) = labels.get(k)
                        && old != v
                        && !a.overwrite
                    {
                        bail!("{k} is already {old:?}: pass --overwrite to change it to {v:?}");
                    }
                    labels.insert(k.clone(), v.clone());
                }
                Change::Remove(k) => {
                    labels.remove(k);
                }
            }
        }
        match client.replace(&obj).await {
            Ok(o) => {
                println!("{} labeled", output::ref_of(&o));
                return Ok(());
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!(
        "{}/{} kept changing underneath; try again",
        kind.as_str().to_lowercase(),
        a.name
    )
}
