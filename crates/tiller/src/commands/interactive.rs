//! `tiller` with no command: the interactive front end on a new session.

use std::io::IsTerminal;

use tiller_tui::{LoadModel, Options, Status, Tone};
use tiller_types::{ApprovalPolicy, Message};

use crate::cli::ModelArgs;
use crate::command_error::{CommandError, Kind};
use crate::commands::{exec, ledger, session};
use crate::{config, engine, paths};

/// Changed lines per edit when the config sets no budget: small enough to read in one go.
pub const STEP_BUDGET: usize = 60;

/// Opens the front end; `resume` continues a session: `Some(None)` this workspace's latest,
/// `Some(Some(id))` that one.
pub fn run(
    model_args: &ModelArgs,
    network: bool,
    resume: Option<Option<String>>,
) -> Result<(), CommandError> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(CommandError::new(Kind::User, "the interactive front end needs a terminal")
            .with_hint("for a headless run, use `tiller exec TASK`"));
    }
    let resume = match resume {
        Some(id) => Some(exec::session_file(model_args, id.as_deref())?),
        None => None,
    };
    let s = session::start(session::Start {
        model_args,
        resume,
        network,
        max_steps: None,
        approval: ApprovalPolicy::OnRequest,
        step_budget: Some(STEP_BUDGET),
        buffers: None,
        terminal: None,
    })?;
    let status = Status {
        model: s.info.model.clone(),
        context_length: s.info.context_length,
        cost: Some(0.0),
        remote: s.agent.config().remote,
        ..Status::default()
    };
    let (args, root, config) = (model_args.clone(), s.root.clone(), s.agent.config().clone());
    let load_model: LoadModel = Box::new(move |name| {
        session::switch(&args, name, &root, &config).map_err(|e| match e.hint {
            Some(hint) => format!("{}\nhint: {hint}", e.message),
            None => e.message,
        })
    });
    let mut models = config::profile_names(model_args);
    models.extend(engine::names());
    let git = |args: &[&str]| tiller_tools::git::git(&s.root, args).ok();
    let files = git(&["ls-files", "-z"]).unwrap_or_default();
    let transcript = transcript(s.agent.history());
    let options = Options {
        history: Some(paths::history_file(&s.root)),
        start_head: git(&["rev-parse", "HEAD"]).map(|h| h.trim().to_string()),
        files: files.split('\0').filter(|f| !f.is_empty()).map(str::to_string).collect(),
        models,
        root: s.root,
        session_id: s.id,
        session_path: s.path,
        commits: s.settings.commit_steps.unwrap_or(true),
        ledger: ledger::open().ok(),
        status,
        intro: vec![s.started],
        transcript,
    };
    tiller_tui::run(s.agent, options, load_model)
        .map_err(|e| CommandError::new(Kind::Internal, format!("terminal: {e}")))
}

/// A resumed conversation, compactly: each task, each tool call, and each answer, one line each.
fn transcript(history: &[Message]) -> Vec<(Tone, String)> {
    let first = |text: &str| text.lines().next().unwrap_or_default().to_string();
    let mut lines = Vec::new();
    for message in history {
        match message {
            Message::User { content } => lines.push((Tone::User, format!("› {}", first(content)))),
            Message::Assistant { content, tool_calls } => {
                lines.extend(tool_calls.iter().map(|c| (Tone::Dim, format!("→ {}", c.name))));
                if tool_calls.is_empty() && !content.is_empty() {
                    lines.push((Tone::Plain, first(content)));
                }
            }
            Message::Tool { .. } | Message::System { .. } => {}
        }
    }
    if !lines.is_empty() {
        lines.insert(0, (Tone::Dim, "resumed; the conversation so far:".into()));
    }
    lines
}
