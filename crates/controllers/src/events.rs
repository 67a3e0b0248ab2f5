//! Events: what the controllers record about the objects they change, in the same command as the
//! change. One [`Event`] per (object, reason): a repeat raises its `count` and moves its
//! `lastTimestamp` instead of adding an object; events not repeated for [`EVENT_TTL`] are deleted by
//! [`expire_events`].
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use skiff_api::{Event, EventSeverity, EventSource, Kind, Object, ObjectMeta, ObjectReference};
use skiff_state::Op;

use super::{Ids, Snapshot, delete_op, rfc3339};

/// How long an event is kept after it last happened.
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// Event reason: the node stopped heartbeating.
pub const NODE_NOT_READY: &str = "NodeNotReady";
/// Event reason: the node heartbeats again.
pub const NODE_READY: &str = "NodeReady";
/// Event reason: a pod was failed off its node (lost node, untolerated `NoExecute` taint).
pub const POD_EVICTED: &str = "PodEvicted";
/// Event reason: a pod was bound to a node.
pub const SCHEDULED: &str = "Scheduled";
/// Event reason: no node could take a pod.
pub const FAILED_SCHEDULING: &str = "FailedScheduling";

/// The name of the event for (`object`, `reason`): the object's name (shortened) and a hash of
/// kind, namespace, name, uid and reason, so it is a DNS label and the same for every repeat.
pub fn event_name(object: &ObjectReference, reason: &str) -> String {
    let key = format!(
        "{}/{}/{}/{}/{}",
        object.kind,
        object.namespace.as_deref().unwrap_or(""),
        object.name,
        object.uid.as_deref().unwrap_or(""),
        reason
    );
    let hash = hex::encode(&Sha256::digest(key.as_bytes())[..5]);
    let prefix: String = object.name.chars().take(50).collect();
    format!("{}-{hash}", prefix.trim_end_matches('-'))
}

/// What one controller records: who it is and when.
#[derive(Debug, Clone, Copy)]
pub struct Recorder<'a> {
    /// The recording component (`node-controller`, `scheduler`).
    pub component: &'a str,
    /// The time of the pass.
    pub now: SystemTime,
}

impl Recorder<'_> {
    /// The op that records `reason` about the object of `kind` with metadata `meta`: a new event,
    /// or the one already in `s` for the same object and reason with `count + 1`.
    #[allow(
        clippy::too_many_arguments,
        reason = "what an event says, given once per call"
    )]
    pub fn record(
        &self,
        s: &Snapshot,
        ids: &mut dyn Ids,
        kind: Kind,
        meta: &ObjectMeta,
        severity: EventSeverity,
        reason: &str,
        message: String,
    ) -> Op {
        let involved = ObjectReference::to(kind, meta);
        let name = event_name(&involved, reason);
        let ns = involved.event_namespace().to_owned();
        let now = rfc3339(self.now);
        let existing = s
            .events
            .iter()
            .find(|e| e.metadata.name == name && e.metadata.namespace_or_default() == ns);
        let event = Event {
            api_version: Default::default(),
            metadata: ObjectMeta::named(name, Some(&ns)),
            involved_object: involved,
            reason: reason.to_owned(),
            message,
            type_: severity,
            count: existing.map_or(1, |e| e.count.saturating_add(1)),
            first_timestamp: existing
                .and_then(|e| e.first_timestamp.clone())
                .or_else(|| Some(now.clone())),
            last_timestamp: Some(now),
            source: EventSource {
                component: self.component.to_owned(),
                host: None,
            },
        };
        Op::Apply {
            object: Object::Event(event),
            uid: ids.uid(),
        }
    }
}

/// Deletes events that last happened more than [`EVENT_TTL`] ago (or carry no readable time).
pub fn expire_events(s: &Snapshot) -> Vec<Op> {
    let Some(now) = s.now else { return Vec::new() };
    s.events
        .iter()
        .filter(|e| {
            let last = e
                .last_timestamp
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
            last.is_none_or(|t| now.duration_since(t).unwrap_or_default() > EVENT_TTL)
        })
        .map(|e| delete_op(Kind::Event, &e.metadata))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, uid: &str) -> ObjectMeta {
        let mut m = ObjectMeta::named(name.to_owned(), None);
        m.uid = Some(uid.into());
        m
    }

    fn apply(s: &mut Snapshot, op: Op) {
        let Op::Apply {
            object: Object::Event(e),
            ..
        } = op
        else {
            panic!("not an event: {op:?}")
        };
        s.events.retain(|o| o.metadata.name != e.metadata.name);
        s.events.push(e);
    }

    #[test]
    fn events_are_recorded_deduplicated_by_object_and_reason_and_expire() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut s = Snapshot {
            now: Some(t0),
            ..Default::default()
        };
        let r = Recorder {
            component: "node-controller",
            now: t0,
        };
        let ids = &mut crate::RandomIds;
        let n1 = node("worker-1", "u1");
        let op = r.record(
            &s,
            ids,
            Kind::Node,
            &n1,
            EventSeverity::Warning,
            NODE_NOT_READY,
            "no heartbeat for 11s".into(),
        );
        apply(&mut s, op);
        let e = &s.events[0];
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert!(e.metadata.name.starts_with("worker-1-"), "{}", e.metadata.name);
        assert_eq!(
            (
                e.involved_object.kind.as_str(),
                e.involved_object.name.as_str(),
                e.involved_object.namespace.as_deref()
            ),
            ("Node", "worker-1", None)
        );
        assert_eq!(
            (e.count, e.type_, e.source.component.as_str()),
            (1, EventSeverity::Warning, "node-controller")
        );
        // The same reason again, later: one event, count 2, first time kept, last time moved.
        let t1 = t0 + Duration::from_secs(60);
        let later = Recorder { now: t1, ..r };
        let op = later.record(
            &s,
            ids,
            Kind::Node,
            &n1,
            EventSeverity::Warning,
            NODE_NOT_READY,
            "no heartbeat for 12s".into(),
        );
        apply(&mut s, op);
        assert_eq!(s.events.len(), 1);
        let e = &s.events[0];
        assert_eq!(e.count, 2);
        assert_eq!(e.first_timestamp, Some(rfc3339(t0)));
        assert_eq!(e.last_timestamp, Some(rfc3339(t1)));
        assert_eq!(e.message, "no heartbeat for 12s");
        // Another reason, or another object (even of the same name, with a new uid): new events.
        let op = later.record(
            &s,
            ids,
            Kind::Node,
            &n1,
            EventSeverity::Normal,
            NODE_READY,
            "ok".into(),
        );
        apply(&mut s, op);
        let op = later.record(
            &s,
            ids,
            Kind::Node,
            &node("worker-1", "u2"),
            EventSeverity::Warning,
            NODE_NOT_READY,
            "x".into(),
        );
        apply(&mut s, op);
        assert_eq!(s.events.len(), 3);
        // Expiry: nothing within the hour; past it, the events not repeated since go.
        s.now = Some(t0 + EVENT_TTL);
        assert!(expire_events(&s).is_empty());
        s.now = Some(t1 + EVENT_TTL + Duration::from_secs(1));
        assert_eq!(expire_events(&s).len(), 3);
        s.now = Some(t0 + EVENT_TTL + Duration::from_secs(1));
        assert!(expire_events(&s).is_empty(), "all happened at t1");
    }

    #[test]
    fn event_names_are_dns_labels() {
        let long = ObjectReference {
            kind: "Pod".into(),
            namespace: Some("default".into()),
            name: "a".repeat(63),
            uid: None,
        };
        let name = event_name(&long, SCHEDULED);
        assert!(name.len() <= 63 && !name.contains('.'), "{name}");
    }
}
