//! Topics: durable event logs in the state machine, with one subscription per function and topic.
//!
//! An event is stored at the next sequence number of its topic when its `Publish` op commits;
//! each subscription keeps a cursor (every earlier event is done with, or waits in its retry list)
//! and the leader's dispatcher moves it with `Ack` ops. Events every subscription has passed are
//! trimmed. Subscriptions follow the Functions: the apply that creates, changes or deletes a
//! Function creates or removes its subscriptions in the same command.
use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use skiff_api::{CloudEvent, Function, PublishResult, SubscriberStatus, TopicStatus, cron_topic};

use crate::error::StateError;
use crate::tables::{IDEMPOTENCY, IDEMPOTENCY_EXPIRY, SUBSCRIPTIONS, TOPIC_EVENTS, TOPICS};

/// Most events a topic with subscribers holds that some subscriber has not finished with; a
/// publish beyond it is refused (429) rather than dropping anything.
pub const MAX_BACKLOG: u64 = 100_000;
/// Events a topic without subscribers keeps (the newest), e.g. a dead-letter topic.
pub const UNSUBSCRIBED_RETENTION: u64 = 10_000;
/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_MS: u64 = 24 * 3600 * 1000;
/// Expired idempotency keys dropped per command at most (the rest go with later commands).
const EXPIRY_BATCH: usize = 1_000;

/// A topic's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicMeta {
    /// Sequence number of the last event (0: none yet).
    pub(crate) last: u64,
    /// Lowest sequence number still stored (`last + 1` when none is).
    pub(crate) first: u64,
}

/// A retry waiting in a subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Failed deliveries so far.
    pub attempts: u32,
    /// When the next one is due (milliseconds since the Unix epoch).
    pub due_ms: u64,
}

/// One function's position in one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Namespace of the topic and the function.
    pub namespace: String,
    /// Topic.
    pub topic: String,
    /// Function name.
    pub function: String,
    /// The function's uid when the subscription was made.
    pub function_uid: String,
    /// The next event never handed out: every earlier one is delivered, dead-lettered or in
    /// `retries`.
    pub cursor: u64,
    /// Events waiting for another attempt, by sequence number.
    pub retries: BTreeMap<u64, Retry>,
    /// Events delivered.
    pub delivered: u64,
    /// Events given up on (dead-lettered).
    pub dead_lettered: u64,
}

/// What became of one event's delivery, as the dispatcher reports it in an `Ack` op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// The function took it.
    Delivered {
        /// Sequence number.
        seq: u64,
    },
    /// It failed and will be tried again.
    Retry {
        /// Sequence number.
        seq: u64,
        /// Failed deliveries so far.
        attempts: u32,
        /// When the next attempt is due (ms since the epoch).
        due_ms: u64,
    },
    /// It failed for the last time (the same command publishes it to the dead-letter topic).
    Dead {
        /// Sequence number.
        seq: u64,
    },
}

/// `namespace/topic`.
pub(crate) fn topic_key(namespace: &str, topic: &str) -> String {
    format!("{namespace}/{topic}")
}

pub(crate) fn sub_key(namespace: &str, topic: &str, function: &str) -> String {
    format!("{namespace}/{topic}/{function}")
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(v).map_err(StateError::storage)
}

fn parse<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(b).map_err(StateError::storage)
}

/// Milliseconds since the epoch of a command's RFC 3339 time (0 when unparsable).
pub(crate) fn command_ms(now: &str) -> u64 {
    humantime::parse_rfc3339_weak(now)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The topics a function subscribes to: its event triggers' and its cron triggers' own topics.
pub fn function_topics(f: &Function) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = f.spec.event_topics().into_iter().map(str::to_owned).collect();
    for (i, t) in f.spec.triggers.iter().enumerate() {
        if t.cron.is_some() {
            out.insert(cron_topic(&f.metadata.name, i));
        }
        if t.mqtt.is_some() {
            out.insert(skiff_api::mqtt_topic(&f.metadata.name, i));
        }
    }
    out
}

/// Creates the topic tables if missing.
pub(crate) fn init(txn: &WriteTransaction) -> Result<(), String> {
    let s = |e: redb::TableError| e.to_string();
    txn.open_table(TOPICS).map_err(s)?;
    txn.open_table(TOPIC_EVENTS).map_err(s)?;
    txn.open_table(SUBSCRIPTIONS).map_err(s)?;
    txn.open_table(IDEMPOTENCY).map_err(s)?;
    txn.open_table(IDEMPOTENCY_EXPIRY).map_err(s)?;
    Ok(())
}

/// The topic tables inside one write transaction.
pub(crate) struct Topics<'t> {
    txn: &'t WriteTransaction,
    now_ms: u64,
}

impl<'t> Topics<'t> {
    pub(crate) fn new(txn: &'t WriteTransaction, now: &str) -> Self {
        Topics {
            txn,
            now_ms: command_ms(now),
        }
    }

    fn meta(&self, key: &str) -> Result<TopicMeta, StateError> {
        let t = self.txn.open_table(TOPICS).map_err(StateError::storage)?;
        Ok(match t.get(key).map_err(StateError::storage)? {
            Some(v) => parse(v.value())?,
            None => TopicMeta { last: 0, first: 1 },
        })
    }

    fn put_meta(&self, key: &str, m: &TopicMeta) -> Result<(), StateError> {
        let mut t = self.txn.open_table(TOPICS).map_err(StateError::storage)?;
        t.insert(key, json(m)?.as_slice()).map_err(StateError::storage)?;
        Ok(())
    }

    fn subscriptions_of(&self, namespace: &str, topic: &str) -> Result<Vec<Subscription>, StateError> {
        let t = self.txn.open_table(SUBSCRIPTIONS).map_err(StateError::storage)?;
        let prefix = format!("{namespace}/{topic}/");
        let end = format!("{prefix}\u{10FFFF}");
        let mut out = Vec::new();
        for item in t
            .range(prefix.as_str()..end.as_str())
            .map_err(StateError::storage)?
        {
            let (_, v) = item.map_err(StateError::storage)?;
            out.push(parse(v.value())?);
        }
        Ok(out)
    }

    fn put_sub(&self, s: &Subscription) -> Result<(), StateError> {
        let mut t = self.txn.open_table(SUBSCRIPTIONS).map_err(StateError::storage)?;
        t.insert(
            sub_key(&s.namespace, &s.topic, &s.function).as_str(),
            json(s)?.as_slice(),
        )
        .map_err(StateError::storage)?;
        Ok(())
    }

    /// Checks a publish without writing: the result it will have, or why it cannot.
    pub(crate) fn check_publish(
        &self,
        namespace: &str,
        topic: &str,
        event: &CloudEvent,
        key: Option<&str>,
    ) -> Result<(), StateError> {
        if let Some(why) = skiff_api::topic_name_problem(topic) {
            return Err(StateError::Invalid { message: why });
        }
        if event.id.is_empty() {
            return Err(StateError::Invalid {
                message: "an event needs an id (the server gives one to events without)".into(),
            });
        }
        if key.is_some_and(|k| self.known_key(namespace, topic, k).ok().flatten().is_some()) {
            return Ok(());
        }
        let subs = self.subscriptions_of(namespace, topic)?;
        let meta = self.meta(&topic_key(namespace, topic))?;
        if let Some(low) = low_water(&subs) {
            let backlog = (meta.last + 1).saturating_sub(low);
            if backlog >= MAX_BACKLOG {
                return Err(StateError::TopicFull {
                    namespace: namespace.to_owned(),
                    topic: topic.to_owned(),
                    backlog,
                    limit: MAX_BACKLOG,
                });
            }
        }
        Ok(())
    }

    /// Whether a publish to `topic` with idempotency `key` would store nothing new (the key was
    /// used within the window), and whether the topic has subscribers.
    pub(crate) fn publish_adds_backlog(
        &self,
        namespace: &str,
        topic: &str,
        key: Option<&str>,
    ) -> Result<bool, StateError> {
        if let Some(k) = key
            && self.known_key(namespace, topic, k)?.is_some()
        {
            return Ok(false);
        }
        Ok(!self.subscriptions_of(namespace, topic)?.is_empty())
    }

    /// Events the subscribers of `namespace`'s topics have not finished, summed over its topics.
    pub(crate) fn namespace_backlog(&self, namespace: &str) -> Result<u64, StateError> {
        let prefix = format!("{namespace}/");
        let end = format!("{prefix}\u{10FFFF}");
        let metas: Vec<(String, TopicMeta)> = {
            let t = self.txn.open_table(TOPICS).map_err(StateError::storage)?;
            let mut out = Vec::new();
            for item in t
                .range(prefix.as_str()..end.as_str())
                .map_err(StateError::storage)?
            {
                let (k, v) = item.map_err(StateError::storage)?;
                out.push((k.value()[prefix.len()..].to_owned(), parse(v.value())?));
            }
            out
        };
        let mut backlog = 0u64;
        for (topic, meta) in metas {
            if let Some(low) = low_water(&self.subscriptions_of(namespace, &topic)?) {
                backlog = backlog.saturating_add((meta.last + 1).saturating_sub(low));
            }
        }
        Ok(backlog)
    }

    fn known_key(&self, namespace: &str, topic: &str, key: &str) -> Result<Option<u64>, StateError> {
        let t = self.txn.open_table(IDEMPOTENCY).map_err(StateError::storage)?;
        let k = format!("{}\0{key}", topic_key(namespace, topic));
        Ok(match t.get(k.as_str()).map_err(StateError::storage)? {
            Some(v) => {
                let (seq, at): (u64, u64) = parse(v.value())?;
                (at + IDEMPOTENCY_WINDOW_MS > self.now_ms).then_some(seq)
            }
            None => None,
        })
    }

    /// Stores `event` at the topic's next sequence number, unless `key` was published within the
    /// idempotency window (then nothing changes and the earlier sequence number is returned).
    pub(crate) fn publish(
        &self,
        namespace: &str,
        topic: &str,
        event: &CloudEvent,
        key: Option<&str>,
    ) -> Result<PublishResult, StateError> {
        let tk = topic_key(namespace, topic);
        if let Some(k) = key
            && let Some(seq) = self.known_key(namespace, topic, k)?
        {
            return Ok(PublishResult {
                topic: topic.to_owned(),
                id: event.id.clone(),
                sequence: seq,
                duplicate: true,
            });
        }
        let mut meta = self.meta(&tk)?;
        meta.last += 1;
        let seq = meta.last;
        {
            let mut t = self.txn.open_table(TOPIC_EVENTS).map_err(StateError::storage)?;
            t.insert((tk.as_str(), seq), json(event)?.as_slice())
                .map_err(StateError::storage)?;
        }
        if let Some(k) = key {
            let full = format!("{tk}\0{k}");
            let mut t = self.txn.open_table(IDEMPOTENCY).map_err(StateError::storage)?;
            t.insert(full.as_str(), json(&(seq, self.now_ms))?.as_slice())
                .map_err(StateError::storage)?;
            let mut e = self
                .txn
                .open_table(IDEMPOTENCY_EXPIRY)
                .map_err(StateError::storage)?;
            e.insert((self.now_ms, full.as_str()), ())
                .map_err(StateError::storage)?;
        }
        self.put_meta(&tk, &meta)?;
        self.trim(namespace, topic)?;
        Ok(PublishResult {
            topic: topic.to_owned(),
            id: event.id.clone(),
            sequence: seq,
            duplicate: false,
        })
    }

    /// Drops idempotency keys older than the window (a bounded number per command).
    pub(crate) fn expire_keys(&self) -> Result<(), StateError> {
        let cutoff = self.now_ms.saturating_sub(IDEMPOTENCY_WINDOW_MS);
        let mut expired: Vec<(u64, String)> = Vec::new();
        {
            let e = self
                .txn
                .open_table(IDEMPOTENCY_EXPIRY)
                .map_err(StateError::storage)?;
            for item in e.range((0u64, "")..(cutoff, "")).map_err(StateError::storage)? {
                let (k, _) = item.map_err(StateError::storage)?;
                let (at, key) = k.value();
                expired.push((at, key.to_owned()));
                if expired.len() >= EXPIRY_BATCH {
                    break;
                }
            }
        }
        if expired.is_empty() {
            return Ok(());
        }
        let mut e = self
            .txn
            .open_table(IDEMPOTENCY_EXPIRY)
            .map_err(StateError::storage)?;
        let mut t = self.txn.open_table(IDEMPOTENCY).map_err(StateError::storage)?;
        for (at, key) in expired {
            e.remove((at, key.as_str())).map_err(StateError::storage)?;
            // A key published again later has a newer time: keep that one.
            let stale = match t.get(key.as_str()).map_err(StateError::storage)? {
                Some(v) => parse::<(u64, u64)>(v.value())?.1 == at,
                None => false,
            };
            if stale {
                t.remove(key.as_str()).map_err(StateError::storage)?;
            }
        }
        Ok(())
    }

    /// Applies a dispatcher's report for one subscription. Outcomes about events the
    /// subscription is already done with (an earlier leader's duplicates) change nothing.
    pub(crate) fn ack(
        &self,
        namespace: &str,
        topic: &str,
        function: &str,
        cursor: u64,
        outcomes: &[Outcome],
    ) -> Result<(), StateError> {
        let t = self.txn.open_table(SUBSCRIPTIONS).map_err(StateError::storage)?;
        let key = sub_key(namespace, topic, function);
        let Some(mut s) = t
            .get(key.as_str())
            .map_err(StateError::storage)?
            .map(|v| parse::<Subscription>(v.value()))
            .transpose()?
        else {
            // The function was deleted meanwhile: nothing to record.
            return Ok(());
        };
        drop(t);
        let last = self.meta(&topic_key(namespace, topic))?.last;
        let old_cursor = s.cursor;
        let open = |s: &Subscription, seq: u64| seq >= old_cursor || s.retries.contains_key(&seq);
        for o in outcomes {
            match *o {
                Outcome::Delivered { seq } if open(&s, seq) => {
                    s.retries.remove(&seq);
                    s.delivered += 1;
                }
                Outcome::Dead { seq } if open(&s, seq) => {
                    s.retries.remove(&seq);
                    s.dead_lettered += 1;
                }
                Outcome::Retry {
                    seq,
                    attempts,
                    due_ms,
                } if open(&s, seq) && seq <= last => {
                    s.retries.insert(seq, Retry { attempts, due_ms });
                }
                _ => {}
            }
        }
        s.cursor = s.cursor.max(cursor.min(last + 1));
        self.put_sub(&s)?;
        self.trim(namespace, topic)
    }

    /// Drops the events every subscription has passed (or, without subscriptions, all but the
    /// newest [`UNSUBSCRIBED_RETENTION`]).
    fn trim(&self, namespace: &str, topic: &str) -> Result<(), StateError> {
        let tk = topic_key(namespace, topic);
        let mut meta = self.meta(&tk)?;
        let subs = self.subscriptions_of(namespace, topic)?;
        let keep_from = match low_water(&subs) {
            Some(low) => low,
            None => (meta.last + 1).saturating_sub(UNSUBSCRIBED_RETENTION),
        };
        if keep_from <= meta.first {
            return Ok(());
        }
        let mut t = self.txn.open_table(TOPIC_EVENTS).map_err(StateError::storage)?;
        for seq in meta.first..keep_from {
            t.remove((tk.as_str(), seq)).map_err(StateError::storage)?;
        }
        meta.first = keep_from;
        drop(t);
        self.put_meta(&tk, &meta)
    }

    /// Makes the subscriptions of `f` (just stored, or `None`: deleted) match its triggers: new
    /// ones start after the topic's last event; removed ones are dropped.
    pub(crate) fn sync_function(
        &self,
        namespace: &str,
        name: &str,
        f: Option<&Function>,
    ) -> Result<(), StateError> {
        let want = f.map(function_topics).unwrap_or_default();
        let uid = f.and_then(|f| f.metadata.uid.clone()).unwrap_or_default();
        let mut have: Vec<Subscription> = Vec::new();
        {
            let t = self.txn.open_table(SUBSCRIPTIONS).map_err(StateError::storage)?;
            let prefix = format!("{namespace}/");
            let end = format!("{prefix}\u{10FFFF}");
            for item in t
                .range(prefix.as_str()..end.as_str())
                .map_err(StateError::storage)?
            {
                let (_, v) = item.map_err(StateError::storage)?;
                let s: Subscription = parse(v.value())?;
                if s.function == name {
                    have.push(s);
                }
            }
        }
        let mut touched: BTreeSet<String> = BTreeSet::new();
        for s in &have {
            // A re-created function (new uid) starts afresh.
            if !want.contains(&s.topic) || s.function_uid != uid {
                let mut t = self.txn.open_table(SUBSCRIPTIONS).map_err(StateError::storage)?;
                t.remove(sub_key(namespace, &s.topic, name).as_str())
                    .map_err(StateError::storage)?;
                touched.insert(s.topic.clone());
            }
        }
        for topic in &want {
            if have.iter().any(|s| &s.topic == topic && s.function_uid == uid) {
                continue;
            }
            let meta = self.meta(&topic_key(namespace, topic))?;
            self.put_sub(&Subscription {
                namespace: namespace.to_owned(),
                topic: topic.clone(),
                function: name.to_owned(),
                function_uid: uid.clone(),
                cursor: meta.last + 1,
                ..Default::default()
            })?;
        }
        for topic in touched {
            self.trim(namespace, &topic)?;
        }
        Ok(())
    }
}

/// The lowest sequence number some subscription still needs, or `None` without subscriptions.
fn low_water(subs: &[Subscription]) -> Option<u64> {
    subs.iter()
        .map(|s| s.retries.keys().next().copied().unwrap_or(s.cursor).min(s.cursor))
        .min()
}

/// Read-only topic queries (on a read transaction).
pub(crate) fn read_topics(
    txn: &redb::ReadTransaction,
    namespace: Option<&str>,
) -> Result<Vec<TopicStatus>, StateError> {
    let topics = match txn.open_table(TOPICS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(StateError::storage(e)),
    };
    let subs = read_subscriptions(txn)?;
    let mut out = Vec::new();
    let prefix = namespace.map(|n| format!("{n}/")).unwrap_or_default();
    let end = format!("{prefix}\u{10FFFF}");
    for item in topics
        .range(prefix.as_str()..end.as_str())
        .map_err(StateError::storage)?
    {
        let (k, v) = item.map_err(StateError::storage)?;
        let meta: TopicMeta = parse(v.value())?;
        let Some((ns, name)) = k.value().split_once('/') else {
            continue;
        };
        out.push(topic_status(ns, name, &meta, &subs));
    }
    Ok(out)
}

fn topic_status(ns: &str, name: &str, meta: &TopicMeta, subs: &[Subscription]) -> TopicStatus {
    let mine: Vec<&Subscription> = subs
        .iter()
        .filter(|s| s.namespace == ns && s.topic == name)
        .collect();
    let subscribers: Vec<SubscriberStatus> = mine
        .iter()
        .map(|s| SubscriberStatus {
            function: s.function.clone(),
            lag: (meta.last + 1).saturating_sub(s.cursor) + s.retries.len() as u64,
            retrying: s.retries.len() as u64,
            delivered: s.delivered,
            dead_lettered: s.dead_lettered,
        })
        .collect();
    TopicStatus {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        published: meta.last,
        stored: (meta.last + 1).saturating_sub(meta.first),
        backlog: subscribers.iter().map(|s| s.lag).max().unwrap_or(0),
        subscribers,
    }
}

/// Every subscription.
pub(crate) fn read_subscriptions(txn: &redb::ReadTransaction) -> Result<Vec<Subscription>, StateError> {
    let t = match txn.open_table(SUBSCRIPTIONS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(StateError::storage(e)),
    };
    let mut out = Vec::new();
    for item in t.iter().map_err(StateError::storage)? {
        let (_, v) = item.map_err(StateError::storage)?;
        out.push(parse(v.value())?);
    }
    Ok(out)
}

/// Up to `limit` stored events of a topic from sequence number `from`, with their numbers.
pub(crate) fn read_events(
    txn: &redb::ReadTransaction,
    namespace: &str,
    topic: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, CloudEvent)>, StateError> {
    let t = match txn.open_table(TOPIC_EVENTS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(StateError::storage(e)),
    };
    let tk = topic_key(namespace, topic);
    let mut out = Vec::new();
    for item in t
        .range((tk.as_str(), from)..=(tk.as_str(), u64::MAX))
        .map_err(StateError::storage)?
    {
        let (k, v) = item.map_err(StateError::storage)?;
        out.push((k.value().1, parse(v.value())?));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// One stored event.
pub(crate) fn read_event(
    txn: &redb::ReadTransaction,
    namespace: &str,
    topic: &str,
    seq: u64,
) -> Result<Option<CloudEvent>, StateError> {
    Ok(read_events(txn, namespace, topic, seq, 1)?
        .into_iter()
        .find(|(s, _)| *s == seq)
        .map(|(_, e)| e))
}
