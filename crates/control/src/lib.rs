//! The Skiff control node: REST and watch API, controllers, scheduler loop and artifact store.
#![deny(missing_docs)]
