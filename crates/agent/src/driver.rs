//! The driver of one pod: a task that owns the pod's lifecycle [`Machine`], performs the
//! [`Action`]s [`step`] asks for and feeds back what happens as [`Event`]s.
//!
//! ```text
//!  registry (delete, hold, release) ──► event queue ─┐
//!  a start's progress (Compiling) ───────────────────┤
//!  start / command run outcome ──────────────────────┤
//!  probes and containers (Watcher) ──────────────────┼──► step(machine, event) ──► actions
//!  back-off timer ───────────────────────────────────┘        Start, Serve, SetReady, Stop,
//!                                                             Report, ScheduleRestart
//! ```
//!
//! The driver waits on all of them at once (`tokio::select!`), so it learns that its pod was
//! deleted or held when the registry tells it, never by polling. The sources are polled in the
//! order above (`biased`), so a start's `Compiling` is always stepped (and reported) before the
//! outcome of that start, however fast the compile was. Served pods and commands differ
//! only in what `Start` does (build a [`RunningPod`] to publish, or run the command to its exit)
//! and in what ends them (probes and containers, or the command's exit). The task ends once the
//! pod ended for good (or is no longer this node's) and nothing it started is still in progress.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use skiff_api::{Pod, PodPhase};
use skiff_runtime_wasm::LogBuffer;
use tokio::sync::mpsc;

use crate::lifecycle::{Action, Event, Machine, Now, PodFacts, PodState, Workload, step};
use crate::pods::{DRIVER_QUEUE, DriverHandle, PodTable, RunningPod};
use crate::probes::Watcher;
use crate::report::Reporter;
use crate::start::{LOG_BYTES, OnCompile, Starter};
use crate::util::key;

/// What every driver uses.
pub(crate) struct Driving {
    pub(crate) pods: Arc<PodTable>,
    pub(crate) starter: Arc<Starter>,
    pub(crate) reporter: Reporter,
    /// The first wait before a restart.
    pub(crate) backoff: Duration,
}

/// How a driver begins.
pub(crate) enum Begin {
    /// Start the pod.
    Start,
    /// The pod already serves (restored from local state, published) under this handler.
    Restored(Arc<RunningPod>),
}

/// Both clocks, now.
fn now() -> Now {
    Now {
        instant: Instant::now(),
        wall: SystemTime::now(),
    }
}

/// Starts the driver of `pod` and registers it in the table.
pub(crate) fn spawn(driving: &Arc<Driving>, pod: Pod, begin: Begin) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let pod_key = key(&pod);
    let (events, queue) = mpsc::channel(DRIVER_QUEUE);
    let node = driving.pods.node().to_owned();
    let task = tokio::spawn(drive(driving.clone(), pod, begin, queue, node));
    driving.pods.adopt(uid, DriverHandle::new(pod_key, events, task));
}

/// What a start or a command run ended with: the event, and the pod it started.
type Outcome = (Event, Option<RunningPod>);

/// One pod's driver (see the module docs).
struct Driver {
    driving: Arc<Driving>,
    pod: Pod,
    key: String,
    machine: Machine,
    /// The command's output (commands only).
    logs: Option<Arc<LogBuffer>>,
    /// A start or a command run in progress.
    work: Option<Pin<Box<dyn Future<Output = Outcome> + Send>>>,
    /// A pod that started and is not yet published.
    started: Option<RunningPod>,
    /// The published pod.
    serving: Option<Arc<RunningPod>>,
    watcher: Option<Watcher>,
    /// When the back-off ends.
    restart_at: Option<tokio::time::Instant>,
    /// Whether the registry still holds the other end of the event queue.
    queue_open: bool,
    /// What a start in progress says of itself (`Compiling`); the driver keeps a sender, so
    /// this never closes.
    progress: mpsc::Receiver<Event>,
    progress_tx: mpsc::Sender<Event>,
}

/// Drives `pod` until it ended for good or is no longer this node's.
#[tracing::instrument(name = "pod", skip_all, fields(pod = %key(&pod), uid = pod.metadata.uid.as_deref().unwrap_or_default(), node = %node))]
async fn drive(
    driving: Arc<Driving>,
    pod: Pod,
    begin: Begin,
    mut queue: mpsc::Receiver<Event>,
    node: String,
) {
    let facts = PodFacts::of(&pod);
    let pod_key = key(&pod);
    let logs = (facts.workload == Workload::Command).then(|| {
        let logs = Arc::new(LogBuffer::new(LOG_BYTES));
        driving.pods.keep_command_logs(&pod_key, logs.clone());
        logs
    });
    let base = driving.backoff;
    let (machine, actions, serving) = match begin {
        Begin::Start => {
            let (m, actions) = Machine::start(facts, base, now());
            (m, actions, None)
        }
        Begin::Restored(running) => (Machine::restored(facts, base, now()), Vec::new(), Some(running)),
    };
    let (progress_tx, progress) = mpsc::channel(DRIVER_QUEUE);
    let mut d = Driver {
        driving,
        progress,
        progress_tx,
        key: pod_key,
        machine,
        logs,
        work: None,
        started: None,
        watcher: None,
        serving: None,
        restart_at: None,
        queue_open: true,
        pod,
    };
    if let Some(running) = serving {
        d.watch(running);
    }
    let mut actions = actions;
    loop {
        for a in std::mem::take(&mut actions) {
            d.perform(a).await;
        }
        if d.machine.state.is_final() && d.work.is_none() {
            break;
        }
        let event = d.next_event(&mut queue).await;
        let from = d.machine.state;
        let (machine, next) = step(d.machine.clone(), event);
        tracing::debug!(from = ?from, to = ?machine.state, actions = ?next, "pod lifecycle step");
        d.machine = machine;
        actions = next;
    }
    tracing::debug!(state = ?d.machine.state, "pod driver done");
}

impl Driver {
    /// Waits for the next event: from the registry, the work in progress, the watcher or the
    /// back-off timer.
    async fn next_event(&mut self, queue: &mut mpsc::Receiver<Event>) -> Event {
        let work = &mut self.work;
        let watcher = &mut self.watcher;
        let restart_at = self.restart_at;
        let queue_open = &mut self.queue_open;
        let progress = &mut self.progress;
        // Progress matters only while a start is in progress (so the `else` below still ends
        // a driver with nothing left to wait for).
        let in_progress = work.is_some();
        tokio::select! {
            // In this order (see the module docs).
            biased;
            e = queue.recv(), if *queue_open => e.unwrap_or_else(|| {
                // The registry forgot the pod (and told it so, unless it was gone already).
                *queue_open = false;
                Event::Delete
            }),
            Some(e) = progress.recv(), if in_progress => e,
            (e, started) = async { work.as_mut().expect("checked").await }, if work.is_some() => {
                *work = None;
                self.started = started;
                e
            }
            e = async { watcher.as_mut().expect("checked").next().await }, if watcher.is_some() => e,
            () = async { tokio::time::sleep_until(restart_at.expect("checked")).await }, if restart_at.is_some() => {
                self.restart_at = None;
                Event::BackOffElapsed { at: now() }
            }
            // Nothing left to wait for: only a stopped pod gets here (see `drive`).
            else => Event::Delete,
        }
    }

    /// Keeps `running` as the served pod and watches its probes and containers.
    fn watch(&mut self, running: Arc<RunningPod>) {
        self.watcher = Watcher::new(
            &self.pod,
            &self.key,
            running.clone(),
            self.driving.pods.containers.clone(),
        );
        self.serving = Some(running);
    }

    async fn perform(&mut self, action: Action) {
        match action {
            Action::Start => self.start(),
            Action::Serve { ready, restarts } => {
                let Some(mut running) = self.started.take() else {
                    return;
                };
                running.restarts = restarts;
                running.ready.store(ready, Ordering::Relaxed);
                let running = Arc::new(running);
                self.driving.pods.publish(&self.key, running.clone());
                tracing::info!(pod = %self.key, restarts, "pod running");
                self.watch(running);
            }
            Action::SetReady(ready) => {
                if let Some(r) = &self.serving {
                    r.ready.store(ready, Ordering::Relaxed);
                }
            }
            Action::Stop => {
                if self.work.take().is_some() {
                    tracing::info!(pod = %self.key, "command stopped");
                }
                self.watcher = None;
                if let Some(r) = self.serving.take() {
                    self.driving.pods.unpublish(&self.key, &r);
                }
                if let Some(r) = self.started.take() {
                    self.driving.pods.retire(&r);
                }
            }
            Action::Report(status) => {
                let start_back_off = matches!(self.machine.state, PodState::StartBackOff { .. });
                match (status.phase, status.reason.as_deref()) {
                    (_, Some(reason)) if start_back_off => {
                        tracing::warn!(pod = %self.key, reason, "pod cannot start: {}", status.message.as_deref().unwrap_or_default())
                    }
                    (_, Some("Compiling")) => {
                        tracing::info!(pod = %self.key, "{}", status.message.as_deref().unwrap_or_default())
                    }
                    (_, Some("CrashLoopBackOff")) => {
                        tracing::warn!(pod = %self.key, restarts = status.restarts, "{}", status.message.as_deref().unwrap_or_default())
                    }
                    (PodPhase::Failed, reason) => {
                        tracing::warn!(pod = %self.key, reason, error = status.message.as_deref().unwrap_or_default(), "pod failed")
                    }
                    (PodPhase::Succeeded, _) => tracing::info!(pod = %self.key, "pod succeeded"),
                    _ => {}
                }
                self.driving.reporter.report(&self.pod, &status).await;
            }
            Action::ScheduleRestart(after) => {
                self.restart_at = Some(tokio::time::Instant::now() + after);
            }
        }
    }

    /// Starts the pod in the background: builds it, or, for a command, runs it to its exit.
    fn start(&mut self) {
        let starter = self.driving.starter.clone();
        let pod = self.pod.clone();
        let progress = self.progress_tx.clone();
        let on_compile: OnCompile = Arc::new(move |component: &str| {
            let _ = progress.try_send(Event::Compiling {
                component: component.to_owned(),
            });
        });
        self.work = Some(match self.logs.clone() {
            None => Box::pin(async move {
                match starter.start(&pod, on_compile).await {
                    Ok(running) => (Event::Started { at: now() }, Some(running)),
                    Err(failure) => (Event::StartFailed { failure, at: now() }, None),
                }
            }),
            Some(logs) => {
                tracing::info!(pod = %self.key, restarts = self.machine.restarts(), "command running");
                Box::pin(async move {
                    let event = match starter.run_command(&pod, logs).await {
                        Ok(exit) => Event::CommandExited {
                            code: exit.code,
                            message: exit.message,
                            at: now(),
                        },
                        Err(failure) => Event::StartFailed { failure, at: now() },
                    };
                    (event, None)
                })
            }
        });
    }
}
