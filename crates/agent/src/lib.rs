//! The Skiff worker: registers its node, runs the pods bound to it and serves their traffic.
#![deny(missing_docs)]
