//! The Model Context Protocol client: the tools of the MCP servers in the config offered to the
//! agent beside tiller's own, named `server__tool`, with the schemas the servers give.
//!
//! The protocol is the official SDK's (`rmcp`), on a tokio runtime that stays inside this crate:
//! the rest of tiller sees [`McpServers`], a synchronous [`ToolSource`](tiller_tools::ToolSource).
//! Servers start when a session first lists its tools, confined like the agent's commands
//! ([`Launch`]), or are reached over streamable HTTP through the egress policy, and stop, with
//! every process they started, when it is dropped; their tools are listed again once a server
//! says they changed. A server that does not start, stops during a call, answers with something
//! else than the protocol, or does not answer in time gives a warning or an observation, never
//! an error of the session.

mod http;
mod result;
mod server;
mod servers;

pub use server::Launch;
pub use servers::{McpServers, ServerStatus, ToolInfo};

use tiller_sandbox::SandboxError;

/// What can go wrong with a server.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("MCP server `{0}` has neither a `command` nor a `url`")]
    NoCommand(String),
    #[error(
        "MCP server `{0}` was not started: nothing here can confine it (sandbox tier C); \
         --dangerously-run-unconfined starts it unconfined"
    )]
    Unconfined(String),
    #[error("MCP server `{server}` did not start: {detail}")]
    Start { server: String, detail: String },
    #[error("cannot start the MCP client's runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}
