//! Tool-call ids unique within a session, across processes. Servers that omit ids get them
//! numbered per reply (`call_1`), and an engine's counter restarts with each process; a repeated
//! id would pair a result with the wrong call (on resume, in the ledger, for undo). So the agent
//! keeps a provider's id only while it is new to the session, and otherwise names the call
//! itself: the session id and a counter that continues from the loaded history.

use std::collections::HashSet;

use tiller_types::Message;

#[derive(Clone, Debug, Default)]
pub(crate) struct CallIds {
    prefix: String,
    next: usize,
    used: HashSet<String>,
}

impl CallIds {
    /// Ids for a session named `prefix` whose conversation so far is `history`.
    pub(crate) fn new(prefix: &str, history: &[Message]) -> CallIds {
        let used: HashSet<String> = history
            .iter()
            .flat_map(|m| match m {
                Message::Assistant { tool_calls, .. } => tool_calls.iter().map(|c| &c.id).collect(),
                Message::Tool { call_id, .. } => vec![call_id],
                _ => Vec::new(),
            })
            .cloned()
            .collect();
        CallIds { prefix: prefix.to_string(), next: used.len() + 1, used }
    }

    /// `id` when the session has not used it yet, or else a new one.
    pub(crate) fn assign(&mut self, id: &str) -> String {
        if !id.is_empty() && self.used.insert(id.to_string()) {
            return id.to_string();
        }
        loop {
            let id = format!("{}-call-{}", self.prefix, self.next);
            self.next += 1;
            if self.used.insert(id.clone()) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiller_types::ToolCall;

    #[test]
    fn repeated_and_missing_ids_get_new_ones_that_continue_the_history() {
        let call = |id: &str| ToolCall { id: id.into(), name: "t".into(), arguments: "{}".into() };
        let history = vec![Message::Assistant {
            content: String::new(),
            tool_calls: vec![call("call_1"), call("s-call-2")],
        }];
        let mut ids = CallIds::new("s", &history);
        assert_eq!(ids.assign("call_1"), "s-call-3");
        assert_eq!(ids.assign(""), "s-call-4");
        assert_eq!(ids.assign("call_2"), "call_2");
        assert_eq!(ids.assign("call_2"), "s-call-5");
    }
}
