//! Checks of replicated workloads: replica counts, selectors against templates, strategies.
use std::collections::BTreeMap;

use super::{Checker, MAX_REPLICAS, fmt_map};
use crate::pod::RestartPolicy;
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
        self.pod_spec("spec.template.spec", &template.spec);
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
