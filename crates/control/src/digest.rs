//! Hashing and comparing secrets (tokens are stored as SHA-256 and compared in constant time).
use sha2::{Digest, Sha256};

/// The lowercase hex SHA-256 of a token secret, as tokens store it.
pub(crate) fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
