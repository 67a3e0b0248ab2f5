//! [`ArtifactCache`]: the node's content-addressed cache of components, and the three places they
//! come from: the cluster's artifact store (by digest), a URL pinned by a digest, and an OCI
//! registry.
//!
//! Layout of `<data dir>/artifacts/`:
//!
//! ```text
//! <sha256 hex>        the component's bytes; the name is their sha256
//! <sha256 hex>.oci    for an image pinned by manifest digest (the name): the hex of its wasm layer
//! ```
//!
//! Bytes are verified before they are written and again when read back; a download whose digest
//! differs from the pin is refused (`ArtifactDigestMismatch`) and nothing is written.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use skiff_api::{ImageRef, WasmSpec, is_sha256_digest};
use skiff_client::Client;

use crate::failure::{FailureKind, StartFailure};

/// Largest component downloaded from a URL or a registry.
pub(crate) const MAX_ARTIFACT_BYTES: usize = 64 << 20;
/// Largest image manifest read from a registry.
const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Media types of a wasm layer in an OCI image manifest.
const WASM_LAYER_TYPES: [&str; 2] = ["application/wasm", "application/vnd.wasm.content.layer.v1+wasm"];
/// What the agent accepts as an image manifest.
const MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Why an artifact could not be provided: a start failure of one of the artifact kinds
/// (`InvalidSpec`, `ArtifactNotFound`, `ArtifactDigestMismatch`, `ArtifactTooLarge`,
/// `InvalidImage`), which becomes the pod's `status.reason`.
pub(crate) type ArtifactError = StartFailure;

fn err(kind: FailureKind, message: String) -> ArtifactError {
    StartFailure::new(kind, message)
}

fn not_found(message: String) -> ArtifactError {
    err(FailureKind::ArtifactNotFound, message)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The 64 hex digits of a `sha256:` digest, or `None` when it is not one (a name in the cache
/// must never be anything else).
fn hex_of(digest: &str) -> Option<&str> {
    is_sha256_digest(digest).then(|| &digest["sha256:".len()..])
}

/// The node's artifact cache (see the module docs).
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    compiled_dir: PathBuf,
    client: Client,
    http: reqwest::Client,
    max_bytes: usize,
}

impl ArtifactCache {
    /// A cache in `dir` (created by the caller); `compiled_dir` holds the runtime's compiled code
    /// (`<hex>.cwasm` and `<hex>.meta`), dropped together with the artifact.
    pub(crate) fn new(dir: PathBuf, compiled_dir: PathBuf, client: Client) -> Self {
        ArtifactCache {
            dir,
            compiled_dir,
            client,
            // A server that stops answering fails the pod instead of holding its start forever.
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .timeout(std::time::Duration::from_secs(300))
                .build()
                .unwrap_or_default(),
            max_bytes: MAX_ARTIFACT_BYTES,
        }
    }

    /// The digests a spec pins, as the garbage collector keeps them: `wasm.digest` and the
    /// manifest digest of `wasm.image`.
    pub(crate) fn pins(wasm: &WasmSpec) -> impl Iterator<Item = String> {
        let image = wasm
            .image
            .as_deref()
            .and_then(|i| ImageRef::parse(i).ok())
            .and_then(|r| r.digest);
        wasm.digest.clone().into_iter().chain(image)
    }

    /// The component bytes of `wasm`: from the cache, else fetched, verified and cached.
    pub(crate) async fn get(&self, wasm: &WasmSpec) -> Result<Vec<u8>, ArtifactError> {
        let pinned = match &wasm.digest {
            Some(d) => Some(hex_of(d).ok_or_else(|| {
                err(
                    FailureKind::InvalidSpec,
                    format!("wasm.digest {d:?} is not sha256:<64 lowercase hex digits>"),
                )
            })?),
            None => None,
        };
        if let Some(hex) = pinned
            && let Some(bytes) = self.cached(hex).await
        {
            return Ok(bytes);
        }
        if let Some(url) = &wasm.url {
            let Some(hex) = pinned else {
                return Err(err(
                    FailureKind::InvalidSpec,
                    format!("wasm.url {url:?} has no pinned digest: add wasm.digest"),
                ));
            };
            let bytes = self.download(url, None).await?;
            return self.verified(bytes, hex, url).await;
        }
        if let Some(image) = &wasm.image {
            return self.pull(image, pinned).await;
        }
        if let (Some(digest), Some(hex)) = (&wasm.digest, pinned) {
            let bytes = self
                .client
                .artifact(digest)
                .await
                .map_err(|e| not_found(format!("cannot fetch {digest} from the control plane: {e}")))?;
            return self
                .verified(bytes.to_vec(), hex, "the control plane's artifact store")
                .await;
        }
        Err(err(
            FailureKind::InvalidSpec,
            "wasm.path must be uploaded by `skiff apply`; the node needs wasm.digest, wasm.url with \
             wasm.digest, or wasm.image"
                .into(),
        ))
    }

    /// The cached bytes named `hex`, if present and intact.
    async fn cached(&self, hex: &str) -> Option<Vec<u8>> {
        let bytes = tokio::fs::read(self.dir.join(hex)).await.ok()?;
        (sha256_hex(&bytes) == hex).then_some(bytes)
    }

    /// Checks `bytes` against `hex` and caches them; a mismatch caches nothing.
    async fn verified(&self, bytes: Vec<u8>, hex: &str, from: &str) -> Result<Vec<u8>, ArtifactError> {
        let actual = sha256_hex(&bytes);
        if actual != hex {
            return Err(mismatch(hex, &actual, from));
        }
        self.write(hex, &bytes).await;
        Ok(bytes)
    }

    /// Writes `bytes` under `name` through a rename; a failure is logged (the pod still runs,
    /// but a restart without the network will not find it).
    async fn write(&self, name: &str, bytes: &[u8]) {
        static TMP: AtomicU64 = AtomicU64::new(0);
        let path = self.dir.join(name);
        let n = TMP.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("{name}.tmp-{}-{n}", std::process::id()));
        let written = async {
            tokio::fs::write(&tmp, bytes).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = written.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            tracing::warn!(path = %path.display(), error = %e, "cannot cache the artifact; a restart without the network will not find it");
        }
    }

    /// GETs `url`, streaming, refusing more than `limit` (default: the artifact cap) bytes.
    async fn download(&self, url: &str, accept: Option<&str>) -> Result<Vec<u8>, ArtifactError> {
        self.download_capped(url, accept, self.max_bytes).await
    }

    async fn download_capped(
        &self,
        url: &str,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<Vec<u8>, ArtifactError> {
        let mut req = self.http.get(url);
        if let Some(a) = accept {
            req = req.header(reqwest::header::ACCEPT, a);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| not_found(format!("cannot download {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(not_found(format!("downloading {url}: HTTP {}", resp.status())));
        }
        let too_large = |size: u64| {
            err(
                FailureKind::ArtifactTooLarge,
                format!("{url} is {size} bytes or more, above the limit of {limit}"),
            )
        };
        if let Some(len) = resp.content_length()
            && len > limit as u64
        {
            return Err(too_large(len));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| not_found(format!("downloading {url}: {e}")))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(too_large((bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Pulls the wasm layer of `image` (OCI distribution API), pinned by the reference's manifest
    /// digest and/or `pinned` (the layer's digest).
    async fn pull(&self, image: &str, pinned: Option<&str>) -> Result<Vec<u8>, ArtifactError> {
        let r = ImageRef::parse(image)
            .map_err(|why| err(FailureKind::InvalidSpec, format!("wasm.image {image:?} {why}")))?;
        let manifest_hex = r.digest.as_deref().and_then(hex_of);
        if pinned.is_none() && manifest_hex.is_none() {
            return Err(err(
                FailureKind::InvalidSpec,
                format!("wasm.image {image:?} is not pinned: add @sha256:... or wasm.digest"),
            ));
        }
        // Pinned by manifest digest only: the link file names the layer this manifest resolved to.
        if pinned.is_none()
            && let Some(m) = manifest_hex
            && let Ok(layer) = tokio::fs::read_to_string(self.dir.join(format!("{m}.oci"))).await
            && let Some(bytes) = self.cached(layer.trim()).await
        {
            return Ok(bytes);
        }
        let base = format!("{}://{}/v2/{}", scheme(&r.registry), r.registry, r.repository);
        let manifest_url = format!("{base}/manifests/{}", r.reference());
        let manifest = self
            .download_capped(&manifest_url, Some(MANIFEST_ACCEPT), MAX_MANIFEST_BYTES)
            .await?;
        if let Some(m) = manifest_hex {
            let actual = sha256_hex(&manifest);
            if actual != m {
                return Err(mismatch(m, &actual, &manifest_url));
            }
        }
        let layer =
            wasm_layer(&manifest).map_err(|why| err(FailureKind::InvalidImage, format!("{image}: {why}")))?;
        let layer_hex = hex_of(&layer.digest).ok_or_else(|| {
            err(
                FailureKind::InvalidImage,
                format!("{image}: layer digest {:?} is not a sha256 digest", layer.digest),
            )
        })?;
        if let Some(p) = pinned
            && p != layer_hex
        {
            return Err(mismatch(p, layer_hex, &manifest_url));
        }
        if layer.size > self.max_bytes as u64 {
            return Err(err(
                FailureKind::ArtifactTooLarge,
                format!(
                    "{image}: the wasm layer is {} bytes, above the limit of {}",
                    layer.size, self.max_bytes
                ),
            ));
        }
        let bytes = match self.cached(layer_hex).await {
            Some(b) => b,
            None => {
                let blob_url = format!("{base}/blobs/{}", layer.digest);
                let bytes = self.download(&blob_url, None).await?;
                self.verified(bytes, layer_hex, &blob_url).await?
            }
        };
        if let Some(m) = manifest_hex {
            self.write(&format!("{m}.oci"), layer_hex.as_bytes()).await;
        }
        Ok(bytes)
    }

    /// Removes every cached artifact (and its compiled code) that no digest of `in_use` pins;
    /// returns the `sha256:` digests removed. `in_use` holds [`pins`](Self::pins) of every pod
    /// the node stores or runs. Temporary files of writes in progress are left alone.
    pub(crate) async fn collect_garbage(&self, in_use: &HashSet<String>) -> std::io::Result<Vec<String>> {
        let mut keep: HashSet<String> = in_use
            .iter()
            .filter_map(|d| hex_of(d))
            .map(str::to_owned)
            .collect();
        for hex in keep.clone() {
            if let Ok(layer) = tokio::fs::read_to_string(self.dir.join(format!("{hex}.oci"))).await {
                keep.insert(layer.trim().to_owned());
            }
        }
        let mut removed = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (stem, link) = match name.strip_suffix(".oci") {
                Some(s) => (s, true),
                None => (name.as_str(), false),
            };
            if !is_sha256_digest(&format!("sha256:{stem}")) || keep.contains(stem) {
                continue;
            }
            remove(&entry.path()).await;
            if !link {
                remove(&self.compiled_dir.join(format!("{stem}.cwasm"))).await;
                remove(&self.compiled_dir.join(format!("{stem}.meta"))).await;
                removed.push(format!("sha256:{stem}"));
            }
        }
        Ok(removed)
    }
}

async fn remove(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove an unused artifact"),
    }
}

fn mismatch(expected: &str, actual: &str, from: &str) -> ArtifactError {
    err(
        FailureKind::ArtifactDigestMismatch,
        format!(
            "bytes from {from} have digest sha256:{actual}, not the pinned sha256:{expected}: \
             the artifact changed or the pin is wrong; nothing was cached"
        ),
    )
}

/// `http` for a registry on this machine (a local test or mirror registry), `https` otherwise.
fn scheme(registry: &str) -> &'static str {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(registry, |(h, _)| h);
    if host == "localhost" || host.starts_with("127.") || host == "[::1]" {
        "http"
    } else {
        "https"
    }
}

struct Layer {
    digest: String,
    size: u64,
}

/// The wasm layer of an image manifest: the one with a wasm media type, else the only layer.
fn wasm_layer(manifest: &[u8]) -> Result<Layer, String> {
    let v: serde_json::Value =
        serde_json::from_slice(manifest).map_err(|e| format!("the image manifest is not JSON: {e}"))?;
    let layers = v["layers"]
        .as_array()
        .ok_or("the image manifest has no layers (is it an index? give a single-platform manifest)")?;
    let pick = layers
        .iter()
        .find(|l| {
            l["mediaType"]
                .as_str()
                .is_some_and(|t| WASM_LAYER_TYPES.contains(&t))
        })
        .or(if layers.len() == 1 { layers.first() } else { None })
        .ok_or_else(|| {
            format!(
                "no wasm layer among {} layers: expected one with mediaType {} or {}",
                layers.len(),
                WASM_LAYER_TYPES[0],
                WASM_LAYER_TYPES[1]
            )
        })?;
    Ok(Layer {
        digest: pick["digest"].as_str().unwrap_or_default().to_owned(),
        size: pick["size"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASM: &[u8] = b"\0asm\x0d\0\x01\0";

    fn cache(dir: &Path) -> ArtifactCache {
        let artifacts = dir.join("artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        let client = Client::new("http://127.0.0.1:9", "token").unwrap();
        ArtifactCache::new(artifacts, dir.join("compiled"), client)
    }

    async fn serve(bytes: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/c.wasm", axum::routing::get(move || async move { bytes }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/c.wasm")
    }

    fn spec(url: &str, digest: String) -> WasmSpec {
        WasmSpec {
            url: Some(url.into()),
            digest: Some(digest),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn url_with_a_wrong_digest_is_refused_and_nothing_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let url = serve(WASM).await;
        let wrong = format!("sha256:{}", "0".repeat(64));
        let e = cache.get(&spec(&url, wrong)).await.unwrap_err();
        assert_eq!(e.reason(), "ArtifactDigestMismatch");
        assert!(
            e.message.contains(&url) && e.message.contains(&sha256_hex(WASM)),
            "{}",
            e.message
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("artifacts")).unwrap().count(),
            0
        );

        let right = format!("sha256:{}", sha256_hex(WASM));
        assert_eq!(cache.get(&spec(&url, right)).await.unwrap(), WASM);
        assert!(dir.path().join("artifacts").join(sha256_hex(WASM)).exists());
    }

    #[tokio::test]
    async fn garbage_collection_keeps_pinned_artifacts_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let (m, layer) = ("c".repeat(64), "d".repeat(64));
        std::fs::create_dir_all(dir.path().join("compiled")).unwrap();
        for name in [&a, &b, &layer] {
            std::fs::write(dir.path().join("artifacts").join(name), b"x").unwrap();
            std::fs::write(dir.path().join("compiled").join(format!("{name}.cwasm")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("artifacts").join(format!("{m}.oci")), &layer).unwrap();
        std::fs::write(dir.path().join("artifacts").join(format!("{b}.tmp-1-1")), b"x").unwrap();
        let in_use: HashSet<String> = [format!("sha256:{a}"), format!("sha256:{m}")].into();
        let removed = cache.collect_garbage(&in_use).await.unwrap();
        assert_eq!(removed, [format!("sha256:{b}")]);
        let left = |d: &str| {
            let mut v: Vec<String> = std::fs::read_dir(dir.path().join(d))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            left("artifacts"),
            [
                a.clone(),
                format!("{b}.tmp-1-1"),
                format!("{m}.oci"),
                layer.clone()
            ]
        );
        assert_eq!(left("compiled"), [format!("{a}.cwasm"), format!("{layer}.cwasm")]);
        // Nothing pinned any more: everything but the write in progress goes.
        cache.collect_garbage(&HashSet::new()).await.unwrap();
        assert_eq!(left("artifacts"), [format!("{b}.tmp-1-1")]);
    }
}
