//! The `skiff` command.
fn main() {}
