//! `tiller exec` and `tiller resume`: one task, headless.

use std::path::{Path, PathBuf};

use tiller_agent::{Agent, AgentConfig, Recorder, SessionLog, list_sessions, load_session};
use tiller_tools::{Registry, Shell, Workspace};
use tiller_types::{AgentEvent, ApprovalPolicy, ProviderKind};

use crate::approve::TerminalApprover;
use crate::cli::{ExecArgs, ModelArgs, ResumeArgs};
use crate::command_error::{CommandError, Kind};
use crate::render::Progress;
use crate::{config, paths};

/// Runs `args.task`, in a new session or continuing `resume` (a session file).
pub fn exec(
    model_args: &ModelArgs,
    args: &ExecArgs,
    resume: Option<PathBuf>,
) -> Result<(), CommandError> {
    let settings = config::settle(model_args)?;
    let root = match &model_args.workspace {
        Some(dir) => dir.clone(),
        None => {
            std::env::current_dir().map_err(|e| CommandError::new(Kind::Internal, e.to_string()))?
        }
    };
    let model = config::model(&settings)?;
    let mut ws = Workspace::new(&root)?;
    if model.remote {
        ws = ws
            .deny(&settings.deny())
            .map_err(|e| CommandError::new(Kind::Config, e.to_string()))?;
    }
    let ledger = crate::commands::ledger::open()?;
    let sandbox = crate::commands::sandbox::for_workspace(ws.root(), args.network)?;
    let sandbox_notes = crate::commands::sandbox::notes(&sandbox);
    let shell = Shell { sandbox: Some(std::sync::Arc::new(sandbox)), ..Shell::default() };
    let provider = model.provider;
    let info = provider.info();
    let workspace = ws.root().display().to_string();
    let (log, history) = match resume {
        Some(path) => (SessionLog::reopen(&path)?, load_session(&path)?.messages),
        None => (
            SessionLog::create(
                &paths::sessions_dir(),
                &workspace,
                info.provider.name(),
                &info.model,
            )?,
            Vec::new(),
        ),
    };
    let session_id = log.id();
    let approval = settings.approval.unwrap_or(ApprovalPolicy::Never);
    let agent_config = AgentConfig {
        max_steps: args
            .max_steps
            .or(settings.max_steps)
            .unwrap_or(AgentConfig::default().max_steps),
        approval,
        max_tokens: settings.profile.max_tokens,
        temperature: settings.profile.temperature,
        answer_tool: settings.profile.answer_tool.unwrap_or(info.provider == ProviderKind::Llama),
        remote: model.remote,
        ..AgentConfig::default()
    };
    let mut agent = Agent::new(provider, Registry::with_shell(shell), ws, agent_config)
        .with_history(history)
        .with_log(log)
        .with_ledger(Recorder::new(ledger, session_id.clone(), settings.prices.clone()));
    let mut progress = Progress::new(args.json);
    progress.event(&AgentEvent::SessionStarted {
        session_id,
        workspace,
        provider: info.provider.name().into(),
        model: info.model.clone(),
        sandbox: sandbox_notes,
    });
    // Ctrl-C stops the model within a token and ends the run with what is recorded so far; a
    // second Ctrl-C quits at once.
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
                println!("{}", answer.trim_end());
            }
            Ok(())
        }
        Err(e) => {
            progress.event(&AgentEvent::Error { message: e.to_string() });
            Err(e.into())
        }
    }
}

pub fn resume(model_args: &ModelArgs, args: &ResumeArgs) -> Result<(), CommandError> {
    let dir = paths::sessions_dir();
    let path = match &args.session {
        Some(id) => dir.join(format!("{id}.jsonl")),
        None => {
            let here = match &model_args.workspace {
                Some(d) => d.canonicalize().unwrap_or_else(|_| d.clone()),
                None => std::env::current_dir().unwrap_or_default(),
            };
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
    exec(model_args, &args.exec, Some(path))
}
