//! Conversation messages, tool calls and token usage.

use serde::{Deserialize, Serialize};

/// One message of a conversation, in the order the model sees them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        #[serde(default)]
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The observation produced by running one tool call.
    Tool {
        call_id: String,
        name: String,
        content: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message::System { content: content.into() }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Message::User { content: content.into() }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Message::Assistant { content: content.into(), tool_calls: Vec::new() }
    }

    /// The text of the message, without tool calls.
    pub fn text(&self) -> &str {
        match self {
            Message::System { content }
            | Message::User { content }
            | Message::Assistant { content, .. }
            | Message::Tool { content, .. } => content,
        }
    }
}

/// A call the model asked for. `arguments` is the raw JSON text the model produced: it is parsed
/// (and may be found malformed) only when the tool runs, so that a bad call becomes an observation
/// the model can correct rather than a failure of the whole turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What a tool is, as offered to the model: its name, what it does, and a JSON schema of its
/// arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// Tokens spent by one model call, or a sum of calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Prompt tokens served from a cache (provider prompt cache or local KV cache).
    pub cached_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    /// Prompt plus completion tokens, saturating rather than wrapping on absurd counts.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// Saturating: a server reporting absurd counts (`u64::MAX`) pins a total at the maximum rather
/// than wrapping it round to a small number.
impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(other.completion_tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_serialize_with_role_tag() {
        let m = Message::Tool {
            call_id: "c1".into(),
            name: "read_file".into(),
            content: "hi".into(),
            is_error: false,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"role":"tool","call_id":"c1","name":"read_file","content":"hi"}"#);
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), m);
    }

    #[test]
    fn usage_adds_up() {
        let mut u = Usage { prompt_tokens: 10, cached_tokens: 4, completion_tokens: 2 };
        u += Usage { prompt_tokens: 1, cached_tokens: 1, completion_tokens: 1 };
        assert_eq!(u, Usage { prompt_tokens: 11, cached_tokens: 5, completion_tokens: 3 });
    }

    #[test]
    fn absurd_usage_saturates_instead_of_wrapping() {
        let mut u = Usage { prompt_tokens: 10, cached_tokens: 0, completion_tokens: 2 };
        u += Usage { prompt_tokens: u64::MAX, cached_tokens: u64::MAX, completion_tokens: 1 };
        assert_eq!(
            u,
            Usage { prompt_tokens: u64::MAX, cached_tokens: u64::MAX, completion_tokens: 3 }
        );
        assert_eq!(u.tokens(), u64::MAX);
    }
}
