//! Approval: which actions need a person's consent under each policy, and the trait a front end
//! implements to give it.

use tiller_tools::ToolKind;
use tiller_types::{ApprovalPolicy, ChangeSet, Selection, ToolCall};

/// A person's answer about a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    /// Approve, and every later call of this tool in the session without asking: for a tool
    /// an MCP server serves (for tiller's own, the same as [`Verdict::Approve`]).
    ApproveTool,
    Deny {
        feedback: Option<String>,
    },
}

/// A person's review of a change set: which hunks to apply, and anything to tell the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    pub selection: Selection,
    pub feedback: Option<String>,
    /// The change set with the reviewer's own edits to its hunks, when they made any; the
    /// selection applies to it.
    pub edited: Option<ChangeSet>,
}

impl Review {
    /// Everything in `changes` accepted as proposed.
    pub fn accept_all(changes: &ChangeSet) -> Review {
        Review { selection: changes.accept_all(), feedback: None, edited: None }
    }
}

/// Answers approval requests. Front ends implement it: the interactive one reviews hunk by hunk,
/// headless `exec` asks on the terminal or refuses.
pub trait Approver {
    /// May `call` run the shell command `command`?
    fn approve_command(&mut self, call: &ToolCall, command: &str) -> Verdict;
    /// Which parts of `changes`, proposed by `call`, may be written?
    fn review_changes(&mut self, call: &ToolCall, changes: &ChangeSet) -> Review;
}

/// Approves everything: for `--approval never` and tests.
pub struct AcceptAll;

impl Approver for AcceptAll {
    fn approve_command(&mut self, _: &ToolCall, _: &str) -> Verdict {
        Verdict::Approve
    }

    fn review_changes(&mut self, _: &ToolCall, changes: &ChangeSet) -> Review {
        Review::accept_all(changes)
    }
}

/// Whether a tool call of `kind` must be put to the approver under `policy`. `command` is the
/// shell command for `Exec` tools.
pub fn needs_approval(policy: ApprovalPolicy, kind: ToolKind, command: Option<&str>) -> bool {
    match (policy, kind) {
        (_, ToolKind::Read) | (ApprovalPolicy::Never, _) => false,
        (_, ToolKind::Edit) => true,
        (ApprovalPolicy::OnRequest, ToolKind::Exec) => false,
        (ApprovalPolicy::Untrusted, ToolKind::Exec) => {
            !command.is_some_and(tiller_tools::is_known_safe)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_ask_for_what_they_promise() {
        use ApprovalPolicy::*;
        assert!(!needs_approval(Never, ToolKind::Edit, None));
        assert!(!needs_approval(Never, ToolKind::Exec, Some("rm -rf x")));
        assert!(needs_approval(OnRequest, ToolKind::Edit, None));
        assert!(!needs_approval(OnRequest, ToolKind::Exec, Some("cargo test")));
        assert!(needs_approval(Untrusted, ToolKind::Exec, Some("cargo test")));
        assert!(!needs_approval(Untrusted, ToolKind::Exec, Some("ls")));
        assert!(!needs_approval(Untrusted, ToolKind::Read, None));
    }
}
