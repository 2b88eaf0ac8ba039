//! Sessions on disk: one append-only JSONL file per session, one record per line, each line
//! written and synced as soon as its message is complete. A line cut short by a killed process
//! is skipped on load, so a session always resumes at its last completed message; tool calls
//! left without a result by a killed process are closed on resume. A line that is not valid
//! UTF-8 or JSON, or a missing meta line, costs only that line: the rest still loads.
//!
//! One process at a time writes a session: the file is locked (`flock`) while it is open, and
//! `ID.lock` beside it names the holder's pid. Ledger rows that could not be written when they
//! happened wait in the session file (`ledger` records) and are marked by `ID.ledger-pending`
//! until a later start writes them into the ledger.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tiller_ledger::Entry;
use tiller_types::time::utc_timestamp;
use tiller_types::{Message, ToolCall};

use crate::AgentError;

/// What a session is about; the first record of its file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Ledger rows that could not be written to the ledger when they happened.
    Ledger {
        entries: Vec<Entry>,
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
    /// Lines that could not be read (a cut-off last line after a crash, a damaged byte).
    pub skipped_lines: usize,
    /// The file has no readable meta line; `meta` holds what its name and time tell.
    pub missing_meta: bool,
    /// Ledger rows kept in the session while the ledger could not be written.
    pub kept_rows: Vec<Entry>,
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
        let mut log = SessionLog::locked(path, file)?;
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
    /// first so that new records start on a line of their own. Refused with
    /// [`AgentError::SessionBusy`] while another process has the session open.
    pub fn reopen(path: &Path) -> Result<Self, AgentError> {
        let file = OpenOptions::new().append(true).open(path).map_err(|e| io_err(path, e))?;
        let mut log = SessionLog::locked(path.to_path_buf(), file)?;
        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
        if bytes.last().is_some_and(|&b| b != b'\n') {
            log.file.write_all(b"\n").map_err(|e| log.err(e))?;
        }
        Ok(log)
    }

    /// Takes the session's lock (released when the file closes, even when the process is
    /// killed) and notes this process's pid beside it for whoever finds the lock taken.
    fn locked(path: PathBuf, file: File) -> Result<Self, AgentError> {
        let pid_file = path.with_extension("lock");
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid =
                    std::fs::read_to_string(&pid_file).ok().and_then(|t| t.trim().parse().ok());
                return Err(AgentError::SessionBusy { path: path.display().to_string(), pid });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path, e)),
        }
        // Only informative: the lock is the flock on the session file itself.
        let _ = std::fs::write(&pid_file, format!("{}\n", std::process::id()));
        Ok(SessionLog { path, file })
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

    /// Keeps ledger rows that could not be written to the ledger, and marks the session as
    /// holding some, for [`take_kept_rows`] at a later start.
    pub fn keep_ledger_rows(&mut self, entries: Vec<Entry>) -> Result<(), AgentError> {
        std::fs::write(pending_marker(&self.path), b"").map_err(|e| self.err(e))?;
        self.write(&Record::Ledger { entries })
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

impl Drop for SessionLog {
    fn drop(&mut self) {
        // Whoever takes the lock next writes its own; a stale file after a kill only names a
        // pid that no longer holds anything.
        let _ = std::fs::remove_file(self.path.with_extension("lock"));
    }
}

fn pending_marker(path: &Path) -> PathBuf {
    path.with_extension("ledger-pending")
}

/// Reads a session file: every line that can be read, the rest counted in `skipped_lines`.
pub fn load_session(path: &Path) -> Result<SessionSummary, AgentError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    Ok(parse_session(path, &bytes))
}

/// The session in `bytes`, the content of the file at `path` (whose name and time stand in for
/// a lost meta line): any bytes give a session, damaged lines counted and skipped.
pub fn parse_session(path: &Path, bytes: &[u8]) -> SessionSummary {
    let mut meta = None;
    let mut messages = Vec::new();
    let mut kept_rows = Vec::new();
    let mut skipped_lines = 0;
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.trim_ascii().is_empty()) {
        match serde_json::from_slice::<Record>(line) {
            Ok(Record::Meta(m)) => meta = Some(m),
            Ok(Record::Message { message }) => messages.push(message),
            Ok(Record::Replace { messages: m }) => messages = m,
            Ok(Record::Ledger { entries }) => kept_rows.extend(entries),
            Err(_) => skipped_lines += 1,
        }
    }
    let missing_meta = meta.is_none();
    let meta = meta.unwrap_or_else(|| {
        let id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let created = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(String::new, |d| utc_timestamp(d.as_secs()));
        SessionMeta { id, created, ..SessionMeta::default() }
    });
    SessionSummary {
        meta,
        path: path.to_path_buf(),
        messages,
        skipped_lines,
        missing_meta,
        kept_rows,
    }
}

/// The sessions in `dir`, least recently active first: by the time their file was last
/// written, then by id. Files that cannot be read at all are left out.
pub fn list_sessions(dir: &Path) -> Vec<SessionSummary> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| (std::fs::metadata(&p).and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH), p))
        .collect();
    paths.sort();
    paths.iter().filter_map(|(_, p)| load_session(p).ok()).collect()
}

/// Takes the ledger rows kept in the sessions of `dir` that no process has open, handing each
/// session's rows to `write`; a session whose rows were written is no longer marked. Returns
/// how many sessions' rows were written.
pub fn take_kept_rows<E>(
    dir: &Path,
    mut write: impl FnMut(&[Entry]) -> Result<(), E>,
) -> Result<usize, E> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut taken = 0;
    let markers = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ledger-pending"));
    for marker in markers {
        let path = marker.with_extension("jsonl");
        // A session still open elsewhere may keep more rows; its own next start takes them.
        let Ok(file) = File::open(&path) else {
            let _ = std::fs::remove_file(&marker);
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        let Ok(session) = load_session(&path) else { continue };
        write(&session.kept_rows)?;
        let _ = std::fs::remove_file(&marker);
        taken += 1;
    }
    Ok(taken)
}

fn io_err(path: &Path, e: std::io::Error) -> AgentError {
    AgentError::Session { path: path.display().to_string(), reason: e.to_string() }
}

/// Adds a result to every tool call that has none among the tool results right after it.
/// Positional, because ids from older sessions may repeat: a later call reusing an earlier id is
/// not answered by the earlier call's result.
pub(crate) fn close_dangling_calls(history: Vec<Message>) -> Vec<Message> {
    let mut out = Vec::with_capacity(history.len());
    let mut open: Vec<ToolCall> = Vec::new();
    let close = |open: &mut Vec<ToolCall>, out: &mut Vec<Message>| {
        out.extend(open.drain(..).map(|c| Message::Tool {
            call_id: c.id,
            name: c.name,
            content: "The session ended before this call finished; its effect is unknown.".into(),
            is_error: true,
        }));
    };
    for message in history {
        match &message {
            Message::Tool { call_id, .. } => {
                if let Some(at) = open.iter().position(|c| &c.id == call_id) {
                    open.remove(at);
                }
            }
            _ => close(&mut open, &mut out),
        }
        if let Message::Assistant { tool_calls, .. } = &message {
            open = tool_calls.clone();
        }
        out.push(message);
    }
    close(&mut open, &mut out);
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
        // A second writer is refused and told who holds the session.
        let busy = SessionLog::reopen(log.path()).err().unwrap();
        assert!(
            matches!(&busy, AgentError::SessionBusy { pid: Some(p), .. } if *p == std::process::id()),
            "{busy}"
        );
        let path = log.path().to_path_buf();
        drop(log);
        // Resuming appends after the cut line, not onto it.
        SessionLog::reopen(&path).unwrap().append(&Message::user("more")).unwrap();
        let s = load_session(&path).unwrap();
        assert_eq!(s.messages.last(), Some(&Message::user("more")));
        assert_eq!(s.skipped_lines, 1);
    }

    #[test]
    fn a_bad_byte_or_a_lost_meta_line_costs_only_that_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SessionLog::create(dir.path(), "/w", "scripted", "m").unwrap();
        log.append(&Message::user("hello")).unwrap();
        let path = log.path().to_path_buf();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(
            b"{\"type\":\"message\",\"message\":{\"role\":\"user\",\"content\":\"\xff\"}}\n",
        );
        bytes.extend_from_slice(
            br#"{"type":"message","message":{"role":"assistant","content":"hi"}}"#,
        );
        bytes.push(b'\n');
        std::fs::write(&path, &bytes).unwrap();
        let s = load_session(&path).unwrap();
        assert_eq!(s.messages, vec![Message::user("hello"), Message::assistant("hi")]);
        assert_eq!((s.skipped_lines, s.missing_meta), (1, false));
        // Without its meta line: still listed, under the id its name gives.
        let meta_end = bytes.iter().position(|&b| b == b'\n').unwrap();
        std::fs::write(&path, &bytes[meta_end + 1..]).unwrap();
        let listed = list_sessions(dir.path());
        assert_eq!(listed.len(), 1);
        assert!(listed[0].missing_meta);
        assert_eq!(listed[0].meta.id, path.file_stem().unwrap().to_string_lossy());
        assert_eq!(listed[0].messages.len(), 2);
    }

    #[test]
    fn sessions_list_by_latest_activity_not_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for _ in 0..2 {
            let log = SessionLog::create(dir.path(), "/w", "scripted", "m").unwrap();
            paths.push(log.path().to_path_buf());
        }
        // Ids made in the same second sort by their random suffix; activity decides instead.
        paths.sort();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let file = OpenOptions::new().append(true).open(&paths[1]).unwrap();
        file.set_modified(old).unwrap();
        let order: Vec<PathBuf> = list_sessions(dir.path()).into_iter().map(|s| s.path).collect();
        assert_eq!(order, [paths[1].clone(), paths[0].clone()]);
    }
}
