//! Reading what agents answer: within a deadline and up to a size, never more.
//!
//! Every place the control plane reads a worker's answer (pod logs, an invoked function's
//! reply, an event delivery's payload, pod statistics) reads it through [`read`]: a node that
//! streams without end, or stops half way, costs a bounded amount of memory and time.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// How long a read of an agent's answer may take when the caller sets no deadline of its own.
pub(crate) const AGENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read for pod logs.
pub(crate) const LOG_BYTES: usize = 16 << 20;
/// Largest answer read from a function (an invocation's reply, a delivery's payload).
pub(crate) const REPLY_BYTES: usize = 16 << 20;
/// Largest answer read for pod statistics.
pub(crate) const STATS_BYTES: usize = 64 << 10;
/// Largest error text read from a failed answer.
pub(crate) const ERROR_BYTES: usize = 64 << 10;

/// Why an answer could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AnswerError {
    /// The answer grew past the limit.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit it passed.
        limit: usize,
    },
    /// The answer did not arrive within the deadline.
    #[error("the answer did not arrive within {0:?}")]
    Timeout(Duration),
    /// The connection failed while reading.
    #[error(transparent)]
    Read(#[from] reqwest::Error),
}

/// Reads `resp`'s body, at most `limit` bytes, within `deadline` (the whole read).
pub(crate) async fn read(
    resp: reqwest::Response,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, AnswerError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(AnswerError::TooLarge { limit });
    }
    tokio::time::timeout(deadline, gather(resp, limit))
        .await
        .map_err(|_| AnswerError::Timeout(deadline))?
}

async fn gather(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, AnswerError> {
    let mut out = BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > limit {
            return Err(AnswerError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every request with a chunked body: `chunks` chunks of 1 KiB
    /// then the end, or without end (and then silence) when `chunks` is `None`.
    async fn server(chunks: Option<usize>, stall: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await;
                    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
                    let mut sent = 0;
                    while chunks.is_none_or(|n| sent < n) {
                        if s.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                        sent += 1;
                    }
                    if stall {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    let _ = s.write_all(b"0\r\n\r\n").await;
                });
            }
        });
        format!("http://{addr}/")
    }

    async fn get(url: &str) -> reqwest::Response {
        reqwest::Client::new().get(url).send().await.unwrap()
    }

    #[tokio::test]
    async fn an_answer_within_the_limit_is_read_whole() {
        let url = server(Some(8), false).await;
        let body = read(get(&url).await, 64 << 10, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(body.len(), 8 * 1024);
    }

    #[tokio::test]
    async fn an_endless_answer_stops_at_the_limit() {
        let url = server(None, false).await;
        let err = read(get(&url).await, 64 << 10, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(err, AnswerError::TooLarge { limit } if limit == 64 << 10),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_answer_that_stops_half_way_ends_at_the_deadline() {
        let url = server(Some(2), true).await;
        let started = std::time::Instant::now();
        let err = read(get(&url).await, 64 << 10, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, AnswerError::Timeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
