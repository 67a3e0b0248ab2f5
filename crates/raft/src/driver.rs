//! The driver thread: a thin loop that feeds the [`core::Core`] requests and wall-clock ticks.
//!
//! Everything the node decides and persists happens in the core, which is stepped synchronously;
//! the thread only waits for requests or the next tick, and the deterministic simulation
//! ([`crate::sim`]) steps the same core with simulated time instead.

mod apply;
pub(crate) mod core;
mod membership;
pub(crate) mod snapshots;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use redb::Database;

use self::core::{Core, Exit};
use crate::handle::{Cmd, Shared};
use crate::transport::{NoTransport, Transport};
use crate::{RaftConfig, RaftError, RaftHandle, StateMachine};

/// Extras for [`start_with`] beyond the [`RaftConfig`].
#[derive(Clone)]
pub struct StartOptions {
    /// Where messages for other nodes go. [`start`] uses [`NoTransport`] (one-member groups).
    pub transport: Arc<dyn Transport>,
    /// Fault injection for tests: when set to `true`, the loop stops right after the next write
    /// transaction that persisted new log entries, before applying them — as if the process had
    /// crashed between "persist" and "apply". Pending proposals fail with [`RaftError::Stopped`].
    pub crash_before_apply: Option<Arc<AtomicBool>>,
    /// Bootstrap from a backup: on an empty file, start a one-member group (`voters = [id]`,
    /// whatever [`RaftConfig::voters`] says) whose state machine is first restored from these
    /// bytes, in the machine's own snapshot format (as [`StateMachine::snapshot`] writes them).
    /// They also become the content of the group's first snapshot file.
    /// Ignored when the file already holds a raft group.
    pub bootstrap_snapshot: Option<Vec<u8>>,
    /// Campaign after exactly [`RaftConfig::election_tick`] ticks instead of a timeout raft-rs
    /// draws from its thread-local random generator. Only for seeded simulations, which vary
    /// timing themselves; real clusters keep the randomised timeout (it avoids split votes).
    pub fixed_election_timeout: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            transport: Arc::new(NoTransport),
            crash_before_apply: None,
            bootstrap_snapshot: None,
            fixed_election_timeout: false,
        }
    }
}

impl std::fmt::Debug for StartOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartOptions")
            .field("crash_before_apply", &self.crash_before_apply)
            .field(
                "bootstrap_snapshot",
                &self
                    .bootstrap_snapshot
                    .as_ref()
                    .map(|b| format!("{} bytes", b.len())),
            )
            .finish_non_exhaustive()
    }
}

/// Starts the driver for a one-member group (no transport); see [`start_with`].
///
/// # Errors
///
/// As [`start_with`].
pub fn start<SM: StateMachine>(
    db: Arc<Database>,
    sm: SM,
    config: RaftConfig,
) -> Result<RaftHandle<SM::Output>, RaftError> {
    start_with(db, sm, config, StartOptions::default())
}

/// Opens (or bootstraps) the raft tables in `db` and the snapshot directory, initialises the
/// state machine, and starts the driver thread. Blocks until the node is loaded.
///
/// # Errors
///
/// [`RaftError::InvalidConfig`], [`RaftError::Storage`] when the database or the snapshot
/// directory cannot be read or written, [`RaftError::StateMachine`] when `init` fails.
pub fn start_with<SM: StateMachine>(
    db: Arc<Database>,
    sm: SM,
    config: RaftConfig,
    options: StartOptions,
) -> Result<RaftHandle<SM::Output>, RaftError> {
    config.validate()?;
    let files = crate::snapshot::SnapshotFiles::open(&config.snapshot_dir)?;
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared::new(&config, files));
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let thread_shared = shared.clone();
    let thread = std::thread::Builder::new()
        .name(format!("skiff-raft-{}", config.id))
        .spawn(
            move || match Core::boot(db, sm, config, &options, thread_shared.clone()) {
                Ok(core) => {
                    // The starter waits on this; if it is gone nobody will use the node.
                    if ready_tx.send(Ok(())).is_ok() {
                        let run = std::panic::AssertUnwindSafe(|| run(core, rx));
                        if std::panic::catch_unwind(run).is_err() {
                            // raft-rs panics on broken invariants; the callers waiting on the
                            // dropped replies already see `Stopped`, the rest learn it here.
                            tracing::error!("the raft driver thread panicked; the node is stopped");
                            thread_shared.permits.close();
                            thread_shared.status.send_modify(|s| {
                                s.stopped = true;
                                s.failure = Some("the raft driver thread panicked (see the log)".into());
                            });
                        }
                    }
                }
                Err(e) => {
                    thread_shared.status.send_modify(|s| s.stopped = true);
                    let _ = ready_tx.send(Err(e));
                }
            },
        )
        .map_err(|e| RaftError::Storage(format!("cannot spawn the raft thread: {e}")))?;
    ready_rx.recv().map_err(|_| RaftError::Stopped)??;
    *shared
        .thread
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(thread);
    Ok(RaftHandle { tx, shared })
}

/// The thread's loop: wait for a request or the next tick, hand everything queued to the core,
/// step it, repeat until shutdown or an error.
fn run<SM: StateMachine>(mut core: Core<SM>, rx: mpsc::Receiver<Cmd<SM::Output>>) {
    let tick = core.tick_length();
    let mut next_tick = Instant::now() + tick;
    let exit = loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let mut shutdown = false;
        match rx.recv_timeout(wait) {
            Ok(cmd) => {
                shutdown |= core.on_cmd(cmd);
                // Drain what else is queued so it shares this step's durable commit.
                for _ in 0..core.queue_capacity() + 1024 {
                    match rx.try_recv() {
                        Ok(cmd) => shutdown |= core.on_cmd(cmd),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            shutdown = true;
                            break;
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => shutdown = true,
        }
        let tick_due = Instant::now() >= next_tick;
        if tick_due {
            next_tick = Instant::now() + tick;
        }
        match core.step(tick_due) {
            Ok(None) if shutdown => break Exit::Shutdown,
            Ok(None) => {}
            Ok(Some(exit)) => break exit,
            Err(e) => break Exit::Failed(e),
        }
    };
    core.finish(exit);
    while let Ok(cmd) = rx.try_recv() {
        match cmd {
            Cmd::Propose { reply, .. } => reply.send(Err(RaftError::Stopped)),
            Cmd::ReadIndex { reply, .. } => reply.send(Err(RaftError::Stopped)),
            Cmd::ChangeMembership { reply, .. } => reply.send(Err(RaftError::Stopped)),
            Cmd::Step(_) | Cmd::Shutdown => {}
        }
    }
}
