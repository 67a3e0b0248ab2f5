//! The gateway service: informers, the table, balancing and forwarding.
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::Rng;
use skiff_api::{EndpointAddress, Kind, NO_POD_HEADER, POD_NAME_HEADER};
use skiff_client::{Client, Informer, ListOptions};
use skiff_listen::{Guard, Limits, Slot};
use skiff_pki::NodeCert;
use skiff_pki::https::Peer;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::body::{BoxError, GatewayBody, RequestBody, text};
use crate::limit::{self, DEFAULT_MAX_BODY_BYTES};
use crate::table::{RouteTable, Selected};

/// A node's data plane living in the gateway's process: called directly instead of over HTTP.
pub type LocalUpstream = Arc<
    dyn Fn(Request<RequestBody>) -> Pin<Box<dyn Future<Output = Response<GatewayBody>> + Send>> + Send + Sync,
>;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The API client could not be built.
    #[error(transparent)]
    Client(#[from] skiff_client::ClientError),
    /// The node certificate cannot be used for TLS.
    #[error(transparent)]
    Tls(#[from] skiff_pki::PkiError),
}

/// Connections the gateway's listener may hold (lowered to its share of the open-file limit).
pub const GATEWAY_CONNECTIONS: usize = 16384;

/// Gateway settings.
#[derive(Clone)]
pub struct GatewayConfig {
    /// API server URL(s), comma-separated (spoken as HTTPS).
    pub server: String,
    /// The gateway's node certificate (role gateway): authenticates it to the API and to the
    /// agents' data planes (mutual TLS).
    pub node: NodeCert,
    /// Deadline of a request whose rule sets none.
    pub default_timeout: Duration,
    /// Data planes in this process, by node name.
    pub local: HashMap<String, LocalUpstream>,
    /// Where the node certificate is kept: when set, it is renewed there while the gateway
    /// runs (two thirds into its life).
    pub pki_dir: Option<std::path::PathBuf>,
    /// Largest request body forwarded; larger is answered 413.
    pub max_body_bytes: u64,
    /// What the gateway's listener may hold: connections in all and per client address, the
    /// header timeout, the header size.
    pub limits: Limits,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("server", &self.server)
            .finish()
    }
}

impl GatewayConfig {
    /// Defaults: 30 s deadline, no local data planes, 16 MiB bodies, the listener limits of
    /// [`Limits::for_listener`] for [`GATEWAY_CONNECTIONS`].
    pub fn new(server: &str, node: NodeCert) -> Self {
        GatewayConfig {
            server: server.into(),
            node,
            default_timeout: Duration::from_secs(30),
            local: HashMap::new(),
            pki_dir: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            limits: Limits::for_listener(GATEWAY_CONNECTIONS),
        }
    }
}

struct Inner {
    config: GatewayConfig,
    routes: Informer,
    endpoints: Informer,
    functions: Informer,
    client: Client,
    /// Bumped on every table rebuild (requests waiting for a function's first pod watch it).
    rebuilt: watch::Sender<u64>,
    table: RwLock<Arc<RouteTable>>,
    inflight: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    http: HttpClient<HttpsConnector<HttpConnector>, RequestBody>,
}

/// A running gateway (cheap to clone).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gateway")
    }
}

/// Counts a request against an endpoint while alive.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gateway {
    /// Starts watching routes and endpoints.
    ///
    /// # Errors
    /// [`GatewayError`] for a bad server URL.
    pub fn start(config: GatewayConfig) -> Result<Self, GatewayError> {
        let slot = skiff_pki::CertSlot::new(&config.node)?;
        let api_tls = skiff_pki::https::https_client_config_slot(&slot, Peer::Control)?;
        let client = Client::with_tls(&config.server, "", api_tls)?;
        let routes = Informer::start(client.clone(), Kind::HttpRoute, None, ListOptions::default());
        let endpoints = Informer::start(client.clone(), Kind::Endpoints, None, ListOptions::default());
        let functions = Informer::start(client.clone(), Kind::Function, None, ListOptions::default());
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.enforce_http(false);
        let mut agent_tls = skiff_pki::https::https_client_config_slot(&slot, Peer::Agent)?;
        if let Some(dir) = config.pki_dir.clone() {
            // Runs for the life of the process (a gateway is stopped with it): the sender lives
            // in the task, so the stop signal never comes.
            let renewing = client.clone();
            tokio::spawn(async move {
                let (keep, never) = watch::channel(false);
                skiff_client::keep_renewed(renewing, dir, slot, never).await;
                drop(keep);
            });
        }
        // The connector sets ALPN itself (http/1.1).
        agent_tls.alpn_protocols.clear();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(agent_tls)
            .https_only()
            .enable_http1()
            .wrap_connector(connector);
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Gateway {
            inner: Arc::new(Inner {
                config,
                routes,
                endpoints,
                functions,
                client,
                rebuilt: watch::channel(0).0,
                table: RwLock::new(Arc::new(RouteTable::default())),
                inflight: Mutex::new(HashMap::new()),
                http,
            }),
        })
    }

    /// The current table.
    pub fn table(&self) -> Arc<RouteTable> {
        self.inner.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn rebuild(&self) {
        let t = RouteTable::build_with_functions(
            &self.inner.routes.snapshot(),
            &self.inner.functions.snapshot(),
            &self.inner.endpoints.snapshot(),
            self.inner.config.default_timeout,
        );
        *self.inner.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(t);
        self.inner.rebuilt.send_modify(|n| *n += 1);
    }

    /// Serves `listener` until `shutdown`, rebuilding the table on every change.
    pub async fn run(self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let this = self.clone();
        let mut r = self.inner.routes.changed();
        let mut e = self.inner.endpoints.changed();
        let mut f = self.inner.functions.changed();
        let mut stop = shutdown.clone();
        let rebuilder = tokio::spawn(async move {
            loop {
                this.rebuild();
                tokio::select! {
                    x = r.changed() => if x.is_err() { return },
                    x = e.changed() => if x.is_err() { return },
                    x = f.changed() => if x.is_err() { return },
                    _ = stop.changed() => return,
                }
            }
        });
        let guard = Guard::new("gateway", self.inner.config.limits.clone());
        loop {
            let (stream, peer, slot) = tokio::select! {
                _ = shutdown.changed() => break,
                a = guard.accept(&listener) => a,
            };
            let _ = stream.set_nodelay(true);
            let gw = self.clone();
            let limits = guard.limits().clone();
            tokio::spawn(async move { gw.serve_connection(stream, peer, slot, limits).await });
        }
        rebuilder.abort();
    }

    /// Serves one accepted connection (HTTP/1.1 or HTTP/2) until it ends or the listener's
    /// guard closes it to make room.
    async fn serve_connection(self, stream: TcpStream, peer: SocketAddr, slot: Slot, limits: Limits) {
        let conn = self.connection(stream, peer, &slot, &limits);
        if let Some(Err(e)) = slot.run(conn).await {
            tracing::debug!(error = %e, "gateway connection ended");
        }
    }

    /// The connection's future, boxed where its types are concrete (an async block would
    /// have to prove it `Send` for every lifetime of the body's error type, which it cannot).
    fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: &Slot,
        limits: &Limits,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> {
        let gw = self.clone();
        let svc = slot.track(service_fn(move |req: Request<Incoming>| {
            let gw = gw.clone();
            async move { Ok::<_, Infallible>(gw.handle(req, peer.ip().to_string()).await) }
        }));
        let conn = skiff_listen::auto(limits)
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        Box::pin(conn)
    }

    /// Routes one request.
    pub async fn handle(&self, mut req: Request<Incoming>, peer: String) -> Response<GatewayBody> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().host())
            .unwrap_or("")
            .to_owned();
        let path = req.uri().path().to_owned();
        let Some(mut sel) = self.table().select_method(&host, req.method().as_str(), &path) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("no route for host {host:?} and path {path:?}: create an HTTPRoute that matches\n"),
            );
        };
        if let Ok(v) = HeaderValue::from_str(&peer) {
            req.headers_mut().insert("x-forwarded-for", v);
        }
        let max_body = self.inner.config.max_body_bytes;
        let Some((req, over)) = limit::cap(req, max_body) else {
            return limit::too_large(max_body);
        };
        let timeout = sel.timeout;
        let started = tokio::time::Instant::now();
        if let Some((ns, name)) = sel.function.clone()
            && !has_ready(&sel)
        {
            match tokio::time::timeout(
                timeout,
                self.activate(&ns, &name, &host, req.method().as_str(), &path),
            )
            .await
            {
                Ok(Ok(ready)) => sel = ready,
                Ok(Err(resp)) => return resp,
                Err(_) => {
                    return text(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!(
                            "function {ns}/{name} got no ready pod within {}ms\n",
                            timeout.as_millis()
                        ),
                    );
                }
            }
        }
        let timeout = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(timeout, self.forward(req, &sel)).await {
            Ok(resp) => over.answer(resp, max_body),
            Err(_) => text(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "route {} did not answer within {}ms (rule timeout)\n",
                    sel.route,
                    timeout.as_millis()
                ),
            ),
        }
    }

    /// Asks the control plane for a pod of a function scaled to zero and waits until the table
    /// has a ready endpoint for the request.
    async fn activate(
        &self,
        ns: &str,
        name: &str,
        host: &str,
        method: &str,
        path: &str,
    ) -> Result<Selected, Response<GatewayBody>> {
        let mut rebuilt = self.inner.rebuilt.subscribe();
        let mut asked = tokio::time::Instant::now() - Duration::from_secs(10);
        loop {
            if asked.elapsed() >= Duration::from_secs(1) {
                asked = tokio::time::Instant::now();
                if let Err(e) = self.inner.client.activate(ns, name).await {
                    tracing::warn!(function = %name, namespace = %ns, error = %e, "activation failed");
                    if matches!(&e, skiff_client::ClientError::InvalidPath { .. }) {
                        return Err(text(StatusCode::BAD_REQUEST, format!("{e}\n")));
                    }
                    if matches!(&e, skiff_client::ClientError::Api { status: 404, .. }) {
                        return Err(text(
                            StatusCode::NOT_FOUND,
                            format!("function {ns}/{name} no longer exists\n"),
                        ));
                    }
                }
            }
            if let Some(sel) = self.table().select_method(host, method, path)
                && has_ready(&sel)
            {
                return Ok(sel);
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), rebuilt.changed()).await;
        }
    }

    fn pick(&self, sel: &Selected, exclude: &[String]) -> Option<(String, EndpointAddress)> {
        let candidates: Vec<_> = sel
            .backends
            .iter()
            .filter(|b| b.weight > 0 && b.endpoints.iter().any(|e| takes(e, exclude)))
            .collect();
        let total: u64 = candidates.iter().map(|b| b.weight).sum();
        if total == 0 {
            return None;
        }
        let mut rng = rand::rng();
        let mut roll = rng.random_range(0..total);
        let backend = candidates.iter().find(|b| {
            if roll < b.weight {
                true
            } else {
                roll -= b.weight;
                false
            }
        })?;
        let inflight = self.inner.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let load = |e: &EndpointAddress| {
            inflight
                .get(&endpoint_key(e))
                .map(|c| c.load(Ordering::Relaxed))
                .unwrap_or(0)
        };
        let eps: Vec<&EndpointAddress> = backend.endpoints.iter().filter(|e| takes(e, exclude)).collect();
        // Uneven shares (a canary rollout): a weighted draw; otherwise the least loaded.
        if eps.iter().any(|e| e.weight.is_some()) {
            let total: u64 = eps.iter().map(|e| endpoint_weight(e)).sum();
            let mut roll = rng.random_range(0..total.max(1));
            let chosen = eps.iter().find(|e| {
                let w = endpoint_weight(e);
                if roll < w {
                    true
                } else {
                    roll -= w;
                    false
                }
            })?;
            return Some((backend.service.clone(), (*chosen).clone()));
        }
        let min = eps.iter().map(|e| load(e)).min()?;
        let best: Vec<&&EndpointAddress> = eps.iter().filter(|e| load(e) == min).collect();
        let chosen = best[rng.random_range(0..best.len())];
        Some((backend.service.clone(), (*chosen).clone()))
    }

    fn track(&self, e: &EndpointAddress) -> InFlight {
        let mut m = self.inner.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let c = m.entry(endpoint_key(e)).or_default().clone();
        c.fetch_add(1, Ordering::Relaxed);
        InFlight(c)
    }

    async fn forward(&self, req: Request<RequestBody>, sel: &Selected) -> Response<GatewayBody> {
        // Bodyless requests can be retried on another endpoint when a node is unreachable.
        let retryable = req.headers().get(header::CONTENT_LENGTH).is_none_or(|v| v == "0")
            && !req.headers().contains_key(header::TRANSFER_ENCODING);
        let (parts, body) = req.into_parts();
        let mut body: Option<RequestBody> = Some(body);
        let mut tried: Vec<String> = Vec::new();
        let mut last_error = String::new();
        loop {
            let Some((service, ep)) = self.pick(sel, &tried) else {
                if tried.is_empty() {
                    let services: Vec<&str> = sel.backends.iter().map(|b| b.service.as_str()).collect();
                    return text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "no ready endpoint for {} (route {}): its pods are not running or not ready; see `skiff get pods`\n",
                            services.join(", "),
                            sel.route
                        ),
                    );
                }
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "no endpoint of route {} could be reached: {last_error}\n",
                        sel.route
                    ),
                );
            };
            let b = match body.take() {
                Some(b) => b,
                None if retryable => Full::new(Bytes::new())
                    .map_err(|e: Infallible| match e {})
                    .boxed_unsync(),
                None => {
                    return text(
                        StatusCode::BAD_GATEWAY,
                        format!("endpoint unreachable: {last_error}\n"),
                    );
                }
            };
            let mut req = Request::from_parts(parts.clone(), b);
            let pod_id = format!("{}/{}", service.split('/').next().unwrap_or("default"), ep.pod);
            match HeaderValue::from_str(&pod_id) {
                Ok(v) => {
                    req.headers_mut().insert(POD_NAME_HEADER, v);
                }
                Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "invalid pod name\n".into()),
            }
            let _guard = self.track(&ep);
            if let Some(local) = self.inner.config.local.get(&ep.node) {
                let resp = local(req).await;
                if retryable && resp.headers().contains_key(NO_POD_HEADER) {
                    last_error = format!("{} is no longer on node {}", ep.pod, ep.node);
                    tried.push(ep.pod.clone());
                    continue;
                }
                return resp;
            }
            let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let uri = format!(
                "{}{}",
                skiff_pki::https::https_url(ep.address.trim_end_matches('/')),
                path
            );
            match uri.parse() {
                Ok(u) => *req.uri_mut() = u,
                Err(_) => {
                    return text(
                        StatusCode::BAD_GATEWAY,
                        format!("endpoint address {:?} is not a URL\n", ep.address),
                    );
                }
            }
            match self.inner.http.request(req).await {
                Ok(resp) if retryable && resp.headers().contains_key(NO_POD_HEADER) => {
                    // The pod stopped or moved since the table was built: try another endpoint.
                    last_error = format!("{} is no longer on node {}", ep.pod, ep.node);
                    tried.push(ep.pod.clone());
                }
                Ok(resp) => return resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()),
                Err(e) => {
                    last_error = format!("{} ({}): {e}", ep.pod, ep.address);
                    tracing::warn!(pod = %ep.pod, node = %ep.node, error = %e, "endpoint unreachable");
                    if !(retryable && e.is_connect()) {
                        return text(
                            StatusCode::BAD_GATEWAY,
                            format!("endpoint failed: {last_error}\n"),
                        );
                    }
                    tried.push(ep.pod.clone());
                }
            }
        }
    }
}

/// Whether any backend of the rule has a ready endpoint.
fn has_ready(sel: &Selected) -> bool {
    sel.backends.iter().any(|b| !b.endpoints.is_empty())
}

/// An endpoint's share of its service's traffic: its weight, or an even share.
fn endpoint_weight(e: &EndpointAddress) -> u64 {
    u64::from(e.weight.unwrap_or(EVEN_WEIGHT))
}

/// The weight of an endpoint without one (canary weights are in thousandths of a percent per pod).
const EVEN_WEIGHT: u32 = 1000;

/// Whether the endpoint may take this request: not tried yet, and a share above zero.
fn takes(e: &EndpointAddress, exclude: &[String]) -> bool {
    !exclude.contains(&e.pod) && e.weight != Some(0)
}

fn endpoint_key(e: &EndpointAddress) -> String {
    format!("{}@{}", e.pod, e.node)
}
