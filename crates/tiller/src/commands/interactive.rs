//! `tiller` with no command: the interactive front end on a new session.

use std::io::IsTerminal;

use tiller_tui::{Options, Status};
use tiller_types::ApprovalPolicy;

use crate::cli::ModelArgs;
use crate::command_error::{CommandError, Kind};
use crate::commands::{ledger, session};
use crate::paths;

/// Changed lines per edit when the config sets no budget: small enough to read in one go.
const STEP_BUDGET: usize = 60;

pub fn run(model_args: &ModelArgs, network: bool) -> Result<(), CommandError> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(CommandError::new(Kind::User, "the interactive front end needs a terminal")
            .with_hint("for a headless run, use `tiller exec TASK`"));
    }
    let s = session::start(session::Start {
        model_args,
        resume: None,
        network,
        max_steps: None,
        approval: ApprovalPolicy::OnRequest,
        step_budget: Some(STEP_BUDGET),
    })?;
    let status = Status {
        model: s.info.model.clone(),
        context_length: s.info.context_length,
        cost: Some(0.0),
        ..Status::default()
    };
    let options = Options {
        history: Some(paths::history_file(&s.root)),
        root: s.root,
        session_id: s.id,
        session_path: s.path,
        commits: s.settings.commit_steps.unwrap_or(true),
        ledger: ledger::open().ok(),
        status,
        intro: vec![s.started],
    };
    tiller_tui::run(s.agent, options)
        .map_err(|e| CommandError::new(Kind::Internal, format!("terminal: {e}")))
}
