//! The machine-readable codes of error answers: one enum shared by the server that writes them
//! and the clients that branch on them, so neither matches string literals. On the wire a code is
//! its name (`"NotFound"`); a code this version does not know is kept as [`ErrorCode::Other`].
use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $status:expr, )*) => {
        /// The `code` of an [`ErrorBody`](crate::ErrorBody).
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
            /// A code this version does not know (a newer server's); its wire name.
            Other(String),
        }

        impl ErrorCode {
            /// Its wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    $( ErrorCode::$name => stringify!($name), )*
                    ErrorCode::Other(s) => s,
                }
            }

            /// The HTTP status an answer with this code carries (502 for an unknown one).
            pub fn http_status(&self) -> u16 {
                match self {
                    $( ErrorCode::$name => $status, )*
                    ErrorCode::Other(_) => 502,
                }
            }

            /// Every known code.
            pub const ALL: &'static [ErrorCode] = &[$( ErrorCode::$name, )*];
        }

        impl From<String> for ErrorCode {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $( stringify!($name) => ErrorCode::$name, )*
                    _ => ErrorCode::Other(s),
                }
            }
        }
    };
}

codes! {
    /// The request cannot be read (bad JSON, YAML, query or path).
    BadRequest = 400,
    /// No or an unknown credential.
    Unauthorized = 401,
    /// A join token was refused.
    JoinRefused = 401,
    /// The caller may not do this.
    Forbidden = 403,
    /// The object (or its namespace) does not exist.
    NotFound = 404,
    /// The path does not take this method (`Allow` lists the ones it takes).
    MethodNotAllowed = 405,
    /// The object exists already.
    AlreadyExists = 409,
    /// The write was based on a stale `resourceVersion`.
    Conflict = 409,
    /// A node name is held by another node's identity.
    NodeNameTaken = 409,
    /// The pod is not bound to a node yet.
    NotScheduled = 409,
    /// A control-member change was refused.
    MembershipRefused = 409,
    /// A watch asked for history that was compacted: list again.
    Gone = 410,
    /// The request body is larger than allowed.
    TooLarge = 413,
    /// The body's `Content-Type` is not one the route reads.
    UnsupportedMediaType = 415,
    /// The object is not valid (field errors in `details`).
    Invalid = 422,
    /// An uploaded artifact is not a valid WebAssembly component (`details`: `digest`, `size`,
    /// `problem`, the `validator`'s message and the `offset` it stopped at); nothing was stored.
    InvalidComponent = 422,
    /// The write would take a namespace past one of its ResourceQuotas (the message names the
    /// quota and the amount).
    QuotaExceeded = 403,
    /// A topic holds as many undelivered events as it may.
    TopicFull = 429,
    /// The caller holds as many open watches as it may.
    TooManyWatches = 429,
    /// A key-value store is full.
    StoreFull = 507,
    /// The member's disk is below its free-space watermark: free space and retry.
    DiskFull = 507,
    /// Plain HTTP to an HTTPS-only API port.
    PlainHttpRefused = 400,
    /// The server failed; its log says why.
    Internal = 500,
    /// A node's answer to a relayed request (e.g. logs) was an error.
    NodeError = 502,
    /// No leader can take the write now; it was certainly not applied: retry.
    NoLeader = 503,
    /// The control plane cannot answer now.
    Unavailable = 503,
}

impl From<ErrorCode> for String {
    fn from(c: ErrorCode) -> Self {
        match c {
            ErrorCode::Other(s) => s,
            known => known.as_str().to_owned(),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_as_their_names_and_unknown_ones_survive() {
        for c in ErrorCode::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(&serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
            assert!((400..600).contains(&c.http_status()), "{c}");
        }
        let other: ErrorCode = serde_json::from_str("\"FromTheFuture\"").unwrap();
        assert_eq!(other, ErrorCode::Other("FromTheFuture".into()));
        assert_eq!(serde_json::to_string(&other).unwrap(), "\"FromTheFuture\"");
    }
}
