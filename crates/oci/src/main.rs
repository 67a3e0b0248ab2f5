//! `skiff-oci`: Skiff's OCI runtime plugin.
//!
//! - `skiff-oci serve --socket PATH --state DIR [--runc PATH] [--insecure-registry HOST:PORT]…`
//!   answers the runtime-plugin protocol (docs/runtime-plugins.md) on a Unix socket.
//! - `skiff-oci shim DIR ID RUNC` is what `serve` starts for each container: it runs the bundle in
//!   DIR under runc, appends the output to `DIR/output.log` and records the exit in `DIR/exit`.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "skiff-oci", version, about = "Skiff's OCI runtime plugin")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Answer the runtime-plugin protocol on a Unix socket.
    Serve {
        /// The socket to listen on (replaced if it exists).
        #[arg(long)]
        socket: PathBuf,
        /// State: images and containers.
        #[arg(long)]
        state: PathBuf,
        /// The runc executable.
        #[arg(long, default_value = "runc")]
        runc: PathBuf,
        /// A registry (`host:port`) spoken to over plain HTTP (repeatable).
        #[arg(long = "insecure-registry")]
        insecure: Vec<String>,
    },
    /// Run one container's bundle under runc and record its exit (started by `serve`).
    Shim {
        /// The bundle directory.
        dir: PathBuf,
        /// The container id.
        id: String,
        /// The runc executable.
        runc: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Shim { dir, id, runc } => {
            let code = skiff_oci::run_shim(&dir, &id, &runc);
            ExitCode::from(u8::try_from(code).unwrap_or(255))
        }
        Cmd::Serve {
            socket,
            state,
            runc,
            insecure,
        } => match serve(socket, state, runc, insecure) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(socket: PathBuf, state: PathBuf, runc: PathBuf, insecure: Vec<String>) -> anyhow::Result<()> {
    use anyhow::Context;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let shim = std::env::current_exe().context("finding this executable (it is also the shim)")?;
    let store = skiff_oci::ImageStore::open(state.join("images"), insecure)?;
    let runtime = skiff_oci::Runtime::new(&state, store, runc, shim)?;
    let adopted = runtime.list();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket)
            .with_context(|| format!("listening on {}", socket.display()))?;
        tracing::info!(
            socket = %socket.display(),
            containers = adopted.len(),
            running = adopted.iter().filter(|(_, s)| matches!(s, skiff_oci::ContainerState::Running { .. })).count(),
            "skiff-oci serving (containers from a previous run re-adopted)"
        );
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(skiff_oci::plugin::serve(listener, runtime, stop_rx));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = parent_gone() => {
                tracing::warn!("the process that started skiff-oci is gone: stopping (containers keep running)");
            }
        }
        let _ = stop.send(true);
        let _ = server.await;
        let _ = std::fs::remove_file(&socket);
        Ok(())
    })
}

/// Resolves once this process's parent (the agent that started it) has exited, so a plugin
/// never outlives a killed agent; its containers keep running under their shims.
async fn parent_gone() {
    let parent = std::os::unix::process::parent_id();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if std::os::unix::process::parent_id() != parent {
            return;
        }
    }
}
