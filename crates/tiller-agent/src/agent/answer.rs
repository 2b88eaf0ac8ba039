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
                // Held to a sentence: a small model otherwise writes call markup, a heading
                // or a bare file name into it. The first word holds no space, so that the
                // grammar reads each text one way (ambiguity would multiply its stacks).
                "maxLength": ANSWER_CHARS, "pattern": r"^[A-Z][^<>{} ]* [^<>{}]*\.$"
            } },
            "required": ["text"]
        }),
    }
}
