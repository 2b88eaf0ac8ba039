//! Events: what a model streams during one call, and what the agent reports as it works.
//!
//! `AgentEvent` is also the schema of `tiller exec --json` (one JSON object per line, tagged by
//! `type`); docs/exec-json.md documents it. Add variants; never change the meaning of one.

use serde::{Deserialize, Serialize};

use crate::{ChangeSet, ToolCall, Usage};

/// One event of a streamed model call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// A piece of the answer text.
    TextDelta { text: String },
    /// A complete tool call (streamed argument fragments are assembled before this is sent).
    ToolCall { call: ToolCall },
    /// Token counts for the call, as reported by the engine or endpoint.
    Usage { usage: Usage },
    /// The call failed in a way worth retrying and will be tried again after `delay_ms`.
    Retry { attempt: u32, delay_ms: u64, reason: String },
    /// The model finished this call.
    Done { stop: StopReason },
}

/// Why a model stopped generating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its answer.
    EndTurn,
    /// The model wants tool calls run.
    ToolCalls,
    /// The output limit was reached.
    MaxTokens,
    /// A stop sequence was produced.
    StopSequence,
    /// The caller cancelled generation.
    Cancelled,
}

/// What the agent reports while it works on a task. Front ends render these; `exec --json` prints
/// them as JSONL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    SessionStarted {
        session_id: String,
        workspace: String,
        provider: String,
        model: String,
        /// How the model's commands are confined: the sandbox tier and its warnings.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sandbox: Vec<String>,
    },
    /// A model turn begins; `step` counts from 1.
    TurnStarted {
        step: u32,
    },
    TextDelta {
        text: String,
    },
    ToolCall {
        call: ToolCall,
    },
    ToolResult {
        call_id: String,
        name: String,
        output: String,
        is_error: bool,
    },
    /// An edit was proposed and waits for review.
    ChangeProposed {
        call_id: String,
        changes: ChangeSet,
    },
    /// The reviewed part of a change set was written to the working tree.
    ChangeApplied {
        call_id: String,
        files: Vec<String>,
    },
    /// A change set, or a command, was refused by the reviewer.
    Rejected {
        call_id: String,
        feedback: Option<String>,
    },
    Retry {
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    /// Usage of one model call, and the session's running total.
    Usage {
        call: Usage,
        total: Usage,
    },
    /// Older turns were summarised to fit the context window.
    Compacted {
        tokens_before: u64,
        tokens_after: u64,
    },
    /// At an edit step, candidate edits were sampled and checked by the project's tests in
    /// scratch copies of the workspace: `passed` of `total` made the tests pass.
    Candidates {
        call_id: String,
        passed: usize,
        total: usize,
    },
    /// The final answer of the task.
    Answer {
        text: String,
    },
    Error {
        message: String,
    },
    /// Something the user should know that does not stop the task (the ledger cannot be
    /// written, say); each kind is reported once per run.
    Warning {
        message: String,
    },
}
