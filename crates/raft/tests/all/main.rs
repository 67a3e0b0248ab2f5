//! Driver tests on real redb files in temporary directories.

mod cluster;
mod durability;
mod single_node;
mod support;
