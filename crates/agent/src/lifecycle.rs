//! The lifecycle of one pod on this node, as a pure state machine.
//!
//! [`step`] takes a [`Machine`] (the pod's [`PodState`] and its counters) and one [`Event`] and
//! returns the next machine and the [`Action`]s to perform. It does no I/O, reads no clock (the
//! times it needs come in the events, as [`Now`]) and knows nothing of tokio: the pod's driver
//! task (`driver.rs`) performs the actions and feeds the events back.
//!
//! ```text
//!  start ──► Starting ──────── Started ────────► Running{ready, since} ◄──┐ ReadinessChanged
//!              ▲  │                               │    │  └──────────────┘
//!              │  │ StartFailed                   │    │ Hold (served pods)
//!  BackOffElapsed │ (retryable, not Never)        │    ▼
//!  (restarts + 1) ▼                               │   Held ── Release ──► Starting
//!        BackOff{until, attempt} ◄────────────────┘
//!                    LivenessFailed / ContainerExited / CommandExited ≠ 0, when restarted
//!
//!  Starting ── Compiling (reports reason Compiling) ──► Starting
//!  Starting ── StartFailed, not retryable, served, not Never ──► StartBackOff{until, attempt}
//!  StartBackOff ── BackOffElapsed (no restart counted) ──► Starting
//!
//!  StartFailed under Never (or not retryable, for a command), LivenessFailed under Never,
//!  an exit that is not restarted ───────────────────────────► Failed     (terminal)
//!  exit 0 (a command; a container under OnFailure / Never) ─► Succeeded  (terminal)
//!  Delete, from any state that is not terminal ─────────────► Stopped
//! ```
//!
//! A command skips `Starting`: it is `Running` while it runs (`Start` runs it to its exit).
//!
//! Two workloads share the machine and differ only in what starts and what ends them:
//!
//! - **Serve** (wasm HTTP, function and container pods): `Start` builds the pod, `Started`
//!   publishes it (`Serve`) and reports it `Running` (ready without a readiness probe). A
//!   liveness failure or a container exit stops it; then `restartPolicy` decides: a restart
//!   after the back-off (`CrashLoopBackOff` with the next restart time), `Failed` (reason
//!   `LivenessProbeFailed` / `ContainerExited`), or for a container that exited 0 under
//!   `OnFailure`/`Never`, `Succeeded` with reason `Completed`. While a start compiles a
//!   component the pod reports reason `Compiling` (phase `Pending`), as Kubernetes shows
//!   `ContainerCreating`. A start failure a retry is not expected to fix (an invalid component,
//!   a compile error, a missing artifact or image, …) keeps its own reason and waits on the node
//!   with the same growing back-off before the next try (`StartBackOff`, like Kubernetes'
//!   `ImagePullBackOff`): the pod stays, so no controller replaces it and nothing churns, and
//!   the restart count does not move (nothing ran). Under `Never` any start failure fails the
//!   pod.
//! - **Command** (`world: command`): the pod is reported `Running` and `Start` runs the command
//!   to its exit. Exit 0 is `Succeeded` (`Completed`); a failure is `Failed` (reason `Error` with
//!   the exit code, or the start failure's reason) unless the policy is `OnFailure` and a retry
//!   may help, in which case it runs again after the back-off.
//!
//! The back-off before a restart is `base · 2^n` (the agent's `restart_backoff`, 10 s by default)
//! capped at [`MAX_BACKOFF`], where `n` counts the back-to-back restarts and goes back to 0 once
//! a served pod ran for [`BACKOFF_RESET`]. `restarts` (`status.restartCount`) counts every restart.
use std::time::{Duration, Instant, SystemTime};

use skiff_api::{Pod, PodPhase, RestartPolicy, World};

use crate::failure::StartFailure;

/// Longest wait between two restarts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// After running this long, a restart waits the base delay again.
pub(crate) const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// Default first wait before a restart.
pub(crate) const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);

/// The wait before the restart that follows `previous` back-to-back restarts: `base · 2^previous`,
/// at most [`MAX_BACKOFF`].
pub(crate) fn backoff(base: Duration, previous: u32) -> Duration {
    base.saturating_mul(1u32 << previous.min(20)).min(MAX_BACKOFF)
}

/// A reading of both clocks, taken by whoever sends an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    /// For durations (back-off deadlines, how long a pod ran).
    pub(crate) instant: Instant,
    /// For the times written in the status.
    pub(crate) wall: SystemTime,
}

/// How a pod runs: what starts it and what ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Serves traffic until stopped: wasm HTTP, function and container pods.
    Serve,
    /// Runs its first component (`world: command`) once to its exit.
    Command,
}

/// What the machine needs to know of a pod: its spec's policy and the status it had when the
/// agent took it (the fields the agent does not change are written back as they were).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodFacts {
    pub(crate) workload: Workload,
    pub(crate) policy: RestartPolicy,
    /// Whether the pod is ready as soon as it runs (its first component has no readiness probe).
    pub(crate) ready_at_start: bool,
    /// Its `status.restartCount`.
    pub(crate) restarts: u32,
    /// Its `status.startTime`.
    pub(crate) start_time: Option<String>,
    /// Its `status.finishedAt`.
    pub(crate) finished_at: Option<String>,
    /// Its `status.exitCode`.
    pub(crate) exit_code: Option<i32>,
}

impl PodFacts {
    /// The facts of `pod` as the API has it.
    pub(crate) fn of(pod: &Pod) -> Self {
        let first = pod.spec.components.first();
        let command = first
            .and_then(|c| c.wasm.as_ref())
            .is_some_and(|w| w.world == World::Command);
        PodFacts {
            workload: if command {
                Workload::Command
            } else {
                Workload::Serve
            },
            policy: pod.spec.restart_policy,
            ready_at_start: first.is_none_or(|c| c.readiness_probe.is_none()),
            restarts: pod.status.restarts,
            start_time: pod.status.start_time.clone(),
            finished_at: pod.status.finished_at.clone(),
            exit_code: pod.status.exit_code,
        }
    }
}

/// Where a pod is in its lifecycle on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PodState {
    /// Being started (a served pod's components being loaded).
    Starting,
    /// Serving (or, for a command, running) since `since`; `ready` is its `status.ready`.
    Running { ready: bool, since: Instant },
    /// Waiting until `until` to start again; `attempt` back-to-back restarts so far.
    BackOff { until: Instant, attempt: u32 },
    /// Could not start for a reason a retry is not expected to fix (kept as the status
    /// reason); tries again at `until` without counting a restart; `attempt` back-to-back
    /// waits so far.
    StartBackOff { until: Instant, attempt: u32 },
    /// Stopped for lack of contact with the control plane (`disconnect.stopAfter`); starts again
    /// on [`Event::Release`].
    Held,
    /// Ended for good, successfully (terminal).
    Succeeded,
    /// Ended for good with an error (terminal).
    Failed,
    /// No longer this node's pod (deleted, re-created under a new uid, or terminal in the API).
    Stopped,
}

impl PodState {
    /// Whether nothing more happens to the pod on this node.
    pub(crate) fn is_final(self) -> bool {
        matches!(self, PodState::Succeeded | PodState::Failed | PodState::Stopped)
    }
}

/// What happened to a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Its components started (served pods).
    Started { at: Now },
    /// A start is compiling its component `component` (not yet compiled on this node).
    Compiling { component: String },
    /// It could not start (for a command: could not run).
    StartFailed { failure: StartFailure, at: Now },
    /// Its readiness probe flipped.
    ReadinessChanged { ready: bool, at: Now },
    /// Its liveness probe failed `failureThreshold` times in a row; why.
    LivenessFailed { why: String, at: Now },
    /// One of its containers ended with `code`.
    ContainerExited { component: String, code: i32, at: Now },
    /// Its command ended with `code` (0 is success); `message` says why when it was not a plain
    /// exit.
    CommandExited {
        code: i32,
        message: Option<String>,
        at: Now,
    },
    /// The back-off before a restart is over.
    BackOffElapsed { at: Now },
    /// It is no longer this node's pod.
    Delete,
    /// The node had no contact with the control plane for the pod's `stopAfter`.
    Hold,
    /// Contact is back and the control plane confirms the pod is still bound here, as `facts`.
    Release { facts: PodFacts },
}

/// The status fields the agent owns, as one report writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) phase: PodPhase,
    pub(crate) ready: bool,
    pub(crate) reason: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) start_time: Option<String>,
    pub(crate) finished_at: Option<String>,
    pub(crate) restarts: u32,
    pub(crate) exit_code: Option<i32>,
}

impl Status {
    /// A served pod running with `ready` after `restarts` restarts (`startTime` kept, else now).
    pub(crate) fn running(facts: &PodFacts, ready: bool, restarts: u32, wall: SystemTime) -> Status {
        Status {
            phase: PodPhase::Running,
            ready,
            reason: None,
            message: None,
            start_time: facts.start_time.clone().or_else(|| Some(rfc3339(wall))),
            finished_at: facts.finished_at.clone(),
            restarts,
            exit_code: facts.exit_code,
        }
    }
}

/// What the pod's driver does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Start the pod (a command: run it to its exit).
    Start,
    /// Publish the started pod to the data plane with this readiness and restart count, and
    /// watch it (probes, containers).
    Serve { ready: bool, restarts: u32 },
    /// Set the served pod's readiness.
    SetReady(bool),
    /// Stop what runs: unpublish the served pod and remove its containers, or abandon the
    /// running command (a start in progress finishes, and what it started is stopped then).
    Stop,
    /// Write these status fields.
    Report(Status),
    /// Send [`Event::BackOffElapsed`] after this long.
    ScheduleRestart(Duration),
}

/// One pod's lifecycle: its state and what it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Machine {
    pub(crate) state: PodState,
    facts: PodFacts,
    /// The first back-off.
    base: Duration,
    /// `status.restartCount`.
    restarts: u32,
    /// Back-to-back restarts so far (the exponent of the next back-off).
    backoffs: u32,
    /// Back-to-back start back-offs so far (their own exponent: a pod that finally started
    /// crash-loops from the base wait); back to 0 once it starts.
    start_backoffs: u32,
    /// Whether it ran (a crash loop then reports `Running`, else `Pending`).
    ran: bool,
    /// A command's `status.startTime`, the same in every report.
    command_started: Option<String>,
}

/// RFC 3339 with seconds, as status times are written.
fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A back-off as the status message says it (`200ms`, `1m20s`).
fn compact(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

impl Machine {
    fn new(facts: PodFacts, base: Duration, state: PodState) -> Self {
        Machine {
            state,
            base,
            restarts: facts.restarts,
            backoffs: 0,
            start_backoffs: 0,
            ran: facts.start_time.is_some(),
            command_started: None,
            facts,
        }
    }

    /// A pod to start now, after back-offs of `base · 2^n`.
    pub(crate) fn start(facts: PodFacts, base: Duration, at: Now) -> (Machine, Vec<Action>) {
        let mut m = Machine::new(facts, base, PodState::Starting);
        let actions = m.begin(at);
        (m, actions)
    }

    /// A pod restored from local state that already serves (ready, its restart count as stored).
    pub(crate) fn restored(facts: PodFacts, base: Duration, at: Now) -> Machine {
        Machine::new(
            facts,
            base,
            PodState::Running {
                ready: true,
                since: at.instant,
            },
        )
    }

    /// `status.restartCount` as the machine counts it.
    pub(crate) fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Starts (again): a served pod is `Starting`; a command is reported running as it runs.
    fn begin(&mut self, at: Now) -> Vec<Action> {
        match self.facts.workload {
            Workload::Serve => {
                self.state = PodState::Starting;
                vec![Action::Start]
            }
            Workload::Command => {
                let started = self
                    .command_started
                    .get_or_insert_with(|| self.facts.start_time.clone().unwrap_or_else(|| rfc3339(at.wall)))
                    .clone();
                self.state = PodState::Running {
                    ready: false,
                    since: at.instant,
                };
                vec![
                    Action::Report(Status {
                        phase: PodPhase::Running,
                        ready: false,
                        reason: None,
                        message: None,
                        start_time: Some(started),
                        finished_at: self.facts.finished_at.clone(),
                        restarts: self.restarts,
                        exit_code: self.facts.exit_code,
                    }),
                    Action::Start,
                ]
            }
        }
    }

    /// A served pod that ended with `reason`: failed under `Never`, else a restart after the
    /// back-off.
    fn crash_loop(&mut self, reason: &str, why: String, at: Now) -> Vec<Action> {
        if self.facts.policy == RestartPolicy::Never {
            self.state = PodState::Failed;
            return vec![Action::Report(Status {
                phase: PodPhase::Failed,
                ready: false,
                reason: Some(reason.into()),
                message: Some(why),
                start_time: self.facts.start_time.clone(),
                finished_at: Some(rfc3339(at.wall)),
                restarts: self.restarts,
                exit_code: self.facts.exit_code,
            })];
        }
        let delay = backoff(self.base, self.backoffs);
        self.backoffs = self.backoffs.saturating_add(1);
        let next = humantime::format_rfc3339_millis(at.wall + delay);
        let message = format!(
            "back-off {} restarting the pod ({reason}: {why}); next restart at {next}",
            compact(delay)
        );
        self.state = PodState::BackOff {
            until: at.instant + delay,
            attempt: self.backoffs,
        };
        vec![
            Action::Report(Status {
                phase: self.waiting_phase(),
                ready: false,
                reason: Some("CrashLoopBackOff".into()),
                message: Some(message),
                start_time: self.facts.start_time.clone(),
                finished_at: None,
                restarts: self.restarts,
                exit_code: self.facts.exit_code,
            }),
            Action::ScheduleRestart(delay),
        ]
    }

    /// A served pod that could not start for a reason a retry is not expected to fix: it keeps
    /// the failure's reason and tries again after the back-off, without counting a restart.
    fn start_back_off(&mut self, failure: StartFailure, at: Now) -> Vec<Action> {
        let delay = backoff(self.base, self.start_backoffs);
        self.start_backoffs = self.start_backoffs.saturating_add(1);
        let next = humantime::format_rfc3339_millis(at.wall + delay);
        self.state = PodState::StartBackOff {
            until: at.instant + delay,
            attempt: self.start_backoffs,
        };
        vec![
            Action::Report(Status {
                phase: self.waiting_phase(),
                ready: false,
                reason: Some(failure.reason().into()),
                message: Some(format!(
                    "back-off {} before trying to start again (next try at {next}): {}",
                    compact(delay),
                    failure.message
                )),
                start_time: self.facts.start_time.clone(),
                finished_at: None,
                restarts: self.restarts,
                exit_code: self.facts.exit_code,
            }),
            Action::ScheduleRestart(delay),
        ]
    }

    /// The phase of a served pod that is not running now: `Running` once it ran (a crash
    /// loop), else `Pending`.
    fn waiting_phase(&self) -> PodPhase {
        if self.ran {
            PodPhase::Running
        } else {
            PodPhase::Pending
        }
    }

    /// A served pod stopped while running since `since`: the back-off starts over after
    /// [`BACKOFF_RESET`] of running.
    fn ran_since(&mut self, since: Instant, at: Now) {
        if at.instant.saturating_duration_since(since) >= BACKOFF_RESET {
            self.backoffs = 0;
        }
    }

    /// A command that ended with `reason` (`code` when it exited): failed, or run again after
    /// the back-off under `OnFailure` when a retry may help.
    fn command_failed(
        &mut self,
        code: Option<i32>,
        reason: &str,
        message: String,
        retryable: bool,
        at: Now,
    ) -> Vec<Action> {
        let started = self.command_started.clone();
        if self.facts.policy != RestartPolicy::OnFailure || !retryable {
            self.state = PodState::Failed;
            return vec![Action::Report(Status {
                phase: PodPhase::Failed,
                ready: false,
                reason: Some(reason.into()),
                message: Some(message),
                start_time: started,
                finished_at: Some(rfc3339(at.wall)),
                restarts: self.restarts,
                exit_code: code,
            })];
        }
        let delay = backoff(self.base, self.backoffs);
        self.backoffs = self.backoffs.saturating_add(1);
        self.state = PodState::BackOff {
            until: at.instant + delay,
            attempt: self.backoffs,
        };
        vec![
            Action::Report(Status {
                phase: PodPhase::Running,
                ready: false,
                reason: Some("CrashLoopBackOff".into()),
                message: Some(format!(
                    "back-off {} restarting the command ({reason}: {message})",
                    compact(delay)
                )),
                start_time: started,
                finished_at: self.facts.finished_at.clone(),
                restarts: self.restarts,
                exit_code: code,
            }),
            Action::ScheduleRestart(delay),
        ]
    }
}

/// The next state of `m` after `event`, and what to do (see the module docs).
pub(crate) fn step(mut m: Machine, event: Event) -> (Machine, Vec<Action>) {
    use PodState::*;
    use Workload::*;
    let actions = match (m.facts.workload, m.state, event) {
        // Not this node's pod any more: stop what runs; a start in progress is stopped when it
        // reports (below).
        (_, Running { .. }, Event::Delete) => {
            m.state = Stopped;
            vec![Action::Stop]
        }
        (_, Starting | BackOff { .. } | StartBackOff { .. } | Held, Event::Delete) => {
            m.state = Stopped;
            Vec::new()
        }

        // No contact past stopAfter: a served pod stops until released.
        (Serve, Running { .. }, Event::Hold) => {
            m.state = Held;
            vec![Action::Stop]
        }
        (_, Held, Event::Release { facts }) => {
            let base = m.base;
            m = Machine::new(facts, base, Starting);
            vec![Action::Start]
        }

        // A served pod started.
        (Serve, Starting, Event::Started { at }) => {
            let ready = m.facts.ready_at_start;
            m.state = Running {
                ready,
                since: at.instant,
            };
            m.ran = true;
            m.start_backoffs = 0;
            vec![
                Action::Serve {
                    ready,
                    restarts: m.restarts,
                },
                Action::Report(Status::running(&m.facts, ready, m.restarts, at.wall)),
            ]
        }
        // Started after all, but no longer wanted (deleted or held meanwhile).
        (Serve, _, Event::Started { .. }) => vec![Action::Stop],
        // The start waits for a compile: say so (a command already reports Running).
        (Serve, Starting, Event::Compiling { component }) => vec![Action::Report(Status {
            phase: m.waiting_phase(),
            ready: false,
            reason: Some("Compiling".into()),
            message: Some(format!(
                "compiling component {component} (its first start on this node); the pod starts once it is compiled"
            )),
            start_time: m.facts.start_time.clone(),
            finished_at: m.facts.finished_at.clone(),
            restarts: m.restarts,
            exit_code: m.facts.exit_code,
        })],
        (Serve, Starting, Event::StartFailed { failure, at })
            if m.facts.policy != RestartPolicy::Never && !failure.retryable() =>
        {
            m.start_back_off(failure, at)
        }
        (Serve, Starting, Event::StartFailed { failure, at }) => {
            if m.facts.policy == RestartPolicy::Never {
                m.state = Failed;
                vec![Action::Report(Status {
                    phase: PodPhase::Failed,
                    ready: false,
                    reason: Some(failure.reason().into()),
                    message: Some(failure.message),
                    start_time: m.facts.start_time.clone(),
                    finished_at: Some(rfc3339(at.wall)),
                    restarts: m.restarts,
                    exit_code: m.facts.exit_code,
                })]
            } else {
                m.crash_loop(failure.reason(), failure.message, at)
            }
        }

        // Probes and containers of a served pod.
        (Serve, Running { ready, since }, Event::ReadinessChanged { ready: now, at }) => {
            if now == ready {
                Vec::new()
            } else {
                m.state = Running { ready: now, since };
                vec![
                    Action::SetReady(now),
                    Action::Report(Status::running(&m.facts, now, m.restarts, at.wall)),
                ]
            }
        }
        (Serve, Running { since, .. }, Event::LivenessFailed { why, at }) => {
            m.ran_since(since, at);
            let mut actions = vec![Action::Stop];
            actions.extend(m.crash_loop("LivenessProbeFailed", why, at));
            actions
        }
        (Serve, Running { since, .. }, Event::ContainerExited { component, code, at }) => {
            m.ran_since(since, at);
            let why = format!("container {component} exited with code {code}");
            let done = match m.facts.policy {
                RestartPolicy::Always => false,
                RestartPolicy::OnFailure => code == 0,
                RestartPolicy::Never => true,
            };
            let mut actions = vec![Action::Stop];
            if done {
                m.state = if code == 0 { Succeeded } else { Failed };
                actions.push(Action::Report(Status {
                    phase: if code == 0 {
                        PodPhase::Succeeded
                    } else {
                        PodPhase::Failed
                    },
                    ready: false,
                    reason: Some(if code == 0 { "Completed" } else { "ContainerExited" }.into()),
                    message: Some(why),
                    start_time: m.facts.start_time.clone(),
                    finished_at: Some(rfc3339(at.wall)),
                    restarts: m.restarts,
                    exit_code: Some(code),
                }));
            } else {
                actions.extend(m.crash_loop("ContainerExited", why, at));
            }
            actions
        }

        // A command's run ended.
        (Command, Running { .. }, Event::CommandExited { code: 0, at, .. }) => {
            m.state = Succeeded;
            vec![Action::Report(Status {
                phase: PodPhase::Succeeded,
                ready: false,
                reason: Some("Completed".into()),
                message: None,
                start_time: m.command_started.clone(),
                finished_at: Some(rfc3339(at.wall)),
                restarts: m.restarts,
                exit_code: Some(0),
            })]
        }
        (Command, Running { .. }, Event::CommandExited { code, message, at }) => {
            m.command_failed(Some(code), "Error", message.unwrap_or_default(), true, at)
        }
        (Command, Running { .. }, Event::StartFailed { failure, at }) => {
            let retryable = failure.retryable();
            m.command_failed(None, failure.reason(), failure.message, retryable, at)
        }

        // The back-off is over: start again, one restart more.
        (_, BackOff { .. }, Event::BackOffElapsed { at }) => {
            m.restarts = m.restarts.saturating_add(1);
            m.begin(at)
        }
        // Try the start again; nothing ran, so no restart is counted.
        (Serve, StartBackOff { .. }, Event::BackOffElapsed { at }) => m.begin(at),

        // Anything else changes nothing (late probe results, a second Delete, events after the
        // end).
        _ => Vec::new(),
    };
    (m, actions)
}

#[cfg(test)]
mod tests;
