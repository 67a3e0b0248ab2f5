//! Egress grants on this node: each component's `capabilities.outbound` becomes the
//! runtime's [`Egress`], and the requests the runtime denied are added to each pod's
//! `status.deniedOutbound` every few seconds, from which the control plane records an
//! `OutboundDenied` Warning naming the grant that is missing.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::{Component, DeniedOutbound};
use skiff_client::Client;
use skiff_runtime_wasm::{Denials, Egress};
use tokio::sync::watch;

/// How often denied requests are reported onto pods.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// This node's denials of outbound requests.
#[derive(Default)]
pub(crate) struct EgressReports {
    denials: Arc<Denials>,
}

impl EgressReports {
    /// What component `c` may reach, its denials counted here.
    pub(crate) fn egress(&self, c: &Component) -> Egress {
        Egress {
            grants: c.capabilities.outbound_grants().into(),
            denials: Some(self.denials.clone()),
        }
    }

    /// Denials since the last call, by pod key (`namespace/pod`): the count and the latest.
    fn take(&self) -> BTreeMap<String, DeniedOutbound> {
        let mut out: BTreeMap<String, DeniedOutbound> = BTreeMap::new();
        for (handler, d) in self.denials.take() {
            let (pod, component) = crate::util::handler_pod(&handler);
            let e = out.entry(pod.to_owned()).or_default();
            e.count += d.count;
            e.component = component.to_owned();
            e.missing = d.missing;
        }
        out
    }

    /// Reports denials onto their pods through `client` until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, client: Client, mut shutdown: watch::Receiver<bool>) {
        let mut report = tokio::time::interval(REPORT_EVERY);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => if *shutdown.borrow() { return },
                _ = report.tick() => {
                    for (pod, new) in self.take() {
                        crate::report::amend_pod_status(&client, &pod, "denied outbound requests", |s| {
                            let d = s.denied_outbound.get_or_insert_with(Default::default);
                            d.count = d.count.saturating_add(new.count);
                            d.component.clone_from(&new.component);
                            d.missing.clone_from(&new.missing);
                        })
                        .await;
                    }
                }
            }
        }
    }
}
