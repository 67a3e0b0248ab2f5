//! Acceptance for Secrets at rest (issue 5, item 4): a Secret's value never appears in the bytes
//! of the state dir (redb tables, the Raft log and its snapshots), in a backup, or in the logs,
//! while the API gives it back to an authorised caller.
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use skiff_control::{ControlConfig, ControlPlane};
use tower::ServiceExt;

/// Every log line of the test process, at every level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn call(plane: &ControlPlane, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {}", plane.admin_token()))
        .header("content-type", "application/json")
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let resp = plane.router().oneshot(req).await.unwrap();
    let status = resp.status();
    (
        status,
        resp.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every file under `dir`, recursively, with its bytes.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_are_only_ciphertext_at_rest_in_snapshots_backups_and_logs() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let marker = format!(
        "marker-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let marker = format!("{marker}-Zq7vX3");
    let dir = tempfile::tempdir().unwrap();
    let mut config = ControlConfig::new(dir.path());
    config.snapshot_every = 5;
    config.keep_entries = 1;
    let plane = ControlPlane::open(config).await.unwrap();

    let secret = json!({"apiVersion": "skiff.dev/v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "default"}, "data": {"password": marker}});
    let (s, body) = call(&plane, "POST", "/api/v1/namespaces/default/secrets", Some(secret)).await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
    let created: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        created["data"]["password"],
        marker.as_str(),
        "the create answer is plain"
    );

    // Enough further writes that the log is compacted into a snapshot past the Secret's entry.
    let end = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    loop {
        let (_, body) = call(&plane, "GET", "/api/v1/cluster", None).await;
        let info: Value = serde_json::from_slice(&body).unwrap();
        if info["raft"]["snapshotIndex"].as_u64().unwrap_or(0) > 10 {
            break;
        }
        assert!(Instant::now() < end, "no raft snapshot was taken: {info}");
        let cm = json!({"apiVersion": "skiff.dev/v1", "kind": "ConfigMap",
            "metadata": {"name": format!("filler-{i}"), "namespace": "default"}, "data": {"i": i.to_string()}});
        let (s, _) = call(&plane, "POST", "/api/v1/namespaces/default/configmaps", Some(cm)).await;
        assert_eq!(s, StatusCode::CREATED);
        i += 1;
    }

    // Reads give the value back: get, list, watch.
    let (s, body) = call(&plane, "GET", "/api/v1/namespaces/default/secrets/db", None).await;
    assert_eq!(s, StatusCode::OK);
    let got: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(got["data"]["password"], marker.as_str());
    let (_, body) = call(&plane, "GET", "/api/v1/namespaces/default/secrets", None).await;
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["items"][0]["data"]["password"], marker.as_str());
    // A watch from revision 0 replays the history (the Secret's creation among it).
    let req = Request::builder()
        .uri("/api/v1/namespaces/default/secrets?watch=true")
        .header("authorization", format!("Bearer {}", plane.admin_token()))
        .body(Body::empty())
        .unwrap();
    let resp = plane.router().oneshot(req).await.unwrap();
    let mut stream = resp.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(10), stream.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first: Value = serde_json::from_slice(frame.data_ref().unwrap()).unwrap();
    assert_eq!(first["object"]["data"]["password"], marker.as_str(), "{first}");
    drop(stream);

    // A backup holds only ciphertext.
    let (s, backup) = call(&plane, "GET", "/api/v1/snapshot", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(contains(&backup, "enc:v1:"), "the backup holds the sealed value");
    assert!(!contains(&backup, &marker), "the backup holds the plaintext");

    plane.shutdown();
    drop(plane);
    // The state dir (state.redb with the tables, the Raft log and its snapshot; pki; ...).
    let state = files(dir.path());
    assert!(state.iter().any(|(p, _)| p.ends_with("state.redb")));
    for (path, bytes) in &state {
        assert!(
            !contains(bytes, &marker),
            "{} holds the plaintext",
            path.display()
        );
    }
    let redb = &state.iter().find(|(p, _)| p.ends_with("state.redb")).unwrap().1;
    assert!(contains(redb, "enc:v1:"), "state.redb holds the sealed value");
    let snapshot = state
        .iter()
        .find(|(p, _)| p.extension().is_some_and(|e| e == "snap"))
        .expect("a raft snapshot file in the state dir");
    assert!(
        contains(&snapshot.1, "enc:v1:"),
        "the snapshot file holds the sealed value"
    );

    // Restoring the backup into a new cluster: with the old secrets key copied into the new
    // state dir first, the value reads back; the new CA and tokens do not matter.
    let backup_file = dir.path().join("backup.skiff");
    std::fs::write(&backup_file, &backup).unwrap();
    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(restored_dir.path().join("pki")).unwrap();
    std::fs::copy(
        dir.path().join("pki/secrets.key"),
        restored_dir.path().join("pki/secrets.key"),
    )
    .unwrap();
    let mut config = ControlConfig::new(restored_dir.path());
    config.restore = Some(backup_file.clone());
    let restored = ControlPlane::open(config).await.unwrap();
    let (s, body) = call(&restored, "GET", "/api/v1/namespaces/default/secrets/db", None).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let got: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(got["data"]["password"], marker.as_str());
    restored.shutdown();
    // Without it, the values stay sealed and reads say why.
    let keyless_dir = tempfile::tempdir().unwrap();
    let mut config = ControlConfig::new(keyless_dir.path());
    config.restore = Some(backup_file);
    let keyless = ControlPlane::open(config).await.unwrap();
    let (s, body) = call(&keyless, "GET", "/api/v1/namespaces/default/secrets/db", None).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!contains(&body, &marker));
    keyless.shutdown();

    let logs = logs.0.lock().unwrap();
    assert!(!logs.is_empty(), "the test captured the logs");
    assert!(!contains(&logs, &marker), "the logs hold the plaintext");
}
