//! The runtime-plugin protocol end to end: a real `skiff-oci serve` process on a Unix socket
//! imports an image, creates and starts a busybox httpd container, is killed with SIGKILL and
//! started again, re-adopts the running container, stops and removes it; bad requests get clear
//! errors with the documented status codes.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use skiff_oci::ImageStore;

#[path = "support/busybox.rs"]
mod busybox;
use busybox::{busybox_image, tools};

struct Plugin(Child);

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_plugin(socket: &Path, state: &Path, runc: &Path) -> Plugin {
    start_plugin_with(Command::new(env!("CARGO_BIN_EXE_skiff-oci")), socket, state, runc)
}

/// Starts `cmd serve …` (`cmd` runs the plugin binary, possibly through a wrapper).
fn start_plugin_with(mut cmd: Command, socket: &Path, state: &Path, runc: &Path) -> Plugin {
    let child = cmd
        .arg("serve")
        .arg("--socket")
        .arg(socket)
        .arg("--state")
        .arg(state)
        .arg("--runc")
        .arg(runc)
        .arg("--insecure-registry")
        .arg("127.0.0.1:1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(state.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < end, "the plugin did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Plugin(child)
}

/// One HTTP/1.1 request on the plugin's socket: (status, body).
async fn call(socket: &Path, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "plugin")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn http_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains("hello from a container")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_protocol_runs_a_container_that_survives_a_plugin_restart() {
    let Some((runc, busybox)) = tools() else {
        skiff_testkit::tool_missing("runc or busybox-static (or root)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    // The image layout the plugin imports (built from the host's busybox).
    let scratch = ImageStore::open(work.path().join("scratch"), Vec::new()).unwrap();
    busybox_image(&scratch, work.path(), &busybox);
    let layout = work.path().join("layout");
    let socket = work.path().join("oci.sock");
    let state = work.path().join("state");
    let plugin = start_plugin(&socket, &state, &runc);
    // Only this user may speak to the plugin or read its state.
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777
    };
    assert_eq!(mode(&socket), 0o600, "the plugin socket");
    assert_eq!(mode(&state), 0o700, "the state directory");

    let (status, body) = call(&socket, "GET", "/v1/handshake", None).await;
    assert_eq!(status, 200);
    let hs = parse(&body);
    assert_eq!(
        (hs["protocol"].as_u64(), hs["kinds"].clone()),
        (Some(1), json!(["oci"]))
    );

    let (status, body) = call(
        &socket,
        "POST",
        "/v1/images",
        Some(json!({"layout": layout, "tag": "v1"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let image_ref = parse(&body)["reference"].as_str().unwrap().to_owned();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = format!("web-{}", std::process::id());
    let (status, body) = call(
        &socket,
        "POST",
        "/v1/containers",
        Some(json!({"id": id, "image": image_ref, "port": port, "memory": 67108864})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(parse(&body)["state"]["state"], "created");
    let (status, body) = call(&socket, "POST", &format!("/v1/containers/{id}/start"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(parse(&body)["state"]["state"], "running", "{body}");
    let end = Instant::now() + Duration::from_secs(30);
    while !http_ok(port) {
        assert!(Instant::now() < end, "the container's httpd did not answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // kill -9 the plugin, start it again: the container kept running and is listed as such.
    drop(plugin);
    assert!(http_ok(port), "the container outlives its plugin");
    let _plugin = start_plugin(&socket, &state, &runc);
    let (status, body) = call(&socket, "GET", "/v1/containers", None).await;
    assert_eq!(status, 200);
    let list = parse(&body);
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["spec"]["id"] == id.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(mine["state"]["state"], "running", "re-adopted: {body}");

    let (status, body) = call(
        &socket,
        "POST",
        &format!("/v1/containers/{id}/stop"),
        Some(json!({"graceMillis": 2000})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(parse(&body)["state"]["state"], "exited");
    let (status, _) = call(&socket, "GET", &format!("/v1/containers/{id}/logs"), None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&socket, "DELETE", &format!("/v1/containers/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, body) = call(&socket, "GET", &format!("/v1/containers/{id}"), None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(parse(&body)["code"], "ContainerNotFound");

    // Followed logs stream what the container writes and end when it exits.
    let talker = format!("{id}-talker");
    let (status, body) = call(
        &socket,
        "POST",
        "/v1/containers",
        Some(json!({"id": talker, "image": image_ref,
            "command": ["sh", "-c", "echo first-line; sleep 1; echo second-line"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(&socket, "POST", &format!("/v1/containers/{talker}/start"), None).await;
    assert_eq!(status, 200, "{body}");
    let followed = tokio::time::timeout(
        Duration::from_secs(30),
        call(
            &socket,
            "GET",
            &format!("/v1/containers/{talker}/logs?follow=true"),
            None,
        ),
    )
    .await
    .expect("a followed log ends when its container exits");
    assert_eq!(followed.0, 200);
    let (a, b) = (followed.1.find("first-line"), followed.1.find("second-line"));
    assert!(a.is_some() && b.is_some() && a < b, "{}", followed.1);
    let (status, _) = call(&socket, "DELETE", &format!("/v1/containers/{talker}"), None).await;
    assert_eq!(status, 204);

    // Bad input: each with its status and a message saying what to do.
    let (status, body) = call(
        &socket,
        "POST",
        "/v1/containers",
        Some(json!({"id": "x", "image": "nowhere/none:v1"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        parse(&body)["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/images first"),
        "{body}"
    );
    let (status, body) = call(
        &socket,
        "POST",
        "/v1/images",
        Some(json!({"image": "127.0.0.1:1/none/none:v1"})),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(parse(&body)["code"], "RegistryUnreachable");
    let (status, body) = call(&socket, "POST", "/v1/images", Some(json!({"colour": "blue"}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &socket,
        "POST",
        "/v1/containers",
        Some(json!({"id": "../up", "image": image_ref})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not a valid container id"), "{body}");
    assert_eq!(call(&socket, "GET", "/v2/nothing", None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_beyond_the_open_file_limit_leave_the_socket_answering() {
    let Some((runc, _)) = tools() else {
        skiff_testkit::tool_missing("runc or busybox-static (or root)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let socket = work.path().join("oci.sock");
    let state = work.path().join("state");
    // The plugin may open 256 files; the flood holds 400 connections that each send half a
    // request head and then nothing.
    let mut limited = Command::new("prlimit");
    limited
        .arg("--nofile=256:256")
        .arg(env!("CARGO_BIN_EXE_skiff-oci"));
    let _plugin = start_plugin_with(limited, &socket, &state, &runc);
    let mut flood = Vec::new();
    for i in 0..400 {
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        std::io::Write::write_all(&mut s, b"GET /v1/handshake HTTP/1.1\r\nHost: plugin\r\n").unwrap();
        flood.push(s);
        if i % 100 == 99 {
            let answered = tokio::time::timeout(
                Duration::from_secs(3),
                call(&socket, "GET", "/v1/handshake", None),
            );
            let (status, body) = answered.await.expect("the plugin answered during the flood");
            assert_eq!(status, 200, "{body}");
        }
    }
    // The slow connections are closed: the oldest to make room, the rest by the header timeout.
    let deadline = Instant::now() + Duration::from_secs(25);
    for mut s in flood {
        s.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        let mut buf = [0u8; 256];
        loop {
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    panic!("a slow connection is still open after the header timeout")
                }
                Err(_) => break,
            }
        }
    }
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap_or_default();
    assert!(
        log.len() < 16 * 1024,
        "the log grew to {} bytes:\n{log}",
        log.len()
    );
}
