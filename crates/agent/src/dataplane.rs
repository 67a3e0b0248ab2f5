//! The data plane: one HTTP listener serving every pod on the node.
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use skiff_api::{NO_POD_HEADER, OVERLOADED_HEADER, POD_NAME_HEADER};
use skiff_listen::{Guard, Limits};
use skiff_pki::{Identity, Role, ServerConfig};
use skiff_runtime_wasm::ResponseBody;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::pods::PodTable;
use crate::util::text;

/// Connections a data plane may hold (lowered to its share of the open-file limit).
const DATA_PLANE_CONNECTIONS: usize = 4096;

/// Serves requests for this node's pods. Cheap to clone.
#[derive(Clone)]
pub struct DataPlane {
    pods: Arc<PodTable>,
    traffic: Arc<Mutex<HashMap<String, Arc<Traffic>>>>,
    /// The cluster's revocations (watched from the control plane): a caller whose certificate
    /// was revoked is refused like on the control plane.
    revocations: Option<Arc<skiff_client::Informer>>,
}

/// What one pod answered since it started here (by uid): the canary analysis reads it.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Requests refused at the pod's concurrency limit (429).
    shed: AtomicU64,
    /// Microseconds spent serving, all requests together: its growth over a wall-clock span is
    /// the pod's average concurrency in that span (the function scaler reads it).
    busy_us: AtomicU64,
}

/// Holds one of a pod's concurrency slots while a request is served.
struct Slot<'a>(&'a std::sync::atomic::AtomicU32);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Who sent a data-plane request: the identity in the client certificate the cluster CA
/// verified (requests called in-process carry none).
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Identity, pub(crate) Option<std::time::SystemTime>);

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataPlane")
    }
}

impl DataPlane {
    pub(crate) fn new(pods: Arc<PodTable>, revocations: Option<Arc<skiff_client::Informer>>) -> Self {
        DataPlane {
            pods,
            traffic: Arc::default(),
            revocations,
        }
    }

    /// When the certificate of `id` issued at `issued` was revoked, if it was.
    fn revoked(&self, id: &Identity, issued: Option<std::time::SystemTime>) -> Option<String> {
        let name = skiff_api::revocation_name(id.kind(), &id.name);
        let r = self
            .revocations
            .as_ref()?
            .snapshot()
            .into_iter()
            .find_map(|o| match o {
                skiff_api::Object::Revocation(r) if r.metadata.name == name => Some(r),
                _ => None,
            })?;
        let at = humantime::parse_rfc3339(&r.spec.revoked_at).ok()?;
        issued.is_none_or(|i| i <= at).then_some(r.spec.revoked_at)
    }

    /// The counters of the pod with this uid (made on first use; counters of pods no longer
    /// running here are dropped as new ones come).
    fn traffic_of(&self, uid: &str) -> Arc<Traffic> {
        let mut m = self.traffic.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = m.get(uid) {
            return t.clone();
        }
        if m.len() >= 64 && m.len().is_power_of_two() {
            let running = self.pods.serving_uids();
            m.retain(|u, _| running.contains(u));
        }
        m.entry(uid.to_owned()).or_default().clone()
    }

    /// Serves one request. The target pod is `namespace/name` in the `x-skiff-pod` header; the
    /// answer is the pod's (or 404 when the pod is not running here, so a gateway can try another
    /// endpoint); a caller with an agent's certificate gets 403. `GET /skiff/pods/{ns}/{name}/log` returns the pod's output and
    /// `GET /skiff/pods/{ns}/{name}/stats` its request and 5xx counts (JSON), to control nodes only.
    pub async fn serve<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if let Some(Caller(id, issued)) = req.extensions().get::<Caller>()
            && let Some(at) = self.revoked(id, *issued)
        {
            return text(
                StatusCode::FORBIDDEN,
                format!("the certificate of {id} was revoked at {at}\n"),
            );
        }
        if let Some(rest) = req.uri().path().strip_prefix("/skiff/pods/") {
            let rest = rest.to_owned();
            let control = req
                .extensions()
                .get::<Caller>()
                .is_some_and(|c| matches!(c.0.role, Role::Control { .. }));
            drop(req);
            return self.logs(control, &rest).await;
        }
        // Pods are called by the gateway and control nodes (and in-process, by the embedded
        // gateway); another worker's certificate is not enough.
        if let Some(Caller(id, _)) = req.extensions().get::<Caller>()
            && matches!(id.role, Role::Agent)
        {
            return text(
                StatusCode::FORBIDDEN,
                format!("{id} may not call pods here: the data plane serves the gateway and control nodes\n"),
            );
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
            Some(pod) => {
                let traffic = self.traffic_of(&pod.uid);
                let taken = pod.inflight.fetch_add(1, Ordering::AcqRel) + 1;
                let slot = Slot(&pod.inflight);
                if pod.concurrency.is_some_and(|limit| taken > limit) {
                    drop(slot);
                    traffic.shed.fetch_add(1, Ordering::Relaxed);
                    let mut r = text(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "pod {target} is at its concurrency limit of {} requests; retry, or raise maxScale/concurrency\n",
                            pod.concurrency.unwrap_or(0)
                        ),
                    );
                    r.headers_mut()
                        .insert(OVERLOADED_HEADER, header::HeaderValue::from_static("1"));
                    return r;
                }
                let began = std::time::Instant::now();
                let resp = pod.handler.handle(req).await;
                drop(slot);
                let spent = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                traffic.busy_us.fetch_add(spent, Ordering::Relaxed);
                traffic.requests.fetch_add(1, Ordering::Relaxed);
                if resp.status().is_server_error() {
                    traffic.errors.fetch_add(1, Ordering::Relaxed);
                }
                resp
            }
            None => {
                let mut r = text(
                    StatusCode::NOT_FOUND,
                    format!("pod {target} is not running on this node\n"),
                );
                // The gateway may try another endpoint: the request reached no pod.
                r.headers_mut()
                    .insert(NO_POD_HEADER, header::HeaderValue::from_static("1"));
                r
            }
        }
    }

    async fn logs(&self, control: bool, rest: &str) -> Response<ResponseBody> {
        if !control {
            return text(
                StatusCode::FORBIDDEN,
                "pod logs are served to control nodes only: use `skiff logs POD`\n",
            );
        }
        if let Some(key) = rest.strip_suffix("/stats") {
            return match self.pods.get(key) {
                Some(pod) => {
                    let t = self.traffic_of(&pod.uid);
                    let body = serde_json::json!({
                        "uid": pod.uid,
                        "requests": t.requests.load(Ordering::Relaxed),
                        "errors": t.errors.load(Ordering::Relaxed),
                        "shed": t.shed.load(Ordering::Relaxed),
                        "busyUs": t.busy_us.load(Ordering::Relaxed),
                        "inflight": pod.inflight.load(Ordering::Relaxed),
                    });
                    let mut r = text(StatusCode::OK, body.to_string());
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("application/json"),
                    );
                    r
                }
                None => text(
                    StatusCode::NOT_FOUND,
                    format!("pod {key} is not running on this node\n"),
                ),
            };
        }
        let Some(key) = rest.strip_suffix("/log") else {
            return text(
                StatusCode::NOT_FOUND,
                "expected /skiff/pods/{namespace}/{name}/log or .../stats\n",
            );
        };
        let command_logs = self.pods.command_logs(key);
        let pod = self.pods.get(key);
        match pod.as_ref().map(|p| p.logs.clone()).or(command_logs) {
            Some(logs) => {
                let mut out = String::new();
                for l in logs.lines() {
                    out.push_str(&format!("{} {} {}\n", l.time, l.stream, l.line));
                }
                // Then each container's output, its lines prefixed with the component.
                for (component, id) in pod.map(|p| p.container_ids()).unwrap_or_default() {
                    out.push_str(&self.pods.containers.logs_of(&component, &id).await);
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

/// Accepts TLS connections until `shutdown` (a client certificate of the cluster CA is
/// required), serving each with HTTP/1.1 keep-alive, within the data plane's
/// [`skiff_listen::Limits`].
pub(crate) async fn serve(
    listener: TcpListener,
    plane: DataPlane,
    tls: Arc<ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let guard = Guard::new("data plane", Limits::for_listener(DATA_PLANE_CONNECTIONS));
    loop {
        let (stream, remote, slot) = tokio::select! {
            _ = shutdown.changed() => return,
            a = guard.accept(&listener) => a,
        };
        let _ = stream.set_nodelay(true);
        let plane = plane.clone();
        let acceptor = acceptor.clone();
        let guard = guard.clone();
        tokio::spawn(async move {
            let limits = guard.limits();
            let conn = async {
                let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await;
                let stream = match handshake {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        return guard.rejected(
                            remote,
                            &format_args!(
                                "TLS handshake refused (no client certificate from this cluster's CA?): {e}"
                            ),
                        );
                    }
                    Err(_) => return,
                };
                let certs = stream.get_ref().1.peer_certificates();
                let Some(identity) = skiff_pki::https::client_identity(certs) else {
                    return;
                };
                let caller = Caller(identity, skiff_pki::https::client_issued_at(certs));
                let svc = slot.track(service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    let plane = plane.clone();
                    req.extensions_mut().insert(caller.clone());
                    async move { Ok::<_, Infallible>(plane.serve(req).await) }
                }));
                let conn = skiff_listen::http1(limits).serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "data plane connection ended");
                }
            };
            slot.run(conn).await;
        });
    }
}
