//! Workers, gateways and clients link no Raft code: what they need of the cluster's security is
//! this crate, and the Raft transport (`skiff-peer`, with raft-rs and protobuf) is the control
//! plane's alone. `cargo tree` of each such package must name none of it.
use std::process::Command;

/// The packages, among the normal (non-dev, non-build) dependencies of `package` on this
/// machine's target, whose name says Raft, protobuf or the peer transport.
fn raft_packages(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree", "--locked", "-e", "normal", "--prefix", "none", "-p", package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("utf-8");
    assert!(tree.starts_with(package), "not a tree of {package}: {tree}");
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.contains("raft") || name.contains("protobuf") || *name == "skiff-peer")
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn agents_gateways_and_clients_link_no_raft_or_protobuf() {
    for package in ["skiff-pki", "skiff-client", "skiff-agent", "skiff-gateway"] {
        assert_eq!(
            raft_packages(package),
            Vec::<String>::new(),
            "{package} depends on the Raft transport"
        );
    }
}

#[test]
fn the_control_plane_still_has_its_transport() {
    // The check above would pass on a tree it cannot read; this one shows it reads it.
    let found = raft_packages("skiff-control");
    for name in ["skiff-peer", "skiff-raft", "raft", "protobuf"] {
        assert!(found.iter().any(|f| f == name), "{name} not in {found:?}");
    }
}
