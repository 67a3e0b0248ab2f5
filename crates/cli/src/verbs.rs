//! Client verbs: apply, get, describe, delete, logs, scale. Every namespaced verb takes
//! `-n NAMESPACE`; the ones that work on many objects also `-A` (all namespaces) and
//! `-l SELECTOR` (labels).
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use skiff_api::{DEFAULT_NAMESPACE, Kind, Object};
use skiff_client::ListOptions;

use crate::config::Connection;
use crate::output::{self, Format};

/// `skiff apply`.
#[derive(Args, Debug)]
pub(crate) struct ApplyArgs {
    /// Manifest file, directory, or `-` for standard input (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Namespace for objects that name none (an object naming another one is refused).
    #[arg(short, long)]
    namespace: Option<String>,
}

/// `skiff get`.
#[derive(Args, Debug)]
pub(crate) struct GetArgs {
    /// Kind: pods (po), deployments (deploy), replicasets (rs), services (svc), endpoints (ep), httproutes (route),
    /// nodes (no), namespaces (ns), configmaps (cm), secrets, events (ev), jointokens, functions (fn), topics.
    kind: String,
    /// Name of one object.
    name: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// All namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Label selector (app=web,tier!=db).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
    /// Print Secret values (otherwise each shows as `<redacted, N bytes>`).
    #[arg(long)]
    show_secrets: bool,
}

/// `skiff describe`.
#[derive(Args, Debug)]
pub(crate) struct DescribeArgs {
    /// Kind.
    kind: String,
    /// Name (or select with -l).
    name: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// All namespaces (with -l or no NAME).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Describe every object whose labels match (app=web,tier!=db).
    #[arg(short = 'l', long, conflicts_with = "name")]
    selector: Option<String>,
    /// Print Secret values (otherwise each shows as `<redacted, N bytes>`).
    #[arg(long)]
    show_secrets: bool,
}

/// `skiff delete`.
#[derive(Args, Debug)]
pub(crate) struct DeleteArgs {
    /// Kind (with NAME).
    kind: Option<String>,
    /// Name.
    name: Option<String>,
    /// Delete the objects in these manifests instead.
    #[arg(short = 'f', long = "filename", conflicts_with_all = ["kind", "name", "selector", "all"])]
    files: Vec<PathBuf>,
    /// Namespace.
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// With -l or --all: in every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Delete every object of KIND whose labels match (app=web,tier!=db).
    #[arg(short = 'l', long, conflicts_with = "name")]
    selector: Option<String>,
    /// Delete every object of KIND (in the namespace, or with -A everywhere).
    #[arg(long, conflicts_with_all = ["name", "selector"])]
    all: bool,
}

/// `skiff logs`.
#[derive(Args, Debug)]
pub(crate) struct LogsArgs {
    /// Pod name (or select pods with -l).
    pod: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// With -l: pods in every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Print the logs of every pod whose labels match (app=web), each under a header.
    #[arg(short = 'l', long, conflicts_with = "pod")]
    selector: Option<String>,
}

/// `skiff scale`.
#[derive(Args, Debug)]
pub(crate) struct ScaleArgs {
    /// `deployment/NAME`, or `deployment` followed by NAME.
    target: String,
    /// Name, when the target is just the kind.
    name: Option<String>,
    /// Desired replicas.
    #[arg(long)]
    replicas: i64,
    /// Namespace.
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
}

fn parse_kind(s: &str) -> Result<Kind> {
    Kind::parse_any(s).map_err(|e| anyhow::anyhow!("{e}"))
}

fn load(files: &[PathBuf]) -> Result<Vec<skiff_manifest::Document>> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let (stdin, paths): (Vec<&PathBuf>, Vec<&PathBuf>) = files.iter().partition(|p| p.as_os_str() == "-");
    if !stdin.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading manifests from standard input")?;
        match skiff_manifest::load_str(&text, "<stdin>") {
            Ok(d) => docs.extend(d),
            Err(e) => errors.extend(e.0),
        }
    }
    let paths: Vec<PathBuf> = paths.into_iter().cloned().collect();
    if !paths.is_empty() {
        match skiff_manifest::load_paths(&paths) {
            Ok(d) => docs.extend(d),
            Err(e) => errors.extend(e.0),
        }
    }
    if !errors.is_empty() {
        bail!("{}\nnothing was applied", skiff_manifest::ManifestErrors(errors));
    }
    Ok(docs)
}

pub(crate) async fn apply(conn: &Connection, a: ApplyArgs) -> Result<()> {
    apply_in(conn, &a.files, a.namespace.as_deref()).await
}

/// Loads manifests, uploads local artifacts, and applies everything in one transaction.
pub(crate) async fn apply_paths(conn: &Connection, files: &[PathBuf]) -> Result<()> {
    apply_in(conn, files, None).await
}

/// Puts namespaced objects that name no namespace into `ns`; refuses one that names another.
fn place(docs: &mut [skiff_manifest::Document], ns: &str) -> Result<()> {
    let mut wrong = Vec::new();
    for d in docs.iter_mut().filter(|d| d.object.kind().namespaced()) {
        let m = d.object.meta_mut();
        match m.namespace.as_deref() {
            None => m.namespace = Some(ns.to_owned()),
            Some(n) if n == ns => {}
            Some(n) => wrong.push(format!(
                "{}: document {}: metadata.namespace is {n:?} but -n says {ns:?}: remove one of them",
                d.file, d.index
            )),
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        bail!("{}\nnothing was applied", wrong.join("\n"))
    }
}

async fn apply_in(conn: &Connection, files: &[PathBuf], namespace: Option<&str>) -> Result<()> {
    let mut docs = load(files)?;
    if let Some(ns) = namespace {
        place(&mut docs, ns)?;
    }
    let client = conn.client()?;
    let mut objects = Vec::new();
    for mut d in docs {
        for a in &d.artifacts {
            let bytes = std::fs::read(&a.path)
                .with_context(|| format!("{}: reading {}", d.file, a.path.display()))?;
            let digest = client.upload_artifact(bytes).await.with_context(|| {
                format!("{}: document {}: uploading {}", d.file, d.index, a.path.display())
            })?;
            skiff_manifest::set_digest(&mut d.object, &a.field_path, digest)?;
        }
        objects.push(d.object);
    }
    let stored = client
        .apply(&objects)
        .await
        .context("apply rejected; nothing was stored")?;
    for o in stored {
        println!(
            "{} applied (resourceVersion {})",
            output::ref_of(&o),
            o.meta().resource_version.unwrap_or(0)
        );
    }
    Ok(())
}

pub(crate) async fn get(conn: &Connection, a: GetArgs) -> Result<()> {
    if matches!(a.kind.to_ascii_lowercase().as_str(), "topic" | "topics") {
        return crate::functions::get_topics(
            conn,
            &a.namespace,
            a.all_namespaces,
            a.name.as_deref(),
            a.output,
        )
        .await;
    }
    if matches!(
        a.kind.to_ascii_lowercase().as_str(),
        "keyvalue" | "kv" | "stores" | "keyvaluestores"
    ) {
        return crate::keyvalue::get_stores(conn, &a.namespace, a.all_namespaces, a.output).await;
    }
    let kind = parse_kind(&a.kind)?;
    let client = conn.client()?;
    let ns = (!a.all_namespaces).then_some(a.namespace.as_str());
    let items = match &a.name {
        Some(name) => vec![client.get(kind, ns, name).await?],
        None => {
            let opts = ListOptions {
                label_selector: a.selector.clone(),
                field_selector: None,
            };
            client.list(kind, ns, Some(&opts)).await?.items
        }
    };
    let mut items = items;
    if !a.show_secrets {
        items.iter_mut().for_each(output::redact);
    }
    if kind == Kind::Event {
        output::sort_events(&mut items);
    }
    print!(
        "{}",
        output::render(kind, &items, a.output, a.all_namespaces, a.name.is_some())?
    );
    if items.is_empty() && matches!(a.output, Format::Table | Format::Wide) {
        eprintln!(
            "no {} found{}",
            kind.plural(),
            ns.map(|n| format!(" in namespace {n}")).unwrap_or_default()
        );
    }
    Ok(())
}

pub(crate) async fn describe(conn: &Connection, a: DescribeArgs) -> Result<()> {
    let kind = parse_kind(&a.kind)?;
    let client = conn.client()?;
    let objects = match &a.name {
        Some(name) => vec![client.get(kind, Some(&a.namespace), name).await?],
        None => {
            let ns = (!a.all_namespaces).then_some(a.namespace.as_str());
            let opts = ListOptions {
                label_selector: a.selector.clone(),
                field_selector: None,
            };
            let items = client.list(kind, ns, Some(&opts)).await?.items;
            if items.is_empty() {
                bail!(
                    "no {} match{}",
                    kind.plural(),
                    ns.map(|n| format!(" in namespace {n}")).unwrap_or_default()
                );
            }
            items
        }
    };
    for (i, obj) in objects.into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        describe_one(&client, obj, a.show_secrets).await?;
    }
    Ok(())
}

async fn describe_one(client: &skiff_client::Client, obj: Object, show_secrets: bool) -> Result<()> {
    let namespace = obj.namespace().unwrap_or(DEFAULT_NAMESPACE).to_owned();
    let a = DescribeScope {
        namespace,
        show_secrets,
    };
    let mut obj = obj;
    if !a.show_secrets {
        output::redact(&mut obj);
    }
    let mut related = Vec::new();
    match &obj {
        Object::Deployment(d) => {
            let uid = d.metadata.uid.clone().unwrap_or_default();
            let sets: Vec<Object> = client
                .list(Kind::ReplicaSet, Some(&a.namespace), None)
                .await?
                .items
                .into_iter()
                .filter(|r| r.meta().controller().is_some_and(|o| o.uid == uid))
                .collect();
            let owners: Vec<String> = sets
                .iter()
                .filter_map(|r| r.meta().uid.clone())
                .chain([uid])
                .collect();
            let pods = client.list(Kind::Pod, Some(&a.namespace), None).await?.items;
            related.extend(sets);
            related.extend(
                pods.into_iter()
                    .filter(|p| p.meta().controller().is_some_and(|o| owners.contains(&o.uid))),
            );
        }
        Object::ReplicaSet(r) => {
            let uid = r.metadata.uid.clone().unwrap_or_default();
            let pods = client.list(Kind::Pod, Some(&a.namespace), None).await?.items;
            related.extend(
                pods.into_iter()
                    .filter(|p| p.meta().controller().is_some_and(|o| o.uid == uid)),
            );
        }
        Object::Service(_) => {
            if let Ok(e) = client
                .get(Kind::Endpoints, Some(&a.namespace), &obj.meta().name)
                .await
            {
                related.push(e);
            }
        }
        _ => {}
    }
    let events = match &obj {
        Object::Node(_) | Object::Pod(_) | Object::Deployment(_) | Object::ReplicaSet(_) => {
            events_of(client, &obj).await
        }
        _ => Vec::new(),
    };
    print!("{}", output::describe(&obj, &related, &events)?);
    Ok(())
}

/// What `describe_one` needs of the arguments.
struct DescribeScope {
    namespace: String,
    show_secrets: bool,
}

/// The events recorded about `obj` (none when they cannot be listed: `describe` still shows the
/// object).
async fn events_of(client: &skiff_client::Client, obj: &Object) -> Vec<skiff_api::Event> {
    let ns = obj.namespace().unwrap_or(skiff_api::DEFAULT_NAMESPACE);
    let Ok(list) = client.list(Kind::Event, Some(ns), None).await else {
        return Vec::new();
    };
    let (kind, name, uid) = (obj.kind().as_str(), &obj.meta().name, &obj.meta().uid);
    list.items
        .into_iter()
        .filter_map(|o| match o {
            Object::Event(e)
                if e.involved_object.kind == kind
                    && &e.involved_object.name == name
                    && (e.involved_object.uid.is_none()
                        || uid.is_none()
                        || &e.involved_object.uid == uid) =>
            {
                Some(e)
            }
            _ => None,
        })
        .collect()
}

pub(crate) async fn delete(conn: &Connection, a: DeleteArgs) -> Result<()> {
    let client = conn.client()?;
    let targets: Vec<(Kind, Option<String>, String)> = if !a.files.is_empty() {
        load(&a.files)?
            .into_iter()
            .map(|d| {
                (
                    d.object.kind(),
                    d.object.namespace().map(str::to_owned),
                    d.object.meta().name.clone(),
                )
            })
            .collect()
    } else if let (Some(kind), None) = (&a.kind, &a.name) {
        if a.selector.is_none() && !a.all {
            bail!("say which {kind} to delete: a NAME, -l SELECTOR, or --all");
        }
        let kind = parse_kind(kind)?;
        let ns = (!a.all_namespaces && kind.namespaced()).then_some(a.namespace.as_str());
        let opts = ListOptions {
            label_selector: a.selector.clone(),
            field_selector: None,
        };
        client
            .list(kind, ns, Some(&opts))
            .await?
            .items
            .into_iter()
            .map(|o| (kind, o.namespace().map(str::to_owned), o.meta().name.clone()))
            .collect()
    } else {
        let (Some(kind), Some(name)) = (&a.kind, &a.name) else {
            bail!(
                "say what to delete: `skiff delete KIND NAME`, `skiff delete KIND -l SELECTOR` or `skiff delete -f FILE`"
            );
        };
        vec![(parse_kind(kind)?, Some(a.namespace.clone()), name.clone())]
    };
    if targets.is_empty() {
        eprintln!("nothing matched: no object deleted");
    }
    let mut failed = 0;
    for (kind, ns, name) in targets {
        match client.delete(kind, ns.as_deref(), &name).await {
            Ok(o) => println!("{} deleted", output::ref_of(&o)),
            Err(e) if e.is_not_found() => {
                eprintln!("{}/{name}: not found", kind.as_str().to_lowercase());
                failed += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if failed > 0 {
        bail!("{failed} object(s) were not found");
    }
    Ok(())
}

pub(crate) async fn logs(conn: &Connection, a: LogsArgs) -> Result<()> {
    let client = conn.client()?;
    let function_selector = a
        .pod
        .as_deref()
        .filter(|p| p.contains('/'))
        .map(|p| {
            crate::functions::function_name(p)
                .map(|n| format!("{}={n}", skiff_api::FUNCTION_LABEL))
                .ok_or_else(|| anyhow::anyhow!("{p:?}: write a pod name or fn/NAME"))
        })
        .transpose()?;
    if let (Some(pod), None) = (&a.pod, &function_selector) {
        print!("{}", client.logs(&a.namespace, pod).await?);
        return Ok(());
    }
    let Some(selector) = function_selector.as_ref().or(a.selector.as_ref()) else {
        bail!("say whose logs: a POD name or -l SELECTOR");
    };
    let ns = (!a.all_namespaces).then_some(a.namespace.as_str());
    let opts = ListOptions {
        label_selector: Some(selector.clone()),
        field_selector: None,
    };
    let pods = client.list(Kind::Pod, ns, Some(&opts)).await?.items;
    if pods.is_empty() {
        if function_selector.is_some() {
            bail!(
                "the function has no pods now (scaled to zero): its output is kept with its pods; invoke it and look again"
            );
        }
        bail!("no pod matches {selector:?}");
    }
    for p in pods {
        let pns = p.namespace().unwrap_or(DEFAULT_NAMESPACE).to_owned();
        println!("==> {pns}/{} <==", p.meta().name);
        match client.logs(&pns, &p.meta().name).await {
            Ok(text) => print!("{text}"),
            Err(e) => println!("(no logs: {e})"),
        }
    }
    Ok(())
}

pub(crate) async fn scale(conn: &Connection, a: ScaleArgs) -> Result<()> {
    let (kind, name) = match a.target.split_once('/') {
        Some((k, n)) => (k.to_owned(), n.to_owned()),
        None => (
            a.target.clone(),
            a.name
                .clone()
                .context("give the deployment name: `skiff scale deployment NAME --replicas N`")?,
        ),
    };
    if parse_kind(&kind)? != Kind::Deployment {
        bail!("only deployments can be scaled, not {kind}");
    }
    if a.replicas < 0 {
        bail!("--replicas {} is negative: use 0 or more", a.replicas);
    }
    let client = conn.client()?;
    // Read-modify-write with the resourceVersion; a concurrent change gets a retry.
    for _ in 0..5 {
        let mut obj = client.get(Kind::Deployment, Some(&a.namespace), &name).await?;
        if let Object::Deployment(d) = &mut obj {
            d.spec.replicas = a.replicas;
        }
        match client.replace(&obj).await {
            Ok(_) => {
                println!("deployment/{name} scaled to {}", a.replicas);
                return Ok(());
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("deployment/{name} kept changing underneath; try again")
}
