//! Language models behind one trait. A [`Provider`] takes a [`Request`] (messages and offered
//! tools), streams [`StreamEvent`]s to a callback while it works, and returns the assembled
//! [`Completion`]. Implementations: OpenAI-compatible Chat Completions ([`OpenAi`]), the
//! Anthropic Messages API ([`Anthropic`]), and a [`Scripted`] replay for deterministic tests.
//! The embedded llama.cpp engine lives in its own crate and implements the same trait.

mod anthropic;
mod collect;
mod egress;
mod error;
mod fetch;
mod http;
mod ollama;
mod openai;
mod scripted;
mod sse;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tiller_types::{Message, ProviderKind, StopReason, StreamEvent, ToolCall, ToolSpec, Usage};

pub use anthropic::Anthropic;
pub use collect::Collector;
pub use egress::{EgressPolicy, Reach, reach};
pub use error::ModelError;
pub use fetch::{Download, Fetcher, part_path};
pub use http::{SseEvent, http_agent, http_failure, read_body};
pub use openai::OpenAi;
pub use scripted::{Script, Scripted, ScriptedReply};
#[doc(hidden)]
pub use sse::decode_body;
pub use sse::read_events;
/// Moved to `tiller-types`, where the tools see it too; kept here for the providers' callers.
pub use tiller_types::Cancel;

/// A language model that completes conversations.
pub trait Provider: Send {
    /// What this provider talks to.
    fn info(&self) -> ModelInfo;

    /// Runs one model call. Events are passed to `on_event` as they arrive; the returned
    /// completion holds the same content, assembled. Checks `cancel` between events.
    fn complete(
        &mut self,
        req: &Request,
        cancel: &Cancel,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<Completion, ModelError>;

    /// `n` completions of one request, sampled independently (no events are streamed). The
    /// default asks `n` times in turn; an engine may decode them together, sharing the prompt.
    fn complete_n(
        &mut self,
        req: &Request,
        n: usize,
        cancel: &Cancel,
    ) -> Result<Vec<Completion>, ModelError> {
        (0..n).map(|_| self.complete(req, cancel, &mut |_| {})).collect()
    }

    /// Up to `n` one-line departures from `text`, the reply the caller expects to `req` (after
    /// its `reply_start`), most likely first: each follows `text` up to a token the model ranks
    /// high in place of the one there, then takes the model's most likely tokens to the end of
    /// that line (or, a swap, keeps the rest of the line as it was), and keeps the rest of
    /// `text`. None begins on the lines of `text` in `held` (counting from 0): a comment, say,
    /// whose change would change nothing the code does. A completion's content is the whole
    /// reply so changed. Only a provider that reads the model's token probabilities can say;
    /// the others give none.
    fn departures(
        &mut self,
        req: &Request,
        text: &str,
        held: &[usize],
        n: usize,
        cancel: &Cancel,
    ) -> Result<Vec<Completion>, ModelError> {
        let _ = (req, text, held, n, cancel);
        Ok(Vec::new())
    }

    /// Tokens `text` takes in this model's prompt. Remote providers estimate; engines with a
    /// tokenizer count exactly.
    fn count_tokens(&self, text: &str) -> u64 {
        estimate_tokens(text)
    }
}

/// A rough token count (about four bytes a token for English and code).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// The per-reply output limit used when none is configured, so that a model that runs on is cut
/// rather than filling its context. Anthropic: the most its current models take (32,000; 8,192
/// for Claude 3.5, 4,096 for older Claude 3), so that a large file write fits. Others: a quarter
/// of the context, the part the agent keeps free for the reply, up to 16,384 tokens.
pub fn default_max_tokens(info: &ModelInfo) -> u32 {
    if info.provider == ProviderKind::Anthropic {
        let model = info.model.as_str();
        return if model.starts_with("claude-3-5") {
            8192
        } else if model.starts_with("claude-3-") && !model.starts_with("claude-3-7") {
            4096
        } else {
            32_000
        };
    }
    (info.context_length / 4).clamp(256, 16_384) as u32
}

/// Static facts about a provider's model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    pub provider: ProviderKind,
    pub model: String,
    /// Context window in tokens.
    pub context_length: u64,
    /// The endpoint, for remote providers.
    pub endpoint: Option<String>,
}

/// One model call's input.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub messages: Vec<Message>,
    /// The tools offered, as the prompt describes them.
    pub tools: Vec<ToolSpec>,
    /// The calls a reply may make, where the embedded engine's grammar holds them closer than
    /// `tools` (the paths and lines that exist, or one tool of them); empty: as `tools` says.
    /// The prompt stays as `tools` has it, so that its cache holds from one step to the next.
    /// Followed by the embedded engine only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callable: Vec<ToolSpec>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(default, skip_serializing_if = "ToolChoice::is_auto")]
    pub tool_choice: ToolChoice,
    /// The start of the reply, given by the caller: the model continues it, and the content of
    /// the completion begins with it. Followed by the embedded engine; the other providers send
    /// the request without it, so the caller must accept a reply that does not begin with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_start: Option<String>,
}

impl Request {
    /// Holds the reply to calls of tool `name`: in `callable` where it holds the calls (the
    /// prompt stays as it was), in the tools offered otherwise.
    pub fn only_calls(&mut self, name: &str) {
        let held = if self.callable.is_empty() { &mut self.tools } else { &mut self.callable };
        held.retain(|t| t.name == name);
    }

    /// The calls a reply may make.
    pub fn callable(&self) -> &[ToolSpec] {
        if self.callable.is_empty() { &self.tools } else { &self.callable }
    }
}

/// Whether the model must call a tool when tools are offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model replies with text or a tool call, as it chooses.
    #[default]
    Auto,
    /// Every reply is a tool call. Very small models hardly ever choose to call a tool on their
    /// own, so an agent driving one offers an `answer` tool and requires a call.
    Required,
}

impl ToolChoice {
    pub fn is_auto(&self) -> bool {
        *self == ToolChoice::Auto
    }
}

/// One model call's output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Completion {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub stop: StopReason,
    /// The model the endpoint says answered (may differ from the one requested).
    pub model: String,
    pub meta: CallMeta,
}

impl Completion {
    /// The completion as an assistant message for the conversation.
    pub fn message(&self) -> Message {
        Message::Assistant { content: self.content.clone(), tool_calls: self.tool_calls.clone() }
    }
}

/// How a call went, for the ledger.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CallMeta {
    pub http_status: Option<u16>,
    /// Attempts made before the one that succeeded.
    pub retries: u32,
    /// Time to the first streamed event.
    pub ttft_ms: Option<u64>,
    pub latency_ms: u64,
}

/// Settings shared by the HTTP providers.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Base URL including the version path, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub context_length: u64,
    pub connect_timeout: Duration,
    /// Longest silence tolerated from the endpoint, before or between streamed chunks.
    pub idle_timeout: Duration,
    /// Longest a whole call may take, retries and their waits included, however steadily the
    /// endpoint sends (keep-alive comments reset the idle timeout, not this).
    pub deadline: Duration,
    pub max_retries: u32,
    /// Where connections may go; checked before the first request and at every connect.
    pub egress: EgressPolicy,
}
