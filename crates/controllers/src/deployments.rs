//! Deployment → ReplicaSets: one ReplicaSet per template revision, sized by the strategy.
//!
//! - **RollingUpdate**: the new revision grows while the pods of every revision stay within
//!   `replicas + maxSurge` (counting pods that still exist, not only the sets' targets), and old
//!   revisions shrink only while at least `replicas − maxUnavailable` pods stay ready. A pass either
//!   scales up or scales down, never both, so pods deleted and created in the same pass cannot
//!   overshoot.
//! - **Recreate**: every old pod goes first; the new revision starts once none is left.
//! - **Canary**: see [`super::canary`].
//!
//! A template that matches an old ReplicaSet (`rollout undo`) reuses it and gives it the next
//! revision number. Old, empty ReplicaSets beyond `revisionHistoryLimit` are deleted.
use std::collections::BTreeMap;
use std::time::SystemTime;

use skiff_api::{
    AVAILABLE_CONDITION, CHANGE_CAUSE_ANNOTATION, ConditionStatus, Deployment, DeploymentCondition,
    DeploymentStatus, EventSeverity, Kind, LabelSelectorSpec, NEW_REPLICA_SET_AVAILABLE, Object, ObjectMeta,
    OwnerReference, PROGRESS_DEADLINE_EXCEEDED, PROGRESSING_CONDITION, PodTemplate, REVISION_ANNOTATION,
    ReplicaSet, ReplicaSetSpec, StrategyType,
};
use skiff_state::Op;

use super::canary::{self, CanaryPlan};
use super::replicasets::{owned_by, serving_fn};
use super::{Ids, Recorder, Snapshot, TEMPLATE_HASH_LABEL, delete_op, is_terminal, ns_of, rfc3339};

/// The `source.component` of the events the deployment controller records.
pub const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";
/// Event reason: a ReplicaSet's target size changed.
pub const SCALING_REPLICA_SET: &str = "ScalingReplicaSet";

/// A ReplicaSet of one deployment as this pass sees and sizes it.
#[derive(Debug, Clone)]
pub(super) struct Revision<'a> {
    /// The stored set (`None`: created by this pass).
    pub(super) rs: Option<&'a ReplicaSet>,
    /// Its name.
    pub(super) name: String,
    /// Its template hash.
    pub(super) hash: String,
    /// Its revision number.
    pub(super) revision: u64,
    /// Target size as stored.
    pub(super) stored: i64,
    /// Target size this pass decides.
    pub(super) target: i64,
    /// Pods that exist and are not terminated.
    pub(super) live: i64,
    /// Pods serving (ready on a ready node).
    pub(super) serving: i64,
}

impl Revision<'_> {
    /// Pods it has or is about to have: the larger of its target and its live pods.
    fn footprint(&self) -> i64 {
        self.target.max(self.live)
    }
}

/// Name of a child object: `prefix-suffix`, the prefix shortened so the whole is a DNS label.
pub(super) fn child_name(prefix: &str, suffix: &str) -> String {
    let room = 63usize.saturating_sub(suffix.len() + 1);
    let p: String = prefix.chars().take(room).collect();
    format!("{}-{suffix}", p.trim_end_matches('-'))
}

/// Deployment → ReplicaSets (and status). Returns one command's ops per deployment that needs a
/// change.
pub fn deployments(s: &Snapshot, ids: &mut dyn Ids) -> Vec<Vec<Op>> {
    let serving = serving_fn(s);
    let mut out = Vec::new();
    for d in &s.deployments {
        let Some(uid) = d.metadata.uid.as_deref() else {
            continue;
        };
        let ns = ns_of(&d.metadata);
        let template = super::effective_template(d, s);
        let hash = super::hash_of(&template);
        let desired = d.spec.replicas.max(0);
        let mut ops = Vec::new();
        let recorder = s.now.map(|now| Recorder {
            component: DEPLOYMENT_CONTROLLER,
            now,
        });

        // Pods a deployment owned directly (before ReplicaSets existed) are retired like an old
        // revision: terminated ones at once, the rest as the new revision becomes ready.
        let legacy = owned_by(s, ns, uid);
        for p in legacy.iter().filter(|p| is_terminal(p)) {
            ops.push(delete_op(Kind::Pod, &p.metadata));
        }
        let mut legacy: Vec<_> = legacy.into_iter().filter(|p| !is_terminal(p)).collect();
        legacy.sort_by_key(|p| serving(p));

        let mut revs: Vec<Revision> = s
            .replica_sets
            .iter()
            .filter(|r| ns_of(&r.metadata) == ns && r.metadata.controller().is_some_and(|o| o.uid == uid))
            .map(|r| {
                let pods: Vec<_> = r
                    .metadata
                    .uid
                    .as_deref()
                    .map(|u| owned_by(s, ns, u))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|p| !is_terminal(p))
                    .collect();
                Revision {
                    rs: Some(r),
                    name: r.metadata.name.clone(),
                    hash: r
                        .spec
                        .template
                        .metadata
                        .labels
                        .get(TEMPLATE_HASH_LABEL)
                        .cloned()
                        .unwrap_or_default(),
                    revision: r.revision(),
                    stored: r.spec.replicas,
                    target: r.spec.replicas,
                    live: pods.len() as i64,
                    serving: pods.iter().filter(|p| serving(p)).count() as i64,
                }
            })
            .collect();
        revs.sort_by_key(|r| (r.revision, r.name.clone()));
        let max_revision = revs.iter().map(|r| r.revision).max().unwrap_or(0);

        // The revision of the current template: existing (maybe an old one brought back), or new.
        let mut new_idx = revs.iter().position(|r| r.hash == hash);
        if new_idx.is_none() && !d.spec.paused {
            revs.push(Revision {
                rs: None,
                name: child_name(&d.metadata.name, &hash),
                hash: hash.clone(),
                revision: max_revision + 1,
                stored: 0,
                target: 0,
                live: 0,
                serving: 0,
            });
            new_idx = Some(revs.len() - 1);
        }
        let bumped = new_idx.is_some_and(|i| revs[i].rs.is_some() && revs[i].revision < max_revision);
        if bumped && let Some(i) = new_idx {
            revs[i].revision = max_revision + 1;
        }

        let mut status = DeploymentStatus {
            observed_generation: d.metadata.generation.unwrap_or(0),
            ..d.status.clone()
        };
        let mut legacy_delete = 0usize;
        let mut extra: Vec<Op> = Vec::new();
        if let Some(ni) = new_idx
            && !(d.spec.paused && d.spec.strategy.type_ != StrategyType::Canary)
        {
            let (surge, unavailable) = d.spec.strategy.rolling_bounds(desired as u64);
            let (surge, unavailable) = (surge as i64, unavailable as i64);
            let legacy_live = legacy.len() as i64;
            let legacy_serving = legacy.iter().filter(|p| serving(p)).count() as i64;
            match d.spec.strategy.type_ {
                StrategyType::Recreate => {
                    for (i, r) in revs.iter_mut().enumerate() {
                        if i != ni {
                            r.target = 0;
                        }
                    }
                    legacy_delete = legacy.len();
                    let old_left = legacy_live
                        + revs
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| *i != ni)
                            .map(|(_, r)| r.live)
                            .sum::<i64>();
                    if old_left == 0 {
                        revs[ni].target = desired;
                    }
                }
                StrategyType::RollingUpdate => {
                    legacy_delete = rolling(
                        &mut revs,
                        ni,
                        desired,
                        surge,
                        unavailable,
                        legacy_live,
                        legacy_serving,
                    );
                }
                StrategyType::Canary => match canary::plan(s, ids, d, &mut revs, ni, legacy_live > 0) {
                    CanaryPlan::Rolling => {
                        legacy_delete = rolling(
                            &mut revs,
                            ni,
                            desired,
                            surge,
                            unavailable,
                            legacy_live,
                            legacy_serving,
                        );
                    }
                    CanaryPlan::Steps {
                        status: c,
                        ops: mut o,
                    } => {
                        status.canary = Some(c);
                        extra.append(&mut o);
                    }
                },
            }
        }
        for p in legacy.iter().take(legacy_delete) {
            ops.push(delete_op(Kind::Pod, &p.metadata));
        }

        // Write the ReplicaSets' new sizes (and a created or brought-back revision).
        let newest_old = revs
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_idx)
            .max_by_key(|(_, r)| r.revision)
            .map(|(_, r)| r.rs);
        for (i, r) in revs.iter().enumerate() {
            match r.rs {
                None => {
                    let cause = change_cause(d, &template, newest_old.flatten().map(|o| &o.spec.template));
                    ops.push(Op::Create {
                        object: Object::ReplicaSet(new_replica_set(d, &template, &hash, r, cause)),
                        uid: ids.uid(),
                    });
                    if let Some(rec) = &recorder {
                        ops.push(scaled_event(rec, s, ids, d, r));
                    }
                }
                Some(stored) if r.target != r.stored || (bumped && Some(i) == new_idx) => {
                    let mut next = stored.clone();
                    next.spec.replicas = r.target;
                    if Some(i) == new_idx && bumped {
                        next.metadata
                            .annotations
                            .insert(REVISION_ANNOTATION.into(), r.revision.to_string());
                        if let Some(c) = d.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION) {
                            next.metadata
                                .annotations
                                .insert(CHANGE_CAUSE_ANNOTATION.into(), c.clone());
                        }
                    }
                    next.metadata.resource_version = None;
                    ops.push(Op::Replace {
                        object: Object::ReplicaSet(next),
                    });
                    if r.target != r.stored
                        && let Some(rec) = &recorder
                    {
                        ops.push(scaled_event(rec, s, ids, d, r));
                    }
                }
                Some(_) => {}
            }
        }
        ops.append(&mut extra);

        // Forget old, empty revisions beyond the history limit (never one still being drained).
        let limit = d.spec.history_limit() as usize;
        let empty_old: Vec<&Revision> = revs
            .iter()
            .enumerate()
            .filter(|(i, r)| Some(*i) != new_idx && r.target == 0 && r.live == 0 && r.rs.is_some())
            .map(|(_, r)| r)
            .collect();
        if empty_old.len() > limit {
            for r in &empty_old[..empty_old.len() - limit] {
                if let Some(stored) = r.rs {
                    ops.push(delete_op(Kind::ReplicaSet, &stored.metadata));
                }
            }
        }

        fill_status(
            s,
            ids,
            d,
            &revs,
            new_idx,
            &legacy,
            &serving,
            &mut status,
            &recorder,
            &mut ops,
        );
        if status != d.status {
            let mut next = d.clone();
            next.status = status;
            next.metadata.resource_version = None;
            ops.push(Op::UpdateStatus {
                object: Object::Deployment(next),
            });
        }
        if !ops.is_empty() {
            out.push(ops);
        }
    }
    out
}

/// Sizes the revisions for a rolling update; returns how many legacy pods may go.
fn rolling(
    revs: &mut [Revision],
    ni: usize,
    desired: i64,
    surge: i64,
    unavailable: i64,
    legacy_live: i64,
    legacy_serving: i64,
) -> usize {
    let footprint: i64 = revs.iter().map(Revision::footprint).sum::<i64>() + legacy_live;
    let new = &mut revs[ni];
    if new.target > desired {
        new.target = desired;
        return 0;
    }
    if new.target < desired && footprint < desired + surge {
        let room = desired + surge - footprint;
        new.target = desired.min(new.target + room);
        return 0;
    }
    if new.target < new.live {
        // Pods of the new revision above its target are still being deleted: wait for them.
        return 0;
    }
    let min_available = desired - unavailable;
    // Pods a set keeps once it is down to its target: the least valuable (not serving) go first.
    let kept_serving = |r: &Revision| r.serving.min(r.target);
    let new_unavailable = (new.target - kept_serving(new)).max(0);
    let total_target: i64 = revs.iter().map(|r| r.target).sum::<i64>() + legacy_live;
    // First, old pods that do not serve anyway (within what may be unavailable).
    let mut cleanup = (total_target - min_available - new_unavailable).max(0);
    let mut legacy_delete = 0i64;
    let legacy_unhealthy = legacy_live - legacy_serving;
    let take = legacy_unhealthy.min(cleanup);
    legacy_delete += take;
    cleanup -= take;
    for (i, r) in revs.iter_mut().enumerate() {
        if i == ni || cleanup == 0 {
            continue;
        }
        let unhealthy = (r.target - kept_serving(r)).max(0);
        let take = unhealthy.min(cleanup);
        r.target -= take;
        cleanup -= take;
    }
    // Then serving old pods, as far as availability allows (counting only pods that stay).
    let ready: i64 = revs.iter().map(kept_serving).sum::<i64>() + legacy_serving;
    let mut can_remove = (ready - min_available).max(0);
    let take = legacy_serving.min(can_remove).min(legacy_live - legacy_delete);
    legacy_delete += take;
    can_remove -= take;
    for (i, r) in revs.iter_mut().enumerate() {
        if i == ni || can_remove == 0 {
            continue;
        }
        let take = r.target.min(can_remove);
        r.target -= take;
        can_remove -= take;
    }
    usize::try_from(legacy_delete).unwrap_or(0)
}

fn new_replica_set(
    d: &Deployment,
    template: &PodTemplate,
    hash: &str,
    r: &Revision,
    cause: String,
) -> ReplicaSet {
    let ns = ns_of(&d.metadata);
    let mut template = template.clone();
    template
        .metadata
        .labels
        .insert(TEMPLATE_HASH_LABEL.into(), hash.to_owned());
    let mut selector = d.spec.selector.match_labels.clone();
    selector.insert(TEMPLATE_HASH_LABEL.into(), hash.to_owned());
    let mut meta = ObjectMeta::named(r.name.clone(), Some(ns));
    meta.labels = template.metadata.labels.clone();
    meta.annotations
        .insert(REVISION_ANNOTATION.into(), r.revision.to_string());
    meta.annotations.insert(CHANGE_CAUSE_ANNOTATION.into(), cause);
    meta.owner_references = vec![OwnerReference {
        kind: Kind::Deployment.as_str().into(),
        name: d.metadata.name.clone(),
        uid: d.metadata.uid.clone().unwrap_or_default(),
        controller: true,
    }];
    ReplicaSet {
        api_version: Default::default(),
        metadata: meta,
        spec: ReplicaSetSpec {
            replicas: r.target,
            selector: LabelSelectorSpec {
                match_labels: selector,
            },
            template,
        },
        status: Default::default(),
    }
}

fn scaled_event(rec: &Recorder, s: &Snapshot, ids: &mut dyn Ids, d: &Deployment, r: &Revision) -> Op {
    let verb = if r.target >= r.stored { "up" } else { "down" };
    rec.record(
        s,
        ids,
        Kind::Deployment,
        &d.metadata,
        EventSeverity::Normal,
        SCALING_REPLICA_SET,
        format!(
            "scaled {verb} replica set {} (revision {}) to {}",
            r.name, r.revision, r.target
        ),
    )
}

/// Why this revision exists: the deployment's `skiff.dev/change-cause` annotation, else what differs
/// from the previous revision's template.
fn change_cause(d: &Deployment, new: &PodTemplate, previous: Option<&PodTemplate>) -> String {
    if let Some(c) = d.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION) {
        return c.clone();
    }
    let Some(prev) = previous else {
        return "initial revision".into();
    };
    let mut parts = Vec::new();
    let old_comps: BTreeMap<&str, _> = prev
        .spec
        .components
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let new_comps: BTreeMap<&str, _> = new.spec.components.iter().map(|c| (c.name.as_str(), c)).collect();
    for (name, c) in &new_comps {
        match old_comps.get(name) {
            None => parts.push(format!("component {name} added")),
            Some(o) => {
                if o.wasm != c.wasm {
                    let what = c
                        .wasm
                        .as_ref()
                        .and_then(|w| {
                            w.digest
                                .clone()
                                .or_else(|| w.image.clone())
                                .or_else(|| w.url.clone())
                        })
                        .map(|v| format!(" to {}", short_ref(&v)))
                        .unwrap_or_default();
                    parts.push(format!("component {name}: wasm{what}"));
                }
                if o.oci.as_ref().map(|x| &x.image) != c.oci.as_ref().map(|x| &x.image)
                    && let Some(x) = &c.oci
                {
                    parts.push(format!("component {name}: image to {}", short_ref(&x.image)));
                }
                if o.env != c.env {
                    parts.push(format!("component {name}: env"));
                }
                if o.resources != c.resources {
                    parts.push(format!("component {name}: resources"));
                }
                let (mut a, mut b) = ((*o).clone(), (*c).clone());
                (a.wasm, a.env, a.resources) = (None, Vec::new(), Default::default());
                (b.wasm, b.env, b.resources) = (None, Vec::new(), Default::default());
                if let (Some(x), Some(y)) = (&mut a.oci, &mut b.oci) {
                    (x.image, y.image) = (String::new(), String::new());
                }
                if a != b {
                    parts.push(format!("component {name}: settings"));
                }
            }
        }
    }
    for name in old_comps.keys().filter(|n| !new_comps.contains_key(*n)) {
        parts.push(format!("component {name} removed"));
    }
    let restarted = skiff_api::RESTARTED_AT_ANNOTATION;
    if let Some(t) = new.metadata.annotations.get(restarted)
        && prev.metadata.annotations.get(restarted) != Some(t)
    {
        parts.push(format!("restarted at {t}"));
    }
    let (mut a, mut b) = (prev.spec.clone(), new.spec.clone());
    (a.components, b.components) = (Vec::new(), Vec::new());
    if a != b {
        parts.push("pod spec".into());
    }
    let mut old_labels = prev.metadata.labels.clone();
    old_labels.remove(TEMPLATE_HASH_LABEL);
    if old_labels != new.metadata.labels {
        parts.push("labels".into());
    }
    let config = skiff_api::CONFIG_HASH_ANNOTATION;
    if new.metadata.annotations.get(config) != prev.metadata.annotations.get(config) && parts.is_empty() {
        let spec = &new.spec;
        let mut names: Vec<String> = spec
            .config_map_names()
            .iter()
            .map(|n| format!("configmap/{n}"))
            .collect();
        names.extend(spec.secret_names().iter().map(|n| format!("secret/{n}")));
        parts.push(format!("configuration changed ({})", names.join(", ")));
    }
    if parts.is_empty() {
        "template annotations".into()
    } else {
        parts.join("; ")
    }
}

fn short_ref(v: &str) -> String {
    match v.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None => v.to_owned(),
    }
}

#[allow(clippy::too_many_arguments, reason = "one pass's view, passed down once")]
fn fill_status(
    s: &Snapshot,
    ids: &mut dyn Ids,
    d: &Deployment,
    revs: &[Revision],
    new_idx: Option<usize>,
    legacy: &[&skiff_api::Pod],
    serving: &dyn Fn(&skiff_api::Pod) -> bool,
    status: &mut DeploymentStatus,
    recorder: &Option<Recorder>,
    ops: &mut Vec<Op>,
) {
    let desired = d.spec.replicas.max(0) as u64;
    let new = new_idx.map(|i| &revs[i]);
    status.replicas = (revs.iter().map(|r| r.live).sum::<i64>() + legacy.len() as i64) as u64;
    status.ready_replicas = (revs.iter().map(|r| r.serving).sum::<i64>()
        + legacy.iter().filter(|p| serving(p)).count() as i64) as u64;
    status.updated_replicas = new.map_or(0, |r| r.live as u64);
    status.updated_ready_replicas = new.map_or(0, |r| r.serving as u64);
    status.revision = new.map(|r| r.revision).or(d.status.revision);
    let now = s.now.unwrap_or_else(SystemTime::now);
    let progressed = status.revision != d.status.revision
        || status.updated_replicas != d.status.updated_replicas
        || status.updated_ready_replicas != d.status.updated_ready_replicas
        || status.ready_replicas != d.status.ready_replicas
        || status.replicas != d.status.replicas
        || status.observed_generation != d.status.observed_generation
        || status.canary.as_ref().map(|c| (c.step, c.phase))
            != d.status.canary.as_ref().map(|c| (c.step, c.phase))
        || d.status.last_progress.is_none();
    if progressed {
        status.last_progress = Some(rfc3339(now));
    }
    let canary_done = status.canary.as_ref().is_none_or(|c| {
        matches!(
            c.phase,
            skiff_api::CanaryPhase::Promoted | skiff_api::CanaryPhase::Reverted
        )
    });
    let complete = status.updated_ready_replicas == desired
        && status.replicas == desired
        && status.updated_replicas == desired
        && canary_done;
    let (_, unavailable) = d.spec.strategy.rolling_bounds(desired);
    let available = status.ready_replicas >= desired.saturating_sub(unavailable);
    let since_progress = status
        .last_progress
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default();
    let progressing = if complete {
        (
            ConditionStatus::True,
            NEW_REPLICA_SET_AVAILABLE,
            format!(
                "replica set {} (revision {}) has every pod ready",
                new.map_or("-", |r| r.name.as_str()),
                status.revision.unwrap_or(0)
            ),
        )
    } else if d.spec.paused {
        (
            ConditionStatus::Unknown,
            "DeploymentPaused",
            "the rollout is paused: `skiff rollout resume` continues it".to_owned(),
        )
    } else if since_progress > d.spec.progress_deadline() {
        (
            ConditionStatus::False,
            PROGRESS_DEADLINE_EXCEEDED,
            format!(
                "replica set {} (revision {}) made no progress within its progressDeadline of {}s: {} of {desired} updated pods ready",
                new.map_or("-", |r| r.name.as_str()),
                status.revision.unwrap_or(0),
                d.spec.progress_deadline().as_secs(),
                status.updated_ready_replicas
            ),
        )
    } else {
        (
            ConditionStatus::True,
            "ReplicaSetUpdated",
            format!(
                "replica set {} (revision {}) is progressing: {} of {desired} updated pods ready",
                new.map_or("-", |r| r.name.as_str()),
                status.revision.unwrap_or(0),
                status.updated_ready_replicas
            ),
        )
    };
    let availability = if available {
        (
            ConditionStatus::True,
            "MinimumReplicasAvailable",
            format!("{} of {desired} pods ready", status.ready_replicas),
        )
    } else {
        (
            ConditionStatus::False,
            "MinimumReplicasUnavailable",
            format!(
                "{} of {desired} pods ready, fewer than the {} required",
                status.ready_replicas,
                desired.saturating_sub(unavailable)
            ),
        )
    };
    let previous = |t: &str| d.status.conditions.iter().find(|c| c.type_ == t);
    let mut conditions = Vec::new();
    for (type_, (st, reason, message)) in [
        (AVAILABLE_CONDITION, availability),
        (PROGRESSING_CONDITION, progressing),
    ] {
        let prev = previous(type_);
        let same = prev.is_some_and(|p| p.status == st && p.reason == reason);
        if !same
            && reason == PROGRESS_DEADLINE_EXCEEDED
            && let Some(rec) = recorder
        {
            ops.push(rec.record(
                s,
                ids,
                Kind::Deployment,
                &d.metadata,
                EventSeverity::Warning,
                PROGRESS_DEADLINE_EXCEEDED,
                message.clone(),
            ));
        }
        conditions.push(DeploymentCondition {
            type_: type_.into(),
            status: st,
            reason: reason.into(),
            message,
            last_transition_time: if same {
                prev.and_then(|p| p.last_transition_time.clone())
            } else {
                Some(rfc3339(now))
            },
        });
    }
    status.conditions = conditions;
}
