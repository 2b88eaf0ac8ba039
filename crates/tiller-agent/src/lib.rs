//! The tiller agent: a loop of model turns and tool calls over one workspace, until the model
//! answers or a step limit is reached.
//!
//! The agent talks only to traits: a [`Provider`](tiller_model::Provider) for the model, the
//! tool [`Registry`](tiller_tools::Registry), an [`Approver`] that a front end implements to
//! review edits and commands, and an event callback. It never prints. Every message is appended
//! to the session log as it completes, so a killed process loses no completed turn.

mod agent;
mod approval;
mod candidates;
mod compact;
mod error;
mod ground;
mod ids;
mod localise;
mod prompt;
mod record;
mod redact;
mod repeat;
mod session;

pub use agent::{Agent, AgentConfig, ModelSwitch};
pub use approval::{AcceptAll, Approver, Review, Verdict, needs_approval};
pub use candidates::Checker;
pub use error::AgentError;
pub use prompt::{agents_files, system_prompt};
pub use record::Recorder;
pub use redact::{Finding, Redacted, Redactor};
pub use repeat::MAX_REPEATS;
pub use session::{
    SessionLog, SessionMeta, SessionSummary, list_sessions, load_session, parse_session,
    take_kept_rows,
};
