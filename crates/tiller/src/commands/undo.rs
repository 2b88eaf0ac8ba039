//! `tiller undo`: takes back the last step of an interactive session. The step's commit (which
//! must be one tiller made, as its trailers show) is reset, keeping any other uncommitted work,
//! and the session's conversation is cut back to before the model proposed the change.

use tiller_agent::{SessionLog, load_session};
use tiller_tui::undo::{self, UndoError};

use crate::cli::ModelArgs;
use crate::command_error::{CommandError, Kind};
use crate::paths;

pub fn run(model_args: &ModelArgs) -> Result<(), CommandError> {
    let root = model_args.workspace_dir()?;
    let to_command = |e: UndoError| match e {
        UndoError::NotAStep => CommandError::new(Kind::User, e.to_string())
            .with_hint("tiller undo only takes back commits with a Tiller-Session trailer"),
        UndoError::Reset(_) => CommandError::new(Kind::User, e.to_string())
            .with_hint("commit or stash your own changes to the step's files first"),
        UndoError::Git(_) => CommandError::new(Kind::User, e.to_string()),
    };
    let step = undo::last_step(&root).map_err(to_command)?;
    let session = step.session;
    let path = paths::sessions_dir().join(format!("{session}.jsonl"));
    // Opened before the reset: a session in use by another process stops the undo untouched.
    let log = match load_session(&path) {
        Ok(saved) => Some((SessionLog::reopen(&path)?, saved)),
        Err(_) => None,
    };
    let subject = undo::reset_step(&root).map_err(to_command)?;
    outln!("undid {subject}");
    let Some((mut log, saved)) = log else {
        eprintln!("session {session} is not recorded here; only the commit was undone");
        return Ok(());
    };
    // The messages before the model's turn that proposed the change.
    let keep = step.keep.min(saved.messages.len());
    log.replace(&saved.messages[..keep])?;
    outln!(
        "session {session} rewound to {keep} messages; `tiller --resume {session}` continues \
         there in the front end (`tiller resume` headless)"
    );
    Ok(())
}
