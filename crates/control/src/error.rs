//! Errors: [`ControlError`] for starting a control node, [`ApiError`] for HTTP answers.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use skiff_api::{ErrorBody, ValidationErrors};
use skiff_state::StateError;

/// Why a control node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The state directory is unusable.
    #[error("state directory {path}: {message}")]
    StateDir {
        /// The directory.
        path: String,
        /// What failed.
        message: String,
    },
    /// The database could not be opened.
    #[error(
        "cannot open the state database {path}: {message} (is another skiff process using this state dir?)"
    )]
    Database {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A backup file given to `--restore` cannot be used.
    #[error("cannot restore from {path}: {source}")]
    Restore {
        /// The file.
        path: String,
        /// What is wrong with it.
        source: crate::backup::BackupError,
    },
    /// Joining or setting up the cluster failed.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Raft failed to start or elect.
    #[error("raft: {0}")]
    Raft(String),
}

/// An HTTP error answer: status + `{code, message, details}`. 5xx bodies say nothing internal; the
/// cause is logged.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                details: None,
            },
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 422 with field errors.
    pub fn invalid(what: &str, errors: &ValidationErrors) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{what} is invalid: {errors}"),
        );
        e.body.details = serde_json::to_value(&errors.0).ok();
        e
    }

    /// 500; `cause` goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal",
            "internal error: see the server log",
        )
    }

    /// 503 `NoLeader`: the request was certainly not applied; retrying (here or on another control
    /// node) is safe.
    pub fn no_leader(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "NoLeader", message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", message)
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        let (status, code) = match &e {
            StateError::NotFound { .. } | StateError::NamespaceNotFound { .. } => {
                (StatusCode::NOT_FOUND, "NotFound")
            }
            StateError::AlreadyExists { .. } => (StatusCode::CONFLICT, "AlreadyExists"),
            StateError::Conflict { .. } => (StatusCode::CONFLICT, "Conflict"),
            StateError::Invalid { message } if message.contains("too old") => (StatusCode::GONE, "Gone"),
            StateError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
            StateError::Decode { .. } => (StatusCode::BAD_REQUEST, "BadRequest"),
            StateError::TopicFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "TopicFull"),
            StateError::StoreFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "StoreFull"),
            StateError::Storage { .. } => return ApiError::internal(e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<skiff_raft::RaftError> for ApiError {
    fn from(e: skiff_raft::RaftError) -> Self {
        use skiff_raft::RaftError as R;
        match e {
            R::NotLeader { leader } => ApiError::no_leader(format!(
                "this control node is not the leader (leader: {}); retry shortly",
                leader.map(|l| l.to_string()).unwrap_or_else(|| "unknown".into())
            )),
            R::ProposalDropped => ApiError::no_leader(
                "the write was dropped before it was committed (the leader changed); it was not applied: retry",
            ),
            R::MembershipRefused(m) => ApiError::new(StatusCode::CONFLICT, "MembershipRefused", m),
            R::TooLarge { size, max } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "TooLarge",
                format!("the write is {size} bytes; the limit is {max}: split it"),
            ),
            R::Overloaded { .. } => ApiError::no_leader(
                "the control node is overloaded; the write was not applied: back off and retry",
            ),
            other => {
                tracing::error!(error = %other, "raft error");
                ApiError::unavailable(
                    "the control plane cannot confirm the write right now; it may or may not have been applied: read it back to check",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}
