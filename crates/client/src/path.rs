//! [`ApiPath`]: the one place where names, keys and other data become part of a URL path.
//!
//! Every request the client sends is addressed by an `ApiPath`, and the only way to put data in
//! one is [`ApiPath::seg`], which percent-encodes everything outside RFC 3986's unreserved set —
//! `/`, `%`, `?`, `#` and spaces included — so a value can never end its own segment, start a
//! query, or reach another route. The two values that no encoding can carry, `.` and `..`, are
//! refused: URL parsers fold them (and their `%2e` spellings) away as dot segments, which would
//! turn `keys/..` into a request for the store itself.
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::ClientError;

/// What stays as it is in a segment: letters, digits and `-._~` (RFC 3986 unreserved); every
/// other byte is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path of Skiff's API, such as `/api/v1/namespaces/default/pods/web-1`, whose data segments
/// are encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath(String);

impl ApiPath {
    /// `/api/v1`, the root of every API route.
    pub fn api() -> Self {
        Self::root().lit("api/v1")
    }

    /// The empty path, to build the paths of other protocols (such as the runtime plugins').
    pub fn root() -> Self {
        ApiPath(String::new())
    }

    /// Appends fixed segments written in code, such as `namespaces` or `keyvalue/readings`;
    /// never pass data here (use [`ApiPath::seg`]).
    ///
    /// # Panics
    /// When `fixed` is empty or holds anything but ASCII letters, digits, `-` and `/`: such a
    /// call is a bug in the code that wrote it.
    #[must_use]
    pub fn lit(mut self, fixed: &'static str) -> Self {
        assert!(
            !fixed.is_empty()
                && fixed
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'/'),
            "ApiPath::lit takes fixed route segments only, not {fixed:?}"
        );
        self.0.push('/');
        self.0.push_str(fixed.trim_matches('/'));
        self
    }

    /// Appends one segment holding `value`, encoded so that it stays one segment. `what` names
    /// the value for the error (`"pod name"`, `"key"`).
    ///
    /// # Errors
    /// [`ClientError::InvalidPath`] when `value` is empty, `.` or `..`.
    pub fn seg(mut self, what: &str, value: &str) -> Result<Self, ClientError> {
        let why = match value {
            "" => Some("it is empty"),
            "." | ".." => {
                Some("`.` and `..` cannot travel in a URL path (they mean \"this\" and \"parent\" there)")
            }
            _ => None,
        };
        if let Some(why) = why {
            return Err(ClientError::InvalidPath {
                what: what.to_owned(),
                value: value.to_owned(),
                why: why.to_owned(),
            });
        }
        self.0.push('/');
        self.0.extend(utf8_percent_encode(value, SEGMENT));
        Ok(self)
    }

    /// The encoded path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ApiPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::ApiPath;

    fn key(k: &str) -> String {
        ApiPath::api()
            .lit("keys")
            .seg("key", k)
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn data_never_leaves_its_segment() {
        assert_eq!(key("a/b"), "/api/v1/keys/a%2Fb");
        assert_eq!(
            key("../../../../../deployments"),
            "/api/v1/keys/..%2F..%2F..%2F..%2F..%2Fdeployments"
        );
        assert_eq!(key("%2e%2e"), "/api/v1/keys/%252e%252e");
        assert_eq!(key("x?y#z w"), "/api/v1/keys/x%3Fy%23z%20w");
        assert_eq!(key("kitchen.count-1_~"), "/api/v1/keys/kitchen.count-1_~");
        assert_eq!(key("é"), "/api/v1/keys/%C3%A9");
    }

    #[test]
    fn dot_segments_and_empty_values_are_refused_with_the_reason() {
        for bad in ["", ".", ".."] {
            let e = key(bad);
            assert!(e.starts_with("error: "), "{bad:?} gave {e}");
            assert!(e.contains("key"), "{e}");
        }
        assert!(key("..").contains("`.` and `..`"));
        assert_eq!(key("..."), "/api/v1/keys/...");
    }

    #[test]
    #[should_panic(expected = "fixed route segments only")]
    fn data_in_a_fixed_segment_is_a_bug() {
        let _ = ApiPath::api().lit("a/../b");
    }
}
