//! [`WasmRuntime`]: the engine, the linker, and loading components into a cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::cache::{self, CompileFailure, DiskCache, Source};
use crate::engine::{self, AllocatorKind, RuntimeConfig};
use crate::error::{Error, chain};
use crate::handler::{HandlerInner, HandlerOptions, HttpHandler};
use crate::state::HostState;

/// The process's WebAssembly runtime. Cheap to clone (an `Arc` inside); create one
/// per process with [`WasmRuntime::new`].
#[derive(Clone)]
pub struct WasmRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("allocator", &self.inner.allocator)
            .field("cache_dir", &self.inner.config.cache_dir)
            .finish()
    }
}

struct Inner {
    engine: Engine,
    allocator: AllocatorKind,
    config: RuntimeConfig,
    linker: Linker<HostState>,
    disk: DiskCache,
    /// Components by digest; a cell is filled once, by the first loader.
    loaded: Mutex<HashMap<String, Arc<OnceCell<Arc<LoadedComponent>>>>>,
    compiled: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
    /// The memory all instances may hold together ([`RuntimeConfig::instance_memory`]).
    node_memory: Option<Arc<crate::memory::NodeMemory>>,
}

/// Counters of how [`WasmRuntime::load`] calls were satisfied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Components compiled from their bytes.
    pub compiled: u64,
    /// Components read from the on-disk cache.
    pub disk_hits: u64,
    /// Loads answered from memory (already loaded in this process).
    pub memory_hits: u64,
}

/// A validated, compiled and linked component, ready to instantiate. Shared
/// (`Arc`) by every handler that serves it; lives as long as any of them.
pub struct LoadedComponent {
    digest: String,
    size: usize,
    component: Component,
    pre: InstancePre<HostState>,
    /// `Ok` when the component exports `wasi:http/incoming-handler@0.2.x`.
    proxy: Result<ProxyPre<HostState>, String>,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("http", &self.is_http())
            .finish()
    }
}

impl LoadedComponent {
    /// The linked, pre-instantiated component (for the other worlds than HTTP).
    pub(crate) fn instance_pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// `sha256:<hex>` of the original component bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Size of the original component bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether it exports `wasi:http/incoming-handler@0.2.x` and so can serve HTTP.
    pub fn is_http(&self) -> bool {
        self.proxy.is_ok()
    }

    /// Names of the component's exports (for diagnostics).
    pub fn exports(&self) -> Vec<String> {
        let engine = self.pre.engine();
        self.component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }
}

impl WasmRuntime {
    /// Creates the engine (pooling allocator, or on-demand when the pool cannot be
    /// reserved), starts the epoch ticker thread, links WASI 0.2, wasi:http and wasi:config, and
    /// opens the cache directory.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when no engine can be built; [`Error::CacheDir`] when the
    /// cache directory cannot be created.
    pub fn new(config: RuntimeConfig) -> Result<Self, Error> {
        let (engine, allocator) = engine::build(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .and_then(|()| {
                wasmtime_wasi_config::add_to_linker(&mut linker, |h: &mut HostState| {
                    wasmtime_wasi_config::WasiConfig::from(h.config.as_ref())
                })
            })
            .and_then(|()| crate::keyvalue::add_to_linker(&mut linker))
            .map_err(|e| Error::Engine {
                reason: format!("cannot link WASI: {}", chain(&e)),
            })?;
        let disk = DiskCache::new(config.cache_dir.clone(), &engine).map_err(|source| Error::CacheDir {
            path: config.cache_dir.clone(),
            source,
        })?;
        engine::start_epoch_ticker(&engine, config.epoch_tick)?;
        Ok(WasmRuntime {
            inner: Arc::new(Inner {
                engine,
                allocator,
                linker,
                disk,
                loaded: Mutex::new(HashMap::new()),
                compiled: AtomicU64::new(0),
                disk_hits: AtomicU64::new(0),
                memory_hits: AtomicU64::new(0),
                node_memory: config
                    .instance_memory
                    .map(|b| Arc::new(crate::memory::NodeMemory::new(b))),
                config,
            }),
        })
    }

    /// Which instance allocator the engine ended up with.
    pub fn allocator(&self) -> AllocatorKind {
        self.inner.allocator
    }

    /// The configuration this runtime was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// `sha256:<hex>` of `bytes`: the identity of a component.
    pub fn digest(bytes: &[u8]) -> String {
        cache::digest(bytes)
    }

    /// How loads were satisfied so far.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.inner.compiled.load(Ordering::Relaxed),
            disk_hits: self.inner.disk_hits.load(Ordering::Relaxed),
            memory_hits: self.inner.memory_hits.load(Ordering::Relaxed),
        }
    }

    /// Validates, compiles (on a blocking thread) and links a component, or returns
    /// the one already loaded with the same digest. Compiled code is cached on disk,
    /// so a restarted process does not compile again. Concurrent loads of the same
    /// bytes compile once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidComponent`] for bytes that are not a valid component;
    /// [`Error::Compile`] when a valid one does not compile;
    /// [`Error::Link`] when it imports something not provided;
    /// [`Error::CompileInterrupted`] if the compile task could not finish.
    pub async fn load(&self, bytes: Vec<u8>) -> Result<Arc<LoadedComponent>, Error> {
        self.load_observed(bytes, || {}).await
    }

    /// [`load`](Self::load), calling `compiling` (from the compile thread) when this call
    /// is about to validate and compile the component: neither in memory nor in the disk
    /// cache. A caller uses it to say that a start waits for a compile.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub async fn load_observed(
        &self,
        bytes: Vec<u8>,
        compiling: impl FnOnce() + Send + 'static,
    ) -> Result<Arc<LoadedComponent>, Error> {
        let digest = cache::digest(&bytes);
        let cell = {
            let mut loaded = self.lock_loaded();
            loaded.entry(digest.clone()).or_default().clone()
        };
        let mut ran = false;
        let result = cell
            .get_or_try_init(|| {
                ran = true;
                let inner = self.inner.clone();
                let digest = digest.clone();
                async move {
                    let task_digest = digest.clone();
                    tokio::task::spawn_blocking(move || inner.compile(task_digest, bytes, compiling))
                        .await
                        .map_err(|e| Error::CompileInterrupted {
                            digest,
                            reason: e.to_string(),
                        })?
                }
            })
            .await
            .cloned();
        match &result {
            Ok(_) if !ran => {
                self.inner.memory_hits.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                // Do not keep an empty cell for bytes that failed.
                let mut loaded = self.lock_loaded();
                if loaded.get(&digest).is_some_and(|c| c.get().is_none()) {
                    loaded.remove(&digest);
                }
            }
        }
        result
    }

    /// Forgets a loaded component (handlers that hold it keep working). Returns
    /// whether it was loaded.
    pub fn unload(&self, digest: &str) -> bool {
        self.lock_loaded().remove(digest).is_some()
    }

    /// The node's memory for instances, when bounded: its budget and what live instances hold.
    pub fn node_memory(&self) -> Option<&crate::memory::NodeMemory> {
        self.inner.node_memory.as_deref()
    }

    /// [`node_memory`](Self::node_memory), shared, for the stores of this runtime.
    pub(crate) fn node_memory_shared(&self) -> Option<Arc<crate::memory::NodeMemory>> {
        self.inner.node_memory.clone()
    }

    /// Whether this runtime's engine meters fuel ([`RuntimeConfig::fuel`]).
    pub fn meters_fuel(&self) -> bool {
        self.inner.config.fuel
    }

    /// Prepares an HTTP handler for `component` with per-handler limits.
    ///
    /// # Errors
    ///
    /// [`Error::NotHttp`] when the component does not export
    /// `wasi:http/incoming-handler@0.2.x`; [`Error::InvalidOptions`] for a memory
    /// limit above [`RuntimeConfig::max_memory_per_instance`], a zero timeout, or fuel
    /// on a runtime built without [`RuntimeConfig::fuel`].
    pub fn handler(
        &self,
        component: Arc<LoadedComponent>,
        opts: HandlerOptions,
    ) -> Result<HttpHandler, Error> {
        let config = &self.inner.config;
        let invalid = |reason: String| Error::InvalidOptions {
            name: opts.name.clone(),
            reason,
        };
        let pre = component.proxy.clone().map_err(|reason| Error::NotHttp {
            digest: component.digest.clone(),
            reason,
        })?;
        if opts.memory_limit > config.max_memory_per_instance {
            return Err(invalid(format!(
                "memory limit {} exceeds the node's per-instance maximum {}",
                opts.memory_limit, config.max_memory_per_instance
            )));
        }
        if opts.timeout.is_zero() {
            return Err(invalid("timeout must be greater than zero".to_string()));
        }
        if (opts.fuel.is_some() || opts.fuel_meter.is_some()) && !config.fuel {
            return Err(invalid(
                "fuel was requested but this runtime does not meter fuel; enable RuntimeConfig::fuel"
                    .to_string(),
            ));
        }
        let fuel = config.fuel.then(|| opts.fuel.unwrap_or(u64::MAX));
        Ok(HttpHandler::from_inner(HandlerInner {
            name: opts.name,
            digest: component.digest.clone(),
            engine: self.inner.engine.clone(),
            pre,
            env: opts.env,
            config: Arc::new(opts.config.into_iter().collect()),
            memory_limit: usize::try_from(opts.memory_limit).unwrap_or(usize::MAX),
            timeout: opts.timeout,
            fuel,
            max_body_bytes: config.max_body_bytes,
            egress: opts.egress,
            key_value: opts.key_value,
            fuel_meter: opts.fuel_meter,
            node_memory: self.inner.node_memory.clone(),
            logs: opts.logs,
            idle: opts.instance_reuse.then(|| Mutex::new(Vec::new())),
            max_idle: opts.max_idle_instances,
            instances_created: AtomicU64::new(0),
        }))
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceCell<Arc<LoadedComponent>>>>> {
        // Plain map operations cannot leave it inconsistent.
        self.inner.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Blocking: compile (or read from disk) and link.
    fn compile(
        &self,
        digest: String,
        bytes: Vec<u8>,
        compiling: impl FnOnce(),
    ) -> Result<Arc<LoadedComponent>, Error> {
        let hex = digest.trim_start_matches("sha256:");
        let (component, source) = self
            .disk
            .get_or_compile(&self.engine, hex, &bytes, compiling)
            .map_err(|e| match e {
                CompileFailure::Invalid(invalid) => Error::InvalidComponent {
                    digest: digest.clone(),
                    invalid,
                },
                CompileFailure::Compile(e) => Error::Compile {
                    digest: digest.clone(),
                    reason: chain(&e),
                },
            })?;
        match source {
            Source::Compiled => self.compiled.fetch_add(1, Ordering::Relaxed),
            Source::Disk => self.disk_hits.fetch_add(1, Ordering::Relaxed),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(|e| Error::Link {
            digest: digest.clone(),
            reason: chain(&e),
        })?;
        let proxy = ProxyPre::new(pre.clone()).map_err(|e| chain(&e));
        if let Err(reason) = &proxy {
            tracing::info!(component = %digest, %reason, "component does not serve wasi:http");
        }
        Ok(Arc::new(LoadedComponent {
            digest,
            size: bytes.len(),
            component,
            pre,
            proxy,
        }))
    }
}
