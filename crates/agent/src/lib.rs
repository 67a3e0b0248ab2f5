//! # skiff-agent: the worker
//!
//! An agent makes one machine a Skiff node. It registers a [`Node`](skiff_api::Node) and keeps its
//! heartbeat fresh, watches the pods bound to it through the same REST/watch API every client uses,
//! loads their components into the [`WasmRuntime`](skiff_runtime_wasm::WasmRuntime), reports their
//! status, and serves their HTTP traffic on one data-plane listener.
//!
//! ```no_run
//! # async fn demo() -> Result<(), skiff_agent::AgentError> {
//! let config = skiff_agent::AgentConfig::new("node-1", "http://127.0.0.1:7070", "TOKEN", "./.skiff/agent");
//! let agent = skiff_agent::Agent::start(config, "http://127.0.0.1:7071".into()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7071").await.unwrap();
//! let (_tx, shutdown) = tokio::sync::watch::channel(false);
//! agent.run(listener, shutdown).await;
//! # Ok(()) }
//! ```
//!
//! ## Core concepts
//! - [`Agent`] — one per node; cheap to clone.
//! - **Pod sync** — level-triggered: the informer's cache of this node's pods is the desired set;
//!   pods are started (artifact fetched, verified against its pinned digest and cached on disk,
//!   component compiled once and cached by the runtime) and stopped to match, keyed by pod uid so a re-created pod with the same
//!   name is a new pod. Status goes back as `Pending` → `Running` (ready) or `Failed` with a reason.
//! - **Pod lifecycle** — each pod has one driver task that owns its state machine (below); the
//!   pod registry only holds the drivers' handles and the pods being served.
//! - [`LocalPod`] — what [`Agent::pods`] reports: a pod being served, its uid, and when this agent
//!   process started it (unchanged for as long as the pod is not restarted).
//! - [`DataPlane`] — serves a request for a pod named in the `x-skiff-pod` header. The gateway calls
//!   it over HTTP, or directly when it runs in the same process.
//!
//! ## Pod lifecycle
//! A pod's life on the node is one explicit state machine: a pure `step(machine, event) ->
//! (machine, actions)` (module `lifecycle`, no I/O, times passed in the events), driven by one
//! task per pod (module `driver`) that performs the actions and turns what happens into events.
//!
//! ```text
//!            Start                      Started                 Hold
//!  (sync) ──────────► Starting ─────────────────► Running ──────────────► Held
//!                       │   ▲                    {ready,since} ◄───────────┘ Release
//!        StartFailed    │   │ BackOffElapsed        │ LivenessFailed, ContainerExited,
//!        (retryable)    ▼   │ (restarts + 1)        │ CommandExited (failure)
//!                     BackOff{until,attempt} ◄──────┘   under Always / OnFailure
//!
//!  not retryable, or restartPolicy Never ──► Failed      exit 0 (Completed) ──► Succeeded
//!  any state ── Delete (no longer assigned here) ──► Stopped
//! ```
//!
//! - **Events**: `Started`, `Compiling{component}`, `StartFailed(StartFailure)`, `ReadinessChanged`, `LivenessFailed`,
//!   `ContainerExited{code}`, `CommandExited{code}`, `BackOffElapsed`, `Delete`, `Hold` (no
//!   contact past `stopAfter`), `Release`.
//! - **Actions**: `Start`, `Serve` (publish to the data plane), `SetReady`, `Stop` (unpublish and
//!   remove containers, or abandon a command), `Report(status)`, `ScheduleRestart(after)`.
//! - **Restarts** wait `base · 2^n` (the agent's restart back-off, 10 s by default) up to 5 min,
//!   `n` going back to 0 after 10 min of running, while the pod reports `CrashLoopBackOff` with
//!   the next restart time; `status.restartCount` counts them.
//! - **Start failures** are typed (a kind per `status.reason`: `InvalidSpec`, `ConfigError`,
//!   `ArtifactDigestMismatch`, `InvalidComponent`, `CompileError`, `WorldMismatch`,
//!   `InstantiateError`, `ImagePullBackOff`, …); the kind says whether a retry may help. Those
//!   that cannot keep their reason and wait on the node with the same growing back-off
//!   (`StartBackOff`, no restart counted, the pod never replaced); under `Never`, and for
//!   commands, they fail the pod. While a start compiles, the pod reports `Compiling`.
//! - Wasm HTTP, function and container pods serve until stopped (probes and container exits end
//!   them); `world: command` pods run once to their exit. Both go through the same machine.
//! - The driver waits on its event queue, its start or run in progress, its probes and its
//!   back-off timer at once: deleting or holding a pod tells its driver, which stops it.
//!
//! ## Artifacts
//! A component comes from the cluster's artifact store (`wasm.digest`), from a URL pinned by
//! `wasm.digest`, or from an OCI registry (`wasm.image`, the distribution API over HTTPS, plain
//! HTTP for a registry on localhost). Bytes are verified before they are cached; a digest that
//! does not match fails the pod with reason `ArtifactDigestMismatch` and caches nothing. After a
//! pod stops, and every minute, artifacts no stored pod pins are removed with their compiled code.
//!
//! ## Offline autonomy
//! A worker keeps serving when no control node can be reached, and comes back by itself after a
//! reboot in that state:
//!
//! ```text
//!  informer (list+watch, synced) ──► assigned set ──► agent.redb (one transaction per change)
//!                                         │                 │
//!                                         ▼                 ▼ at start, before the control plane
//!                                     PodTable ◄──── stored pods + artifacts/<sha256>
//! ```
//!
//! - **Local store** — `<data dir>/agent.redb` holds the pods assigned to this node, whole, as last
//!   seen from the control plane, keyed by uid. The set is written before pods are started or
//!   stopped, so it always says what a restart should bring back. Artifacts stay in
//!   `<data dir>/artifacts/<sha256 hex>` for as long as a stored pod pins them; compiled code is a
//!   cache that can be rebuilt from them.
//! - **Start-up** — [`Agent::start`] opens the store and starts the stored pods from the artifact
//!   cache first, logging that it runs from local state; an unreachable control plane (or one that
//!   answers 5xx) does not stop it, and registration happens when [`Agent::run`] reaches it.
//!   A refusal (wrong token) still fails.
//! - **Disconnected** — the informer keeps its last view on errors and the agent only reconciles
//!   from a view that a successful list produced; "cannot list" never means "no pods". An agent
//!   that started offline reconciles nothing until its first list succeeds.
//! - **Reconnect** — reconciliation is keyed by uid: a pod that is still assigned and running
//!   keeps its handler, its start time and its `status.startTime`; a pod that is no longer
//!   assigned is stopped and dropped from the store; a new one is started.
//! - **Disconnection policy** — a pod with `spec.disconnect.stopAfter` is stopped once the agent
//!   has had no contact with the control plane for that long (default: never stopped); when
//!   contact returns, a pod still bound to the node starts again under the same uid (the
//!   `disconnect` module; the run loop calls it on every heartbeat).
//! - **Configuration** — `env[].valueFrom` (a ConfigMap or Secret key) is read through the API
//!   each time a pod starts and kept only in the running handler: the local store holds the pod
//!   as the API has it (the reference, never the value), so no Secret value is written to the
//!   node's disk. A pod that uses `valueFrom` therefore cannot start from local state while the
//!   control plane is unreachable; it starts at the first sync after contact returns. A missing
//!   object or key fails the pod with reason `ConfigError` and a message naming the reference.
//! - The store is closed when [`Agent::run`] returns, so one directory serves one agent at a time.
//!
//! ## Containers
//! Components with `oci` run as containers through a runtime plugin ([`RuntimePluginConfig`],
//! `--runtime-plugin oci=/path/to/skiff-oci`): the agent starts the plugin, restarts it whenever
//! it exits, and advertises its kind in the Node's `status.runtimes` so the scheduler only sends
//! containers here. A pod may mix wasm components and containers; they start and stop together,
//! and when its first component is a container the data plane relays the pod's traffic to the
//! port the container was given (`PORT`, from `--container-ports`). A container that exits is
//! handled per the pod's `restartPolicy` with the same back-off as a failing liveness probe; its
//! output is part of the pod's logs. Containers outlive the agent and the plugin and are taken
//! over when they come back.
#![deny(missing_docs)]

mod agent;
mod artifacts;
mod budgets;
mod containers;
mod dataplane;
mod disconnect;
mod driver;
mod egress;
mod error;
mod failure;
mod function;
mod keyvalue;
mod labels;
mod lifecycle;
mod plugins;
mod pods;
mod probes;
mod report;
mod start;
mod store;
mod sync;
mod util;

pub use agent::{Agent, AgentConfig, DEFAULT_INSTANCE_MEMORY, MAX_INSTANCE_MEMORY};
pub use dataplane::DataPlane;
pub use error::AgentError;
pub use plugins::RuntimePluginConfig;
pub use pods::LocalPod;
