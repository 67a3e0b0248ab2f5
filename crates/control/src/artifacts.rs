//! Content-addressed artifact store: uploaded components live under `sha256/<hex>`.
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use skiff_artifact::InvalidArtifact;

/// Stores uploaded components by their sha256 digest. Writes go to a temporary file and are
/// renamed into place, so a crash never leaves a partial artifact under a digest. Only valid
/// WebAssembly components get in: every put validates the whole binary first
/// (`skiff-artifact`), so an upload, a copy from another member and a fetch from one are all
/// checked, and a refused one leaves nothing behind.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: PathBuf,
    max_bytes: usize,
}

/// Why an upload or download failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArtifactError {
    #[error("artifact is {size} bytes, more than the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("the uploaded artifact ({size} bytes, {digest}) {invalid}; nothing was stored")]
    Invalid {
        digest: String,
        size: usize,
        invalid: InvalidArtifact,
    },
    #[error("{0:?} is not a digest: expected sha256: followed by 64 lowercase hex digits")]
    BadDigest(String),
    #[error("artifact {0} not found: upload it first (skiff apply does this for wasm.path)")]
    NotFound(String),
    #[error("artifact storage: {0}")]
    Io(#[from] std::io::Error),
}

impl ArtifactStore {
    /// Opens (creating) the store in `dir`.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: PathBuf, max_bytes: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("sha256"))?;
        Ok(ArtifactStore { dir, max_bytes })
    }

    /// Largest accepted artifact.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn path_of(&self, digest: &str) -> Result<PathBuf, ArtifactError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .ok_or_else(|| ArtifactError::BadDigest(digest.to_owned()))?;
        Ok(self.dir.join("sha256").join(hex))
    }

    /// Stores `bytes` once they validate as a WebAssembly component, returning `sha256:<hex>`
    /// (idempotent: a stored digest is not validated again).
    pub(crate) async fn put(&self, bytes: &Bytes) -> Result<String, ArtifactError> {
        if bytes.len() > self.max_bytes {
            return Err(ArtifactError::TooLarge {
                size: bytes.len(),
                max: self.max_bytes,
            });
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let path = self.path_of(&digest)?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(digest);
        }
        // Validation is linear in the size but CPU-bound (tens of ms for a large component).
        let owned = bytes.clone();
        let checked = tokio::task::spawn_blocking(move || skiff_artifact::check_component(&owned))
            .await
            .map_err(std::io::Error::other)?;
        if let Err(invalid) = checked {
            return Err(ArtifactError::Invalid {
                digest,
                size: bytes.len(),
                invalid,
            });
        }
        let tmp = tmp_path(&path);
        tokio::fs::write(&tmp, bytes.as_ref()).await?;
        let f = tokio::fs::File::open(&tmp).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(digest)
    }

    /// The size of a stored artifact (`None`: not stored here, or not a digest).
    pub(crate) fn size_of(&self, digest: &str) -> Option<u64> {
        std::fs::metadata(self.path_of(digest).ok()?)
            .ok()
            .map(|m| m.len())
    }

    /// Every file of the store: artifacts by digest, and temporary files of uploads.
    pub(crate) fn list(&self) -> std::io::Result<Vec<StoredArtifact>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dir.join("sha256"))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let temporary = name.contains(".tmp");
            out.push(StoredArtifact {
                digest: format!("sha256:{}", name.split('.').next().unwrap_or_default()),
                size: meta.len(),
                modified: meta.modified()?,
                temporary,
                path: entry.path(),
            });
        }
        Ok(out)
    }

    /// Deletes a stored artifact.
    pub(crate) fn remove(&self, digest: &str) -> Result<(), ArtifactError> {
        std::fs::remove_file(self.path_of(digest)?)?;
        Ok(())
    }

    /// Deletes a file [`list`](Self::list) returned (a leftover temporary one).
    pub(crate) fn remove_file(&self, path: &Path) {
        if path.starts_with(self.dir.join("sha256"))
            && let Err(e) = std::fs::remove_file(path)
        {
            tracing::debug!(path = %path.display(), error = %e, "cannot delete a leftover upload");
        }
    }

    /// Reads an artifact.
    pub(crate) async fn get(&self, digest: &str) -> Result<Vec<u8>, ArtifactError> {
        let path = self.path_of(digest)?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ArtifactError::NotFound(digest.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A file of the store, as [`ArtifactStore::list`] finds it.
#[derive(Debug, Clone)]
pub(crate) struct StoredArtifact {
    /// `sha256:<hex>` (for a temporary file: of the upload it belonged to).
    pub(crate) digest: String,
    /// Bytes.
    pub(crate) size: u64,
    /// Last written.
    pub(crate) modified: std::time::SystemTime,
    /// A temporary file of an upload, not an artifact.
    pub(crate) temporary: bool,
    /// Where it is.
    pub(crate) path: PathBuf,
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".tmp{}", std::process::id()));
    PathBuf::from(p)
}
