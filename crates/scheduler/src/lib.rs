//! Skiff's pod scheduler: a pure filter, score and select pipeline with a reason for every rejection.
#![deny(missing_docs)]
