//! Client errors.
use skiff_api::ErrorBody;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection to the server.
    #[error(
        "cannot reach the Skiff server at {url}: {message} (is it running? check --server / SKIFF_SERVER)"
    )]
    Unreachable {
        /// The server URL.
        url: String,
        /// Transport message.
        message: String,
    },
    /// The token was rejected.
    #[error(
        "the server at {url} rejected the token: {message} (check --token / SKIFF_TOKEN, or the admin token in the state dir)"
    )]
    Unauthorized {
        /// The server URL.
        url: String,
        /// Server message.
        message: String,
    },
    /// The server answered with an error.
    #[error("{}", body.message)]
    Api {
        /// HTTP status.
        status: u16,
        /// The error body.
        body: ErrorBody,
    },
    /// A watch asked for history the server no longer keeps: list again.
    #[error("watch history is gone: {message}")]
    Gone {
        /// Server message.
        message: String,
    },
    /// The response did not parse.
    #[error("unexpected response from {url}: {message}")]
    Decode {
        /// The request URL.
        url: String,
        /// What did not parse.
        message: String,
    },
    /// The server accepted the request but did not answer in time. For a write the outcome is
    /// unknown: read the object to see whether it was applied.
    #[error(
        "no answer from {url} within {millis} ms (server paused, overloaded or partitioned?); a write may or may not have been applied"
    )]
    Timeout {
        /// The request URL.
        url: String,
        /// The time waited.
        millis: u64,
    },
    /// The node could not join: a refused, malformed or foreign token, or credentials of another
    /// node or cluster. Retrying does not help; the message says what to change.
    #[error("cannot join the cluster: {0}")]
    Join(String),
    /// A value cannot be put in a URL path (empty, `.` or `..`); nothing was sent.
    #[error("the {what} {value:?} cannot be sent to the server: {why}; use another {what}")]
    InvalidPath {
        /// What the value is (`"pod name"`, `"key"`).
        what: String,
        /// The value.
        value: String,
        /// Why it cannot be a path segment.
        why: String,
    },
    /// The client was built with bad arguments.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Unauthorized { .. } => Some(401),
            ClientError::Gone { .. } => Some(410),
            _ => None,
        }
    }

    /// Whether the error is a 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether the error is a 409.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }
}
