//! `skiff token create | list | delete`: join tokens for agents and gateways.
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rand::Rng;
use sha2::{Digest, Sha256};
use skiff_api::{JoinToken, JoinTokenSpec, Kind, Object, ObjectMeta, TOKEN_ID_LEN, TOKEN_SECRET_LEN};

use crate::config::Connection;

/// `skiff token`.
#[derive(Args, Debug)]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Make a join token for agents and gateways and print it (only this once).
    Create {
        /// How long the token works (`30m`, `24h`, `7d`); `0` = until deleted.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// A note for operators (shown by `skiff token list`).
        #[arg(long, default_value = "")]
        description: String,
        /// Let an agent joining with this token take over the registered node NODE (whose
        /// agent is gone); without it a registered name is refused.
        #[arg(long, value_name = "NODE")]
        replace: Option<String>,
    },
    /// List join tokens (ids and expiry; secrets are not stored).
    List,
    /// Revoke a join token: nodes can no longer join with it (joined nodes keep their certificates).
    Delete {
        /// The token id (the 6 characters after `::`).
        id: String,
    },
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `len` random characters of `a-z0-9`.
pub(crate) fn random_word(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(crate) async fn token(conn: &Connection, a: TokenArgs) -> Result<()> {
    let client = conn.client()?;
    match a.command {
        TokenCommand::Create {
            ttl,
            description,
            replace,
        } => {
            let expires = expiry(&ttl)?;
            let info: serde_json::Value = client
                .get_json(&skiff_client::ApiPath::api().lit("cluster"))
                .await?;
            let ca_hash = info
                .get("caHash")
                .and_then(|h| h.as_str())
                .filter(|h| h.len() == 64)
                .context("the server did not say its CA hash: is it a Skiff control node of this version?")?
                .to_owned();
            let id = random_word(TOKEN_ID_LEN);
            let secret = random_word(TOKEN_SECRET_LEN);
            let object = Object::JoinToken(JoinToken {
                metadata: ObjectMeta {
                    name: id.clone(),
                    ..Default::default()
                },
                spec: JoinTokenSpec {
                    secret_hash: hex::encode(Sha256::digest(secret.as_bytes())),
                    expires: expires.clone(),
                    description,
                    replaces: replace,
                },
                ..Default::default()
            });
            client.create(&object).await?;
            eprintln!(
                "join token {id} made; it works {} (revoke with `skiff token delete {id}`)",
                match &expires {
                    Some(t) => format!("until {t}"),
                    None => "until deleted".into(),
                }
            );
            println!("{}{ca_hash}::{id}.{secret}", skiff_client::JOIN_TOKEN_PREFIX);
        }
        TokenCommand::List => {
            let list = client.list(Kind::JoinToken, None, None).await?;
            println!("{:<8} {:<22} DESCRIPTION", "ID", "EXPIRES");
            for o in list.items {
                if let Object::JoinToken(t) = o {
                    println!(
                        "{:<8} {:<22} {}",
                        t.metadata.name,
                        t.spec.expires.as_deref().unwrap_or("never"),
                        t.spec.description
                    );
                }
            }
        }
        TokenCommand::Delete { id } => {
            client.delete(Kind::JoinToken, None, &id).await?;
            eprintln!("join token {id} revoked");
        }
    }
    Ok(())
}

/// When a token made now with `--ttl ttl` expires (RFC 3339), `None` for `0` (never).
pub(crate) fn expiry(ttl: &str) -> Result<Option<String>> {
    if ttl.trim() == "0" {
        return Ok(None);
    }
    let ttl: Duration = humantime::parse_duration(ttl).with_context(|| {
        format!("--ttl {ttl:?}: use a duration such as 30m, 24h or 7d, or 0 for no expiry")
    })?;
    Ok(Some(
        humantime::format_rfc3339_seconds(SystemTime::now() + ttl).to_string(),
    ))
}
