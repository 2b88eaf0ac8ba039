//! Starting a session: settings, model, workspace, sandbox, session log and ledger, put together
//! into an [`Agent`]. Shared by `exec`, `resume`, the loops, `acp` and the interactive front end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tiller_agent::{
    Agent, AgentConfig, Checker, ModelSwitch, Recorder, SessionLog, load_session, take_kept_rows,
};
use tiller_loops::Verifier;
use tiller_model::ModelInfo;
use tiller_sandbox::Sandbox;
use tiller_tools::{Buffers, ProjectCommands, Registry, Shell, Terminal, Workspace};
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
    /// An editor that holds the text files (over ACP): tools read and write them through it.
    pub buffers: Option<Arc<dyn Buffers>>,
    /// An editor's terminal (over ACP): the shell's confined commands run in it.
    pub terminal: Option<Arc<dyn Terminal>>,
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

/// Refuses `/` and the home folder itself as a workspace: the model could write anywhere in it.
fn refuse_broad(root: &Path) -> Result<(), CommandError> {
    let home = std::env::var_os("HOME").and_then(|h| Path::new(&h).canonicalize().ok());
    let what = if root == Path::new("/") {
        "the whole file system (/)"
    } else if home.as_deref() == Some(root) {
        "your whole home folder"
    } else {
        return Ok(());
    };
    Err(CommandError::new(
        Kind::User,
        format!("the workspace would be {what}, all of it writable to the model"),
    )
    .with_hint(format!(
        "run tiller in a project folder or name one with -C DIR; pass --allow-broad-workspace to use {} anyway",
        root.display()
    )))
}

/// Candidate edits per edit step on the embedded engine, where the project has a test command.
const DEFAULT_CANDIDATES: usize = 16;

/// Candidate edits per edit step (`--candidates`), and the runner of the project's tests that
/// the brief and the candidates use. Without a test command, or where the sandbox would ask
/// before each command, there is no runner and no candidates; on the embedded engine they are
/// on by default.
pub fn test_runner(
    root: &Path,
    settings: &Settings,
    engine: bool,
    sandbox: &Arc<Sandbox>,
) -> (usize, Option<Box<dyn Checker>>) {
    let unasked = !sandbox.requires_approval() || settings.dangerously_run_unconfined;
    let commands = ProjectCommands::load(root).ok().filter(|_| unasked);
    let Some((commands, _)) = commands else {
        return (1, None);
    };
    let n = settings.candidates.unwrap_or(if engine { DEFAULT_CANDIDATES } else { 1 });
    let checker = Verifier::new(root, commands, Some(Arc::clone(sandbox)));
    (n, Some(Box::new(checker)))
}

pub fn start(start: Start) -> Result<Session, CommandError> {
    let settings = config::settle(start.model_args)?;
    let root = start.model_args.workspace_dir()?;
    let model = config::model(&settings)?;
    let mut ws = workspace(&root, &settings, model.remote)?;
    if let Some(buffers) = start.buffers {
        ws = ws.with_buffers(buffers);
    }
    let root = ws.root().to_path_buf();
    if !start.model_args.allow_broad_workspace {
        refuse_broad(&root)?;
    }
    let sandbox = commands::sandbox::for_workspace(&root, start.network, &settings)?;
    let sandbox_notes = commands::sandbox::notes(&sandbox);
    let sandbox = Arc::new(sandbox);
    let shell = Shell {
        sandbox: Some(Arc::clone(&sandbox)),
        allow_unconfined: settings.dangerously_run_unconfined,
        terminal: start.terminal,
        ..Shell::default()
    };
    let provider = model.provider;
    let info = provider.info();
    let workspace = root.display().to_string();
    // The ledger first, so that a start that fails on it leaves no empty session behind.
    let ledger = commands::ledger::open()?;
    let dir = paths::sessions_dir();
    // Rows earlier runs could not write (ledger locked, disk full) go in now, the chain whole;
    // should the ledger still refuse them, they wait for a later start.
    let _ = take_kept_rows(&dir, |rows| ledger.append_missing(rows).map(|_| ()));
    let (log, history) = match start.resume {
        Some(path) => (SessionLog::reopen(&path)?, load_session(&path)?.messages),
        None => {
            let log = SessionLog::create(&dir, &workspace, info.provider.name(), &info.model)?;
            (log, Vec::new())
        }
    };
    let (id, path) = (log.id(), log.path().to_path_buf());
    let engine = info.provider == ProviderKind::Llama;
    let (candidates, checker) = test_runner(&root, &settings, engine, &sandbox);
    let agent_config = AgentConfig {
        max_steps: (start.max_steps)
            .or(settings.max_steps)
            .unwrap_or(AgentConfig::default().max_steps),
        approval: settings.approval.unwrap_or(start.approval),
        step_budget: settings.step_budget.or(start.step_budget),
        candidates,
        ..AgentConfig::default()
    };
    let agent_config = for_model(agent_config, &settings, &info, model.remote);
    let recorder = Recorder::new(ledger, id.clone(), settings.prices.clone());
    let mut tools = Registry::with_shell(shell);
    if !settings.mcp.servers.is_empty() {
        let servers = commands::mcp::servers(&settings, &sandbox, &root, tools.names())?;
        tools = tools.with_source(Box::new(servers));
    }
    let mut agent = Agent::new(provider, tools, ws, agent_config)
        .with_history(history)
        .with_log(log)
        .with_ledger(recorder);
    if let Some(checker) = checker {
        agent = agent.with_checker(checker);
    }
    let started = AgentEvent::SessionStarted {
        session_id: id.clone(),
        workspace,
        provider: info.provider.name().into(),
        model: info.model.clone(),
        sandbox: sandbox_notes,
    };
    Ok(Session { agent, started, id, path, root, info, settings, sandbox })
}

/// What `/model NAME` continues a session in `root` with (see [`config::settle_named`]);
/// `config` is the session's, whose model-dependent fields follow the new model.
pub fn switch(
    model_args: &ModelArgs,
    name: &str,
    root: &Path,
    config: &AgentConfig,
) -> Result<ModelSwitch, CommandError> {
    let settings = config::settle_named(model_args, name)?;
    let model = config::model(&settings)?;
    let ws = workspace(root, &settings, model.remote)?;
    let config = for_model(config.clone(), &settings, &model.provider.info(), model.remote);
    Ok(ModelSwitch { provider: model.provider, ws, config })
}

/// The workspace as a model may see it: tiller's own configuration and data never written
/// (where the workspace holds them), and for a remote model the denied files withheld.
fn workspace(root: &Path, settings: &Settings, remote: bool) -> Result<Workspace, CommandError> {
    let own = [paths::config_file().with_file_name(""), paths::data_dir()];
    let ws = Workspace::new(root)?.protect(&own);
    if !remote {
        return Ok(ws);
    }
    ws.deny(&settings.deny()).map_err(|e| CommandError::new(Kind::Config, e.to_string()))
}

/// `config` with the fields that follow the model: what its profile tunes, and what depends on
/// where it runs (redaction, constrained tool calls and the brief on the embedded engine).
fn for_model(
    config: AgentConfig,
    settings: &Settings,
    info: &ModelInfo,
    remote: bool,
) -> AgentConfig {
    let llama = info.provider == ProviderKind::Llama;
    AgentConfig {
        max_tokens: settings.profile.max_tokens,
        temperature: settings.profile.temperature,
        answer_tool: settings.profile.answer_tool.unwrap_or(llama),
        remote,
        constrained: llama,
        brief: llama,
        ..config
    }
}
