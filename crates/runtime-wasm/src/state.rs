//! What a [`wasmtime::Store`] holds for one guest instance: WASI and wasi:http
//! contexts, the resource table, the outbound-HTTP policy ([`crate::egress`]) and the resource
//! limits.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::egress::OutboundPolicy;

use crate::logs::{GuestOutput, LogBuffer, Stream};
use crate::memory::{INSTANCE_LIMIT, NODE_LIMIT, NOT_REFUSED, NodeMemory, Refusal};

/// Core instances, tables and memories one store may create: generous for
/// interpreter-based components, small enough to stop a runaway.
const MAX_STORE_OBJECTS: usize = 256;

/// The data of one guest's [`wasmtime::Store`].
pub(crate) struct HostState {
    wasi: WasiCtx,
    /// What `wasi:config/store` answers (shared by every instance of a handler).
    pub(crate) config: Arc<wasmtime_wasi_config::WasiConfigVariables>,
    http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) outbound: OutboundPolicy,
    pub(crate) limits: GuestLimits,
    /// The key-value stores the guest may open.
    pub(crate) key_value: Option<crate::KeyValueGrant>,
    /// The fuel budget this call's burn is charged to.
    pub(crate) fuel: Option<crate::fuel::FuelTracker>,
}

impl HostState {
    pub(crate) fn new(
        env: &[(String, String)],
        args: &[String],
        config: Arc<wasmtime_wasi_config::WasiConfigVariables>,
        logs: &Arc<LogBuffer>,
        memory_limit: usize,
        outbound: OutboundPolicy,
        node_memory: Option<Arc<NodeMemory>>,
    ) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.envs(env)
            .args(args)
            .stdout(GuestOutput::new(Stream::Stdout, logs.clone()))
            .stderr(GuestOutput::new(Stream::Stderr, logs.clone()))
            // Sockets: no address is ever permitted, and no protocol or DNS either.
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        // No preopened directories: the guest sees an empty filesystem.
        HostState {
            wasi: wasi.build(),
            config,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            outbound,
            limits: GuestLimits::new(memory_limit, node_memory),
            key_value: None,
            fuel: None,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// [`StoreLimits`] plus the node's memory for instances ([`NodeMemory`]), and a record of
/// which memory growth was refused, so a failing request can be reported as "memory limit
/// exceeded" (500) or "node memory in use" (503).
pub(crate) struct GuestLimits {
    inner: StoreLimits,
    memory_refused: Arc<Refusal>,
    node: Option<Arc<NodeMemory>>,
    /// Bytes this store holds of the node's memory.
    held: u64,
}

impl GuestLimits {
    fn new(memory_limit: usize, node: Option<Arc<NodeMemory>>) -> Self {
        GuestLimits {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .instances(MAX_STORE_OBJECTS)
                .tables(MAX_STORE_OBJECTS)
                .memories(MAX_STORE_OBJECTS)
                .build(),
            memory_refused: Arc::new(Refusal::new(NOT_REFUSED)),
            node,
            held: 0,
        }
    }

    /// What was refused, set when a memory growth is refused.
    pub(crate) fn memory_refused(&self) -> Arc<Refusal> {
        self.memory_refused.clone()
    }
}

impl Drop for GuestLimits {
    fn drop(&mut self) {
        if let Some(node) = &self.node {
            node.release(self.held);
        }
    }
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.memory_refused.store(INSTANCE_LIMIT, Ordering::Relaxed);
            return Ok(false);
        }
        if let Some(node) = &self.node {
            let more = desired.saturating_sub(current) as u64;
            if !node.reserve(more) {
                self.memory_refused.store(NODE_LIMIT, Ordering::Relaxed);
                return Ok(false);
            }
            self.held += more;
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The pool's slot is smaller than the requested size: also a memory limit.
        self.memory_refused.store(INSTANCE_LIMIT, Ordering::Relaxed);
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
