//! The agent's events as `session/update` notifications: text as message chunks, tool calls
//! with their kind, locations and status, proposed edits as diffs. A recorded history is replayed
//! through the same translation, so a loaded session looks as it did when it ran.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use agent_client_protocol::v1::schema::{
    Content, ContentBlock, ContentChunk, Diff, SessionUpdate, ToolCall as AcpToolCall,
    ToolCallContent, ToolCallLocation, ToolCallStatus, ToolCallUpdate, ToolCallUpdateFields,
    ToolKind,
};
use tiller_types::{AgentEvent, ChangeKind, ChangeSet, Message, ToolCall};

/// Turns the events of one session into updates.
pub(crate) struct Updates {
    root: PathBuf,
    /// Whether this model turn streamed text; an answer that was not streamed (given through the
    /// answer tool) is sent whole.
    streamed: bool,
    /// The diffs shown for each call, kept when its result is added.
    diffs: HashMap<String, Vec<ToolCallContent>>,
    /// Calls shown without a result yet.
    open: Vec<String>,
}

impl Updates {
    pub(crate) fn new(root: &Path) -> Self {
        Updates {
            root: root.to_path_buf(),
            streamed: false,
            diffs: HashMap::new(),
            open: Vec::new(),
        }
    }

    /// The updates `event` makes; most events make none or one.
    pub(crate) fn translate(&mut self, event: &AgentEvent) -> Vec<SessionUpdate> {
        let update = match event {
            AgentEvent::TurnStarted { .. } => {
                self.streamed = false;
                return Vec::new();
            }
            AgentEvent::TextDelta { text } => {
                self.streamed = true;
                agent_text(text)
            }
            AgentEvent::Answer { text } => {
                // A call still open is the answer tool's (small models answer through it).
                let done = ToolCallUpdateFields::new().status(ToolCallStatus::Completed);
                let mut out: Vec<_> =
                    self.open.drain(..).map(|id| update(&id, done.clone())).collect();
                if !self.streamed && !text.is_empty() {
                    out.push(agent_text(text));
                }
                return out;
            }
            AgentEvent::Warning { message } => agent_text(&format!("\n\nwarning: {message}\n")),
            AgentEvent::ToolCall { call } => {
                self.open.push(call.id.clone());
                SessionUpdate::ToolCall(self.tool_call(call))
            }
            AgentEvent::ChangeProposed { call_id, changes } => {
                let diffs = self.diffs(changes);
                self.diffs.insert(call_id.clone(), diffs.clone());
                update(call_id, ToolCallUpdateFields::new().content(diffs))
            }
            AgentEvent::ToolResult { call_id, output, is_error, .. } => {
                self.open.retain(|id| id != call_id);
                let mut content = self.diffs.remove(call_id).unwrap_or_default();
                content.push(ToolCallContent::Content(Content::new(output.clone())));
                let status =
                    if *is_error { ToolCallStatus::Failed } else { ToolCallStatus::Completed };
                update(call_id, ToolCallUpdateFields::new().status(status).content(content))
            }
            _ => return Vec::new(),
        };
        vec![update]
    }

    /// The updates that show a recorded conversation: the user's messages, the agent's text,
    /// its tool calls and their results.
    pub(crate) fn replay(&mut self, history: &[Message]) -> Vec<SessionUpdate> {
        let mut out = Vec::new();
        for message in history {
            let events = match message {
                Message::User { content } => {
                    let chunk = ContentChunk::new(ContentBlock::from(content.clone()));
                    out.push(SessionUpdate::UserMessageChunk(chunk));
                    continue;
                }
                Message::Assistant { content, tool_calls } => {
                    let text = (!content.is_empty())
                        .then(|| AgentEvent::TextDelta { text: content.clone() });
                    let calls = tool_calls.iter().map(|c| AgentEvent::ToolCall { call: c.clone() });
                    text.into_iter().chain(calls).collect()
                }
                Message::Tool { call_id, name, content, is_error } => {
                    vec![AgentEvent::ToolResult {
                        call_id: call_id.clone(),
                        name: name.clone(),
                        output: content.clone(),
                        is_error: *is_error,
                    }]
                }
                Message::System { .. } => Vec::new(),
            };
            out.extend(events.iter().flat_map(|e| self.translate(e)));
        }
        out
    }

    fn tool_call(&self, call: &ToolCall) -> AcpToolCall {
        let args: serde_json::Value =
            serde_json::from_str(&call.arguments).unwrap_or(serde_json::Value::Null);
        let text = |key: &str| args.get(key).and_then(|v| v.as_str());
        let title = match (text("command"), text("path")) {
            (Some(command), _) => command.to_string(),
            (None, Some(path)) => format!("{} {path}", call.name),
            (None, None) => call.name.clone(),
        };
        let locations = text("path").map(|p| vec![ToolCallLocation::new(self.root.join(p))]);
        AcpToolCall::new(call.id.clone(), title)
            .kind(kind(&call.name))
            .status(ToolCallStatus::InProgress)
            .locations(locations.unwrap_or_default())
            .raw_input(args)
    }

    /// One diff per file of `changes`, with absolute paths.
    pub(crate) fn diffs(&self, changes: &ChangeSet) -> Vec<ToolCallContent> {
        let all = changes.accept_all();
        changes.files.iter().zip(&all.0).map(|(file, accepted)| self.diff(file, accepted)).collect()
    }

    /// The diff `file` makes with only the `accepted` items applied.
    pub(crate) fn diff(
        &self,
        file: &tiller_types::FileChange,
        accepted: &[bool],
    ) -> ToolCallContent {
        let path = match &file.kind {
            ChangeKind::Move { to } => to,
            _ => &file.path,
        };
        let new = file.content_with(accepted).unwrap_or_default();
        ToolCallContent::Diff(Diff::new(self.root.join(path), new).old_text(file.old.clone()))
    }
}

fn agent_text(text: &str) -> SessionUpdate {
    SessionUpdate::AgentMessageChunk(ContentChunk::new(ContentBlock::from(text.to_string())))
}

fn update(call_id: &str, fields: ToolCallUpdateFields) -> SessionUpdate {
    SessionUpdate::ToolCallUpdate(ToolCallUpdate::new(call_id.to_string(), fields))
}

/// The kind of tiller's tools, for the editor's icons; others (an MCP server's) are `other`.
pub(crate) fn kind(tool: &str) -> ToolKind {
    match tool {
        "read_file" | "list_dir" => ToolKind::Read,
        "search" => ToolKind::Search,
        "apply_patch" | "replace" | "write_file" => ToolKind::Edit,
        "shell" => ToolKind::Execute,
        _ => ToolKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: "c1".into(), name: name.into(), arguments: arguments.into() }
    }

    #[test]
    fn an_answer_already_streamed_is_not_sent_twice() {
        let mut u = Updates::new(Path::new("/w"));
        u.translate(&AgentEvent::TurnStarted { step: 1 });
        assert_eq!(u.translate(&AgentEvent::TextDelta { text: "hi".into() }).len(), 1);
        assert!(u.translate(&AgentEvent::Answer { text: "hi".into() }).is_empty());
        u.translate(&AgentEvent::TurnStarted { step: 2 });
        u.translate(&AgentEvent::ToolCall { call: call("answer", r#"{"text":"done"}"#) });
        let answer = u.translate(&AgentEvent::Answer { text: "done".into() });
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(json[0]["status"], "completed", "the answer tool's call is closed: {json}");
        assert_eq!(json[1]["content"]["text"], "done");
    }

    #[test]
    fn replay_shows_the_user_the_text_and_each_call_with_its_result() {
        let history = vec![
            Message::user("fix it"),
            Message::Assistant {
                content: "Reading.".into(),
                tool_calls: vec![call("read_file", r#"{"path":"a.py"}"#)],
            },
            Message::Tool {
                call_id: "c1".into(),
                name: "read_file".into(),
                content: "1\tx".into(),
                is_error: false,
            },
        ];
        let updates = Updates::new(Path::new("/w")).replay(&history);
        let json = serde_json::to_value(&updates).unwrap();
        assert_eq!(json[0]["sessionUpdate"], "user_message_chunk");
        assert_eq!(json[1]["content"]["text"], "Reading.");
        assert_eq!(json[2]["sessionUpdate"], "tool_call");
        assert_eq!(json[2]["title"], "read_file a.py");
        assert_eq!(json[2]["kind"], "read");
        assert_eq!(json[2]["locations"][0]["path"], "/w/a.py");
        assert_eq!(json[3]["status"], "completed");
        assert_eq!(updates.len(), 4);
    }
}
