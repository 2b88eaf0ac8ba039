//! Errors that end a task.

use tiller_model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The final reply ran into the output limit: what came is not the whole answer.
    #[error(
        "the model's reply was cut at the output limit of {limit} tokens, so it is not a finished answer"
    )]
    Cut { limit: u32 },
    #[error("no answer after {0} steps")]
    StepLimit(u32),
    #[error(
        "stopped: the model repeated calls it had already made, with the files as they were then, {0} times"
    )]
    Repeating(u32),
    #[error(
        "the conversation does not fit the model's context ({tokens} tokens, {limit} available) even after compaction"
    )]
    ContextFull { tokens: u64, limit: u64 },
    #[error("ledger: {0}")]
    Ledger(#[from] tiller_ledger::LedgerError),
    #[error("session {path}: {reason}")]
    Session { path: String, reason: String },
    /// Another process has the session open.
    #[error("session {path} is in use by {}", pid.map_or_else(|| "another process".to_string(), |p| format!("process {p}")))]
    SessionBusy { path: String, pid: Option<u32> },
}
