//! Errors of tools. Every one becomes an observation the model can read and act on.

use std::path::PathBuf;

use crate::PatchError;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    Arguments(String),
    #[error("{path}: {reason}")]
    Path { path: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// The project's commands (`.tiller/project.toml`) cannot be read or found.
    #[error("{}: {detail}", path.display())]
    Project { path: PathBuf, detail: String },
    #[error("{0}")]
    Other(String),
}

impl ToolError {
    pub fn path(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ToolError::Path { path: path.into(), reason: reason.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ToolError::Io { path: path.into(), source }
    }
}
