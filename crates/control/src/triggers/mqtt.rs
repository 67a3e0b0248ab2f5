//! MQTT trigger connectors, run by the leader: one broker connection per function trigger.
//!
//! Each message on the trigger's topic filter becomes an event in the trigger's internal topic
//! (`mqtt.NAME.INDEX`), committed through Raft *before* the broker's QoS 1 message is
//! acknowledged, so a crash between the two only makes the broker send it again. From there
//! the dispatcher delivers it like any event (retries, dead-letter topic); a function's payload
//! for an MQTT event is published to the trigger's `replyTopic`. The connection uses a
//! persistent session (a stable client id, clean session off): QoS 1 messages sent while the
//! connector was away are delivered when it returns. Connection loss is retried with back-off
//! and shown in the function's `status.connections`.
use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use skiff_api::{CloudEvent, Function, Kind, MqttTrigger, Object, TriggerConnection, mqtt_topic};
use skiff_state::Op;

use crate::ids;
use crate::plane::ControlPlane;

/// Type of the events an MQTT trigger publishes.
pub(crate) const MQTT_MESSAGE_TYPE: &str = "dev.skiff.mqtt.message";
/// Longest wait between two connection attempts.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// One running connector.
pub(crate) struct Connector {
    /// What it was started for (restarted when the trigger changes).
    trigger: MqttTrigger,
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `namespace/function/index`.
fn connector_key(ns: &str, f: &str, i: usize) -> String {
    format!("{ns}/{f}/{i}")
}

fn host_port(broker: &str) -> Option<(String, u16)> {
    let (h, p) = broker.strip_prefix("mqtt://")?.rsplit_once(':')?;
    Some((h.to_owned(), p.parse().ok()?))
}

impl ControlPlane {
    /// Starts, restarts and stops connectors to match the functions' MQTT triggers (all stop
    /// when this node does not lead).
    pub(crate) fn sync_connectors(&self, running: &mut BTreeMap<String, Connector>) {
        if !self.is_leader() {
            running.clear();
            return;
        }
        let all = skiff_api::LabelSelector::default();
        let Ok((_, functions)) = self.inner.reader.list(Kind::Function, None, &all) else {
            return;
        };
        let mut want: BTreeMap<String, (Function, usize, MqttTrigger)> = BTreeMap::new();
        for o in functions {
            let Object::Function(f) = o else { continue };
            for (i, t) in f.spec.triggers.iter().enumerate() {
                if let Some(m) = &t.mqtt {
                    want.insert(
                        connector_key(f.metadata.namespace_or_default(), &f.metadata.name, i),
                        (f.clone(), i, m.clone()),
                    );
                }
            }
        }
        running.retain(|k, c| want.get(k).is_some_and(|(_, _, t)| *t == c.trigger));
        for (key, (f, i, trigger)) in want {
            if running.contains_key(&key) {
                continue;
            }
            let Some((host, port)) = host_port(&trigger.broker) else {
                continue;
            };
            let ns = f.metadata.namespace_or_default().to_owned();
            let mut opts = MqttOptions::new(format!("skiff-{}-{}-{i}", ns, f.metadata.name), host, port);
            opts.set_keep_alive(Duration::from_secs(10))
                .set_clean_session(false)
                .set_manual_acks(true);
            let (client, eventloop) = AsyncClient::new(opts, 64);
            let plane = self.clone();
            let c = client.clone();
            let t = trigger.clone();
            let name = f.metadata.name.clone();
            let task = tokio::spawn(async move { plane.run_connector(ns, name, i, t, c, eventloop).await });
            running.insert(
                key,
                Connector {
                    trigger,
                    client,
                    task,
                },
            );
        }
    }

    /// Publishes a function's answer to an MQTT event on the trigger's reply topic.
    pub(crate) async fn mqtt_reply(
        &self,
        running: &BTreeMap<String, Connector>,
        ns: &str,
        function: &str,
        index: usize,
        payload: Vec<u8>,
    ) {
        let Some(c) = running.get(&connector_key(ns, function, index)) else {
            return;
        };
        let Some(reply) = &c.trigger.reply_topic else {
            return;
        };
        let qos = if c.trigger.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        if let Err(e) = c.client.publish(reply.clone(), qos, false, payload).await {
            tracing::warn!(function, topic = %reply, error = %e, "cannot publish the MQTT reply");
        }
    }

    async fn run_connector(
        self,
        ns: String,
        name: String,
        index: usize,
        trigger: MqttTrigger,
        client: AsyncClient,
        mut eventloop: rumqttc::EventLoop,
    ) {
        let qos = if trigger.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let topic = mqtt_topic(&name, index);
        let mut wait = Duration::from_millis(200);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    wait = Duration::from_millis(200);
                    if let Err(e) = client.subscribe(trigger.topic.clone(), qos).await {
                        tracing::warn!(function = %name, error = %e, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    tracing::info!(function = %name, broker = %trigger.broker, topic = %trigger.topic, "MQTT trigger subscribed");
                    self.set_connection(
                        &ns,
                        &name,
                        index,
                        true,
                        format!("subscribed to {}", trigger.topic),
                    )
                    .await;
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let event = message_event(&trigger, &p.topic, &p.payload);
                    // Stored through Raft first; acknowledged to the broker only then.
                    let op = Op::Publish {
                        namespace: ns.clone(),
                        topic: topic.clone(),
                        event,
                        key: None,
                    };
                    let mut stored = false;
                    for _ in 0..50 {
                        match self.propose(vec![op.clone()]).await {
                            Ok(_) => {
                                stored = true;
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(function = %name, error = %e, "cannot store an MQTT message yet");
                                if !self.is_leader() {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    if stored {
                        self.inner.dispatch.notify_one();
                        if let Err(e) = client.ack(&p).await {
                            tracing::warn!(function = %name, error = %e, "cannot acknowledge an MQTT message");
                        }
                    }
                    // Not stored: not acknowledged either; the broker sends it again.
                }
                Ok(_) => {}
                Err(e) => {
                    let msg = format!("broker {}: {e}", trigger.broker);
                    tracing::info!(function = %name, error = %msg, "MQTT connection lost; retrying");
                    self.set_connection(&ns, &name, index, false, msg).await;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// Records a connector's state in its function's status (when it changed).
    async fn set_connection(&self, ns: &str, name: &str, index: usize, connected: bool, message: String) {
        let Ok(Object::Function(mut f)) = self.inner.reader.get(Kind::Function, Some(ns), name) else {
            return;
        };
        let current = f.status.connections.iter().find(|c| c.trigger == index);
        if current.is_some_and(|c| c.connected == connected && c.message == message) {
            return;
        }
        f.status.connections.retain(|c| c.trigger != index);
        f.status.connections.push(TriggerConnection {
            trigger: index,
            connected,
            message,
            since: Some(ids::now()),
        });
        f.status.connections.sort_by_key(|c| c.trigger);
        f.metadata.resource_version = None;
        if let Err(e) = self
            .propose(vec![Op::UpdateStatus {
                object: Object::Function(f),
            }])
            .await
        {
            tracing::debug!(function = name, error = %e, "cannot record the connection state");
        }
    }
}

/// The event an MQTT message becomes: its topic as the subject, its payload as the data (JSON
/// when it parses as JSON, else text, else bytes).
fn message_event(trigger: &MqttTrigger, topic: &str, payload: &[u8]) -> CloudEvent {
    let mut e = CloudEvent {
        specversion: "1.0".into(),
        id: ids::uid(),
        source: format!("{}/{}", trigger.broker, trigger.topic),
        type_: MQTT_MESSAGE_TYPE.into(),
        subject: Some(topic.to_owned()),
        time: Some(ids::now()),
        ..Default::default()
    };
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) {
        e.data = Some(v);
        e.datacontenttype = Some("application/json".into());
    } else if let Ok(t) = std::str::from_utf8(payload) {
        e.data = Some(serde_json::Value::String(t.to_owned()));
        e.datacontenttype = Some("text/plain".into());
    } else {
        use base64::Engine as _;
        e.data_base64 = Some(base64::engine::general_purpose::STANDARD.encode(payload));
        e.datacontenttype = Some("application/octet-stream".into());
    }
    e
}
