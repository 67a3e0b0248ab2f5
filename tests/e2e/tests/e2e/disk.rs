//! A member's disk runs short: below the watermark writes are refused with a clear error and
//! accepted again once space returns; with no watermark, the database failing stops the member
//! (fail-stop) and the process exits non-zero.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::Skiff;

/// A small tmpfs mounted on an empty directory for the test's life (unmounted on drop).
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).expect("mount point");
        assert!(
            std::fs::read_dir(at).expect("mount point").next().is_none(),
            "{} must be empty: the test mounts over it",
            at.display()
        );
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount(8)")
            .success();
        assert!(
            ok,
            "mounting a tmpfs on {} failed (the test needs root)",
            at.display()
        );
        SmallDisk { at: at.to_owned() }
    }

    /// Bytes free on it.
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.at)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df's answer")
    }

    /// Writes a file that leaves about `leave` bytes free.
    fn fill(&self, name: &str, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self.at.join(name);
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0x5au8; 1 << 20];
        while self.free() > leave + chunk.len() as u64 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn config_map(s: &Skiff, name: &str) -> std::process::Output {
    let file = s.dir.path().join(format!("{name}.yaml"));
    let yaml = format!(
        "apiVersion: skiff.dev/v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: {}}}\n",
        "v".repeat(1000)
    );
    std::fs::write(&file, yaml).expect("manifest");
    s.cli(&["apply", "-f", file.to_str().expect("utf-8")])
}

#[test]
fn below_the_free_space_watermark_writes_are_refused_until_space_returns() {
    let mut s = Skiff::prepared(&["--min-free-space".into(), "24Mi".into()]);
    let disk = SmallDisk::mount(&s.state_dir(), "96m");
    s.spawn();
    assert!(config_map(&s, "before").status.success());

    let filler = disk.fill("filler", 12 << 20);
    let refused = config_map(&s, "during");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a write below the watermark was accepted"
    );
    assert!(
        stderr.contains("bytes free, below the") && stderr.contains("--min-free-space"),
        "{stderr}"
    );
    // An upload is refused the same way, and nothing is stored.
    let wasm = crate::harness::hostile_wasm();
    let pushed = s.cli(&["push", wasm.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&pushed.stderr);
    assert!(
        !pushed.status.success() && stderr.contains("bytes free"),
        "{stderr}"
    );
    // Deletes still go through (they are how space is freed in the state), reads answer, and
    // the member stays up.
    s.cli_ok(&["delete", "configmap", "before"]);
    s.cli_ok(&["get", "configmaps"]);
    assert!(s.alive(), "the member exited:\n{}", s.log());

    std::fs::remove_file(filler).expect("free the space");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if config_map(&s, "after").status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes were not accepted again:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(s.cli_ok(&["get", "configmaps"]).contains("after"));
}

#[test]
fn with_no_watermark_a_failing_disk_stops_the_member_and_the_process_exits_non_zero() {
    let mut s = Skiff::prepared(&["--min-free-space".into(), "0".into()]);
    let disk = SmallDisk::mount(&s.state_dir(), "64m");
    s.spawn();
    assert!(config_map(&s, "before").status.success());
    disk.fill("filler", 0);
    // Writes go on until the database cannot write; the member then stops instead of going on
    // with a state it could not record.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while s.alive() {
        assert!(
            Instant::now() < deadline,
            "the member never stopped on a full disk:\n{}",
            s.log()
        );
        let _ = config_map(&s, &format!("fill-{n}"));
        n += 1;
    }
    let code = s.exit_code();
    assert!(code.is_some_and(|c| c != 0), "exit code {code:?}\n{}", s.log());
    let log = s.log();
    // It says why: the disk.
    assert!(
        log.contains("the control member stopped: raft storage failed"),
        "{log}"
    );
    assert!(log.contains("No space left on device"), "{log}");
}
