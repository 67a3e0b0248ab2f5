//! `skiff auth token create | list | revoke` (API tokens bound to roles) and `skiff audit`.
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};
use skiff_api::{
    API_TOKEN_PREFIX, API_TOKEN_SECRET_LEN, ApiToken, ApiTokenSpec, AuditRecord, Kind, Object, ObjectMeta,
    TOKEN_ID_LEN,
};
use skiff_client::ApiPath;

use crate::config::Connection;
use crate::token::{expiry, random_word};

/// `skiff auth`.
#[derive(Args, Debug)]
pub(crate) struct AuthArgs {
    #[command(subcommand)]
    command: AuthCommand,
}

#[derive(Subcommand, Debug)]
enum AuthCommand {
    /// API tokens: create, list, revoke.
    #[command(subcommand)]
    Token(ApiTokenCommand),
}

#[derive(Subcommand, Debug)]
enum ApiTokenCommand {
    /// Make an API token bound to a role and print it (only this once).
    Create {
        /// `admin`, `edit`, `view`, or the name of a Role object.
        #[arg(long)]
        role: String,
        /// A namespace the token acts in (repeatable); none = every namespace and the cluster.
        #[arg(short = 'n', long = "namespace")]
        namespaces: Vec<String>,
        /// How long the token works (`30m`, `24h`, `30d`); `0` = until revoked.
        #[arg(long, default_value = "30d")]
        ttl: String,
        /// A note for operators (shown by `skiff auth token list`).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List API tokens (ids, roles, namespaces and expiry; secrets are not stored).
    List,
    /// Revoke an API token: it stops working on every control node at once.
    Revoke {
        /// The token id (the 6 characters after `skt1.`).
        id: String,
    },
}

pub(crate) async fn auth(conn: &Connection, a: AuthArgs) -> Result<()> {
    let client = conn.client()?;
    let AuthCommand::Token(command) = a.command;
    match command {
        ApiTokenCommand::Create {
            role,
            namespaces,
            ttl,
            description,
        } => {
            let expires = expiry(&ttl)?;
            let id = random_word(TOKEN_ID_LEN);
            let secret = random_word(API_TOKEN_SECRET_LEN);
            let object = Object::ApiToken(ApiToken {
                metadata: ObjectMeta {
                    name: id.clone(),
                    ..Default::default()
                },
                spec: ApiTokenSpec {
                    secret_hash: hex::encode(Sha256::digest(secret.as_bytes())),
                    role: role.clone(),
                    namespaces: namespaces.clone(),
                    expires: expires.clone(),
                    description,
                },
                ..Default::default()
            });
            client.create(&object).await?;
            let place = if namespaces.is_empty() {
                "in every namespace".to_owned()
            } else {
                format!("in namespaces {}", namespaces.join(", "))
            };
            eprintln!(
                "API token {id} made with role {role} {place}; it works {} (revoke with `skiff auth token revoke {id}`)",
                match &expires {
                    Some(t) => format!("until {t}"),
                    None => "until revoked".into(),
                }
            );
            println!("{API_TOKEN_PREFIX}{id}.{secret}");
        }
        ApiTokenCommand::List => {
            let list = client.list(Kind::ApiToken, None, None).await?;
            let out = crate::output::render(
                Kind::ApiToken,
                &list.items,
                crate::output::Format::Table,
                false,
                false,
            )?;
            print!("{out}");
        }
        ApiTokenCommand::Revoke { id } => {
            client.delete(Kind::ApiToken, None, &id).await?;
            eprintln!("API token {id} revoked");
        }
    }
    Ok(())
}

/// `skiff audit`.
#[derive(Args, Debug)]
pub(crate) struct AuditArgs {
    /// How many of the newest records to show (at most 10000).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// `table` or `json` (one record per line).
    #[arg(short = 'o', long, default_value = "table")]
    output: String,
}

/// Prints the audit records of the control node the client talks to.
pub(crate) async fn audit(conn: &Connection, a: AuditArgs) -> Result<()> {
    let client = conn.client()?;
    let path = ApiPath::api().lit("audit");
    let mut records: Vec<AuditRecord> = client
        .get_json_query(&path, &[("limit", a.limit.to_string())])
        .await?;
    match a.output.as_str() {
        "json" => {
            for r in &records {
                println!("{}", serde_json::to_string(r)?);
            }
        }
        "table" => {
            let header = ["TIME", "REQUEST", "CALLER", "SOURCE", "VERB", "RESOURCE", "CODE"];
            let rows = records
                .drain(..)
                .map(|r| {
                    let place = match (r.namespace.is_empty(), r.name.is_empty()) {
                        (true, true) => String::new(),
                        (true, false) => format!(" {}", r.name),
                        (false, _) => format!(" {}/{}", r.namespace, r.name),
                    };
                    vec![
                        r.time,
                        r.request_id,
                        r.caller,
                        r.source,
                        if r.verb.is_empty() { r.method } else { r.verb },
                        format!("{}{place}", r.resource),
                        r.code.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                crate::output::table(header.into_iter().map(String::from).collect(), rows)
            );
        }
        other => bail!("-o {other:?}: use table or json"),
    }
    Ok(())
}
