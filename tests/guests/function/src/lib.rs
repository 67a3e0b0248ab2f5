//! `function`: a `skiff:function/function` component for Skiff's tests.
//!
//! | event type | answer |
//! |---|---|
//! | `echo` | the event's data |
//! | `upper` | the data in upper case, `text/plain` |
//! | `describe` | `id source subject` as text |
//! | `invalid` | error `invalid` |
//! | `retry` | error `retryable` |
//! | `trap` | a panic (trap) |
//! | `spin` | an endless loop |
//! | `record`, `dev.skiff.cron.tick` | prints `event ID` to stdout, no payload |
//! | `dev.skiff.mqtt.message` | prints `event ID`, answers `ack:` and the data |
//! | anything else | no payload |

wit_bindgen::generate!({
    path: "../../../wit/function.wit",
    world: "function",
});

use exports::skiff::function::handler::{Error, Event, Guest, Payload};

struct Function;

impl Guest for Function {
    fn handle(event: Event) -> Result<Option<Payload>, Error> {
        match event.type_.as_str() {
            "echo" => Ok(Some(Payload {
                content_type: event.datacontenttype,
                data: event.data,
            })),
            "upper" => Ok(Some(Payload {
                content_type: Some("text/plain".into()),
                data: String::from_utf8_lossy(&event.data).to_uppercase().into_bytes(),
            })),
            "describe" => Ok(Some(Payload {
                content_type: Some("text/plain".into()),
                data: format!(
                    "{} {} {}",
                    event.id,
                    event.source,
                    event.subject.unwrap_or_default()
                )
                .into_bytes(),
            })),
            "invalid" => Err(Error::Invalid("cannot handle this event".into())),
            "retry" => Err(Error::Retryable("try again later".into())),
            "trap" => panic!("function asked to trap"),
            "record" | "dev.skiff.cron.tick" => {
                println!("event {}", event.id);
                Ok(None)
            }
            "dev.skiff.mqtt.message" => {
                println!("event {}", event.id);
                let mut data = b"ack:".to_vec();
                data.extend_from_slice(&event.data);
                Ok(Some(Payload {
                    content_type: Some("text/plain".into()),
                    data,
                }))
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => Ok(None),
        }
    }
}

export!(Function);
