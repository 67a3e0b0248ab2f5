//! Skiff's ingress gateway: routes HTTP by host and path to services' ready endpoints.
#![deny(missing_docs)]
