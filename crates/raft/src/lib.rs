//! The raft-rs driver of Skiff's control plane: one Ready loop, redb log storage, proposals.
#![deny(missing_docs)]

mod batch;
mod config;
mod driver;
mod error;
mod handle;
mod logger;
mod machine;
pub mod storage;
pub mod transport;

pub use config::RaftConfig;
pub use driver::{StartOptions, start, start_with};
pub use error::RaftError;
pub use handle::{MAX_MESSAGE_BYTES, RaftHandle, RaftStatus, Role};
pub use machine::StateMachine;
pub use raft::eraftpb;
