//! tiller as an agent of the Agent Client Protocol (ACP): an editor starts `tiller acp`, and
//! speaks JSON-RPC with it over stdin and stdout, one JSON object a line.
//!
//! The protocol is the `agent-client-protocol` crate's, driven by a small executor on the main
//! thread ([`serve`]); its async runtime stays in this crate. Each session's [`Agent`] runs on a
//! thread of its own, synchronous as everywhere else, and reaches the editor through `client.rs`:
//! its events become `session/update` notifications (`updates.rs`), its approval questions
//! become `session/request_permission` requests, and, when the editor offers its file system,
//! text files are read from and written to the editor's buffers (a [`Buffers`]), and when it
//! offers terminals, the model's commands run in one, still inside tiller's sandbox (a
//! [`Terminal`]). The ledger, the sandbox, review of edits and the egress policy are the
//! agent's, unchanged.
//!
//! What the CLI provides is how a session starts ([`Sessions`]): the same settings, workspace,
//! sandbox, session log and ledger as `tiller exec`.

mod client;
mod server;
mod updates;

use std::path::Path;
use std::sync::Arc;

use tiller_agent::Agent;
use tiller_tools::{Buffers, Terminal};

pub use server::serve;

/// Starts tiller sessions for the editor.
pub trait Sessions: Send + 'static {
    /// Opens a session in the workspace `cwd`: a new one, or with `resume` the recorded session
    /// of that id, its history in the agent. Text files go through `buffers` and the shell's
    /// commands through `terminal` when given.
    fn open(
        &mut self,
        cwd: &Path,
        resume: Option<&str>,
        buffers: Option<Arc<dyn Buffers>>,
        terminal: Option<Arc<dyn Terminal>>,
    ) -> Result<Opened, String>;
}

/// A session ready to take prompts.
pub struct Opened {
    /// The session's id, as `tiller sessions` lists it.
    pub id: String,
    pub agent: Agent,
}

/// Why serving the editor stopped.
#[derive(Debug, thiserror::Error)]
pub enum AcpError {
    #[error("agent client protocol: {0}")]
    Protocol(String),
}
