//! Containers run least-privileged (issue 19, section 5), checked with real runc and busybox
//! images built by the test: the default seccomp filter makes `mount`, `ptrace`, `keyctl` and
//! `unshare` fail inside a container; the container runs as the image's `USER`; a setuid file of
//! the image is not setuid on disk; state and bundle files are private; output is capped and
//! rotated; an opt-in user namespace makes container root an unprivileged host user.
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use skiff_oci::{
    ContainerSpec, ContainerState, ImageStore, LogLimits, OciError, Runtime, RuntimeOptions, StoredImage,
    UserNamespace,
};

#[path = "support/busybox.rs"]
mod busybox;
use busybox::{busybox_image_with, tools};

/// What every test here needs: runc, busybox, a store and a place to work.
struct Setup {
    work: tempfile::TempDir,
    runc: PathBuf,
    busybox: PathBuf,
    store: ImageStore,
}

fn setup() -> Option<Setup> {
    let Some((runc, busybox)) = tools() else {
        skiff_testkit::tool_missing("runc or busybox-static (or root)");
        return None;
    };
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(work.path().join("images"), Vec::new()).unwrap();
    Some(Setup {
        work,
        runc,
        busybox,
        store,
    })
}

impl Setup {
    fn image(&self, name: &str, extra: &[(&str, &[u8], u32)], user: Option<&str>) -> StoredImage {
        busybox_image_with(
            &self.store,
            &self.work.path().join(name),
            &self.busybox,
            extra,
            user,
        )
    }

    fn runtime(&self, options: RuntimeOptions) -> Runtime {
        Runtime::with_options(
            self.work.path().join("state"),
            self.store.clone(),
            self.runc.clone(),
            PathBuf::from(env!("CARGO_BIN_EXE_skiff-oci")),
            options,
        )
        .unwrap()
    }
}

fn spec(id: &str, image: &StoredImage, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        id: format!("{id}-{}", std::process::id()),
        image: image.reference.clone(),
        command: Some(command.iter().map(|s| s.to_string()).collect()),
        memory: Some(64 << 20),
        ..Default::default()
    }
}

fn wait_exit(rt: &Runtime, id: &str) -> i32 {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let ContainerState::Exited { code, .. } = rt.state(id).unwrap() {
            return code;
        }
        assert!(
            Instant::now() < end,
            "{id} did not exit: {}",
            rt.logs(id).unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates, starts and waits for a container; returns its exit code and output (it is removed).
fn run(rt: &Runtime, spec: &ContainerSpec, image: &StoredImage) -> (i32, String) {
    rt.create(spec, image).unwrap();
    rt.start(&spec.id).unwrap();
    let code = wait_exit(rt, &spec.id);
    let out = rt.logs(&spec.id).unwrap();
    rt.remove(&spec.id).unwrap();
    (code, out)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The syscall probe (tests/support/probe.c), built static with the system C compiler.
fn probe(work: &Path) -> Option<Vec<u8>> {
    let out = work.join("probe.bin");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/probe.c");
    let built = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    built.then(|| std::fs::read(&out).unwrap())
}

#[test]
fn mount_ptrace_keyctl_and_unshare_fail_inside_a_container() {
    let Some(s) = setup() else { return };
    let Some(probe) = probe(s.work.path()) else {
        skiff_testkit::tool_missing("a C compiler with static libc (cc -static; Debian: gcc, libc6-dev)");
        return;
    };
    let image = s.image("probe", &[("probe", &probe, 0o755)], None);
    let rt = s.runtime(RuntimeOptions::default());
    // ptrace last: were it allowed, the probe would be traced by runc from then on.
    let calls = [
        "getpid",
        "fork",
        "mount",
        "umount2",
        "keyctl",
        "unshare",
        "clone-newuser",
        "ptrace",
    ];
    let mut argv = vec!["/probe"];
    argv.extend(calls);
    let (code, out) = run(&rt, &spec("probe", &image, &argv), &image);
    assert_eq!(code, 0, "{out}");
    // Allowed calls still work; each denied one fails with EPERM (1), even for container root.
    // (With the filter taken out of config.json, keyctl, unshare and ptrace succeed here; mount
    // and umount2 fail without CAP_SYS_ADMIN as well, the filter being the first wall.)
    for ok in ["getpid ok", "fork ok"] {
        assert!(out.lines().any(|l| l == ok), "{ok}: {out}");
    }
    for denied in &calls[2..] {
        let line = format!("{denied} 1");
        assert!(out.lines().any(|l| l == line), "{line}: {out}");
    }
    // The busybox tools of the same names fail too, and the filter is on.
    let (_, out) = run(
        &rt,
        &spec(
            "tools",
            &image,
            &[
                "sh",
                "-c",
                "unshare -U true || echo unshare-failed; mount -t tmpfs none /mnt || echo mount-failed; grep Seccomp: /proc/self/status",
            ],
        ),
        &image,
    );
    assert!(
        out.contains("unshare-failed") && out.contains("mount-failed"),
        "{out}"
    );
    assert!(out.contains("Seccomp:\t2"), "the filter mode: {out}");
}

#[test]
fn the_container_runs_as_the_images_user() {
    let Some(s) = setup() else { return };
    let passwd: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
    let group: &[u8] = b"root:x:0:\napp:x:1000:\nextra:x:2000:app\n";
    let etc = [("etc/passwd", passwd, 0o644), ("etc/group", group, 0o644)];
    let rt = s.runtime(RuntimeOptions::default());
    let show = [
        "sh",
        "-c",
        "echo uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME; grep CapEff /proc/self/status",
    ];

    // USER app: resolved in the image's own /etc/passwd and /etc/group, no capabilities left.
    let named = s.image("named", &etc, Some("app"));
    let (code, out) = run(&rt, &spec("named", &named, &show), &named);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("uid=1000 gid=1000 groups=1000 2000 home=/home/app"),
        "{out}"
    );
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");

    // USER uid:gid: taken as given.
    let numeric = s.image("numeric", &etc, Some("1234:5678"));
    let (_, out) = run(&rt, &spec("numeric", &numeric, &show), &numeric);
    assert!(out.contains("uid=1234 gid=5678 groups=5678"), "{out}");

    // USER app:extra: the named group is the primary one.
    let pair = s.image("pair", &etc, Some("app:extra"));
    let (_, out) = run(&rt, &spec("pair", &pair, &show), &pair);
    assert!(out.contains("uid=1000 gid=2000"), "{out}");

    // No USER: root, with the small capability set.
    let root = s.image("root", &etc, None);
    let (_, out) = run(&rt, &spec("root", &root, &show), &root);
    assert!(out.contains("uid=0 gid=0") && out.contains("home=/root"), "{out}");
    assert!(!out.contains("CapEff:\t0000000000000000"), "{out}");

    // A name the image does not list: a clear error, nothing left behind.
    let ghost = s.image("ghost", &etc, Some("ghost"));
    let bad = spec("ghost", &ghost, &["true"]);
    let err = rt.create(&bad, &ghost).unwrap_err();
    assert!(matches!(err, OciError::User { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"ghost\"") && msg.contains("/etc/passwd") && msg.contains("add it to the image"),
        "{msg}"
    );
    assert!(rt.state(&bad.id).is_err(), "no container was made");
}

#[test]
fn a_setuid_file_of_the_image_is_not_setuid_on_disk_unless_allowed() {
    let Some(s) = setup() else { return };
    let bin = std::fs::read(&s.busybox).unwrap();
    let files: [(&str, &[u8], u32); 2] = [("bin/su-probe", &bin, 0o4755), ("bin/sg-probe", &bin, 0o2755)];
    let image = s.image("setid", &files, None);
    let hex = image.manifest_digest.trim_start_matches("sha256:").to_owned();
    let show = ["sh", "-c", "stat -c '%a %n' /bin/su-probe /bin/sg-probe"];

    // Default: stripped in the shared root and in a private (writable) one.
    let rt = s.runtime(RuntimeOptions::default());
    let shared = s.work.path().join("state/rootfs").join(&hex);
    let (_, out) = run(&rt, &spec("strip", &image, &show), &image);
    assert_eq!(mode(&shared.join("bin/su-probe")), 0o755);
    assert_eq!(mode(&shared.join("bin/sg-probe")), 0o755);
    assert!(
        out.contains("755 /bin/su-probe") && out.contains("755 /bin/sg-probe"),
        "{out}"
    );
    let mut private = spec("strip-rw", &image, &["true"]);
    private.writable_root = true;
    rt.create(&private, &image).unwrap();
    let bundle = s.work.path().join("state/containers").join(&private.id);
    assert_eq!(mode(&bundle.join("rootfs/bin/su-probe")), 0o755);
    rt.remove(&private.id).unwrap();

    // Allowed by the plugin's flag: kept (in a root of its own, never the stripped one).
    let keep = s.runtime(RuntimeOptions {
        keep_setid: true,
        ..Default::default()
    });
    let (_, out) = run(&keep, &spec("keep", &image, &show), &image);
    let kept = s.work.path().join("state/rootfs").join(format!("{hex}-setid"));
    assert_eq!(mode(&kept.join("bin/su-probe")), 0o4755);
    assert_eq!(mode(&kept.join("bin/sg-probe")), 0o2755);
    assert!(out.contains("4755 /bin/su-probe"), "{out}");
    assert_eq!(
        mode(&shared.join("bin/su-probe")),
        0o755,
        "the stripped root is unchanged"
    );
}

#[test]
fn state_and_bundle_files_are_private() {
    let Some(s) = setup() else { return };
    let image = s.image("private", &[], None);
    let rt = s.runtime(RuntimeOptions::default());
    let mut c = spec("private", &image, &["sh", "-c", "echo secret-value-$TOKEN"]);
    c.env = vec![("TOKEN".into(), "s3cr3t".into())];
    rt.create(&c, &image).unwrap();
    rt.start(&c.id).unwrap();
    assert_eq!(wait_exit(&rt, &c.id), 0);
    let state = s.work.path().join("state");
    let bundle = state.join("containers").join(&c.id);
    for dir in [&state, &state.join("containers"), &state.join("rootfs"), &bundle] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    let config = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    assert!(
        config.contains("TOKEN=s3cr3t"),
        "config.json holds the resolved value"
    );
    for file in ["config.json", "spec.json", "output.log", "exit", "pid"] {
        assert_eq!(mode(&bundle.join(file)), 0o600, "{file}");
    }
    assert!(rt.logs(&c.id).unwrap().contains("secret-value-s3cr3t"));
    rt.remove(&c.id).unwrap();
}

#[test]
fn container_output_is_capped_and_rotated_and_the_newest_stays_readable() {
    let Some(s) = setup() else { return };
    let image = s.image("chatty", &[], None);
    let limits = LogLimits {
        file_bytes: 64 << 10,
        files: 3,
    };
    let rt = s.runtime(RuntimeOptions {
        log: limits,
        ..Default::default()
    });
    // About 4 MiB of output, then a last line.
    let c = spec(
        "chatty",
        &image,
        &[
            "sh",
            "-c",
            "yes 'a line of container output' | head -c 4000000; echo; echo the-last-line",
        ],
    );
    rt.create(&c, &image).unwrap();
    rt.start(&c.id).unwrap();
    assert_eq!(wait_exit(&rt, &c.id), 0);
    let bundle = s.work.path().join("state/containers").join(&c.id);
    let mut total = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(&bundle).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("output.log") {
            let len = entry.metadata().unwrap().len();
            assert!(len <= limits.file_bytes, "{:?}: {len} bytes", entry.file_name());
            assert_eq!(entry.metadata().unwrap().mode() & 0o777, 0o600);
            total += len;
            files += 1;
        }
    }
    assert_eq!(files, 3, "rotated, three files kept");
    assert!(total <= limits.file_bytes * 3, "{total} bytes on disk");
    let logs = rt.logs(&c.id).unwrap();
    assert!(
        logs.ends_with("the-last-line\n"),
        "{}",
        &logs[logs.len().saturating_sub(200)..]
    );
    rt.remove(&c.id).unwrap();
}

#[test]
fn a_user_namespace_makes_container_root_an_unprivileged_host_user() {
    let Some(s) = setup() else { return };
    let image = s.image("userns", &[], None);
    let ns = UserNamespace {
        host_id: 200_000,
        size: 65_536,
    };
    let rt = s.runtime(RuntimeOptions {
        user_namespace: Some(ns),
        ..Default::default()
    });
    let c = spec(
        "userns",
        &image,
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; echo uid=$(id -u); touch /tmp/x && echo tmp-ok; exec sleep 30",
        ],
    );
    rt.create(&c, &image).unwrap();
    let ContainerState::Running { pid } = rt.start(&c.id).unwrap() else {
        panic!("not running: {}", rt.logs(&c.id).unwrap())
    };
    // Root inside, host uid 200000 outside.
    let end = Instant::now() + Duration::from_secs(30);
    while !rt.logs(&c.id).unwrap().contains("tmp-ok") {
        assert!(Instant::now() < end, "{}", rt.logs(&c.id).unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = rt.logs(&c.id).unwrap();
    let map: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", "200000", "65536"], "{out}");
    assert!(out.contains("uid=0"), "{out}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "200000"),
        "{uid_line}"
    );
    // Its root filesystem belongs to the mapped root; the bundle stays closed to it.
    let hex = image.manifest_digest.trim_start_matches("sha256:");
    let root = s.work.path().join("state/rootfs").join(format!("{hex}-u200000"));
    assert_eq!(
        std::fs::metadata(root.join("bin/busybox")).unwrap().uid(),
        200_000
    );
    let bundle = s.work.path().join("state/containers").join(&c.id);
    assert_eq!(mode(&bundle.join("config.json")), 0o600);
    assert_eq!(std::fs::metadata(bundle.join("config.json")).unwrap().uid(), 0);
    rt.stop(&c.id, Duration::from_millis(200)).unwrap();
    rt.remove(&c.id).unwrap();
}
