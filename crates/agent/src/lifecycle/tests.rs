//! Transitions of the pod lifecycle machine: plain values in, plain values out (no processes, no
//! runtime, no clock but the fixed one below).
use std::time::{Duration, Instant, UNIX_EPOCH};

use skiff_api::{PodPhase, RestartPolicy};

use super::*;
use crate::failure::{FailureKind, StartFailure};

const BASE: Duration = Duration::from_secs(10);

/// A fixed origin: `at(s)` is `s` seconds after 2023-11-14T22:13:20Z.
fn origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn at(secs: u64) -> Now {
    Now {
        instant: origin() + Duration::from_secs(secs),
        wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs),
    }
}

fn facts(workload: Workload, policy: RestartPolicy) -> PodFacts {
    PodFacts {
        workload,
        policy,
        ready_at_start: true,
        restarts: 0,
        start_time: None,
        finished_at: None,
        exit_code: None,
    }
}

fn serve(policy: RestartPolicy) -> PodFacts {
    facts(Workload::Serve, policy)
}

fn command(policy: RestartPolicy) -> PodFacts {
    facts(Workload::Command, policy)
}

fn failure(kind: FailureKind) -> StartFailure {
    StartFailure::new(kind, "why")
}

/// Feeds `events` one by one; returns the machine and the actions of the last one.
fn feed(mut m: Machine, events: impl IntoIterator<Item = Event>) -> (Machine, Vec<Action>) {
    let mut last = Vec::new();
    for e in events {
        (m, last) = step(m, e);
    }
    (m, last)
}

/// A served pod started at `at(0)` and running since `at(1)`.
fn running(policy: RestartPolicy) -> Machine {
    let (m, _) = Machine::start(serve(policy), BASE, at(0));
    feed(m, [Event::Started { at: at(1) }]).0
}

/// The status a report action carries.
fn reported(actions: &[Action]) -> Status {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Report(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no report in {actions:?}"))
}

fn scheduled(actions: &[Action]) -> Option<Duration> {
    actions.iter().find_map(|a| match a {
        Action::ScheduleRestart(d) => Some(*d),
        _ => None,
    })
}

#[test]
fn backoff_doubles_from_the_base_and_stops_at_five_minutes() {
    let waits: Vec<u64> = (0..8).map(|n| backoff(BASE, n).as_secs()).collect();
    assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(backoff(BASE, u32::MAX), MAX_BACKOFF);
    let fast = Duration::from_millis(200);
    assert_eq!(backoff(fast, 0), fast);
    assert_eq!(backoff(fast, 3), Duration::from_millis(1600));
}

#[test]
fn a_started_pod_runs_ready_unless_it_has_a_readiness_probe() {
    for ready_at_start in [true, false] {
        let f = PodFacts {
            ready_at_start,
            ..serve(RestartPolicy::Always)
        };
        let (m, actions) = Machine::start(f, BASE, at(0));
        assert_eq!(m.state, PodState::Starting);
        assert_eq!(actions, [Action::Start]);
        let (m, actions) = step(m, Event::Started { at: at(1) });
        assert_eq!(
            m.state,
            PodState::Running {
                ready: ready_at_start,
                since: at(1).instant
            }
        );
        assert_eq!(
            actions,
            [
                Action::Serve {
                    ready: ready_at_start,
                    restarts: 0
                },
                Action::Report(Status {
                    phase: PodPhase::Running,
                    ready: ready_at_start,
                    reason: None,
                    message: None,
                    start_time: Some("2023-11-14T22:13:21Z".into()),
                    finished_at: None,
                    restarts: 0,
                    exit_code: None,
                })
            ]
        );
    }
}

#[test]
fn a_known_start_time_and_the_fields_the_agent_does_not_change_are_kept() {
    let f = PodFacts {
        restarts: 2,
        start_time: Some("2020-01-01T00:00:00Z".into()),
        finished_at: Some("2020-01-02T00:00:00Z".into()),
        exit_code: Some(3),
        ..serve(RestartPolicy::Always)
    };
    let (m, _) = Machine::start(f, BASE, at(0));
    let (_, actions) = step(m, Event::Started { at: at(1) });
    let s = reported(&actions);
    assert_eq!(s.start_time.as_deref(), Some("2020-01-01T00:00:00Z"));
    assert_eq!(s.finished_at.as_deref(), Some("2020-01-02T00:00:00Z"));
    assert_eq!((s.restarts, s.exit_code), (2, Some(3)));
    assert_eq!(
        actions[0],
        Action::Serve {
            ready: true,
            restarts: 2
        }
    );
}

#[test]
fn readiness_flips_are_reported_and_repeats_are_not() {
    let f = PodFacts {
        ready_at_start: false,
        ..serve(RestartPolicy::Always)
    };
    let (m, _) = Machine::start(f, BASE, at(0));
    let (m, _) = step(m, Event::Started { at: at(1) });
    let cases = [(true, true), (true, false), (false, true), (false, false)];
    let mut m = m;
    for (ready, changes) in cases {
        let (next, actions) = step(m, Event::ReadinessChanged { ready, at: at(5) });
        assert_eq!(
            next.state,
            PodState::Running {
                ready,
                since: at(1).instant
            }
        );
        if changes {
            assert_eq!(actions[0], Action::SetReady(ready));
            let s = reported(&actions);
            assert_eq!((s.phase, s.ready, s.reason), (PodPhase::Running, ready, None));
        } else {
            assert!(actions.is_empty(), "{actions:?}");
        }
        m = next;
    }
}

#[test]
fn a_liveness_failure_restarts_after_the_back_off_unless_the_policy_is_never() {
    for policy in [
        RestartPolicy::Always,
        RestartPolicy::OnFailure,
        RestartPolicy::Never,
    ] {
        let (m, actions) = step(
            running(policy),
            Event::LivenessFailed {
                why: "GET /nope answered 404".into(),
                at: at(10),
            },
        );
        assert_eq!(actions[0], Action::Stop, "{policy:?}");
        let s = reported(&actions);
        if policy == RestartPolicy::Never {
            assert_eq!(m.state, PodState::Failed);
            assert_eq!(
                s,
                Status {
                    phase: PodPhase::Failed,
                    ready: false,
                    reason: Some("LivenessProbeFailed".into()),
                    message: Some("GET /nope answered 404".into()),
                    start_time: None,
                    finished_at: Some("2023-11-14T22:13:30Z".into()),
                    restarts: 0,
                    exit_code: None,
                }
            );
            assert_eq!(scheduled(&actions), None);
        } else {
            assert_eq!(
                m.state,
                PodState::BackOff {
                    until: at(20).instant,
                    attempt: 1
                },
                "{policy:?}"
            );
            assert_eq!(
                s,
                Status {
                    phase: PodPhase::Running,
                    ready: false,
                    reason: Some("CrashLoopBackOff".into()),
                    message: Some(
                        "back-off 10s restarting the pod (LivenessProbeFailed: GET /nope answered 404); \
                         next restart at 2023-11-14T22:13:40.000Z"
                            .into()
                    ),
                    start_time: None,
                    finished_at: None,
                    restarts: 0,
                    exit_code: None,
                }
            );
            assert_eq!(scheduled(&actions), Some(BASE));
            let (m, actions) = step(m, Event::BackOffElapsed { at: at(20) });
            assert_eq!((m.state, m.restarts()), (PodState::Starting, 1));
            assert_eq!(actions, [Action::Start]);
            let (_, actions) = step(m, Event::Started { at: at(21) });
            assert_eq!(reported(&actions).restarts, 1, "restartCount counts the restart");
        }
    }
}

#[test]
fn a_container_exit_follows_the_restart_policy() {
    use RestartPolicy::*;
    // (policy, exit code, restarted, final state, reason)
    let table = [
        (Always, 0, true, None, "CrashLoopBackOff"),
        (Always, 1, true, None, "CrashLoopBackOff"),
        (OnFailure, 0, false, Some(PodState::Succeeded), "Completed"),
        (OnFailure, 1, true, None, "CrashLoopBackOff"),
        (Never, 0, false, Some(PodState::Succeeded), "Completed"),
        (Never, 137, false, Some(PodState::Failed), "ContainerExited"),
    ];
    for (policy, code, restarted, end, reason) in table {
        let (m, actions) = step(
            running(policy),
            Event::ContainerExited {
                component: "web".into(),
                code,
                at: at(5),
            },
        );
        let case = format!("{policy:?} exit {code}");
        assert_eq!(actions[0], Action::Stop, "{case}");
        let s = reported(&actions);
        assert_eq!(s.reason.as_deref(), Some(reason), "{case}");
        let why = format!("container web exited with code {code}");
        if restarted {
            assert!(matches!(m.state, PodState::BackOff { .. }), "{case}");
            assert_eq!(s.phase, PodPhase::Running, "{case}");
            assert!(
                s.message
                    .as_deref()
                    .unwrap()
                    .contains(&format!("(ContainerExited: {why})")),
                "{case}: {s:?}"
            );
            assert_eq!(s.exit_code, None, "{case}");
            assert_eq!(scheduled(&actions), Some(BASE), "{case}");
        } else {
            assert_eq!(Some(m.state), end, "{case}");
            let phase = if code == 0 {
                PodPhase::Succeeded
            } else {
                PodPhase::Failed
            };
            assert_eq!(
                s,
                Status {
                    phase,
                    ready: false,
                    reason: Some(reason.into()),
                    message: Some(why),
                    start_time: None,
                    finished_at: Some("2023-11-14T22:13:25Z".into()),
                    restarts: 0,
                    exit_code: Some(code),
                },
                "{case}"
            );
            assert_eq!(scheduled(&actions), None, "{case}");
            assert!(m.state.is_final());
        }
    }
}

#[test]
fn a_command_is_reported_running_as_it_runs() {
    let (m, actions) = Machine::start(command(RestartPolicy::Never), BASE, at(0));
    assert!(matches!(m.state, PodState::Running { ready: false, .. }));
    assert_eq!(
        actions,
        [
            Action::Report(Status {
                phase: PodPhase::Running,
                ready: false,
                reason: None,
                message: None,
                start_time: Some("2023-11-14T22:13:20Z".into()),
                finished_at: None,
                restarts: 0,
                exit_code: None,
            }),
            Action::Start
        ]
    );
}

#[test]
fn a_command_exit_follows_the_restart_policy() {
    use RestartPolicy::*;
    let exit = |code: i32| Event::CommandExited {
        code,
        message: (code != 0).then(|| "boom".to_owned()),
        at: at(30),
    };
    let start_failed = |kind| Event::StartFailed {
        failure: failure(kind),
        at: at(30),
    };
    // (policy, event, state after, reason, exit code)
    let table = [
        (OnFailure, exit(0), "Succeeded", "Completed", Some(0)),
        (Never, exit(0), "Succeeded", "Completed", Some(0)),
        (Always, exit(0), "Succeeded", "Completed", Some(0)),
        (OnFailure, exit(1), "BackOff", "CrashLoopBackOff", Some(1)),
        (Never, exit(1), "Failed", "Error", Some(1)),
        (Always, exit(1), "Failed", "Error", Some(1)),
        (
            OnFailure,
            start_failed(FailureKind::InstantiateError),
            "BackOff",
            "CrashLoopBackOff",
            None,
        ),
        (
            OnFailure,
            start_failed(FailureKind::CompileError),
            "Failed",
            "CompileError",
            None,
        ),
        (
            Never,
            start_failed(FailureKind::InstantiateError),
            "Failed",
            "InstantiateError",
            None,
        ),
    ];
    for (policy, event, state, reason, code) in table {
        let case = format!("{policy:?} {event:?}");
        let (m, _) = Machine::start(command(policy), BASE, at(0));
        let (m, actions) = step(m, event);
        let s = reported(&actions);
        assert_eq!(format!("{:?}", m.state).split(' ').next(), Some(state), "{case}");
        assert_eq!(s.reason.as_deref(), Some(reason), "{case}");
        assert_eq!(s.exit_code, code, "{case}");
        assert_eq!(
            s.start_time.as_deref(),
            Some("2023-11-14T22:13:20Z"),
            "{case}: every report keeps the first start"
        );
        match state {
            "BackOff" => {
                assert_eq!(s.phase, PodPhase::Running, "{case}");
                assert_eq!(s.finished_at, None, "{case}");
                let detail = if code.is_some() {
                    "Error: boom"
                } else {
                    "InstantiateError: why"
                };
                assert_eq!(
                    s.message.as_deref(),
                    Some(format!("back-off 10s restarting the command ({detail})").as_str()),
                    "{case}"
                );
                assert_eq!(scheduled(&actions), Some(BASE), "{case}");
            }
            _ => {
                assert_eq!(s.finished_at.as_deref(), Some("2023-11-14T22:13:50Z"), "{case}");
                assert!(m.state.is_final(), "{case}");
                assert_eq!(scheduled(&actions), None, "{case}");
            }
        }
    }
}

#[test]
fn a_failing_command_runs_again_with_growing_back_off_and_the_same_start_time() {
    let (mut m, _) = Machine::start(command(RestartPolicy::OnFailure), BASE, at(0));
    for (n, wait) in [10, 20, 40].into_iter().enumerate() {
        let t = 100 * n as u64 + 1;
        let (next, actions) = step(
            m,
            Event::CommandExited {
                code: 1,
                message: None,
                at: at(t),
            },
        );
        assert_eq!(scheduled(&actions), Some(Duration::from_secs(wait)));
        assert_eq!(reported(&actions).restarts, n as u32);
        let (next, actions) = step(next, Event::BackOffElapsed { at: at(t + wait) });
        let s = reported(&actions);
        assert_eq!(
            (s.phase, s.reason, s.restarts),
            (PodPhase::Running, None, n as u32 + 1)
        );
        assert_eq!(s.start_time.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(actions[1], Action::Start);
        m = next;
    }
}

#[test]
fn retried_starts_wait_longer_each_time_and_count_restarts() {
    let (mut m, _) = Machine::start(serve(RestartPolicy::Always), BASE, at(0));
    let mut t = 0;
    let mut waits = Vec::new();
    for n in 0..7u32 {
        let (next, actions) = step(
            m,
            Event::StartFailed {
                failure: failure(FailureKind::InstantiateError),
                at: at(t),
            },
        );
        let wait = scheduled(&actions).unwrap();
        waits.push(wait.as_secs());
        let s = reported(&actions);
        assert_eq!(s.restarts, n);
        assert!(
            s.message.as_deref().unwrap().starts_with(&format!(
                "back-off {} restarting the pod (InstantiateError: why); next restart at ",
                humantime::format_duration(wait).to_string().replace(' ', "")
            )),
            "{s:?}"
        );
        assert_eq!(
            next.state,
            PodState::BackOff {
                until: at(t).instant + wait,
                attempt: n + 1
            }
        );
        t += wait.as_secs();
        let (next, actions) = step(next, Event::BackOffElapsed { at: at(t) });
        assert_eq!(actions, [Action::Start]);
        assert_eq!(next.restarts(), n + 1);
        m = next;
    }
    assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
}

#[test]
fn the_back_off_starts_over_after_ten_minutes_of_running() {
    let m = running(RestartPolicy::Always);
    let fail = |secs| Event::LivenessFailed {
        why: "down".into(),
        at: at(secs),
    };
    // Two quick failures: 10 s, then 20 s.
    let (m, a) = step(m, fail(2));
    assert_eq!(scheduled(&a), Some(Duration::from_secs(10)));
    let (m, _) = feed(
        m,
        [
            Event::BackOffElapsed { at: at(12) },
            Event::Started { at: at(13) },
        ],
    );
    let (m, a) = step(m, fail(14));
    assert_eq!(scheduled(&a), Some(Duration::from_secs(20)));
    // Then it runs for 10 minutes before failing again: back to the base.
    let (m, _) = feed(
        m,
        [
            Event::BackOffElapsed { at: at(34) },
            Event::Started { at: at(35) },
        ],
    );
    let (m, a) = step(m, fail(35 + 600));
    assert_eq!(scheduled(&a), Some(BASE));
    // A run just short of it keeps the count going.
    let (m, _) = feed(
        m,
        [
            Event::BackOffElapsed { at: at(700) },
            Event::Started { at: at(701) },
        ],
    );
    let (m, a) = step(m, fail(701 + 599));
    assert_eq!(scheduled(&a), Some(Duration::from_secs(20)));
    assert_eq!(m.restarts(), 3);
}

#[test]
fn delete_stops_the_pod_in_every_state() {
    // Running: what runs is stopped.
    let (m, a) = step(running(RestartPolicy::Always), Event::Delete);
    assert_eq!((m.state, a), (PodState::Stopped, vec![Action::Stop]));

    // Starting: nothing runs yet; what the start brings is stopped when it comes, a failure is
    // not reported.
    let (m, _) = Machine::start(serve(RestartPolicy::Always), BASE, at(0));
    let (m, a) = step(m, Event::Delete);
    assert_eq!((m.state, a), (PodState::Stopped, vec![]));
    assert!(m.state.is_final());
    let (m2, a) = step(m.clone(), Event::Started { at: at(1) });
    assert_eq!((m2.state, a), (PodState::Stopped, vec![Action::Stop]));
    let (m2, a) = step(
        m,
        Event::StartFailed {
            failure: failure(FailureKind::InvalidSpec),
            at: at(1),
        },
    );
    assert_eq!((m2.state, a), (PodState::Stopped, vec![]));

    // Back-off: no restart follows.
    let (m, _) = step(
        running(RestartPolicy::Always),
        Event::LivenessFailed {
            why: "down".into(),
            at: at(2),
        },
    );
    let (m, a) = step(m, Event::Delete);
    assert_eq!((m.state, a), (PodState::Stopped, vec![]));
    let (m, a) = step(m, Event::BackOffElapsed { at: at(12) });
    assert_eq!((m.state, a), (PodState::Stopped, vec![]));

    // A running command is stopped; a second delete changes nothing.
    let (m, _) = Machine::start(command(RestartPolicy::OnFailure), BASE, at(0));
    let (m, a) = step(m, Event::Delete);
    assert_eq!((m.state, a), (PodState::Stopped, vec![Action::Stop]));
    let (m, a) = step(m, Event::Delete);
    assert_eq!((m.state, a), (PodState::Stopped, vec![]));
}

#[test]
fn a_held_pod_stops_until_released_and_starts_again_as_the_control_plane_has_it() {
    let (m, a) = step(running(RestartPolicy::Always), Event::Hold);
    assert_eq!((m.state, a), (PodState::Held, vec![Action::Stop]));
    // Held: nothing restarts it, a second hold changes nothing.
    for e in [Event::Hold, Event::BackOffElapsed { at: at(50) }] {
        let (next, a) = step(m.clone(), e);
        assert_eq!((next.state, a), (PodState::Held, vec![]));
    }
    // Released with the pod's current status: started again, its restart count and start time kept.
    let fresh = PodFacts {
        restarts: 3,
        start_time: Some("2023-11-14T22:13:21Z".into()),
        ..serve(RestartPolicy::Always)
    };
    let (m, a) = step(m, Event::Release { facts: fresh });
    assert_eq!((m.state, a), (PodState::Starting, vec![Action::Start]));
    let (m, a) = step(m, Event::Started { at: at(60) });
    assert_eq!(
        a[0],
        Action::Serve {
            ready: true,
            restarts: 3
        }
    );
    let s = reported(&a);
    assert_eq!(s.start_time.as_deref(), Some("2023-11-14T22:13:21Z"));
    assert_eq!((s.phase, s.ready, s.restarts), (PodPhase::Running, true, 3));
    // The back-off starts from the base again.
    let (_, a) = step(
        m,
        Event::LivenessFailed {
            why: "down".into(),
            at: at(61),
        },
    );
    assert_eq!(scheduled(&a), Some(BASE));

    // Deleted while held: stopped for good.
    let (m, _) = step(running(RestartPolicy::Always), Event::Hold);
    let (m, a) = step(m, Event::Delete);
    assert_eq!((m.state, a), (PodState::Stopped, vec![]));
}

#[test]
fn only_a_serving_pod_is_held_and_only_a_held_one_released() {
    let (starting, _) = Machine::start(serve(RestartPolicy::Always), BASE, at(0));
    let (backing_off, _) = step(
        running(RestartPolicy::Always),
        Event::LivenessFailed {
            why: "down".into(),
            at: at(2),
        },
    );
    let (cmd, _) = Machine::start(command(RestartPolicy::Never), BASE, at(0));
    for m in [starting, backing_off, cmd] {
        let state = m.state;
        let (next, a) = step(m.clone(), Event::Hold);
        assert_eq!((next.state, a), (state, vec![]));
        let (next, a) = step(
            m,
            Event::Release {
                facts: serve(RestartPolicy::Always),
            },
        );
        assert_eq!((next.state, a), (state, vec![]));
    }
}

#[test]
fn a_restored_pod_is_running_and_ready_at_once() {
    for (start_time, crash_phase) in [
        (Some("2023-11-14T22:00:00Z".to_owned()), PodPhase::Running),
        (None, PodPhase::Pending),
    ] {
        let f = PodFacts {
            ready_at_start: false,
            restarts: 4,
            start_time,
            ..serve(RestartPolicy::Always)
        };
        let m = Machine::restored(f, BASE, at(0));
        assert_eq!(
            m.state,
            PodState::Running {
                ready: true,
                since: at(0).instant
            }
        );
        assert_eq!(m.restarts(), 4);
        // It is watched like any running pod: a liveness failure is a crash loop from the base.
        let (m, a) = step(
            m,
            Event::LivenessFailed {
                why: "down".into(),
                at: at(3),
            },
        );
        assert!(matches!(m.state, PodState::BackOff { .. }));
        let s = reported(&a);
        assert_eq!((s.phase, s.restarts), (crash_phase, 4));
        assert_eq!(scheduled(&a), Some(BASE));
    }
}

#[test]
fn ended_pods_ignore_everything() {
    let (failed, _) = step(
        running(RestartPolicy::Never),
        Event::LivenessFailed {
            why: "down".into(),
            at: at(2),
        },
    );
    let (succeeded, _) = step(
        running(RestartPolicy::OnFailure),
        Event::ContainerExited {
            component: "web".into(),
            code: 0,
            at: at(2),
        },
    );
    for m in [failed, succeeded] {
        let state = m.state;
        assert!(state.is_final());
        for e in [
            Event::Delete,
            Event::Hold,
            Event::BackOffElapsed { at: at(9) },
            Event::ReadinessChanged {
                ready: true,
                at: at(9),
            },
            Event::LivenessFailed {
                why: "late".into(),
                at: at(9),
            },
        ] {
            let (next, a) = step(m.clone(), e);
            assert_eq!((next.state, a), (state, vec![]));
        }
    }
}

#[test]
fn facts_come_from_the_pod() {
    let pod: skiff_api::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "job-1", "namespace": "default", "uid": "u1"},
        "spec": {
            "restartPolicy": "OnFailure",
            "components": [{"name": "run", "wasm": {"digest": "sha256:00", "world": "command"}}]
        },
        "status": {"phase": "Running", "restartCount": 2, "startTime": "2023-11-14T22:13:20Z"}
    }))
    .unwrap();
    let f = PodFacts::of(&pod);
    assert_eq!(f.workload, Workload::Command);
    assert_eq!(f.policy, RestartPolicy::OnFailure);
    assert!(f.ready_at_start);
    assert_eq!(f.restarts, 2);
    assert_eq!(f.start_time.as_deref(), Some("2023-11-14T22:13:20Z"));
}

/// Start failures that wait on the node, and the `Compiling` report.
mod start;
