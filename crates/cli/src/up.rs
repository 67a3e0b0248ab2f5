//! Server roles: `skiff up` (control plane, worker and gateway in one process), and each role on its
//! own — `skiff server`, `skiff agent`, `skiff gateway` — through the same APIs a cluster uses.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use http_body_util::BodyExt;
use skiff_gateway::{BoxError, GatewayConfig, LocalUpstream};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ClientFile, Connection, write_client_file};

/// How a control member's API is reached, its certificates live and its disk is kept (`skiff up`
/// and `skiff server`).
#[derive(Args, Debug, Clone)]
pub(crate) struct MemberFlags {
    /// Also answer plain HTTP on the API port (a bearer token is then accepted over it only from
    /// loopback clients). By default the API speaks HTTPS only; client.yaml carries the CA.
    #[arg(long)]
    plain_http: bool,
    /// How long agents' and gateways' certificates are valid (`30d`, `12h`); they are renewed
    /// two thirds into it while they serve.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    node_cert_lifetime: std::time::Duration,
    /// How long this control member's own certificate is valid (`30d`); it renews it with the
    /// cluster CA two thirds into that.
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    member_cert_lifetime: std::time::Duration,
    /// Free space kept where the state lives (bytes, or 64Mi, 1Gi): below it, writes other
    /// than deletes are refused with 507 DiskFull until space returns. 0 turns the check off.
    #[arg(long, default_value = "64Mi", value_name = "SIZE")]
    min_free_space: skiff_api::ByteSize,
    /// How long an uploaded component no object references is kept before it is deleted from
    /// this member's artifact store (`1h`, `10m`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    artifact_grace: std::time::Duration,
}

impl MemberFlags {
    fn apply(&self, config: &mut skiff_control::ControlConfig) {
        config.plain_http = self.plain_http;
        config.node_cert_lifetime = self.node_cert_lifetime;
        config.member_cert_lifetime = self.member_cert_lifetime;
        config.min_free_bytes = self.min_free_space.0;
        config.artifact_grace = self.artifact_grace;
        // Look a few times per grace period, at most once a minute.
        config.artifact_gc_every = (self.artifact_grace / 4).min(std::time::Duration::from_secs(60));
    }
}

/// How a worker runs pods: runtime plugins, container ports, restart back-off (`skiff up` and
/// `skiff agent`).
#[derive(Args, Debug, Clone)]
pub(crate) struct RuntimeFlags {
    /// Run a runtime plugin for a component kind, `KIND=PROGRAM [ARGS…]`, e.g.
    /// `oci=/usr/local/bin/skiff-oci` for OCI containers (repeatable).
    #[arg(long = "runtime-plugin", value_name = "KIND=PROGRAM")]
    runtime_plugins: Vec<skiff_agent::RuntimePluginConfig>,
    /// Ports handed to containers as PORT, `FIRST-LAST`.
    #[arg(long, value_name = "FIRST-LAST", default_value = "30000-32767", value_parser = parse_port_range)]
    container_ports: std::ops::RangeInclusive<u16>,
    /// First wait before a failed pod or container is restarted (doubled on each restart in a
    /// row, at most 5m).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    restart_backoff: skiff_api::DurationValue,
    /// The most linear memory one wasm instance may have (at most 4Gi); pods with a component
    /// asking more are placed on other nodes.
    #[arg(long, value_name = "SIZE", default_value = "256Mi", value_parser = parse_instance_memory)]
    max_instance_memory: skiff_api::ByteSize,
    /// Wasm instances the node keeps slots for at once (the instance pool); each slot reserves
    /// address space, not memory, until an instance uses it.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    instance_pool: u32,
}

fn parse_instance_memory(s: &str) -> Result<skiff_api::ByteSize, String> {
    let b: skiff_api::ByteSize = s.parse().map_err(|e| format!("{e}"))?;
    if b.0 == 0 || b.0 > skiff_agent::MAX_INSTANCE_MEMORY {
        return Err(format!(
            "{s:?}: give a size from 1Mi to 4Gi (what a 32-bit wasm memory can address)"
        ));
    }
    Ok(b)
}

fn parse_port_range(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let bad = || format!("{s:?} is not a port range: give FIRST-LAST, e.g. 30000-32767");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a == 0 || a > b {
        return Err(format!(
            "{s:?}: the first port must be 1 or more and not above the last"
        ));
    }
    Ok(a..=b)
}

/// Arguments of `skiff up`.
#[derive(Args, Debug)]
pub(crate) struct UpArgs {
    /// State directory (created if missing; reused on restart).
    #[arg(long, default_value = ".skiff")]
    dir: PathBuf,
    /// Address of the REST + watch API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    api: SocketAddr,
    #[command(flatten)]
    access: MemberFlags,
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
    #[command(flatten)]
    runtime: RuntimeFlags,
    #[command(flatten)]
    ingress: IngressFlags,
    /// Cron triggers go by the RFC 3339 time in this file instead of the system clock (tests).
    #[arg(long, hide = true, env = "SKIFF_CLOCK_FILE", value_name = "FILE")]
    clock_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_parser = ["pretty", "json"], default_value = "pretty")]
    log_format: String,
}

/// Arguments of `skiff server` (a control node without a worker or gateway).
#[derive(Args, Debug)]
pub(crate) struct ServerArgs {
    /// State directory.
    #[arg(long, default_value = ".skiff")]
    dir: PathBuf,
    /// Address of the REST + watch API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    api: SocketAddr,
    #[command(flatten)]
    access: MemberFlags,
    /// URL other control nodes forward writes to (default: https://<api address>).
    #[arg(long)]
    advertise_api: Option<String>,
    /// Address of the peer port (raft and joins, mutual TLS with the cluster CA).
    #[arg(long, default_value = "127.0.0.1:7443")]
    peer_listen: SocketAddr,
    /// Peer address other control nodes dial (default: the --peer-listen address).
    #[arg(long)]
    advertise_peer: Option<String>,
    /// This member's name, unique in the cluster.
    #[arg(long, default_value = "control-1")]
    name: String,
    /// Join the cluster of the control node whose peer port is at HOST:PORT (the first start
    /// only; afterwards the state dir knows its cluster).
    #[arg(long, value_name = "HOST:PORT")]
    join: Option<String>,
    /// The join token (`join.token` in a member's state dir); `--token` works too.
    #[arg(long, env = "SKIFF_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// Start a new cluster from a backup made by `skiff snapshot save` (needs an empty --dir).
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
    /// Take a Raft snapshot and compact the log every N applied entries (keeps N/5 behind it).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..))]
    raft_snapshot_every: u64,
    /// Cron triggers go by the RFC 3339 time in this file instead of the system clock (tests).
    #[arg(long, hide = true, env = "SKIFF_CLOCK_FILE", value_name = "FILE")]
    clock_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_parser = ["pretty", "json"], default_value = "pretty")]
    log_format: String,
}

/// Arguments of `skiff agent` (a worker that joins the cluster at --server with the join token
/// --token; afterwards its node certificate under --dir identifies it).
#[derive(Args, Debug)]
pub(crate) struct AgentArgs {
    /// Local state directory (node certificate, assigned pods, artifact and compiled-code caches).
    #[arg(long, default_value = ".skiff-agent")]
    dir: PathBuf,
    /// Node name (a DNS label, unique in the cluster).
    #[arg(long, alias = "node-name")]
    name: String,
    /// Extra node labels, `key=value` separated by commas.
    #[arg(long, value_name = "K=V,...")]
    labels: Option<String>,
    /// Taints set when the node first registers, `key[=value]:NoSchedule|NoExecute` separated
    /// by commas (afterwards the node's spec is the operator's).
    #[arg(long, value_name = "K=V:EFFECT,...")]
    taints: Option<String>,
    /// Memory the node offers to pods (`512Mi`, `4Gi`).
    #[arg(long, default_value = "1Gi")]
    memory: skiff_api::ByteSize,
    /// CPU the node offers to pods' requests (`2`, `1500m`; default: the machine's core count).
    #[arg(long)]
    cpu: Option<skiff_api::Millicores>,
    /// Most pods the node runs at once.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Address of the data plane listener (mutual TLS).
    #[arg(long, default_value = "127.0.0.1:7071")]
    data_plane: SocketAddr,
    /// URL other processes use to reach the data plane (default: https://<data-plane address>).
    #[arg(long)]
    advertise: Option<String>,
    #[command(flatten)]
    runtime: RuntimeFlags,
    /// Log format.
    #[arg(long, value_parser = ["pretty", "json"], default_value = "pretty")]
    log_format: String,
}

/// Limits of the gateway's listener.
#[derive(Args, Debug, Clone)]
pub(crate) struct IngressFlags {
    /// Largest request body the gateway forwards (bytes, or 512Ki, 16Mi, 1Gi); larger is
    /// answered 413.
    #[arg(long, default_value = "16Mi", value_name = "SIZE")]
    max_body_size: skiff_api::ByteSize,
}

impl IngressFlags {
    fn apply(&self, config: &mut GatewayConfig) {
        config.max_body_bytes = self.max_body_size.0;
    }
}

/// Arguments of `skiff gateway` (a standalone ingress that joins with --token).
#[derive(Args, Debug)]
pub(crate) struct GatewayArgs {
    /// Address of the HTTP listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Local state directory (the gateway's node certificate).
    #[arg(long, default_value = ".skiff-gateway")]
    dir: PathBuf,
    /// The gateway's name (a DNS label).
    #[arg(long, default_value = "gateway")]
    name: String,
    #[command(flatten)]
    ingress: IngressFlags,
    /// Log format.
    #[arg(long, value_parser = ["pretty", "json"], default_value = "pretty")]
    log_format: String,
}

/// Parses `k=v,k2=v2` into labels.
fn parse_labels(s: Option<&str>) -> Result<std::collections::BTreeMap<String, String>> {
    let mut labels = std::collections::BTreeMap::new();
    for pair in s
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--labels: {pair:?} is not key=value"))?;
        if let Some(problem) = skiff_api::label_problem(k, v) {
            anyhow::bail!("--labels: {pair:?}: {problem}");
        }
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(labels)
}

/// Parses `k=v:Effect,k2:Effect` into taints.
fn parse_taints(s: Option<&str>) -> Result<Vec<skiff_api::Taint>> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<skiff_api::Taint>()
                .map_err(|e| anyhow::anyhow!("--taints: {t:?}: {e}"))
        })
        .collect()
}

/// The node certificate kept in `dir`, or one obtained by joining; waits while no control node
/// answers (a worker may start before the control plane).
async fn credentials(
    dir: &Path,
    server: &str,
    token: Option<&str>,
    identity: &skiff_pki::Identity,
) -> Result<skiff_pki::NodeCert> {
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        match skiff_client::node_credentials(dir, server, token, identity).await {
            Ok(c) => return Ok(c),
            Err(
                e @ (skiff_client::ClientError::Unreachable { .. }
                | skiff_client::ClientError::Timeout { .. }),
            ) => {
                tracing::warn!(error = %e, "cannot join yet: no control node answers; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e).context(format!("{identity} cannot join the cluster at {server}")),
        }
    }
}

/// Starts logging for a long-running process, and raises its open-file limit (every
/// connection a listener holds is a descriptor).
fn init_tracing(format: &str) {
    init_logs(format);
    let fds = skiff_listen::raise_fd_limit();
    tracing::debug!(open_file_limit = ?fds, "open-file limit");
}

fn init_logs(format: &str) {
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

/// Binds a listener, or says which flag picks another address.
async fn bind(addr: SocketAddr, flag: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}: is another skiff running? pick another address with --{flag}")
    })
}

fn state_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating state dir {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("state dir {}", dir.display()))
}

/// A running control plane: API server task, controllers, and what clients need to connect.
struct Control {
    plane: skiff_control::ControlPlane,
    client: ClientFile,
    tasks: Vec<JoinHandle<()>>,
}

async fn start_control(
    config: skiff_control::ControlConfig,
    listener: TcpListener,
    stop: &watch::Receiver<bool>,
) -> Result<Control> {
    let dir = config.data_dir.clone();
    let plane = skiff_control::ControlPlane::open(config).await?;
    let client = ClientFile {
        server: format!("https://{}", listener.local_addr()?),
        token: plane.admin_token().to_owned(),
        ca: Some(dir.join("pki").join("ca.crt")),
    };
    write_client_file(&dir.join("client.yaml"), &client)?;
    let controllers = plane.spawn_controllers(stop.clone());
    let api = tokio::spawn(plane.clone().serve_api(listener, stop.clone()));
    Ok(Control {
        plane,
        client,
        tasks: vec![api, controllers],
    })
}

struct AgentSetup<'a> {
    name: &'a str,
    server: &'a str,
    token: Option<&'a str>,
    dir: PathBuf,
    labels: std::collections::BTreeMap<String, String>,
    taints: Vec<skiff_api::Taint>,
    capacity: Option<skiff_api::NodeCapacity>,
    advertise: Option<String>,
    runtime: RuntimeFlags,
}

async fn start_agent(
    setup: AgentSetup<'_>,
    listener: TcpListener,
    stop: &watch::Receiver<bool>,
) -> Result<(skiff_agent::Agent, JoinHandle<()>)> {
    let address = setup
        .advertise
        .unwrap_or(format!("https://{}", listener.local_addr()?));
    let mut config =
        skiff_agent::AgentConfig::new(setup.name, setup.server, setup.token.unwrap_or(""), setup.dir);
    config.labels = setup.labels;
    config.taints = setup.taints;
    if let Some(c) = setup.capacity {
        config.capacity = c;
    }
    config.capacity.instance_memory = setup.runtime.max_instance_memory;
    config.instance_pool = setup.runtime.instance_pool;
    config.runtime_plugins = setup.runtime.runtime_plugins;
    config.container_ports = setup.runtime.container_ports;
    config.restart_backoff = setup.runtime.restart_backoff.0;
    let agent = loop {
        match skiff_agent::Agent::start(config.clone(), address.clone()).await {
            Ok(a) => break a,
            Err(skiff_agent::AgentError::Client(
                e @ (skiff_client::ClientError::Unreachable { .. }
                | skiff_client::ClientError::Timeout { .. }),
            )) => {
                tracing::warn!(error = %e, "cannot join yet: no control node answers; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).context(format!("agent {} cannot start", setup.name)),
        }
    };
    let task = tokio::spawn(agent.clone().run(listener, stop.clone()));
    Ok((agent, task))
}

fn start_gateway(
    config: GatewayConfig,
    listener: TcpListener,
    stop: &watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let gateway = skiff_gateway::Gateway::start(config)?;
    Ok(tokio::spawn(gateway.run(listener, stop.clone())))
}

/// Waits for SIGINT/SIGTERM, then stops every task.
async fn run_until_signal(stop_tx: watch::Sender<bool>, tasks: Vec<JoinHandle<()>>) {
    wait_for_signal().await;
    tracing::info!("shutting down");
    stop_all(stop_tx, tasks).await;
}

async fn stop_all(stop_tx: watch::Sender<bool>, tasks: Vec<JoinHandle<()>>) {
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
}

/// [`run_until_signal`] for a process holding a control member: when the member's Raft driver
/// stops on an error (fail-stop), everything stops and the process exits non-zero.
async fn run_member_until_signal(
    plane: &skiff_control::ControlPlane,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
) -> Result<()> {
    let failure = tokio::select! {
        () = wait_for_signal() => None,
        why = plane.raft_stopped() => Some(why.unwrap_or_else(|| "it was stopped".into())),
    };
    match failure {
        None => {
            tracing::info!("shutting down");
            stop_all(stop_tx, tasks).await;
            plane.shutdown();
            Ok(())
        }
        Some(why) => {
            tracing::error!(error = %why, "this control member's Raft driver stopped; exiting");
            stop_all(stop_tx, tasks).await;
            anyhow::bail!(
                "the control member stopped: {why}; check the disk and the log, then start it again"
            )
        }
    }
}

pub(crate) async fn run(args: UpArgs) -> Result<()> {
    init_tracing(&args.log_format);
    let dir = state_dir(&args.dir)?;
    // Bind every socket first: a port in use is reported before anything starts.
    let api_listener = bind(args.api, "api").await?;
    let dp_listener = bind(args.data_plane, "data-plane").await?;
    let gw_listener = bind(args.gateway, "gateway").await?;
    let gateway_url = format!("http://{}", gw_listener.local_addr()?);

    let (stop_tx, stop) = watch::channel(false);
    let mut config = skiff_control::ControlConfig::new(&dir);
    config.clock_file = args.clock_file.clone();
    args.access.apply(&mut config);
    let control = start_control(config, api_listener, &stop).await?;
    let mut tasks = control.tasks;
    // The worker and the gateway join their own control plane like remote ones would.
    let join_token = control.plane.join_token()?;
    let (agent, agent_task) = start_agent(
        AgentSetup {
            name: &args.node_name,
            server: &control.client.server,
            token: Some(&join_token),
            dir: dir.join("agent"),
            labels: Default::default(),
            taints: Vec::new(),
            capacity: None,
            advertise: None,
            runtime: args.runtime.clone(),
        },
        dp_listener,
        &stop,
    )
    .await?;
    tasks.push(agent_task);

    // The gateway calls this process's data plane directly instead of over loopback.
    let local_plane = agent.data_plane();
    let local: LocalUpstream = Arc::new(move |req| {
        let dp = local_plane.clone();
        Box::pin(async move {
            dp.serve(req)
                .await
                .map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync())
        })
    });
    let gw_node = credentials(
        &dir.join("gateway").join("pki"),
        &control.client.server,
        Some(&join_token),
        &skiff_pki::Identity::gateway("gateway"),
    )
    .await?;
    let mut gw_config = GatewayConfig::new(&control.client.server, gw_node);
    gw_config.local = HashMap::from([(args.node_name.clone(), local)]);
    gw_config.pki_dir = Some(dir.join("gateway").join("pki"));
    args.ingress.apply(&mut gw_config);
    tasks.push(start_gateway(gw_config, gw_listener, &stop)?);

    println!("skiff is up");
    println!(
        "  api:      {}   (token in {})",
        control.client.server,
        dir.join("admin.token").display()
    );
    println!("  gateway:  {gateway_url}");
    println!("  state:    {}", dir.display());
    println!(
        "  add a worker:  skiff agent --server {} --token \"$(skiff token create)\" --name NAME",
        control.client.server
    );
    if !args.apply.is_empty() {
        let conn = Connection {
            server: Some(control.client.server.clone()),
            token: Some(control.client.token.clone()),
            config: None,
            ca: control.client.ca.clone(),
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
    run_member_until_signal(&control.plane, stop_tx, tasks).await
}

pub(crate) async fn server(conn: &Connection, args: ServerArgs) -> Result<()> {
    init_tracing(&args.log_format);
    let dir = state_dir(&args.dir)?;
    let listener = bind(args.api, "api").await?;
    let (stop_tx, stop) = watch::channel(false);
    let peer_hint = args
        .advertise_peer
        .clone()
        .unwrap_or_else(|| args.peer_listen.to_string());
    let join = match args.join {
        Some(server) => {
            let token = args.join_token.or_else(|| conn.token.clone()).context(
                "--join needs the cluster's join token: pass --join-token (it is in join.token in a member's state dir)",
            )?;
            Some(skiff_control::JoinConfig { server, token })
        }
        None => None,
    };
    let mut config = skiff_control::ControlConfig::new(&dir);
    config.restore = args.restore;
    config.clock_file = args.clock_file;
    args.access.apply(&mut config);
    config.snapshot_every = args.raft_snapshot_every;
    config.keep_entries = (args.raft_snapshot_every / 5).max(1);
    config.cluster = Some(skiff_control::ClusterConfig {
        name: args.name,
        peer_listen: args.peer_listen,
        peer_advertise: args.advertise_peer,
        api_url: args
            .advertise_api
            .unwrap_or_else(|| format!("https://{}", args.api)),
        join,
    });
    let control = start_control(config, listener, &stop).await?;
    println!("skiff server {} is up", control.plane.member_name());
    println!(
        "  api:    {}   (token in {})",
        control.client.server,
        dir.join("admin.token").display()
    );
    println!(
        "  add a control node:  skiff server --join {} --join-token \"$(cat {})\" --name NAME ...",
        peer_hint,
        dir.join("join.token").display()
    );
    println!(
        "  add a worker:  skiff agent --server {} --token \"$(skiff token create)\" --name NAME",
        control.client.server
    );
    run_member_until_signal(&control.plane, stop_tx, control.tasks).await
}

pub(crate) async fn agent(conn: &Connection, args: AgentArgs) -> Result<()> {
    init_tracing(&args.log_format);
    let (server, token) = conn.server_and_join_token();
    let labels = parse_labels(args.labels.as_deref())?;
    let taints = parse_taints(args.taints.as_deref())?;
    let dir = state_dir(&args.dir)?;
    let listener = bind(args.data_plane, "data-plane").await?;
    let (stop_tx, stop) = watch::channel(false);
    let (agent, task) = start_agent(
        AgentSetup {
            name: &args.name,
            server: &server,
            token: token.as_deref(),
            dir,
            labels,
            taints,
            capacity: Some(skiff_api::NodeCapacity {
                memory: args.memory,
                pods: args.max_pods,
                cpu: args.cpu.unwrap_or(skiff_api::Millicores(
                    std::thread::available_parallelism().map_or(1, |n| n.get() as u64) * 1000,
                )),
                instance_memory: args.runtime.max_instance_memory,
            }),
            advertise: args.advertise,
            runtime: args.runtime,
        },
        listener,
        &stop,
    )
    .await?;
    println!(
        "skiff agent {} is up, serving pods on {} (mutual TLS)",
        agent.node_name(),
        args.data_plane
    );
    run_until_signal(stop_tx, vec![task]).await;
    Ok(())
}

pub(crate) async fn gateway(conn: &Connection, args: GatewayArgs) -> Result<()> {
    init_tracing(&args.log_format);
    let (server, token) = conn.server_and_join_token();
    let dir = state_dir(&args.dir)?;
    let listener = bind(args.listen, "listen").await?;
    let node = credentials(
        &dir.join("pki"),
        &server,
        token.as_deref(),
        &skiff_pki::Identity::gateway(&args.name),
    )
    .await?;
    let (stop_tx, stop) = watch::channel(false);
    let mut config = GatewayConfig::new(&server, node);
    config.pki_dir = Some(dir.join("pki"));
    args.ingress.apply(&mut config);
    let task = start_gateway(config, listener, &stop)?;
    println!("skiff gateway is up on http://{}", args.listen);
    run_until_signal(stop_tx, vec![task]).await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
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

#[cfg(test)]
mod tests {
    use super::{parse_labels, parse_taints};

    #[test]
    fn labels_and_taints_from_flags() {
        let l = parse_labels(Some("zone=a, site=north")).unwrap();
        assert_eq!(l.get("zone").map(String::as_str), Some("a"));
        assert_eq!(l.len(), 2);
        assert!(
            parse_labels(Some("zone"))
                .unwrap_err()
                .to_string()
                .contains("not key=value")
        );
        assert!(parse_labels(Some("zone=a b")).is_err());
        let t = parse_taints(Some("dedicated=edge:NoSchedule,gpu:NoExecute")).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].to_string(), "dedicated=edge:NoSchedule");
        assert!(
            parse_taints(Some("x:Sometimes"))
                .unwrap_err()
                .to_string()
                .contains("--taints")
        );
        assert!(parse_taints(None).unwrap().is_empty());
    }
}
