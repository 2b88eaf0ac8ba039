//! How the agent works: the settings of a run.

use tiller_types::ApprovalPolicy;

/// How the agent works.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Model turns per task before giving up.
    pub max_steps: u32,
    pub approval: ApprovalPolicy,
    /// Output tokens per model call; by default the provider's (`default_max_tokens`). A reply
    /// cut at the limit is never taken as finished.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// Upper bound on one observation; smaller models get less (an eighth of their context).
    pub max_observation_bytes: usize,
    /// Offer an `answer` tool and require a tool call every turn; the task ends when the model
    /// calls `answer`, and on the last step it is the only tool offered. For small models, which
    /// rarely call tools unless made to.
    pub answer_tool: bool,
    /// The model runs off this machine: secrets are redacted from everything it is sent, and the
    /// ledger records which file lines each request carried.
    pub remote: bool,
    /// Most changed lines (added plus removed) one edit may have; larger ones are refused, and
    /// the model is told so up front.
    pub step_budget: Option<usize>,
    /// The provider samples tool calls under a grammar made from the tools' schemas (the
    /// embedded engine): path arguments then list the workspace's paths, and `replace`'s text
    /// the lines of the files read, so that a call cannot name what does not exist. Off for
    /// remote models, which would be sent the lists.
    pub constrained: bool,
    /// Before the first turn, give the model the workspace's files, the project's test command
    /// and, for a task about a failing test or a bug, what the tests say now (run once by the
    /// [`Checker`](crate::Checker), unless the approval policy asks before commands).
    pub brief: bool,
    /// Candidate edits sampled at an edit step while the project's tests fail, each checked by
    /// the tests in a scratch copy (by the [`Checker`](crate::Checker)); the passing one with
    /// the smallest change is offered for review. 1: the model's one edit, unchecked.
    pub candidates: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            max_steps: 30,
            approval: ApprovalPolicy::default(),
            max_tokens: None,
            temperature: None,
            max_observation_bytes: 32 * 1024,
            answer_tool: false,
            remote: false,
            step_budget: None,
            constrained: false,
            brief: false,
            candidates: 1,
        }
    }
}
