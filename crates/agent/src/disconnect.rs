//! `spec.disconnect.stopAfter`: pods that must not outlive a long loss of contact with the control
//! plane are stopped on the node, and started again (same uid) once contact returns.
//!
//! ```text
//! heartbeat ok ──► on_contact(now)      last contact = now; held pods the control plane confirms
//!                                        are still bound here are released → next sync starts them
//! heartbeat fails ► on_no_contact(now)  offline = now - last contact; every running pod whose
//!                                        stopAfter ≤ offline is stopped and held
//! ```
//!
//! The decision ([`due`]) is a pure function of the running pods' `stopAfter` and how long the node
//! has been without contact; [`Disconnect`] keeps the time of the last contact and tells the pods'
//! drivers through the [`PodTable`] (`Hold`, then `Release` with the pod as the control plane has
//! it now). The clock starts when the agent starts, so an agent that starts offline counts from
//! then.
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_api::{Object, PodPhase};
use skiff_client::Client;

use crate::lifecycle::PodFacts;
use crate::pods::PodTable;

/// The uids among `running` (uid, `stopAfter`) that must stop after `offline` without contact.
pub(crate) fn due(running: &[(String, Option<Duration>)], offline: Duration) -> Vec<String> {
    running
        .iter()
        .filter(|(_, stop_after)| stop_after.is_some_and(|d| offline >= d))
        .map(|(uid, _)| uid.clone())
        .collect()
}

/// Tracks contact with the control plane for the run loop and applies `stopAfter`.
pub(crate) struct Disconnect {
    pods: Arc<PodTable>,
    client: Client,
    last_contact: Instant,
}

impl Disconnect {
    /// Starts counting from `now` (the agent's start).
    pub(crate) fn new(pods: Arc<PodTable>, client: Client, now: Instant) -> Self {
        Disconnect {
            pods,
            client,
            last_contact: now,
        }
    }

    /// Asks the control plane about each held pod and releases those still bound to this node,
    /// under the same uid and not terminal (their drivers start them again); returns how many.
    /// The others stay held (the informer's view may still be the stale one from before the
    /// partition) until a sync no longer lists them; a pod the control plane cannot be asked
    /// about is asked again at the next contact.
    async fn release_held(&self) -> usize {
        let node = self.pods.node();
        let mut released = 0;
        for (uid, key) in self.pods.held() {
            let Some((ns, name)) = key.split_once('/') else {
                continue;
            };
            let pod = match self.client.get(skiff_api::Kind::Pod, Some(ns), name).await {
                Ok(Object::Pod(p))
                    if p.metadata.uid.as_deref() == Some(uid.as_str())
                        && p.spec.node_name.as_deref() == Some(node)
                        && !matches!(p.status.phase, PodPhase::Failed | PodPhase::Succeeded) =>
                {
                    p
                }
                _ => continue,
            };
            tracing::info!(pod = %key, uid = %uid, node = %node, "contact is back and the pod is still bound here: starting it again");
            self.pods.release(&uid, PodFacts::of(&pod));
            released += 1;
        }
        released
    }

    /// The control plane answered at `now`: held pods that it confirms are still bound to this
    /// node may run again; the next pod sync starts them under the same uid.
    pub(crate) async fn on_contact(&mut self, now: Instant) {
        self.last_contact = now;
        let released = self.release_held().await;
        if released > 0 {
            tracing::info!(
                pods = released,
                "control plane reachable: pods stopped by disconnect.stopAfter start again"
            );
        }
    }

    /// The control plane could not be reached at `now`: stops the running pods whose `stopAfter`
    /// has passed since the last contact.
    pub(crate) fn on_no_contact(&mut self, now: Instant) {
        let offline = now.saturating_duration_since(self.last_contact);
        let stop = due(&self.pods.stop_after_of_serving(), offline);
        if !stop.is_empty() {
            tracing::warn!(
                pods = stop.len(),
                offline_secs = offline.as_secs(),
                "no contact with the control plane past the pods' disconnect.stopAfter: stopping them"
            );
            self.pods.hold(&stop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_stop_once_offline_for_their_stop_after() {
        let secs = Duration::from_secs;
        let running = vec![
            ("forever".to_owned(), None),
            ("quick".to_owned(), Some(secs(5))),
            ("slow".to_owned(), Some(secs(600))),
        ];
        assert!(due(&running, secs(4)).is_empty());
        assert_eq!(due(&running, secs(5)), ["quick"]);
        assert_eq!(due(&running, secs(3600)), ["quick", "slow"]);
    }
}
