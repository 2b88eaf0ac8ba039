//! Continuing a session with another model (`/model` in the front end).

use tiller_model::Provider;
use tiller_tools::{TreeWatch, Workspace};

use super::{Agent, AgentConfig};
use crate::ground;
use crate::redact::Redactor;
use crate::system_prompt;

/// Another model to continue a session with (`/model`), and what follows from where it runs.
pub struct ModelSwitch {
    pub provider: Box<dyn Provider>,
    /// The workspace as this model may see it: for a remote model, without the denied files.
    pub ws: Workspace,
    /// The settings for this model: `remote`, `constrained`, `answer_tool`, `brief`, …
    pub config: AgentConfig,
}

impl Agent {
    /// Continues with another model. What depends on where it runs follows: secrets are
    /// redacted from all that a remote model is sent (the conversation so far included, before
    /// its first request), the ledger records what each request carried, denied files are
    /// withheld, tool calls are constrained on the embedded engine only, and the context budget
    /// is the new model's.
    pub fn switch_model(&mut self, to: ModelSwitch) {
        self.system = system_for(to.provider.as_ref(), &to.ws, &to.config);
        self.redactor = to.config.remote.then(Redactor::new);
        self.prepared = false;
        // Denied files differ between local and remote models: the next command walks afresh.
        self.tree = TreeWatch::default();
        self.provider = to.provider;
        self.ws = to.ws;
        self.config = to.config;
    }

    /// The settings in force.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }
}

/// The system prompt for `provider`'s model: the compact one for a small context that must call
/// tools, and the step budget.
pub(super) fn system_for(provider: &dyn Provider, ws: &Workspace, config: &AgentConfig) -> String {
    let compact = config.answer_tool && provider.info().context_length <= ground::COMPACT_CONTEXT;
    let mut system = if compact {
        crate::prompt::compact_system_prompt(ws.root())
    } else {
        system_prompt(ws.root())
    };
    if let Some(budget) = config.step_budget {
        system.push_str(&format!(
            "\n\nKeep each edit small: at most {budget} changed lines (added plus removed) per \
             edit. Larger edits are refused; split them into several steps."
        ));
    }
    system
}
