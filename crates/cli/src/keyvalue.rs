//! `skiff kv …` and `skiff get keyvalue`: the key-value stores components open through
//! `wasi:keyvalue`.
use std::io::Write;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use skiff_api::{DEFAULT_NAMESPACE, KeyValueStore};

use crate::config::Connection;
use crate::output::Format;

/// `skiff kv`.
#[derive(Args, Debug)]
pub(crate) struct KvArgs {
    #[command(subcommand)]
    command: KvCommand,
    /// Namespace.
    #[arg(short, long, global = true, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
}

#[derive(Subcommand, Debug)]
enum KvCommand {
    /// Print a key's value as it is stored.
    Get {
        /// Store.
        store: String,
        /// Key.
        key: String,
    },
    /// Set a key: the value as text, `@FILE`, or `-` for stdin.
    Set {
        /// Store.
        store: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Delete a key.
    Delete {
        /// Store.
        store: String,
        /// Key.
        key: String,
    },
    /// List a store's keys.
    Ls {
        /// Store.
        store: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Add to the integer a key holds (0 when absent); prints the new value.
    Incr {
        /// Store.
        store: String,
        /// Key.
        key: String,
        /// What to add (may be negative).
        #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
        by: i64,
    },
}

pub(crate) async fn kv(conn: &Connection, a: KvArgs) -> Result<()> {
    let client = conn.client()?;
    let ns = a.namespace.as_str();
    match a.command {
        KvCommand::Get { store, key } => match client.kv_get(ns, &store, &key).await? {
            Some(v) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&v)?;
                if !v.ends_with(b"\n") && std::str::from_utf8(&v).is_ok() {
                    out.write_all(b"\n")?;
                }
            }
            None => bail!("key {key:?} is not in key-value store {store:?} of namespace {ns:?}"),
        },
        KvCommand::Set { store, key, value } => {
            let bytes = crate::functions::data_bytes(Some(&value))?;
            client.kv_set(ns, &store, &key, bytes).await?;
        }
        KvCommand::Delete { store, key } => client.kv_delete(ns, &store, &key).await?,
        KvCommand::Ls { store, prefix } => {
            let mut after: Option<String> = None;
            loop {
                let page = client.kv_keys(ns, &store, &prefix, after.as_deref()).await?;
                for k in &page.keys {
                    println!("{k}");
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        KvCommand::Incr { store, key, by } => {
            println!("{}", client.kv_increment(ns, &store, &key, by).await?);
        }
    }
    Ok(())
}

/// `skiff get keyvalue`: the stores with their sizes.
pub(crate) async fn get_stores(conn: &Connection, namespace: &str, all: bool, format: Format) -> Result<()> {
    let client = conn.client()?;
    let stores: Vec<KeyValueStore> = client.kv_stores((!all).then_some(namespace)).await?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&stores)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(&stores)?),
        Format::Table | Format::Wide => {
            let mut header = vec!["NAME".to_owned(), "KEYS".into(), "BYTES".into()];
            if all {
                header.insert(0, "NAMESPACE".into());
            }
            let rows = stores
                .iter()
                .map(|s| {
                    let mut row = vec![s.name.clone(), s.keys.to_string(), s.bytes.to_string()];
                    if all {
                        row.insert(0, s.namespace.clone());
                    }
                    row
                })
                .collect();
            print!("{}", crate::output::table(header, rows));
            if stores.is_empty() {
                eprintln!("no key-value stores found (a store exists once a key is written to it)");
            }
        }
    }
    Ok(())
}
