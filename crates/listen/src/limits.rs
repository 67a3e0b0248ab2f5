//! What one listener may hold, and hyper connection builders that enforce the timeouts.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::fd::fd_limit;

/// The share of the open-file limit one listener's connections may take (1/8: a process has
/// a handful of listeners and needs descriptors for its own files and outgoing connections).
const FD_SHARE: u64 = 8;
/// The fewest connections a listener is given, whatever the open-file limit.
const FLOOR: usize = 16;

/// How much one listener may hold and how long a client may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most connections the listener holds at once.
    pub max_connections: usize,
    /// Most connections one source address holds at once.
    pub max_per_source: usize,
    /// How long a client may take to send a request head: from accepting the connection
    /// (first byte, TLS handshake, header) and again after each kept-alive response, so it is
    /// also how long an idle kept-alive connection is kept.
    pub header_timeout: Duration,
    /// Largest request head (request line and header fields) in bytes; larger is answered 431.
    pub max_header_bytes: usize,
}

impl Limits {
    /// Limits for a listener that should hold up to `wanted` connections, lowered to its share
    /// (1/8) of the process's open-file limit; one source may hold half of them; 10 s to
    /// send a request head; 64 KiB heads.
    pub fn for_listener(wanted: usize) -> Self {
        let share = fd_limit()
            .map(|n| usize::try_from(n / FD_SHARE).unwrap_or(usize::MAX))
            .unwrap_or(usize::MAX);
        let max_connections = wanted.min(share).max(FLOOR);
        Limits {
            max_connections,
            max_per_source: (max_connections / 2).max(1),
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
        }
    }

    /// The same limits with `n` connections per source address (at most the listener's cap).
    pub fn per_source(mut self, n: usize) -> Self {
        self.max_per_source = n.clamp(1, self.max_connections);
        self
    }

    /// The same limits with another header timeout.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }
}

/// An HTTP/1.1 connection builder holding to `limits`: a timer, the header-read timeout
/// (which also closes idle kept-alive connections) and the header-size cap.
pub fn http1(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes);
    b
}

/// An HTTP/1.1 + HTTP/2 connection builder holding to `limits`. HTTP/1.1 as in [`http1`] (the
/// head cap is the read buffer's size); HTTP/2 pings an idle peer and closes it when the ping
/// is not answered within the header timeout, caps concurrent streams and the header list.
pub fn auto(limits: &Limits) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout)
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_gets_at_most_its_share_of_the_open_file_limit() {
        let l = Limits::for_listener(usize::MAX);
        if let Some(n) = fd_limit() {
            assert!(l.max_connections as u64 <= (n / FD_SHARE).max(FLOOR as u64));
        }
        assert_eq!(l.max_per_source, l.max_connections / 2);
        assert_eq!(Limits::for_listener(4).max_connections, FLOOR);
        let l = Limits::for_listener(100);
        assert_eq!(l.clone().per_source(1000).max_per_source, l.max_connections);
    }
}
