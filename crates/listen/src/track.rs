//! Marks a connection busy while one of its requests is in service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// What a connection's task and its guard share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Claims on the connection: requests in service (a response body still being sent
    /// counts), or a peer stream.
    pub(crate) busy: AtomicUsize,
    /// Told when the guard closes the connection to make room.
    pub(crate) close: Notify,
}

/// A claim that the connection is in use (a request in service, a peer stream); while one is
/// held the guard never closes the connection to make room. Dropping it ends the claim.
#[derive(Debug)]
pub struct Claim(Arc<Shared>);

impl Claim {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        shared.busy.fetch_add(1, Ordering::AcqRel);
        Claim(shared)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A hyper service whose requests mark their connection busy (see [`crate::Slot::track`]).
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Tracked { inner, shared }
    }
}

impl<S, B, RB> hyper::service::Service<Request<B>> for Tracked<S>
where
    S: hyper::service::Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<TrackedBody<RB>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let busy = Some(Claim::new(self.shared.clone()));
        TrackedFuture {
            inner: self.inner.call(req),
            busy,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`Tracked`] service.
    #[derive(Debug)]
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        busy: Option<Claim>,
    }
}

impl<F, RB, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<TrackedBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        let busy = this.busy.take();
        Poll::Ready(out.map(|resp| resp.map(|inner| TrackedBody { inner, busy })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its connection busy until it has been sent or dropped.
    #[derive(Debug)]
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        busy: Option<Claim>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            this.busy.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
