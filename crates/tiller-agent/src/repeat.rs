//! Calls that already failed are not run again, nor reads and commands whose result is already
//! in the conversation. Small models repeat a refused call over and over (the same missing file,
//! the same patch that does not apply) or read the same file, or run the same failing tests,
//! again and again until their steps run out; the agent tells the model that it made the call
//! before and what it can do instead, and after [`MAX_REPEATS`] such repeats it stops the run.

use std::collections::{HashMap, HashSet};

use tiller_types::ToolCall;

/// Repeats of failed calls after which the run stops.
pub const MAX_REPEATS: u32 = 3;

/// The calls that failed, and the reads made, since the workspace last changed; with what
/// became of each. And the candidate changes the tests failed with (by their
/// [`fingerprint`](crate::candidates::fingerprint)), not to be checked again.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    made: HashMap<(String, String), String>,
    repeats: u32,
    pub changes: HashSet<u64>,
}

impl Failures {
    /// For a call made before: the observation to give instead of running it again.
    pub fn repeated(&mut self, call: &ToolCall) -> Option<String> {
        let before = self.made.get(&key(call))?;
        self.repeats += 1;
        Some(format!(
            "Not run: you made this same call before and {before}\nDo something different: \
             call another tool or give other arguments (a path from the workspace's file list, \
             text that is in the file), or answer if the task cannot be done."
        ))
    }

    /// Remembers that `call` failed with `error`.
    pub fn record(&mut self, call: &ToolCall, error: &str) {
        let what = format!("it failed with: {error}\nIt would fail the same way again.");
        self.made.insert(key(call), what);
    }

    /// Remembers that `call`, which reads or runs a command that changed nothing, succeeded: its
    /// result is in the conversation.
    pub fn record_read(&mut self, call: &ToolCall) {
        let what = "its result is above; nothing has changed since.".to_string();
        self.made.insert(key(call), what);
    }

    /// The workspace changed: calls made before may give something else now.
    pub fn clear(&mut self) {
        self.made.clear();
        self.changes.clear();
    }

    /// Whether the model has repeated failed calls often enough to stop.
    pub fn stuck(&self) -> bool {
        self.repeats >= MAX_REPEATS
    }
}

/// A call by tool and arguments, the arguments compared as JSON where they parse (so spacing
/// and key order do not matter).
fn key(call: &ToolCall) -> (String, String) {
    let args = serde_json::from_str::<serde_json::Value>(&call.arguments)
        .map_or_else(|_| call.arguments.clone(), |v| v.to_string());
    (call.name.clone(), args)
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
}
