//! Outbound `wasi:http`: a guest's request leaves only when one of its grants
//! ([`skiff_api::OutboundGrant`], from `capabilities.outbound`) allows the request's own URL —
//! its scheme, host and port, nothing the request's headers or the incoming request say. A
//! denied request fails with `HTTP-request-denied`; the pod's log gets a line naming the grant
//! that would allow it, and the denial is counted in [`Denials`] for the node to report.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use skiff_api::OutboundGrant;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use crate::logs::{LogBuffer, LogLine, Stream};
use crate::trace::Trace;

/// What a guest may reach over `wasi:http`, and where its denials are counted.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    /// The grants; none denies every request.
    pub grants: Arc<[OutboundGrant]>,
    /// Where denials are counted (share one per node), if anywhere.
    pub denials: Option<Arc<Denials>>,
}

impl Egress {
    /// Grants only.
    pub fn granting(grants: Vec<OutboundGrant>) -> Self {
        Egress {
            grants: grants.into(),
            denials: None,
        }
    }
}

/// Denied requests since the last [`take`](Denials::take), by handler name.
#[derive(Debug, Default)]
pub struct Denials {
    by_handler: Mutex<BTreeMap<String, Denied>>,
}

/// The denials of one handler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denied {
    /// How many requests were denied.
    pub count: u64,
    /// The grant that would have allowed the latest one (`http://host:port`).
    pub missing: String,
}

impl Denials {
    /// Takes what was counted, leaving nothing.
    pub fn take(&self) -> BTreeMap<String, Denied> {
        std::mem::take(&mut *self.by_handler.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn count(&self, name: &str, missing: &str) {
        let mut m = self.by_handler.lock().unwrap_or_else(PoisonError::into_inner);
        let d = m.entry(name.to_owned()).or_default();
        d.count += 1;
        missing.clone_into(&mut d.missing);
    }
}

/// The `wasi:http` hooks of one guest instance.
pub(crate) struct OutboundPolicy {
    egress: Egress,
    name: Arc<str>,
    logs: Arc<LogBuffer>,
    /// The trace of the request being served, carried to the requests the guest sends.
    trace: Option<Trace>,
}

impl OutboundPolicy {
    pub(crate) fn new(egress: Egress, name: Arc<str>, logs: Arc<LogBuffer>) -> Self {
        OutboundPolicy {
            egress,
            name,
            logs,
            trace: None,
        }
    }

    /// Sets the trace of the request the guest serves now (none: nothing is propagated).
    pub(crate) fn set_trace(&mut self, trace: Option<Trace>) {
        self.trace = trace;
    }

    /// `None` when `uri` is allowed, else why not.
    fn refusal(&self, uri: &http::Uri) -> Option<Refusal> {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Some(Refusal::Unusable(format!(
                "the request URL {uri} has no scheme or host: give an absolute http(s) URL"
            )));
        };
        let Some(port) = uri.port_u16().or_else(|| skiff_api::default_port(scheme)) else {
            return Some(Refusal::Unusable(format!(
                "scheme {scheme:?} is not http or https"
            )));
        };
        if self.egress.grants.iter().any(|g| g.allows(scheme, host, port)) {
            return None;
        }
        Some(Refusal::NoGrant(OutboundGrant::suggest(scheme, host, port)))
    }

    fn deny(&self, uri: &http::Uri, refusal: Refusal) {
        let (text, missing) = match refusal {
            Refusal::NoGrant(grant) => (
                format!(
                    "skiff: outbound request to {uri} denied: no grant in capabilities.outbound allows it; add {grant:?}"
                ),
                grant,
            ),
            Refusal::Unusable(why) => (format!("skiff: outbound request denied: {why}"), why),
        };
        tracing::debug!(handler = %self.name, %uri, "guest outbound request denied");
        self.logs.push(LogLine::new(Stream::Stderr, text.as_bytes()));
        if let Some(d) = &self.egress.denials {
            d.count(&self.name, &missing);
        }
    }
}

/// Why an outbound request is denied.
enum Refusal {
    /// No grant allows it; this one would.
    NoGrant(String),
    /// No grant could: the URL cannot be matched (why).
    Unusable(String),
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl wasmtime_wasi_http::WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        drop(fut);
        if let Some(refusal) = self.refusal(request.uri()) {
            self.deny(request.uri(), refusal);
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        if let Some(trace) = &self.trace {
            trace.propagate(request.headers_mut());
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
