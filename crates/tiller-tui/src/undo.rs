//! Taking back the last step: the commit the front end made for it, reset while keeping other
//! uncommitted work; the caller rewinds the conversation (`tiller undo`, `/undo`).

use std::path::Path;

use tiller_tools::{ToolError, git};

/// The last commit, when it is a step tiller made.
pub struct Step {
    /// The session that made it.
    pub session: String,
    /// Messages of that session before the model proposed the step: what to keep.
    pub keep: usize,
}

/// The step `HEAD` of `root` is: it carries the session trailers.
pub fn last_step(root: &Path) -> Result<Step, UndoError> {
    let session = git::trailer(root, "HEAD", git::SESSION_TRAILER)?;
    let messages = git::trailer(root, "HEAD", git::MESSAGES_TRAILER)?;
    let (Some(session), Some(messages)) = (session, messages) else {
        return Err(UndoError::NotAStep);
    };
    Ok(Step { session, keep: messages.parse().unwrap_or(0) })
}

/// Resets `HEAD` of `root` (checked with [`last_step`] first); returns `HASH subject` of the
/// commit taken back.
pub fn reset_step(root: &Path) -> Result<String, UndoError> {
    let subject = git::git(root, &["log", "-1", "--format=%h %s"])?.trim().to_string();
    // --keep refuses, rather than overwrites, when uncommitted work touches the same files.
    git::git(root, &["reset", "--quiet", "--keep", "HEAD~1"]).map_err(UndoError::Reset)?;
    Ok(subject)
}

/// Why a step could not be undone.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    #[error("the last commit is not a step tiller made")]
    NotAStep,
    #[error("{0}")]
    Git(#[from] ToolError),
    /// The reset was refused, typically because uncommitted work touches the step's files.
    #[error("{0}")]
    Reset(ToolError),
}
