//! Checks of replicated workloads: replica counts, selectors against templates, strategies.
use std::collections::BTreeMap;

use super::{Checker, MAX_REPLICAS, fmt_map};
use crate::batch::{DaemonSetSpec, JobSpec};
use crate::pod::{RestartPolicy, World};
use crate::rollout::{DeploymentStrategy, IntOrPercent, StrategyType};
use crate::workload::PodTemplate;

impl Checker {
    /// `replicas`, `selector.matchLabels` and `template` of a Deployment or ReplicaSet.
    pub(super) fn replicated(
        &mut self,
        replicas: i64,
        selector: &BTreeMap<String, String>,
        template: &PodTemplate,
        kind: &str,
    ) {
        if replicas < 0 {
            self.err("spec.replicas", format!("{replicas} is negative: use 0 or more"));
        } else if replicas > MAX_REPLICAS {
            self.err(
                "spec.replicas",
                format!("{replicas} is too many: at most {MAX_REPLICAS}"),
            );
        }
        self.selector("spec.selector.matchLabels", selector, &kind.to_ascii_lowercase());
        self.labels("spec.template.metadata.labels", &template.metadata.labels);
        if !selector.is_empty() && !crate::selector::map_matches(selector, &template.metadata.labels) {
            self.err(
                "spec.selector.matchLabels",
                format!(
                    "selector {} does not match the template's labels {}: the {} would never see its own \
                     pods; make spec.template.metadata.labels include every selector label",
                    fmt_map(selector),
                    fmt_map(&template.metadata.labels),
                    kind.to_ascii_lowercase()
                ),
            );
        }
        if template.spec.restart_policy != RestartPolicy::Always {
            self.err(
                "spec.template.spec.restartPolicy",
                format!("a {kind}'s pods must use restartPolicy Always"),
            );
        }
        if template.spec.node_name.is_some() {
            self.err(
                "spec.template.spec.nodeName",
                format!("a {kind}'s pods are placed by the scheduler: remove nodeName"),
            );
        }
        self.serving_components("spec.template.spec", template, kind);
        self.pod_spec("spec.template.spec", &template.spec);
    }

    /// Components of a long-running workload must serve HTTP (command components end).
    fn serving_components(&mut self, prefix: &str, template: &PodTemplate, kind: &str) {
        for (i, c) in template.spec.components.iter().enumerate() {
            if c.wasm.as_ref().is_some_and(|w| w.world == World::Command) {
                self.err(
                    format!("{prefix}.components[{i}].wasm.world"),
                    format!("a {kind}'s pods run until deleted: world command ends; run it in a Job instead"),
                );
            }
        }
    }

    /// `spec` of a DaemonSet.
    pub(super) fn daemon_set(&mut self, s: &DaemonSetSpec) {
        self.selector("spec.selector.matchLabels", &s.selector.match_labels, "daemonset");
        self.labels("spec.template.metadata.labels", &s.template.metadata.labels);
        if !s.selector.match_labels.is_empty()
            && !crate::selector::map_matches(&s.selector.match_labels, &s.template.metadata.labels)
        {
            self.err(
                "spec.selector.matchLabels",
                format!(
                    "selector {} does not match the template's labels {}: make spec.template.metadata.labels \
                     include every selector label",
                    fmt_map(&s.selector.match_labels),
                    fmt_map(&s.template.metadata.labels)
                ),
            );
        }
        if s.template.spec.restart_policy != RestartPolicy::Always {
            self.err(
                "spec.template.spec.restartPolicy",
                "a DaemonSet's pods must use restartPolicy Always",
            );
        }
        if s.template.spec.node_name.is_some() {
            self.err(
                "spec.template.spec.nodeName",
                "a DaemonSet places one pod on every matching node: remove nodeName (use nodeSelector to choose nodes)",
            );
        }
        if let Some(r) = &s.update_strategy.rolling_update
            && r.max_unavailable.is_some_and(is_zero)
        {
            self.err(
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                "0 would never let a node's pod be replaced: use at least 1",
            );
        }
        self.serving_components("spec.template.spec", &s.template, "DaemonSet");
        self.pod_spec("spec.template.spec", &s.template.spec);
    }

    /// The spec of a Job (at `prefix`).
    pub(super) fn job(&mut self, prefix: &str, s: &JobSpec) {
        if s.template.spec.restart_policy == RestartPolicy::Always {
            self.err(
                format!("{prefix}.template.spec.restartPolicy"),
                "a Job's pods must use restartPolicy Never or OnFailure: Always would never let them finish",
            );
        }
        if s.completions == Some(0) {
            self.err(format!("{prefix}.completions"), "0 completions: use 1 or more");
        }
        if s.template.spec.node_name.is_some() {
            self.err(
                format!("{prefix}.template.spec.nodeName"),
                "a Job's pods are placed by the scheduler: remove nodeName",
            );
        }
        for (i, c) in s.template.spec.components.iter().enumerate() {
            if c.wasm.as_ref().is_some_and(|w| w.world != World::Command) {
                self.err(
                    format!("{prefix}.template.spec.components[{i}].wasm.world"),
                    "a Job's components run to an exit: set world: command (an http component never finishes)",
                );
            }
        }
        self.labels(
            &format!("{prefix}.template.metadata.labels"),
            &s.template.metadata.labels,
        );
        self.pod_spec(&format!("{prefix}.template.spec"), &s.template.spec);
    }

    /// `spec` of a CronJob.
    pub(super) fn cron_job(&mut self, s: &crate::batch::CronJobSpec) {
        if let Err(why) = crate::batch::parse_schedule(&s.schedule, None) {
            self.err("spec.schedule", why);
        }
        if let Some(z) = &s.time_zone
            && let Err(why) = crate::batch::parse_schedule("* * * * *", Some(z))
        {
            self.err("spec.timeZone", why);
        }
        self.job("spec.jobTemplate.spec", &s.job_template.spec);
    }

    /// `spec.strategy` of a Deployment.
    pub(super) fn strategy(&mut self, s: &DeploymentStrategy) {
        if let Some(r) = &s.rolling_update {
            if s.type_ == StrategyType::Recreate {
                self.err(
                    "spec.strategy.rollingUpdate",
                    "only RollingUpdate and Canary use rollingUpdate bounds: remove it for Recreate",
                );
            }
            if r.max_surge.is_some_and(is_zero) && r.max_unavailable.is_some_and(is_zero) {
                self.err(
                    "spec.strategy.rollingUpdate",
                    "maxSurge and maxUnavailable are both 0: the rollout could never replace a pod; allow \
                     at least one of them (e.g. maxSurge: 1)",
                );
            }
        }
        match (&s.type_, &s.canary) {
            (StrategyType::Canary, None) => self.err(
                "spec.strategy.canary",
                "type Canary needs canary.steps, e.g. [{weight: 20}, {pause: {duration: 30s}}]",
            ),
            (StrategyType::Canary, Some(c)) => {
                if c.steps.is_empty() {
                    self.err(
                        "spec.strategy.canary.steps",
                        "must list at least one step: {weight: N} or {pause: {duration: D}}",
                    );
                }
                let mut last = 0;
                for (i, step) in c.steps.iter().enumerate() {
                    let path = format!("spec.strategy.canary.steps[{i}]");
                    match (step.weight, &step.pause) {
                        (Some(w), None) => {
                            if w > 100 {
                                self.err(
                                    format!("{path}.weight"),
                                    format!("{w} is not a percentage: use 0 to 100"),
                                );
                            } else if w < last {
                                self.err(
                                    format!("{path}.weight"),
                                    format!(
                                        "{w} is below the previous step's {last}: weights only grow; a \
                                         failing canary is reverted by the analysis, not by a step"
                                    ),
                                );
                            }
                            last = last.max(w);
                        }
                        (None, Some(_)) => {}
                        _ => self.err(
                            path,
                            "give exactly one of weight (a percentage) and pause ({} or {duration: 30s})",
                        ),
                    }
                }
                if let Some(a) = &c.analysis
                    && !(0.0..=100.0).contains(&a.max_error_percent)
                {
                    self.err(
                        "spec.strategy.canary.analysis.maxErrorPercent",
                        format!("{} is not a percentage: use 0 to 100", a.max_error_percent),
                    );
                }
            }
            (_, Some(_)) => self.err(
                "spec.strategy.canary",
                format!(
                    "canary steps apply only with type: Canary (the type is {})",
                    s.type_
                ),
            ),
            (_, None) => {}
        }
    }
}

fn is_zero(v: IntOrPercent) -> bool {
    matches!(v, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
}
