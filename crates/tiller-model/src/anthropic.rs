//! The Anthropic Messages API (`POST {base_url}/messages`, streamed).
//!
//! System messages become the top-level `system` prompt; tool calls are `tool_use` blocks of
//! the assistant turn and tool results `tool_result` blocks of the next user turn, with
//! consecutive messages of one role merged, as the API requires turns to alternate.
//!
//! Each request marks four prompt-cache breakpoints (the API's most): the tools, the system
//! prompt, and the ends of the last two user turns, so that each call reads the conversation so
//! far from the cache (`cache_read_input_tokens`) and writes only what is new.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tiller_types::{Message, ProviderKind, StopReason, StreamEvent, ToolCall, Usage};

use crate::http::{self, Client, Decoder, SseEvent};
use crate::{
    Cancel, Collector, Completion, EndpointConfig, ModelError, ModelInfo, Provider, Request,
    ToolChoice, default_max_tokens,
};

/// The API version this module speaks.
const VERSION: &str = "2023-06-01";

/// A model behind the Anthropic Messages API.
pub struct Anthropic {
    client: Client,
}

impl Anthropic {
    /// Checks the endpoint's URL; nothing is sent until the first call.
    pub fn new(config: EndpointConfig) -> Result<Self, ModelError> {
        Ok(Anthropic { client: Client::new(config)? })
    }
}

impl Provider for Anthropic {
    fn info(&self) -> ModelInfo {
        self.client.info(ProviderKind::Anthropic)
    }

    fn complete(
        &mut self,
        req: &Request,
        cancel: &Cancel,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<Completion, ModelError> {
        let config = &self.client.config;
        let (system, mut messages) = turns(&req.messages);
        let mut tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        let ephemeral = || json!({"type": "ephemeral"});
        let system = system
            .map(|text| vec![json!({"type": "text", "text": text, "cache_control": ephemeral()})]);
        if let Some(last) = tools.last_mut() {
            last["cache_control"] = ephemeral();
        }
        let user_turns = messages.iter_mut().rev().filter(|t| t.role == "user").take(2);
        for block in user_turns.filter_map(|t| t.content.last_mut()) {
            block["cache_control"] = ephemeral();
        }
        let body = Body {
            model: &config.model,
            // The API requires a limit.
            max_tokens: req.max_tokens.unwrap_or_else(|| default_max_tokens(&self.info())),
            system,
            messages,
            tools,
            tool_choice: (req.tool_choice == ToolChoice::Required && !req.tools.is_empty())
                .then(|| json!({"type": "any"})),
            temperature: req.temperature,
            stop_sequences: &req.stop,
            stream: true,
        };
        let mut headers = vec![("anthropic-version", VERSION.to_string())];
        headers.extend(config.api_key.clone().map(|key| ("x-api-key", key)));
        let (completion, _) =
            self.client.stream::<Stream>("messages", &headers, &body, cancel, on_event)?;
        Ok(completion)
    }
}

/// The request body.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<Vec<Value>>,
    messages: Vec<ApiMessage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop_sequences: &'a [String],
    stream: bool,
}

#[derive(Serialize)]
struct ApiMessage {
    role: &'static str,
    content: Vec<Value>,
}

/// The system prompt and the alternating turns.
fn turns(messages: &[Message]) -> (Option<String>, Vec<ApiMessage>) {
    let text = |t: &str| (!t.is_empty()).then(|| json!({"type": "text", "text": t}));
    let mut system = Vec::new();
    let mut turns: Vec<ApiMessage> = Vec::new();
    for m in messages {
        let (role, blocks): (_, Vec<Value>) = match m {
            Message::System { content } => {
                system.push(content.as_str());
                continue;
            }
            Message::User { content } => ("user", text(content).into_iter().collect()),
            Message::Assistant { content, tool_calls } => {
                let calls = tool_calls.iter().map(|c| {
                    // The API wants an object; a call whose arguments were not one already failed
                    // as a tool call, and its result says so.
                    let input = serde_json::from_str::<Value>(&c.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input})
                });
                ("assistant", text(content).into_iter().chain(calls).collect())
            }
            Message::Tool { call_id, content, is_error, .. } => {
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
                if *is_error {
                    block["is_error"] = json!(true);
                }
                ("user", vec![block])
            }
        };
        match turns.last_mut() {
            _ if blocks.is_empty() => {}
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(ApiMessage { role, content: blocks }),
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    (system, turns)
}

/// One streamed event, tagged by its `type`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        #[serde(default)]
        index: usize,
        content_block: Block,
    },
    ContentBlockDelta {
        #[serde(default)]
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        #[serde(default)]
        index: usize,
    },
    MessageDelta {
        delta: MessageDelta,
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error {
        error: WireError,
    },
    /// `ping` and whatever later API versions add.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    model: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    /// Thinking and server-side tool blocks, which carry nothing for the agent.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDelta {
    stop_reason: Option<String>,
}

/// Token counts; `message_delta` repeats them cumulatively.
#[derive(Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// The decoder's state during one attempt.
#[derive(Default)]
pub(crate) struct Stream {
    model: Option<String>,
    /// Open `tool_use` blocks, by block index.
    calls: Vec<(usize, ToolCall)>,
    stop: Option<StopReason>,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_creation: u64,
    /// Whether a `message_start` came.
    recognised: bool,
}

impl Decoder for Stream {
    fn event(
        &mut self,
        ev: &SseEvent,
        out: &mut Collector,
        endpoint: &str,
    ) -> Result<bool, ModelError> {
        match http::parse(endpoint, &ev.data)? {
            Event::MessageStart { message } => {
                self.recognised = true;
                self.model = message.model;
                self.add_usage(message.usage);
            }
            Event::ContentBlockStart { index, content_block } => match content_block {
                Block::Text { text } if !text.is_empty() => {
                    out.emit(StreamEvent::TextDelta { text });
                }
                Block::ToolUse { id, name } => {
                    let arguments = String::new();
                    self.calls.push((index, ToolCall { id, name, arguments }));
                }
                Block::Text { .. } | Block::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => {
                    out.emit(StreamEvent::TextDelta { text });
                }
                BlockDelta::InputJsonDelta { partial_json } => {
                    if let Some((_, call)) = self.calls.iter_mut().find(|(i, _)| *i == index) {
                        call.arguments.push_str(&partial_json);
                    }
                }
                BlockDelta::TextDelta { .. } | BlockDelta::Other => {}
            },
            Event::ContentBlockStop { index } => {
                if let Some(at) = self.calls.iter().position(|(i, _)| *i == index) {
                    emit_call(self.calls.remove(at).1, out);
                }
            }
            Event::MessageDelta { delta, usage } => {
                self.stop = delta.stop_reason.as_deref().map(stop_reason).or(self.stop);
                self.add_usage(usage);
            }
            Event::MessageStop => {
                for (_, call) in std::mem::take(&mut self.calls) {
                    emit_call(call, out);
                }
                let usage = Usage {
                    prompt_tokens: self.input + self.cache_read + self.cache_creation,
                    cached_tokens: self.cache_read,
                    completion_tokens: self.output,
                };
                out.emit(StreamEvent::Usage { usage });
                let stop = self.stop.unwrap_or(StopReason::EndTurn);
                out.emit(StreamEvent::Done { stop });
                return Ok(true);
            }
            Event::Error { error } => {
                return Err(http::remote(endpoint, error.kind, error.message));
            }
            Event::Other => {}
        }
        Ok(false)
    }

    /// A non-streamed message is replayed as the events that would have streamed it.
    fn whole(
        &mut self,
        body: &str,
        out: &mut Collector,
        endpoint: &str,
    ) -> Result<bool, ModelError> {
        let message: Value = http::parse(endpoint, body)?;
        if message["type"] != "message" {
            // An error, or something else entirely.
            let ev = SseEvent { event: String::new(), data: body.into() };
            return self.event(&ev, out, endpoint);
        }
        let mut events = vec![json!({"type": "message_start", "message": {
            "model": message["model"], "usage": message["usage"]}})];
        let blocks = message["content"].as_array().map_or(&[][..], Vec::as_slice);
        for (index, block) in blocks.iter().enumerate() {
            events.push(
                json!({"type": "content_block_start", "index": index, "content_block": block}),
            );
            if block["type"] == "tool_use" {
                let partial_json = block.get("input").map_or_else(String::new, Value::to_string);
                events.push(json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": partial_json}}));
            }
            events.push(json!({"type": "content_block_stop", "index": index}));
        }
        events.push(
            json!({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"]}}),
        );
        events.push(json!({"type": "message_stop"}));
        let mut done = false;
        for data in events {
            let ev = SseEvent { event: String::new(), data: data.to_string() };
            done = self.event(&ev, out, endpoint)?;
        }
        Ok(done)
    }

    fn recognised(&self) -> bool {
        self.recognised
    }

    fn model(&mut self) -> Option<String> {
        self.model.take()
    }
}

impl Stream {
    fn add_usage(&mut self, usage: Option<WireUsage>) {
        let Some(u) = usage else { return };
        let fields = [
            (&mut self.input, u.input_tokens),
            (&mut self.output, u.output_tokens),
            (&mut self.cache_read, u.cache_read_input_tokens),
            (&mut self.cache_creation, u.cache_creation_input_tokens),
        ];
        for (field, value) in fields {
            if let Some(n) = value {
                *field = n;
            }
        }
    }
}

fn emit_call(mut call: ToolCall, out: &mut Collector) {
    // A tool without parameters streams no input at all.
    if call.arguments.trim().is_empty() {
        call.arguments = "{}".into();
    }
    out.emit(StreamEvent::ToolCall { call });
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "tool_use" => StopReason::ToolCalls,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        _ => StopReason::EndTurn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_tool_results_and_user_text_share_one_turn() {
        let messages = [
            Message::system("a"),
            Message::user("q"),
            Message::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall {
                    id: "t1".into(),
                    name: "x".into(),
                    arguments: "not json".into(),
                }],
            },
            Message::Tool {
                call_id: "t1".into(),
                name: "x".into(),
                content: "bad arguments".into(),
                is_error: true,
            },
            Message::user("go on"),
            Message::system("b"),
        ];
        let (system, turns) = turns(&messages);
        assert_eq!(system.as_deref(), Some("a\n\nb"));
        let roles: Vec<_> = turns.iter().map(|t| t.role).collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(turns[1].content[0]["input"], json!({}));
        assert_eq!(turns[2].content.len(), 2);
        assert_eq!(turns[2].content[0]["is_error"], json!(true));
        assert_eq!(turns[2].content[1], json!({"type": "text", "text": "go on"}));
    }
}
