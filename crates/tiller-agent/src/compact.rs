//! Keeping the conversation inside the model's context window: counting it, choosing what to
//! summarise, and cutting observations down to size.

use tiller_model::Provider;
use tiller_types::Message;

/// Instructions for the model call that summarises older turns.
pub(crate) const SUMMARY_PROMPT: &str = "\
You summarise the earlier part of a coding session so that the work can go on without it. \
State the task, what was done (files read or changed, commands run and their results), what was \
learned, and what remains. Be brief and concrete; keep paths, names and error messages exact.";

/// Separates the task from the summary in the first message after a compaction.
pub(crate) const SUMMARY_HEADING: &str = "\n\n[Summary of the work so far]\n";

/// Per-message overhead of chat formatting, in tokens.
const MESSAGE_OVERHEAD: u64 = 4;

/// Tokens the conversation takes in the prompt.
pub(crate) fn count(provider: &dyn Provider, system: &str, history: &[Message]) -> u64 {
    let one = |m: &Message| {
        let calls = match m {
            Message::Assistant { tool_calls, .. } => tool_calls
                .iter()
                .map(|c| provider.count_tokens(&c.name) + provider.count_tokens(&c.arguments))
                .sum(),
            _ => 0,
        };
        provider.count_tokens(m.text()) + calls + MESSAGE_OVERHEAD
    };
    provider.count_tokens(system) + MESSAGE_OVERHEAD + history.iter().map(one).sum::<u64>()
}

/// Where the recent part of `history` that survives compaction begins: the earliest message
/// boundary (not a tool result, which must stay with its call) after the first message whose
/// tail fits in `tail_budget` tokens, or else the last boundary. `None` when there is nothing
/// between the first message and the tail to summarise.
pub(crate) fn split_point(
    provider: &dyn Provider,
    history: &[Message],
    tail_budget: u64,
) -> Option<usize> {
    let boundaries: Vec<usize> =
        (2..history.len()).filter(|&i| !matches!(history[i], Message::Tool { .. })).collect();
    let fits = |&i: &usize| count(provider, "", &history[i..]) <= tail_budget;
    boundaries.iter().copied().find(fits).or(boundaries.last().copied())
}

/// A plain-text rendering of messages for the summariser, at most `max_bytes` long.
pub(crate) fn transcript(messages: &[Message], max_bytes: usize) -> String {
    let mut out = String::new();
    for m in messages {
        let (who, text) = match m {
            Message::System { content } => ("system", content.as_str()),
            Message::User { content } => ("user", content.as_str()),
            Message::Assistant { content, .. } => ("assistant", content.as_str()),
            Message::Tool { name, content, .. } => (name.as_str(), content.as_str()),
        };
        out.push_str(&format!("[{who}]\n{text}\n"));
        if let Message::Assistant { tool_calls, .. } = m {
            for c in tool_calls {
                out.push_str(&format!("[call {}] {}\n", c.name, c.arguments));
            }
        }
    }
    tiller_types::text::clip_middle(&out, max_bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiller_model::{Script, Scripted};

    fn provider() -> Scripted {
        Scripted::new(
            "t".into(),
            Script {
                model: "m".into(),
                context_length: 100,
                pace_ms: 0,
                turns: vec![],
                departures: vec![],
            },
        )
    }

    #[test]
    fn split_point_keeps_tool_results_with_their_call() {
        let p = provider();
        let call =
            tiller_types::ToolCall { id: "1".into(), name: "t".into(), arguments: "{}".into() };
        let history = vec![
            Message::user("task"),
            Message::assistant("a".repeat(400)),
            Message::Assistant { content: String::new(), tool_calls: vec![call] },
            Message::Tool {
                call_id: "1".into(),
                name: "t".into(),
                content: "x".repeat(40),
                is_error: false,
            },
            Message::assistant("recent"),
        ];
        // A tail budget that cannot hold the tool result: the cut still never lands on it.
        assert_eq!(split_point(&p, &history, 5), Some(4));
        assert_eq!(split_point(&p, &history, 40), Some(2));
        assert_eq!(split_point(&p, &history[..2], 40), None);
    }
}
