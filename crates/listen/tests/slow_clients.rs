//! Real loopback connections against a hyper server behind a guard: slow clients recycle their
//! own slots, prompt clients are served, the header timeout closes half-sent requests, and a
//! connection serving a request is never the one closed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use skiff_listen::{Guard, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// What [`server`] gives the test.
struct Server {
    addr: SocketAddr,
    guard: Guard,
    /// Send `true` to answer the waiting `/slow` requests.
    release: tokio::sync::watch::Sender<bool>,
    /// `/slow` requests in service (their handler running).
    slow_in_service: Arc<AtomicUsize>,
}

/// Serves `/` (answers at once) and `/slow` (answers once the returned sender says `true`)
/// behind a guard.
async fn server(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let guard = Guard::new("test", limits);
    let g = guard.clone();
    let (release, released) = tokio::sync::watch::channel(false);
    let slow_in_service = Arc::new(AtomicUsize::new(0));
    let in_service = slow_in_service.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _, slot) = g.accept(&listener).await;
            let builder = skiff_listen::http1(g.limits());
            let released = released.clone();
            let in_service = in_service.clone();
            tokio::spawn(async move {
                let svc = slot.track(hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| {
                        let mut released = released.clone();
                        let in_service = in_service.clone();
                        async move {
                            if req.uri().path() == "/slow" {
                                in_service.fetch_add(1, Ordering::SeqCst);
                                let _ = released.wait_for(|r| *r).await;
                            }
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    },
                ));
                slot.run(builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc))
                    .await;
            });
        }
    });
    Server {
        addr,
        guard,
        release,
        slow_in_service,
    }
}

/// A connection from `source` that sends half a request head and then nothing.
async fn slow(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(to).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    s
}

/// One complete request on a new connection; the status line's code.
async fn get(to: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(to).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))
}

/// Whether the server closed `s` (EOF or reset) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408/400 before closing is fine: keep reading until the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_slow_connections_recycles_its_own_slots_and_prompt_clients_are_served() {
    let limits = Limits::for_listener(32).per_source(16);
    let Server { addr, guard, .. } = server(limits).await;
    // Ten times the cap, from the same address as the prompt client and from another.
    let mut flood = Vec::new();
    for i in 0..320 {
        let source = if i % 2 == 0 { "127.0.0.1" } else { "127.0.0.2" };
        flood.push(slow(source, addr).await);
        if i % 40 == 0 {
            assert_eq!(
                get(addr, "/").await.unwrap(),
                200,
                "a prompt client during the flood"
            );
        }
    }
    assert!(guard.held() <= 32, "held {} connections", guard.held());
    for _ in 0..20 {
        assert_eq!(get(addr, "/").await.unwrap(), 200);
    }
    // The oldest slow connections were closed to make room; the newest are still held.
    let mut oldest = flood.remove(0);
    assert!(closed_within(&mut oldest, Duration::from_secs(2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_timeout_closes_a_half_sent_request_and_an_idle_kept_alive_connection() {
    let limits = Limits::for_listener(32).header_timeout(Duration::from_millis(500));
    let Server { addr, guard, .. } = server(limits).await;
    let mut half = slow("127.0.0.1", addr).await;
    let started = Instant::now();
    assert!(closed_within(&mut half, Duration::from_secs(5)).await);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "closed after {took:?}, before the timeout"
    );

    // A kept-alive connection that answered one request and then went quiet.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut kept, Duration::from_secs(5)).await);
    let deadline = Instant::now() + Duration::from_secs(5);
    while guard.held() > 0 {
        assert!(
            Instant::now() < deadline,
            "held {} after the timeouts",
            guard.held()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_serving_a_request_is_never_closed_to_make_room() {
    let limits = Limits::for_listener(16).per_source(16);
    let Server {
        addr,
        guard,
        release,
        slow_in_service,
    } = server(limits.clone()).await;
    let cap = limits.max_connections;
    // Fill every slot with a request in service.
    let mut busy = Vec::new();
    for _ in 0..cap {
        busy.push(tokio::spawn(get(addr, "/slow")));
    }
    // Every connection held, and every request in its handler (a connection whose request
    // head has not been read yet is still idle, and may be closed to make room).
    let deadline = Instant::now() + Duration::from_secs(2);
    while guard.held() < cap || slow_in_service.load(Ordering::SeqCst) < cap {
        assert!(
            Instant::now() < deadline,
            "held {} of {cap}, {} in service",
            guard.held(),
            slow_in_service.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Now a new connection is refused (closed at once), and nobody in service is cut off.
    assert!(
        get(addr, "/").await.is_err(),
        "a connection beyond the cap is refused"
    );
    release.send_replace(true);
    for b in busy {
        assert_eq!(b.await.unwrap().unwrap(), 200);
    }
    assert_eq!(
        get(addr, "/").await.unwrap(),
        200,
        "served again once requests finished"
    );
}
