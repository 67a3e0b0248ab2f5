//! Join tokens: a secret bound to the cluster CA, `SKF1<ca hash>::<secret>`.
//!
//! The CA hash lets a joining node authenticate the cluster *before* it reveals the secret: it
//! accepts only a server whose CA certificate hashes to the token's value. The secret then lets
//! the cluster authenticate the joining node. Expiry and revocation are the control plane's.

use std::fmt;
use std::str::FromStr;

use crate::PkiError;

/// The prefix (and format version) of every join token.
pub const TOKEN_PREFIX: &str = "SKF1";
const SEPARATOR: &str = "::";
const MAX_SECRET_LEN: usize = 256;

/// A join token: the hex SHA-256 of the cluster CA certificate and a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// 64 lowercase hex characters: SHA-256 of the CA certificate's DER.
    pub ca_hash: String,
    /// The secret: 1–256 printable ASCII characters without spaces or `::`.
    pub secret: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_hash", &self.ca_hash)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl JoinToken {
    /// A token for the CA with this hash and a fresh random secret (32 bytes, hex).
    ///
    /// # Errors
    /// [`PkiError::InvalidToken`] if `ca_hash` is not 64 hex characters.
    pub fn generate(ca_hash: &str) -> Result<Self, PkiError> {
        let secret: [u8; 32] = rand::random();
        Ok(JoinToken {
            ca_hash: parse_ca_hash(ca_hash)?,
            secret: hex::encode(secret),
        })
    }

    /// Compares `candidate` with this token's secret in constant time (for the given length).
    pub fn secret_matches(&self, candidate: &str) -> bool {
        secrets_equal(&self.secret, candidate)
    }
}

/// Compares two secrets without an early exit on the first differing byte.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}{}{SEPARATOR}{}", self.ca_hash, self.secret)
    }
}

impl FromStr for JoinToken {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| PkiError::InvalidToken { reason };
        let s = s.trim();
        let rest = s.strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
            bad(format!(
                "expected prefix {TOKEN_PREFIX} followed by the 64-character CA hash, '::' and the \
                 secret; copy the whole token printed by `skiff server`"
            ))
        })?;
        let (hash, secret) = rest.split_once(SEPARATOR).ok_or_else(|| {
            bad(format!(
                "missing '::' between the CA hash and the secret (expected {TOKEN_PREFIX}<ca hash>::<secret>)"
            ))
        })?;
        let ca_hash = parse_ca_hash(hash)?;
        if secret.is_empty() {
            return Err(bad("the secret after '::' is empty".into()));
        }
        if secret.len() > MAX_SECRET_LEN {
            return Err(bad(format!(
                "the secret is {} characters, at most {MAX_SECRET_LEN} are allowed",
                secret.len()
            )));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) || secret.contains(SEPARATOR) {
            return Err(bad(
                "the secret may contain only printable ASCII characters without spaces or '::'".into(),
            ));
        }
        Ok(JoinToken {
            ca_hash,
            secret: secret.to_owned(),
        })
    }
}

fn parse_ca_hash(hash: &str) -> Result<String, PkiError> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PkiError::InvalidToken {
            reason: format!(
                "ca hash must be 64 hex characters (sha256 of the cluster CA), got {} characters{}",
                hash.len(),
                if hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    ""
                } else {
                    " with non-hex characters"
                }
            ),
        });
    }
    Ok(hash.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

    #[test]
    fn round_trip() {
        let t = JoinToken::generate(HASH).unwrap();
        let s = t.to_string();
        assert!(s.starts_with("SKF1ab12"));
        assert_eq!(s.parse::<JoinToken>().unwrap(), t);
        assert!(t.secret_matches(&t.secret));
        assert!(!t.secret_matches("nope"));
        assert!(!format!("{t:?}").contains(&t.secret));
        // Upper-case hashes are accepted and normalised.
        let upper = format!("SKF1{}::s", HASH.to_uppercase());
        assert_eq!(upper.parse::<JoinToken>().unwrap().ca_hash, HASH);
    }

    /// Each malformed token gets the error that names its defect.
    #[test]
    fn malformed_tokens_get_precise_errors() {
        let cases = [
            ("", "expected prefix SKF1"),
            ("K10abc::def", "expected prefix SKF1"),
            (&format!("SKF2{HASH}::s"), "expected prefix SKF1"),
            (&format!("SKF1{HASH}s"), "missing '::'"),
            ("SKF1abcd::s", "ca hash must be 64 hex characters"),
            (&format!("SKF1{}zz::s", &HASH[2..]), "non-hex characters"),
            (&format!("SKF1{HASH}::"), "the secret after '::' is empty"),
            (&format!("SKF1{HASH}::a b"), "printable ASCII"),
            (&format!("SKF1{HASH}::a::b"), "printable ASCII"),
            (&format!("SKF1{HASH}::{}", "x".repeat(257)), "at most 256"),
        ];
        for (input, want) in cases {
            let err = input.parse::<JoinToken>().unwrap_err().to_string();
            assert!(err.starts_with("join token: "), "{input:?}: {err}");
            assert!(err.contains(want), "{input:?}: got {err:?}, want {want:?}");
        }
        assert!(JoinToken::generate("xyz").is_err());
    }
}
