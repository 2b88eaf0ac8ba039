//! Calls that already failed are not run again, nor reads and commands whose result is already
//! in the conversation, nor a change made again after it was undone. Small models repeat a
//! refused call over and over (the same missing file, the same patch that does not apply), read
//! the same file, run the same failing tests, or make a change and undo it by turns, until
//! their steps run out; the agent tells the model that it made the call before and what it can
//! do instead, and after [`MAX_REPEATS`] such repeats it stops the run. (With candidates on and
//! the tests failing, a repeat brings a round of candidates instead, `agent/edit_step.rs`.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use tiller_ledger::FileHashes;
use tiller_types::ToolCall;

/// Repeats of failed calls after which the run stops.
pub const MAX_REPEATS: u32 = 3;

/// The calls that failed, the reads made and the changes made, each by the state of the files
/// it was made in, with what became of it: a model that undoes a change brings back the state,
/// and with it what it did there. And the candidate changes the tests failed with (by their
/// [`fingerprint`](crate::candidates::fingerprint)) since the workspace last changed, not to be
/// checked again.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    made: HashMap<(u64, String, String), String>,
    repeats: u32,
    pub changes: HashSet<u64>,
    /// The content hash of each file the session changed, from before its first change.
    first: HashMap<String, Option<String>>,
    /// The content hash of each of those files that differs from it now: the state.
    now: BTreeMap<String, Option<String>>,
}

impl Failures {
    /// For a call made before in the files' present state: the observation to give instead of
    /// running it again.
    pub fn repeated(&mut self, call: &ToolCall) -> Option<String> {
        let before = self.made.get(&self.key(call))?;
        self.repeats += 1;
        Some(format!(
            "Not run: you made this same call before and {before}\nDo something different: \
             call another tool or give other arguments (a path from the workspace's file list, \
             text that is in the file), or answer if the task cannot be done."
        ))
    }

    /// Whether `call` was made before in the files' present state (a repeat, not yet counted).
    pub fn made(&self, call: &ToolCall) -> bool {
        self.made.contains_key(&self.key(call))
    }

    /// Remembers that `call` failed with `error`.
    pub fn record(&mut self, call: &ToolCall, error: &str) {
        let what = format!("it failed with: {error}\nIt would fail the same way again.");
        self.made.insert(self.key(call), what);
    }

    /// Remembers that `call`, which reads or runs a command that changed nothing, succeeded: its
    /// result is in the conversation.
    pub fn record_read(&mut self, call: &ToolCall) {
        let what = "its result is above, with the files as they are now.".to_string();
        self.made.insert(self.key(call), what);
    }

    /// Remembers that `call` changed `files`, and takes the state they are in now.
    pub fn record_change(&mut self, call: &ToolCall, files: &[FileHashes]) {
        let what = "it changed the files from how they are now, and they came back to this \
                    since: making it again goes round in a circle."
            .to_string();
        self.made.insert(self.key(call), what);
        for file in files {
            let first = self.first.entry(file.path.clone()).or_insert(file.before_sha256.clone());
            if *first == file.after_sha256 {
                self.now.remove(&file.path);
            } else {
                self.now.insert(file.path.clone(), file.after_sha256.clone());
            }
        }
        self.changes.clear();
    }

    /// Forgets every call made: what they gave may be summarised away.
    pub fn clear(&mut self) {
        self.made.clear();
        self.changes.clear();
    }

    /// Whether the model has repeated failed calls often enough to stop.
    pub fn stuck(&self) -> bool {
        self.repeats >= MAX_REPEATS
    }

    /// A call by the files' state, tool and arguments, the arguments compared as JSON where
    /// they parse (so spacing and key order do not matter).
    fn key(&self, call: &ToolCall) -> (u64, String, String) {
        let mut state = DefaultHasher::new();
        self.now.hash(&mut state);
        let args = serde_json::from_str::<serde_json::Value>(&call.arguments)
            .map_or_else(|_| call.arguments.clone(), |v| v.to_string());
        (state.finish(), call.name.clone(), args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(arguments: &str) -> ToolCall {
        ToolCall { id: "c".into(), name: "read_file".into(), arguments: arguments.into() }
    }

    #[test]
    fn a_failed_call_is_refused_when_repeated_until_the_workspace_changes() {
        let mut f = Failures::default();
        assert_eq!(f.repeated(&call(r#"{"path": "/tmp/a"}"#)), None);
        f.record(&call(r#"{"path": "/tmp/a"}"#), "/tmp/a: is outside the workspace");
        let again = f.repeated(&call(r#"{ "path":"/tmp/a" }"#)).unwrap();
        assert!(again.contains("failed with: /tmp/a: is outside the workspace"), "{again}");
        assert_eq!(f.repeated(&call(r#"{"path": "b"}"#)), None);
        assert!(!f.stuck());
        f.repeated(&call(r#"{"path": "/tmp/a"}"#));
        f.repeated(&call(r#"{"path": "/tmp/a"}"#));
        assert!(f.stuck());
        f.clear();
        assert_eq!(f.repeated(&call(r#"{"path": "/tmp/a"}"#)), None);
        f.record_read(&call(r#"{"path": "a"}"#));
        let again = f.repeated(&call(r#"{"path": "a"}"#)).unwrap();
        assert!(again.contains("its result is above"), "{again}");
    }

    #[test]
    fn what_was_made_in_a_state_of_the_files_counts_again_when_they_come_back_to_it() {
        let change = |path: &str, before: &str, after: &str| {
            let hash = |h: &str| (!h.is_empty()).then(|| h.to_string());
            let path = path.into();
            [FileHashes { path, before_sha256: hash(before), after_sha256: hash(after) }]
        };
        let (edit, undo, new) = (call(r#"{"edit": 1}"#), call(r#"{"undo": 1}"#), call("{}"));
        let mut f = Failures::default();
        f.record_read(&call(r#"{"path": "a.py"}"#));
        f.record_change(&edit, &change("a.py", "h0", "h1"));
        assert_eq!(f.repeated(&call(r#"{"path": "a.py"}"#)), None, "the file changed");
        assert_eq!(f.repeated(&edit), None);
        f.record_change(&undo, &change("a.py", "h1", "h0"));
        assert!(f.repeated(&call(r#"{"path": "a.py"}"#)).is_some(), "back as it was");
        let again = f.repeated(&edit).unwrap();
        assert!(again.contains("round in a circle"), "{again}");
        // A file made and removed again is back as it was too.
        f.record_change(&new, &change("b.py", "", "x"));
        assert_eq!(f.repeated(&edit), None);
        f.record_change(&undo, &change("b.py", "x", ""));
        assert!(f.repeated(&edit).is_some());
    }
}
