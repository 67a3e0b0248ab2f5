//! Out of file descriptors, a listener pauses instead of spinning, logs at a bounded rate,
//! and serves again once descriptors are free.
//!
//! The server runs in a child process (this test binary again, with `SKIFF_LISTEN_CHILD` set)
//! whose open-file limit is a few descriptors above what it already uses, so its accepts fail
//! with EMFILE while the parent holds connections; the parent is not limited.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_listen::{Guard, Limits};

const CHILD: &str = "SKIFF_LISTEN_CHILD";

/// The child: limits its descriptors, prints its address, serves until killed.
#[test]
fn child_server() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tracing_subscriber::fmt().with_writer(std::io::stderr).init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let limit = rustix::process::Rlimit {
            current: Some(open + 6),
            maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
        println!("{}", listener.local_addr().unwrap());
        // A cap far above the descriptors: accepting is what fails.
        let limits = Limits {
            max_connections: 10_000,
            max_per_source: 10_000,
            ..Limits::for_listener(10_000)
        };
        let guard = Guard::new("child", limits);
        loop {
            let (stream, _, slot) = guard.accept(&listener).await;
            let builder = skiff_listen::http1(guard.limits());
            tokio::spawn(async move {
                let svc = slot.track(hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("ok")))
                }));
                slot.run(builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc))
                    .await;
            });
        }
    });
}

/// CPU time (user + system, clock ticks) the process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Descriptors the process `pid` has open.
fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// The soft open-file limit of the process `pid`.
fn child_fd_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

fn get(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn out_of_descriptors_the_listener_pauses_logs_rarely_and_recovers() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_server", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child printed no address"
        );
        // The harness may have written "test child_server ... " on the same line.
        if let Some(Ok(a)) = line.split_whitespace().last().map(str::parse) {
            break a;
        }
    };
    let pid = child.id();
    // Killed however the test ends (a failed assertion must not leave the server running).
    struct Reap(u32);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = Command::new("kill").args(["-9", &self.0.to_string()]).status();
        }
    }
    let _reap = Reap(pid);
    // Far more connections than the child has descriptors left (but fewer than the listen
    // backlog, which holds the ones it cannot accept); each sends half a request.
    let mut held = Vec::new();
    for i in 0..100 {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        held.push(s);
    }
    // Once the child holds every descriptor it may, its accepts fail.
    let deadline = Instant::now() + Duration::from_secs(10);
    let limit = child_fd_limit(pid);
    while open_fds(pid) < limit {
        assert!(
            Instant::now() < deadline,
            "the child never ran out of descriptors"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Watch its CPU time for a few seconds of failing accepts.
    let before = cpu_ticks(pid);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert!(open_fds(pid) > 0, "the child exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    let spent = cpu_ticks(pid) - before;
    let ticks_per_s = rustix::param::clock_ticks_per_second();
    // A spinning accept loop burns a whole core (100 ticks per second); a pausing one almost
    // nothing.
    assert!(
        spent < ticks_per_s * started.elapsed().as_secs() / 5,
        "the child used {spent} ticks in {:?} with its accepts failing",
        started.elapsed()
    );
    // Free the descriptors: the half-sent requests are dropped, and the listener serves again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if get(addr).is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            break;
        }
        assert!(Instant::now() < deadline, "the listener did not serve again");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let failures = log.matches("accept failed").count();
    assert!(failures >= 1, "the failure was logged:\n{log}");
    assert!(
        failures <= 2,
        "{failures} lines in 3 s (one per 10 s expected):\n{log}"
    );
}
