//! [`Function`]: a component plus triggers, with no instances until an event arrives; and the
//! wire types of topics ([`CloudEvent`], [`PublishResult`], [`TopicStatus`]).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};
use crate::pod::Component;
use crate::policy::Toleration;
use crate::quantity::{ByteSize, DurationValue};

/// Label on the pods a function runs on: the function's name.
pub const FUNCTION_LABEL: &str = "skiff.dev/function";

/// The name of the Endpoints object holding a function's ready pods: `fn.NAME` (object names
/// are DNS labels, so it never collides with a Service's).
pub fn function_endpoints_name(function: &str) -> String {
    format!("fn.{function}")
}

/// The internal topic a function's cron trigger number `trigger` publishes its ticks to.
pub fn cron_topic(function: &str, trigger: usize) -> String {
    format!("cron.{function}.{trigger}")
}

/// The internal topic a function's MQTT trigger number `trigger` stores its broker's messages in
/// before they are delivered.
pub fn mqtt_topic(function: &str, trigger: usize) -> String {
    format!("mqtt.{function}.{trigger}")
}

/// Whether `topic` is one Skiff keeps for a function's cron or MQTT trigger (clients cannot
/// publish to it or subscribe a function to it).
pub fn is_internal_topic(topic: &str) -> bool {
    topic.starts_with("cron.") || topic.starts_with("mqtt.")
}

/// Header an agent answers a function call with when the call failed inside the function:
/// `invalid`, `retryable`, `trap` or `timeout`.
pub const FUNCTION_ERROR_HEADER: &str = "x-skiff-function-error";

/// Header on a 429 from a pod that is at its concurrency limit (the gateway tries another pod).
pub const OVERLOADED_HEADER: &str = "x-skiff-overloaded";

/// A Lambda-style function: `component` runs once per event from its `triggers`, in a fresh
/// instance of the cached compiled code. Pods come and go with the load, between `minScale` and
/// `maxScale` (0: no pod while idle).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Function {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: FunctionSpec,
    /// Observed state, written by the function controller.
    #[serde(default)]
    pub status: FunctionStatus,
}

/// Desired state of a function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FunctionSpec {
    /// The component: `wasm` with `world: function` (a `skiff:function` handler) or `world: http`
    /// (a `wasi:http/proxy` component, for HTTP triggers and invocations), with its env, config
    /// and grants as in a pod. Its `resources.memory` and `resources.timeout` are this spec's
    /// `memory` and `timeout`.
    pub component: Component,
    /// What invokes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// Calls one pod of the function takes at once; one more gets 429 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Concurrent calls per pod the scaler aims for (default 70% of `concurrency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_concurrency: Option<u32>,
    /// Fewest pods, also when idle (default 0: none while idle).
    #[serde(default)]
    pub min_scale: u32,
    /// Most pods (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_scale: Option<u32>,
    /// How long the load must stay lower before pods are removed (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay: Option<DurationValue>,
    /// Wall-clock limit of one call (default 30s); past it the call fails as a timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationValue>,
    /// Largest linear memory of one instance (default 64Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Retries of a failed event delivery (event, cron and MQTT triggers).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Where an event goes after its last failed attempt, or at once when the function calls it
    /// invalid (a topic in the function's namespace). Without one it is dropped, with an Event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    /// Nodes the function's pods may run on (their labels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the function's pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

impl FunctionSpec {
    /// Default per-pod concurrency.
    pub const DEFAULT_CONCURRENCY: u32 = 100;
    /// Default most pods.
    pub const DEFAULT_MAX_SCALE: u32 = 10;
    /// Default scale-down delay.
    pub const DEFAULT_SCALE_DOWN_DELAY: std::time::Duration = std::time::Duration::from_secs(30);

    /// `concurrency` or its default.
    pub fn concurrency_or_default(&self) -> u32 {
        self.concurrency.unwrap_or(Self::DEFAULT_CONCURRENCY).max(1)
    }

    /// `targetConcurrency` or 70% of the concurrency (at least 1).
    pub fn target_concurrency_or_default(&self) -> u32 {
        self.target_concurrency
            .unwrap_or_else(|| (self.concurrency_or_default() * 7).div_ceil(10))
            .max(1)
    }

    /// `maxScale` or its default.
    pub fn max_scale_or_default(&self) -> u32 {
        self.max_scale.unwrap_or(Self::DEFAULT_MAX_SCALE)
    }

    /// `scaleDownDelay` or its default.
    pub fn scale_down_delay_or_default(&self) -> std::time::Duration {
        self.scale_down_delay
            .map(|d| d.0)
            .unwrap_or(Self::DEFAULT_SCALE_DOWN_DELAY)
    }

    /// The pod spec each of the function's pods runs: its component (named `fn` when unnamed)
    /// with `memory`, `timeout` and `concurrency` as the component's limits, spread over nodes
    /// (one pod per node where it can).
    pub fn pod_spec(&self) -> crate::pod::PodSpec {
        let mut component = self.component.clone();
        if component.name.is_empty() {
            component.name = "fn".into();
        }
        component.resources.memory = self.memory.or(component.resources.memory);
        component.resources.timeout = self.timeout.or(component.resources.timeout);
        component.resources.concurrency = Some(self.concurrency_or_default());
        crate::pod::PodSpec {
            components: vec![component],
            node_selector: self.node_selector.clone(),
            tolerations: self.tolerations.clone(),
            ..Default::default()
        }
    }

    /// The topics of its `event` triggers, in order, without repeats.
    pub fn event_topics(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for t in &self.triggers {
            if let Some(e) = &t.event
                && !out.contains(&e.topic.as_str())
            {
                out.push(&e.topic);
            }
        }
        out
    }
}

/// One trigger: exactly one of its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    /// HTTP requests through the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTrigger>,
    /// A schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronTrigger>,
    /// Events published to a topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventTrigger>,
    /// Messages of an MQTT broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttTrigger>,
}

/// Requests whose path starts with `path` (and whose method is one of `methods`, any when empty)
/// go to the function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTrigger {
    /// Path prefix, starting with `/`.
    pub path: String,
    /// Methods (upper case); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Host names the route answers for; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
}

/// Fires on a 5-field cron schedule in a time zone, each tick once cluster-wide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronTrigger {
    /// `minute hour day-of-month month day-of-week`.
    pub schedule: String,
    /// IANA time zone (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// How late a missed tick (no leader at the time) may still fire (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_window: Option<DurationValue>,
}

impl CronTrigger {
    /// Default catch-up window.
    pub const DEFAULT_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(300);
}

/// Every event published to `topic` (in the function's namespace) is delivered to the function
/// at least once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTrigger {
    /// Topic name.
    pub topic: String,
}

/// Subscribes to `topic` on an MQTT broker and calls the function once per message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MqttTrigger {
    /// `mqtt://host:port`.
    pub broker: String,
    /// Topic filter (`sensors/+/temperature`, `#`).
    pub topic: String,
    /// Quality of service: 0 (at most once) or 1 (at least once; default).
    #[serde(default = "one")]
    pub qos: u8,
    /// Where the function's answer is published, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_topic: Option<String>,
}

fn one() -> u8 {
    1
}

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Deliveries in all, the first included (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Wait before the first retry, doubled for each further one, at most 5 minutes (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<DurationValue>,
}

impl RetryPolicy {
    /// Default attempts.
    pub const DEFAULT_ATTEMPTS: u32 = 3;
    /// Default first back-off.
    pub const DEFAULT_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);
    /// Longest back-off.
    pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(300);

    /// `attempts` or its default (at least 1).
    pub fn attempts_or_default(&self) -> u32 {
        self.attempts.unwrap_or(Self::DEFAULT_ATTEMPTS).max(1)
    }

    /// The wait before attempt `n + 1` after `n` failed attempts (n ≥ 1).
    pub fn backoff_after(&self, failed: u32) -> std::time::Duration {
        let base = self.backoff.map(|d| d.0).unwrap_or(Self::DEFAULT_BACKOFF);
        let factor = 1u32 << failed.saturating_sub(1).min(20);
        base.saturating_mul(factor).min(Self::MAX_BACKOFF)
    }
}

/// Observed state of a function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FunctionStatus {
    /// Pods the scaler wants.
    #[serde(default)]
    pub desired_replicas: u32,
    /// Pods that exist.
    #[serde(default)]
    pub replicas: u32,
    /// Pods that take calls.
    #[serde(default)]
    pub ready_replicas: u32,
    /// When the desired count last went up (RFC 3339); scale-down waits `scaleDownDelay` after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_up: Option<String>,
    /// When something last asked for a pod while there was none (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activation: Option<String>,
    /// Average concurrent calls over the scaler's last window, all pods together.
    #[serde(default)]
    pub observed_concurrency: f64,
    /// State of each MQTT trigger's connection, by trigger index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<TriggerConnection>,
}

/// A trigger connector's connection to its broker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerConnection {
    /// Index into `spec.triggers`.
    pub trigger: usize,
    /// Whether it is connected and subscribed.
    pub connected: bool,
    /// Why not, or what happened last.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When it last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// One event, in the CloudEvents 1.0 JSON format: `data` for a JSON payload or `data_base64` for
/// bytes. What `POST …/topics/{topic}/events` takes and `GET …/topics/{topic}/events` answers.
/// Attributes other than the ones below are extensions (string values).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CloudEvent {
    /// Always `1.0`.
    #[serde(default = "spec_version")]
    pub specversion: String,
    /// Unique per source (the server makes one when missing).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Where it comes from (default `/topics/{topic}`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// What happened (default `dev.skiff.event`).
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// What it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When it happened (RFC 3339; default: when the cluster took it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Media type of the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// A JSON payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// A binary payload, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    /// Extension attributes (lower-case names, string values).
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, String>,
}

fn spec_version() -> String {
    "1.0".into()
}

/// What a publish answered for one event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishResult {
    /// The topic.
    pub topic: String,
    /// The event's id.
    pub id: String,
    /// Its position in the topic (1, 2, …).
    pub sequence: u64,
    /// Whether an earlier publish with the same idempotency key already stored it (nothing new
    /// was stored).
    pub duplicate: bool,
}

/// A topic as `GET …/topics` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// Namespace.
    pub namespace: String,
    /// Topic name.
    pub name: String,
    /// Events published in all (the last sequence number).
    pub published: u64,
    /// Events still stored.
    pub stored: u64,
    /// Events no subscriber has finished with yet: the longest lag.
    pub backlog: u64,
    /// Each subscribing function's position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribers: Vec<SubscriberStatus>,
}

/// One function's position in a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberStatus {
    /// The function.
    pub function: String,
    /// Events after its position (not yet delivered), retries waiting included.
    pub lag: u64,
    /// Events waiting for a retry.
    pub retrying: u64,
    /// Events delivered.
    pub delivered: u64,
    /// Events sent to the dead-letter topic (or dropped without one).
    pub dead_lettered: u64,
}

/// Whether `name` is a valid topic name: 1–200 characters of `a-z 0-9 . _ -`, starting with a
/// letter or digit.
pub fn topic_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 200 {
        return Some(format!("topic name {name:?} must be 1 to 200 characters long"));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_ok
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return Some(format!(
            "topic name {name:?} may use only lower-case letters, digits, '.', '_' and '-', and must start with a letter or digit"
        ));
    }
    None
}
