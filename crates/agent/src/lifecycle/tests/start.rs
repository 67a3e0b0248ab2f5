//! Starting: the `Compiling` report, and start failures that wait on the node
//! (`StartBackOff`) instead of failing the pod, so that no controller churns new pods.
use super::*;

/// A served pod whose start failed at `at(t)` with `kind`.
fn failed_start(policy: RestartPolicy, kind: FailureKind, t: u64) -> (Machine, Vec<Action>) {
    let (m, _) = Machine::start(serve(policy), BASE, at(0));
    step(
        m,
        Event::StartFailed {
            failure: failure(kind),
            at: at(t),
        },
    )
}

fn state_name(s: PodState) -> &'static str {
    match s {
        PodState::Starting => "Starting",
        PodState::Running { .. } => "Running",
        PodState::BackOff { .. } => "BackOff",
        PodState::StartBackOff { .. } => "StartBackOff",
        PodState::Held => "Held",
        PodState::Succeeded => "Succeeded",
        PodState::Failed => "Failed",
        PodState::Stopped => "Stopped",
    }
}

#[test]
fn start_failures_wait_on_the_node_with_their_reason_or_fail_under_never() {
    use FailureKind::*;
    use RestartPolicy::*;
    // (policy, kind, state after, status phase, status reason)
    let table = [
        // Not expected to go away by itself: the pod stays, with the failure's own reason.
        (
            Always,
            InvalidComponent,
            "StartBackOff",
            PodPhase::Pending,
            "InvalidComponent",
        ),
        (
            Always,
            CompileError,
            "StartBackOff",
            PodPhase::Pending,
            "CompileError",
        ),
        (Always, LinkError, "StartBackOff", PodPhase::Pending, "LinkError"),
        (
            Always,
            WorldMismatch,
            "StartBackOff",
            PodPhase::Pending,
            "WorldMismatch",
        ),
        (
            Always,
            InvalidSpec,
            "StartBackOff",
            PodPhase::Pending,
            "InvalidSpec",
        ),
        (
            Always,
            ArtifactDigestMismatch,
            "StartBackOff",
            PodPhase::Pending,
            "ArtifactDigestMismatch",
        ),
        (
            Always,
            RuntimeUnavailable,
            "StartBackOff",
            PodPhase::Pending,
            "RuntimeUnavailable",
        ),
        (
            OnFailure,
            ArtifactNotFound,
            "StartBackOff",
            PodPhase::Pending,
            "ArtifactNotFound",
        ),
        (
            OnFailure,
            ImageNotFound,
            "StartBackOff",
            PodPhase::Pending,
            "ImageNotFound",
        ),
        // Transient: a crash loop, as before.
        (
            Always,
            InstantiateError,
            "BackOff",
            PodPhase::Pending,
            "CrashLoopBackOff",
        ),
        (
            OnFailure,
            ImagePullBackOff,
            "BackOff",
            PodPhase::Pending,
            "CrashLoopBackOff",
        ),
        (
            Always,
            ConfigError,
            "BackOff",
            PodPhase::Pending,
            "CrashLoopBackOff",
        ),
        // Never: any start failure fails the pod (its owner decides what comes next).
        (
            Never,
            InstantiateError,
            "Failed",
            PodPhase::Failed,
            "InstantiateError",
        ),
        (Never, CompileError, "Failed", PodPhase::Failed, "CompileError"),
    ];
    for (policy, kind, state, phase, reason) in table {
        let case = format!("{policy:?} {kind:?}");
        let (m, actions) = failed_start(policy, kind, 2);
        assert_eq!(state_name(m.state), state, "{case}");
        let s = reported(&actions);
        assert_eq!((s.phase, s.reason.as_deref()), (phase, Some(reason)), "{case}");
        assert!(!s.ready, "{case}");
        assert_eq!(s.restarts, 0, "{case}");
        match state {
            "Failed" => {
                assert_eq!(s.message.as_deref(), Some("why"), "{case}");
                assert_eq!(s.finished_at.as_deref(), Some("2023-11-14T22:13:22Z"), "{case}");
                assert_eq!(actions.len(), 1, "{case}");
            }
            _ => {
                assert_eq!(scheduled(&actions), Some(BASE), "{case}");
                assert_eq!(s.finished_at, None, "{case}");
            }
        }
        if state == "StartBackOff" {
            assert_eq!(
                m.state,
                PodState::StartBackOff {
                    until: at(2).instant + BASE,
                    attempt: 1
                },
                "{case}"
            );
            assert_eq!(
                s.message.as_deref(),
                Some("back-off 10s before trying to start again (next try at 2023-11-14T22:13:32.000Z): why"),
                "{case}"
            );
        }
    }
}

#[test]
fn a_start_back_off_grows_to_five_minutes_and_counts_no_restart() {
    let (mut m, _) = Machine::start(serve(RestartPolicy::Always), BASE, at(0));
    let mut t = 1;
    let mut waits = Vec::new();
    for n in 0..7u32 {
        let (next, actions) = step(
            m,
            Event::StartFailed {
                failure: failure(FailureKind::InvalidComponent),
                at: at(t),
            },
        );
        let wait = scheduled(&actions).expect("a retry is scheduled");
        waits.push(wait.as_secs());
        let s = reported(&actions);
        assert_eq!((s.phase, s.restarts), (PodPhase::Pending, 0), "attempt {n}");
        assert_eq!(s.reason.as_deref(), Some("InvalidComponent"));
        assert!(
            s.message.as_deref().unwrap().starts_with(&format!(
                "back-off {} before trying to start again (next try at ",
                humantime::format_duration(wait).to_string().replace(' ', "")
            )),
            "{s:?}"
        );
        assert_eq!(
            next.state,
            PodState::StartBackOff {
                until: at(t).instant + wait,
                attempt: n + 1
            }
        );
        t += wait.as_secs();
        // Nothing ran: the retry is a start, not a restart.
        let (next, actions) = step(next, Event::BackOffElapsed { at: at(t) });
        assert_eq!((next.state, actions), (PodState::Starting, vec![Action::Start]));
        assert_eq!(next.restarts(), 0);
        m = next;
    }
    assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
}

#[test]
fn a_pod_that_starts_after_start_back_offs_crash_loops_from_the_base_wait() {
    let (m, _) = failed_start(RestartPolicy::Always, FailureKind::ArtifactNotFound, 1);
    let (m, _) = feed(
        m,
        [
            Event::BackOffElapsed { at: at(11) },
            Event::StartFailed {
                failure: failure(FailureKind::ArtifactNotFound),
                at: at(12),
            },
            Event::BackOffElapsed { at: at(32) },
            // The artifact was uploaded meanwhile.
            Event::Started { at: at(33) },
        ],
    );
    assert_eq!(
        m.state,
        PodState::Running {
            ready: true,
            since: at(33).instant
        }
    );
    let (m, actions) = step(
        m,
        Event::LivenessFailed {
            why: "down".into(),
            at: at(40),
        },
    );
    assert_eq!(scheduled(&actions), Some(BASE));
    assert_eq!(reported(&actions).reason.as_deref(), Some("CrashLoopBackOff"));
    // And a failure after that restart waits from the base again too.
    let (m, _) = step(m, Event::BackOffElapsed { at: at(50) });
    let (_, actions) = step(
        m,
        Event::StartFailed {
            failure: failure(FailureKind::CompileError),
            at: at(51),
        },
    );
    assert_eq!(scheduled(&actions), Some(BASE));
    let s = reported(&actions);
    assert_eq!(
        (s.phase, s.reason.as_deref(), s.restarts),
        (PodPhase::Running, Some("CompileError"), 1),
        "a pod that ran waits as Running, its restart kept"
    );
}

#[test]
fn a_waiting_pod_ends_on_delete_and_ignores_the_rest() {
    let (m, _) = failed_start(RestartPolicy::Always, FailureKind::CompileError, 1);
    let waiting = m.state;
    for e in [
        Event::Hold,
        Event::Compiling {
            component: "web".into(),
        },
        Event::ReadinessChanged {
            ready: true,
            at: at(2),
        },
        Event::LivenessFailed {
            why: "late".into(),
            at: at(2),
        },
    ] {
        let (next, a) = step(m.clone(), e.clone());
        assert_eq!((next.state, a), (waiting, vec![]), "{e:?}");
    }
    let (m, a) = step(m, Event::Delete);
    assert_eq!((m.state, a), (PodState::Stopped, vec![]));
    let (m, a) = step(m, Event::BackOffElapsed { at: at(11) });
    assert_eq!(
        (m.state, a),
        (PodState::Stopped, vec![]),
        "no start after the delete"
    );
}

#[test]
fn compiling_is_reported_while_a_start_compiles() {
    let (m, _) = Machine::start(serve(RestartPolicy::Always), BASE, at(0));
    let compiling = Event::Compiling {
        component: "web".into(),
    };
    let (m, actions) = step(m, compiling.clone());
    assert_eq!(m.state, PodState::Starting, "still starting");
    assert_eq!(
        actions,
        [Action::Report(Status {
            phase: PodPhase::Pending,
            ready: false,
            reason: Some("Compiling".into()),
            message: Some(
                "compiling component web (its first start on this node); the pod starts once it is compiled"
                    .into()
            ),
            start_time: None,
            finished_at: None,
            restarts: 0,
            exit_code: None,
        })]
    );
    // Then it starts: Running, the reason gone.
    let (m, actions) = step(m, Event::Started { at: at(5) });
    let s = reported(&actions);
    assert_eq!((s.phase, s.reason), (PodPhase::Running, None));

    // Anywhere but in a served pod's start it changes nothing: a late report never hides a
    // running pod, a crash loop or a command (which reports Running as it runs).
    let (crashed, _) = step(
        m.clone(),
        Event::LivenessFailed {
            why: "down".into(),
            at: at(6),
        },
    );
    let (command, _) = Machine::start(command(RestartPolicy::OnFailure), BASE, at(0));
    let (stopped, _) = step(m.clone(), Event::Delete);
    for other in [m, crashed, command, stopped] {
        let state = other.state;
        let (next, a) = step(other, compiling.clone());
        assert_eq!((next.state, a), (state, vec![]), "{}", state_name(state));
    }
}

#[test]
fn a_restart_that_compiles_again_is_reported_compiling_as_running() {
    // A pod that ran (its start time known) and compiles again (the node's cache was cleared)
    // keeps phase Running, as its crash loop does.
    let f = PodFacts {
        start_time: Some("2023-11-14T22:00:00Z".into()),
        restarts: 3,
        ..serve(RestartPolicy::Always)
    };
    let (m, _) = Machine::start(f, BASE, at(0));
    let (_, actions) = step(
        m,
        Event::Compiling {
            component: "web".into(),
        },
    );
    let s = reported(&actions);
    assert_eq!(
        (s.phase, s.reason.as_deref(), s.restarts, s.start_time.as_deref()),
        (
            PodPhase::Running,
            Some("Compiling"),
            3,
            Some("2023-11-14T22:00:00Z")
        )
    );
}
