//! Agent errors.

/// Why the agent could not start or a pod could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API server refused or could not be reached.
    #[error("control plane: {0}")]
    Client(#[from] skiff_client::ClientError),
    /// The wasm runtime failed.
    #[error("wasm runtime: {0}")]
    Runtime(#[from] skiff_runtime_wasm::Error),
    /// Local storage failed.
    #[error("agent storage {path}: {message}")]
    Storage {
        /// The path.
        path: String,
        /// What failed.
        message: String,
    },
}
