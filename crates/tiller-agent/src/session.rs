//! Sessions on disk: one append-only JSONL file per session, one record per line, each line
//! written and synced as soon as its message is complete. A line cut short by a killed process
//! is skipped on load, so a session always resumes at its last completed message; tool calls
//! left without a result by a killed process are closed on resume.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tiller_types::time::utc_timestamp;
use tiller_types::{Message, ToolCall};

use crate::AgentError;

/// What a session is about; the first record of its file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub id: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub created: String,
    pub workspace: String,
    pub provider: String,
    pub model: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Record {
    Meta(SessionMeta),
    Message {
        message: Message,
    },
    /// The history was compacted: these messages replace everything before.
    Replace {
        messages: Vec<Message>,
    },
}

/// An open session file that records are appended to.
pub struct SessionLog {
    path: PathBuf,
    file: File,
}

/// A session as read back: its meta and its conversation (without the system prompt).
#[derive(Clone, Debug)]
pub struct SessionSummary {
    pub meta: SessionMeta,
    pub path: PathBuf,
    pub messages: Vec<Message>,
    /// Lines that could not be read (a cut-off last line after a crash).
    pub skipped_lines: usize,
}

impl SessionLog {
    /// Starts a new session file in `dir`.
    pub fn create(
        dir: &Path,
        workspace: &str,
        provider: &str,
        model: &str,
    ) -> Result<Self, AgentError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let created = utc_timestamp(now.as_secs());
        let id = format!(
            "{}-{:04x}",
            created.replace(['-', ':'], "").trim_end_matches('Z').replace('T', "-"),
            (now.subsec_nanos() ^ std::process::id()) & 0xffff
        );
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let path = dir.join(format!("{id}.jsonl"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        let mut log = SessionLog { path, file };
        let meta = SessionMeta {
            id,
            created,
            workspace: workspace.into(),
            provider: provider.into(),
            model: model.into(),
        };
        log.write(&Record::Meta(meta))?;
        Ok(log)
    }

    /// Reopens an existing session file to append to it, ending a line cut short by a crash
    /// first so that new records start on a line of their own.
    pub fn reopen(path: &Path) -> Result<Self, AgentError> {
        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
        let mut file = OpenOptions::new().append(true).open(path).map_err(|e| io_err(path, e))?;
        if bytes.last().is_some_and(|&b| b != b'\n') {
            file.write_all(b"\n").map_err(|e| io_err(path, e))?;
        }
        Ok(SessionLog { path: path.to_path_buf(), file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The session id (the file name without extension).
    pub fn id(&self) -> String {
        self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    }

    pub fn append(&mut self, message: &Message) -> Result<(), AgentError> {
        self.write(&Record::Message { message: message.clone() })
    }

    /// Records that the history was replaced (by compaction).
    pub fn replace(&mut self, messages: &[Message]) -> Result<(), AgentError> {
        self.write(&Record::Replace { messages: messages.to_vec() })
    }

    fn write(&mut self, record: &Record) -> Result<(), AgentError> {
        let mut line = serde_json::to_string(record).map_err(|e| self.err(e))?;
        line.push('\n');
        // One write call per line, then sync: a crash leaves at most one partial last line.
        self.file.write_all(line.as_bytes()).map_err(|e| self.err(e))?;
        self.file.sync_data().map_err(|e| self.err(e))
    }

    fn err(&self, e: impl std::fmt::Display) -> AgentError {
        AgentError::Session { path: self.path.display().to_string(), reason: e.to_string() }
    }
}

/// Reads a session file.
pub fn load_session(path: &Path) -> Result<SessionSummary, AgentError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let mut meta = None;
    let mut messages = Vec::new();
    let mut skipped_lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Record>(line) {
            Ok(Record::Meta(m)) => meta = Some(m),
            Ok(Record::Message { message }) => messages.push(message),
            Ok(Record::Replace { messages: m }) => messages = m,
            Err(_) => skipped_lines += 1,
        }
    }
    let meta = meta.ok_or_else(|| AgentError::Session {
        path: path.display().to_string(),
        reason: "not a session file (no meta record)".into(),
    })?;
    Ok(SessionSummary { meta, path: path.to_path_buf(), messages, skipped_lines })
}

/// The sessions in `dir`, oldest first (ids sort by creation time).
pub fn list_sessions(dir: &Path) -> Vec<SessionSummary> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| load_session(p).ok()).collect()
}

fn io_err(path: &Path, e: std::io::Error) -> AgentError {
    AgentError::Session { path: path.display().to_string(), reason: e.to_string() }
}

/// Adds a result to every tool call that has none.
pub(crate) fn close_dangling_calls(history: Vec<Message>) -> Vec<Message> {
    let answered: std::collections::HashSet<String> = history
        .iter()
        .filter_map(|m| match m {
            Message::Tool { call_id, .. } => Some(call_id.clone()),
            _ => None,
        })
        .collect();
    let mut out = Vec::with_capacity(history.len());
    for message in history {
        let missing: Vec<ToolCall> = match &message {
            Message::Assistant { tool_calls, .. } => {
                tool_calls.iter().filter(|c| !answered.contains(&c.id)).cloned().collect()
            }
            _ => Vec::new(),
        };
        out.push(message);
        out.extend(missing.into_iter().map(|c| Message::Tool {
            call_id: c.id,
            name: c.name,
            content: "The session ended before this call finished; its effect is unknown.".into(),
            is_error: true,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_survives_a_cut_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SessionLog::create(dir.path(), "/w", "scripted", "m").unwrap();
        log.append(&Message::user("hello")).unwrap();
        log.append(&Message::assistant("hi")).unwrap();
        log.replace(&[Message::user("summary")]).unwrap();
        log.append(&Message::assistant("after")).unwrap();
        // A process killed mid-write leaves a partial line.
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(br#"{"type":"message","message":{"role":"us"#).unwrap();
        let s = load_session(log.path()).unwrap();
        assert_eq!(s.meta.workspace, "/w");
        assert_eq!(s.messages, vec![Message::user("summary"), Message::assistant("after")]);
        assert_eq!(s.skipped_lines, 1);
        assert_eq!(list_sessions(dir.path()).len(), 1);
        assert_eq!(s.meta.id, log.id());
        // Resuming appends after the cut line, not onto it.
        SessionLog::reopen(log.path()).unwrap().append(&Message::user("more")).unwrap();
        let s = load_session(log.path()).unwrap();
        assert_eq!(s.messages.last(), Some(&Message::user("more")));
        assert_eq!(s.skipped_lines, 1);
    }
}
