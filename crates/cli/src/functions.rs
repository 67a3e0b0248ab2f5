//! `skiff publish`, `skiff invoke` and `skiff get topics`.
use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::Args;
use skiff_api::{CloudEvent, DEFAULT_NAMESPACE, TopicStatus};
use skiff_client::ApiPath;

use crate::config::Connection;
use crate::output::Format;

/// `skiff publish`.
#[derive(Args, Debug)]
pub(crate) struct PublishArgs {
    /// Topic.
    topic: String,
    /// The event's data: JSON (`{"t": 21.5}`), any text, `@FILE`, or `-` for stdin.
    #[arg(short, long)]
    data: Option<String>,
    /// Event type.
    #[arg(long = "type", default_value = "dev.skiff.event")]
    type_: String,
    /// Event source (default /topics/TOPIC).
    #[arg(long)]
    source: Option<String>,
    /// Event subject.
    #[arg(long)]
    subject: Option<String>,
    /// Event id; publishing the same id (and source) again within a day stores nothing.
    #[arg(long)]
    id: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
}

/// `skiff invoke`.
#[derive(Args, Debug)]
pub(crate) struct InvokeArgs {
    /// The function: `fn/NAME` (or NAME).
    function: String,
    /// The event's data: JSON, any text, `@FILE`, or `-` for stdin.
    #[arg(short, long)]
    data: Option<String>,
    /// Event type.
    #[arg(long = "type")]
    type_: Option<String>,
    /// Content type of the data (default: application/json when it parses as JSON, else text/plain).
    #[arg(long)]
    content_type: Option<String>,
    /// Namespace.
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
}

/// The bytes `--data` names.
pub(crate) fn data_bytes(data: Option<&str>) -> Result<Vec<u8>> {
    match data {
        None => Ok(Vec::new()),
        Some("-") => {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .context("reading the data from stdin")?;
            Ok(b)
        }
        Some(d) if d.starts_with('@') => {
            std::fs::read(&d[1..]).with_context(|| format!("reading the data file {:?}", &d[1..]))
        }
        Some(d) => Ok(d.as_bytes().to_vec()),
    }
}

/// A function name from `fn/NAME`, `function/NAME` or `NAME`.
pub(crate) fn function_name(s: &str) -> Option<&str> {
    let name = match s.split_once('/') {
        Some(("fn" | "function" | "functions", n)) => n,
        Some(_) => return None,
        None => s,
    };
    (!name.is_empty()).then_some(name)
}

pub(crate) async fn publish(conn: &Connection, a: PublishArgs) -> Result<()> {
    let bytes = data_bytes(a.data.as_deref())?;
    let mut event = CloudEvent {
        specversion: "1.0".into(),
        id: a.id.clone().unwrap_or_default(),
        source: a.source.clone().unwrap_or_default(),
        type_: a.type_.clone(),
        subject: a.subject.clone(),
        ..Default::default()
    };
    if !bytes.is_empty() {
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => {
                event.data = Some(v);
                event.datacontenttype = Some("application/json".into());
            }
            Err(_) => match String::from_utf8(bytes) {
                Ok(text) => {
                    event.data = Some(serde_json::Value::String(text));
                    event.datacontenttype = Some("text/plain".into());
                }
                Err(e) => {
                    use base64::Engine as _;
                    event.data_base64 =
                        Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes()));
                    event.datacontenttype = Some("application/octet-stream".into());
                }
            },
        }
    }
    let client = conn.client()?;
    let results = client.publish(&a.namespace, &a.topic, &[event]).await?;
    for r in results {
        if r.duplicate {
            println!(
                "event {} already in topic {} at #{} (duplicate: nothing stored)",
                r.id, r.topic, r.sequence
            );
        } else {
            println!("event {} published to topic {} as #{}", r.id, r.topic, r.sequence);
        }
    }
    Ok(())
}

pub(crate) async fn invoke(conn: &Connection, a: InvokeArgs) -> Result<()> {
    let Some(name) = function_name(&a.function) else {
        bail!("{:?} is not a function: write fn/NAME", a.function);
    };
    let bytes = data_bytes(a.data.as_deref())?;
    let content_type = a.content_type.clone().unwrap_or_else(|| {
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
            "application/json".into()
        } else {
            "text/plain".into()
        }
    });
    let mut headers = Vec::new();
    if let Some(t) = &a.type_ {
        headers.push(("ce-specversion".to_owned(), "1.0".to_owned()));
        headers.push(("ce-type".to_owned(), t.clone()));
        headers.push(("ce-source".to_owned(), "/cli/invoke".to_owned()));
        headers.push(("ce-id".to_owned(), format!("invoke-{}", std::process::id())));
    }
    let client = conn.client()?;
    let answer = client
        .invoke(&a.namespace, name, bytes, &content_type, &headers)
        .await?;
    use std::io::Write;
    std::io::stdout().write_all(&answer.body)?;
    if !answer.body.is_empty() && !answer.body.ends_with(b"\n") {
        println!();
    }
    match (answer.status, answer.function_error) {
        (200..=299, _) => Ok(()),
        (_, Some(kind)) => bail!("function {name} failed ({kind}, HTTP {})", answer.status),
        (429, None) => bail!(
            "function {name} is at its concurrency limit on every pod (HTTP 429): retry, or raise maxScale"
        ),
        (s, None) => bail!("function {name} answered HTTP {s}"),
    }
}

/// `skiff get topics [NAME]`.
pub(crate) async fn get_topics(
    conn: &Connection,
    namespace: &str,
    all: bool,
    name: Option<&str>,
    format: Format,
) -> Result<()> {
    let client = conn.client()?;
    let mut topics: Vec<TopicStatus> = if all {
        client.get_json(&ApiPath::api().lit("topics")).await?
    } else {
        client
            .get_json(
                &ApiPath::api()
                    .lit("namespaces")
                    .seg("namespace", namespace)?
                    .lit("topics"),
            )
            .await?
    };
    if let Some(n) = name {
        topics.retain(|t| t.name == n);
        if topics.is_empty() {
            bail!(
                "topic {n:?} not found in namespace {namespace:?} (a topic exists once something is published to it or a function subscribes)"
            );
        }
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&topics)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(&topics)?),
        Format::Table | Format::Wide => {
            let mut header = vec![
                "NAME".to_owned(),
                "PUBLISHED".into(),
                "STORED".into(),
                "BACKLOG".into(),
                "SUBSCRIBERS (lag/retrying/dead)".into(),
            ];
            if all {
                header.insert(0, "NAMESPACE".into());
            }
            let mut rows = Vec::new();
            for t in &topics {
                let subs: Vec<String> = t
                    .subscribers
                    .iter()
                    .map(|s| format!("{}:{}/{}/{}", s.function, s.lag, s.retrying, s.dead_lettered))
                    .collect();
                let mut row = vec![
                    t.name.clone(),
                    t.published.to_string(),
                    t.stored.to_string(),
                    t.backlog.to_string(),
                    if subs.is_empty() {
                        "-".into()
                    } else {
                        subs.join(",")
                    },
                ];
                if all {
                    row.insert(0, t.namespace.clone());
                }
                rows.push(row);
            }
            print!("{}", crate::output::table(header, rows));
            if topics.is_empty() {
                eprintln!("no topics found");
            }
        }
    }
    Ok(())
}
