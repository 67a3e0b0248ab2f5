//! Bounded per-pod guest logs: what a guest writes to stdout and stderr, line by line.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::broadcast;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Most lines a [`LogBuffer`] keeps, whatever its byte budget.
pub const MAX_LOG_LINES: usize = 10_000;

/// Longest line kept; a guest line longer than this is split.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// How many lines a slow follower may lag behind before it misses some.
const FOLLOW_CAPACITY: usize = 1024;

/// Which guest stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// `wasi:cli/stdout`.
    Stdout,
    /// `wasi:cli/stderr`.
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of guest output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the line was completed, RFC 3339 in UTC with milliseconds
    /// (`2026-01-02T03:04:05.678Z`).
    pub time: String,
    /// The stream it was written to.
    pub stream: Stream,
    /// The text, without the trailing newline; invalid UTF-8 is replaced.
    pub line: String,
}

impl LogLine {
    pub(crate) fn new(stream: Stream, bytes: &[u8]) -> Self {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        LogLine {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            stream,
            line: String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// Bytes this line counts against a buffer's budget.
    fn cost(&self) -> usize {
        self.line.len() + self.time.len() + 8
    }
}

/// A bounded, in-memory log of one pod's guest output.
///
/// Keeps at most `max_bytes` of text and at most [`MAX_LOG_LINES`] lines; the
/// oldest lines are dropped first. Readers take a snapshot with [`LogBuffer::lines`]
/// or follow new lines with [`LogBuffer::subscribe`]. Share one buffer (in an
/// `Arc`) between every handler of a pod.
pub struct LogBuffer {
    max_bytes: usize,
    inner: Mutex<Lines>,
    follow: broadcast::Sender<LogLine>,
}

impl std::fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("LogBuffer")
            .field("max_bytes", &self.max_bytes)
            .field("lines", &inner.lines.len())
            .field("bytes", &inner.bytes)
            .field("dropped", &inner.dropped)
            .finish()
    }
}

#[derive(Default)]
struct Lines {
    lines: VecDeque<LogLine>,
    bytes: usize,
    dropped: u64,
}

impl LogBuffer {
    /// A buffer keeping about `max_bytes` of the most recent output (at least one line).
    pub fn new(max_bytes: usize) -> Self {
        let (follow, _) = broadcast::channel(FOLLOW_CAPACITY);
        LogBuffer {
            max_bytes,
            inner: Mutex::new(Lines::default()),
            follow,
        }
    }

    /// A snapshot of the kept lines, oldest first.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lock().lines.iter().cloned().collect()
    }

    /// How many lines have been dropped to stay within the bounds.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Bytes currently counted against the budget.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Follows lines appended from now on. A receiver that falls more than about a
    /// thousand lines behind gets `RecvError::Lagged` and continues from the newest.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.follow.subscribe()
    }

    /// Appends one line (used by the runtime for guest output; callers may add their
    /// own, for example lifecycle messages).
    pub fn push(&self, line: LogLine) {
        {
            let mut inner = self.lock();
            inner.bytes += line.cost();
            inner.lines.push_back(line.clone());
            while inner.lines.len() > 1 && (inner.bytes > self.max_bytes || inner.lines.len() > MAX_LOG_LINES)
            {
                if let Some(old) = inner.lines.pop_front() {
                    inner.bytes -= old.cost();
                    inner.dropped += 1;
                }
            }
        }
        // No follower is not an error.
        let _ = self.follow.send(line);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        // The lock guards plain data that stays consistent at every step.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `wasi:cli` stdout or stderr of one store, writing into a [`LogBuffer`].
pub(crate) struct GuestOutput {
    stream: Stream,
    logs: Arc<LogBuffer>,
}

impl GuestOutput {
    pub(crate) fn new(stream: Stream, logs: Arc<LogBuffer>) -> Self {
        GuestOutput { stream, logs }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineSink::new(self.stream, self.logs.clone()))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineSink::new(self.stream, self.logs.clone()))
    }
}

/// Splits written bytes into lines; a partial last line is kept until the next write
/// or until the stream is dropped.
struct LineSink {
    stream: Stream,
    logs: Arc<LogBuffer>,
    partial: Vec<u8>,
}

impl LineSink {
    fn new(stream: Stream, logs: Arc<LogBuffer>) -> Self {
        LineSink {
            stream,
            logs,
            partial: Vec::new(),
        }
    }

    fn accept(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&bytes[..pos]);
            self.emit();
            bytes = &bytes[pos + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() > MAX_LINE_BYTES {
            let rest = self.partial.split_off(MAX_LINE_BYTES);
            self.emit();
            self.partial = rest;
        }
    }

    fn emit(&mut self) {
        self.logs.push(LogLine::new(self.stream, &self.partial));
        self.partial.clear();
    }
}

impl Drop for LineSink {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.emit();
        }
    }
}

impl OutputStream for LineSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready; the buffer bounds itself by dropping old lines.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineSink {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LineSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_partials_until_drop() {
        let logs = Arc::new(LogBuffer::new(1 << 20));
        let mut sink = LineSink::new(Stream::Stdout, logs.clone());
        sink.accept(b"one\ntw");
        sink.accept(b"o\r\nthree");
        assert_eq!(logs.lines().len(), 2);
        drop(sink);
        let lines: Vec<_> = logs.lines().into_iter().map(|l| l.line).collect();
        assert_eq!(lines, ["one", "two", "three"]);
    }

    #[test]
    fn stays_within_byte_budget_dropping_oldest() {
        let logs = LogBuffer::new(4096);
        for i in 0..1000 {
            logs.push(LogLine::new(Stream::Stderr, format!("line {i}").as_bytes()));
        }
        assert!(logs.bytes() <= 4096);
        let lines = logs.lines();
        assert_eq!(lines.last().map(|l| l.line.as_str()), Some("line 999"));
        assert_eq!(logs.dropped() as usize + lines.len(), 1000);
    }

    #[test]
    fn splits_overlong_lines() {
        let logs = Arc::new(LogBuffer::new(1 << 20));
        let mut sink = LineSink::new(Stream::Stdout, logs.clone());
        sink.accept(&vec![b'x'; MAX_LINE_BYTES * 2 + 5]);
        drop(sink);
        let lens: Vec<_> = logs.lines().iter().map(|l| l.line.len()).collect();
        assert_eq!(lens, [MAX_LINE_BYTES, MAX_LINE_BYTES, 5]);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let line = LogLine::new(Stream::Stdout, b"x");
        assert!(humantime::parse_rfc3339(&line.time).is_ok(), "{}", line.time);
    }
}
