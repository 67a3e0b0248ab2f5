//! The [`Client`].
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use skiff_api::{ErrorBody, Kind, Object, ObjectList, WatchEvent};

use crate::error::ClientError;

/// A client of one Skiff server.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
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

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:7070`) sending `token`.
    ///
    /// # Errors
    /// [`ClientError::Config`] for a URL that is not http(s).
    pub fn new(base: &str, token: &str) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "server URL {base:?} must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(Client {
            base,
            token: token.to_owned(),
            http,
        })
    }

    /// The server base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn collection_url(&self, kind: Kind, namespace: Option<&str>) -> String {
        match (kind.namespaced(), namespace) {
            (true, Some(ns)) => format!("{}/api/v1/namespaces/{ns}/{}", self.base, kind.plural()),
            _ => format!("{}/api/v1/{}", self.base, kind.plural()),
        }
    }

    fn object_url(&self, kind: Kind, namespace: Option<&str>, name: &str) -> String {
        let ns = namespace.unwrap_or(skiff_api::DEFAULT_NAMESPACE);
        format!("{}/{name}", self.collection_url(kind, Some(ns)))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, ClientError> {
        let resp = self.send_raw(req, url).await?;
        let bytes = resp.bytes().await.map_err(|e| unreachable(url, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url: url.to_owned(),
            message: e.to_string(),
        })
    }

    async fn send_raw(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
            code: status.canonical_reason().unwrap_or("Error").replace(' ', ""),
            message: format!("{url}: HTTP {status}: {}", String::from_utf8_lossy(&bytes).trim()),
            details: None,
        });
        Err(match status.as_u16() {
            401 | 403 => ClientError::Unauthorized {
                url: self.base.clone(),
                message: body.message,
            },
            410 => ClientError::Gone {
                message: body.message,
            },
            s => ClientError::Api { status: s, body },
        })
    }

    /// One object.
    ///
    /// # Errors
    /// [`ClientError`]; 404 when missing.
    pub async fn get(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Result<Object, ClientError> {
        let url = self.object_url(kind, namespace, name);
        self.send(self.http.get(&url), &url).await
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
        let url = self.collection_url(kind, namespace);
        let mut req = self.http.get(&url);
        if let Some(o) = opts {
            req = req.query(&query(o));
        }
        self.send(req, &url).await
    }

    /// Creates an object (409 if it exists).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn create(&self, object: &Object) -> Result<Object, ClientError> {
        let url = self.collection_url(object.kind(), object.namespace());
        self.send(self.http.post(&url).json(object), &url).await
    }

    /// Replaces an object's spec and metadata (a `resourceVersion` in it must be current).
    ///
    /// # Errors
    /// [`ClientError`]; 409 on a stale `resourceVersion`.
    pub async fn replace(&self, object: &Object) -> Result<Object, ClientError> {
        let url = self.object_url(object.kind(), object.namespace(), &object.meta().name);
        self.send(self.http.put(&url).json(object), &url).await
    }

    /// Replaces an object's status.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn update_status(&self, object: &Object) -> Result<Object, ClientError> {
        let url = format!(
            "{}/status",
            self.object_url(object.kind(), object.namespace(), &object.meta().name)
        );
        self.send(self.http.put(&url).json(object), &url).await
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
        let url = self.object_url(kind, namespace, name);
        self.send(self.http.delete(&url), &url).await
    }

    /// Creates or updates every object in one all-or-nothing transaction.
    ///
    /// # Errors
    /// [`ClientError`]; on any error nothing was stored.
    pub async fn apply(&self, objects: &[Object]) -> Result<Vec<Object>, ClientError> {
        let url = format!("{}/api/v1/apply", self.base);
        let body = serde_json::json!({ "objects": objects });
        let r: ApplyResult = self.send(self.http.post(&url).json(&body), &url).await?;
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
        let url = format!("{}/api/v1/artifacts", self.base);
        let r: Uploaded = self.send(self.http.post(&url).body(bytes), &url).await?;
        Ok(r.digest)
    }

    /// Downloads an artifact by digest.
    ///
    /// # Errors
    /// [`ClientError`]; 404 when the store does not have it.
    pub async fn artifact(&self, digest: &str) -> Result<Bytes, ClientError> {
        let url = format!("{}/api/v1/artifacts/{digest}", self.base);
        let resp = self.send_raw(self.http.get(&url), &url).await?;
        resp.bytes().await.map_err(|e| unreachable(&url, &e))
    }

    /// The captured output of a pod's components.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn logs(&self, namespace: &str, pod: &str) -> Result<String, ClientError> {
        let url = format!("{}/log", self.object_url(Kind::Pod, Some(namespace), pod));
        let resp = self.send_raw(self.http.get(&url), &url).await?;
        let bytes = resp.bytes().await.map_err(|e| unreachable(&url, &e))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Checks that the server is up and the token is accepted.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] or [`ClientError::Unauthorized`].
    pub async fn ping(&self) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}/api/v1/cluster", self.base);
        self.send(self.http.get(&url), &url).await
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
        let url = self.collection_url(kind, namespace);
        let mut q = query(opts);
        q.push(("watch", "true".into()));
        q.push(("resourceVersion", resource_version.to_string()));
        let resp = self.send_raw(self.http.get(&url).query(&q), &url).await?;
        let mut buf: Vec<u8> = Vec::new();
        let mut body = resp.bytes_stream();
        let stream = async_stream(move |tx| async move {
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(unreachable(&url, &e)));
                        return;
                    }
                };
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let line = &line[..line.len() - 1];
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue; // keep-alive
                    }
                    let item = serde_json::from_slice::<WatchEvent>(line).map_err(|e| {
                        // The server ends a watch whose history is gone with an error line.
                        match serde_json::from_slice::<ErrorBody>(line) {
                            Ok(b) if b.code == "Gone" => ClientError::Gone { message: b.message },
                            Ok(b) => ClientError::Api { status: 500, body: b },
                            Err(_) => ClientError::Decode {
                                url: url.clone(),
                                message: e.to_string(),
                            },
                        }
                    });
                    let stop = item.is_err();
                    if tx.send(item).is_err() || stop {
                        return;
                    }
                }
            }
        });
        Ok(stream)
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

fn unreachable(url: &str, e: &reqwest::Error) -> ClientError {
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

/// Turns a producer task into a stream through an unbounded channel (the producer is paced by the
/// server's stream, and stops when the consumer drops the stream).
fn async_stream<T, F, Fut>(f: F) -> impl Stream<Item = T> + Send
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::UnboundedSender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(f(tx));
    let guard = AbortOnDrop(task);
    futures::stream::poll_fn(move |cx| {
        let _ = &guard;
        rx.poll_recv(cx)
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
