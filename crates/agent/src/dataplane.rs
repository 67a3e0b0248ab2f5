//! The data plane: one HTTP listener serving every pod on the node.
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use skiff_api::POD_NAME_HEADER;
use skiff_runtime_wasm::ResponseBody;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::pods::PodTable;

/// Serves requests for this node's pods. Cheap to clone.
#[derive(Clone)]
pub struct DataPlane {
    pods: Arc<PodTable>,
    token: Arc<str>,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataPlane")
    }
}

/// A plain-text response with the data plane's body type.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|e: Infallible| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

impl DataPlane {
    pub(crate) fn new(pods: Arc<PodTable>, token: String) -> Self {
        DataPlane {
            pods,
            token: token.into(),
        }
    }

    /// Serves one request. The target pod is `namespace/name` in the `x-skiff-pod` header; the
    /// answer is the pod's (or 404 when the pod is not running here, so a gateway can try another
    /// endpoint). `GET /skiff/pods/{ns}/{name}/log` (bearer token required) returns the pod's output.
    pub async fn serve<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if let Some(rest) = req.uri().path().strip_prefix("/skiff/pods/") {
            return self.logs(&req, rest);
        }
        let Some(target) = req
            .headers()
            .get(POD_NAME_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "this is a Skiff node's data plane: requests need an {POD_NAME_HEADER}: namespace/pod header (send traffic through the gateway)\n"
                ),
            );
        };
        match self.pods.get(&target) {
            Some(pod) => pod.handler.handle(req).await,
            None => text(
                StatusCode::NOT_FOUND,
                format!("pod {target} is not running on this node\n"),
            ),
        }
    }

    fn logs<B>(&self, req: &Request<B>, rest: &str) -> Response<ResponseBody> {
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if auth.and_then(|a| a.strip_prefix("Bearer ")) != Some(&*self.token) {
            return text(StatusCode::UNAUTHORIZED, "missing or invalid bearer token\n");
        }
        let Some(key) = rest.strip_suffix("/log") else {
            return text(
                StatusCode::NOT_FOUND,
                "expected /skiff/pods/{namespace}/{name}/log\n",
            );
        };
        match self.pods.get(key) {
            Some(pod) => {
                let mut out = String::new();
                for l in pod.logs.lines() {
                    out.push_str(&format!("{} {} {}\n", l.time, l.stream, l.line));
                }
                text(StatusCode::OK, out)
            }
            None => text(
                StatusCode::NOT_FOUND,
                format!("pod {key} is not running on this node\n"),
            ),
        }
    }
}

/// Accepts connections until `shutdown`, serving each with HTTP/1.1 keep-alive.
pub(crate) async fn serve(listener: TcpListener, plane: DataPlane, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "data plane accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let plane = plane.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let plane = plane.clone();
                async move { Ok::<_, Infallible>(plane.serve(req).await) }
            });
            let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = conn.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(error = %e, "data plane connection ended");
            }
        });
    }
}
