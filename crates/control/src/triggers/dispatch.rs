//! The leader's event dispatcher: delivers each topic's events to every subscribed function's
//! pods, at least once, and records the outcome through Raft.
//!
//! Per subscription it keeps a window of deliveries in flight (the function's ready pods times
//! its target concurrency, at most [`MAX_WINDOW`]). A delivery is an HTTP request to a pod on its
//! node's data plane in CloudEvents binary mode. What the function answers decides the outcome:
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx | delivered |
//! | 422 (`invalid`) | dead-lettered at once |
//! | any other failure of the function (5xx, timeout) | retried after `retry.backoff` (doubling), dead-lettered after `retry.attempts` |
//! | the pod was unreachable, gone (404 `x-skiff-no-pod`) or full (429) | not an attempt: tried again shortly |
//!
//! Outcomes are proposed as `Ack` ops (with the dead-letter `Publish` in the same command) a
//! batch at a time; the subscription's cursor moves past an event only when every earlier one is
//! accounted for. A new leader starts from the stored cursors, so deliveries in flight at a
//! leader change happen again: duplicates are possible (at least once), losses are not.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use skiff_api::{
    CloudEvent, EndpointAddress, FUNCTION_ERROR_HEADER, Function, Kind, NO_POD_HEADER, Object,
    POD_NAME_HEADER, function_endpoints_name,
};
use skiff_state::{Op, Outcome, Subscription};
use tokio::sync::{mpsc, watch};

use crate::plane::ControlPlane;

/// Most deliveries in flight per subscription.
pub(crate) const MAX_WINDOW: usize = 256;
/// Delivery outcomes waiting to be recorded; a delivery that finds the queue full waits.
const DONE_QUEUE: usize = 4096;
/// Longest pause between two dispatcher passes when nothing wakes it.
const IDLE_PASS: Duration = Duration::from_millis(200);
/// Wait before an event whose pod could not take it is offered again.
const REOFFER: Duration = Duration::from_millis(100);
/// Extra time a delivery gets beyond the function's own timeout.
const DELIVERY_SLACK: Duration = Duration::from_secs(5);

/// What came of one delivery.
#[derive(Debug)]
enum Result_ {
    /// 2xx, with the function's payload (empty for none).
    Delivered(Vec<u8>),
    /// The function failed; retry per policy.
    Failed(String),
    /// The function called the event invalid: no retry.
    Invalid(String),
    /// It never reached the function: offer it again.
    NotReached(String),
}

struct Done {
    sub: String,
    seq: u64,
    /// Failed attempts before this one (0 for a first delivery).
    attempts: u32,
    result: Result_,
}

/// One subscription's deliveries as this leader tracks them.
#[derive(Default)]
struct Track {
    /// Next sequence number never handed out.
    next: u64,
    /// First deliveries in flight or to offer again.
    open: BTreeSet<u64>,
    /// Sequence numbers being delivered now.
    inflight: BTreeSet<u64>,
    /// To offer again (not reached), with when.
    reoffer: BTreeMap<u64, std::time::Instant>,
    /// Outcomes not yet proposed.
    outcomes: Vec<Outcome>,
    /// Dead-letter publishes not yet proposed (with their outcome in `outcomes`).
    dead_letters: Vec<Op>,
}

fn sub_key(s: &Subscription) -> String {
    format!("{}/{}/{}", s.namespace, s.topic, s.function)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl ControlPlane {
    /// Runs the dispatcher until `shutdown`; it acts only while this node leads.
    pub fn spawn_dispatcher(&self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let plane = self.clone();
        tokio::spawn(async move {
            let (tx, mut rx) = mpsc::channel::<Done>(DONE_QUEUE);
            let mut tracks: BTreeMap<String, Track> = BTreeMap::new();
            let mut cron_since: BTreeMap<String, BTreeMap<usize, SystemTime>> = BTreeMap::new();
            let mut connectors: BTreeMap<String, super::mqtt::Connector> = BTreeMap::new();
            let mut events = plane.inner.events.subscribe();
            loop {
                if *shutdown.borrow() {
                    return;
                }
                plane.sync_connectors(&mut connectors);
                if plane.is_leader() {
                    plane.cron_pass(&mut cron_since).await;
                    plane.dispatch_pass(&mut tracks, &tx).await;
                } else {
                    // A later term starts again from the stored cursors (and re-publishes the
                    // cron ticks of the catch-up window, which the idempotency keys dedupe).
                    tracks.clear();
                    cron_since.clear();
                }
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(IDLE_PASS) => {}
                    _ = plane.inner.dispatch.notified() => {}
                    r = events.recv() => { if r.is_ok() { while events.try_recv().is_ok() {} } }
                    d = rx.recv() => {
                        let mut replies = Vec::new();
                        if let Some(d) = d {
                            replies.extend(record(&plane, &mut tracks, d));
                            while let Ok(d) = rx.try_recv() {
                                replies.extend(record(&plane, &mut tracks, d));
                            }
                        }
                        for (ns, function, index, payload) in replies {
                            plane.mqtt_reply(&connectors, &ns, &function, index, payload).await;
                        }
                    }
                }
            }
        })
    }

    /// Proposes the outcomes gathered so far, then hands out what each subscription may send.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn dispatch_pass(&self, tracks: &mut BTreeMap<String, Track>, tx: &mpsc::Sender<Done>) {
        let subs = match self.inner.reader.subscriptions() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "dispatcher cannot read subscriptions");
                return;
            }
        };
        let live: BTreeSet<String> = subs.iter().map(sub_key).collect();
        tracks.retain(|k, _| live.contains(k));
        self.flush(&subs, tracks).await;
        // Read again: the flush moved cursors and resolved retries.
        let subs = self.inner.reader.subscriptions().unwrap_or(subs);
        for sub in &subs {
            let key = sub_key(sub);
            let track = tracks.entry(key.clone()).or_default();
            track.next = track.next.max(sub.cursor);
            let Ok(Object::Function(f)) =
                self.inner
                    .reader
                    .get(Kind::Function, Some(&sub.namespace), &sub.function)
            else {
                continue;
            };
            if f.metadata.uid.as_deref() != Some(sub.function_uid.as_str()) {
                continue;
            }
            let endpoints = self.ready_endpoints(&sub.namespace, &sub.function);
            if endpoints.is_empty() {
                continue; // The scaler sees the backlog and starts a pod.
            }
            let window =
                (endpoints.len() * f.spec.target_concurrency_or_default() as usize).clamp(1, MAX_WINDOW);
            let now = std::time::Instant::now();
            let mut offers: Vec<(u64, u32)> = Vec::new();
            // Offered again first, then due retries, then new events.
            let again: Vec<u64> = track
                .reoffer
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(s, _)| *s)
                .collect();
            for seq in again {
                if track.inflight.len() + offers.len() >= window {
                    break;
                }
                track.reoffer.remove(&seq);
                let attempts = sub.retries.get(&seq).map(|r| r.attempts).unwrap_or(0);
                offers.push((seq, attempts));
            }
            let ms = now_ms();
            for (seq, r) in &sub.retries {
                if track.inflight.len() + offers.len() >= window {
                    break;
                }
                if r.due_ms <= ms
                    && !track.inflight.contains(seq)
                    && !track.reoffer.contains_key(seq)
                    && !offers.iter().any(|(s, _)| s == seq)
                    && !track.outcomes.iter().any(|o| outcome_seq(o) == *seq)
                {
                    offers.push((*seq, r.attempts));
                }
            }
            if track.inflight.len() + offers.len() < window {
                let room = window - track.inflight.len() - offers.len();
                match self
                    .inner
                    .reader
                    .topic_events(&sub.namespace, &sub.topic, track.next, room)
                {
                    Ok(evs) => {
                        for (seq, _) in evs {
                            track.open.insert(seq);
                            track.next = seq + 1;
                            offers.push((seq, 0));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, topic = %sub.topic, "cannot read events"),
                }
            }
            for (i, (seq, attempts)) in offers.into_iter().enumerate() {
                let Ok(Some(event)) = self.inner.reader.topic_event(&sub.namespace, &sub.topic, seq) else {
                    // Trimmed meanwhile: it was accounted for by an earlier ack.
                    track.open.remove(&seq);
                    continue;
                };
                track.inflight.insert(seq);
                let ep = endpoints[(seq as usize + i) % endpoints.len()].clone();
                let plane = self.clone();
                let tx = tx.clone();
                let key = key.clone();
                let timeout = f
                    .spec
                    .timeout
                    .map(|t| t.0)
                    .unwrap_or(skiff_api::Resources::DEFAULT_TIMEOUT)
                    + DELIVERY_SLACK;
                let ns = sub.namespace.clone();
                tokio::spawn(async move {
                    let result = plane.deliver(&ns, &ep, &event, timeout).await;
                    let _ = tx
                        .send(Done {
                            sub: key,
                            seq,
                            attempts,
                            result,
                        })
                        .await;
                });
            }
        }
    }

    /// Ready endpoints of a function.
    pub(crate) fn ready_endpoints(&self, namespace: &str, function: &str) -> Vec<EndpointAddress> {
        match self.inner.reader.get(
            Kind::Endpoints,
            Some(namespace),
            &function_endpoints_name(function),
        ) {
            Ok(Object::Endpoints(e)) => e.endpoints.into_iter().filter(|a| a.ready).collect(),
            _ => Vec::new(),
        }
    }

    /// Proposes every gathered outcome, one command for all subscriptions; on failure they stay
    /// to be proposed with the next pass.
    async fn flush(&self, subs: &[Subscription], tracks: &mut BTreeMap<String, Track>) {
        let mut batches: Vec<(String, Vec<Op>)> = Vec::new();
        for sub in subs {
            let key = sub_key(sub);
            let Some(t) = tracks.get_mut(&key) else { continue };
            let cursor = t.open.first().copied().unwrap_or(t.next.max(sub.cursor));
            if t.outcomes.is_empty() && cursor <= sub.cursor {
                continue;
            }
            let mut ops = t.dead_letters.clone();
            ops.push(Op::Ack {
                namespace: sub.namespace.clone(),
                topic: sub.topic.clone(),
                function: sub.function.clone(),
                cursor,
                outcomes: t.outcomes.clone(),
            });
            batches.push((key, ops));
        }
        if batches.is_empty() {
            return;
        }
        let all: Vec<Op> = batches.iter().flat_map(|(_, ops)| ops.clone()).collect();
        let done = |tracks: &mut BTreeMap<String, Track>, key: &str| {
            if let Some(t) = tracks.get_mut(key) {
                t.outcomes.clear();
                t.dead_letters.clear();
            }
        };
        match self.propose(all).await {
            Ok(_) => {
                for (key, _) in &batches {
                    done(tracks, key);
                }
                return;
            }
            Err(e) if batches.len() == 1 && !e.is_refused() => {
                tracing::warn!(error = %e, "cannot record deliveries yet; retrying");
                return;
            }
            Err(_) => {}
        }
        // One subscription's ops may be what failed: each on its own, so the others progress.
        for (key, mut ops) in batches {
            match self.propose(ops.clone()).await {
                Ok(_) => done(tracks, &key),
                Err(e) if e.is_refused() && ops.len() > 1 => {
                    // The dead-letter publish is refused (a full or invalid topic): the events
                    // are still given up on, recorded without it.
                    tracing::error!(subscription = %key, error = %e, "dead-letter publish refused; dropping the dead letters");
                    ops.retain(|o| matches!(o, Op::Ack { .. }));
                    if self.propose(ops).await.is_ok() {
                        done(tracks, &key);
                    }
                }
                Err(e) => {
                    tracing::warn!(subscription = %key, error = %e, "cannot record deliveries yet; retrying")
                }
            }
        }
    }

    /// Sends one event to one pod and classifies the answer.
    async fn deliver(
        &self,
        namespace: &str,
        ep: &EndpointAddress,
        event: &CloudEvent,
        timeout: Duration,
    ) -> Result_ {
        let url = skiff_pki::https::https_url(&format!("{}/", ep.address.trim_end_matches('/')));
        let (body, content_type) = event_body(event);
        let mut req = self
            .inner
            .agent_http
            .post(url)
            .timeout(timeout)
            .header(POD_NAME_HEADER, format!("{namespace}/{}", ep.pod))
            .header("ce-specversion", "1.0")
            .header("ce-id", &event.id)
            .header("ce-source", &event.source)
            .header("ce-type", &event.type_);
        if let Some(s) = &event.subject {
            req = req.header("ce-subject", s);
        }
        if let Some(t) = &event.time {
            req = req.header("ce-time", t);
        }
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        for (k, v) in &event.extensions {
            req = req.header(format!("ce-{k}"), v);
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Result_::Failed(format!("no answer from {} within {timeout:?}", ep.pod));
            }
            Err(e) => return Result_::NotReached(format!("{}: {e}", ep.pod)),
        };
        let status = resp.status();
        let no_pod = resp.headers().contains_key(NO_POD_HEADER);
        let overloaded = resp.headers().contains_key(skiff_api::OVERLOADED_HEADER);
        let kind = resp
            .headers()
            .get(FUNCTION_ERROR_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status.is_success() {
            return match crate::answers::read(resp, crate::answers::REPLY_BYTES, timeout).await {
                Ok(payload) => Result_::Delivered(payload.to_vec()),
                Err(e) => Result_::Failed(format!("reading the answer of {}: {e}", ep.pod)),
            };
        }
        let text = crate::answers::read(resp, crate::answers::ERROR_BYTES, timeout)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let msg = format!("{status}: {}", text.trim());
        if no_pod || overloaded {
            Result_::NotReached(msg)
        } else if kind.as_deref() == Some("invalid") || status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
            Result_::Invalid(msg)
        } else {
            Result_::Failed(msg)
        }
    }
}

fn outcome_seq(o: &Outcome) -> u64 {
    match *o {
        Outcome::Delivered { seq } | Outcome::Dead { seq } | Outcome::Retry { seq, .. } => seq,
    }
}

/// The HTTP body and content type of an event's data.
pub(crate) fn event_body(event: &CloudEvent) -> (Vec<u8>, Option<String>) {
    if let Some(b64) = &event.data_base64 {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default();
        return (bytes, event.datacontenttype.clone());
    }
    match &event.data {
        None => (Vec::new(), event.datacontenttype.clone()),
        Some(serde_json::Value::String(s))
            if event
                .datacontenttype
                .as_deref()
                .is_some_and(|c| !c.contains("json")) =>
        {
            (s.clone().into_bytes(), event.datacontenttype.clone())
        }
        Some(v) => (
            serde_json::to_vec(v).unwrap_or_default(),
            Some(
                event
                    .datacontenttype
                    .clone()
                    .unwrap_or_else(|| "application/json".into()),
            ),
        ),
    }
}

/// A function's payload for an event of its MQTT trigger: (namespace, function, trigger, payload).
type Reply = (String, String, usize, Vec<u8>);

/// Books one delivery's result into its subscription's track; a payload answering an MQTT
/// event comes back to be published on the trigger's reply topic.
fn record(plane: &ControlPlane, tracks: &mut BTreeMap<String, Track>, d: Done) -> Option<Reply> {
    let t = tracks.get_mut(&d.sub)?;
    t.inflight.remove(&d.seq);
    let (ns, rest) = d.sub.split_once('/').unwrap_or_default();
    let (topic, function) = rest.split_once('/').unwrap_or_default();
    let policy = match plane.inner.reader.get(Kind::Function, Some(ns), function) {
        Ok(Object::Function(f)) => f,
        _ => Function::default(),
    };
    let max_attempts = policy.spec.retry.attempts_or_default();
    let dead = |t: &mut Track, why: &str| {
        t.outcomes.push(Outcome::Dead { seq: d.seq });
        tracing::warn!(
            namespace = ns,
            function,
            topic,
            seq = d.seq,
            reason = why,
            "event dead-lettered"
        );
        if let Some(dlq) = &policy.spec.dead_letter_topic
            && let Ok(Some(mut event)) = plane.inner.reader.topic_event(ns, topic, d.seq)
        {
            event
                .extensions
                .insert("skiffdeadletterreason".into(), why.chars().take(500).collect());
            event
                .extensions
                .insert("skiffdeadlettertopic".into(), topic.to_owned());
            event
                .extensions
                .insert("skiffdeadletterfunction".into(), function.to_owned());
            t.dead_letters.push(Op::Publish {
                namespace: ns.to_owned(),
                topic: dlq.clone(),
                event,
                key: Some(format!("dlq:{function}:{topic}:{}", d.seq)),
            });
        }
    };
    let mut reply = None;
    match d.result {
        Result_::Delivered(payload) => {
            t.outcomes.push(Outcome::Delivered { seq: d.seq });
            let index = topic
                .strip_prefix("mqtt.")
                .and_then(|r| r.strip_prefix(function))
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|i| i.parse::<usize>().ok());
            if let Some(index) = index
                && !payload.is_empty()
            {
                reply = Some((ns.to_owned(), function.to_owned(), index, payload));
            }
        }
        Result_::NotReached(why) => {
            tracing::debug!(function, topic, seq = d.seq, reason = %why, "event not delivered; offering again");
            t.reoffer.insert(d.seq, std::time::Instant::now() + REOFFER);
            return None; // still open
        }
        Result_::Invalid(why) => dead(t, &why),
        Result_::Failed(why) => {
            let attempts = d.attempts + 1;
            if attempts >= max_attempts {
                dead(t, &why);
            } else {
                let wait = policy.spec.retry.backoff_after(attempts);
                tracing::info!(function, topic, seq = d.seq, attempts, reason = %why, "event delivery failed; retrying");
                t.outcomes.push(Outcome::Retry {
                    seq: d.seq,
                    attempts,
                    due_ms: now_ms() + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
    }
    t.open.remove(&d.seq);
    plane.inner.dispatch.notify_one();
    reply
}
