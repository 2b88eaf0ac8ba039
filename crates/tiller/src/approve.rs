//! Approval on a terminal for headless runs: asks on stderr and reads the answer from stdin
//! when stdin is a terminal; refuses otherwise, since nobody is there to ask.

use std::io::{BufRead, IsTerminal};

use tiller_agent::{Approver, Review, Verdict};
use tiller_tools::unified_diff;
use tiller_types::{ChangeSet, ToolCall};

/// The refusal of an edit when nobody is there to review it.
const NOBODY: &str = "nobody can approve this: the run is headless with no terminal (rerun with --approval never to allow it)";

/// The refusal of a command when nobody is there to approve it. Where the sandbox confines
/// commands, `--approval never` runs them; where nothing can (tier C), it cannot help.
const NOBODY_TO_RUN: &str = "nobody can approve this command: the run is headless with no terminal (rerun with --approval never to run commands in the sandbox; where nothing can confine them, sandbox tier C, only --dangerously-run-unconfined runs them, unconfined)";

pub struct TerminalApprover;

impl TerminalApprover {
    /// Asks `question`; `Ok(false)` for yes, `Ok(true)` for always (when `always` is offered),
    /// `Err(feedback)` for anything else, `nobody` when there is no terminal to ask on.
    fn ask(&self, question: &str, always: bool, nobody: &str) -> Result<bool, Option<String>> {
        if !std::io::stdin().is_terminal() {
            return Err(Some(nobody.into()));
        }
        let keys = if always { "y/a(lways for this tool)/N" } else { "y/N" };
        eprint!("{question} [{keys}, or say why not] ");
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return Err(None);
        }
        match answer.trim() {
            "y" | "Y" | "yes" => Ok(false),
            "a" | "always" if always => Ok(true),
            "" | "n" | "N" | "no" => Err(None),
            feedback => Err(Some(feedback.to_string())),
        }
    }
}

impl Approver for TerminalApprover {
    fn approve_command(&mut self, call: &ToolCall, command: &str) -> Verdict {
        let served = call.name.contains(tiller_tools::SERVED_SEPARATOR);
        match self.ask(&format!("run `{command}`?"), served, NOBODY_TO_RUN) {
            Ok(false) => Verdict::Approve,
            Ok(true) => Verdict::ApproveTool,
            Err(feedback) => Verdict::Deny { feedback },
        }
    }

    fn review_changes(&mut self, _call: &ToolCall, changes: &ChangeSet) -> Review {
        for file in &changes.files {
            eprint!("{}", unified_diff(file));
        }
        match self.ask("apply this change?", false, NOBODY) {
            Ok(_) => Review::accept_all(changes),
            Err(feedback) => Review { selection: changes.reject_all(), feedback, edited: None },
        }
    }
}
