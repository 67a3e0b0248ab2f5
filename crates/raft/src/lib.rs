//! The raft-rs driver of Skiff's control plane: one Ready loop, redb log storage, proposals.
#![deny(missing_docs)]
