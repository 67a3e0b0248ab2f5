//! Canary rollouts: the new revision runs beside the stable one and takes a growing share of the
//! traffic, step by step; its error rate is watched throughout and a failing revision is reverted.
//!
//! - `{weight: N}`: the new revision is scaled to N% of the replicas (at least one pod); once those
//!   pods serve, N% of the traffic goes to them (the endpoints controller writes per-endpoint
//!   weights the gateway honours) and the next step starts.
//! - `{pause: {duration: D}}`: after D, and only while the new revision is healthy, the next step
//!   starts. `{pause: {}}`: the controller sets `spec.paused`; `skiff rollout resume` continues.
//! - After the last step: promotion. The new revision is scaled to every replica; once all serve it
//!   takes all the traffic and the stable revision is scaled to zero.
//! - Throughout: the new revision's pods' 5xx share ([`Snapshot::pod_traffic`], read from the
//!   agents) above `analysis.maxErrorPercent` (after `minRequests`) reverts the deployment's
//!   template to the stable revision's, gives the new revision weight 0 and scales it to zero.
use skiff_api::{
    CHANGE_CAUSE_ANNOTATION, CanaryPhase, CanaryStatus, Deployment, EventSeverity, Kind, Object,
};
use skiff_state::Op;

use super::deployments::{DEPLOYMENT_CONTROLLER, Revision};
use super::replicasets::owned_by;
use super::{Ids, Recorder, Snapshot, TEMPLATE_HASH_LABEL, is_terminal, ns_of, rfc3339};

/// Event reason: a canary rollout started.
pub const CANARY_STARTED: &str = "CanaryStarted";
/// Event reason: a canary step was reached.
pub const CANARY_STEP: &str = "CanaryStep";
/// Event reason: the canary waits for `skiff rollout resume`.
pub const CANARY_PAUSED: &str = "CanaryPaused";
/// Event reason: the canary became the stable revision.
pub const CANARY_PROMOTED: &str = "CanaryPromoted";
/// Event reason: the canary failed its analysis and the deployment went back.
pub const CANARY_REVERTED: &str = "CanaryReverted";

/// What the canary logic decided for one deployment.
pub(super) enum CanaryPlan {
    /// No canary applies (no stable revision to compare with): size like a rolling update.
    Rolling,
    /// The canary's status and extra ops (deployment writes, events); the revisions are sized.
    Steps {
        /// New canary status.
        status: CanaryStatus,
        /// Ops to add to the deployment's command.
        ops: Vec<Op>,
    },
}

/// Whether a canary in this phase still splits traffic.
pub fn splits_traffic(phase: CanaryPhase) -> bool {
    matches!(
        phase,
        CanaryPhase::Progressing | CanaryPhase::Paused | CanaryPhase::Promoting
    )
}

fn pods_for(desired: i64, weight: u32) -> i64 {
    if weight == 0 || desired == 0 {
        0
    } else {
        ((desired * i64::from(weight) + 99) / 100).max(1)
    }
}

/// Sizes the stable and canary revisions of `d` for this pass (`ni` is the current template's).
pub(super) fn plan(
    s: &Snapshot,
    ids: &mut dyn Ids,
    d: &Deployment,
    revs: &mut [Revision],
    ni: usize,
    has_legacy: bool,
) -> CanaryPlan {
    let desired = d.spec.replicas.max(0);
    let hash = revs[ni].hash.clone();
    let stable = revs
        .iter()
        .enumerate()
        .filter(|(i, r)| *i != ni && (r.live > 0 || r.target > 0))
        .max_by_key(|(_, r)| r.revision)
        .map(|(i, _)| i);
    let now = s.now.unwrap_or_else(std::time::SystemTime::now);
    let rec = Recorder {
        component: DEPLOYMENT_CONTROLLER,
        now,
    };
    let mut ops = Vec::new();
    let Some(si) = stable.filter(|_| !has_legacy) else {
        // No stable revision left: a canary that was promoting is done.
        if let Some(c) = d
            .status
            .canary
            .as_ref()
            .filter(|c| c.canary_hash == hash && splits_traffic(c.phase))
        {
            let mut c = c.clone();
            c.phase = CanaryPhase::Promoted;
            c.weight = 100;
            c.message = format!("revision {} is stable", revs[ni].revision);
            ops.push(rec.record(
                s,
                ids,
                Kind::Deployment,
                &d.metadata,
                EventSeverity::Normal,
                CANARY_PROMOTED,
                format!(
                    "revision {} ({}) promoted after {} requests with {} errors",
                    revs[ni].revision, revs[ni].name, c.requests, c.errors
                ),
            ));
            revs[ni].target = desired;
            return CanaryPlan::Steps { status: c, ops };
        }
        return CanaryPlan::Rolling;
    };
    let mut c = match &d.status.canary {
        Some(c) if c.canary_hash == hash && splits_traffic(c.phase) => c.clone(),
        Some(c) if c.canary_hash == hash || (c.phase == CanaryPhase::Reverted && c.stable_hash == hash) => {
            // Finished (promoted, or reverted back to this template): leftovers scale away.
            return CanaryPlan::Rolling;
        }
        _ => {
            ops.push(rec.record(
                s,
                ids,
                Kind::Deployment,
                &d.metadata,
                EventSeverity::Normal,
                CANARY_STARTED,
                format!(
                    "canary of revision {} ({}) beside stable revision {} ({})",
                    revs[ni].revision, revs[ni].name, revs[si].revision, revs[si].name
                ),
            ));
            CanaryStatus {
                canary_hash: hash.clone(),
                stable_hash: revs[si].hash.clone(),
                step: 0,
                weight: 0,
                phase: CanaryPhase::Progressing,
                step_started: Some(rfc3339(now)),
                ..Default::default()
            }
        }
    };
    // Revisions older than the stable one have no part in a canary.
    for (i, r) in revs.iter_mut().enumerate() {
        if i != ni && i != si {
            r.target = 0;
        }
    }

    // Analysis: the new revision's answers, as its agents count them.
    let (requests, errors) = revs[ni]
        .rs
        .and_then(|rs| rs.metadata.uid.as_deref())
        .map(|uid| {
            owned_by(s, ns_of(&d.metadata), uid)
                .into_iter()
                .filter(|p| !is_terminal(p))
                .filter_map(|p| s.pod_traffic.get(p.metadata.uid.as_deref()?))
                .fold((0, 0), |(r, e), t| (r + t.requests, e + t.errors))
        })
        .unwrap_or((0, 0));
    c.requests = requests;
    c.errors = errors;
    let strategy = d.spec.strategy.canary.clone().unwrap_or_default();
    let analysis = strategy.analysis.clone().unwrap_or_default();
    let failing = requests >= analysis.min_requests.max(1)
        && (errors as f64) * 100.0 > analysis.max_error_percent * requests as f64;
    if failing && revs[si].live > 0 {
        return revert(s, ids, d, revs, ni, si, c, ops, &rec, &analysis);
    }

    let elapsed = c
        .step_started
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default();
    let steps = &strategy.steps;
    revs[si].target = desired;
    let advance = |c: &mut CanaryStatus, ops: &mut Vec<Op>, ids: &mut dyn Ids| {
        c.step += 1;
        c.phase = CanaryPhase::Progressing;
        c.step_started = Some(rfc3339(now));
        c.message = String::new();
        ops.push(rec.record(
            s,
            ids,
            Kind::Deployment,
            &d.metadata,
            EventSeverity::Normal,
            CANARY_STEP,
            format!(
                "canary step {} of {} reached: new revision at {}% of the traffic",
                c.step,
                steps.len(),
                c.weight
            ),
        ));
    };
    let step = steps.get(c.step as usize).cloned();
    match step {
        None => {
            // Promotion.
            c.phase = CanaryPhase::Promoting;
            revs[ni].target = desired;
            if revs[ni].serving >= desired {
                if c.weight == 100 && d.status.canary.as_ref().is_some_and(|p| p.weight == 100) {
                    // Every request goes to the new revision already: the stable one goes away;
                    // once it is gone the next pass marks the canary promoted.
                    revs[si].target = 0;
                }
                c.weight = 100;
            }
        }
        Some(step) => {
            let current = pods_for(desired, c.weight);
            match (step.weight, step.pause) {
                (Some(w), _) => {
                    let n = pods_for(desired, w);
                    revs[ni].target = n.max(current);
                    if revs[ni].serving >= n && !d.spec.paused {
                        c.weight = w;
                        advance(&mut c, &mut ops, ids);
                    }
                }
                (None, Some(pause)) => {
                    revs[ni].target = current;
                    let ready = revs[ni].serving >= current;
                    match pause.duration {
                        Some(dur) => {
                            if elapsed >= dur.0 && ready && !d.spec.paused {
                                advance(&mut c, &mut ops, ids);
                            } else if !d.spec.paused {
                                c.message = format!(
                                    "pausing {}s at {}% ({}s left)",
                                    dur.0.as_secs(),
                                    c.weight,
                                    dur.0.saturating_sub(elapsed).as_secs()
                                );
                            }
                        }
                        None if c.phase == CanaryPhase::Paused => {
                            if !d.spec.paused && ready {
                                advance(&mut c, &mut ops, ids);
                            }
                        }
                        None => {
                            c.phase = CanaryPhase::Paused;
                            c.message = format!(
                                "paused at {}%: `skiff rollout resume deployment/{}` continues",
                                c.weight, d.metadata.name
                            );
                            let mut next = d.clone();
                            next.spec.paused = true;
                            ops.push(Op::Replace {
                                object: Object::Deployment(next),
                            });
                            ops.push(rec.record(
                                s,
                                ids,
                                Kind::Deployment,
                                &d.metadata,
                                EventSeverity::Normal,
                                CANARY_PAUSED,
                                c.message.clone(),
                            ));
                        }
                    }
                }
                (None, None) => {
                    // Refused by validation; skip it rather than stall.
                    advance(&mut c, &mut ops, ids);
                }
            }
        }
    }
    CanaryPlan::Steps { status: c, ops }
}

#[allow(clippy::too_many_arguments, reason = "one decision's whole context")]
fn revert(
    s: &Snapshot,
    ids: &mut dyn Ids,
    d: &Deployment,
    revs: &mut [Revision],
    ni: usize,
    si: usize,
    mut c: CanaryStatus,
    mut ops: Vec<Op>,
    rec: &Recorder,
    analysis: &skiff_api::CanaryAnalysis,
) -> CanaryPlan {
    let desired = d.spec.replicas.max(0);
    let Some(stable_rs) = revs[si].rs else {
        return CanaryPlan::Rolling;
    };
    let rate = c.errors as f64 * 100.0 / c.requests.max(1) as f64;
    c.message = format!(
        "revision {} answered {} of {} requests with 5xx ({rate:.1}% > {}%): reverted to revision {}",
        revs[ni].revision, c.errors, c.requests, analysis.max_error_percent, revs[si].revision
    );
    c.phase = CanaryPhase::Reverted;
    c.weight = 0;
    c.step_started = s.now.map(rfc3339);
    let mut template = stable_rs.spec.template.clone();
    template.metadata.labels.remove(TEMPLATE_HASH_LABEL);
    template
        .metadata
        .annotations
        .remove(skiff_api::CONFIG_HASH_ANNOTATION);
    let mut next = d.clone();
    next.spec.template = template;
    next.spec.paused = false;
    next.metadata.annotations.insert(
        CHANGE_CAUSE_ANNOTATION.into(),
        format!(
            "auto-revert: canary revision {} failed its analysis ({rate:.1}% errors)",
            revs[ni].revision
        ),
    );
    ops.push(Op::Replace {
        object: Object::Deployment(next),
    });
    ops.push(rec.record(
        s,
        ids,
        Kind::Deployment,
        &d.metadata,
        EventSeverity::Warning,
        CANARY_REVERTED,
        c.message.clone(),
    ));
    revs[ni].target = 0;
    revs[si].target = desired;
    CanaryPlan::Steps { status: c, ops }
}
