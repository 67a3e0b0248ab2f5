//! `aggregator`: folds sensor readings into the `readings` key-value store.
//!
//! Triggered by MQTT messages on `sensors/+/temperature`: the message's topic is the event's
//! subject (`sensors/<sensor>/temperature`), its payload a number (`21.5`). For each reading it
//! adds to the sensor's counters atomically, so concurrent calls on any worker never lose one:
//!
//! | key | value |
//! |---|---|
//! | `<sensor>/count` | readings so far |
//! | `<sensor>/sum` | their sum, in hundredths |
//! | `<sensor>/last` | the latest reading, as sent |
//!
//! A message that is not a reading is invalid (it goes to the dead-letter topic, if any); a store
//! that cannot be reached is retryable.

wit_bindgen::generate!({
    path: ["../../../wit/function.wit", "../../../wit/keyvalue", "../wit"],
    world: "skiff-examples:iot/kv-function",
    generate_all,
});

use exports::skiff::function::handler::{Error, Event, Guest, Payload};
use wasi::keyvalue::{atomics, store};

struct Aggregator;

/// The sensor a topic names: `sensors/<sensor>/temperature`.
fn sensor_of(topic: &str) -> Option<&str> {
    let mut parts = topic.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("sensors"), Some(s), Some(_), None) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn retryable(e: store::Error) -> Error {
    Error::Retryable(format!("the readings store failed: {e:?}"))
}

impl Guest for Aggregator {
    fn handle(event: Event) -> Result<Option<Payload>, Error> {
        let topic = event.subject.unwrap_or_default();
        let Some(sensor) = sensor_of(&topic) else {
            return Err(Error::Invalid(format!(
                "topic {topic:?} is not sensors/<sensor>/<quantity>"
            )));
        };
        let text = String::from_utf8_lossy(&event.data).trim().to_owned();
        let value: f64 = text
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| Error::Invalid(format!("reading {text:?} from {sensor} is not a number")))?;
        let bucket = store::open("readings").map_err(retryable)?;
        // Hundredths, as the two's-complement bits the atomic increment takes (negative readings
        // subtract).
        let hundredths = (value * 100.0).round() as i64;
        let count = atomics::increment(&bucket, &format!("{sensor}/count"), 1).map_err(retryable)?;
        atomics::increment(&bucket, &format!("{sensor}/sum"), hundredths as u64).map_err(retryable)?;
        bucket
            .set(&format!("{sensor}/last"), text.as_bytes())
            .map_err(retryable)?;
        println!("{sensor}: reading {count} = {text}");
        Ok(None)
    }
}

export!(Aggregator);
