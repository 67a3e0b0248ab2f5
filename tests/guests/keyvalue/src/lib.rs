//! `keyvalue`: a `skiff:function` component for Skiff's key-value tests. The event's subject
//! names the store, its data is the key, used exactly as given.
//!
//! | event type | answer |
//! |---|---|
//! | `get` | the key's value; error `invalid` (`absent`) when there is none |
//! | `set` | sets the key to `written by the guest`; no payload |
//! | `list` | every key of the store, one per line |
//!
//! A store error comes back as error `retryable` with the store's message, so a test sees it.

wit_bindgen::generate!({
    path: ["../../../wit/function.wit", "../../../wit/keyvalue", "wit"],
    world: "skiff-tests:keyvalue/kv-function",
    generate_all,
});

use exports::skiff::function::handler::{Error, Event, Guest, Payload};
use wasi::keyvalue::store;

struct KeyValue;

fn failed(e: store::Error) -> Error {
    Error::Retryable(match e {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(m) => m,
    })
}

fn text(data: Vec<u8>) -> Option<Payload> {
    Some(Payload {
        content_type: Some("text/plain".into()),
        data,
    })
}

impl Guest for KeyValue {
    fn handle(event: Event) -> Result<Option<Payload>, Error> {
        let bucket = store::open(event.subject.as_deref().unwrap_or("demo")).map_err(failed)?;
        let key = String::from_utf8_lossy(&event.data).into_owned();
        match event.type_.as_str() {
            "get" => match bucket.get(&key).map_err(failed)? {
                Some(v) => Ok(text(v)),
                None => Err(Error::Invalid("absent".into())),
            },
            "set" => {
                bucket.set(&key, b"written by the guest").map_err(failed)?;
                Ok(None)
            }
            "list" => {
                let mut keys = Vec::new();
                let mut cursor = None;
                loop {
                    let page = bucket.list_keys(cursor).map_err(failed)?;
                    keys.extend(page.keys);
                    match page.cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                Ok(text(keys.join("\n").into_bytes()))
            }
            other => Err(Error::Invalid(format!("unknown event type {other:?}: get, set or list"))),
        }
    }
}

export!(KeyValue);
