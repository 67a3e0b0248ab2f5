//! Runtime plugins: out-of-process runtimes (`skiff-oci` for `oci` containers) that the agent
//! starts, supervises and talks to over the runtime-plugin protocol v1 (docs/runtime-plugins.md):
//! HTTP/1.1 with JSON bodies on a Unix socket.
//!
//! Each configured plugin runs as `PROGRAM [ARGS…] serve --socket <data>/plugins/<kind>.sock
//! --state <data>/plugins/<kind>`, its output appended to `<data>/plugins/<kind>.log`. When it
//! exits, for whatever reason, the agent starts it again after a back-off (200 ms doubling to
//! 10 s, back to 200 ms after a minute of running); the plugin re-adopts the containers that kept
//! running under their shims. A call made while the plugin restarts waits a few seconds for it.
//! The plugin is killed when the agent's process ends; its containers are not.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use skiff_client::ApiPath;
pub(crate) use skiff_plugin_protocol::{ContainerInfo, ContainerSpec, ContainerState};
use skiff_plugin_protocol::{
    ErrorAnswer, ErrorCode, Handshake, ImageRequest, PROTOCOL_VERSION, StateAnswer, StopRequest,
};

/// Longest a call waits for a restarting plugin to answer again.
const WAIT_FOR_PLUGIN: Duration = Duration::from_secs(5);
/// Most a plugin's answer may hold (logs are capped at 1 MiB by the protocol).
const MAX_ANSWER: usize = 8 << 20;

/// A runtime plugin to run: `KIND=PROGRAM [ARGS…]` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimePluginConfig {
    /// The component kind it runs (`oci`).
    pub kind: String,
    /// The executable.
    pub program: PathBuf,
    /// Arguments placed before `serve --socket … --state …`.
    pub args: Vec<String>,
}

impl std::str::FromStr for RuntimePluginConfig {
    type Err = String;

    /// Parses `KIND=PROGRAM [ARGS…]`, e.g. `oci=/usr/bin/skiff-oci` or
    /// `oci=/usr/bin/skiff-oci --runc /usr/sbin/runc` (arguments split on whitespace).
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((kind, rest)) = s.split_once('=') else {
            return Err(format!(
                "{s:?} is not KIND=PROGRAM: e.g. --runtime-plugin oci=/usr/local/bin/skiff-oci"
            ));
        };
        let kind = kind.trim();
        if kind.is_empty()
            || kind == "wasm"
            || !kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "{kind:?} cannot name a plugin's component kind: use lowercase letters, digits and '-' (and not wasm, which the agent runs itself)"
            ));
        }
        let mut words = rest.split_whitespace();
        let Some(program) = words.next() else {
            return Err(format!("{s:?} names no program after {kind}="));
        };
        Ok(RuntimePluginConfig {
            kind: kind.to_owned(),
            program: PathBuf::from(program),
            args: words.map(str::to_owned).collect(),
        })
    }
}

/// A failed plugin call: the plugin's error code and message, or why it could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PluginError {
    /// The plugin's code (`ImageNotFound`, `RegistryUnreachable`, …), or `PluginUnavailable` /
    /// `PluginError` when it could not be asked or did not answer in the protocol.
    pub(crate) code: ErrorCode,
    /// What failed, in the plugin's words.
    pub(crate) message: String,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl PluginError {
    fn unavailable(kind: &str, why: impl std::fmt::Display) -> Self {
        PluginError {
            code: ErrorCode::PluginUnavailable,
            message: format!("the {kind} runtime plugin cannot be reached: {why}"),
        }
    }
}

/// One configured plugin: how to reach it and whether it answers.
#[derive(Debug)]
pub(crate) struct Plugin {
    config: RuntimePluginConfig,
    socket: PathBuf,
    state: PathBuf,
    log: PathBuf,
    /// Whether it answered a handshake (in this agent process).
    answered: std::sync::atomic::AtomicBool,
}

impl Plugin {
    /// A plugin kept under `dir` (`<data dir>/plugins`).
    pub(crate) fn new(config: RuntimePluginConfig, dir: &Path) -> Arc<Self> {
        Arc::new(Plugin {
            socket: dir.join(format!("{}.sock", config.kind)),
            state: dir.join(&config.kind),
            log: dir.join(format!("{}.log", config.kind)),
            config,
            answered: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The component kind it runs.
    pub(crate) fn kind(&self) -> &str {
        &self.config.kind
    }

    /// Whether it ever answered a handshake in this agent process (its kind is advertised).
    pub(crate) fn ever_up(&self) -> bool {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn call_once(
        &self,
        method: &Method,
        path: &str,
        body: &Option<serde_json::Value>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let go = async {
            let stream = tokio::net::UnixStream::connect(&self.socket)
                .await
                .map_err(|e| format!("{}: {e}", self.socket.display()))?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let bytes = match body {
                Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| e.to_string())?),
                None => Bytes::new(),
            };
            let req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(http::header::HOST, "plugin")
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(bytes))
                .map_err(|e| e.to_string())?;
            let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        match tokio::time::timeout(timeout, go).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer to {method} {path} within {}",
                humantime::format_duration(timeout)
            )),
        }
    }

    /// One call; while the plugin cannot be reached (restarting) it is retried for a few seconds.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        timeout: Duration,
    ) -> Result<Bytes, PluginError> {
        let deadline = Instant::now() + WAIT_FOR_PLUGIN;
        let (status, bytes) = loop {
            match self.call_once(&method, path, &body, timeout).await {
                Ok(r) => break r,
                Err(why) if Instant::now() >= deadline => {
                    return Err(PluginError::unavailable(&self.config.kind, why));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        if status.is_success() {
            return Ok(bytes);
        }
        Err(match serde_json::from_slice::<ErrorAnswer>(&bytes) {
            Ok(e) => PluginError {
                code: e.code,
                message: e.message,
            },
            Err(_) => PluginError {
                code: ErrorCode::PluginError,
                message: format!(
                    "{method} {path} answered {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
                ),
            },
        })
    }

    fn parse<T: for<'de> Deserialize<'de>>(&self, what: &str, bytes: &[u8]) -> Result<T, PluginError> {
        serde_json::from_slice(bytes).map_err(|e| PluginError {
            code: ErrorCode::PluginError,
            message: format!(
                "the {} plugin's answer to {what} does not parse: {e}",
                self.config.kind
            ),
        })
    }

    async fn handshake(&self) -> Result<Handshake, PluginError> {
        let bytes = self
            .call(Method::GET, "/v1/handshake", None, Duration::from_secs(5))
            .await?;
        self.parse("the handshake", &bytes)
    }

    /// Pulls `image` into the plugin's store (a no-op for an image it has, pinned by digest).
    pub(crate) async fn pull(&self, image: &str) -> Result<(), PluginError> {
        self.call(
            Method::POST,
            "/v1/images",
            Some(
                serde_json::to_value(ImageRequest {
                    image: Some(image.to_owned()),
                    ..Default::default()
                })
                .unwrap_or_default(),
            ),
            Duration::from_secs(600),
        )
        .await
        .map(drop)
    }

    /// Creates a container (its image pulled first).
    pub(crate) async fn create(&self, spec: &ContainerSpec) -> Result<(), PluginError> {
        let body = serde_json::to_value(spec).map_err(|e| PluginError {
            code: ErrorCode::PluginError,
            message: e.to_string(),
        })?;
        self.call(
            Method::POST,
            "/v1/containers",
            Some(body),
            Duration::from_secs(120),
        )
        .await
        .map(drop)
    }

    /// Starts a created container; its state once it runs (or already ended).
    pub(crate) async fn start(&self, id: &str) -> Result<ContainerState, PluginError> {
        let bytes = self
            .call(
                Method::POST,
                &container_path(id, "start")?,
                None,
                Duration::from_secs(30),
            )
            .await?;
        Ok(self.parse::<StateAnswer>("start", &bytes)?.state)
    }

    /// A container's spec and state.
    pub(crate) async fn inspect(&self, id: &str) -> Result<ContainerInfo, PluginError> {
        let bytes = self
            .call(
                Method::GET,
                &container_path(id, "")?,
                None,
                Duration::from_secs(10),
            )
            .await?;
        self.parse("inspect", &bytes)
    }

    /// Every container the plugin knows.
    pub(crate) async fn list(&self) -> Result<Vec<ContainerInfo>, PluginError> {
        let bytes = self
            .call(Method::GET, "/v1/containers", None, Duration::from_secs(30))
            .await?;
        self.parse("list", &bytes)
    }

    /// The container's output (the newest 1 MiB).
    pub(crate) async fn logs(&self, id: &str) -> Result<String, PluginError> {
        let bytes = self
            .call(
                Method::GET,
                &container_path(id, "logs")?,
                None,
                Duration::from_secs(10),
            )
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Stops a container (TERM, then KILL after `grace`) and removes it with its files.
    pub(crate) async fn stop_and_remove(&self, id: &str, grace: Duration) -> Result<(), PluginError> {
        let stopped = self
            .call(
                Method::POST,
                &container_path(id, "stop")?,
                Some(
                    serde_json::to_value(StopRequest {
                        grace_millis: Some(grace.as_millis() as u64),
                    })
                    .unwrap_or_default(),
                ),
                grace + Duration::from_secs(15),
            )
            .await;
        match stopped {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::ContainerNotFound => return Ok(()),
            Err(e) => {
                tracing::warn!(container = id, error = %e, "stop failed; removing the container anyway")
            }
        }
        match self
            .call(
                Method::DELETE,
                &container_path(id, "")?,
                None,
                Duration::from_secs(30),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::ContainerNotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs the plugin until `shutdown`, starting it again whenever it exits.
    pub(crate) async fn supervise(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let kind = self.config.kind.clone();
        let mut delay = Duration::from_millis(200);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let started = Instant::now();
            match self.spawn() {
                Ok(mut child) => {
                    let pid = child.id();
                    // Wait for its handshake (or for it to die trying).
                    let ready = tokio::select! {
                        h = self.await_handshake() => Some(h),
                        _ = child.wait() => None,
                    };
                    match ready {
                        Some(Ok(h)) if h.protocol == PROTOCOL_VERSION && h.kinds.contains(&kind) => {
                            tracing::info!(plugin = %kind, pid, name = %h.name, version = %h.version, "runtime plugin ready");
                            self.answered.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        Some(Ok(h)) => {
                            tracing::error!(
                                plugin = %kind,
                                protocol = h.protocol,
                                kinds = ?h.kinds,
                                "runtime plugin refused: it must speak protocol {PROTOCOL_VERSION} and run kind {kind}; fix --runtime-plugin"
                            );
                            let _ = child.start_kill();
                        }
                        Some(Err(e)) => {
                            tracing::warn!(plugin = %kind, error = %e, log = %self.log.display(), "runtime plugin did not answer its handshake; restarting it");
                            let _ = child.start_kill();
                        }
                        None => {}
                    }
                    let status = tokio::select! {
                        s = child.wait() => Some(s),
                        _ = shutdown.changed() => None,
                    };
                    match status {
                        None => {
                            let _ = child.kill().await;
                            return;
                        }
                        Some(s) => tracing::warn!(
                            plugin = %kind,
                            pid,
                            status = ?s.ok(),
                            log = %self.log.display(),
                            "runtime plugin exited; starting it again (its containers keep running)"
                        ),
                    }
                }
                Err(e) => {
                    tracing::error!(plugin = %kind, program = %self.config.program.display(), error = %e, "cannot start the runtime plugin");
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                delay = Duration::from_millis(200);
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => {}
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        if let Some(dir) = self.socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::create_dir_all(&self.state)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        tokio::process::Command::new(&self.config.program)
            .args(&self.config.args)
            .arg("serve")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state")
            .arg(&self.state)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
    }

    async fn await_handshake(&self) -> Result<Handshake, PluginError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.handshake().await {
                Ok(h) => return Ok(h),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

/// `/v1/containers/{id}[/{action}]`, the id encoded like every path segment.
fn container_path(id: &str, action: &'static str) -> Result<String, PluginError> {
    let path = ApiPath::root()
        .lit("v1/containers")
        .seg("container id", id)
        .map_err(|e| PluginError {
            code: ErrorCode::InvalidContainerId,
            message: e.to_string(),
        })?;
    Ok(if action.is_empty() {
        path.to_string()
    } else {
        path.lit(action).to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_flags_parse_and_bad_ones_say_the_form() {
        let p: RuntimePluginConfig = "oci=/usr/bin/skiff-oci --runc /sbin/runc".parse().unwrap();
        assert_eq!(p.kind, "oci");
        assert_eq!(p.program, PathBuf::from("/usr/bin/skiff-oci"));
        assert_eq!(p.args, ["--runc", "/sbin/runc"]);
        assert!(
            "skiff-oci"
                .parse::<RuntimePluginConfig>()
                .unwrap_err()
                .contains("KIND=PROGRAM")
        );
        assert!(
            "wasm=/x"
                .parse::<RuntimePluginConfig>()
                .unwrap_err()
                .contains("not wasm")
        );
        assert!(
            "oci="
                .parse::<RuntimePluginConfig>()
                .unwrap_err()
                .contains("no program")
        );
    }
}
