//! What every loop works with: the agent and its approver, the verifier, and the ledger that
//! keeps each step and verdict.

use std::fmt;

use serde::Serialize;
use tiller_agent::{Agent, AgentError, Approver, Review, Verdict};
use tiller_ledger::{Entry, Ledger, Note};
use tiller_types::{AgentEvent, ChangeSet, Selection, ToolCall};

use crate::git::{changed_paths, revert};
use crate::{LoopError, Verifier};

/// How a loop ended when nothing went wrong on the way.
#[derive(Clone, Debug, PartialEq)]
pub enum Conclusion<T> {
    /// The goal was reached and checked.
    Accepted(T),
    /// tiller rejected the agent's last attempt, for this reason; its changes were put back.
    Rejected(String),
}

/// One recorded step of a loop: stored as the data of a `loop` note in the ledger.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    /// `repro`, `fix`, `sweep` or `perf`.
    pub command: &'static str,
    /// `baseline`, `attempt`, `measure`, …
    pub step: &'static str,
    /// `accepted`, `rejected`, `passed`, …
    pub verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Anything else worth keeping: test names, commits, measurements.
    #[serde(flatten)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.command, self.step, self.verdict)?;
        match &self.reason {
            Some(reason) => write!(f, ": {reason}"),
            None => Ok(()),
        }
    }
}

/// An agent, the project's verifier and where steps are recorded: what a loop runs on.
pub struct Loop<'a> {
    pub agent: &'a mut Agent,
    /// Reviews the agent's edits and commands (auto-accepting for headless `--yes`).
    pub approver: &'a mut dyn Approver,
    pub verifier: Verifier,
    /// Where `loop` notes go, under `session`.
    pub ledger: Option<Ledger>,
    pub session: String,
    /// Tries the agent gets before tiller gives up.
    pub attempts: u32,
    /// The agent's events, for a front end to show.
    pub events: Box<dyn FnMut(&AgentEvent) + 'a>,
    /// Each step as it is recorded.
    pub on_step: Box<dyn FnMut(&Step) + 'a>,
}

impl<'a> Loop<'a> {
    /// A loop with three attempts, recording nowhere and showing nothing.
    pub fn new(agent: &'a mut Agent, approver: &'a mut dyn Approver, verifier: Verifier) -> Self {
        Loop {
            agent,
            approver,
            verifier,
            ledger: None,
            session: String::new(),
            attempts: 3,
            events: Box::new(|_| {}),
            on_step: Box::new(|_| {}),
        }
    }

    /// Records a step in the ledger and shows it.
    pub(crate) fn note(
        &mut self,
        command: &'static str,
        step: &'static str,
        verdict: &str,
        reason: Option<&str>,
        data: serde_json::Value,
    ) -> Result<(), LoopError> {
        let step = Step {
            command,
            step,
            verdict: verdict.to_string(),
            reason: reason.map(str::to_string),
            data: match data {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
        };
        if let Some(ledger) = &self.ledger {
            let data = serde_json::to_value(&step).unwrap_or_default();
            let note = Note { topic: "loop".into(), data };
            ledger.append(&[Entry::now(self.session.clone(), note)])?;
        }
        (self.on_step)(&step);
        Ok(())
    }

    /// Gives the agent `task`; edits to files that `protected` names are refused. Running out
    /// of steps is not fatal: what the agent did is checked all the same.
    pub(crate) fn ask(
        &mut self,
        task: &str,
        protected: &dyn Fn(&str) -> bool,
    ) -> Result<String, LoopError> {
        let mut guard = Guard { inner: &mut *self.approver, protected };
        match self.agent.run(task, &mut guard, &mut *self.events) {
            Ok(answer) => Ok(answer),
            Err(AgentError::StepLimit(_)) => Ok(String::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// [`ask`](Self::ask), then the files the agent changed that `protected` does not name.
    /// Protected files it changed anyway (through the shell, say) are put back, and the reason
    /// for rejecting the attempt names them as `what`.
    pub(crate) fn attempt(
        &mut self,
        task: &str,
        protected: &dyn Fn(&str) -> bool,
        what: &str,
    ) -> Result<(Vec<String>, Option<String>), LoopError> {
        self.ask(task, protected)?;
        let root = &self.verifier.root;
        let (touched, files): (Vec<String>, Vec<String>) =
            changed_paths(root)?.into_iter().partition(|f| protected(f));
        revert(root, &touched)?;
        let why = (!touched.is_empty()).then(|| {
            format!("the change touched {what} ({}), which were restored", touched.join(", "))
        });
        Ok((files, why))
    }
}

/// Passes reviews on, refusing every hunk in a protected file with a word to the model.
struct Guard<'a> {
    inner: &'a mut dyn Approver,
    protected: &'a dyn Fn(&str) -> bool,
}

impl Approver for Guard<'_> {
    fn approve_command(&mut self, call: &ToolCall, command: &str) -> Verdict {
        self.inner.approve_command(call, command)
    }

    fn review_changes(&mut self, call: &ToolCall, changes: &ChangeSet) -> Review {
        let refused: Vec<&str> = (changes.files.iter())
            .map(|f| f.path.as_str())
            .filter(|p| (self.protected)(p))
            .collect();
        if refused.is_empty() {
            return self.inner.review_changes(call, changes);
        }
        let mut review = if refused.len() == changes.files.len() {
            let none = changes.files.iter().map(|f| vec![false; f.items()]).collect();
            Review { selection: Selection(none), feedback: None, edited: None }
        } else {
            self.inner.review_changes(call, changes)
        };
        let files = &review.edited.as_ref().unwrap_or(changes).files;
        let flags: Vec<bool> = files.iter().map(|f| (self.protected)(&f.path)).collect();
        for (hunks, protected) in review.selection.0.iter_mut().zip(flags) {
            if protected {
                hunks.iter_mut().for_each(|h| *h = false);
            }
        }
        let refusal = format!(
            "tiller refused the change to {}: the reproducing test must not change during a \
             fix. Change the code under test instead.",
            refused.join(", ")
        );
        review.feedback = Some(match review.feedback {
            Some(said) => format!("{refusal}\n{said}"),
            None => refusal,
        });
        review
    }
}
