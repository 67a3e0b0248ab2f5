//! Control-plane verbs: `skiff member list | remove`, `skiff snapshot save`.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use skiff_api::MemberView;
use skiff_client::ApiPath;

use crate::config::Connection;

/// `skiff member`.
#[derive(Args, Debug)]
pub(crate) struct MemberArgs {
    #[command(subcommand)]
    command: MemberCommand,
}

#[derive(Subcommand, Debug)]
enum MemberCommand {
    /// List the control-plane members with their role and addresses.
    List,
    /// Remove a control-plane member (stop its process afterwards).
    Remove {
        /// The member name (see `skiff member list`).
        name: String,
    },
}

/// `skiff snapshot`.
#[derive(Args, Debug)]
pub(crate) struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Save a backup of the whole cluster state to FILE (restore with `skiff server --restore`).
    Save {
        /// Where to write the backup.
        file: PathBuf,
    },
}

pub(crate) async fn member(conn: &Connection, a: MemberArgs) -> Result<()> {
    let client = conn.client()?;
    match a.command {
        MemberCommand::List => {
            let members: Vec<MemberView> = client.get_json(&ApiPath::api().lit("members")).await?;
            println!(
                "{:<16} {:<20} {:<8} {:<7} {:<22} API",
                "NAME", "ID", "ROLE", "LEADER", "PEER"
            );
            for m in members {
                println!(
                    "{:<16} {:<20} {:<8} {:<7} {:<22} {}",
                    m.name,
                    m.id,
                    m.role,
                    if m.leader { "*" } else { "" },
                    m.peer_addr,
                    m.api_url
                );
            }
        }
        MemberCommand::Remove { name } => {
            let m: MemberView = client
                .delete_path(&ApiPath::api().lit("members").seg("member name", &name)?)
                .await?;
            println!("member {} (id {}) removed; stop its process now", m.name, m.id);
        }
    }
    Ok(())
}

pub(crate) async fn snapshot(conn: &Connection, a: SnapshotArgs) -> Result<()> {
    let client = conn.client()?;
    match a.command {
        SnapshotCommand::Save { file } => {
            let bytes = client.get_bytes(&ApiPath::api().lit("snapshot")).await?;
            let (header, _) =
                skiff_api::backup::decode(&bytes).context("the server sent a damaged backup; try again")?;
            let tmp = file.with_extension("partial");
            std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))?;
            println!(
                "saved revision {} ({} bytes, sha256 {}) to {}",
                header.revision,
                bytes.len(),
                header.sha256,
                file.display()
            );
        }
    }
    Ok(())
}
