//! Serving `wasi:http/proxy` components: one request, one guest call, with limits.
//!
//! ```text
//! handle(req) ──► size check ──► instance: fresh Store ─┐  or  idle pooled instance
//!                                                        ▼
//!                spawned task: arm deadline + fuel ─► instantiate (fresh only)
//!                               ─► incoming-handler.handle(req, outparam)
//!                                  │ response-outparam.set ──► response head to caller
//!                                  ▼ returns: instance back to the idle pool (reuse)
//!                                    traps / deadline / OOM: instance discarded
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use tokio::sync::oneshot;
use wasmtime::component::Resource;
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};

use crate::arm::{Armor, BudgetStop, arm, settle};
use crate::body::{self, ResponseBody};
use crate::egress::OutboundPolicy;
use crate::fuel::{FuelMeter, Throttled};
use crate::logs::LogBuffer;
use crate::memory::Refusal;
use crate::state::HostState;

/// How one component of one pod is served. Build with [`HandlerOptions::new`] and
/// adjust the fields.
#[derive(Debug, Clone)]
pub struct HandlerOptions {
    /// `namespace/pod/component`: names the handler in logs and error bodies.
    pub name: String,
    /// Environment variables the guest sees through `wasi:cli/environment`.
    pub env: Vec<(String, String)>,
    /// Configuration the guest reads through `wasi:config/store` (`get`, `get-all`).
    pub config: Vec<(String, String)>,
    /// Largest linear memory of the guest, in bytes (per memory). Growing past it
    /// fails inside the guest, which usually traps: that request gets 500.
    pub memory_limit: u64,
    /// Wall-clock deadline of one request, from the start of instantiation until the
    /// guest's handler returns; past it the request gets 504.
    pub timeout: Duration,
    /// Fuel for one request (roughly, wasm instructions), or `None` for unmetered.
    /// Needs [`crate::RuntimeConfig::fuel`].
    pub fuel: Option<u64>,
    /// Reuse instances between requests (one request at a time per instance) instead
    /// of a fresh instance per request. Faster for guests with costly start-up, but
    /// state leaks between requests.
    pub instance_reuse: bool,
    /// With `instance_reuse`, how many idle instances are kept.
    pub max_idle_instances: usize,
    /// Where the guest may send outbound `wasi:http` requests. No grants (the default)
    /// denies every outbound request with `HTTP-request-denied`.
    pub egress: crate::Egress,
    /// Where guest stdout and stderr go; share one buffer per pod.
    pub logs: Arc<LogBuffer>,
    /// Key-value stores the guest may open through `wasi:keyvalue` (none: every `open` is
    /// denied).
    pub key_value: Option<crate::KeyValueGrant>,
    /// The fuel budget requests are admitted by and charged to (share one per namespace).
    /// Needs [`crate::RuntimeConfig::fuel`].
    pub fuel_meter: Option<Arc<FuelMeter>>,
}

impl HandlerOptions {
    /// Defaults: no env, 128 MiB memory, 30 s timeout, no fuel, fresh instance per
    /// request, no outbound hosts, a private 1 MiB log buffer.
    pub fn new(name: impl Into<String>) -> Self {
        HandlerOptions {
            name: name.into(),
            env: Vec::new(),
            config: Vec::new(),
            memory_limit: 128 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            fuel: None,
            instance_reuse: false,
            max_idle_instances: 4,
            egress: crate::Egress::default(),
            logs: Arc::new(LogBuffer::new(1024 * 1024)),
            key_value: None,
            fuel_meter: None,
        }
    }
}

/// Serves HTTP requests with one loaded component. Cheap to clone; every clone shares
/// the idle-instance pool (in reuse mode).
#[derive(Clone)]
pub struct HttpHandler {
    inner: Arc<HandlerInner>,
}

impl std::fmt::Debug for HttpHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHandler")
            .field("name", &self.inner.name)
            .field("component", &self.inner.digest)
            .field("instance_reuse", &self.inner.idle.is_some())
            .finish()
    }
}

pub(crate) struct HandlerInner {
    pub(crate) name: String,
    pub(crate) digest: String,
    pub(crate) engine: Engine,
    pub(crate) pre: ProxyPre<HostState>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) config: Arc<wasmtime_wasi_config::WasiConfigVariables>,
    pub(crate) memory_limit: usize,
    pub(crate) timeout: Duration,
    /// `Some` when the engine meters fuel: the fuel given to each request.
    pub(crate) fuel: Option<u64>,
    pub(crate) max_body_bytes: usize,
    pub(crate) egress: crate::Egress,
    pub(crate) key_value: Option<crate::KeyValueGrant>,
    pub(crate) fuel_meter: Option<Arc<FuelMeter>>,
    pub(crate) node_memory: Option<Arc<crate::memory::NodeMemory>>,
    pub(crate) logs: Arc<LogBuffer>,
    /// `Some` in reuse mode: idle instances.
    pub(crate) idle: Option<Mutex<Vec<GuestInstance>>>,
    pub(crate) max_idle: usize,
    pub(crate) instances_created: AtomicU64,
}

impl HttpHandler {
    pub(crate) fn from_inner(inner: HandlerInner) -> Self {
        HttpHandler {
            inner: Arc::new(inner),
        }
    }

    /// The handler's name (`namespace/pod/component`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `sha256:<hex>` of the component it serves.
    pub fn component_digest(&self) -> &str {
        &self.inner.digest
    }

    /// How many guest instances this handler has created so far.
    pub fn instances_created(&self) -> u64 {
        self.inner.instances_created.load(Ordering::Relaxed)
    }

    /// Serves one request.
    ///
    /// Never fails: whatever the guest does, the caller gets a response. The guest's
    /// own response is passed through (its body streams while the guest writes it);
    /// failures become short plain-text responses naming the handler:
    ///
    /// | failure | status |
    /// |---|---|
    /// | request body larger than the limit (by `content-length`) | 413 |
    /// | guest trapped (panic, `unreachable`, stack overflow, out of fuel) | 500 |
    /// | guest exceeded its memory limit | 500 |
    /// | guest returned without a response, or set an error code | 500 |
    /// | deadline passed before the guest answered | 504 |
    /// | no instance slot free in the pool | 503 |
    /// | the fuel budget is empty (before or while it runs) | 429, `retry-after` |
    ///
    /// Only this request fails; the handler keeps serving. A request body that
    /// exceeds the limit while streaming is cut, the guest sees a body error and the
    /// client gets 413.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime (the guest runs in a spawned task).
    pub async fn handle<B>(&self, req: http::Request<B>) -> http::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = &self.inner;
        if body::announced_length(&req) > inner.max_body_bytes as u64 {
            return inner.too_large();
        }
        if let Some(meter) = &inner.fuel_meter
            && let Err(t) = meter.admit(&inner.name)
        {
            return Failure::Throttled(t).response(&inner.name);
        }
        let (req, too_large) = body::prepare_request(req, inner.max_body_bytes);
        let (tx, rx) = oneshot::channel();
        let pooled = inner.take_idle();
        let task = tokio::spawn(serve(self.inner.clone(), pooled, req, tx));
        let response = wait_for_response(&self.inner.name, rx, task).await;
        // The guest saw a body error; whatever it answered, the client sent too much.
        if too_large.load(Ordering::Relaxed) {
            return inner.too_large();
        }
        response
    }

    /// Idle instances kept for reuse (always 0 without instance reuse).
    pub fn idle_instances(&self) -> usize {
        self.inner.idle.as_ref().map_or(0, |idle| {
            idle.lock().unwrap_or_else(PoisonError::into_inner).len()
        })
    }
}

/// Waits for the guest's response head, or for the guest to finish without one.
async fn wait_for_response(
    name: &str,
    mut rx: oneshot::Receiver<Result<hyper::Response<HyperOutgoingBody>, ErrorCode>>,
    mut task: tokio::task::JoinHandle<Result<(), Failure>>,
) -> http::Response<ResponseBody> {
    let outcome = tokio::select! {
        biased;
        response = &mut rx => match response {
            Ok(response) => return guest_response(name, response),
            // The outparam was dropped unset: the task tells why.
            Err(_) => (&mut task).await,
        },
        outcome = &mut task => {
            // The guest may have set the response just before returning.
            if let Ok(response) = rx.try_recv() {
                return guest_response(name, response);
            }
            outcome
        }
    };
    match outcome {
        Ok(Ok(())) => body::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{name}: the component returned without sending a response"),
        ),
        Ok(Err(failure)) => failure.response(name),
        Err(join_error) => {
            tracing::error!(handler = %name, error = %join_error, "wasm request task failed");
            body::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("{name}: internal error"),
            )
        }
    }
}

fn guest_response(
    name: &str,
    response: Result<hyper::Response<HyperOutgoingBody>, ErrorCode>,
) -> http::Response<ResponseBody> {
    match response {
        Ok(response) => response.map(body::from_guest),
        Err(ErrorCode::HttpRequestBodySize(_)) => body::error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{name}: request body too large"),
        ),
        Err(code) => {
            tracing::info!(handler = %name, error = ?code, "component answered with an error code");
            body::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("{name}: the component failed the request"),
            )
        }
    }
}

/// One live guest: its store and the bound exports.
pub(crate) struct GuestInstance {
    store: Store<HostState>,
    proxy: Proxy,
    memory_refused: Arc<Refusal>,
}

/// Why a request failed inside the guest or while preparing it.
#[derive(Debug)]
enum Failure {
    /// The deadline passed (epoch interrupt, or blocked in the host too long).
    Deadline(Duration),
    /// A memory growth was refused and then the guest failed.
    Memory(wasmtime::Error),
    /// A memory growth past the node's memory for instances was refused.
    NodeMemory(wasmtime::Error),
    /// Fuel ran out.
    Fuel,
    /// The fuel budget is empty.
    Throttled(Throttled),
    /// The pool has no free slot.
    PoolExhausted(wasmtime::Error),
    /// Any other trap or host error.
    Trap(wasmtime::Error),
}

impl Failure {
    fn classify(error: wasmtime::Error, timeout: Duration, memory_refused: u8) -> Self {
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => return Failure::Deadline(timeout),
            Some(Trap::OutOfFuel) => return Failure::Fuel,
            _ => {}
        }
        if error.is::<wasmtime::PoolConcurrencyLimitError>() {
            Failure::PoolExhausted(error)
        } else if memory_refused == crate::memory::NODE_LIMIT {
            Failure::NodeMemory(error)
        } else if memory_refused != crate::memory::NOT_REFUSED {
            Failure::Memory(error)
        } else {
            Failure::Trap(error)
        }
    }

    fn response(&self, name: &str) -> http::Response<ResponseBody> {
        let (status, what) = match self {
            Failure::Deadline(timeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "did not answer within its {} deadline",
                    humantime::format_duration(*timeout)
                ),
            ),
            Failure::Memory(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "exceeded its memory limit".to_string(),
            ),
            Failure::NodeMemory(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "could not get memory: the node's memory for instances is in use; retry later".to_string(),
            ),
            Failure::Fuel => (StatusCode::INTERNAL_SERVER_ERROR, "ran out of fuel".to_string()),
            Failure::Throttled(t) => {
                let mut r = body::error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "{name}: the namespace used its fuel budget of {} per minute on this node; retry in {}s",
                        t.per_minute,
                        t.retry_after.as_secs()
                    ),
                );
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, t.retry_after.as_secs().into());
                r.headers_mut()
                    .insert("x-skiff-throttled", http::HeaderValue::from_static("fuel"));
                return r;
            }
            Failure::PoolExhausted(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no instance slot free; retry later".to_string(),
            ),
            Failure::Trap(_) => (StatusCode::INTERNAL_SERVER_ERROR, "trapped".to_string()),
        };
        body::error_response(status, &format!("{name}: component {what}"))
    }

    fn log(&self, name: &str) {
        match self {
            Failure::Deadline(timeout) => {
                tracing::warn!(handler = %name, timeout = ?timeout, "wasm request exceeded its deadline")
            }
            Failure::Fuel => tracing::warn!(handler = %name, "wasm request ran out of fuel"),
            Failure::Throttled(t) => {
                tracing::info!(handler = %name, per_minute = t.per_minute, "wasm request stopped: fuel budget used")
            }
            Failure::Memory(e) => {
                tracing::warn!(handler = %name, error = %crate::error::chain(e), "wasm request exceeded its memory limit")
            }
            Failure::PoolExhausted(e) => {
                tracing::warn!(handler = %name, error = %crate::error::chain(e), "no wasm instance slot free")
            }
            Failure::NodeMemory(e) => {
                tracing::warn!(handler = %name, error = %crate::error::chain(e), "the node's memory for wasm instances is in use")
            }
            Failure::Trap(e) => {
                tracing::warn!(handler = %name, error = %crate::error::chain(e), "wasm request trapped")
            }
        }
    }
}

impl HandlerInner {
    fn too_large(&self) -> http::Response<ResponseBody> {
        body::error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "{}: request body larger than {} bytes",
                self.name, self.max_body_bytes
            ),
        )
    }

    fn take_idle(&self) -> Option<GuestInstance> {
        let idle = self.idle.as_ref()?;
        idle.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    fn put_idle(&self, instance: GuestInstance) {
        if let Some(idle) = &self.idle {
            let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < self.max_idle {
                idle.push(instance);
            }
        }
    }

    /// A new store with this handler's environment, output and limits.
    fn new_store(&self) -> (Store<HostState>, Arc<Refusal>) {
        let mut state = HostState::new(
            &self.env,
            &[],
            self.config.clone(),
            &self.logs,
            self.memory_limit,
            OutboundPolicy::new(
                self.egress.clone(),
                Arc::from(self.name.as_str()),
                self.logs.clone(),
            ),
            self.node_memory.clone(),
        );
        state.key_value = self.key_value.clone();
        let memory_refused = state.limits.memory_refused();
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        (store, memory_refused)
    }

    /// Arms the store for one request: its deadline, its fuel, and the budget the burn is
    /// charged to (`exhausted` is set when the budget runs out meanwhile).
    fn arm(
        &self,
        store: &mut Store<HostState>,
        deadline: Instant,
        stop: &Arc<BudgetStop>,
    ) -> wasmtime::Result<()> {
        arm(
            store,
            Armor {
                deadline: Some(deadline),
                fuel: self.fuel,
                meter: self.fuel_meter.clone().map(|m| (m, stop.clone())),
            },
        )
    }
}

/// Runs one request in its own task: get an instance, call the handler, and return
/// the instance to the idle pool when reuse is on and the call succeeded.
async fn serve(
    inner: Arc<HandlerInner>,
    pooled: Option<GuestInstance>,
    req: http::Request<body::RequestBody>,
    tx: oneshot::Sender<Result<hyper::Response<HyperOutgoingBody>, ErrorCode>>,
) -> Result<(), Failure> {
    let deadline = Instant::now() + inner.timeout;
    // The epoch interrupt stops a guest that computes past the deadline; this timer
    // also stops one that is blocked in the host (sleeping, waiting on a stream).
    let refused = Arc::new(Refusal::new(crate::memory::NOT_REFUSED));
    let stop = Arc::new(BudgetStop::default());
    let attempt = tokio::time::timeout(
        inner.timeout,
        call(&inner, pooled, req, tx, deadline, refused.clone(), &stop),
    )
    .await;
    let result = match attempt {
        Ok(Ok(instance)) => {
            inner.put_idle(instance);
            Ok(())
        }
        Ok(Err(error)) if stop.stopped(&error) => Err(Failure::Throttled(crate::fuel::stopped(
            inner.fuel_meter.as_deref(),
            &inner.name,
        ))),
        Ok(Err(error)) => Err(Failure::classify(
            error,
            inner.timeout,
            refused.load(Ordering::Relaxed),
        )),
        Err(_elapsed) => Err(Failure::Deadline(inner.timeout)),
    };
    if let Err(failure) = &result {
        failure.log(&inner.name);
    }
    result
}

async fn call(
    inner: &HandlerInner,
    pooled: Option<GuestInstance>,
    req: http::Request<body::RequestBody>,
    tx: oneshot::Sender<Result<hyper::Response<HyperOutgoingBody>, ErrorCode>>,
    deadline: Instant,
    refused: Arc<Refusal>,
    stop: &Arc<BudgetStop>,
) -> wasmtime::Result<GuestInstance> {
    let mut instance = match pooled {
        Some(mut instance) => {
            instance
                .memory_refused
                .store(crate::memory::NOT_REFUSED, Ordering::Relaxed);
            inner.arm(&mut instance.store, deadline, stop)?;
            instance
        }
        None => {
            let (mut store, memory_refused) = inner.new_store();
            inner.arm(&mut store, deadline, stop)?;
            inner.instances_created.fetch_add(1, Ordering::Relaxed);
            let instantiated = inner.pre.instantiate_async(&mut store).await;
            let proxy = instantiated.inspect_err(|_| {
                refused.store(memory_refused.load(Ordering::Relaxed), Ordering::Relaxed);
            })?;
            GuestInstance {
                store,
                proxy,
                memory_refused,
            }
        }
    };
    // Per request: a reused instance must not carry the previous request's trace.
    let trace = crate::trace::Trace::of(req.headers());
    instance.store.data_mut().outbound.set_trace(trace);
    let (request, outparam) = resources(&mut instance.store, req, tx)?;
    let called = instance
        .proxy
        .wasi_http_incoming_handler()
        .call_handle(&mut instance.store, request, outparam)
        .await;
    refused.store(instance.memory_refused.load(Ordering::Relaxed), Ordering::Relaxed);
    settle(&mut instance.store);
    called?;
    Ok(instance)
}

type Resources = (Resource<HostIncomingRequest>, Resource<HostResponseOutparam>);

fn resources(
    store: &mut Store<HostState>,
    req: http::Request<body::RequestBody>,
    tx: oneshot::Sender<Result<hyper::Response<HyperOutgoingBody>, ErrorCode>>,
) -> wasmtime::Result<Resources> {
    let mut http = store.data_mut().http();
    let request = http.new_incoming_request(Scheme::Http, req)?;
    let outparam = http.new_response_outparam(tx)?;
    Ok((request, outparam))
}
