//! `skiff:function` components: one instance per event, answers, function errors, traps and
//! time limits, and every call independent of the others.
use std::time::Duration;

use skiff_runtime_wasm::{CallFailure, Error, Event, FunctionError, FunctionOptions};

use crate::guests;

fn event(kind: &str, data: &[u8]) -> Event {
    Event {
        id: "evt-1".into(),
        source: "/topics/orders".into(),
        type_: kind.into(),
        subject: Some("order-7".into()),
        time: None,
        datacontenttype: Some("text/plain".into()),
        data: data.to_vec(),
        extensions: Vec::new(),
    }
}

fn opts() -> FunctionOptions {
    let mut o = FunctionOptions::new("default/orders");
    o.timeout = Duration::from_millis(300);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_answer_one_event_per_instance() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let f = runtime.load(guests::function()).await.expect("load function");
    assert!(runtime.is_function(&f));

    let answer = runtime
        .call_function(&f, &event("upper", b"hello"), opts())
        .await
        .unwrap();
    let payload = answer
        .expect("no trap")
        .expect("no function error")
        .expect("a payload");
    assert_eq!(payload.data, b"HELLO");
    assert_eq!(payload.content_type.as_deref(), Some("text/plain"));

    let answer = runtime
        .call_function(&f, &event("describe", b""), opts())
        .await
        .unwrap();
    let payload = answer.unwrap().unwrap().unwrap();
    assert_eq!(
        String::from_utf8(payload.data).unwrap(),
        "evt-1 /topics/orders order-7"
    );

    let none = runtime
        .call_function(&f, &event("other", b""), opts())
        .await
        .unwrap();
    assert!(none.unwrap().unwrap().is_none());

    let err = runtime
        .call_function(&f, &event("invalid", b""), opts())
        .await
        .unwrap();
    assert!(matches!(err, Ok(Err(FunctionError::Invalid(_)))), "{err:?}");
    let err = runtime
        .call_function(&f, &event("retry", b""), opts())
        .await
        .unwrap();
    assert!(matches!(err, Ok(Err(FunctionError::Retryable(_)))), "{err:?}");

    let trap = runtime
        .call_function(&f, &event("trap", b""), opts())
        .await
        .unwrap();
    assert!(
        matches!(&trap, Err(CallFailure::Trap(m)) if m.contains("trapped")),
        "{trap:?}"
    );
    let spin = runtime
        .call_function(&f, &event("spin", b""), opts())
        .await
        .unwrap();
    assert!(
        matches!(spin, Err(CallFailure::Timeout(t)) if t == Duration::from_millis(300)),
        "{spin:?}"
    );

    // After a trap and a timeout the next call is fine: nothing is shared between calls.
    let answer = runtime
        .call_function(&f, &event("echo", b"again"), opts())
        .await
        .unwrap();
    assert_eq!(answer.unwrap().unwrap().unwrap().data, b"again");

    // Many concurrent cold calls, each its own instance.
    let calls = (0..50).map(|i| {
        let runtime = runtime.clone();
        let f = f.clone();
        async move {
            let data = format!("n{i}");
            let r = runtime
                .call_function(&f, &event("echo", data.as_bytes()), opts())
                .await;
            r.unwrap().unwrap().unwrap().unwrap().data == data.as_bytes()
        }
    });
    assert!(futures::future::join_all(calls).await.into_iter().all(|ok| ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_component_is_not_a_function() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let hostile = runtime.load(guests::hostile()).await.expect("load");
    assert!(!runtime.is_function(&hostile));
    let err = runtime
        .call_function(&hostile, &event("echo", b""), opts())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFunction { .. }), "{err:?}");
    assert!(err.to_string().contains("skiff:function/handler"), "{err}");
}
