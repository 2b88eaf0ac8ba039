//! Errors of model calls.

/// Why a model call failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("{endpoint} answered HTTP {status}: {body}")]
    Status { endpoint: String, status: u16, body: String },
    #[error("{endpoint} was silent for {secs} s")]
    Timeout { endpoint: String, secs: u64 },
    #[error("{endpoint} did not finish the answer within the call's deadline of {secs} s")]
    Deadline { endpoint: String, secs: u64 },
    #[error("the stream from {endpoint} ended before the model finished")]
    Truncated { endpoint: String },
    #[error("malformed response from {endpoint}: {detail}")]
    Malformed { endpoint: String, detail: String },
    /// An error the endpoint reported inside the stream, after a successful status.
    #[error("{endpoint} reported {kind}: {message}")]
    Remote { endpoint: String, kind: String, message: String },
    #[error("cancelled")]
    Cancelled,
    #[error("script {path}: {detail}")]
    Script { path: String, detail: String },
    #[error("{0}")]
    Config(String),
    /// A local file a download writes.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{url} has sha256 {got}, not the {want} expected; the download was removed")]
    Checksum { url: String, want: String, got: String },
    #[error("{0}")]
    Engine(String),
}

impl ModelError {
    /// Whether the same call may succeed if tried again: the endpoint could not be reached,
    /// dropped the connection, is rate-limiting or overloaded, or had a server error.
    pub fn is_transient(&self) -> bool {
        match self {
            ModelError::Connect { .. } | ModelError::Truncated { .. } => true,
            ModelError::Status { status, .. } => {
                matches!(status, 429 | 500 | 502 | 503 | 504 | 529)
            }
            ModelError::Remote { kind, .. } => {
                matches!(kind.as_str(), "overloaded_error" | "api_error" | "server_error")
            }
            _ => false,
        }
    }
}
