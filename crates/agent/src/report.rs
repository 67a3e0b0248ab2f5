//! Status writes: the agent-owned fields of a pod's status (a [`Status`] the lifecycle machine
//! made) written onto the pod as the API has it now.
use skiff_api::{Object, Pod};
use skiff_client::Client;

use crate::lifecycle::Status;
use crate::util::key;

/// Writes pod status through the API.
#[derive(Clone)]
pub(crate) struct Reporter {
    client: Client,
    node: String,
}

impl Reporter {
    pub(crate) fn new(client: Client, node: String) -> Self {
        Reporter { client, node }
    }

    /// Writes the agent-owned status fields (phase, readiness, reason, message, times, restart
    /// count, exit code) onto `pod` as the API has it now, keeping fields others own (the
    /// scheduler's decision); retried on conflict. A pod re-created meanwhile (another uid) or
    /// gone is left alone; other errors are logged (the next sync reports a running pod again).
    #[tracing::instrument(name = "report", skip_all, fields(pod = %key(pod), uid = pod.metadata.uid.as_deref().unwrap_or_default(), node = %self.node, phase = ?status.phase, reason = status.reason.as_deref().unwrap_or_default()))]
    pub(crate) async fn report(&self, pod: &Pod, status: &Status) {
        let ns = pod.metadata.namespace_or_default();
        for _ in 0..5 {
            let mut current = match self
                .client
                .get(skiff_api::Kind::Pod, Some(ns), &pod.metadata.name)
                .await
            {
                Ok(Object::Pod(p)) => p,
                Ok(_) => return,
                Err(e) if e.is_not_found() => return,
                Err(e) => {
                    tracing::warn!(pod = %key(pod), error = %e, "status report failed; the next sync retries");
                    return;
                }
            };
            if current.metadata.uid != pod.metadata.uid {
                return; // re-created meanwhile: not ours to report on
            }
            let st = &mut current.status;
            st.phase = status.phase;
            st.ready = status.ready;
            st.reason = status.reason.clone();
            st.message = status.message.clone();
            st.start_time = status.start_time.clone();
            st.finished_at = status.finished_at.clone();
            st.restarts = status.restarts;
            st.exit_code = status.exit_code;
            match self.client.update_status(&Object::Pod(current)).await {
                Ok(_) => return,
                Err(e) if e.is_conflict() => continue,
                Err(e) => {
                    tracing::warn!(pod = %key(pod), error = %e, "status report failed; the next sync retries");
                    return;
                }
            }
        }
    }
}

/// Changes the status of pod `key` (`namespace/pod`) by `change` as the API has it now:
/// retried on conflict, dropped (with a debug line naming `what`) when the API cannot take it.
/// For counters the node adds to (throttled and denied requests), not for the lifecycle.
pub(crate) async fn amend_pod_status(
    client: &Client,
    key: &str,
    what: &str,
    change: impl Fn(&mut skiff_api::PodStatus),
) {
    let Some((ns, name)) = key.split_once('/') else {
        return;
    };
    for _ in 0..5 {
        let mut pod = match client.get(skiff_api::Kind::Pod, Some(ns), name).await {
            Ok(Object::Pod(p)) => p,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(pod = %key, error = %e, "cannot report {what}");
                return;
            }
        };
        change(&mut pod.status);
        match client.update_status(&Object::Pod(pod)).await {
            Ok(_) => return,
            Err(e) if e.is_conflict() => continue,
            Err(e) => {
                tracing::debug!(pod = %key, error = %e, "cannot report {what}");
                return;
            }
        }
    }
}
