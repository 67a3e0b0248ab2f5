//! Request bodies held to the gateway's size limit.
//!
//! A request that declares a larger `Content-Length` is answered 413 before anything is
//! forwarded; a streamed body that grows past the limit is cut off with an error the upstream
//! sees, and the client is answered 413 instead of whatever the upstream made of the cut.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{BoxError, GatewayBody, RequestBody, text};

/// Default largest request body the gateway forwards.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// Whether a request's body went over the limit while it was forwarded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Over(Arc<AtomicBool>);

impl Over {
    /// The 413 answer when the body went over `max`, else `resp`.
    pub(crate) fn answer(&self, resp: Response<GatewayBody>, max: u64) -> Response<GatewayBody> {
        if self.0.load(Ordering::Acquire) {
            too_large(max)
        } else {
            resp
        }
    }
}

/// The request with its body capped at `max` bytes, or `None` when its `Content-Length`
/// already says it is larger (answer it with [`too_large`]).
pub(crate) fn cap<B>(req: Request<B>, max: u64) -> Option<(Request<RequestBody>, Over)>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return None;
    }
    let over = Over::default();
    let req = req.map(|inner| {
        Capped {
            inner,
            left: max,
            over: over.clone(),
        }
        .boxed_unsync()
    });
    Some((req, over))
}

/// The 413 answer for a body over `max` bytes.
pub(crate) fn too_large(max: u64) -> Response<GatewayBody> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body larger than the gateway's limit of {max} bytes: send less, or raise the \
             gateway's --max-body-size\n"
        ),
    )
}

/// The limit was reached while streaming a body.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than the gateway's limit of {0} bytes")]
struct TooLarge(u64);

struct Capped<B> {
    inner: B,
    left: u64,
    over: Over,
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(f)) => f,
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            if n > self.left {
                self.over.0.store(true, Ordering::Release);
                let limit = self.left;
                return Poll::Ready(Some(Err(Box::new(TooLarge(limit)))));
            }
            self.left -= n;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_forwarding() {
        let req = Request::builder()
            .header(header::CONTENT_LENGTH, "11")
            .body(Full::new(Bytes::from_static(b"hello world")))
            .unwrap();
        assert!(cap(req, 10).is_none(), "refused");
        assert_eq!(too_large(10).status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_streamed_body_is_cut_at_the_limit_and_marks_the_request() {
        let chunks =
            (0..4).map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"0123"))));
        let body = StreamBody::new(tokio_stream::iter(chunks));
        let (req, over) = cap(Request::new(body), 10).expect("no length declared");
        let got = req.into_body().collect().await;
        assert!(got.is_err(), "the body is cut");
        let resp = over.answer(text(StatusCode::OK, String::new()), 10);
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

        let (req, over) =
            cap(Request::new(Full::new(Bytes::from_static(b"0123456789"))), 10).expect("within the limit");
        assert_eq!(req.into_body().collect().await.unwrap().to_bytes().len(), 10);
        assert_eq!(
            over.answer(text(StatusCode::OK, String::new()), 10).status(),
            StatusCode::OK
        );
    }
}
