//! Functions: components of the `skiff:function/function` world (`wit/function.wit`), instantiated
//! for one event and called once. Nothing stays between events but the compiled code, so a
//! function scaled to zero costs nothing and its first call only instantiates.
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;

use crate::arm::{Armor, BudgetStop, arm, settle};
use crate::egress::OutboundPolicy;
use crate::error::Error;
use crate::fuel::{FuelMeter, Throttled};
use crate::logs::LogBuffer;
use crate::runtime::{LoadedComponent, WasmRuntime};
use crate::state::HostState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/function.wit",
        world: "function",
        exports: { default: async },
    });
}

pub use bindings::exports::skiff::function::handler::{Error as FunctionError, Event, Payload};

/// How to run one function call.
#[derive(Debug, Clone)]
pub struct FunctionOptions {
    /// `namespace/function`, for messages.
    pub name: String,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// `wasi:config/store` values.
    pub config: Vec<(String, String)>,
    /// Largest linear memory, in bytes.
    pub memory_limit: u64,
    /// Wall-clock limit of the call.
    pub timeout: Duration,
    /// Where stdout and stderr go.
    pub logs: Arc<LogBuffer>,
    /// Key-value stores the guest may open through `wasi:keyvalue` (none: every `open` is
    /// denied).
    pub key_value: Option<crate::KeyValueGrant>,
    /// Where the guest may send outbound `wasi:http` requests (none by default).
    pub egress: crate::Egress,
    /// The fuel budget the call is admitted by and charged to.
    pub fuel_meter: Option<Arc<FuelMeter>>,
}

impl FunctionOptions {
    /// Defaults: no env or config, 128 MiB, 30 s, a private 1 MiB log.
    pub fn new(name: impl Into<String>) -> Self {
        FunctionOptions {
            name: name.into(),
            env: Vec::new(),
            config: Vec::new(),
            memory_limit: 128 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            logs: Arc::new(LogBuffer::new(1024 * 1024)),
            egress: crate::Egress::default(),
            key_value: None,
            fuel_meter: None,
        }
    }
}

/// How a call ended when it did not return an answer or a function error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The guest trapped (the message says where).
    Trap(String),
    /// It ran past its time limit.
    Timeout(Duration),
    /// Its namespace's fuel budget is empty (before or while it ran).
    Throttled(Throttled),
}

impl WasmRuntime {
    /// Whether `component` is a function (exports `skiff:function/handler`).
    pub fn is_function(&self, component: &LoadedComponent) -> bool {
        bindings::FunctionPre::new(component.instance_pre().clone()).is_ok()
    }

    /// Instantiates `component` and calls `handle(event)` once: `Ok(Ok(..))` is the function's
    /// answer or its own error, `Ok(Err(..))` a trap or timeout.
    ///
    /// # Errors
    /// [`Error::NotFunction`] when the component does not export `skiff:function/handler`.
    pub async fn call_function(
        &self,
        component: &LoadedComponent,
        event: &Event,
        opts: FunctionOptions,
    ) -> Result<Result<Result<Option<Payload>, FunctionError>, CallFailure>, Error> {
        let pre =
            bindings::FunctionPre::new(component.instance_pre().clone()).map_err(|e| Error::NotFunction {
                digest: component.digest().to_owned(),
                reason: format!("{e:#}"),
            })?;
        let mut state = HostState::new(
            &opts.env,
            &[],
            Arc::new(opts.config.iter().cloned().collect()),
            &opts.logs,
            usize::try_from(opts.memory_limit).unwrap_or(usize::MAX),
            OutboundPolicy::new(
                opts.egress.clone(),
                Arc::from(opts.name.as_str()),
                opts.logs.clone(),
            ),
            self.node_memory_shared(),
        );
        state.key_value = opts.key_value.clone();
        if let Some(meter) = &opts.fuel_meter
            && let Err(t) = meter.admit(&opts.name)
        {
            return Ok(Err(CallFailure::Throttled(t)));
        }
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        let deadline = Instant::now() + opts.timeout;
        let stop = Arc::new(BudgetStop::default());
        arm(
            &mut store,
            Armor {
                deadline: Some(deadline),
                fuel: self.meters_fuel().then_some(u64::MAX),
                meter: opts.fuel_meter.clone().map(|m| (m, stop.clone())),
            },
        )
        .map_err(|e| Error::Engine {
            reason: crate::error::chain(&e),
        })?;
        let call = async {
            let f = pre.instantiate_async(&mut store).await?;
            let answer = f.skiff_function_handler().call_handle(&mut store, event).await;
            settle(&mut store);
            answer
        };
        Ok(match tokio::time::timeout(opts.timeout, call).await {
            Err(_) => Err(CallFailure::Timeout(opts.timeout)),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) if stop.stopped(&e) => Err(CallFailure::Throttled(crate::fuel::stopped(
                opts.fuel_meter.as_deref(),
                &opts.name,
            ))),
            Ok(Err(e)) if Instant::now() >= deadline => {
                drop(e);
                Err(CallFailure::Timeout(opts.timeout))
            }
            Ok(Err(e)) => Err(CallFailure::Trap(format!(
                "{} trapped: {}",
                opts.name,
                crate::error::chain(&e)
            ))),
        })
    }
}
