//! What is refused and why: data-driven cases over a real component and hand-made bytes.
use super::*;

/// The example HTTP component of the repository.
fn hello() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/hello-http/hello.wasm"
    );
    std::fs::read(path).expect("examples/hello-http/hello.wasm")
}

fn flipped(mut bytes: Vec<u8>, at: usize, mask: u8) -> Vec<u8> {
    bytes[at] ^= mask;
    bytes
}

#[test]
fn a_real_component_and_the_empty_component_pass() {
    assert_eq!(check_component(&hello()), Ok(()));
    assert_eq!(check_component(b"\0asm\x0d\0\x01\0"), Ok(()));
}

#[test]
fn each_kind_of_bad_input_is_refused_with_what_and_how_to_fix() {
    let hello = hello();
    let half = hello.len() / 2;
    // (case, bytes, expected variant name, words the message must hold)
    let cases: Vec<(&str, Vec<u8>, &str, Vec<&str>)> = vec![
        ("empty", Vec::new(), "Empty", vec!["is empty", "rebuild"]),
        (
            "text",
            b"hello, not wasm\n".to_vec(),
            "NotWasm",
            vec!["not WebAssembly", "68 65 6c 6c", ".wasm"],
        ),
        (
            "core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "CoreModule",
            vec!["core WebAssembly module", "not a component"],
        ),
        (
            "truncated in the middle",
            hello[..half].to_vec(),
            "Invalid",
            vec![
                "not a valid WebAssembly component",
                "offset",
                "rebuild the component",
                "truncated",
            ],
        ),
        (
            "truncated to the header and a section id",
            hello[..9].to_vec(),
            "Invalid",
            vec!["offset"],
        ),
        (
            "first section id bit-flipped",
            flipped(hello.clone(), 8, 0x40),
            "Invalid",
            vec!["malformed section id", "offset 10 of"],
        ),
        (
            "unknown version",
            flipped(hello.clone(), 4, 0x01),
            "Invalid",
            vec!["version"],
        ),
    ];
    for (case, bytes, variant, words) in cases {
        let err = check_component(&bytes).expect_err(case);
        let name = format!("{err:?}");
        assert!(name.starts_with(variant), "{case}: {name}");
        let message = err.to_string();
        for w in words {
            assert!(message.contains(w), "{case}: {message:?} lacks {w:?}");
        }
        if variant == "Invalid" {
            assert!(err.validator_message().is_some(), "{case}");
            assert!(err.offset() <= bytes.len(), "{case}");
        }
    }
}

#[test]
fn any_cut_inside_the_code_is_refused() {
    // Cuts inside the big core-module section of the example: every one is refused.
    let hello = hello();
    for cut in (100..hello.len() - 2000).step_by(997) {
        let err = check_component(&hello[..cut]).expect_err("truncated");
        assert!(
            matches!(err, InvalidArtifact::Invalid { .. }),
            "cut at {cut}: {err}"
        );
    }
}
