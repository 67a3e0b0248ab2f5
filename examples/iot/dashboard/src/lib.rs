//! `dashboard`: serves the aggregates the `aggregator` keeps in the `readings` key-value store.
//!
//! | request | answer |
//! |---|---|
//! | `GET /readings` | `{"sensors":[{"sensor":…,"count":…,"mean":…,"last":…},…]}` |
//! | `GET /readings/<sensor>` | that sensor's object; 422 (an invalid event) when it has no readings |
//!
//! It is an HTTP-triggered function: the request arrives as an event whose `httppath` extension
//! is the path.

wit_bindgen::generate!({
    path: ["../../../wit/function.wit", "../../../wit/keyvalue", "../wit"],
    world: "skiff-examples:iot/kv-function",
    generate_all,
});

use exports::skiff::function::handler::{Error, Event, Guest, Payload};
use wasi::keyvalue::store;

struct Dashboard;

fn retryable(e: store::Error) -> Error {
    Error::Retryable(format!("the readings store failed: {e:?}"))
}

fn text(bucket: &store::Bucket, key: &str) -> Result<Option<String>, Error> {
    Ok(bucket
        .get(key)
        .map_err(retryable)?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// One sensor as JSON, `None` when it has no readings.
fn sensor_json(bucket: &store::Bucket, sensor: &str) -> Result<Option<String>, Error> {
    let Some(count) = text(bucket, &format!("{sensor}/count"))? else {
        return Ok(None);
    };
    let count: i64 = count.trim().parse().unwrap_or(0);
    let sum: i64 = text(bucket, &format!("{sensor}/sum"))?
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let last = text(bucket, &format!("{sensor}/last"))?
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    let mean = if count > 0 { sum as f64 / 100.0 / count as f64 } else { 0.0 };
    let last = if last.is_finite() { format!("{last}") } else { "null".into() };
    let name = sensor.replace('\\', "\\\\").replace('"', "\\\"");
    Ok(Some(format!(
        "{{\"sensor\":\"{name}\",\"count\":{count},\"mean\":{:.2},\"last\":{last}}}",
        mean
    )))
}

/// Every sensor with a `<sensor>/count` key, in key order.
fn sensors(bucket: &store::Bucket) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = bucket.list_keys(cursor).map_err(retryable)?;
        out.extend(
            page.keys
                .iter()
                .filter_map(|k| k.strip_suffix("/count").map(str::to_owned)),
        );
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

fn json(body: String) -> Option<Payload> {
    Some(Payload {
        content_type: Some("application/json".into()),
        data: body.into_bytes(),
    })
}

impl Guest for Dashboard {
    fn handle(event: Event) -> Result<Option<Payload>, Error> {
        let path = event
            .extensions
            .iter()
            .find(|(k, _)| k == "httppath")
            .map(|(_, v)| v.split('?').next().unwrap_or("").to_owned())
            .unwrap_or_default();
        let bucket = store::open("readings").map_err(retryable)?;
        match path.trim_end_matches('/') {
            "/readings" => {
                let mut items = Vec::new();
                for s in sensors(&bucket)? {
                    items.extend(sensor_json(&bucket, &s)?);
                }
                Ok(json(format!("{{\"sensors\":[{}]}}", items.join(","))))
            }
            p => match p.strip_prefix("/readings/") {
                Some(sensor) if !sensor.contains('/') => match sensor_json(&bucket, sensor)? {
                    Some(body) => Ok(json(body)),
                    None => Err(Error::Invalid(format!("no readings from sensor {sensor:?}"))),
                },
                _ => Err(Error::Invalid(format!(
                    "no such page {path:?}: GET /readings or /readings/<sensor>"
                ))),
            },
        }
    }
}

export!(Dashboard);
