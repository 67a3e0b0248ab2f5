//! Bad artifacts are refused at the door: an upload that is not a valid WebAssembly component
//! answers 422 `InvalidComponent` with the validator's message and offset, and nothing is
//! stored — neither in the artifact store nor in the replicated state.
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use skiff_control::{ControlConfig, ControlPlane};
use tower::ServiceExt;

fn hello() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/hello-http/hello.wasm"
    );
    std::fs::read(path).expect("examples/hello-http/hello.wasm")
}

async fn upload(plane: &ControlPlane, bytes: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/artifacts")
        .header("authorization", format!("Bearer {}", plane.admin_token()))
        .header("content-type", "application/wasm")
        .body(Body::from(bytes))
        .unwrap();
    let resp = plane.router().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The files of the artifact store.
fn stored(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("artifacts/sha256"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn invalid_uploads_are_refused_with_the_validators_message_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plane = ControlPlane::open(ControlConfig::new(dir.path())).await.unwrap();
    let hello = hello();
    let mut flipped = hello.clone();
    flipped[8] ^= 0x40;
    let revision = plane.reader().revision().unwrap();

    // (case, bytes, details.problem, words of the message)
    let cases: Vec<(&str, Vec<u8>, &str, Vec<&str>)> = vec![
        (
            "truncated",
            hello[..hello.len() / 2].to_vec(),
            "Invalid",
            vec![
                "not a valid WebAssembly component",
                "offset",
                "truncated",
                "rebuild the component",
            ],
        ),
        (
            "bit-flipped",
            flipped,
            "Invalid",
            vec!["malformed section id", "offset 10"],
        ),
        (
            "not wasm",
            b"#!/bin/sh\necho hi\n".to_vec(),
            "NotWasm",
            vec!["not WebAssembly", ".wasm"],
        ),
        (
            "core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "CoreModule",
            vec!["core WebAssembly module", "not a component"],
        ),
        ("empty", Vec::new(), "Empty", vec!["is empty"]),
    ];
    for (case, bytes, problem, words) in cases {
        let size = bytes.len();
        let (status, body) = upload(&plane, bytes).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {body}");
        assert_eq!(body["code"], "InvalidComponent", "{case}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("the uploaded artifact ({size} bytes, sha256:")),
            "{case}: {message}"
        );
        assert!(message.ends_with("nothing was stored"), "{case}: {message}");
        for w in words {
            assert!(message.contains(w), "{case}: {message:?} lacks {w:?}");
        }
        let details = &body["details"];
        assert_eq!(details["problem"], problem, "{case}: {body}");
        assert_eq!(details["size"], size, "{case}");
        if problem == "Invalid" {
            assert!(details["validator"].is_string(), "{case}: {body}");
            assert!(details["offset"].as_u64().unwrap() > 0, "{case}: {body}");
        }
    }
    assert_eq!(
        stored(dir.path()),
        Vec::<String>::new(),
        "nothing reached the store"
    );
    assert_eq!(
        plane.reader().revision().unwrap(),
        revision,
        "nothing was written to the replicated state"
    );

    // A valid component is stored, under its digest.
    let (status, body) = upload(&plane, hello).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let digest = body["digest"].as_str().unwrap();
    assert_eq!(stored(dir.path()), [digest.trim_start_matches("sha256:")]);
    plane.shutdown();
}
