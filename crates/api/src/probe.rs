//! [`Probe`]: a periodic HTTP check of a component (readiness and liveness).
use serde::{Deserialize, Serialize};

/// A periodic check of a component: a `GET` to `httpGet.path` on the component, called in-process
/// by the node's agent. A 2xx or 3xx answer within `timeoutSeconds` is a success; anything else
/// (4xx, 5xx, a trap, the timeout) is a failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// What to call.
    pub http_get: HttpGetAction,
    /// Seconds between probes (default 10, minimum 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    /// Seconds a probe may take before it counts as failed (default 1, minimum 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Consecutive failures that make the probe fail (default 3, minimum 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// Consecutive successes that make a failed probe pass again (default 1, minimum 1; a
    /// liveness probe only accepts 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    /// Seconds after the component starts before the first probe (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<u32>,
}

/// The HTTP request a [`Probe`] makes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGetAction {
    /// Path and optional query, starting with `/`.
    pub path: String,
}

/// Upper bound of every probe duration field, in seconds (one hour).
const MAX_SECONDS: u32 = 3600;

impl Probe {
    /// Default `periodSeconds`.
    pub const DEFAULT_PERIOD: u32 = 10;
    /// Default `timeoutSeconds`.
    pub const DEFAULT_TIMEOUT: u32 = 1;
    /// Default `failureThreshold`.
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

    /// Time between probes.
    pub fn period(&self) -> std::time::Duration {
        secs(self.period_seconds.unwrap_or(Self::DEFAULT_PERIOD))
    }

    /// Time a probe may take.
    pub fn timeout(&self) -> std::time::Duration {
        secs(self.timeout_seconds.unwrap_or(Self::DEFAULT_TIMEOUT))
    }

    /// Delay before the first probe.
    pub fn initial_delay(&self) -> std::time::Duration {
        secs(self.initial_delay_seconds.unwrap_or(0))
    }

    /// Consecutive failures that make the probe fail.
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold.unwrap_or(Self::DEFAULT_FAILURE_THRESHOLD)
    }

    /// Consecutive successes that make a failed probe pass.
    pub fn success_threshold(&self) -> u32 {
        self.success_threshold.unwrap_or(1)
    }

    /// What is wrong with this probe, as (field below the probe, message) pairs; `liveness`
    /// selects the liveness rules (`successThreshold` must be 1).
    pub fn problems(&self, liveness: bool) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let path = &self.http_get.path;
        if !path.starts_with('/') {
            out.push((
                "httpGet.path",
                format!("{path:?} must start with '/' (for example \"/healthz\")"),
            ));
        } else if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            out.push((
                "httpGet.path",
                format!("{path:?} must not contain spaces or control characters"),
            ));
        }
        let ranged = [
            ("periodSeconds", self.period_seconds, 1),
            ("timeoutSeconds", self.timeout_seconds, 1),
            ("failureThreshold", self.failure_threshold, 1),
            ("successThreshold", self.success_threshold, 1),
            ("initialDelaySeconds", self.initial_delay_seconds, 0),
        ];
        for (field, value, min) in ranged {
            if let Some(v) = value
                && (v < min || v > MAX_SECONDS)
            {
                out.push((field, format!("{v} is out of range: use {min} to {MAX_SECONDS}")));
            }
        }
        if liveness && self.success_threshold.is_some_and(|s| s != 1) {
            out.push((
                "successThreshold",
                "must be 1 for a liveness probe (one success means alive)".into(),
            ));
        }
        out
    }
}

fn secs(s: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(json: &str) -> Probe {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let p = probe(r#"{"httpGet":{"path":"/healthz"}}"#);
        assert_eq!(p.period().as_secs(), 10);
        assert_eq!(p.timeout().as_secs(), 1);
        assert_eq!(p.failure_threshold(), 3);
        assert_eq!(p.success_threshold(), 1);
        assert!(p.initial_delay().is_zero());
        assert!(p.problems(true).is_empty());
    }

    #[test]
    fn bad_paths_and_bounds_are_named() {
        let p = probe(
            r#"{"httpGet":{"path":"healthz"},"periodSeconds":0,"failureThreshold":0,"successThreshold":2}"#,
        );
        let fields: Vec<&str> = p.problems(true).iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "httpGet.path",
                "periodSeconds",
                "failureThreshold",
                "successThreshold"
            ]
        );
        let readiness: Vec<&str> = p.problems(false).iter().map(|(f, _)| *f).collect();
        assert_eq!(readiness, ["httpGet.path", "periodSeconds", "failureThreshold"]);
    }
}
