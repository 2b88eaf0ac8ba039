//! Errors of model calls.

/// Why a model call failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("{endpoint} answered HTTP {status}: {body}")]
    Status {
        endpoint: String,
        status: u16,
        body: String,
    },
    #[error("{endpoint} was silent for {secs} s")]
    Timeout { endpoint: String, secs: u64 },
    #[error("the stream from {endpoint} ended before the model finished")]
    Truncated { endpoint: String },
    #[error("malformed response from {endpoint}: {detail}")]
    Malformed { endpoint: String, detail: String },
    #[error("cancelled")]
    Cancelled,
    #[error("script {path}: {detail}")]
    Script { path: String, detail: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Engine(String),
}
