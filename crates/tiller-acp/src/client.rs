//! The editor as one session's agent sees it, from the agent's own thread: where its updates go,
//! who answers its approval questions ([`Approver`]), and, when the editor offers them, where
//! text files are read and written ([`Buffers`]) and where commands run ([`Terminal`]). Each
//! request waits for the editor's answer on the calling thread; the connection runs on another.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    ClientCapabilities, CreateTerminalRequest, EnvVariable, KillTerminalRequest, PermissionOption,
    PermissionOptionKind, ReadTextFileRequest, ReleaseTerminalRequest, RequestPermissionOutcome,
    RequestPermissionRequest, SessionNotification, SessionUpdate, Terminal as Embedded,
    TerminalOutputRequest, ToolCallContent, ToolCallUpdate, ToolCallUpdateFields,
    WaitForTerminalExitRequest, WriteTextFileRequest,
};
use agent_client_protocol::{Client, JsonRpcRequest};
use tiller_agent::{Approver, Review, Verdict};
use tiller_tools::{Buffers, CommandExit, CommandOutput, Terminal, ToolError};
use tiller_types::{Cancel, ChangeSet, ToolCall};

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

impl Terminal for Editor {
    /// Runs `command` in a terminal of the editor's, shown in the call's update; a cancel kills
    /// it. The terminal is released once its output is read.
    fn run(
        &self,
        call_id: &str,
        command: &Command,
        output_cap: usize,
        cancel: &Cancel,
    ) -> Result<CommandOutput, ToolError> {
        let text = |s: &OsStr| s.to_string_lossy().into_owned();
        let env = command.get_envs().filter_map(|(name, value)| {
            value.map(|value| EnvVariable::new(text(name), text(value)))
        });
        let request = CreateTerminalRequest::new(self.id(), text(command.get_program()))
            .args(command.get_args().map(text).collect())
            .env(env.collect())
            .cwd(command.get_current_dir().map(Path::to_path_buf))
            .output_byte_limit(output_cap as u64);
        let failed = |e: String| ToolError::Other(format!("the editor's terminal failed: {e}"));
        let id = self.ask(request).map_err(failed)?.terminal_id;
        let shown = vec![ToolCallContent::Terminal(Embedded::new(id.clone()))];
        let update =
            ToolCallUpdate::new(call_id.to_string(), ToolCallUpdateFields::new().content(shown));
        self.send(vec![SessionUpdate::ToolCallUpdate(update)]);
        let (done, killed) = (AtomicBool::new(false), AtomicBool::new(false));
        let exit = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if cancel.is_cancelled() {
                        killed.store(true, Ordering::Relaxed);
                        let _ = self.ask(KillTerminalRequest::new(self.id(), id.clone()));
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let exit = self.ask(WaitForTerminalExitRequest::new(self.id(), id.clone()));
            done.store(true, Ordering::Relaxed);
            exit
        });
        let output = self.ask(TerminalOutputRequest::new(self.id(), id.clone()));
        let _ = self.ask(ReleaseTerminalRequest::new(self.id(), id));
        let (status, output) = (exit.map_err(failed)?.exit_status, output.map_err(failed)?);
        let exit = match status.exit_code.and_then(|code| i32::try_from(code).ok()) {
            _ if killed.load(Ordering::Relaxed) => CommandExit::Cancelled,
            // `tiller sandbox` exits with a code even for a command a signal killed.
            code => CommandExit::Code(code.unwrap_or(-1)),
        };
        let mut text = output.output;
        if output.truncated {
            text.insert_str(0, &format!("[… earlier output omitted, {output_cap} bytes kept …]\n"));
        }
        Ok(CommandOutput { exit, output: text, omitted: 0 })
    }
}
