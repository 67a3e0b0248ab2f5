//! # skiff-api: the resource model
//!
//! Every object Skiff stores, serves or sends is one of the plain data types in this crate. They are
//! Kubernetes-shaped (`apiVersion`, `kind`, `metadata`, `spec`, server-owned `status`) and versioned
//! under `apiVersion: skiff.dev/v1`. The crate knows nothing of storage, networking or runtimes.
//!
//! ```
//! use skiff_api::{Object, Kind};
//! let json = r#"{"apiVersion":"skiff.dev/v1","kind":"Namespace","metadata":{"name":"team-a"}}"#;
//! let obj: Object = serde_json::from_str(json).unwrap();
//! assert_eq!(obj.kind(), Kind::Namespace);
//! assert_eq!(obj.meta().name, "team-a");
//! obj.validate().unwrap();
//! ```
//!
//! ## Core concepts
//! - [`Object`]: one stored resource of any [`Kind`], tagged by `kind` on the wire.
//! - [`ObjectMeta`]: name, namespace, labels and the server-assigned `resourceVersion` (the global
//!   revision of the object's last change), `uid`, `generation` and owner references.
//! - [`Pod`] runs one or more [`Component`]s on one node; a [`Deployment`] keeps `replicas` pods of a
//!   template, one [`ReplicaSet`] per template revision, and rolls between revisions by its
//!   [`DeploymentStrategy`] (RollingUpdate, Recreate, Canary); a [`Service`] selects pods, whose ready addresses the server publishes as [`Endpoints`];
//!   an [`HttpRoute`] exposes services through the gateway.
//! - [`validate`](Object::validate) checks what serde cannot (names, labels, references, ranges) and
//!   reports every problem with its field path, e.g. `spec.template.spec.components[0].wasm`.
//! - [`DaemonSet`] runs a pod on every matching node; a [`Job`] runs `world: command` components
//!   to completion with retries; a [`CronJob`] makes Jobs on a schedule in a time zone.
//! - [`Event`] records what happened to an object (`NodeNotReady`, `Scheduled`, `PodEvicted`),
//!   deduplicated by object and reason with a `count`.
//! - [`ConfigMap`] and [`Secret`] hold `data` (key → string) that components read as environment
//!   variables (`env[].valueFrom`); Secret values are encrypted at rest by the control plane.
//! - [`Function`] is a component plus [`Trigger`]s (HTTP, cron, event topics, MQTT) with no pods
//!   while idle; events published to a topic ([`CloudEvent`]) reach every subscribed function at
//!   least once, with [`RetryPolicy`] back-off and a dead-letter topic.
//! - [`Capabilities`] grant a component what lies outside its sandbox: key-value stores
//!   ([`KeyValueStore`]) of its namespace, opened through `wasi:keyvalue`.
//! - [`WatchEvent`], [`ObjectList`] and [`ErrorBody`] are the API's envelopes.
#![deny(missing_docs)]

mod access;
mod affinity;
pub mod backup;
mod batch;
mod capabilities;
mod config;
mod error_code;
mod event;
mod function;
mod image;
mod keyvalue;
mod kind;
mod members;
mod meta;
mod node;
mod object;
mod outbound;
mod pod;
mod policy;
mod probe;
mod quantity;
mod quota;
mod rollout;
mod schema;
mod selector;
mod service;
mod stats;
mod token;
mod validate;
mod wire;
mod workload;

pub use access::{
    API_TOKEN_PREFIX, API_TOKEN_SECRET_LEN, ApiToken, ApiTokenSpec, AuditRecord, BUILTIN_ROLES,
    EXTRA_RESOURCES, Revocation, RevocationSpec, Role, RoleRule, RoleSpec, VERBS, parse_api_token,
    revocation_name,
};
pub use affinity::{
    Affinity, LabelOperator, LabelRequirement, NodeAffinity, NodeSelectorTerm, PodAffinityTerm,
    PreferredTerm, TopologySpreadConstraint, WhenUnsatisfiable, selector_matches,
};
pub use batch::{
    ConcurrencyPolicy, CronJob, CronJobSpec, CronJobStatus, DaemonSet, DaemonSetRollingUpdate, DaemonSetSpec,
    DaemonSetStatus, DaemonSetStrategyType, DaemonSetUpdateStrategy, JOB_COMPLETE, JOB_FAILED, Job, JobSpec,
    JobStatus, JobTemplate, parse_schedule,
};
pub use capabilities::Capabilities;
pub use config::{ConfigMap, MAX_CONFIG_DATA_BYTES, MAX_CONFIG_KEY_LEN, Secret, config_key_problem};
pub use error_code::ErrorCode;
pub use event::{Event, EventSeverity, EventSource, ObjectReference};
pub use function::{
    CloudEvent, CronTrigger, EventTrigger, FUNCTION_ERROR_HEADER, FUNCTION_LABEL, Function, FunctionSpec,
    FunctionStatus, HttpTrigger, MqttTrigger, OVERLOADED_HEADER, PublishResult, RetryPolicy,
    SubscriberStatus, TopicStatus, Trigger, TriggerConnection, cron_topic, function_endpoints_name,
    is_internal_topic, mqtt_topic, topic_name_problem,
};
pub use image::{ImageRef, is_sha256_digest};
pub use keyvalue::{
    KeyPage, KeyValueStore, MAX_KV_KEY_BYTES, MAX_KV_KEYS_PER_STORE, MAX_KV_VALUE_BYTES, kv_key_problem,
    store_name_problem,
};
pub use kind::{Kind, UnknownKind};
pub use members::MemberView;
pub use meta::{API_VERSION, ApiVersion, DEFAULT_NAMESPACE, ObjectMeta, OwnerReference};
pub use node::{
    ARCH_LABEL, CONDITIONS_ANNOTATION, ConditionStatus, HOSTNAME_LABEL, Namespace, Node, NodeCapacity,
    NodeCondition, NodeSpec, NodeStatus, OS_LABEL, READY_CONDITION,
};
pub use object::Object;
pub use outbound::{GrantError, HostMatch, OutboundGrant, PortMatch, SchemeMatch, default_port};
pub use pod::{
    Component, DeniedOutbound, EnvVar, EnvVarSource, KeyRef, NO_POD_HEADER, OciSpec, POD_NAME_HEADER, Pod,
    PodPhase, PodSpec, PodStatus, Resources, RestartPolicy, SchedulingStatus, WasmSpec, World,
};
pub use policy::{
    DisconnectDelay, DisconnectPolicy, Taint, TaintEffect, Toleration, TolerationOperator, untolerated,
};
pub use probe::{HttpGetAction, Probe};
pub use quantity::{ByteSize, DurationValue, Millicores, QuantityError};
pub use quota::{
    QuotaAmounts, QuotaExcess, QuotaResource, ResourceQuota, ResourceQuotaSpec, ResourceQuotaStatus,
};
pub use rollout::{
    AVAILABLE_CONDITION, CanaryAnalysis, CanaryPause, CanaryPhase, CanaryStatus, CanaryStep, CanaryStrategy,
    DeploymentCondition, DeploymentStrategy, IntOrPercent, NEW_REPLICA_SET_AVAILABLE,
    PROGRESS_DEADLINE_EXCEEDED, PROGRESSING_CONDITION, RollingUpdate, StrategyType,
};
pub use schema::{NamedSchema, kind_schema};
pub use selector::{LabelSelector, SelectorError, SelectorTerm, map_matches};
pub use service::{
    BackendRef, EndpointAddress, Endpoints, HttpRoute, HttpRouteSpec, RouteRule, Service, ServicePort,
    ServiceSpec,
};
pub use stats::{PodStats, PodTraffic, pod_stats_path};
pub use token::{
    JoinToken, JoinTokenSpec, NodeJoinRequest, NodeJoinResponse, NodeRenewRequest, TOKEN_ID_LEN,
    TOKEN_SECRET_LEN,
};
pub use validate::{FieldError, ValidationErrors, label_problem};
pub use wire::{ErrorBody, EventType, ObjectList, WatchEvent};
pub use workload::{
    CHANGE_CAUSE_ANNOTATION, CONFIG_HASH_ANNOTATION, DEFAULT_PROGRESS_DEADLINE,
    DEFAULT_REVISION_HISTORY_LIMIT, Deployment, DeploymentSpec, DeploymentStatus, LabelSelectorSpec,
    MatchLabels, PodTemplate, RESTARTED_AT_ANNOTATION, REVISION_ANNOTATION, ReplicaSet, ReplicaSetSpec,
    ReplicaSetStatus, TEMPLATE_HASH_LABEL, TemplateMeta,
};
