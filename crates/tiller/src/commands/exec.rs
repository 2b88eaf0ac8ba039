//! `tiller exec` and `tiller resume`: one task, headless.

use std::path::{Path, PathBuf};

use tiller_agent::list_sessions;
use tiller_types::{AgentEvent, ApprovalPolicy};

use crate::approve::TerminalApprover;
use crate::cli::{ExecArgs, ModelArgs, ResumeArgs};
use crate::command_error::{CommandError, Kind};
use crate::commands::session::{self, Session, Start};
use crate::paths;
use crate::render::Progress;

/// Runs `args.task`, in a new session or continuing `resume` (a session file).
pub fn exec(
    model_args: &ModelArgs,
    args: &ExecArgs,
    resume: Option<PathBuf>,
) -> Result<(), CommandError> {
    let Session { mut agent, started, .. } = session::start(Start {
        model_args,
        resume,
        network: args.network,
        max_steps: args.max_steps,
        approval: ApprovalPolicy::Never,
        step_budget: None,
        buffers: None,
        terminal: None,
    })?;
    let mut progress = Progress::new(args.json);
    progress.event(&started);
    // Ctrl-C stops the model within a token, or the running command with all it started, and
    // ends the run with what is recorded so far; a second Ctrl-C quits at once.
    let cancel = agent.cancel_handle();
    // Installing fails only when a handler is already set, which then stays in charge.
    let _ = ctrlc::set_handler(move || {
        if cancel.is_cancelled() {
            std::process::exit(Kind::Cancelled as i32);
        }
        cancel.cancel();
    });
    let mut approver = TerminalApprover;
    let result = agent.run(&args.task, &mut approver, &mut |event| progress.event(event));
    progress.finish(agent.usage());
    match result {
        Ok(answer) => {
            if !args.json {
                outln!("{}", for_terminal(answer.trim_end()));
            }
            Ok(())
        }
        Err(e) => {
            progress.event(&AgentEvent::Error { message: e.to_string() });
            Err(e.into())
        }
    }
}

/// `text` for stdout: stripped of terminal control sequences when stdout is a terminal, so
/// that an answer cannot clear the screen or retitle the window; untouched when piped.
fn for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() { tiller_types::text::printable(text) } else { text.into() }
}

pub fn resume(model_args: &ModelArgs, args: &ResumeArgs) -> Result<(), CommandError> {
    let path = session_file(model_args, args.session.as_deref())?;
    exec(model_args, &args.exec, Some(path))
}

/// The file of session `id`, or of this workspace's latest session.
pub fn session_file(model_args: &ModelArgs, id: Option<&str>) -> Result<PathBuf, CommandError> {
    let dir = paths::sessions_dir();
    let path = match id {
        Some(id) => dir.join(format!("{id}.jsonl")),
        None => {
            let here = model_args.workspace_dir()?;
            let here = here.canonicalize().unwrap_or(here);
            let latest = list_sessions(&dir)
                .into_iter()
                .rev()
                .find(|s| Path::new(&s.meta.workspace) == here);
            latest.map(|s| s.path).ok_or_else(|| {
                CommandError::new(Kind::User, format!("no session recorded for {}", here.display()))
                    .with_hint("list sessions with `tiller sessions`, pick one with --session ID")
            })?
        }
    };
    if !path.is_file() {
        return Err(CommandError::new(Kind::User, format!("no session file {}", path.display()))
            .with_hint("list sessions with `tiller sessions`"));
    }
    Ok(path)
}
