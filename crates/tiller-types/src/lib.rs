//! The vocabulary shared by every tiller crate: conversation messages, tool calls, token usage,
//! the events a model streams and the agent emits, pending change sets, and configuration.
//!
//! Data only: serde, no I/O, no async (the one shared flag, [`Cancel`], is an atomic); the one
//! exception is [`file`], the bounded way to read a file someone named, which every layer needs.

mod cancel;
mod change;
mod config;
mod event;
pub mod file;
mod message;
mod price;
pub mod text;
pub mod time;

pub use cancel::Cancel;
pub use change::{ChangeKind, ChangeSet, FileChange, Hunk, Selection};
pub use config::{
    ApprovalPolicy, Config, Egress, McpServer, McpSettings, Profile, ProviderKind, SandboxSettings,
};
pub use event::{AgentEvent, StopReason, StreamEvent};
pub use message::{Message, ToolCall, ToolSpec, Usage};
pub use price::{Price, PriceTable};
