//! Typed async client for Skiff's REST and watch API.
#![deny(missing_docs)]
