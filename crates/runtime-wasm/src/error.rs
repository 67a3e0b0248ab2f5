//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while building the runtime, loading a component or
/// preparing a handler.
///
/// Failures *while serving a request* are not errors of this type: they become HTTP
/// responses (500, 503, 504, 413) for that one request; see [`crate::HttpHandler`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The wasmtime engine could not be created, even with the on-demand allocator.
    #[error("cannot create the wasm engine: {reason}; check the runtime configuration")]
    Engine {
        /// What wasmtime reported.
        reason: String,
    },

    /// The compiled-component cache directory cannot be created or written.
    #[error("cannot use the component cache directory {}: {source}; check that it is writable", path.display())]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The bytes are not a valid WebAssembly component (empty, not wasm, a core module,
    /// malformed, or using features this engine does not support), found by validating
    /// them before compiling; retrying the same bytes cannot help.
    #[error("component {digest} {invalid}")]
    InvalidComponent {
        /// `sha256:<hex>` of the bytes.
        digest: String,
        /// What is wrong, with the validator's message and offset.
        invalid: skiff_artifact::InvalidArtifact,
    },

    /// The component is valid but the engine could not compile it.
    #[error("component {digest} does not compile: {reason}")]
    Compile {
        /// `sha256:<hex>` of the bytes.
        digest: String,
        /// What the compiler reported.
        reason: String,
    },

    /// The component imports something Skiff does not provide (only the WASI 0.2
    /// interfaces and `wasi:http` are available).
    #[error(
        "component {digest} cannot be linked: {reason}; only WASI 0.2.x and wasi:http imports are provided"
    )]
    Link {
        /// `sha256:<hex>` of the component.
        digest: String,
        /// What the linker reported.
        reason: String,
    },

    /// The component does not export `skiff:function/handler`, so it cannot run as a function.
    #[error(
        "component {digest} is not a function (it must export skiff:function/handler@0.1.0, see wit/function.wit): {reason}"
    )]
    NotFunction {
        /// `sha256:<hex>` of the component.
        digest: String,
        /// What the export lookup reported.
        reason: String,
    },

    /// The component does not export `wasi:cli/run`, so it cannot run as a command.
    #[error(
        "component {digest} cannot run as a command (world: command needs an export of wasi:cli/run): {reason}"
    )]
    NotCommand {
        /// `sha256:<hex>` of the component.
        digest: String,
        /// What the export lookup reported.
        reason: String,
    },

    /// The component does not export `wasi:http/incoming-handler@0.2.x`, so it cannot
    /// serve HTTP.
    #[error("component {digest} does not export wasi:http/incoming-handler@0.2.x: {reason}")]
    NotHttp {
        /// `sha256:<hex>` of the component.
        digest: String,
        /// What the export lookup reported.
        reason: String,
    },

    /// The handler options ask for something this runtime cannot do.
    #[error("invalid handler options for {name}: {reason}")]
    InvalidOptions {
        /// The handler's name (`ns/pod/component`).
        name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A blocking compile task could not be run to completion (the runtime is
    /// shutting down or the task panicked).
    #[error("compiling component {digest} was interrupted: {reason}")]
    CompileInterrupted {
        /// `sha256:<hex>` of the component.
        digest: String,
        /// Why.
        reason: String,
    },
}

/// Renders a wasmtime error with its whole cause chain on one line.
pub(crate) fn chain(error: &wasmtime::Error) -> String {
    format!("{error:#}")
}
