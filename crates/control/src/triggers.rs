//! The event side of functions, run by the leader: one home for what turns the outside world into
//! events and events into calls.
//!
//! - [`dispatch`]: delivers each topic's events to the subscribed functions' pods, at least once,
//!   recording outcomes (retries, dead letters) through Raft;
//! - [`mqtt`]: one broker connection per MQTT trigger, each message committed as an event before
//!   the broker's message is acknowledged;
//! - [`cron`]: the due ticks of cron triggers, published once each.
//!
//! HTTP triggers are the gateway's (`skiff-gateway`); `POST …/events` is the API's (`functions.rs`).
mod cron;
pub(crate) mod dispatch;
mod mqtt;
