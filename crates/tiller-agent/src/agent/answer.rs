//! The `answer` tool: how a model that must call a tool every turn gives its final answer.

use tiller_types::ToolSpec;

pub(super) const ANSWER_TOOL: &str = "answer";

/// Characters the `answer` tool's text may hold.
const ANSWER_CHARS: u32 = 600;

pub(super) fn answer_spec() -> ToolSpec {
    ToolSpec {
        name: ANSWER_TOOL.into(),
        description: "Finish: give the user your final answer. Call it when the task is done or cannot be done.".into(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": { "text": {
                "type": "string", "description": "The answer.",
                // Held to prose: a small model otherwise writes call markup into it.
                "maxLength": ANSWER_CHARS, "pattern": "^[^<>{}]*$"
            } },
            "required": ["text"]
        }),
    }
}
