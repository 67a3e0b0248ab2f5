//! Identifiers and time stamps chosen by the proposer (never inside `apply`).
use rand::Rng;

/// A random 128-bit uid, formatted like a UUID.
pub(crate) fn uid() -> String {
    skiff_controllers::random_uid()
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
