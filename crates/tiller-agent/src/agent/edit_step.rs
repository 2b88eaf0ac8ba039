//! An edit step with candidates: when the model's turn is one edit while the project's tests
//! fail, more candidate edits are sampled from the model, held to the lines the failure points
//! to, and all are checked by the tests in a scratch copy of the workspace (`candidates.rs`).

use std::collections::BTreeMap;
use std::time::Instant;

use tiller_ledger::Note;
use tiller_model::{Completion, Request, ToolChoice};
use tiller_tools::{FileList, SuiteResult, ToolKind, constrain_specs};
use tiller_types::{AgentEvent, Message, ToolCall, ToolSpec};

use super::Agent;
use crate::AgentError;
use crate::candidates::{self, Candidate};
use crate::localise::{self, Region};

impl Agent {
    /// At an edit step (a turn whose one call is an edit) with candidates on and the tests
    /// failing: samples more edits with the same tool, checks them and the model's own, and
    /// puts the passing one with the smallest change in place of the model's call. When none
    /// passes, the call stays and the second value is what the model is told instead of running
    /// it: the candidates and their failures.
    pub(super) fn edit_step(
        &mut self,
        mut completion: Completion,
        step: u32,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<(Completion, Option<String>), AgentError> {
        let Some(call) = self.edit_call(&completion) else {
            return Ok((completion, None));
        };
        let Some(now) = self.failing_now() else {
            return Ok((completion, None));
        };
        let region = localise::region(&self.ws, &now.output);
        let request = self.candidate_request(&call.name, region.as_ref());
        let more = self.sample(&request, self.config.candidates - 1, events)?;
        let calls = std::iter::once(call.clone())
            .chain(more.into_iter().filter_map(|c| c.tool_calls.into_iter().next()))
            .collect();
        let failing: Vec<String> = now.failed.into_keys().collect();
        let Some(checker) = self.checker.as_deref() else {
            return Ok((completion, None));
        };
        let checked = match candidates::check(&self.tools, &self.ws, calls, checker, &failing) {
            Ok(checked) => checked,
            Err(why) => {
                self.warning = Some(format!("candidate edits were not checked: {why}"));
                return Ok((completion, None));
            }
        };
        self.record_candidates(step, &checked)?;
        let passed = checked.iter().filter(|c| c.verdict == candidates::Verdict::Passes).count();
        events(&AgentEvent::Candidates { call_id: call.id.clone(), passed, total: checked.len() });
        match candidates::best(&checked) {
            Some(best) => {
                completion.tool_calls[0] = ToolCall { id: call.id, ..best.call.clone() };
                Ok((completion, None))
            }
            None => Ok((completion, Some(candidates::report(&checked)))),
        }
    }

    /// The turn's call when candidates apply to it: the turn is one call, of an edit tool.
    fn edit_call(&self, completion: &Completion) -> Option<ToolCall> {
        if self.config.candidates < 2 || self.unasked_checker().is_none() {
            return None;
        }
        let [call] = &completion.tool_calls[..] else {
            return None;
        };
        let tool = self.tools.get(&call.name)?;
        (tool.kind() == ToolKind::Edit).then(|| call.clone())
    }

    /// The tests' result now, when some fail (run in the workspace as it is).
    fn failing_now(&mut self) -> Option<SuiteResult> {
        let result = self.checker.as_deref()?.check(self.ws.root(), &[]);
        match result {
            Ok(result) if !result.green() => Some(result),
            Ok(_) => None,
            Err(why) => {
                self.warning = Some(format!("the tests could not run to check candidates: {why}"));
                None
            }
        }
    }

    /// The request candidates are sampled from: the conversation, with the lines at fault
    /// added to its last message, and only tool `name`, which must be called. On a constrained
    /// provider, `replace` may take only those lines.
    fn candidate_request(&self, name: &str, region: Option<&Region>) -> Request {
        let mut messages = self.full_history();
        if let Some(region) = region
            && let Some(Message::User { content } | Message::Tool { content, .. }) =
                messages.last_mut()
        {
            content.push_str(&format!("\n\n{}", region.describe()));
        }
        let mut request = self.request(messages);
        request.tools.retain(|s| s.name == name);
        if let Some(held) = region.and_then(|r| self.held_to_region(name, r)) {
            request.tools = vec![held];
        }
        request.tool_choice = ToolChoice::Required;
        request
    }

    /// Tool `name`'s spec with the lines it may replace held to `region`'s suspects (those found
    /// once in the file), for a provider that samples under a grammar.
    fn held_to_region(&self, name: &str, region: &Region) -> Option<ToolSpec> {
        if !self.config.constrained || name != "replace" {
            return None;
        }
        let text = self.ws.read_text(&region.path).ok()??;
        let once = |line: &&String| {
            !line.trim().is_empty() && text.lines().filter(|l| l == line).count() == 1
        };
        let lines: Vec<String> = region.suspects.iter().filter(once).cloned().collect();
        if lines.is_empty() {
            return None;
        }
        let mut files = FileList::scan(&self.ws);
        files.lines = BTreeMap::from([(region.path.clone(), lines)]);
        let mut specs = vec![self.tools.get(name)?.spec()];
        constrain_specs(&mut specs, Some(&files));
        specs.pop()
    }

    /// `n` more completions of `request`, recorded as model calls and counted in the usage.
    fn sample(
        &mut self,
        request: &Request,
        n: usize,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<Vec<Completion>, AgentError> {
        let started = Instant::now();
        let outcomes = match self.provider.complete_n(request, n, &self.cancel) {
            Ok(done) => done.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        let took = (started.elapsed() / n.max(1) as u32, 0);
        if let Some(recorder) = &mut self.recorder {
            let info = self.provider.info();
            for outcome in &outcomes {
                recorder.model_call(&info, self.config.remote, request, outcome, took);
            }
        }
        self.flush()?;
        let completions = outcomes.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut call = tiller_types::Usage::default();
        completions.iter().for_each(|c| call += c.usage);
        self.usage += call;
        events(&AgentEvent::Usage { call, total: self.usage });
        Ok(completions)
    }

    /// Each candidate and its verdict, as ledger notes.
    fn record_candidates(&mut self, step: u32, checked: &[Candidate]) -> Result<(), AgentError> {
        let Some(recorder) = &mut self.recorder else {
            return Ok(());
        };
        for (index, candidate) in checked.iter().enumerate() {
            recorder.push(Note { topic: "candidate".into(), data: candidate.note(step, index) });
        }
        self.flush()
    }
}
