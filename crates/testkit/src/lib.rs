//! # skiff-testkit: what Skiff's tests share
//!
//! Real processes the tests talk to, started on loopback and stopped when dropped:
//!
//! - [`Registry`] — Debian's `docker-registry` (the CNCF distribution registry) on a free port,
//!   with its storage in a temporary directory; installed with apt-get when missing.
//!
//! ```no_run
//! let Some(registry) = skiff_testkit::start_registry() else {
//!     eprintln!("SKIPPED: docker-registry cannot be installed");
//!     return;
//! };
//! println!("push to http://{}/v2/…", registry.addr);
//! ```
#![deny(missing_docs)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the registry.
const REGISTRY: &str = "/usr/bin/docker-registry";

/// A running `docker-registry`, killed when dropped.
#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `docker-registry` on a free loopback port and waits (at most 30 s) until `GET /v2/`
/// answers 200. `None` when the binary is missing and cannot be installed.
///
/// # Panics
/// When the registry starts but does not answer in time (its log is in the message).
pub fn start_registry() -> Option<Registry> {
    if !Path::new(REGISTRY).exists() {
        eprintln!("docker-registry is missing: installing Debian's docker-registry package");
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-q", "docker-registry"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok || !Path::new(REGISTRY).exists() {
            return None;
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )
    .expect("writing the registry's configuration");
    let log = dir.path().join("registry.log");
    let child = Command::new(REGISTRY)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("the registry's log file"))
        .spawn()
        .expect("starting docker-registry");
    let registry = Registry {
        addr,
        child,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers_v2(&registry.addr) {
        assert!(
            Instant::now() < deadline,
            "the registry did not answer GET /v2/ within 30 s; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(registry)
}

/// Says that a test cannot run because `what` is missing, and fails it under CI (`CI` set and
/// not `false` or `0`): a test whose tool is missing must never pass there. Elsewhere it prints
/// why the test did not run; the caller returns.
///
/// # Panics
/// Under CI.
pub fn tool_missing(what: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "{what} is missing, and under CI every test must run: scripts/test.sh installs it"
    );
    eprintln!("\n\n!!!!!!!! SKIPPED: {what} is missing (scripts/test.sh installs it) !!!!!!!!\n\n");
}

/// Whether `GET /v2/` on `addr` answers 200.
fn answers_v2(addr: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
