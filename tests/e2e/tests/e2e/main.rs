//! End-to-end tests: the real `skiff` binary in temp dirs on loopback, driven by HTTP and the CLI.
//! One test binary (modules below) so the binary and helpers are built once.
//! `cargo test -p skiff-e2e --test e2e [FILTER]`; the `skiff` they start is this package's binary
//! (`harness::SKIFF`), built from the checkout.
mod access;
mod artifact_gc;
mod artifacts;
mod cluster;
mod containers;
mod daemonset;
mod disk;
mod edge;
mod egress;
mod fuel;
mod functions;
mod ha;
mod harness;
mod hostile;
mod invalid;
mod iot;
mod jobs;
mod lincheck;
mod memory;
mod namespaces;
mod netns;
mod one_node;
mod push;
mod quota;
mod roles;
mod rollout;
mod secrets;
mod slow_clients;
mod snapshots;
mod workers;
