//! End-to-end tests of the peer crate: real TLS over 127.0.0.1, no mocks.

mod join;
mod raft;
mod snapshot;
mod support;
