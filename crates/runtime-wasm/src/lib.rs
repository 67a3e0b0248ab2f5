//! Skiff's WebAssembly runtime: wasmtime engine, compiled-component cache, limits and wasi:http serving.
#![deny(missing_docs)]
