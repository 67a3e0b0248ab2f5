//! Containers with real runc and a busybox image built by the test (no image from the internet):
//! an httpd answers on its allocated port, output and exit codes are recorded, a killed process
//! is seen as exited with 137, stop escalates from TERM to KILL, and a new plugin process (a new
//! `Runtime`) re-adopts a running container.
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use skiff_oci::{ContainerSpec, ContainerState, ImageStore, OciError, Runtime};

#[path = "support/busybox.rs"]
mod busybox;
use busybox::{busybox_image, tools};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn http_get(port: u16) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn spec(id: &str, port: Option<u16>, args: Option<&[&str]>) -> ContainerSpec {
    ContainerSpec {
        id: id.into(),
        image: "busybox:v1".into(),
        args: args.map(|a| a.iter().map(|s| s.to_string()).collect()),
        port,
        memory: Some(64 << 20),
        ..Default::default()
    }
}

#[test]
fn containers_serve_exit_stop_and_are_re_adopted_by_a_new_plugin() {
    let Some((runc, busybox)) = tools() else {
        skiff_testkit::tool_missing("runc or busybox-static (or root)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(work.path().join("images"), Vec::new()).unwrap();
    let image = busybox_image(&store, work.path(), &busybox);
    let shim = PathBuf::from(env!("CARGO_BIN_EXE_skiff-oci"));
    let root = work.path().join("state");
    let rt = Runtime::new(&root, store.clone(), runc.clone(), shim.clone()).unwrap();
    let tag = std::process::id();

    // An httpd on its allocated port, as the image says to run it.
    let port = free_port();
    let web = format!("web-{tag}");
    rt.create(&spec(&web, Some(port), None), &image).unwrap();
    assert_eq!(rt.state(&web).unwrap(), ContainerState::Created);
    let running = rt.start(&web).unwrap();
    assert!(matches!(running, ContainerState::Running { .. }), "{running:?}");
    wait_until("the httpd answers", || {
        http_get(port).is_some_and(|r| r.contains("hello from a container"))
    });

    // A new plugin process (here: a new Runtime over the same state) re-adopts it.
    drop(rt);
    let rt = Runtime::new(&root, store.clone(), runc.clone(), shim.clone()).unwrap();
    let listed = rt.list();
    assert!(
        listed
            .iter()
            .any(|(s, st)| s.id == web && matches!(st, ContainerState::Running { .. })),
        "{listed:?}"
    );
    assert!(http_get(port).is_some(), "still serving after the plugin restart");

    // Its process killed from outside: exited with 128 + 9.
    let ContainerState::Running { pid } = rt.state(&web).unwrap() else {
        panic!("not running")
    };
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    wait_until("the kill is recorded", || {
        matches!(rt.state(&web), Ok(ContainerState::Exited { .. }))
    });
    assert!(matches!(
        rt.state(&web).unwrap(),
        ContainerState::Exited { code: 137, .. }
    ));
    rt.remove(&web).unwrap();
    assert!(rt.state(&web).is_err(), "removed");
    assert!(
        !root.join("containers").join(&web).exists(),
        "nothing left on disk"
    );

    // Output and exit codes of short commands.
    let echo = format!("echo-{tag}");
    rt.create(
        &spec(
            &echo,
            None,
            Some(&["sh", "-c", "echo out-line; echo err-line >&2; exit 3"]),
        ),
        &image,
    )
    .unwrap();
    rt.start(&echo).unwrap();
    wait_until("the command exits", || {
        matches!(rt.state(&echo), Ok(ContainerState::Exited { .. }))
    });
    assert!(matches!(
        rt.state(&echo).unwrap(),
        ContainerState::Exited { code: 3, .. }
    ));
    let logs = rt.logs(&echo).unwrap();
    assert!(logs.contains("out-line") && logs.contains("err-line"), "{logs}");
    rt.remove(&echo).unwrap();

    // The root filesystem is read-only; /tmp is writable.
    let ro = format!("ro-{tag}");
    rt.create(
        &spec(
            &ro,
            None,
            Some(&[
                "sh",
                "-c",
                "touch /x 2>/dev/null && exit 1; touch /tmp/y && exit 0",
            ]),
        ),
        &image,
    )
    .unwrap();
    rt.start(&ro).unwrap();
    wait_until("the check exits", || {
        matches!(rt.state(&ro), Ok(ContainerState::Exited { .. }))
    });
    assert!(
        matches!(rt.state(&ro).unwrap(), ContainerState::Exited { code: 0, .. }),
        "{}",
        rt.logs(&ro).unwrap()
    );
    rt.remove(&ro).unwrap();

    // Read-only containers share the image's root filesystem, unpacked once; a writable root is a
    // private copy, and what is written there never reaches the shared one.
    let shared = root
        .join("rootfs")
        .join(image.manifest_digest.trim_start_matches("sha256:"));
    assert!(shared.join("bin/busybox").exists(), "the shared root");
    let rw = format!("rw-{tag}");
    let mut writable = spec(&rw, None, Some(&["sh", "-c", "touch /x && exit 0"]));
    writable.writable_root = true;
    rt.create(&writable, &image).unwrap();
    assert!(
        root.join("containers")
            .join(&rw)
            .join("rootfs/bin/busybox")
            .exists()
    );
    rt.start(&rw).unwrap();
    wait_until("the writer exits", || {
        matches!(rt.state(&rw), Ok(ContainerState::Exited { .. }))
    });
    assert!(
        matches!(rt.state(&rw).unwrap(), ContainerState::Exited { code: 0, .. }),
        "{}",
        rt.logs(&rw).unwrap()
    );
    assert!(!shared.join("x").exists(), "the shared root is untouched");
    rt.remove(&rw).unwrap();

    // Stop: TERM first; a process that ignores it is killed after the grace.
    let stubborn = format!("stubborn-{tag}");
    rt.create(
        &spec(
            &stubborn,
            None,
            Some(&["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]),
        ),
        &image,
    )
    .unwrap();
    rt.start(&stubborn).unwrap();
    let t = Instant::now();
    let end = rt.stop(&stubborn, Duration::from_millis(300)).unwrap();
    assert!(matches!(end, ContainerState::Exited { code: 137, .. }), "{end:?}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    rt.remove(&stubborn).unwrap();

    // Bad input: an id that cannot be a directory, a taken id, starting what does not exist.
    let err = rt.create(&spec("../escape", None, None), &image).unwrap_err();
    assert!(
        matches!(err, OciError::Container { .. }) && err.to_string().contains("not a valid container id")
    );
    let dup = format!("dup-{tag}");
    rt.create(&spec(&dup, None, Some(&["true"])), &image).unwrap();
    let err = rt.create(&spec(&dup, None, None), &image).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    rt.remove(&dup).unwrap();
    assert!(rt.start("never-made").is_err());
}
