//! The one wasmtime [`Engine`] of a process: configuration, allocator choice and the
//! epoch ticker.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::{Error, chain};

/// How the runtime is sized. One per process; see [`crate::WasmRuntime::new`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached (`<sha256>.cwasm` plus a `.meta` sidecar).
    /// Private to this runtime: nothing else should write there.
    pub cache_dir: PathBuf,
    /// How many component instances may be alive at once; sizes the pooling allocator.
    pub max_instances: u32,
    /// The largest linear memory any instance may have, in bytes (the pooling slot
    /// size). Handlers set a lower per-instance limit with
    /// [`crate::HandlerOptions::memory_limit`].
    pub max_memory_per_instance: u64,
    /// How often the epoch ticker thread advances the engine's epoch; the resolution
    /// of request deadlines and how often a running guest yields to other tasks.
    pub epoch_tick: Duration,
    /// Largest request body a guest may read, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Whether guests are metered with fuel. Costs some speed; required for
    /// [`crate::HandlerOptions::fuel`].
    pub fuel: bool,
    /// Bytes of linear memory all live instances may hold together (`None`: unbounded). A
    /// growth past it is refused and that request answered 503.
    pub instance_memory: Option<u64>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: PathBuf::from(".skiff/wasm-cache"),
            max_instances: 1000,
            max_memory_per_instance: 256 * 1024 * 1024,
            epoch_tick: Duration::from_millis(10),
            max_body_bytes: 16 * 1024 * 1024,
            fuel: false,
            instance_memory: None,
        }
    }
}

/// Which instance allocator the engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorKind {
    /// Pre-reserved slots: instantiation in microseconds, memory reused between
    /// instances; bounded by [`RuntimeConfig::max_instances`].
    Pooling,
    /// `mmap` per instance: slower instantiation, no up-front reservation. Used when
    /// the pool cannot be reserved (for example on small virtual address spaces).
    OnDemand,
}

/// Builds the engine, trying the pooling allocator first.
pub(crate) fn build(config: &RuntimeConfig) -> Result<(Engine, AllocatorKind), Error> {
    let mut pooled = base_config(config);
    pooled.allocation_strategy(pooling(config));
    match Engine::new(&pooled) {
        Ok(engine) => {
            tracing::info!(
                max_instances = config.max_instances,
                max_memory_per_instance = config.max_memory_per_instance,
                "wasm engine uses the pooling allocator"
            );
            Ok((engine, AllocatorKind::Pooling))
        }
        Err(pool_error) => {
            tracing::warn!(
                error = %chain(&pool_error),
                max_instances = config.max_instances,
                max_memory_per_instance = config.max_memory_per_instance,
                "cannot reserve the instance pool; wasm engine falls back to on-demand allocation"
            );
            let mut fallback = base_config(config);
            fallback.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            let engine = Engine::new(&fallback).map_err(|e| Error::Engine { reason: chain(&e) })?;
            tracing::info!("wasm engine uses the on-demand allocator");
            Ok((engine, AllocatorKind::OnDemand))
        }
    }
}

fn base_config(config: &RuntimeConfig) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(config.fuel)
        .parallel_compilation(true);
    c
}

fn pooling(config: &RuntimeConfig) -> PoolingAllocationConfig {
    let n = config.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    // A component instance is several core instances (the guest, the WASI adapter,
    // shims); interpreter-based components (Python, JS) have more, and some have
    // more than one memory or table.
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(16))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memories_per_module(2)
        .max_tables_per_module(4)
        .max_core_instances_per_component(64)
        .max_memory_size(usize::try_from(config.max_memory_per_instance).unwrap_or(usize::MAX))
        // Keep some warm slots but let idle ones go back to the OS.
        .max_unused_warm_slots(n.min(100));
    pool
}

/// Starts the thread that advances the engine's epoch every `tick`. It stops by
/// itself once the engine has been dropped (every handler and component gone).
pub(crate) fn start_epoch_ticker(engine: &Engine, tick: Duration) -> Result<(), Error> {
    let weak = engine.weak();
    let tick = tick.max(Duration::from_millis(1));
    std::thread::Builder::new()
        .name("skiff-wasm-epoch".to_string())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
        .map_err(|e| Error::Engine {
            reason: format!("cannot start the epoch ticker thread: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The control plane and the CLI validate uploads with `skiff_artifact::features()`; if the
    /// engine accepted more, they would refuse components that run, and if it accepted less,
    /// they would store components that never compile.
    #[test]
    fn uploads_are_validated_with_the_features_the_engine_accepts() {
        let engine = Engine::new(&base_config(&RuntimeConfig::default())).expect("engine");
        assert_eq!(engine.get_wasm_features(), skiff_artifact::features());
    }
}
