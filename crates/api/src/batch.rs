//! [`DaemonSet`] (one pod per matching node), [`Job`] (pods that run to completion) and
//! [`CronJob`] (Jobs on a schedule).
use serde::{Deserialize, Serialize};

use crate::meta::{ApiVersion, ObjectMeta};
use crate::quantity::DurationValue;
use crate::rollout::IntOrPercent;
use crate::workload::{LabelSelectorSpec, PodTemplate};

/// Runs one pod of `template` on every node that can take it (its nodeSelector, required node
/// affinity and tolerations), following nodes as they join, leave and change labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSet {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: DaemonSetSpec,
    /// Observed state.
    #[serde(default)]
    pub status: DaemonSetStatus,
}

/// Desired state of a daemon set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetSpec {
    /// Which pods belong to it; must match the template's labels.
    pub selector: LabelSelectorSpec,
    /// The pod to run on each node.
    pub template: PodTemplate,
    /// How a template change replaces the pods.
    #[serde(default)]
    pub update_strategy: DaemonSetUpdateStrategy,
}

/// How a daemon set replaces its pods after a template change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetUpdateStrategy {
    /// `RollingUpdate` (default) or `OnDelete` (a pod is replaced only when someone deletes it).
    #[serde(rename = "type", default)]
    pub type_: DaemonSetStrategyType,
    /// Bounds of a rolling update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<DaemonSetRollingUpdate>,
}

/// Daemon set strategy types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum DaemonSetStrategyType {
    /// Replace old pods node by node, at most `maxUnavailable` nodes without a ready pod.
    #[default]
    RollingUpdate,
    /// Replace a pod only after it is deleted.
    OnDelete,
}

/// Bounds of a daemon set's rolling update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetRollingUpdate {
    /// Nodes whose daemon pod may be unavailable during the update (count or `N%`, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
}

/// Observed state of a daemon set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetStatus {
    /// Nodes that should run a pod.
    #[serde(default)]
    pub desired_number_scheduled: u64,
    /// Nodes that run a pod (of any template) and should.
    #[serde(default)]
    pub current_number_scheduled: u64,
    /// Nodes whose pod is ready.
    #[serde(default)]
    pub number_ready: u64,
    /// Nodes whose pod has the current template.
    #[serde(default)]
    pub updated_number_scheduled: u64,
    /// The `generation` acted on.
    #[serde(default)]
    pub observed_generation: u64,
}

/// Runs pods of `template` until `completions` of them succeed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Job {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: JobSpec,
    /// Observed state.
    #[serde(default)]
    pub status: JobStatus,
}

/// Desired state of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpec {
    /// Successful pods needed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<u32>,
    /// Pods running at once at most (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Failed pods (restarts under `OnFailure`) tolerated before the job fails (default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<u32>,
    /// How long the job may run in all before it fails with `DeadlineExceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline: Option<DurationValue>,
    /// The pod to run; `restartPolicy` must be `Never` or `OnFailure`; components use
    /// `world: command` to run to an exit.
    pub template: PodTemplate,
}

impl JobSpec {
    /// Completions, default filled in.
    pub fn completions(&self) -> u32 {
        self.completions.unwrap_or(1)
    }
    /// Parallelism, default filled in.
    pub fn parallelism(&self) -> u32 {
        self.parallelism.unwrap_or(1)
    }
    /// Backoff limit, default filled in.
    pub fn backoff_limit(&self) -> u32 {
        self.backoff_limit.unwrap_or(6)
    }
}

/// Observed state of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobStatus {
    /// Pods running or about to.
    #[serde(default)]
    pub active: u32,
    /// Pods that succeeded.
    #[serde(default)]
    pub succeeded: u32,
    /// Pod failures so far (failed pods, and restarts under `OnFailure`).
    #[serde(default)]
    pub failed: u32,
    /// When the job started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When it completed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// `Complete` or `Failed` (reason `BackoffLimitExceeded` or `DeadlineExceeded`) once done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<crate::node::NodeCondition>,
}

impl JobStatus {
    /// Whether the job finished (complete or failed).
    pub fn finished(&self) -> Option<&crate::node::NodeCondition> {
        self.conditions.iter().find(|c| {
            (c.type_ == JOB_COMPLETE || c.type_ == JOB_FAILED)
                && c.status == crate::node::ConditionStatus::True
        })
    }
}

/// Job condition type: every completion succeeded.
pub const JOB_COMPLETE: &str = "Complete";
/// Job condition type: the job gave up.
pub const JOB_FAILED: &str = "Failed";

/// Makes Jobs from `jobTemplate` on a cron schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJob {
    /// Always `skiff.dev/v1`.
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: CronJobSpec,
    /// Observed state.
    #[serde(default)]
    pub status: CronJobStatus,
}

/// Desired state of a cron job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJobSpec {
    /// Five cron fields: minute hour day-of-month month day-of-week (`*/5 * * * *`).
    pub schedule: String,
    /// IANA time zone the schedule is read in (default `UTC`), e.g. `Europe/Berlin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// What to do when a run is due while the previous one still runs.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A run missed by more than this is skipped (default: no limit; at most 100 missed runs are
    /// considered, the latest is started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline: Option<DurationValue>,
    /// No new runs while true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Finished successful Jobs kept (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<u32>,
    /// Finished failed Jobs kept (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<u32>,
    /// The Job to make.
    pub job_template: JobTemplate,
}

/// A job template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobTemplate {
    /// Labels and annotations given to each Job.
    #[serde(default)]
    pub metadata: crate::workload::TemplateMeta,
    /// The Job's spec.
    pub spec: JobSpec,
}

/// A cron job's concurrency policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ConcurrencyPolicy {
    /// Runs may overlap.
    #[default]
    Allow,
    /// A run due while another is active is skipped.
    Forbid,
    /// A run due while another is active replaces it (the active one is deleted).
    Replace,
}

/// Observed state of a cron job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJobStatus {
    /// The scheduled time of the latest run started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// Names of its Jobs still running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
}

/// The parsed schedule of a cron job: five fields only (minute hour day-of-month month
/// day-of-week), in the job's time zone.
///
/// # Errors
/// Why the schedule or the time zone cannot be used, in words for the user.
pub fn parse_schedule(
    schedule: &str,
    time_zone: Option<&str>,
) -> Result<(croner::Cron, chrono_tz::Tz), String> {
    let fields = schedule.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "{schedule:?} has {fields} fields: write five (minute hour day-of-month month day-of-week), e.g. \"*/5 * * * *\""
        ));
    }
    let cron: croner::Cron = schedule
        .parse()
        .map_err(|e| format!("{schedule:?} is not a cron schedule: {e}"))?;
    let tz = match time_zone {
        None => chrono_tz::UTC,
        Some(z) => z.parse::<chrono_tz::Tz>().map_err(|_| {
            format!("{z:?} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)")
        })?,
    };
    Ok((cron, tz))
}
