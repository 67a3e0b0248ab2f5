//! End-to-end tests of the wasm runtime with real components built from
//! `examples/hello-http` and `tests/guests`, driven through `HttpHandler::handle`.

mod cache;
mod command;
mod function;
mod guests;
mod hello;
mod hostile;
mod limits;
mod logs;
mod outbound;
mod pooling;
mod serve;
