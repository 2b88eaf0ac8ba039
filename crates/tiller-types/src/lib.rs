//! The vocabulary shared by every tiller crate: conversation messages, tool calls, token usage,
//! the events a model streams and the agent emits, pending change sets, and configuration.
//!
//! Data only: serde, no I/O, no async (the one shared flag, [`Cancel`], is an atomic).

mod cancel;
mod change;
mod config;
mod event;
mod message;
mod price;
pub mod time;

pub use cancel::Cancel;
pub use change::{ChangeKind, ChangeSet, FileChange, Hunk, Selection};
pub use config::{ApprovalPolicy, Config, Egress, Profile, ProviderKind, SandboxSettings};
pub use event::{AgentEvent, StopReason, StreamEvent};
pub use message::{Message, ToolCall, ToolSpec, Usage};
pub use price::{Price, PriceTable};
