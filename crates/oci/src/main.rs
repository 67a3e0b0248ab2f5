//! `skiff-oci`: Skiff's OCI runtime plugin.
//!
//! - `skiff-oci serve --socket PATH --state DIR [--runc PATH] [--insecure-registry HOST:PORT]…
//!   [--user-namespace HOST_ID:SIZE] [--allow-setid] [--log-file-bytes N] [--log-files K]`
//!   answers the runtime-plugin protocol (docs/runtime-plugins.md) on a Unix socket (mode 0600).
//! - `skiff-oci shim DIR ID RUNC [--log-file-bytes N] [--log-files K]` is what `serve` starts for
//!   each container: it runs the bundle in DIR under runc, writes the output to `DIR/output.log`
//!   (capped and rotated) and records the exit in `DIR/exit`.
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
        /// Run containers in a user namespace: container ids 0..SIZE are host ids
        /// HOST_ID..HOST_ID+SIZE (e.g. 100000:65536), so container root is unprivileged on the host.
        #[arg(long = "user-namespace", value_name = "HOST_ID:SIZE", value_parser = skiff_oci::UserNamespace::parse)]
        user_namespace: Option<skiff_oci::UserNamespace>,
        /// Keep setuid and setgid bits of image files (stripped by default).
        #[arg(long = "allow-setid")]
        allow_setid: bool,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Run one container's bundle under runc and record its exit (started by `serve`).
    Shim {
        /// The bundle directory.
        dir: PathBuf,
        /// The container id.
        id: String,
        /// The runc executable.
        runc: PathBuf,
        #[command(flatten)]
        log: LogArgs,
    },
}

/// How much output each container keeps on disk.
#[derive(clap::Args, Debug)]
struct LogArgs {
    /// Largest output file of a container, in bytes, before it is rotated.
    #[arg(long = "log-file-bytes", default_value_t = skiff_oci::LogLimits::default().file_bytes)]
    file_bytes: u64,
    /// Output files kept per container (the current one included).
    #[arg(long = "log-files", default_value_t = skiff_oci::LogLimits::default().files, value_parser = clap::value_parser!(u32).range(1..))]
    files: u32,
}

impl LogArgs {
    fn limits(&self) -> skiff_oci::LogLimits {
        skiff_oci::LogLimits {
            file_bytes: self.file_bytes.max(1),
            files: self.files,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Shim { dir, id, runc, log } => {
            let code = skiff_oci::run_shim(&dir, &id, &runc, log.limits());
            ExitCode::from(u8::try_from(code).unwrap_or(255))
        }
        Cmd::Serve {
            socket,
            state,
            runc,
            insecure,
            user_namespace,
            allow_setid,
            log,
        } => match serve(
            socket,
            state,
            runc,
            insecure,
            skiff_oci::RuntimeOptions {
                user_namespace,
                keep_setid: allow_setid,
                log: log.limits(),
            },
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(
    socket: PathBuf,
    state: PathBuf,
    runc: PathBuf,
    insecure: Vec<String>,
    options: skiff_oci::RuntimeOptions,
) -> anyhow::Result<()> {
    use anyhow::Context;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    skiff_listen::raise_fd_limit();
    let shim = std::env::current_exe().context("finding this executable (it is also the shim)")?;
    let store = skiff_oci::ImageStore::open(state.join("images"), insecure)?;
    // The runtime makes the state directory private (0700) before any container is written.
    let runtime = skiff_oci::Runtime::with_options(&state, store, runc, shim, options)?;
    let adopted = runtime.list();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let _ = std::fs::remove_file(&socket);
        let listener = skiff_oci::plugin::bind(&socket)
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
