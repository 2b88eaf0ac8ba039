//! A provider that replays a recorded conversation, turn by turn, for deterministic tests and
//! demos. It keeps every request it was sent, so tests can check the prompt.
//!
//! Script format (JSON):
//!
//! ```json
//! { "model": "scripted", "context_length": 8192,
//!   "turns": [
//!     { "text": "Let me look.", "tool_calls": [ { "name": "read_file", "arguments": { "path": "a.rs" } } ] },
//!     { "text": "Done." } ] }
//! ```
//!
//! `arguments` may be a JSON value or a string holding raw (even malformed) JSON. A turn may give
//! `usage`; otherwise prompt and completion tokens are estimated. `"truncate": true` streams the
//! turn's text and then fails as a dropped connection would. `"pace_ms": N` at the top waits N
//! milliseconds before each streamed word, as a real model's tokens arrive over time.
//! `"departures": [["reply", …], …]` gives the replies of each call for departures in turn.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tiller_types::{ProviderKind, StopReason, StreamEvent, ToolCall, Usage};

use crate::{
    Cancel, Collector, Completion, ModelError, ModelInfo, Provider, Request, estimate_tokens,
};

/// Replays a [`Script`].
pub struct Scripted {
    path: String,
    script: Script,
    next: usize,
    departed: usize,
    requests: Arc<Mutex<Vec<Request>>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default = "default_model")]
    pub model: String,
    #[serde(default = "default_context")]
    pub context_length: u64,
    /// Milliseconds before each streamed word.
    #[serde(default)]
    pub pace_ms: u64,
    pub turns: Vec<ScriptedReply>,
    /// The replies of each call for departures, in turn; none once they are used up.
    #[serde(default)]
    pub departures: Vec<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedReply {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub tool_calls: Vec<ScriptedCall>,
    pub usage: Option<Usage>,
    /// Stream the text, then break off as a dropped connection would.
    #[serde(default)]
    pub truncate: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCall {
    pub name: String,
    #[serde(default)]
    pub arguments: serde_json::Value,
}

fn default_model() -> String {
    "scripted".into()
}

fn default_context() -> u64 {
    8192
}

impl Scripted {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let err = |detail: String| ModelError::Script { path: path.display().to_string(), detail };
        let text = tiller_types::file::read_text_bounded(path, 64 << 20)
            .map_err(|e| err(e.to_string()))?;
        let script = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        Ok(Self::new(path.display().to_string(), script))
    }

    pub fn new(path: String, script: Script) -> Self {
        Scripted { path, script, next: 0, departed: 0, requests: Arc::default() }
    }

    /// A handle on the requests received from now on. Requests are kept only while someone
    /// holds such a handle: a long scripted session would otherwise keep every prompt.
    pub fn requests(&self) -> Arc<Mutex<Vec<Request>>> {
        Arc::clone(&self.requests)
    }
}

impl Provider for Scripted {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            provider: ProviderKind::Scripted,
            model: self.script.model.clone(),
            context_length: self.script.context_length,
            endpoint: None,
        }
    }

    fn complete(
        &mut self,
        req: &Request,
        cancel: &Cancel,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<Completion, ModelError> {
        if Arc::strong_count(&self.requests) > 1
            && let Ok(mut log) = self.requests.lock()
        {
            log.push(req.clone());
        }
        let turn = self.script.turns.get(self.next).cloned().ok_or_else(|| ModelError::Script {
            path: self.path.clone(),
            detail: format!(
                "no turn {} (the script has {})",
                self.next + 1,
                self.script.turns.len()
            ),
        })?;
        self.next += 1;
        self.play(turn, req, cancel, on_event)
    }

    fn departures(
        &mut self,
        req: &Request,
        _text: &str,
        _held: &[usize],
        n: usize,
        cancel: &Cancel,
    ) -> Result<Vec<Completion>, ModelError> {
        let replies = self.script.departures.get(self.departed).cloned().unwrap_or_default();
        self.departed += 1;
        let turn =
            |text| ScriptedReply { text, tool_calls: Vec::new(), usage: None, truncate: false };
        let mut ignore = |_: &StreamEvent| {};
        replies.into_iter().take(n).map(|t| self.play(turn(t), req, cancel, &mut ignore)).collect()
    }
}

impl Scripted {
    /// Streams `turn` as the reply to `req`.
    fn play(
        &self,
        turn: ScriptedReply,
        req: &Request,
        cancel: &Cancel,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<Completion, ModelError> {
        let mut out = Collector::new(on_event);
        // Stream word by word so that consumers see real deltas.
        for piece in turn.text.split_inclusive(' ') {
            if self.script.pace_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(self.script.pace_ms));
            }
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            out.emit(StreamEvent::TextDelta { text: piece.to_string() });
        }
        if turn.truncate {
            return Err(ModelError::Truncated { endpoint: self.path.clone() });
        }
        for (i, call) in turn.tool_calls.iter().enumerate() {
            let arguments = match &call.arguments {
                serde_json::Value::String(raw) => raw.clone(),
                serde_json::Value::Null => "{}".into(),
                value => value.to_string(),
            };
            let id = format!("call_{}_{}", self.next, i + 1);
            out.emit(StreamEvent::ToolCall {
                call: ToolCall { id, name: call.name.clone(), arguments },
            });
        }
        let usage = turn.usage.unwrap_or_else(|| Usage {
            prompt_tokens: serde_json::to_string(&req.messages).map_or(0, |s| estimate_tokens(&s)),
            cached_tokens: 0,
            completion_tokens: estimate_tokens(&turn.text),
        });
        out.emit(StreamEvent::Usage { usage });
        let stop =
            if turn.tool_calls.is_empty() { StopReason::EndTurn } else { StopReason::ToolCalls };
        out.emit(StreamEvent::Done { stop });
        Ok(out.finish(self.script.model.clone(), None, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(json: &str) -> Scripted {
        Scripted::new("test".into(), serde_json::from_str(json).unwrap())
    }

    #[test]
    fn replays_turns_and_streams_events() {
        let mut p = script(
            r#"{"turns":[{"text":"a b","tool_calls":[{"name":"t","arguments":{"x":1}}]},{"text":"end"}]}"#,
        );
        let requests = p.requests();
        let mut events = Vec::new();
        let c = p
            .complete(&Request::default(), &Cancel::default(), &mut |e| events.push(e.clone()))
            .unwrap();
        assert_eq!(c.content, "a b");
        assert_eq!(c.tool_calls[0].arguments, r#"{"x":1}"#);
        assert_eq!(c.stop, StopReason::ToolCalls);
        assert_eq!(events[0], StreamEvent::TextDelta { text: "a ".into() });
        assert!(matches!(events.last(), Some(StreamEvent::Done { stop: StopReason::ToolCalls })));
        let c = p.complete(&Request::default(), &Cancel::default(), &mut |_| {}).unwrap();
        assert_eq!(c.content, "end");
        let err = p.complete(&Request::default(), &Cancel::default(), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("no turn 3"), "{err}");
        assert_eq!(requests.lock().unwrap().len(), 3);
    }

    #[test]
    fn raw_string_arguments_pass_through_unparsed() {
        let mut p = script(r#"{"turns":[{"tool_calls":[{"name":"t","arguments":"{not json"}]}]}"#);
        let c = p.complete(&Request::default(), &Cancel::default(), &mut |_| {}).unwrap();
        assert_eq!(c.tool_calls[0].arguments, "{not json");
    }

    #[test]
    fn cancelled_before_start_stops() {
        let mut p = script(r#"{"turns":[{"text":"a b c"}]}"#);
        let cancel = Cancel::default();
        cancel.cancel();
        assert!(matches!(
            p.complete(&Request::default(), &cancel, &mut |_| {}),
            Err(ModelError::Cancelled)
        ));
    }
}
