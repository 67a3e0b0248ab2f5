//! Join tokens as users type them: each malformed token gets a precise error.

use skiff_pki::JoinToken;

#[test]
fn malformed_tokens_give_precise_errors() {
    let hash = "0".repeat(64);
    for (input, want) in [
        ("hello", "join token: expected prefix SKF1"),
        ("SKF1abc::x", "join token: ca hash must be 64 hex characters"),
        (&format!("SKF1{hash}x"), "join token: missing '::'"),
        (
            &format!("SKF1{hash}::"),
            "join token: the secret after '::' is empty",
        ),
    ] {
        let err = input.parse::<JoinToken>().unwrap_err().to_string();
        assert!(err.starts_with(want), "{input}: {err}");
    }
}
