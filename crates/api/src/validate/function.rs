//! Checks of a Function: its component (as its pods will run it), triggers, scale and retry.
use super::{Checker, FieldError};
use crate::function::{FunctionSpec, RetryPolicy, topic_name_problem};
use crate::pod::World;

/// Most pods a function may scale to.
const MAX_FUNCTION_SCALE: u32 = 1_000;

impl Checker {
    /// `spec` of a Function.
    pub(super) fn function(&mut self, s: &FunctionSpec) {
        let c = &s.component;
        if c.oci.is_some() {
            self.err(
                "spec.component.oci",
                "functions run wasm components only (a fresh instance per call): use wasm, or run the \
                 container in a Deployment",
            );
        }
        if c.wasm.as_ref().is_some_and(|w| w.world == World::Command) {
            self.err(
                "spec.component.wasm.world",
                "world command runs once to its exit: a function's component is world function \
                 (skiff:function/handler) or http (wasi:http/proxy)",
            );
        }
        for (field, set) in [
            ("memory", c.resources.memory.is_some()),
            ("timeout", c.resources.timeout.is_some()),
            ("concurrency", c.resources.concurrency.is_some()),
        ] {
            if set {
                self.err(
                    format!("spec.component.resources.{field}"),
                    format!("a function sets its {field} as spec.{field}: move it there"),
                );
            }
        }
        if c.readiness_probe.is_some() || c.liveness_probe.is_some() {
            self.err(
                "spec.component",
                "functions have no probes: each call runs in a fresh instance; remove readinessProbe/livenessProbe",
            );
        }
        // The component as the function's pods run it, reported under the function's paths.
        let mut pod = Checker { errors: Vec::new() };
        pod.pod_spec("spec", &s.pod_spec());
        for e in pod.errors {
            let path = match e.path.strip_prefix("spec.components[0]") {
                Some(rest) => match rest.strip_prefix(".resources.") {
                    Some(field @ ("memory" | "timeout")) => format!("spec.{field}"),
                    _ => format!("spec.component{rest}"),
                },
                None => e.path,
            };
            self.errors.push(FieldError {
                path,
                message: e.message,
            });
        }
        self.scale(s);
        self.retry(&s.retry);
        if let Some(t) = &s.dead_letter_topic
            && let Some(why) = topic_name_problem(t)
        {
            self.err("spec.deadLetterTopic", why);
        }
        if s.triggers.is_empty() {
            self.err(
                "spec.triggers",
                "must list at least one trigger: http {path}, cron {schedule}, event {topic} or mqtt {broker, topic}",
            );
        }
        for (i, t) in s.triggers.iter().enumerate() {
            self.trigger(&format!("spec.triggers[{i}]"), t, s.dead_letter_topic.as_deref());
        }
    }

    fn scale(&mut self, s: &FunctionSpec) {
        let max = s.max_scale_or_default();
        if max > MAX_FUNCTION_SCALE {
            self.err(
                "spec.maxScale",
                format!("{max} is too many pods: at most {MAX_FUNCTION_SCALE}"),
            );
        }
        if s.min_scale > max {
            self.err(
                "spec.minScale",
                format!(
                    "{} is more than maxScale {max}: make minScale ≤ maxScale",
                    s.min_scale
                ),
            );
        }
        if max == 0 {
            self.err(
                "spec.maxScale",
                "is 0: the function could never run; use 1 or more",
            );
        }
        if s.concurrency == Some(0) {
            self.err(
                "spec.concurrency",
                "is 0: a pod must take at least one call at once",
            );
        }
        if let Some(t) = s.target_concurrency
            && (t == 0 || t > s.concurrency_or_default())
        {
            self.err(
                "spec.targetConcurrency",
                format!(
                    "{t} must be between 1 and concurrency ({})",
                    s.concurrency_or_default()
                ),
            );
        }
    }

    fn retry(&mut self, r: &RetryPolicy) {
        if let Some(a) = r.attempts
            && !(1..=100).contains(&a)
        {
            self.err(
                "spec.retry.attempts",
                format!("{a} is out of range: use 1 (no retry) to 100"),
            );
        }
        if let Some(b) = r.backoff
            && b.0 > RetryPolicy::MAX_BACKOFF
        {
            self.err("spec.retry.backoff", "is longer than the 5m limit of a back-off");
        }
    }

    fn trigger(&mut self, path: &str, t: &crate::function::Trigger, dead_letter: Option<&str>) {
        let set = [
            t.http.is_some(),
            t.cron.is_some(),
            t.event.is_some(),
            t.mqtt.is_some(),
        ];
        if set.iter().filter(|b| **b).count() != 1 {
            self.err(
                path,
                "set exactly one of http, cron, event and mqtt (one trigger each; list several triggers instead)",
            );
        }
        if let Some(h) = &t.http {
            if !h.path.starts_with('/') {
                self.err(
                    format!("{path}.http.path"),
                    format!("{:?} must start with '/'", h.path),
                );
            }
            for (j, m) in h.methods.iter().enumerate() {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                    self.err(
                        format!("{path}.http.methods[{j}]"),
                        format!("{m:?} is not an HTTP method: use upper case, e.g. GET or POST"),
                    );
                }
            }
        }
        if let Some(c) = &t.cron
            && let Err(why) = crate::batch::parse_schedule(&c.schedule, c.timezone.as_deref())
        {
            self.err(format!("{path}.cron"), why);
        }
        if let Some(w) = t.cron.as_ref().and_then(|c| c.catch_up_window)
            && w.0 > std::time::Duration::from_secs(86_400)
        {
            self.err(
                format!("{path}.cron.catchUpWindow"),
                "is longer than a day: ticks are deduplicated for a day, so a longer window could fire one twice",
            );
        }
        if let Some(e) = &t.event {
            if let Some(why) = topic_name_problem(&e.topic) {
                self.err(format!("{path}.event.topic"), why);
            } else if Some(e.topic.as_str()) == dead_letter {
                self.err(
                    format!("{path}.event.topic"),
                    "is also the deadLetterTopic: a failing event would come back forever; use another topic",
                );
            }
        }
        if let Some(m) = &t.mqtt {
            let ok = m
                .broker
                .strip_prefix("mqtt://")
                .and_then(|hp| hp.rsplit_once(':'))
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                self.err(
                    format!("{path}.mqtt.broker"),
                    format!(
                        "{:?} is not a broker address: use mqtt://HOST:PORT, e.g. mqtt://10.0.0.5:1883",
                        m.broker
                    ),
                );
            }
            if m.topic.is_empty() || m.topic.contains('\0') {
                self.err(
                    format!("{path}.mqtt.topic"),
                    "must be an MQTT topic filter such as sensors/+/temp",
                );
            }
            if m.qos > 1 {
                self.err(
                    format!("{path}.mqtt.qos"),
                    format!(
                        "{} is not supported: use 0 (at most once) or 1 (at least once)",
                        m.qos
                    ),
                );
            }
            if let Some(r) = &m.reply_topic
                && (r.is_empty() || r.contains(['+', '#']))
            {
                self.err(
                    format!("{path}.mqtt.replyTopic"),
                    "must be a topic name without wildcards (+, #)",
                );
            }
        }
    }
}
