//! OpenAI-compatible Chat Completions (`POST {base_url}/chat/completions`, streamed), as served
//! by OpenAI, llama.cpp's server, Ollama, vLLM and LM Studio.
//!
//! Servers differ in the details, so the decoder is lenient: missing and `null` fields count as
//! absent; tool-call fragments without an `index` (older Ollama) start a new call when they
//! bring a new id and extend the last one otherwise; usage comes from `usage` (cached tokens in
//! `prompt_tokens_details` or DeepSeek's `prompt_cache_hit_tokens`) or else from llama.cpp's
//! `timings`. A stream that closes cleanly after a `finish_reason` but without `data: [DONE]`
//! counts as complete, since the answer is whole and only the trailing usage chunk may be lost;
//! one that closes before any `finish_reason` is truncated. A non-streamed completion (a
//! `message` in place of each `delta`) is read as one chunk.
//!
//! Every request carries an output limit: `max_completion_tokens` for OpenAI itself, which
//! wants it for its newer models, and `max_tokens`, which llama.cpp's server, vLLM, Ollama and
//! LM Studio all take, for the rest. Behind Ollama, the context is Ollama's (`ollama.rs`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tiller_types::{Message, ProviderKind, StopReason, StreamEvent, ToolCall, Usage};

use crate::http::{self, Client, Decoder, SseEvent};
use crate::{
    Cancel, Collector, Completion, EndpointConfig, ModelError, ModelInfo, Provider, Request,
    ToolChoice, default_max_tokens, ollama,
};

/// OpenAI's own endpoint, which takes `max_completion_tokens`.
const OPENAI_HOST: &str = "api.openai.com";

/// A model behind an OpenAI-compatible endpoint.
pub struct OpenAi {
    client: Client,
    /// The endpoint is OpenAI's own.
    official: bool,
    /// The endpoint is on Ollama's port: ask whether it is Ollama before the first call.
    ollama_port: bool,
    /// What is known of Ollama's context for the model.
    ollama: Known,
    /// The context configured, which Ollama's may lower.
    configured_context: u64,
}

/// How far the context of a model behind Ollama is known.
#[derive(Clone, Copy, PartialEq)]
enum Known {
    /// Nothing asked yet.
    Nothing,
    /// Ollama's answer for a model not loaded yet: asked again after the next call, which loads it.
    Guess,
    /// The loaded model's context, or the endpoint is not Ollama.
    Settled,
}

impl OpenAi {
    /// Checks the endpoint's URL; nothing is sent until the first call.
    pub fn new(config: EndpointConfig) -> Result<Self, ModelError> {
        let url = url::Url::parse(&config.base_url).ok();
        let official = url.as_ref().and_then(|u| u.host_str()) == Some(OPENAI_HOST);
        // On any other port, Ollama is recognised by its first answer.
        let ollama_port = url.and_then(|u| u.port()) == Some(ollama::PORT);
        let configured_context = config.context_length;
        let client = Client::new(config)?;
        Ok(OpenAi { client, official, ollama_port, ollama: Known::Nothing, configured_context })
    }

    /// The models the endpoint serves (`GET /models`).
    pub fn models(&self) -> Result<Vec<String>, ModelError> {
        let url = format!("{}/models", self.client.config.base_url.trim_end_matches('/'));
        let list = self.client.json(&url, None, self.auth().as_slice())?;
        let ids = list["data"].as_array().into_iter().flatten();
        Ok(ids.filter_map(|m| m["id"].as_str().map(str::to_string)).collect())
    }

    fn auth(&self) -> Option<(&'static str, String)> {
        self.client.config.api_key.as_ref().map(|key| ("authorization", format!("Bearer {key}")))
    }

    /// Budgets to the context Ollama runs the model with, when the endpoint is Ollama.
    fn check_ollama(&mut self) {
        self.ollama = Known::Settled;
        if let Some((context, loaded)) = ollama::context(&self.client, &self.client.config.model) {
            self.client.config.context_length = self.configured_context.min(context);
            if !loaded {
                self.ollama = Known::Guess;
            }
        }
    }
}

impl Provider for OpenAi {
    fn info(&self) -> ModelInfo {
        self.client.info(ProviderKind::Openai)
    }

    fn complete(
        &mut self,
        req: &Request,
        cancel: &Cancel,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<Completion, ModelError> {
        if self.ollama_port && self.ollama == Known::Nothing {
            self.check_ollama();
        }
        let config = &self.client.config;
        let limit = req.max_tokens.unwrap_or_else(|| default_max_tokens(&self.info()));
        let (max_tokens, max_completion_tokens) = limit_fields(self.official, limit);
        let body = Body {
            model: &config.model,
            messages: req.messages.iter().map(message).collect(),
            stream: true,
            stream_options: json!({"include_usage": true}),
            tools: req.tools.iter().map(|t| json!({"type": "function", "function": t})).collect(),
            tool_choice: (req.tool_choice == ToolChoice::Required && !req.tools.is_empty())
                .then_some("required"),
            max_tokens,
            max_completion_tokens,
            temperature: req.temperature,
            stop: &req.stop,
        };
        let auth = self.auth();
        let (completion, stream) = self.client.stream::<Stream>(
            "chat/completions",
            auth.as_slice(),
            &body,
            cancel,
            on_event,
        )?;
        let from_ollama = stream.fingerprint.as_deref() == Some(ollama::FINGERPRINT);
        if from_ollama && self.ollama != Known::Settled {
            self.check_ollama();
        }
        Ok(completion)
    }
}

/// The request body.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<Value>,
    stream: bool,
    stream_options: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop: &'a [String],
}

/// `max_tokens` and `max_completion_tokens`: OpenAI's newer models refuse the first, and other
/// servers know only it.
fn limit_fields(official: bool, limit: u32) -> (Option<u32>, Option<u32>) {
    if official { (None, Some(limit)) } else { (Some(limit), None) }
}

fn message(m: &Message) -> Value {
    match m {
        Message::System { content } => json!({"role": "system", "content": content}),
        Message::User { content } => json!({"role": "user", "content": content}),
        Message::Assistant { content, tool_calls } if tool_calls.is_empty() => {
            json!({"role": "assistant", "content": content})
        }
        Message::Assistant { content, tool_calls } => {
            let calls: Vec<Value> = tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
            let content = (!content.is_empty()).then_some(content);
            json!({"role": "assistant", "content": content, "tool_calls": calls})
        }
        Message::Tool { call_id, content, .. } => {
            json!({"role": "tool", "tool_call_id": call_id, "content": content})
        }
    }
}

/// One streamed chunk; every field may be missing or `null`.
#[derive(Deserialize)]
struct Chunk {
    model: Option<String>,
    system_fingerprint: Option<String>,
    choices: Option<Vec<Choice>>,
    usage: Option<WireUsage>,
    timings: Option<Timings>,
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct Choice {
    /// `message` in a non-streamed completion.
    #[serde(alias = "message")]
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
    tool_calls: Option<Vec<CallDelta>>,
}

#[derive(Deserialize)]
struct CallDelta {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    /// A string fragment; some servers send the whole arguments as an object.
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Details {
    cached_tokens: Option<u64>,
}

/// llama.cpp's server statistics: `prompt_n` tokens evaluated, `cache_n` reused.
#[derive(Deserialize)]
struct Timings {
    prompt_n: Option<u64>,
    cache_n: Option<u64>,
    predicted_n: Option<u64>,
}

#[derive(Deserialize)]
struct WireError {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The decoder's state during one attempt.
#[derive(Default)]
pub(crate) struct Stream {
    model: Option<String>,
    /// The server's `system_fingerprint`.
    fingerprint: Option<String>,
    /// Tool calls being assembled, by stream index, in order of appearance.
    calls: Vec<(usize, ToolCall)>,
    emitted_calls: usize,
    finish: Option<StopReason>,
    usage: Option<Usage>,
    /// Whether any chunk had a choice.
    recognised: bool,
}

impl Decoder for Stream {
    fn event(
        &mut self,
        ev: &SseEvent,
        out: &mut Collector,
        endpoint: &str,
    ) -> Result<bool, ModelError> {
        if ev.data.trim() == "[DONE]" {
            self.finish(out);
            return Ok(true);
        }
        let chunk: Chunk = http::parse(endpoint, &ev.data)?;
        if let Some(e) = chunk.error {
            return Err(http::remote(endpoint, e.kind, e.message));
        }
        if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
            self.model = Some(model);
        }
        self.fingerprint = chunk.system_fingerprint.or(self.fingerprint.take());
        for choice in chunk.choices.into_iter().flatten() {
            self.recognised = true;
            let delta = choice.delta.map_or((None, None), |d| (d.content, d.tool_calls));
            if let Some(text) = delta.0.filter(|t| !t.is_empty()) {
                out.emit(StreamEvent::TextDelta { text });
            }
            for call in delta.1.into_iter().flatten() {
                self.add_fragment(call);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(stop_reason(&reason));
                self.emit_calls(out);
            }
        }
        if let Some(usage) = usage(chunk.usage, chunk.timings) {
            self.usage = Some(usage);
        }
        Ok(false)
    }

    fn eof(&mut self, out: &mut Collector) -> bool {
        if self.finish.is_some() {
            self.finish(out);
        }
        out.is_done()
    }

    fn whole(
        &mut self,
        body: &str,
        out: &mut Collector,
        endpoint: &str,
    ) -> Result<bool, ModelError> {
        let ev = SseEvent { event: String::new(), data: body.into() };
        self.event(&ev, out, endpoint)?;
        if self.recognised {
            self.finish(out);
        }
        Ok(self.recognised)
    }

    fn recognised(&self) -> bool {
        self.recognised
    }

    fn model(&mut self) -> Option<String> {
        self.model.take()
    }
}

impl Stream {
    fn add_fragment(&mut self, d: CallDelta) {
        let id = d.id.filter(|id| !id.is_empty());
        let index = match (d.index, &id) {
            (Some(index), _) => index,
            (None, Some(id)) if !self.calls.iter().any(|(_, c)| c.id == *id) => {
                self.calls.iter().map(|(i, _)| i + 1).max().unwrap_or(0)
            }
            (None, _) => self.calls.last().map_or(0, |(i, _)| *i),
        };
        let slot = match self.calls.iter().position(|(i, _)| *i == index) {
            Some(slot) => slot,
            None => {
                let call =
                    ToolCall { id: String::new(), name: String::new(), arguments: String::new() };
                self.calls.push((index, call));
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[slot].1;
        // Some servers repeat the id and name in every fragment: keep the first.
        if let Some(id) = id.filter(|_| call.id.is_empty()) {
            call.id = id;
        }
        let (name, arguments) = d.function.map_or((None, None), |f| (f.name, f.arguments));
        if let Some(name) = name.filter(|_| call.name.is_empty()) {
            call.name = name;
        }
        match arguments {
            Some(Value::String(fragment)) => call.arguments.push_str(&fragment),
            Some(Value::Null) | None => {}
            Some(whole) => call.arguments.push_str(&whole.to_string()),
        }
    }

    /// Passes on the tool calls assembled so far.
    fn emit_calls(&mut self, out: &mut Collector) {
        for (_, mut call) in self.calls.drain(..) {
            self.emitted_calls += 1;
            if call.id.is_empty() {
                call.id = format!("call_{}", self.emitted_calls);
            }
            if call.arguments.trim().is_empty() {
                call.arguments = "{}".into();
            }
            out.emit(StreamEvent::ToolCall { call });
        }
    }

    fn finish(&mut self, out: &mut Collector) {
        self.emit_calls(out);
        if let Some(usage) = self.usage {
            out.emit(StreamEvent::Usage { usage });
        }
        // Some servers report `stop` even when the model called tools.
        let stop = match self.finish {
            Some(StopReason::MaxTokens) => StopReason::MaxTokens,
            _ if self.emitted_calls > 0 => StopReason::ToolCalls,
            other => other.unwrap_or(StopReason::EndTurn),
        };
        out.emit(StreamEvent::Done { stop });
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolCalls,
        _ => StopReason::EndTurn,
    }
}

fn usage(usage: Option<WireUsage>, timings: Option<Timings>) -> Option<Usage> {
    let cache_n = timings.as_ref().and_then(|t| t.cache_n);
    let from_timings = timings.map(|t| Usage {
        prompt_tokens: t.prompt_n.unwrap_or(0) + t.cache_n.unwrap_or(0),
        cached_tokens: t.cache_n.unwrap_or(0),
        completion_tokens: t.predicted_n.unwrap_or(0),
    });
    let Some(u) = usage else {
        return from_timings;
    };
    let cached = u.prompt_tokens_details.and_then(|d| d.cached_tokens);
    Some(Usage {
        prompt_tokens: u.prompt_tokens.unwrap_or(0),
        cached_tokens: cached.or(u.prompt_cache_hit_tokens).or(cache_n).unwrap_or(0),
        completion_tokens: u.completion_tokens.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(lines: &[&str]) -> (Vec<StreamEvent>, bool) {
        let mut events = Vec::new();
        let mut sink = |e: &StreamEvent| events.push(e.clone());
        let mut out = Collector::new(&mut sink);
        let mut stream = Stream::default();
        let mut done = false;
        for data in lines {
            let ev = SseEvent { event: String::new(), data: data.to_string() };
            done = stream.event(&ev, &mut out, "test").unwrap();
        }
        (events, done)
    }

    #[test]
    fn openai_itself_gets_max_completion_tokens() {
        assert_eq!(limit_fields(true, 9), (None, Some(9)));
        assert_eq!(limit_fields(false, 9), (Some(9), None));
        let host = |url: &str| url::Url::parse(url).unwrap().host_str().map(str::to_string);
        assert_eq!(host("https://api.openai.com/v1").as_deref(), Some(OPENAI_HOST));
    }

    #[test]
    fn fragments_without_index_are_told_apart_by_id() {
        let (events, done) = decode(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"x","arguments":"{\"k\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"y","arguments":{"z":2}}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]);
        assert!(done);
        let calls: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCall { call } => Some((&*call.id, &*call.name, &*call.arguments)),
                _ => None,
            })
            .collect();
        assert_eq!(calls, [("a", "x", r#"{"k":1}"#), ("b", "y", r#"{"z":2}"#)]);
        assert_eq!(events.last(), Some(&StreamEvent::Done { stop: StopReason::ToolCalls }));
    }

    #[test]
    fn nulls_are_absent_and_usage_falls_back_to_timings() {
        let (events, _) = decode(&[
            r#"{"model":null,"choices":[{"delta":{"content":null,"tool_calls":null},"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"length"}],"timings":{"prompt_n":5,"cache_n":7,"predicted_n":3}}"#,
            "[DONE]",
        ]);
        assert_eq!(
            events,
            [
                StreamEvent::Usage {
                    usage: Usage { prompt_tokens: 12, cached_tokens: 7, completion_tokens: 3 }
                },
                StreamEvent::Done { stop: StopReason::MaxTokens }
            ]
        );
    }
}
