//! Agent errors.

/// Why the agent could not start or a pod could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] skiff_client::ClientError),
    /// The wasm runtime failed.
    #[error("wasm runtime: {0}")]
    Runtime(#[from] skiff_runtime_wasm::Error),
    /// The node certificate cannot be used for TLS.
    #[error("agent TLS setup: {0}")]
    Tls(String),
    /// Local storage failed.
    #[error("agent storage {path}: {message}")]
    Storage {
        /// The path.
        path: String,
        /// What failed.
        message: String,
    },
}
