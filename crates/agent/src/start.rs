//! Starting a pod: a [`RunningPod`] built from a [`Pod`] (artifacts fetched and compiled,
//! environment and config resolved, containers started), or a `world: command` pod's run.
//!
//! A start either yields the whole pod or a typed [`StartFailure`]; nothing of a pod that failed
//! to start keeps running.
use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use skiff_api::{Component, Kind, Object, Pod};
use skiff_client::Client;
use skiff_runtime_wasm::{CommandExit, HandlerOptions, LogBuffer, WasmRuntime};

use crate::artifacts::ArtifactCache;
use crate::containers::{Containers, RunningContainer};
use crate::failure::{FailureKind, StartFailure};
use crate::function::FunctionServer;
use crate::pods::{RunningPod, Serving};
use crate::util::{key, lock};

/// Per-pod log buffer size.
pub(crate) const LOG_BYTES: usize = 1 << 20;

/// Starts pods on this node.
pub(crate) struct Starter {
    runtime: WasmRuntime,
    client: Client,
    node: String,
    artifacts: Arc<ArtifactCache>,
    containers: Arc<Containers>,
    /// Digests of the components the runtime loaded (advertised as cached on the node).
    loaded: Mutex<BTreeSet<String>>,
    /// The namespaces' fuel budgets on this node.
    budgets: Arc<crate::budgets::FuelBudgets>,
    /// Outbound grants and the denials counted on this node.
    egress: Arc<crate::egress::EgressReports>,
}

fn invalid(message: String) -> StartFailure {
    StartFailure::new(FailureKind::InvalidSpec, message)
}

/// Told the name of a component when a start is about to compile it (not in memory, not in the
/// node's compiled cache): the pod then reports `Compiling`.
pub(crate) type OnCompile = Arc<dyn Fn(&str) + Send + Sync>;

/// Why component `name` could not be loaded, as a start failure of its kind.
fn load_failure(name: &str, e: skiff_runtime_wasm::Error) -> StartFailure {
    use skiff_runtime_wasm::Error as E;
    let kind = match &e {
        E::InvalidComponent { .. } => FailureKind::InvalidComponent,
        E::Link { .. } => FailureKind::LinkError,
        // The runtime is shutting down or the compile thread died: another try may work.
        E::CompileInterrupted { .. } => FailureKind::InstantiateError,
        _ => FailureKind::CompileError,
    };
    StartFailure::new(kind, format!("component {name}: {e}"))
}

/// Why component `name` cannot serve HTTP, as a start failure of its kind.
fn handler_failure(name: &str, e: skiff_runtime_wasm::Error) -> StartFailure {
    use skiff_runtime_wasm::Error as E;
    let kind = match &e {
        E::NotHttp { .. } => FailureKind::WorldMismatch,
        E::InvalidOptions { .. } => FailureKind::InvalidSpec,
        _ => FailureKind::InstantiateError,
    };
    let hint = match kind {
        FailureKind::WorldMismatch => {
            " (build it for the wasi:http/proxy world, or set the component's world to command or function)"
        }
        _ => "",
    };
    StartFailure::new(kind, format!("component {name}: {e}{hint}"))
}

impl Starter {
    pub(crate) fn new(
        runtime: WasmRuntime,
        client: Client,
        node: String,
        artifacts: Arc<ArtifactCache>,
        containers: Arc<Containers>,
        budgets: Arc<crate::budgets::FuelBudgets>,
        egress: Arc<crate::egress::EgressReports>,
    ) -> Self {
        Starter {
            runtime,
            client,
            node,
            artifacts,
            containers,
            loaded: Mutex::new(BTreeSet::new()),
            budgets,
            egress,
        }
    }

    /// Digests of the components loaded here.
    pub(crate) fn loaded(&self) -> Vec<String> {
        lock(&self.loaded).iter().cloned().collect()
    }

    /// Forgets loaded components whose artifacts were removed.
    pub(crate) fn forget_loaded(&self, removed: &[String]) {
        lock(&self.loaded).retain(|d| !removed.contains(d));
    }

    /// Starts every component of `pod`: a pod ready to serve (ready, its stored restart count),
    /// or why not. `on_compile` is told each component that has to be compiled first.
    #[tracing::instrument(name = "start", skip_all, fields(pod = %key(pod), uid = pod.metadata.uid.as_deref().unwrap_or_default(), node = %self.node))]
    pub(crate) async fn start(&self, pod: &Pod, on_compile: OnCompile) -> Result<RunningPod, StartFailure> {
        let logs = Arc::new(LogBuffer::new(LOG_BYTES));
        let mut serving = None;
        let mut containers: Vec<RunningContainer> = Vec::new();
        let started = self
            .start_components(pod, &logs, &on_compile, &mut serving, &mut containers)
            .await;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        match (started, serving) {
            (Ok(()), Some(handler)) => Ok(RunningPod {
                uid,
                handler,
                containers: Mutex::new(containers),
                logs,
                started: SystemTime::now(),
                stop_after: pod.spec.disconnect_policy().stop_after(),
                ready: AtomicBool::new(true),
                restarts: pod.status.restarts,
                concurrency: pod.spec.components.first().and_then(|c| c.resources.concurrency),
                inflight: Default::default(),
            }),
            (result, _) => {
                // Nothing of a pod that failed to start keeps running.
                for rc in containers {
                    self.containers.retire(rc);
                }
                Err(result
                    .err()
                    .unwrap_or_else(|| invalid("pod has no components".into())))
            }
        }
    }

    /// Runs a `world: command` pod's first component once, to its exit, with its output in `logs`.
    #[tracing::instrument(name = "run_command", skip_all, fields(pod = %key(pod), uid = pod.metadata.uid.as_deref().unwrap_or_default(), node = %self.node))]
    pub(crate) async fn run_command(
        &self,
        pod: &Pod,
        logs: Arc<LogBuffer>,
    ) -> Result<CommandExit, StartFailure> {
        let c = pod
            .spec
            .components
            .first()
            .ok_or_else(|| invalid("pod has no components".into()))?;
        let Some(wasm) = &c.wasm else {
            return Err(invalid(format!("component {} has no wasm artifact", c.name)));
        };
        let bytes = self.artifacts.get(wasm).await?;
        let component = self
            .runtime
            .load(bytes)
            .await
            .map_err(|e| load_failure(&c.name, e))?;
        lock(&self.loaded).insert(component.digest().to_owned());
        let mut opts = skiff_runtime_wasm::CommandOptions::new(format!("{}/{}", key(pod), c.name));
        opts.args = c.args.clone();
        opts.env = self.component_env(pod, c).await?;
        opts.config = self.resolve_env(pod, c, &c.config, "config").await?;
        opts.memory_limit = c.resources.memory_or_default().0;
        opts.timeout = c.resources.timeout.map(|t| t.0);
        opts.logs = logs;
        opts.key_value = crate::keyvalue::grant(&self.client, pod, c);
        opts.egress = self.egress.egress(c);
        self.runtime
            .run_command(&component, opts)
            .await
            .map_err(|e| invalid(format!("component {}: {e}", c.name)))
    }

    /// The component's environment (or `config`) with every `valueFrom` read from its ConfigMap
    /// or Secret through the API (never from the local store: values are not kept on the node's
    /// disk). A missing object or key fails with reason `ConfigError` naming the reference;
    /// values are never logged.
    async fn resolve_env(
        &self,
        pod: &Pod,
        c: &Component,
        vars: &[skiff_api::EnvVar],
        field: &str,
    ) -> Result<Vec<(String, String)>, StartFailure> {
        let ns = pod.metadata.namespace_or_default();
        let mut env = Vec::with_capacity(vars.len());
        for e in vars {
            let Some(from) = &e.value_from else {
                env.push((e.name.clone(), e.value.clone()));
                continue;
            };
            let (kind, r) = match (&from.config_map_key_ref, &from.secret_key_ref) {
                (Some(r), None) => (Kind::ConfigMap, r),
                (None, Some(r)) => (Kind::Secret, r),
                _ => {
                    return Err(StartFailure::new(
                        FailureKind::ConfigError,
                        format!(
                            "component {}: {field} {} must set exactly one of configMapKeyRef and secretKeyRef",
                            c.name, e.name
                        ),
                    ));
                }
            };
            let what = format!("{kind} {ns}/{} key {:?}", r.name, r.key);
            let fail = |why: String| {
                StartFailure::new(
                    FailureKind::ConfigError,
                    format!("component {}: {field} {} from {what}: {why}", c.name, e.name),
                )
            };
            let data = match self.client.get(kind, Some(ns), &r.name).await {
                Ok(Object::ConfigMap(m)) => m.data,
                Ok(Object::Secret(m)) => m.data,
                Ok(other) => return Err(fail(format!("the API answered a {}", other.kind()))),
                Err(err) if err.is_not_found() => {
                    return Err(fail(format!(
                        "the {kind} does not exist: create it, then re-create the pod"
                    )));
                }
                Err(err) => return Err(fail(format!("cannot read it: {err}"))),
            };
            match data.get(&r.key) {
                Some(v) => env.push((e.name.clone(), v.clone())),
                None => {
                    return Err(fail(format!(
                        "the {kind} has no such key (it has {} keys)",
                        data.len()
                    )));
                }
            }
        }
        Ok(env)
    }

    /// The environment every component sees: its own (resolved) and the pod's identity.
    async fn component_env(&self, pod: &Pod, c: &Component) -> Result<Vec<(String, String)>, StartFailure> {
        let mut env = self.resolve_env(pod, c, &c.env, "env").await?;
        env.push(("SKIFF_POD_NAME".into(), pod.metadata.name.clone()));
        env.push((
            "SKIFF_POD_NAMESPACE".into(),
            pod.metadata.namespace_or_default().into(),
        ));
        env.push(("SKIFF_NODE_NAME".into(), self.node.clone()));
        Ok(env)
    }

    /// Starts every component in order; the first one's handler goes to `serving`, the
    /// containers started so far to `containers` (also on failure, for the caller to remove).
    async fn start_components(
        &self,
        pod: &Pod,
        logs: &Arc<LogBuffer>,
        on_compile: &OnCompile,
        serving: &mut Option<Serving>,
        containers: &mut Vec<RunningContainer>,
    ) -> Result<(), StartFailure> {
        for (i, c) in pod.spec.components.iter().enumerate() {
            if let Some(oci) = &c.oci {
                let env = self.component_env(pod, c).await?;
                let rc = self.containers.start(pod, c, oci, env, i == 0).await?;
                if i == 0 {
                    *serving = Some(Serving::Container {
                        containers: self.containers.clone(),
                        port: rc.port,
                    });
                }
                containers.push(rc);
                continue;
            }
            let Some(wasm) = &c.wasm else {
                return Err(invalid(format!(
                    "component {} has neither a wasm artifact nor an oci image",
                    c.name
                )));
            };
            let bytes = self.artifacts.get(wasm).await?;
            let notify = on_compile.clone();
            let name = c.name.clone();
            let component = self
                .runtime
                .load_observed(bytes, move || notify(&name))
                .await
                .map_err(|e| load_failure(&c.name, e))?;
            lock(&self.loaded).insert(component.digest().to_owned());
            if wasm.world == skiff_api::World::Function {
                let mut opts = skiff_runtime_wasm::FunctionOptions::new(format!("{}/{}", key(pod), c.name));
                opts.env = self.component_env(pod, c).await?;
                opts.config = self.resolve_env(pod, c, &c.config, "config").await?;
                opts.memory_limit = c.resources.memory_or_default().0;
                opts.timeout = c.resources.timeout_or_default();
                opts.logs = logs.clone();
                opts.key_value = crate::keyvalue::grant(&self.client, pod, c);
                opts.egress = self.egress.egress(c);
                opts.fuel_meter = Some(self.budgets.meter(pod.metadata.namespace_or_default()));
                if !self.runtime.is_function(&component) {
                    return Err(StartFailure::new(
                        FailureKind::WorldMismatch,
                        format!(
                            "component {} is not a function: it does not export skiff:function/handler (build it for the world in wit/function.wit, or set world: http)",
                            c.name
                        ),
                    ));
                }
                if i == 0 {
                    *serving = Some(Serving::Function(FunctionServer {
                        runtime: self.runtime.clone(),
                        component,
                        options: opts,
                    }));
                }
                continue;
            }
            let mut opts = HandlerOptions::new(format!("{}/{}", key(pod), c.name));
            opts.env = self.component_env(pod, c).await?;
            opts.config = self.resolve_env(pod, c, &c.config, "config").await?;
            opts.memory_limit = c.resources.memory_or_default().0;
            opts.timeout = c.resources.timeout_or_default();
            opts.fuel = c.resources.fuel;
            opts.instance_reuse = wasm.instance_reuse;
            opts.logs = logs.clone();
            opts.key_value = crate::keyvalue::grant(&self.client, pod, c);
            opts.egress = self.egress.egress(c);
            opts.fuel_meter = Some(self.budgets.meter(pod.metadata.namespace_or_default()));
            let h = self
                .runtime
                .handler(component, opts)
                .map_err(|e| handler_failure(&c.name, e))?;
            if i == 0 {
                *serving = Some(Serving::Wasm(h));
            }
        }
        Ok(())
    }
}
