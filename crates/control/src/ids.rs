//! Identifiers and time stamps chosen by the proposer (never inside `apply`).
use rand::Rng;

/// A random 128-bit uid, formatted like a UUID.
pub(crate) fn uid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random suffix for generated names (no vowels, so no words).
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..5)
        .map(|_| ALPHABET[r.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A random secret token (256 bits, hex).
pub(crate) fn token() -> String {
    let b: [u8; 32] = rand::rng().random();
    hex::encode(b)
}

/// A random request id (64 bits, hex) for requests that bring none.
pub(crate) fn request_id() -> String {
    let b: [u8; 8] = rand::rng().random();
    hex::encode(b)
}

/// Now, RFC 3339 with seconds.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
