//! The editor as one session's agent sees it, from the agent's own thread: where its updates go,
//! who answers its approval questions ([`Approver`]), and, when the editor offers them, where
//! text files are read and written ([`Buffers`]). Each request waits for the editor's answer on
//! the calling thread; the connection runs on another.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    ClientCapabilities, PermissionOption, PermissionOptionKind, ReadTextFileRequest,
    RequestPermissionOutcome, RequestPermissionRequest, SessionNotification, SessionUpdate,
    ToolCallContent, ToolCallUpdate, ToolCallUpdateFields, WriteTextFileRequest,
};
use agent_client_protocol::{Client, JsonRpcRequest};
use tiller_agent::{Approver, Review, Verdict};
use tiller_tools::Buffers;
use tiller_types::{ChangeSet, ToolCall};

use crate::updates::{Updates, kind};

/// The `_meta` key of the client capabilities by which an editor asks to review an edit hunk by
/// hunk: one permission request for each hunk instead of one for the whole edit.
pub(crate) const HUNK_REVIEW: &str = "tiller/hunkReview";

/// The id of the permission option that allows.
const ALLOW: &str = "allow";

/// One session's line to the editor.
#[derive(Clone)]
pub(crate) struct Editor {
    cx: ConnectionTo<Client>,
    /// Set once the session has its id (a new session's comes with its log).
    session: Arc<OnceLock<String>>,
    root: Arc<Path>,
    /// Review hunk by hunk.
    hunks: bool,
}

impl Editor {
    pub(crate) fn new(cx: ConnectionTo<Client>, root: &Path, caps: &ClientCapabilities) -> Self {
        let hunks = caps.meta.as_ref().and_then(|m| m.get(HUNK_REVIEW)).is_some_and(|v| v == true);
        Editor { cx, session: Arc::default(), root: root.into(), hunks }
    }

    /// Names the session this line serves; the first name given stays.
    pub(crate) fn name(&self, id: &str) {
        let _ = self.session.set(id.to_string());
    }

    fn id(&self) -> String {
        self.session.get().cloned().unwrap_or_default()
    }

    /// Sends `updates` to the editor. A connection that has closed drops them: the session
    /// log keeps the conversation either way.
    pub(crate) fn send(&self, updates: Vec<SessionUpdate>) {
        for update in updates {
            let _ = self.cx.send_notification(SessionNotification::new(self.id(), update));
        }
    }

    /// Sends `request` and waits for the answer.
    fn ask<R: JsonRpcRequest>(&self, request: R) -> Result<R::Response, String> {
        futures::executor::block_on(self.cx.send_request(request).block_task())
            .map_err(|e| e.to_string())
    }

    /// Asks the editor whether to go ahead with `call`, showing it `title` and `content`:
    /// `None` when it gave no answer (the prompt was cancelled, or the editor is gone).
    fn permit(
        &self,
        call: &ToolCall,
        title: String,
        content: Vec<ToolCallContent>,
    ) -> Option<bool> {
        let fields = ToolCallUpdateFields::new()
            .title(title)
            .kind(kind(&call.name))
            .content((!content.is_empty()).then_some(content));
        let options = vec![
            PermissionOption::new(ALLOW, "Allow", PermissionOptionKind::AllowOnce),
            PermissionOption::new("reject", "Reject", PermissionOptionKind::RejectOnce),
        ];
        let tool_call = ToolCallUpdate::new(call.id.clone(), fields);
        let answer = self.ask(RequestPermissionRequest::new(self.id(), tool_call, options));
        match answer.ok()?.outcome {
            RequestPermissionOutcome::Selected(s) => Some(s.option_id.to_string() == ALLOW),
            _ => None,
        }
    }
}

impl Approver for Editor {
    fn approve_command(&mut self, call: &ToolCall, command: &str) -> Verdict {
        match self.permit(call, format!("Run `{command}`"), Vec::new()) {
            Some(true) => Verdict::Approve,
            _ => Verdict::Deny { feedback: None },
        }
    }

    /// The whole edit in one question; hunk by hunk where the editor asked for that, each
    /// question showing the file with only that hunk applied. No answer rejects what is left.
    fn review_changes(&mut self, call: &ToolCall, changes: &ChangeSet) -> Review {
        let updates = Updates::new(&self.root);
        let mut selection = changes.reject_all();
        if self.hunks {
            'files: for (file, accepted) in changes.files.iter().zip(&mut selection.0) {
                let items = accepted.len();
                for (n, flag) in accepted.iter_mut().enumerate() {
                    let only: Vec<bool> = (0..items).map(|i| i == n).collect();
                    let title = format!("Edit {} (hunk {} of {items})", file.path, n + 1);
                    match self.permit(call, title, vec![updates.diff(file, &only)]) {
                        Some(yes) => *flag = yes,
                        None => break 'files,
                    }
                }
            }
        } else {
            let paths: Vec<&str> = changes.files.iter().map(|f| f.path.as_str()).collect();
            let title = format!("Edit {}", paths.join(", "));
            if self.permit(call, title, updates.diffs(changes)) == Some(true) {
                selection = changes.accept_all();
            }
        }
        Review { selection, feedback: None, edited: None }
    }
}

impl Buffers for Editor {
    fn read(&self, abs: &Path) -> std::io::Result<String> {
        self.ask(ReadTextFileRequest::new(self.id(), abs))
            .map(|r| r.content)
            .map_err(std::io::Error::other)
    }

    fn write(&self, abs: &Path, text: &str) -> std::io::Result<()> {
        self.ask(WriteTextFileRequest::new(self.id(), abs, text))
            .map(drop)
            .map_err(std::io::Error::other)
    }
}
