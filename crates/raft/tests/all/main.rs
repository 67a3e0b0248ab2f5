//! Driver tests on real redb files in temporary directories.

mod cluster;
mod durability;
mod membership;
mod sim;
mod single_node;
mod snapshots;
mod support;
