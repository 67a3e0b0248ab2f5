//! The `skiff` command: `skiff up` runs a one-node cluster; the other verbs are API clients.
//!
//! A library so that one [`main`] serves both binaries built from it: `skiff` (this package's
//! `src/main.rs`) and the copy the end-to-end tests run (`tests/e2e`, package `skiff-e2e`).
mod auth;
mod cluster;
mod config;
mod functions;
mod keyvalue;
mod label;
mod node;
mod output;
mod push;
mod rollout;
mod token;
mod up;
mod verbs;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Skiff: a lightweight, WebAssembly-first orchestrator.
#[derive(Parser, Debug)]
#[command(name = "skiff", version, about, propagate_version = true)]
struct Cli {
    /// API server URL (default: from the config file, else http://127.0.0.1:7070).
    #[arg(long, global = true, env = "SKIFF_SERVER")]
    server: Option<String>,
    /// Bearer token (default: from the config file).
    #[arg(long, global = true, env = "SKIFF_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Client config file with `server:` and `token:` (default: ./.skiff/client.yaml, then
    /// ~/.skiff/client.yaml).
    #[arg(long, global = true, env = "SKIFF_CONFIG")]
    config: Option<PathBuf>,
    /// The cluster CA certificate for `https://` server URLs (`<state dir>/pki/ca.crt`; default:
    /// from the config file).
    #[arg(long, global = true, env = "SKIFF_CA")]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a one-node cluster (control plane + worker + gateway) in this process.
    Up(up::UpArgs),
    /// Run a control node only (API, state, controllers, scheduler).
    Server(up::ServerArgs),
    /// Run a worker that joins the cluster at --server with --token.
    Agent(up::AgentArgs),
    /// Run a standalone gateway for the cluster at --server with --token.
    Gateway(up::GatewayArgs),
    /// Upload a wasm component to the artifact store; prints its sha256 digest.
    Push(push::PushArgs),
    /// Create or update the objects in manifests (all or nothing).
    Apply(verbs::ApplyArgs),
    /// List objects, or show one.
    Get(verbs::GetArgs),
    /// Show one object in detail, with its status and related objects.
    Describe(verbs::DescribeArgs),
    /// Delete objects named on the command line or in manifests.
    Delete(verbs::DeleteArgs),
    /// Print the captured output of a pod (or of a function's pods: fn/NAME).
    Logs(verbs::LogsArgs),
    /// Publish an event to a topic (committed before this returns).
    Publish(functions::PublishArgs),
    /// Call a function once and print its answer: `skiff invoke fn/NAME --data '{...}'`.
    Invoke(functions::InvokeArgs),
    /// Key-value stores: get, set, delete, ls, incr.
    Kv(keyvalue::KvArgs),
    /// Change the number of replicas of a deployment.
    Scale(verbs::ScaleArgs),
    /// Add, change or remove labels of an object (`key=value`, `key-`).
    Label(label::LabelArgs),
    /// Deployment rollouts: status, history, undo, pause, resume, restart.
    Rollout(rollout::RolloutArgs),
    /// Control-plane members: list, remove.
    Member(cluster::MemberArgs),
    /// Cluster state backups: save.
    Snapshot(cluster::SnapshotArgs),
    /// Worker nodes: cordon, uncordon, drain.
    Node(node::NodeArgs),
    /// Join tokens for agents and gateways: create, list, delete (revoke).
    Token(token::TokenArgs),
    /// API tokens bound to roles: `skiff auth token create --role view -n team-a --ttl 30d`.
    Auth(auth::AuthArgs),
    /// The audit log of the control node: every write and every refused request.
    Audit(auth::AuditArgs),
}

/// Parses the command line, runs the verb it names and says how it went (errors are printed).
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let conn = config::Connection {
            server: cli.server,
            token: cli.token,
            config: cli.config,
            ca: cli.ca,
        };
        match cli.command {
            Command::Up(a) => up::run(a).await,
            Command::Server(a) => up::server(&conn, a).await,
            Command::Agent(a) => up::agent(&conn, a).await,
            Command::Gateway(a) => up::gateway(&conn, a).await,
            Command::Push(a) => push::push(&conn, a).await,
            Command::Apply(a) => verbs::apply(&conn, a).await,
            Command::Get(a) => verbs::get(&conn, a).await,
            Command::Describe(a) => verbs::describe(&conn, a).await,
            Command::Delete(a) => verbs::delete(&conn, a).await,
            Command::Logs(a) => verbs::logs(&conn, a).await,
            Command::Publish(a) => functions::publish(&conn, a).await,
            Command::Invoke(a) => functions::invoke(&conn, a).await,
            Command::Kv(a) => keyvalue::kv(&conn, a).await,
            Command::Scale(a) => verbs::scale(&conn, a).await,
            Command::Rollout(a) => rollout::rollout(&conn, a).await,
            Command::Label(a) => label::label(&conn, a).await,
            Command::Member(a) => cluster::member(&conn, a).await,
            Command::Snapshot(a) => cluster::snapshot(&conn, a).await,
            Command::Node(a) => node::node(&conn, a).await,
            Command::Token(a) => token::token(&conn, a).await,
            Command::Auth(a) => auth::auth(&conn, a).await,
            Command::Audit(a) => auth::audit(&conn, a).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
