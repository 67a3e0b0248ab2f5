//! The content-addressed image store: manifests, configs and layers by `sha256`, each verified
//! against its digest before it is kept; pulled from registries or imported from OCI image-layout
//! directories and tarballs.
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::OciError;
use crate::unpack::{UnpackLimits, UnpackOptions, UnpackStats, unpack_layers};

/// Largest manifest, index or image config accepted.
const MAX_JSON_BYTES: u64 = 4 << 20;

/// An image whose manifest, config and layers are all in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImage {
    /// The reference it was pulled or imported as.
    pub reference: String,
    /// `sha256:…` of the image manifest.
    pub manifest_digest: String,
    /// What the image says to run.
    pub config: RunConfig,
    /// Layer digests, lowest first.
    pub layers: Vec<String>,
}

/// The runnable part of an image config (`config` in the OCI image config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// `Entrypoint`.
    #[serde(default, rename = "Entrypoint")]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    #[serde(default, rename = "Cmd")]
    pub cmd: Option<Vec<String>>,
    /// `Env` (`KEY=VALUE`).
    #[serde(default, rename = "Env")]
    pub env: Option<Vec<String>>,
    /// `WorkingDir`.
    #[serde(default, rename = "WorkingDir")]
    pub working_dir: Option<String>,
    /// `User`.
    #[serde(default, rename = "User")]
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ImageConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_of(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(hex)
}

/// Where images live on this node.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    insecure: Vec<String>,
}

impl ImageStore {
    /// A store under `root` (`blobs/sha256/…`). Registries in `insecure` (`host:port`) are spoken
    /// to over plain HTTP (local registries); every other one over HTTPS.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(root: impl Into<PathBuf>, insecure: Vec<String>) -> Result<Self, OciError> {
        let root = root.into();
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(OciError::io(&blobs))?;
        Ok(ImageStore { root, insecure })
    }

    /// The path of a stored blob.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        hex_of(digest).map(|h| self.root.join("blobs/sha256").join(h))
    }

    fn has(&self, digest: &str) -> bool {
        self.blob_path(digest).is_some_and(|p| p.exists())
    }

    /// Keeps `bytes` under `digest` after checking that they hash to it.
    fn put(&self, digest: &str, bytes: &[u8], what: &str) -> Result<PathBuf, OciError> {
        let path = self.blob_path(digest).ok_or_else(|| OciError::Manifest {
            reference: what.to_owned(),
            reason: format!("{digest:?} is not a sha256 digest"),
        })?;
        let actual = sha256_digest(bytes);
        if actual != digest {
            return Err(OciError::DigestMismatch {
                what: what.to_owned(),
                expected: digest.to_owned(),
                actual,
            });
        }
        let tmp = path.with_extension("partial");
        fs::write(&tmp, bytes).map_err(OciError::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(OciError::io(&path))?;
        Ok(path)
    }

    /// Moves a downloaded file into the store after checking its digest (removed if it does not
    /// match).
    fn put_file(&self, digest: &str, file: &Path, what: &str) -> Result<(), OciError> {
        let path = self.blob_path(digest).ok_or_else(|| OciError::Manifest {
            reference: what.to_owned(),
            reason: format!("{digest:?} is not a sha256 digest"),
        })?;
        let actual = hash_file(file)?;
        if actual != digest {
            let _ = fs::remove_file(file);
            return Err(OciError::DigestMismatch {
                what: what.to_owned(),
                expected: digest.to_owned(),
                actual,
            });
        }
        fs::rename(file, &path).map_err(OciError::io(&path))
    }

    /// Pulls `reference` (`registry[:port]/repo[:tag][@sha256:…]`) for this machine's platform:
    /// the manifest (an index resolves to this OS and architecture), the config and every layer
    /// not stored yet, each verified. A reference pinned by digest must resolve to exactly it.
    ///
    /// # Errors
    /// [`OciError::Reference`], [`OciError::NotFound`], [`OciError::Registry`],
    /// [`OciError::Manifest`], [`OciError::DigestMismatch`], [`OciError::Io`].
    pub async fn pull(&self, reference: &str) -> Result<StoredImage, OciError> {
        let parsed: Reference = reference.parse().map_err(|e| OciError::Reference {
            reference: reference.to_owned(),
            reason: format!("{e}"),
        })?;
        // A registry on this machine's loopback is spoken to over plain HTTP, like the agent's
        // wasm pulls; every other one over HTTPS unless configured insecure.
        let mut insecure = self.insecure.clone();
        if is_loopback_registry(parsed.registry()) {
            insecure.push(parsed.registry().to_owned());
        }
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure),
            platform_resolver: Some(Box::new(oci_client::client::current_platform_resolver)),
            ..Default::default()
        });
        let registry_err = |e: oci_client::errors::OciDistributionError| {
            use oci_client::errors::{OciDistributionError as D, OciErrorCode as C};
            let unknown = match &e {
                D::ImageManifestNotFoundError(_) => true,
                D::RegistryError { envelope, .. } => envelope
                    .errors
                    .iter()
                    .any(|x| matches!(x.code, C::ManifestUnknown | C::NameUnknown | C::BlobUnknown)),
                _ => false,
            };
            if unknown {
                OciError::NotFound {
                    reference: reference.to_owned(),
                }
            } else {
                OciError::Registry {
                    reference: reference.to_owned(),
                    reason: e.to_string(),
                }
            }
        };
        let (raw, digest) = client
            .pull_manifest_raw(
                &parsed,
                &RegistryAuth::Anonymous,
                &[
                    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
                    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
                    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
                ],
            )
            .await
            .map_err(registry_err)?;
        let actual = sha256_digest(&raw);
        if let Some(pin) = parsed.digest()
            && pin != actual
        {
            return Err(OciError::DigestMismatch {
                what: format!("manifest of {reference}"),
                expected: pin.to_owned(),
                actual,
            });
        }
        if digest != actual {
            return Err(OciError::DigestMismatch {
                what: format!("manifest of {reference} (the registry's Docker-Content-Digest)"),
                expected: digest,
                actual,
            });
        }
        let manifest_err = |reason: String| OciError::Manifest {
            reference: reference.to_owned(),
            reason,
        };
        let (manifest, manifest_bytes, manifest_digest) = match serde_json::from_slice::<OciManifest>(&raw)
            .map_err(|e| manifest_err(format!("malformed manifest: {e}")))?
        {
            OciManifest::Image(m) => (m, raw, actual),
            OciManifest::ImageIndex(index) => {
                let platform =
                    oci_client::client::current_platform_resolver(&index.manifests).ok_or_else(|| {
                        manifest_err(format!(
                            "no manifest in the index is for {}/{}",
                            std::env::consts::OS,
                            std::env::consts::ARCH
                        ))
                    })?;
                let pinned = format!("{}/{}@{platform}", parsed.registry(), parsed.repository());
                let child: Reference = pinned
                    .parse()
                    .map_err(|e| manifest_err(format!("index entry {platform}: {e}")))?;
                let (raw, _) = client
                    .pull_manifest_raw(
                        &child,
                        &RegistryAuth::Anonymous,
                        &[
                            oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                            oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
                        ],
                    )
                    .await
                    .map_err(registry_err)?;
                let got = sha256_digest(&raw);
                if got != platform {
                    return Err(OciError::DigestMismatch {
                        what: format!("platform manifest of {reference}"),
                        expected: platform,
                        actual: got,
                    });
                }
                let m: OciImageManifest = serde_json::from_slice(&raw)
                    .map_err(|e| manifest_err(format!("malformed manifest: {e}")))?;
                (m, raw, got)
            }
        };
        if !self.has(&manifest_digest) {
            self.put(
                &manifest_digest,
                &manifest_bytes,
                &format!("manifest of {reference}"),
            )?;
        }
        let mut blobs: Vec<&OciDescriptor> = vec![&manifest.config];
        blobs.extend(manifest.layers.iter());
        for desc in blobs {
            if self.has(&desc.digest) {
                continue;
            }
            let path = self
                .blob_path(&desc.digest)
                .ok_or_else(|| manifest_err(format!("{:?} is not a sha256 digest", desc.digest)))?;
            let tmp = path.with_extension("download");
            let mut out = tokio::fs::File::create(&tmp).await.map_err(OciError::io(&tmp))?;
            let pulled = client.pull_blob(&parsed, desc, &mut out).await;
            // tokio's File writes in the background: flush before the bytes are hashed.
            let flushed = tokio::io::AsyncWriteExt::flush(&mut out).await;
            drop(out);
            if let Err(e) = flushed {
                let _ = fs::remove_file(&tmp);
                return Err(OciError::Io { path: tmp, source: e });
            }
            if let Err(e) = pulled {
                let _ = fs::remove_file(&tmp);
                return Err(registry_err(e));
            }
            self.put_file(
                &desc.digest,
                &tmp,
                &format!("blob {} of {reference}", desc.digest),
            )?;
        }
        self.finish(reference, manifest_digest, &manifest)
    }

    /// Reads the config of a stored manifest and lists its layers.
    fn finish(
        &self,
        reference: &str,
        manifest_digest: String,
        manifest: &OciImageManifest,
    ) -> Result<StoredImage, OciError> {
        let config_path = self
            .blob_path(&manifest.config.digest)
            .ok_or_else(|| OciError::Manifest {
                reference: reference.to_owned(),
                reason: "config digest is not sha256".into(),
            })?;
        let bytes = read_small(&config_path)?;
        let config: ImageConfigFile = serde_json::from_slice(&bytes).map_err(|e| OciError::Manifest {
            reference: reference.to_owned(),
            reason: format!("malformed image config: {e}"),
        })?;
        if manifest.layers.is_empty() {
            return Err(OciError::Manifest {
                reference: reference.to_owned(),
                reason: "the manifest lists no layers".into(),
            });
        }
        Ok(StoredImage {
            reference: reference.to_owned(),
            manifest_digest,
            config: config.config.unwrap_or_default(),
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        })
    }

    /// Imports the image `tag` (its `org.opencontainers.image.ref.name`; the only one when `None`)
    /// from an OCI image-layout directory, verifying every blob it uses.
    ///
    /// # Errors
    /// [`OciError::Manifest`] for a malformed layout or an unknown tag; [`OciError::DigestMismatch`];
    /// [`OciError::Io`].
    pub fn import_layout(&self, dir: &Path, tag: Option<&str>) -> Result<StoredImage, OciError> {
        let what = dir.display().to_string();
        let bad = |reason: String| OciError::Manifest {
            reference: what.clone(),
            reason,
        };
        let layout: serde_json::Value = serde_json::from_slice(&read_small(&dir.join("oci-layout"))?)
            .map_err(|e| bad(format!("oci-layout is not JSON: {e}")))?;
        if layout["imageLayoutVersion"].as_str().is_none() {
            return Err(bad(
                "oci-layout has no imageLayoutVersion: not an OCI image layout".into(),
            ));
        }
        let index: serde_json::Value = serde_json::from_slice(&read_small(&dir.join("index.json"))?)
            .map_err(|e| bad(format!("index.json is not JSON: {e}")))?;
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        let pick = match tag {
            Some(t) => manifests
                .iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == t)
                .ok_or_else(|| bad(format!("no image is tagged {t:?} in index.json")))?,
            None if manifests.len() == 1 => &manifests[0],
            None => {
                return Err(bad(format!(
                    "index.json lists {} images: name one by tag",
                    manifests.len()
                )));
            }
        };
        let manifest_digest = pick["digest"]
            .as_str()
            .ok_or_else(|| bad("index entry without a digest".into()))?
            .to_owned();
        let blob = |digest: &str| -> Result<PathBuf, OciError> {
            let hex = hex_of(digest).ok_or_else(|| bad(format!("{digest:?} is not a sha256 digest")))?;
            Ok(dir.join("blobs/sha256").join(hex))
        };
        let raw = read_small(&blob(&manifest_digest)?)?;
        self.put(
            &manifest_digest,
            &raw,
            &format!("manifest {manifest_digest} of {what}"),
        )?;
        let manifest: OciImageManifest =
            serde_json::from_slice(&raw).map_err(|e| bad(format!("malformed manifest: {e}")))?;
        let mut descs = vec![&manifest.config];
        descs.extend(manifest.layers.iter());
        for d in descs {
            if self.has(&d.digest) {
                continue;
            }
            let src = blob(&d.digest)?;
            let dst = self
                .blob_path(&d.digest)
                .ok_or_else(|| bad("bad digest".into()))?;
            let tmp = dst.with_extension("import");
            fs::copy(&src, &tmp).map_err(OciError::io(&src))?;
            self.put_file(&d.digest, &tmp, &format!("blob {} of {what}", d.digest))?;
        }
        let reference = match tag {
            Some(t) => format!("{what}:{t}"),
            None => what.clone(),
        };
        self.finish(&reference, manifest_digest, &manifest)
    }

    /// Imports from a tarball of an OCI image layout (`oci-layout`, `index.json`, `blobs/`), unpacked
    /// with the same checks as layers into a scratch directory first.
    ///
    /// # Errors
    /// As [`import_layout`](Self::import_layout), and [`OciError::Layer`] for an unsafe archive.
    pub fn import_tar(&self, tarball: &Path, tag: Option<&str>) -> Result<StoredImage, OciError> {
        let scratch = self.root.join("import.tmp");
        let _ = fs::remove_dir_all(&scratch);
        let result = unpack_layers(
            &[(tarball.display().to_string(), tarball.to_path_buf())],
            &scratch,
            UnpackLimits::default(),
        )
        .and_then(|_| self.import_layout(&scratch, tag));
        let _ = fs::remove_dir_all(&scratch);
        result
    }

    /// Records `image` under its reference, so containers can name it ([`lookup`](Self::lookup)).
    ///
    /// # Errors
    /// [`OciError::Io`].
    pub fn remember(&self, image: &StoredImage) -> Result<(), OciError> {
        let dir = self.root.join("refs");
        fs::create_dir_all(&dir).map_err(OciError::io(&dir))?;
        let path = dir.join(hex::encode(Sha256::digest(image.reference.as_bytes())));
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec(image).unwrap_or_default()).map_err(OciError::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(OciError::io(&path))
    }

    /// The image last pulled or imported as `reference`, if its blobs are still stored.
    pub fn lookup(&self, reference: &str) -> Option<StoredImage> {
        let path = self
            .root
            .join("refs")
            .join(hex::encode(Sha256::digest(reference.as_bytes())));
        let image: StoredImage = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
        image.layers.iter().all(|l| self.has(l)).then_some(image)
    }

    /// Unpacks a stored image's layers into `rootfs` (removed again if anything fails), with
    /// `options` (limits, setuid/setgid bits, owner shift); [`UnpackLimits`] alone stands for the
    /// default options with those limits.
    ///
    /// # Errors
    /// [`OciError::Layer`] for an unsafe or corrupt layer; [`OciError::Io`].
    pub fn unpack(
        &self,
        image: &StoredImage,
        rootfs: &Path,
        options: impl Into<UnpackOptions>,
    ) -> Result<UnpackStats, OciError> {
        let layers: Vec<(String, PathBuf)> = image
            .layers
            .iter()
            .map(|d| {
                let p = self.blob_path(d).ok_or_else(|| OciError::Manifest {
                    reference: image.reference.clone(),
                    reason: format!("layer {d:?} is not a sha256 digest"),
                })?;
                Ok((d.clone(), p))
            })
            .collect::<Result<_, OciError>>()?;
        let result = unpack_layers(&layers, rootfs, options);
        if result.is_err() {
            let _ = fs::remove_dir_all(rootfs);
        }
        result
    }
}

fn read_small(path: &Path) -> Result<Vec<u8>, OciError> {
    let f = fs::File::open(path).map_err(OciError::io(path))?;
    let mut out = Vec::new();
    f.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(OciError::io(path))?;
    if out.len() as u64 > MAX_JSON_BYTES {
        return Err(OciError::Manifest {
            reference: path.display().to_string(),
            reason: format!("larger than {MAX_JSON_BYTES} bytes"),
        });
    }
    Ok(out)
}

fn hash_file(path: &Path) -> Result<String, OciError> {
    let mut f = fs::File::open(path).map_err(OciError::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(OciError::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Whether `registry` (`host[:port]`) is on the loopback interface: `localhost`, `127.x.y.z` or
/// `[::1]`.
pub(crate) fn is_loopback_registry(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod loopback_tests {
    #[test]
    fn loopback_registries_are_recognised() {
        for r in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.2.1",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(super::is_loopback_registry(r), "{r}");
        }
        for r in [
            "registry.example.com",
            "10.0.0.1:5000",
            "localhost.example.com:5000",
        ] {
            assert!(!super::is_loopback_registry(r), "{r}");
        }
    }
}
