//! The tools an agent uses on a workspace. Each tool is one type with its schema, its doc and its
//! tests side by side; [`Registry`] lists them.
//!
//! Tools never write the working tree directly: edit tools return a pending [`ChangeSet`] that
//! the agent has reviewed and then writes with [`apply_changes`].

mod apply_patch;
mod change;
mod error;
mod files;
pub mod git;
mod list_dir;
mod parse;
mod patch;
mod project;
mod read_file;
mod replace;
mod search;
mod shell;
mod tree;
mod workspace;
mod write_file;

use serde::de::DeserializeOwned;
use tiller_types::{Cancel, ChangeSet, ToolSpec};

pub use apply_patch::ApplyPatch;
pub use change::{apply_changes, diff_file, unified_diff};
pub use error::ToolError;
pub use files::{FileList, LINES_KEY, MAX_CHOICES, PATH_KEY, constrain_specs, explain};
pub use list_dir::ListDir;
pub use parse::{Failure, SuiteResult, parse_output};
pub use patch::{Chunk, ChunkLine, Patch, PatchError, PatchOp, apply_chunks, parse_patch};
pub use project::{Origin, PROJECT_FILE, ProjectCommands, is_test_path, shell_quote};
pub use read_file::ReadFile;
pub use replace::Replace;
pub use search::Search;
pub use shell::{
    CommandExit, CommandOutput, Ending, Shell, TIMED_OUT, Terminal, is_known_safe, run_command,
    run_command_until, wait_group,
};
pub use tree::{MAX_FILE_BYTES, TreeChanges, TreeWatch, keep_accepted};
pub use workspace::{Buffers, Workspace};
pub use write_file::WriteFile;

/// What a tool does to the workspace, which decides whether the agent asks before running it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolKind {
    /// Only reads.
    Read,
    /// Proposes a change set.
    Edit,
    /// Runs a program.
    Exec,
}

/// What running a tool produced.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolOutput {
    /// An observation for the model.
    Text(Observation),
    /// A proposed edit, not yet written.
    Change(ChangeSet),
}

impl From<String> for ToolOutput {
    fn from(text: String) -> ToolOutput {
        ToolOutput::Text(Observation { text, ..Observation::default() })
    }
}

/// An observation, with what the ledger wants to know about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub text: String,
    /// Workspace lines the text quotes, so that the ledger can say which lines left the machine.
    pub quotes: Vec<Quote>,
    /// The exit code of the command a tool ran.
    pub exit_code: Option<i32>,
}

/// Lines `first..=last` (1-based) of a workspace file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Relative to the workspace root.
    pub path: String,
    pub first: u32,
    pub last: u32,
}

/// One tool.
pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    fn kind(&self) -> ToolKind;
    /// Runs the tool with its JSON arguments.
    fn run(&self, ws: &Workspace, args: serde_json::Value) -> Result<ToolOutput, ToolError>;
    /// Runs the tool for the model's call `call_id`: a tool that shows its progress elsewhere
    /// (the shell in an editor's terminal) names the call there.
    fn run_call(
        &self,
        ws: &Workspace,
        _call_id: &str,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        self.run(ws, args)
    }
    /// Whether every call must be approved by the user, whatever the approval policy.
    fn always_ask(&self) -> bool {
        false
    }
    /// Takes the agent's cancel flag, for a tool that runs long enough to need stopping.
    fn share_cancel(&mut self, _cancel: &Cancel) {}
    /// For a tool another program serves (an MCP server's): that server's name and its own
    /// name for the tool.
    fn served_by(&self) -> Option<(&str, &str)> {
        None
    }
}

/// The optional `message` argument of the edit tools: the commit message the model proposes.
pub(crate) fn commit_message_schema() -> serde_json::Value {
    serde_json::json!({"type": "string", "description": "One line for the commit log: what this change does."})
}

/// Parses a tool's arguments, turning serde's complaint into a message the model can act on.
pub(crate) fn parse_args<T: DeserializeOwned>(args: serde_json::Value) -> Result<T, ToolError> {
    serde_json::from_value(args).map_err(|e| ToolError::Arguments(e.to_string()))
}

/// Joins a server's name and its tool's in the name the model sees (`server__tool`); tiller's
/// own tools never hold it.
pub const SERVED_SEPARATOR: &str = "__";

/// Tools found at run time, such as an MCP server's: listed the first time they are asked for,
/// so that whatever provides them starts only when a session needs it, and listed again on
/// [`refresh`](ToolSource::refresh) where they changed.
pub trait ToolSource: Send + Sync {
    /// The tools; the first call may start servers and list what they offer.
    fn tools(&self) -> &[Box<dyn Tool>];
    /// Lists the tools again if whatever provides them said they changed; called before each
    /// model request.
    fn refresh(&mut self) {}
    /// What went wrong while listing them (a server that did not start, a name taken), each
    /// said once.
    fn take_warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// Takes the agent's cancel flag.
    fn share_cancel(&mut self, _cancel: &Cancel) {}
}

/// The tools offered to the model.
pub struct Registry {
    tools: Vec<Box<dyn Tool>>,
    sources: Vec<Box<dyn ToolSource>>,
}

impl Default for Registry {
    /// Every built-in tool, with commands unconfined.
    fn default() -> Self {
        Registry::with_shell(Shell::default())
    }
}

impl Registry {
    /// Every built-in tool, with commands run by `shell`.
    pub fn with_shell(shell: Shell) -> Self {
        Registry {
            tools: vec![
                Box::new(ReadFile),
                Box::new(ListDir),
                Box::new(Search),
                Box::new(Replace),
                Box::new(ApplyPatch),
                Box::new(WriteFile),
                Box::new(shell),
            ],
            sources: Vec::new(),
        }
    }

    /// Adds the tools of `source` after the built-in ones.
    pub fn with_source(mut self, source: Box<dyn ToolSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// Lets every tool see `cancel` (the shell stops its command when it is set).
    pub fn share_cancel(&mut self, cancel: &Cancel) {
        self.tools.iter_mut().for_each(|t| t.share_cancel(cancel));
        self.sources.iter_mut().for_each(|s| s.share_cancel(cancel));
    }

    /// Lists again the tools of each source that says they changed.
    pub fn refresh(&mut self) {
        self.sources.iter_mut().for_each(|s| s.refresh());
    }

    /// Every tool: the built-in ones, then those of each source.
    fn all(&self) -> impl Iterator<Item = &dyn Tool> {
        let found = self.sources.iter().flat_map(|s| s.tools());
        self.tools.iter().chain(found).map(|t| t.as_ref())
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.all().map(|t| t.spec()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&dyn Tool> {
        self.all().find(|t| t.spec().name == name)
    }

    pub fn names(&self) -> Vec<String> {
        self.all().map(|t| t.spec().name).collect()
    }

    /// Whether `name` is one of tiller's own tools.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.spec().name == name)
    }

    /// The sources' warnings not said yet.
    pub fn take_warnings(&self) -> Vec<String> {
        self.sources.iter().flat_map(|s| s.take_warnings()).collect()
    }
}
