//! `skiff-manifest`: what `skiff apply -f` reads, as YAML and as JSON, from arbitrary bytes
//! (non-UTF-8 input goes through a file, the only path where it can arrive). Nothing may panic;
//! every object a load returns is valid; the objects of a successful load, written back as a
//! JSON array, load again to the same objects.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use skiff_manifest::{Document, load_path, load_str_in};

/// `wasm.path`s resolve here: a directory that does not exist, so no artifact check passes.
const NO_DIR: &str = "/nonexistent/skiff-fuzz";

/// A private scratch file for non-UTF-8 input.
fn scratch() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("skiff-fuzz-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        dir.join("input.yaml")
    })
}

fn check(docs: &[Document]) {
    assert!(!docs.is_empty(), "a successful load returned no objects");
    for doc in docs {
        doc.object.validate().expect("a loaded object is valid");
    }
    let objects: Vec<_> = docs.iter().map(|d| &d.object).collect();
    let json = serde_json::to_string(&objects).expect("objects serialize");
    let again = load_str_in(&json, "again.json", Path::new(NO_DIR))
        .unwrap_or_else(|e| panic!("loaded objects, written as JSON, do not load again: {e}\n{json}"));
    let again: Vec<_> = again.iter().map(|d| &d.object).collect();
    assert_eq!(again, objects, "objects changed through JSON");
}

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(text) => {
            for origin in ["fuzz.yaml", "fuzz.json"] {
                if let Ok(docs) = load_str_in(text, origin, Path::new(NO_DIR)) {
                    check(&docs);
                }
            }
        }
        Err(_) => {
            let file = scratch();
            std::fs::write(file, data).expect("writing the scratch file");
            let err = load_path(file).expect_err("non-UTF-8 manifests are refused");
            assert!(err.to_string().contains("is not UTF-8"), "{err}");
        }
    }
});
