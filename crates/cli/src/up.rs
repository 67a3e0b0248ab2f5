//! `skiff up`: control plane, worker and gateway in one process, through the same APIs a cluster uses.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use http_body_util::BodyExt;
use skiff_gateway::{BoxError, GatewayConfig, LocalUpstream};

use crate::config::{ClientFile, write_client_file};

/// Arguments of `skiff up`.
#[derive(Args, Debug)]
pub(crate) struct UpArgs {
    /// State directory (created if missing; reused on restart).
    #[arg(long, default_value = ".skiff")]
    dir: PathBuf,
    /// Address of the REST + watch API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    api: SocketAddr,
    /// Address of the HTTP gateway.
    #[arg(long, default_value = "127.0.0.1:8080")]
    gateway: SocketAddr,
    /// Address of the worker's data plane.
    #[arg(long, default_value = "127.0.0.1:7071")]
    data_plane: SocketAddr,
    /// Name of the worker node.
    #[arg(long, default_value = "local")]
    node_name: String,
    /// Manifests (file, directory) to apply once the cluster is up.
    #[arg(long = "apply", value_name = "PATH")]
    apply: Vec<PathBuf>,
    /// Log format.
    #[arg(long, value_parser = ["pretty", "json"], default_value = "pretty")]
    log_format: String,
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,raft=warn,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub(crate) async fn run(args: UpArgs) -> Result<()> {
    init_tracing(&args.log_format);
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating state dir {}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("state dir {}", args.dir.display()))?;

    // Bind every socket first: a port in use is reported before anything starts.
    let bind = |addr: SocketAddr, what: &'static str| async move {
        tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} for the {what}: is another skiff running? pick another with --{what}"
            )
        })
    };
    let api_listener = bind(args.api, "api").await?;
    let dp_listener = bind(args.data_plane, "data-plane").await?;
    let gw_listener = bind(args.gateway, "gateway").await?;

    let plane = skiff_control::ControlPlane::open(skiff_control::ControlConfig::new(&dir)).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server_url = format!("http://{}", api_listener.local_addr()?);
    let token = plane.admin_token().to_owned();
    write_client_file(
        &dir.join("client.yaml"),
        &ClientFile {
            server: server_url.clone(),
            token: token.clone(),
        },
    )?;

    let controllers = plane.spawn_controllers(stop_rx.clone());
    let api = {
        let router = plane.router();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(api_listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "api server failed");
            }
        })
    };

    let data_plane_url = format!("http://{}", dp_listener.local_addr()?);
    let agent_config = skiff_agent::AgentConfig::new(&args.node_name, &server_url, &token, dir.join("agent"));
    let agent = skiff_agent::Agent::start(agent_config, data_plane_url).await?;
    let local_plane = agent.data_plane();
    let local: LocalUpstream = Arc::new(move |req| {
        let dp = local_plane.clone();
        Box::pin(async move {
            dp.serve(req)
                .await
                .map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync())
        })
    });
    let agent_task = tokio::spawn(agent.run(dp_listener, stop_rx.clone()));

    let mut gw_config = GatewayConfig::new(&server_url, &token);
    gw_config.local = HashMap::from([(args.node_name.clone(), local)]);
    let gateway_url = format!("http://{}", gw_listener.local_addr()?);
    let gateway = skiff_gateway::Gateway::start(gw_config)?;
    let gw_task = tokio::spawn(gateway.run(gw_listener, stop_rx.clone()));

    println!("skiff is up");
    println!(
        "  api:      {server_url}   (token in {})",
        dir.join("admin.token").display()
    );
    println!("  gateway:  {gateway_url}");
    println!("  state:    {}", dir.display());
    if !args.apply.is_empty() {
        let conn = crate::config::Connection {
            server: Some(server_url.clone()),
            token: Some(token.clone()),
            config: None,
        };
        crate::verbs::apply_paths(&conn, &args.apply).await?;
        println!("try:      curl {gateway_url}/");
    }
    let default_dir = std::env::current_dir()
        .map(|d| d.join(".skiff"))
        .ok()
        .and_then(|d| d.canonicalize().ok());
    if default_dir.as_deref() == Some(dir.as_path()) {
        println!("stop with Ctrl-C; from this directory, `skiff get pods` and friends find the cluster");
    } else {
        println!(
            "stop with Ctrl-C; inspect with `skiff --config {} get pods`",
            dir.join("client.yaml").display()
        );
    }

    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(api, agent_task, gw_task, controllers);
    plane.shutdown();
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
