//! [`OciError`]: what went wrong with an image, a layer or a container, in words a user can act on.
use std::path::PathBuf;

/// Every failure of the plugin's image and container work.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The image reference cannot be parsed.
    #[error(
        "image reference {reference:?} is not valid: {reason} (write registry[:port]/repository[:tag][@sha256:<hex>])"
    )]
    Reference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry could not be reached or answered with an error.
    #[error("registry for {reference} cannot be reached or refused the request: {reason}")]
    Registry {
        /// The image reference.
        reference: String,
        /// The client's error.
        reason: String,
    },
    /// The registry has no such image or tag.
    #[error("image {reference} was not found in its registry: check the repository and tag")]
    NotFound {
        /// The image reference.
        reference: String,
    },
    /// Downloaded or imported bytes do not match the digest that names them.
    #[error("{what} should have digest {expected} but its bytes hash to {actual}: refusing it")]
    DigestMismatch {
        /// What was checked (`manifest of …`, `layer sha256:…`).
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A manifest, index or image config that cannot be used.
    #[error("image {reference}: {reason}")]
    Manifest {
        /// The image reference (or layout path).
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer entry that would write outside the root filesystem, or a corrupt archive.
    #[error("layer {layer}: entry {entry:?}: {reason}; the layer was refused")]
    Layer {
        /// Digest (or path) of the layer.
        layer: String,
        /// The entry's path in the archive.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No container has this id.
    #[error("container {id}: no such container{hint}")]
    NoSuchContainer {
        /// The container id.
        id: String,
        /// What to do (may be empty).
        hint: &'static str,
    },
    /// A container cannot be made, started or stopped.
    #[error("container {id}: {reason}")]
    Container {
        /// The container id.
        id: String,
        /// What went wrong.
        reason: String,
    },
    /// The image's `USER` cannot be resolved in its root filesystem.
    #[error("container {id}: the image's USER {user:?} cannot be used: {reason}")]
    User {
        /// The container id.
        id: String,
        /// `USER` as the image gives it.
        user: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl OciError {
    /// An [`OciError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> OciError {
        let path = path.into();
        move |source| OciError::Io { path, source }
    }
}
