//! Errors: [`ControlError`] for starting a control node, [`WriteError`] for writes through Raft,
//! [`ApiError`] for HTTP answers (made from the others only at the API edge).
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use skiff_api::{ErrorBody, ErrorCode, ValidationErrors};
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
        source: skiff_api::backup::BackupError,
    },
    /// Joining or setting up the cluster failed.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Raft failed to start or elect.
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a write through Raft did not take effect (or may not have): what
/// [`ControlPlane::propose`](crate::ControlPlane::propose) returns. Callers inside the control plane
/// branch on it ([`is_race`](Self::is_race), [`is_refused`](Self::is_refused)); the API edge turns
/// it into an [`ApiError`].
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The state machine refused the command: it was committed and changed nothing.
    #[error(transparent)]
    State(#[from] StateError),
    /// Raft did not take the write.
    #[error(transparent)]
    Raft(#[from] skiff_raft::RaftError),
    /// Not committed in time: it may or may not have been applied.
    #[error(
        "the write was not committed within {}s (is a quorum of control members reachable?); it may or may not have been applied: read it back to check",
        .0.as_secs()
    )]
    Timeout(std::time::Duration),
    /// A Secret's values could not be sealed or opened.
    #[error("secret values: {0}")]
    Secrets(String),
    /// Too little free space where this member keeps its state; nothing was written.
    #[error(
        "the filesystem holding {} has {free} bytes free, below the {min_free} this member keeps free: free space there (deletes are still accepted), or lower --min-free-space, then retry",
        dir.display()
    )]
    DiskFull {
        /// The state directory.
        dir: std::path::PathBuf,
        /// Bytes free.
        free: u64,
        /// The watermark.
        min_free: u64,
    },
}

impl WriteError {
    /// Lost a race with another write (the object changed, appeared or went away meanwhile):
    /// a controller's next pass, made from a fresh snapshot, retries.
    pub fn is_race(&self) -> bool {
        matches!(
            self,
            WriteError::State(
                StateError::Conflict { .. }
                    | StateError::AlreadyExists { .. }
                    | StateError::NotFound { .. }
                    | StateError::NamespaceNotFound { .. }
            )
        )
    }

    /// Refused as written: retrying the same command cannot help.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            WriteError::State(
                StateError::Invalid { .. }
                    | StateError::Decode { .. }
                    | StateError::TopicFull { .. }
                    | StateError::QuotaExceeded(_)
                    | StateError::Compacted { .. }
            ) | WriteError::Raft(skiff_raft::RaftError::TooLarge { .. })
        )
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::State(e) => e.into(),
            WriteError::Raft(e) => e.into(),
            e @ WriteError::Timeout(_) => ApiError::unavailable(e.to_string()),
            WriteError::Secrets(e) => ApiError::internal(e),
            e @ WriteError::DiskFull { .. } => ApiError::new(ErrorCode::DiskFull, e.to_string()),
        }
    }
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
    /// An error with a code (which decides the HTTP status) and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        Self::with_status(status, code, message)
    }

    /// An error with a status other than its code's (a node's answer relayed as it came).
    pub fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                details: None,
            },
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 422 with field errors.
    pub fn invalid(what: &str, errors: &ValidationErrors) -> Self {
        let mut e = Self::new(ErrorCode::Invalid, format!("{what} is invalid: {errors}"));
        e.body.details = serde_json::to_value(&errors.0).ok();
        e
    }

    /// 500; `cause` goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error: see the server log")
    }

    /// 503 `NoLeader`: the request was certainly not applied; retrying (here or on another control
    /// node) is safe.
    pub fn no_leader(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NoLeader, message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        let code = match &e {
            StateError::NotFound { .. } | StateError::NamespaceNotFound { .. } => ErrorCode::NotFound,
            StateError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            StateError::Conflict { .. } => ErrorCode::Conflict,
            StateError::Compacted { .. } => ErrorCode::Gone,
            StateError::Invalid { .. } => ErrorCode::Invalid,
            StateError::Decode { .. } => ErrorCode::BadRequest,
            StateError::TopicFull { .. } => ErrorCode::TopicFull,
            StateError::StoreFull { .. } => ErrorCode::StoreFull,
            StateError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            StateError::Storage { .. } => return ApiError::internal(e),
        };
        ApiError::new(code, e.to_string())
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
            R::MembershipRefused(m) => ApiError::new(ErrorCode::MembershipRefused, m),
            R::TooLarge { size, max } => ApiError::new(
                ErrorCode::TooLarge,
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
