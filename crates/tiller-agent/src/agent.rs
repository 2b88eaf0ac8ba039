//! The loop: model turn, tool calls, observations, until the model answers.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use tiller_ledger::FileHashes;
use tiller_model::{Cancel, Completion, ModelError, Provider, Request, ToolChoice};
use tiller_tools::{Observation, Quote, Registry, ToolKind, TreeWatch, Workspace};
use tiller_types::{AgentEvent, ApprovalPolicy, Message, StreamEvent, ToolCall, ToolSpec, Usage};

use crate::ground;
use crate::ids::CallIds;
use crate::record::Recorder;
use crate::redact::Redactor;
use crate::repeat::Failures;
use crate::session::close_dangling_calls;
use crate::{AgentError, Approver, Checker, SessionLog, agents_files};
use tiller_types::text::clip_middle;

mod answer;
mod config;
mod context;
mod edit_step;
mod ledger;
mod switch;
mod tool_call;

use answer::{ANSWER_TOOL, answer_spec};
pub use config::AgentConfig;
use edit_step::Checked;
pub use switch::ModelSwitch;
use switch::system_for;

/// An agent working in one workspace with one model at a time.
pub struct Agent {
    provider: Box<dyn Provider>,
    tools: Registry,
    ws: Workspace,
    config: AgentConfig,
    system: String,
    history: Vec<Message>,
    log: Option<SessionLog>,
    usage: Usage,
    cancel: Cancel,
    recorder: Option<Recorder>,
    /// Present when the model is remote.
    redactor: Option<Redactor>,
    /// The workspace lines each tool result quotes, by call id.
    quotes: HashMap<String, Vec<Quote>>,
    /// The AGENTS.md files in the system prompt.
    system_quotes: Vec<Quote>,
    /// Whether the system prompt and earlier history have been redacted.
    prepared: bool,
    /// Made on the first run, from the session's history.
    ids: Option<CallIds>,
    /// The ledger could not be written: this run's rows go to the session log.
    ledger_down: bool,
    /// A warning for the next chance to emit events.
    warning: Option<String>,
    /// The working tree as of the last command, to see what the next one changes.
    tree: TreeWatch,
    /// Calls that failed, not to be run again.
    failures: Failures,
    /// A candidate edit made the failing tests pass: with the answer tool on, answering is
    /// what is left to do.
    fixed: bool,
    /// Rounds of candidates so far: each rewrites the next of the regions the failure points
    /// to (the function at fault, then those it calls).
    rounds: usize,
    /// The files the model has read, whose lines `replace` may take.
    read: BTreeSet<String>,
    /// On a constrained engine, the tools as the prompt shows them (held as when first
    /// offered), with their plain schemas, by which they are offered again.
    shown: Option<(Vec<ToolSpec>, Vec<ToolSpec>)>,
    /// Served tools the user approved for the rest of the session.
    approved_tools: BTreeSet<String>,
    /// Runs the project's tests, for the brief and to check candidate edits; without one
    /// neither runs them.
    checker: Option<Box<dyn Checker>>,
}

impl Agent {
    pub fn new(
        provider: Box<dyn Provider>,
        mut tools: Registry,
        ws: Workspace,
        config: AgentConfig,
    ) -> Self {
        let system = system_for(provider.as_ref(), &ws, &config);
        let system_quotes: Vec<Quote> = agents_files(ws.root())
            .into_iter()
            .map(|file| {
                let lines = std::fs::read_to_string(&file).map_or(0, |t| t.lines().count());
                Quote { path: ws.relative(&file), first: 1, last: lines as u32 }
            })
            .collect();
        // One flag stops both the model call and a running command.
        let cancel = Cancel::default();
        tools.share_cancel(&cancel);
        // The AGENTS.md files are in the system prompt: read already.
        let read: BTreeSet<String> = system_quotes.iter().map(|q| q.path.clone()).collect();
        Agent {
            redactor: config.remote.then(Redactor::new),
            provider,
            tools,
            ws,
            config,
            system,
            history: Vec::new(),
            log: None,
            usage: Usage::default(),
            cancel,
            recorder: None,
            quotes: HashMap::new(),
            system_quotes,
            prepared: false,
            ids: None,
            ledger_down: false,
            warning: None,
            tree: TreeWatch::default(),
            failures: Failures::default(),
            fixed: false,
            rounds: 0,
            shown: None,
            read,
            approved_tools: BTreeSet::new(),
            checker: None,
        }
    }

    /// Runs the project's tests with `checker`: in the brief, and to check candidate edits
    /// (see [`AgentConfig::brief`] and [`AgentConfig::candidates`]).
    pub fn with_checker(mut self, checker: Box<dyn Checker>) -> Self {
        self.checker = Some(checker);
        self
    }

    /// Records every model call and tool action to a ledger from now on.
    pub fn with_ledger(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Records every message to `log` from now on.
    pub fn with_log(mut self, log: SessionLog) -> Self {
        self.log = Some(log);
        self
    }

    /// Continues an earlier conversation. Tool calls left without a result (the process died
    /// while running them) get one saying so, so the model sees a well-formed history.
    pub fn with_history(mut self, history: Vec<Message>) -> Self {
        self.history = close_dangling_calls(history);
        self
    }

    pub fn history(&self) -> &[Message] {
        &self.history
    }

    /// Tokens spent so far in this process.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Forgets the conversation after its first `keep` messages: 0 starts afresh (`/clear`),
    /// the count before an undone step takes that step back (`/undo`). With `cut_log`, the
    /// session file is cut back as well; without, it keeps everything.
    pub fn rewind(&mut self, keep: usize, cut_log: bool) -> Result<(), AgentError> {
        self.history.truncate(keep);
        match &mut self.log {
            Some(log) if cut_log => log.replace(&self.history),
            _ => Ok(()),
        }
    }

    /// A handle that stops the current model call when cancelled.
    pub fn cancel_handle(&self) -> Cancel {
        self.cancel.clone()
    }

    /// Works on `task` until the model answers; returns the answer.
    pub fn run(
        &mut self,
        task: &str,
        approver: &mut dyn Approver,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<String, AgentError> {
        let result = self.work(task, approver, events);
        // Whatever happened is recorded, even when the run failed.
        let flushed = self.flush();
        self.warn(events);
        let answer = result?;
        flushed?;
        Ok(answer)
    }

    fn work(
        &mut self,
        task: &str,
        approver: &mut dyn Approver,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<String, AgentError> {
        self.cancel.reset();
        self.prepare();
        if self.ids.is_none() {
            let prefix = self.log.as_ref().map_or_else(|| "tiller".to_string(), |l| l.id());
            self.ids = Some(CallIds::new(&prefix, &self.history));
        }
        let task = if self.config.brief && self.history.is_empty() {
            let budget = if self.compact_mode() { 1600 } else { 6000 };
            let (brief, shown) =
                ground::brief(&self.ws, task, budget, self.unasked_checker(), &self.cancel);
            self.read.extend(shown);
            format!("{task}\n\n{brief}")
        } else {
            task.to_string()
        };
        let task = self.outbound(task, "the task");
        self.push(Message::user(task))?;
        for step in 1..=self.config.max_steps {
            // Tools served by other programs are listed (their servers started) on first use,
            // and again when a server says they changed.
            self.tools.refresh();
            for message in self.tools.take_warnings() {
                events(&AgentEvent::Warning { message });
            }
            events(&AgentEvent::TurnStarted { step });
            self.fit_context(events)?;
            let completion = self.model_turn(step == self.config.max_steps || self.fixed, events);
            self.warn(events);
            let completion = completion?;
            self.usage += completion.usage;
            events(&AgentEvent::Usage { call: completion.usage, total: self.usage });
            if completion.stop == tiller_types::StopReason::MaxTokens {
                self.cut_reply(completion, events)?;
                continue;
            }
            if let Some(answer) = self.answer_call(&completion.tool_calls) {
                self.push(Message::assistant(&answer))?;
                events(&AgentEvent::Answer { text: answer.clone() });
                return Ok(answer);
            }
            let (completion, checked) = self.edit_step(completion, step, events)?;
            let mut refused = match &checked {
                Checked::Refused(text) | Checked::Tried(text) => Some(text.clone()),
                _ => None,
            };
            self.push(completion.message())?;
            if self.cancel.is_cancelled() {
                return Err(ModelError::Cancelled.into());
            }
            if completion.tool_calls.is_empty() {
                events(&AgentEvent::Answer { text: completion.content.clone() });
                return Ok(completion.content);
            }
            for call in &completion.tool_calls {
                let started = Instant::now();
                // A call that brought new candidates checked is no repeat.
                let repeated = match checked {
                    Checked::Tried(_) => None,
                    _ => self.failures.repeated(call),
                };
                let outcome = match repeated.clone().or_else(|| refused.take()) {
                    Some(text) => Err(text),
                    None => self.call_tool(call, approver, events),
                };
                let (obs, files, is_error) = match outcome {
                    Ok((mut obs, files)) => {
                        if checked == Checked::Fixes {
                            obs.text.push_str(edit_step::FIXED);
                            self.fixed = true;
                        }
                        (obs, files, false)
                    }
                    Err(text) => (Observation { text, ..Observation::default() }, Vec::new(), true),
                };
                if repeated.is_none() {
                    self.note_outcome(call, &obs, &files, is_error);
                }
                let outcome = (&obs, is_error, started.elapsed().as_millis());
                self.record_action(call, outcome, files)?;
                self.warn(events);
                if !obs.quotes.is_empty() {
                    self.quotes.insert(call.id.clone(), obs.quotes);
                }
                let location = format!("output of {} call {}", call.name, call.id);
                // Redacted whole, before a cut could split a secret.
                let output = self.outbound(obs.text, &location);
                let output = clip_middle(&output, self.observation_cap()).into_owned();
                events(&AgentEvent::ToolResult {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    output: output.clone(),
                    is_error,
                });
                self.push(Message::Tool {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    content: output,
                    is_error,
                })?;
                // Calls left without a result are closed when the session resumes.
                if self.cancel.is_cancelled() {
                    return Err(ModelError::Cancelled.into());
                }
            }
            if self.failures.stuck() {
                return Err(AgentError::Repeating(crate::repeat::MAX_REPEATS));
            }
        }
        Err(AgentError::StepLimit(self.config.max_steps))
    }

    /// Remembers what a call did: a failure, a change written, a read or a built-in command
    /// (which would print the same with the workspace as it is), not to be repeated with the
    /// files as they are; files read.
    fn note_outcome(
        &mut self,
        call: &ToolCall,
        obs: &Observation,
        files: &[FileHashes],
        is_error: bool,
    ) {
        let reads = self.tools.get(&call.name).is_some_and(|t| match t.kind() {
            ToolKind::Read => true,
            // A served tool may answer otherwise each time (the time, a queue).
            ToolKind::Exec => t.served_by().is_none(),
            ToolKind::Edit => false,
        });
        if !files.is_empty() {
            self.failures.record_change(call, files);
        } else if is_error {
            self.failures.record(call, &obs.text);
        } else if reads {
            self.failures.record_read(call);
        }
        if call.name == "read_file" {
            self.read.extend(obs.quotes.iter().map(|q| q.path.clone()));
        }
    }

    /// The checker, where the tests may run without asking (checking runs them).
    fn unasked_checker(&self) -> Option<&dyn Checker> {
        let asks = self.config.approval == ApprovalPolicy::Untrusted;
        self.checker.as_deref().filter(|_| !asks)
    }

    /// Whether the model gets the compact prompt and tools: a small model (one given the answer
    /// tool) with a small context.
    fn compact_mode(&self) -> bool {
        self.config.answer_tool && self.provider.info().context_length <= ground::COMPACT_CONTEXT
    }

    /// The text of an `answer` tool call, when the answer tool is on and the model called it
    /// with a text. A call whose arguments do not parse is no answer: it runs as a tool call,
    /// which tells the model what was wrong.
    fn answer_call(&self, calls: &[ToolCall]) -> Option<String> {
        let call = calls.iter().find(|c| self.config.answer_tool && c.name == ANSWER_TOOL)?;
        let args: serde_json::Value = serde_json::from_str(&call.arguments).ok()?;
        args["text"].as_str().map(str::to_string)
    }

    /// One model call on the whole conversation, its stream passed on as events. A stream that
    /// broke after part of the answer came (which the provider cannot retry) is asked once more.
    /// On the `last` step, or once the tests pass by a candidate, the answer tool (when on) is
    /// the only tool offered.
    fn model_turn(
        &mut self,
        last: bool,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<Completion, AgentError> {
        let mut request = self.step_request();
        if self.config.answer_tool && last {
            request.only_calls(ANSWER_TOOL);
        }
        let mut attempt = 0;
        loop {
            let quoted = self.quotes_in(&request.messages);
            // Calls are named as they stream, so that events and history agree on the ids.
            let mut ids = self.ids.clone().unwrap_or_default();
            let mut assigned = Vec::new();
            let result = self.call_model(&request, quoted, &mut |ev| match ev {
                StreamEvent::TextDelta { text } => {
                    events(&AgentEvent::TextDelta { text: text.clone() })
                }
                StreamEvent::ToolCall { call } => {
                    let id = ids.assign(&call.id);
                    assigned.push(id.clone());
                    events(&AgentEvent::ToolCall { call: ToolCall { id, ..call.clone() } })
                }
                StreamEvent::Retry { attempt, delay_ms, reason } => events(&AgentEvent::Retry {
                    attempt: *attempt,
                    delay_ms: *delay_ms,
                    reason: reason.clone(),
                }),
                StreamEvent::Usage { .. } | StreamEvent::Done { .. } => {}
            });
            match result {
                Err(AgentError::Model(e @ ModelError::Truncated { .. })) if attempt == 0 => {
                    attempt += 1;
                    events(&AgentEvent::Retry { attempt, delay_ms: 0, reason: e.to_string() });
                }
                other => {
                    let mut completion = other?;
                    for (n, call) in completion.tool_calls.iter_mut().enumerate() {
                        call.id = match assigned.get(n) {
                            Some(id) => id.clone(),
                            None => ids.assign(&call.id),
                        };
                    }
                    self.ids = Some(ids);
                    return Ok(completion);
                }
            }
        }
    }

    /// The request of a step on the whole conversation. On a constrained engine its prompt
    /// shows the tools as they were held when the session first offered them (most often the
    /// same: edits that fail are not kept), so that the prompt stays the same from step to step
    /// and the engine's cache of it holds; the grammar holds the calls to the workspace as it is.
    fn step_request(&mut self) -> Request {
        let mut request = self.request(self.full_history());
        if self.config.answer_tool {
            request.tools.push(answer_spec());
            if !request.callable.is_empty() {
                request.callable.push(answer_spec());
            }
            request.tool_choice = ToolChoice::Required;
        }
        if request.callable.is_empty() {
            return request;
        }
        match &self.shown {
            Some((plain, shown)) if *plain == request.tools => request.tools = shown.clone(),
            _ => {
                let plain = std::mem::replace(&mut request.tools, request.callable.clone());
                self.shown = Some((plain, request.callable.clone()));
            }
        }
        request
    }

    fn request(&self, messages: Vec<Message>) -> Request {
        let offer = ground::offer(
            &self.tools,
            &self.ws,
            self.config.constrained,
            self.compact_mode(),
            &self.read,
        );
        Request {
            messages,
            max_tokens: Some(self.reply_limit(offer.bounded_by.as_deref())),
            tools: offer.specs,
            callable: offer.callable,
            temperature: self.config.temperature,
            ..Request::default()
        }
    }

    fn full_history(&self) -> Vec<Message> {
        std::iter::once(Message::system(&self.system)).chain(self.history.iter().cloned()).collect()
    }

    fn push(&mut self, message: Message) -> Result<(), AgentError> {
        if let Some(log) = &mut self.log {
            log.append(&message)?;
        }
        self.history.push(message);
        Ok(())
    }

    fn observation_cap(&self) -> usize {
        let eighth_of_context = self.provider.info().context_length as usize * 4 / 8;
        self.config.max_observation_bytes.min(eighth_of_context.max(1024))
    }
}
