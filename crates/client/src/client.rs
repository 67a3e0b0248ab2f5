//! The [`Client`].
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use skiff_api::{ErrorBody, ErrorCode, Kind, Object, ObjectList, WatchEvent};

use crate::error::ClientError;
use crate::path::ApiPath;
use crate::servers::{https, parse_servers};

/// How long a request may wait for the server's answer headers before the client gives up on
/// that server (a paused or partitioned server accepts connections but never answers).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// A client of a Skiff control plane: one server, or several control nodes it fails over between.
///
/// Requests go to the server that answered last. When it cannot be reached, or it answers that it
/// has no leader to send the request to (503 `NoLeader`: certainly not applied), the request is
/// sent to the next server; reads also move on when a server does not answer in time. A write
/// whose answer never came is not retried (its outcome is unknown): it fails with
/// [`ClientError::Timeout`].
#[derive(Clone)]
pub struct Client {
    servers: Arc<[String]>,
    current: Arc<AtomicUsize>,
    token: String,
    timeout: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.servers)
            .field("current", &self.base())
            .finish()
    }
}

/// Filters for list and watch.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Label selector (`app=web,tier!=db`).
    pub label_selector: Option<String>,
    /// Field selector; `spec.nodeName=NAME` is supported for pods.
    pub field_selector: Option<String>,
}

/// What `POST /api/v1/apply` returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyResult {
    /// The stored objects, in the order sent.
    pub objects: Vec<Object>,
}

/// One request, kept so it can be sent again to another server.
/// A function's answer to [`Client::invoke`].
#[derive(Debug, Clone)]
pub struct Invocation {
    /// HTTP status: 200 with a payload, 204 without, 422/503/500/504 for the function's failures,
    /// 429 when its pods are full.
    pub status: u16,
    /// The payload's media type.
    pub content_type: Option<String>,
    /// `invalid`, `retryable`, `trap` or `timeout` when the call failed inside the function.
    pub function_error: Option<String>,
    /// The pod that answered.
    pub pod: Option<String>,
    /// The payload (or the failure's message).
    pub body: Bytes,
}

struct Req {
    method: Method,
    path: ApiPath,
    query: Vec<(&'static str, String)>,
    body: Option<(Bytes, &'static str)>,
}

impl Req {
    fn new(method: Method, path: ApiPath) -> Self {
        Req {
            method,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, ClientError> {
        let bytes = serde_json::to_vec(value).map_err(|e| ClientError::Config(e.to_string()))?;
        self.body = Some((bytes.into(), "application/json"));
        Ok(self)
    }

    fn idempotent(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }
}

impl Client {
    /// A client for `servers`: one base URL (e.g. `http://127.0.0.1:7070`) or several separated by
    /// commas (`http://10.0.0.1:7070,http://10.0.0.2:7070`), sending `token`.
    ///
    /// # Errors
    /// [`ClientError::Config`] for an empty list or a URL that is not http(s).
    pub fn new(servers: &str, token: &str) -> Result<Self, ClientError> {
        Self::build(servers, token, None)
    }

    /// A client of `https://` servers checked against the cluster CA in `ca_pem` (the server must
    /// present a control certificate of that CA), sending `token`.
    ///
    /// # Errors
    /// [`ClientError::Config`] when the PEM holds no usable CA certificate.
    pub fn with_cluster_ca(servers: &str, token: &str, ca_pem: &str) -> Result<Self, ClientError> {
        let tls = skiff_pki::https::https_client_config_ca(ca_pem, skiff_pki::https::Peer::Control)
            .map_err(|e| ClientError::Config(format!("the cluster CA: {e}")))?;
        Self::with_tls(servers, token, tls)
    }

    /// A client that speaks HTTPS with `tls` (a node's certificate and the cluster CA, see
    /// `skiff_pki::https::https_client_config`): `http://` server URLs are turned into
    /// `https://` (Skiff's API port serves both). `token` may be empty: the certificate then
    /// identifies the caller.
    ///
    /// # Errors
    /// As [`Client::new`].
    pub fn with_tls(servers: &str, token: &str, tls: rustls::ClientConfig) -> Result<Self, ClientError> {
        Self::build(servers, token, Some(tls))
    }

    fn build(servers: &str, token: &str, tls: Option<rustls::ClientConfig>) -> Result<Self, ClientError> {
        let list: Vec<String> = parse_servers(servers)?
            .into_iter()
            .map(|s| if tls.is_some() { https(&s) } else { s })
            .collect();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true);
        if let Some(tls) = tls {
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder.build().map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(Client {
            servers: list.into(),
            current: Arc::new(AtomicUsize::new(0)),
            token: token.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            http,
        })
    }

    /// The same client with another answer timeout (see [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server requests currently go to.
    pub fn base(&self) -> &str {
        let i = self.current.load(Ordering::Relaxed) % self.servers.len();
        &self.servers[i]
    }

    /// Every server this client knows, in the order given.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    fn collection_path(kind: Kind, namespace: Option<&str>) -> Result<ApiPath, ClientError> {
        Ok(match (kind.namespaced(), namespace) {
            (true, Some(ns)) => namespaced(ns)?.lit(kind.plural()),
            _ => ApiPath::api().lit(kind.plural()),
        })
    }

    fn object_path(kind: Kind, namespace: Option<&str>, name: &str) -> Result<ApiPath, ClientError> {
        let ns = namespace.unwrap_or(skiff_api::DEFAULT_NAMESPACE);
        Self::collection_path(kind, Some(ns))?.seg(&format!("{} name", kind.as_str()), name)
    }

    async fn send<T: DeserializeOwned>(&self, req: Req) -> Result<T, ClientError> {
        let (resp, url) = self.send_raw(req).await?;
        let bytes = resp.bytes().await.map_err(|e| unreachable(&url, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url,
            message: e.to_string(),
        })
    }

    /// Sends `req` to the current server, failing over to the others where that is safe; returns
    /// the successful response and the URL it came from.
    async fn send_raw(&self, req: Req) -> Result<(reqwest::Response, String), ClientError> {
        let n = self.servers.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..n {
            let i = (start + attempt) % n;
            let base = &self.servers[i];
            let url = format!("{base}{}", req.path.as_str());
            let mut rb = self.http.request(req.method.clone(), &url);
            if !self.token.is_empty() {
                rb = rb.bearer_auth(&self.token);
            }
            if !req.query.is_empty() {
                rb = rb.query(&req.query);
            }
            if let Some((body, content_type)) = &req.body {
                rb = rb
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    .body(body.clone());
            }
            let resp = match tokio::time::timeout(self.timeout, rb.send()).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) if e.is_connect() => {
                    // Never reached the server: safe to try another one.
                    last = Some(unreachable(base, &e));
                    continue;
                }
                Ok(Err(e)) => return Err(unreachable(base, &e)),
                Err(_) => {
                    let err = ClientError::Timeout {
                        url: url.clone(),
                        millis: self.timeout.as_millis() as u64,
                    };
                    if req.idempotent() {
                        last = Some(err);
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = resp.status();
            if status.is_success() {
                self.current.store(i, Ordering::Relaxed);
                return Ok((resp, url));
            }
            let err = error_from(resp, &url, base).await;
            if let ClientError::Api { status: 503, body } = &err
                && body.code == ErrorCode::NoLeader
                && attempt + 1 < n
            {
                last = Some(err);
                continue;
            }
            self.current.store(i, Ordering::Relaxed);
            return Err(err);
        }
        Err(last.unwrap_or_else(|| ClientError::Config("no server to send to".into())))
    }

    /// One object.
    ///
    /// # Errors
    /// [`ClientError`]; 404 when missing.
    pub async fn get(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Result<Object, ClientError> {
        self.send(Req::new(Method::GET, Self::object_path(kind, namespace, name)?))
            .await
    }

    /// Objects of a kind (in one namespace, or all when `None`).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        opts: Option<&ListOptions>,
    ) -> Result<ObjectList, ClientError> {
        let mut req = Req::new(Method::GET, Self::collection_path(kind, namespace)?);
        if let Some(o) = opts {
            req.query = query(o);
        }
        self.send(req).await
    }

    /// Creates an object (409 if it exists).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn create(&self, object: &Object) -> Result<Object, ClientError> {
        let path = Self::collection_path(object.kind(), object.namespace())?;
        self.send(Req::new(Method::POST, path).json(object)?).await
    }

    /// Replaces an object's spec and metadata (a `resourceVersion` in it must be current).
    ///
    /// # Errors
    /// [`ClientError`]; 409 on a stale `resourceVersion`.
    pub async fn replace(&self, object: &Object) -> Result<Object, ClientError> {
        let path = Self::object_path(object.kind(), object.namespace(), &object.meta().name)?;
        self.send(Req::new(Method::PUT, path).json(object)?).await
    }

    /// Replaces an object's status.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn update_status(&self, object: &Object) -> Result<Object, ClientError> {
        let path = Self::object_path(object.kind(), object.namespace(), &object.meta().name)?.lit("status");
        self.send(Req::new(Method::PUT, path).json(object)?).await
    }

    /// Deletes an object, returning its last state.
    ///
    /// # Errors
    /// [`ClientError`]; 404 when missing.
    pub async fn delete(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Object, ClientError> {
        self.send(Req::new(
            Method::DELETE,
            Self::object_path(kind, namespace, name)?,
        ))
        .await
    }

    /// Creates or updates every object in one all-or-nothing transaction.
    ///
    /// # Errors
    /// [`ClientError`]; on any error nothing was stored.
    pub async fn apply(&self, objects: &[Object]) -> Result<Vec<Object>, ClientError> {
        let body = serde_json::json!({ "objects": objects });
        let r: ApplyResult = self
            .send(Req::new(Method::POST, ApiPath::api().lit("apply")).json(&body)?)
            .await?;
        Ok(r.objects)
    }

    /// Uploads a component to the artifact store, returning its `sha256:` digest.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn upload_artifact(&self, bytes: Vec<u8>) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Uploaded {
            digest: String,
        }
        let mut req = Req::new(Method::POST, ApiPath::api().lit("artifacts"));
        req.body = Some((bytes.into(), "application/wasm"));
        let r: Uploaded = self.send(req).await?;
        Ok(r.digest)
    }

    /// Downloads an artifact by digest.
    ///
    /// # Errors
    /// [`ClientError`]; 404 when the store does not have it.
    pub async fn artifact(&self, digest: &str) -> Result<Bytes, ClientError> {
        let path = ApiPath::api().lit("artifacts").seg("artifact digest", digest)?;
        let req = Req::new(Method::GET, path);
        let (resp, url) = self.send_raw(req).await?;
        resp.bytes().await.map_err(|e| unreachable(&url, &e))
    }

    /// The captured output of a pod's components.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn logs(&self, namespace: &str, pod: &str) -> Result<String, ClientError> {
        let path = Self::object_path(Kind::Pod, Some(namespace), pod)?.lit("log");
        let (resp, url) = self.send_raw(Req::new(Method::GET, path)).await?;
        let bytes = resp.bytes().await.map_err(|e| unreachable(&url, &e))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Checks that the server is up and the token is accepted; returns the cluster summary.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] or [`ClientError::Unauthorized`].
    pub async fn ping(&self) -> Result<serde_json::Value, ClientError> {
        self.send(Req::new(Method::GET, ApiPath::api().lit("cluster")))
            .await
    }

    /// POSTs JSON to any API path and decodes the JSON answer.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &ApiPath,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(Req::new(Method::POST, path.clone()).json(body)?).await
    }

    /// Publishes events to a topic (committed through Raft before this returns).
    ///
    /// # Errors
    /// [`ClientError`]; 429 `TopicFull` when the topic's subscribers are too far behind.
    pub async fn publish(
        &self,
        namespace: &str,
        topic: &str,
        events: &[skiff_api::CloudEvent],
    ) -> Result<Vec<skiff_api::PublishResult>, ClientError> {
        let path = namespaced(namespace)?
            .lit("topics")
            .seg("topic", topic)?
            .lit("events");
        self.post_json(&path, events).await
    }

    /// Asks for a pod of a function scaled to zero (what a gateway does for a request that
    /// found none).
    ///
    /// # Errors
    /// [`ClientError`]; 404 when the function does not exist.
    pub async fn activate(&self, namespace: &str, function: &str) -> Result<(), ClientError> {
        let path = namespaced(namespace)?
            .lit("functions")
            .seg("function name", function)?
            .lit("activate");
        let (resp, url) = self
            .send_raw(Req::new(Method::POST, path).json(&serde_json::json!({}))?)
            .await?;
        resp.bytes().await.map(drop).map_err(|e| unreachable(&url, &e))
    }

    /// Calls a function once with `data` (sent as `content_type`) and returns its answer as it
    /// is, failures of the function included (only failures to reach it are errors).
    ///
    /// # Errors
    /// [`ClientError`] when no control node answers, or for API errors (unknown function).
    pub async fn invoke(
        &self,
        namespace: &str,
        function: &str,
        data: Vec<u8>,
        content_type: &str,
        headers: &[(String, String)],
    ) -> Result<Invocation, ClientError> {
        let path = namespaced(namespace)?
            .lit("functions")
            .seg("function name", function)?
            .lit("invoke");
        let base = &self.servers[self.current.load(Ordering::Relaxed) % self.servers.len()];
        let url = format!("{base}{path}");
        let mut rb = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(data);
        if !self.token.is_empty() {
            rb = rb.bearer_auth(&self.token);
        }
        for (k, v) in headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        let resp = tokio::time::timeout(self.timeout.max(Duration::from_secs(60)), rb.send())
            .await
            .map_err(|_| ClientError::Timeout {
                url: url.clone(),
                millis: self.timeout.max(Duration::from_secs(60)).as_millis() as u64,
            })?
            .map_err(|e| unreachable(base, &e))?;
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let function_error = header(skiff_api::FUNCTION_ERROR_HEADER);
        let is_api_error = !resp.status().is_success()
            && function_error.is_none()
            && header(skiff_api::OVERLOADED_HEADER).is_none()
            && header("x-skiff-pod").is_none();
        if is_api_error {
            return Err(error_from(resp, &url, base).await);
        }
        let status = resp.status().as_u16();
        let content_type = header(reqwest::header::CONTENT_TYPE.as_str());
        let pod = header("x-skiff-pod");
        let body = resp.bytes().await.map_err(|e| unreachable(&url, &e))?;
        Ok(Invocation {
            status,
            content_type,
            function_error,
            pod,
            body,
        })
    }

    fn kv_store_path(namespace: &str, store: &str) -> Result<ApiPath, ClientError> {
        namespaced(namespace)?
            .lit("keyvalue")
            .seg("key-value store name", store)
    }

    fn kv_path(namespace: &str, store: &str, key: &str) -> Result<ApiPath, ClientError> {
        Self::kv_store_path(namespace, store)?.lit("keys").seg("key", key)
    }

    /// The key-value stores of a namespace, or of all with `None`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn kv_stores(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<skiff_api::KeyValueStore>, ClientError> {
        match namespace {
            Some(ns) => self.get_json(&namespaced(ns)?.lit("keyvalue")).await,
            None => self.get_json(&ApiPath::api().lit("keyvalue")).await,
        }
    }

    /// One page of a store's keys that start with `prefix`, after `after`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn kv_keys(
        &self,
        namespace: &str,
        store: &str,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<skiff_api::KeyPage, ClientError> {
        let mut req = Req::new(Method::GET, Self::kv_store_path(namespace, store)?);
        req.query.push(("prefix", prefix.to_owned()));
        if let Some(a) = after {
            req.query.push(("after", a.to_owned()));
        }
        self.send(req).await
    }

    /// The value of a key, `None` when it is absent.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn kv_get(
        &self,
        namespace: &str,
        store: &str,
        key: &str,
    ) -> Result<Option<Bytes>, ClientError> {
        let req = Req::new(Method::GET, Self::kv_path(namespace, store, key)?);
        match self.send_raw(req).await {
            Ok((resp, url)) => resp.bytes().await.map(Some).map_err(|e| unreachable(&url, &e)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sets a key (committed through Raft before this returns).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn kv_set(
        &self,
        namespace: &str,
        store: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), ClientError> {
        let mut req = Req::new(Method::PUT, Self::kv_path(namespace, store, key)?);
        req.body = Some((value.into(), "application/octet-stream"));
        self.send_raw(req).await.map(drop)
    }

    /// Deletes a key (nothing happens when it is absent).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn kv_delete(&self, namespace: &str, store: &str, key: &str) -> Result<(), ClientError> {
        let req = Req::new(Method::DELETE, Self::kv_path(namespace, store, key)?);
        self.send_raw(req).await.map(drop)
    }

    /// Adds `delta` to the integer a key holds (0 when absent) and returns the new value.
    ///
    /// # Errors
    /// [`ClientError`]; 422 when the key holds something else than a decimal integer.
    pub async fn kv_increment(
        &self,
        namespace: &str,
        store: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64, ClientError> {
        #[derive(Deserialize)]
        struct Value {
            value: i64,
        }
        let v: Value = self
            .post_json(
                &Self::kv_path(namespace, store, key)?,
                &serde_json::json!({ "delta": delta }),
            )
            .await?;
        Ok(v.value)
    }

    /// GETs any API path (e.g. `/api/v1/members`) and decodes its JSON.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn get_json<T: DeserializeOwned>(&self, path: &ApiPath) -> Result<T, ClientError> {
        self.send(Req::new(Method::GET, path.clone())).await
    }

    /// GETs any API path with query parameters and decodes its JSON.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn get_json_query<T: DeserializeOwned>(
        &self,
        path: &ApiPath,
        query: &[(&'static str, String)],
    ) -> Result<T, ClientError> {
        let mut req = Req::new(Method::GET, path.clone());
        req.query = query.to_vec();
        self.send(req).await
    }

    /// DELETEs any API path and decodes the JSON answer.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn delete_path<T: DeserializeOwned>(&self, path: &ApiPath) -> Result<T, ClientError> {
        self.send(Req::new(Method::DELETE, path.clone())).await
    }

    /// GETs any API path and returns the raw bytes (e.g. `/api/v1/snapshot`).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn get_bytes(&self, path: &ApiPath) -> Result<Bytes, ClientError> {
        let (resp, url) = self.send_raw(Req::new(Method::GET, path.clone())).await?;
        resp.bytes().await.map_err(|e| unreachable(&url, &e))
    }

    /// Streams changes to objects of `kind` after `resource_version`, until the server closes the
    /// stream. Each item is one event, or the error that ended the stream.
    ///
    /// # Errors
    /// [`ClientError::Gone`] when the revision is older than the server's history.
    pub async fn watch(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        opts: &ListOptions,
        resource_version: u64,
    ) -> Result<impl Stream<Item = Result<WatchEvent, ClientError>> + Send + use<>, ClientError> {
        let mut req = Req::new(Method::GET, Self::collection_path(kind, namespace)?);
        req.query = query(opts);
        req.query.push(("watch", "true".into()));
        req.query.push(("resourceVersion", resource_version.to_string()));
        let (resp, url) = self.send_raw(req).await?;
        let mut buf: Vec<u8> = Vec::new();
        let mut body = resp.bytes_stream();
        let stream = async_stream(move |tx| async move {
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(unreachable(&url, &e))).await;
                        return;
                    }
                };
                buf.extend_from_slice(&chunk);
                if buf.len() > MAX_WATCH_LINE && !buf.contains(&b'\n') {
                    let message = format!("a watch event longer than {MAX_WATCH_LINE} bytes");
                    let _ = tx
                        .send(Err(ClientError::Decode {
                            url: url.clone(),
                            message,
                        }))
                        .await;
                    return;
                }
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let line = &line[..line.len() - 1];
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue; // keep-alive
                    }
                    let item = serde_json::from_slice::<WatchEvent>(line).map_err(|e| {
                        // The server ends a watch whose history is gone with an error line.
                        match serde_json::from_slice::<ErrorBody>(line) {
                            Ok(b) if b.code == ErrorCode::Gone => ClientError::Gone { message: b.message },
                            Ok(b) => ClientError::Api { status: 500, body: b },
                            Err(_) => ClientError::Decode {
                                url: url.clone(),
                                message: e.to_string(),
                            },
                        }
                    });
                    let stop = item.is_err();
                    if tx.send(item).await.is_err() || stop {
                        return;
                    }
                }
            }
        });
        Ok(stream)
    }
}

/// Turns an error response into a [`ClientError`].
pub(crate) async fn error_from(resp: reqwest::Response, url: &str, base: &str) -> ClientError {
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap_or_default();
    let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
        code: ErrorCode::from(status.canonical_reason().unwrap_or("Error").replace(' ', "")),
        message: format!("{url}: HTTP {status}: {}", String::from_utf8_lossy(&bytes).trim()),
        details: None,
    });
    match status.as_u16() {
        // 403 is an authenticated caller asking for more than its role allows: the server's
        // message says what; it is not a token problem.
        401 => ClientError::Unauthorized {
            url: base.to_owned(),
            message: body.message,
        },
        410 => ClientError::Gone {
            message: body.message,
        },
        s => ClientError::Api { status: s, body },
    }
}

fn query(o: &ListOptions) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(l) = &o.label_selector {
        q.push(("labelSelector", l.clone()));
    }
    if let Some(f) = &o.field_selector {
        q.push(("fieldSelector", f.clone()));
    }
    q
}

pub(crate) fn unreachable(url: &str, e: &reqwest::Error) -> ClientError {
    let mut message = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        message = format!("{message}: {s}");
        src = s.source();
    }
    ClientError::Unreachable {
        url: url.to_owned(),
        message,
    }
}

/// Turns a producer task into a stream through a bounded channel: the producer waits while
/// the consumer is [`STREAM_QUEUE`] items behind, and stops when the consumer drops the stream.
fn async_stream<T, F, Fut>(f: F) -> impl Stream<Item = T> + Send
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
    let task = tokio::spawn(f(tx));
    let guard = AbortOnDrop(task);
    futures::stream::poll_fn(move |cx| {
        let _ = &guard;
        rx.poll_recv(cx)
    })
}

/// Items a stream's producer may be ahead of its consumer.
const STREAM_QUEUE: usize = 256;
/// Longest watch event line read (an object is far smaller; a server that sends no newline
/// must not grow the buffer without end).
const MAX_WATCH_LINE: usize = 64 << 20;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `/api/v1/namespaces/{namespace}`.
fn namespaced(namespace: &str) -> Result<ApiPath, ClientError> {
    ApiPath::api().lit("namespaces").seg("namespace", namespace)
}
