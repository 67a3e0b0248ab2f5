//! W3C Trace Context across a guest: the `traceparent` (and `tracestate`) of the request a
//! guest serves is carried to the `wasi:http` requests it sends, each as a new child span —
//! the same trace id and flags, a fresh parent id — unless the guest set its own.
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The trace a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trace {
    /// 32 lowercase hex digits, not all zero.
    trace_id: String,
    /// 2 hex digits.
    flags: String,
    /// The `tracestate` header, passed on as it came.
    state: Option<HeaderValue>,
}

impl Trace {
    /// The trace of an incoming request: `None` without a well-formed version-00 `traceparent`.
    pub(crate) fn of(headers: &HeaderMap) -> Option<Trace> {
        let value = headers.get(TRACEPARENT)?.to_str().ok()?;
        let parts: Vec<&str> = value.trim().split('-').collect();
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
        match parts.as_slice() {
            ["00", trace, parent, flags]
                if hex(trace, 32)
                    && nonzero(trace)
                    && hex(parent, 16)
                    && nonzero(parent)
                    && hex(flags, 2) =>
            {
                Some(Trace {
                    trace_id: (*trace).to_owned(),
                    flags: (*flags).to_owned(),
                    state: headers.get(TRACESTATE).cloned(),
                })
            }
            _ => None,
        }
    }

    /// Adds this trace to an outgoing request's headers as a new child span, unless the guest
    /// set a `traceparent` of its own.
    pub(crate) fn propagate(&self, headers: &mut HeaderMap) {
        if headers.contains_key(TRACEPARENT) {
            return;
        }
        let value = format!("00-{}-{}-{}", self.trace_id, span_id(), self.flags);
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(TRACEPARENT, v);
        }
        if let Some(state) = &self.state
            && !headers.contains_key(TRACESTATE)
        {
            headers.insert(TRACESTATE, state.clone());
        }
    }
}

/// A fresh, random span id: 16 hex digits, never all zero.
fn span_id() -> String {
    format!("{:016x}", rand::random::<u64>().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_child_span_keeps_the_trace_and_flags_with_a_fresh_parent() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = Trace::of(&headers(&[
            ("traceparent", incoming),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]))
        .unwrap();
        let mut out = HeaderMap::new();
        t.propagate(&mut out);
        let sent = out["traceparent"].to_str().unwrap().to_owned();
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(parts[2], "00f067aa0ba902b7");
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert_eq!(out["tracestate"], "congo=t61rcWkgMzE");
        let mut again = HeaderMap::new();
        t.propagate(&mut again);
        assert_ne!(
            again["traceparent"], out["traceparent"],
            "each call is its own span"
        );
        // The guest's own traceparent wins.
        let mut own = headers(&[("traceparent", incoming)]);
        t.propagate(&mut own);
        assert_eq!(own["traceparent"], incoming);
    }

    #[test]
    fn malformed_or_zero_traceparents_start_nothing() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            assert_eq!(Trace::of(&headers(&[("traceparent", bad)])), None, "{bad}");
        }
        assert_eq!(Trace::of(&HeaderMap::new()), None);
    }
}
