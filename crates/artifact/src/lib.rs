//! # skiff-artifact: is this a WebAssembly component Skiff can run?
//!
//! Skiff refuses a bad artifact at the door instead of storing it and failing every pod that
//! uses it: the control plane checks each upload before it stores it, `skiff apply` / `skiff
//! push` check each local file before they upload it, and a worker checks a component it
//! fetched (by digest, URL or image) before it compiles it. All three call [`check_component`].
//!
//! ```text
//!   bytes ── empty? ── \0asm? ── core module? ── validate the whole component ──► Ok
//!             │          │           │                 (no compiling; the features
//!             ▼          ▼           ▼                  of Skiff's engine)
//!           Empty     NotWasm    CoreModule          Invalid { message, offset }
//! ```
//!
//! ```
//! use skiff_artifact::{InvalidArtifact, check_component};
//!
//! // The smallest component there is: the header of an empty one.
//! let empty_component = b"\0asm\x0d\0\x01\0";
//! assert!(check_component(empty_component).is_ok());
//!
//! // Cut in the middle of a section: refused, with where the validator stopped.
//! let truncated = b"\0asm\x0d\0\x01\0\x00\x10";
//! let err = check_component(truncated).unwrap_err();
//! assert!(matches!(err, InvalidArtifact::Invalid { offset: 10, .. }), "{err}");
//! assert!(err.to_string().contains("rebuild the component"));
//! ```
//!
//! ## Core concepts
//!
//! - [`check_component`] validates the whole binary with `wasmparser` — every section, type and
//!   function body — but compiles nothing: linear in the size, tens of milliseconds for a
//!   20 MB interpreter component, against seconds to compile it.
//! - [`features`] is the set of WebAssembly proposals Skiff's wasmtime engine accepts; checking
//!   with the same set means an artifact that passes here does not fail validation when it is
//!   compiled (the runtime's tests compare the two).
//! - [`InvalidArtifact`] says what is wrong and how to fix it; its message reads after the
//!   name of the thing checked (`"app.wasm " + message`).
use wasmparser::{Parser, Validator, WasmFeatures};

/// The WebAssembly proposals Skiff's engine accepts: what wasmtime 48 enables by default for a
/// build with the component model, GC and threads (and not the async component model), which is
/// how `skiff-runtime-wasm` builds it.
pub fn features() -> WasmFeatures {
    WasmFeatures::WASM3
        | WasmFeatures::GC_TYPES
        | WasmFeatures::EXCEPTIONS
        | WasmFeatures::THREADS
        | WasmFeatures::COMPONENT_MODEL
}

/// Why bytes are not a component Skiff can run. The message is written to follow the name of
/// what was checked ("hello.wasm is not a valid WebAssembly component: …").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidArtifact {
    /// No bytes at all.
    #[error("is empty (0 bytes): rebuild the component; the file may be truncated")]
    Empty,
    /// Not WebAssembly: no `\0asm` magic.
    #[error(
        "is not WebAssembly (it starts with {found}, not the wasm magic 00 61 73 6d): give the compiled .wasm component, e.g. target/wasm32-wasip2/release/NAME.wasm"
    )]
    NotWasm {
        /// The first bytes, in hex.
        found: String,
    },
    /// A core module: WebAssembly, but not a component.
    #[error(
        "is a core WebAssembly module, not a component: Skiff runs components (worlds http, command or function); build for wasm32-wasip2, or make the module a component (`wasm-tools component new` with a WASI adapter)"
    )]
    CoreModule,
    /// The validator refused it.
    #[error(
        "is not a valid WebAssembly component: {message} (at byte offset {offset} of {size}): rebuild the component; the file may be truncated or corrupted"
    )]
    Invalid {
        /// The validator's message.
        message: String,
        /// Where in the bytes the validator stopped.
        offset: usize,
        /// How many bytes there are.
        size: usize,
    },
}

impl InvalidArtifact {
    /// The validator's message, when the validator refused the bytes.
    pub fn validator_message(&self) -> Option<&str> {
        match self {
            InvalidArtifact::Invalid { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Where in the bytes the problem is (0 for a bad header).
    pub fn offset(&self) -> usize {
        match self {
            InvalidArtifact::Invalid { offset, .. } => *offset,
            _ => 0,
        }
    }
}

/// Checks that `bytes` are a valid WebAssembly component under [`features`], without compiling
/// it.
///
/// # Errors
/// [`InvalidArtifact`] saying what is wrong: empty, not WebAssembly, a core module, or the
/// validator's message and offset.
pub fn check_component(bytes: &[u8]) -> Result<(), InvalidArtifact> {
    if bytes.is_empty() {
        return Err(InvalidArtifact::Empty);
    }
    if !bytes.starts_with(b"\0asm") {
        let found = bytes
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(InvalidArtifact::NotWasm { found });
    }
    if Parser::is_core_wasm(bytes) {
        return Err(InvalidArtifact::CoreModule);
    }
    Validator::new_with_features(features())
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| InvalidArtifact::Invalid {
            message: e.message().to_owned(),
            offset: e.offset(),
            size: bytes.len(),
        })
}

#[cfg(test)]
mod tests;
