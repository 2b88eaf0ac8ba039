//! Errors as the user sees them: one line, an optional `hint:`, and an exit code per kind.

use std::process::ExitCode;

use tiller_agent::AgentError;
use tiller_model::ModelError;

/// What went wrong, by who can fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The task could not be finished (step limit, context full), or a check failed.
    Task = 1,
    /// Bad input from the user: arguments, missing files.
    User = 2,
    /// The configuration is wrong.
    Config = 3,
    /// The model endpoint or engine failed.
    Model = 4,
    /// The machine's state stops tiller: a session or ledger held by another process, a full
    /// disk, a data directory that cannot be written, a damaged data file.
    Environment = 5,
    /// A bug or an environment failure.
    Internal = 70,
    /// Stopped by Ctrl-C (128 + SIGINT, as shells report it).
    Cancelled = 130,
}

#[derive(Debug)]
pub struct CommandError {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
}

impl CommandError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        CommandError { kind, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn report(&self) -> ExitCode {
        eprintln!("error: {}", self.message);
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
        ExitCode::from(self.kind as u8)
    }
}

impl From<ModelError> for CommandError {
    fn from(e: ModelError) -> Self {
        let hint = match &e {
            ModelError::Connect { .. } => Some("is the server running, and is --base-url right?"),
            ModelError::Status { status: 401 | 403, .. } => {
                Some("check the API key (--api-key-env)")
            }
            ModelError::Timeout { .. } => {
                Some("raise idle_timeout_secs in the profile for slow endpoints")
            }
            ModelError::Deadline { .. } => Some("raise deadline_secs in the profile"),
            _ => None,
        };
        if matches!(e, ModelError::Cancelled) {
            return CommandError::new(Kind::Cancelled, "cancelled");
        }
        let kind = if matches!(e, ModelError::Config(_) | ModelError::Script { .. }) {
            Kind::Config
        } else {
            Kind::Model
        };
        let err = CommandError::new(kind, e.to_string());
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

impl From<AgentError> for CommandError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Model(m) => m.into(),
            AgentError::Cut { .. } => CommandError::new(Kind::Task, e.to_string()).with_hint(
                "raise max_tokens in the profile (docs/config.md), or ask for a shorter answer",
            ),
            AgentError::StepLimit(_) => CommandError::new(Kind::Task, e.to_string())
                .with_hint("raise --max-steps, or split the task"),
            AgentError::Repeating(_) => CommandError::new(Kind::Task, e.to_string())
                .with_hint("the model is stuck: try a larger model, or name the files in the task"),
            AgentError::ContextFull { .. } => CommandError::new(Kind::Task, e.to_string())
                .with_hint("use a model with a longer context, or a smaller task"),
            AgentError::Session { .. } => CommandError::new(Kind::Internal, e.to_string()),
            AgentError::SessionBusy { pid, .. } => {
                let hint = match pid {
                    Some(pid) => {
                        format!("wait for process {pid} to finish, or stop it (`kill {pid}`)")
                    }
                    None => "wait for the other process to finish".to_string(),
                };
                CommandError::new(Kind::Environment, e.to_string()).with_hint(hint)
            }
            AgentError::Ledger(e) => e.into(),
        }
    }
}

impl From<tiller_tools::ToolError> for CommandError {
    fn from(e: tiller_tools::ToolError) -> Self {
        match e {
            tiller_tools::ToolError::Project { .. } => {
                CommandError::new(Kind::Config, e.to_string())
                    .with_hint("set the project's commands in .tiller/project.toml (docs/loops.md)")
            }
            _ => CommandError::new(Kind::User, e.to_string()),
        }
    }
}

impl From<tiller_sandbox::SandboxError> for CommandError {
    fn from(e: tiller_sandbox::SandboxError) -> Self {
        use tiller_sandbox::SandboxError;
        match e {
            SandboxError::Unavailable(_) => CommandError::new(Kind::Config, e.to_string())
                .with_hint("run `tiller doctor` to see what is missing and how to fix it"),
            SandboxError::Path { .. } => CommandError::new(Kind::User, e.to_string()),
            _ => CommandError::new(Kind::Internal, e.to_string())
                .with_hint("run `tiller doctor` to check the sandbox"),
        }
    }
}

impl From<tiller_loops::LoopError> for CommandError {
    fn from(e: tiller_loops::LoopError) -> Self {
        use tiller_loops::LoopError;
        match e {
            LoopError::Agent(e) => e.into(),
            LoopError::Tool(e) => e.into(),
            LoopError::Sandbox(e) => e.into(),
            LoopError::Ledger(e) => e.into(),
            LoopError::Precondition(_) => CommandError::new(Kind::User, e.to_string()),
        }
    }
}
