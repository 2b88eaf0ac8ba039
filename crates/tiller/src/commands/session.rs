//! Starting a session: settings, model, workspace, sandbox, session log and ledger, put together
//! into an [`Agent`]. Shared by `exec`, `resume` and the interactive front end.

use std::path::PathBuf;
use std::sync::Arc;

use tiller_agent::{Agent, AgentConfig, Recorder, SessionLog, load_session};
use tiller_model::ModelInfo;
use tiller_sandbox::Sandbox;
use tiller_tools::{Registry, Shell, Workspace};
use tiller_types::{AgentEvent, ApprovalPolicy, ProviderKind};

use crate::cli::ModelArgs;
use crate::command_error::{CommandError, Kind};
use crate::config::{self, Settings};
use crate::{commands, paths};

/// How a front end wants its session.
pub struct Start<'a> {
    pub model_args: &'a ModelArgs,
    /// The session file to continue, or a new session.
    pub resume: Option<PathBuf>,
    /// Commands may use the network.
    pub network: bool,
    pub max_steps: Option<u32>,
    /// Used when neither flags nor config set a policy.
    pub approval: ApprovalPolicy,
    /// Used when the config sets no step budget.
    pub step_budget: Option<usize>,
}

/// A ready agent and what the front end shows about it.
pub struct Session {
    pub agent: Agent,
    /// The `session_started` event.
    pub started: AgentEvent,
    pub id: String,
    pub path: PathBuf,
    pub root: PathBuf,
    pub info: ModelInfo,
    pub settings: Settings,
    /// The sandbox the agent's commands run in; loops run the project's commands in it too.
    pub sandbox: Arc<Sandbox>,
}

pub fn start(start: Start) -> Result<Session, CommandError> {
    let settings = config::settle(start.model_args)?;
    let root = match &start.model_args.workspace {
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
    let root = ws.root().to_path_buf();
    let sandbox = commands::sandbox::for_workspace(&root, start.network)?;
    let sandbox_notes = commands::sandbox::notes(&sandbox);
    let sandbox = Arc::new(sandbox);
    let shell = Shell { sandbox: Some(Arc::clone(&sandbox)), ..Shell::default() };
    let provider = model.provider;
    let info = provider.info();
    let workspace = root.display().to_string();
    let (log, history) = match start.resume {
        Some(path) => (SessionLog::reopen(&path)?, load_session(&path)?.messages),
        None => {
            let dir = paths::sessions_dir();
            let log = SessionLog::create(&dir, &workspace, info.provider.name(), &info.model)?;
            (log, Vec::new())
        }
    };
    let (id, path) = (log.id(), log.path().to_path_buf());
    let ledger = commands::ledger::open()?;
    let agent_config = AgentConfig {
        max_steps: (start.max_steps)
            .or(settings.max_steps)
            .unwrap_or(AgentConfig::default().max_steps),
        approval: settings.approval.unwrap_or(start.approval),
        max_tokens: settings.profile.max_tokens,
        temperature: settings.profile.temperature,
        answer_tool: settings.profile.answer_tool.unwrap_or(info.provider == ProviderKind::Llama),
        remote: model.remote,
        constrained: info.provider == ProviderKind::Llama,
        brief: info.provider == ProviderKind::Llama,
        step_budget: settings.step_budget.or(start.step_budget),
        ..AgentConfig::default()
    };
    let recorder = Recorder::new(ledger, id.clone(), settings.prices.clone());
    let agent = Agent::new(provider, Registry::with_shell(shell), ws, agent_config)
        .with_history(history)
        .with_log(log)
        .with_ledger(recorder);
    let started = AgentEvent::SessionStarted {
        session_id: id.clone(),
        workspace,
        provider: info.provider.name().into(),
        model: info.model.clone(),
        sandbox: sandbox_notes,
    };
    Ok(Session { agent, started, id, path, root, info, settings, sandbox })
}
