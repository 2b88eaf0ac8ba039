//! `tiller undo`: takes back the last step of an interactive session. The step's commit (which
//! must be one tiller made, as its trailers show) is reset, keeping any other uncommitted work,
//! and the session's conversation is cut back to before the model proposed the change.

use tiller_agent::{SessionLog, load_session};
use tiller_tools::git;

use crate::cli::ModelArgs;
use crate::command_error::{CommandError, Kind};
use crate::paths;

pub fn run(model_args: &ModelArgs) -> Result<(), CommandError> {
    let root = match &model_args.workspace {
        Some(dir) => dir.clone(),
        None => {
            std::env::current_dir().map_err(|e| CommandError::new(Kind::Internal, e.to_string()))?
        }
    };
    let user = |e: tiller_tools::ToolError| CommandError::new(Kind::User, e.to_string());
    let session = git::trailer(&root, "HEAD", git::SESSION_TRAILER).map_err(user)?;
    let messages = git::trailer(&root, "HEAD", git::MESSAGES_TRAILER).map_err(user)?;
    let (Some(session), Some(messages)) = (session, messages) else {
        return Err(CommandError::new(Kind::User, "the last commit is not a step tiller made")
            .with_hint("tiller undo only takes back commits with a Tiller-Session trailer"));
    };
    let subject = git::git(&root, &["log", "-1", "--format=%h %s"]).map_err(user)?;
    // --keep refuses, rather than overwrites, when uncommitted work touches the same files.
    git::git(&root, &["reset", "--quiet", "--keep", "HEAD~1"]).map_err(|e| {
        CommandError::new(Kind::User, e.to_string())
            .with_hint("commit or stash your own changes to the step's files first")
    })?;
    outln!("undid {}", subject.trim());
    let path = paths::sessions_dir().join(format!("{session}.jsonl"));
    let Ok(saved) = load_session(&path) else {
        eprintln!("session {session} is not recorded here; only the commit was undone");
        return Ok(());
    };
    // The messages before the model's turn that proposed the change.
    let keep = messages.parse::<usize>().unwrap_or(0).min(saved.messages.len());
    SessionLog::reopen(&path)?.replace(&saved.messages[..keep])?;
    outln!("session {session} rewound to {keep} messages; `tiller resume` continues from there");
    Ok(())
}
