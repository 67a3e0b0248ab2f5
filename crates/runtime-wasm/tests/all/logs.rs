//! Guest stdout and stderr in the pod's bounded log.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use skiff_runtime_wasm::{HandlerOptions, LogBuffer, Stream};

use crate::guests::{self, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_lands_in_the_log_buffer() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let logs = Arc::new(LogBuffer::new(1024 * 1024));
    let mut follow = logs.subscribe();
    let mut opts = HandlerOptions::new("default/logs/hello");
    opts.env = vec![("SKIFF_POD_NAME".to_string(), "logs".to_string())];
    opts.logs = logs.clone();
    let handler = runtime
        .handler(runtime.load(guests::hello()).await.unwrap(), opts)
        .unwrap();
    assert_eq!(get(&handler, "/").await.0, StatusCode::OK);
    assert_eq!(get(&handler, "/count").await.0, StatusCode::OK);

    let lines = logs.lines();
    let texts: Vec<_> = lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(texts, ["logs: / -> 200", "logs: /count -> 200"]);
    assert!(lines.iter().all(|l| l.stream == Stream::Stdout));
    assert!(
        humantime::parse_rfc3339(&lines[0].time).is_ok(),
        "{}",
        lines[0].time
    );

    let followed = tokio::time::timeout(Duration::from_secs(5), follow.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(followed.line, "logs: / -> 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_buffer_stays_bounded_with_a_chatty_guest() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = guests::runtime(&cache);
    let logs = Arc::new(LogBuffer::new(8 * 1024));
    let mut opts = HandlerOptions::new("default/chatty/guest");
    opts.logs = logs.clone();
    let handler = runtime
        .handler(runtime.load(guests::hostile()).await.unwrap(), opts)
        .unwrap();
    for _ in 0..3 {
        assert_eq!(get(&handler, "/print?n=2000").await.0, StatusCode::OK);
    }
    let lines = logs.lines();
    assert!(logs.bytes() <= 8 * 1024, "{}", logs.bytes());
    assert!(logs.dropped() > 0);
    let last = lines.last().unwrap();
    assert_eq!(
        (last.stream, last.line.as_str()),
        (Stream::Stderr, "printed 2000 lines")
    );
    assert!(lines.iter().any(|l| l.line == "line 1999"));
}
