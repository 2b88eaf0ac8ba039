//! The loop: model turn, tool calls, observations, until the model answers.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use tiller_ledger::{FileHashes, Redaction, Sent, ToolAction};
use tiller_model::{Cancel, Completion, ModelError, Provider, Request, ToolChoice};
use tiller_tools::{
    Observation, Outcome, Quote, Registry, ToolKind, Workspace, apply_changes, explain,
};
use tiller_types::{AgentEvent, ApprovalPolicy, Message, StreamEvent, ToolCall, ToolSpec, Usage};

use crate::compact::{self, truncate_middle};
use crate::ground;
use crate::record::{self, Recorder};
use crate::redact::{PLACEHOLDER_PREFIX, Redactor};
use crate::repeat::Failures;
use crate::session::close_dangling_calls;
use crate::{
    AgentError, Approver, Review, SessionLog, Verdict, agents_files, needs_approval, system_prompt,
};

/// How the agent works.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Model turns per task before giving up.
    pub max_steps: u32,
    pub approval: ApprovalPolicy,
    /// Output tokens per model call.
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
    /// and, for a task about a failing test or a bug, what the tests say now (run once in the
    /// sandbox, unless the approval policy asks before commands).
    pub brief: bool,
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
        }
    }
}

/// An agent working in one workspace with one model.
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
    /// Calls that failed, not to be run again.
    failures: Failures,
    /// The files the model has read, whose lines `replace` may take.
    read: BTreeSet<String>,
}

impl Agent {
    pub fn new(
        provider: Box<dyn Provider>,
        tools: Registry,
        ws: Workspace,
        config: AgentConfig,
    ) -> Self {
        let compact =
            config.answer_tool && provider.info().context_length <= ground::COMPACT_CONTEXT;
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
        let system_quotes: Vec<Quote> = agents_files(ws.root())
            .into_iter()
            .map(|file| {
                let lines = std::fs::read_to_string(&file).map_or(0, |t| t.lines().count());
                Quote { path: ws.relative(&file), first: 1, last: lines as u32 }
            })
            .collect();
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
            cancel: Cancel::default(),
            recorder: None,
            quotes: HashMap::new(),
            system_quotes,
            prepared: false,
            failures: Failures::default(),
            read,
        }
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
        let task = if self.config.brief && self.history.is_empty() {
            let budget = if self.compact() { 1600 } else { 6000 };
            let run_tests = self.config.approval != ApprovalPolicy::Untrusted;
            let (brief, shown) = ground::brief(&self.tools, &self.ws, task, budget, run_tests);
            self.read.extend(shown);
            format!("{task}\n\n{brief}")
        } else {
            task.to_string()
        };
        let task = self.outbound(task, "the task");
        self.push(Message::user(task))?;
        for step in 1..=self.config.max_steps {
            events(&AgentEvent::TurnStarted { step });
            self.fit_context(events)?;
            let completion = self.model_turn(step == self.config.max_steps, events)?;
            self.usage += completion.usage;
            events(&AgentEvent::Usage { call: completion.usage, total: self.usage });
            if let Some(answer) = self.answer_call(&completion.tool_calls) {
                self.push(Message::assistant(&answer))?;
                events(&AgentEvent::Answer { text: answer.clone() });
                return Ok(answer);
            }
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
                let repeated = self.failures.repeated(call);
                let outcome = match repeated.clone() {
                    Some(text) => Err(text),
                    None => self.call_tool(call, approver, events),
                };
                let (obs, files, is_error) = match outcome {
                    Ok((obs, files)) => (obs, files, false),
                    Err(text) => (Observation { text, ..Observation::default() }, Vec::new(), true),
                };
                if repeated.is_none() {
                    self.note_outcome(call, &obs, &files, is_error);
                }
                self.record_action(call, obs.exit_code, files, started.elapsed().as_millis());
                if !obs.quotes.is_empty() {
                    self.quotes.insert(call.id.clone(), obs.quotes);
                }
                let location = format!("output of {} call {}", call.name, call.id);
                // Redacted whole, before a cut could split a secret.
                let output = self.outbound(obs.text, &location);
                let output = truncate_middle(&output, self.observation_cap());
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
            }
            self.flush()?;
            if self.failures.stuck() {
                return Err(AgentError::Repeating(crate::repeat::MAX_REPEATS));
            }
        }
        Err(AgentError::StepLimit(self.config.max_steps))
    }

    /// Before the first request to a remote model: redacts the system prompt and any history
    /// carried over from an earlier session.
    fn prepare(&mut self) {
        if self.prepared || self.redactor.is_none() {
            return;
        }
        self.prepared = true;
        let system = std::mem::take(&mut self.system);
        self.system = self.outbound(system, "the system prompt");
        let mut history = std::mem::take(&mut self.history);
        for (n, message) in history.iter_mut().enumerate() {
            let location = format!("message {} of the resumed session", n + 1);
            match message {
                Message::User { content }
                | Message::Assistant { content, .. }
                | Message::Tool { content, .. } => {
                    *content = self.outbound(std::mem::take(content), &location);
                }
                Message::System { .. } => {}
            }
        }
        self.history = history;
    }

    /// `text` as it may be sent to the model: with secrets replaced when the model is remote,
    /// each replacement recorded.
    fn outbound(&mut self, text: String, location: &str) -> String {
        let Some(redactor) = &self.redactor else {
            return text;
        };
        let redacted = redactor.redact(&text);
        if redacted.findings.is_empty() {
            return text;
        }
        if let Some(recorder) = &mut self.recorder {
            let endpoint = endpoint_name(self.provider.as_ref());
            for finding in &redacted.findings {
                recorder.push(Redaction {
                    endpoint: endpoint.clone(),
                    secret_kind: finding.kind.into(),
                    location: format!("{location}, line {}", finding.line),
                    placeholder: finding.placeholder.clone(),
                });
            }
        }
        redacted.text.into()
    }

    /// One model call, recorded: the call itself, and for a remote model which workspace lines
    /// it carried (`quoted`).
    fn call_model(
        &mut self,
        request: &Request,
        quoted: Vec<Quote>,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<Completion, ModelError> {
        let started = Instant::now();
        let outcome = self.provider.complete(request, &self.cancel, on_event);
        if let Some(recorder) = &mut self.recorder {
            let info = self.provider.info();
            let remote = self.config.remote;
            let request_sha256 =
                recorder.model_call(&info, remote, request, &outcome, started.elapsed());
            if remote {
                let files = record::sent_files(self.system_quotes.iter().chain(&quoted));
                let endpoint = endpoint_name(self.provider.as_ref());
                recorder.push(Sent { endpoint, request_sha256, files });
            }
        }
        outcome
    }

    /// The quotes of the tool results among `messages`.
    fn quotes_in(&self, messages: &[Message]) -> Vec<Quote> {
        let ids = messages.iter().filter_map(|m| match m {
            Message::Tool { call_id, .. } => Some(call_id),
            _ => None,
        });
        ids.filter_map(|id| self.quotes.get(id)).flatten().cloned().collect()
    }

    fn record_action(
        &mut self,
        call: &ToolCall,
        exit_code: Option<i32>,
        files: Vec<FileHashes>,
        millis: u128,
    ) {
        let Some(recorder) = &mut self.recorder else {
            return;
        };
        let arguments = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|_| serde_json::Value::String(call.arguments.clone()));
        recorder.push(ToolAction {
            tool: call.name.clone(),
            arguments,
            exit_code,
            duration_ms: millis as u64,
            files,
        });
    }

    fn flush(&mut self) -> Result<(), AgentError> {
        if let Some(recorder) = &mut self.recorder {
            recorder.flush()?;
        }
        Ok(())
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
    /// On the `last` step, the answer tool (when on) is the only tool offered.
    fn model_turn(
        &mut self,
        last: bool,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<tiller_model::Completion, AgentError> {
        let mut request = self.request(self.full_history());
        if self.config.answer_tool {
            if last {
                request.tools.clear();
            }
            request.tools.push(answer_spec());
            request.tool_choice = ToolChoice::Required;
        }
        let mut attempt = 0;
        loop {
            let quoted = self.quotes_in(&request.messages);
            let result = self.call_model(&request, quoted, &mut |ev| match ev {
                StreamEvent::TextDelta { text } => {
                    events(&AgentEvent::TextDelta { text: text.clone() })
                }
                StreamEvent::ToolCall { call } => {
                    events(&AgentEvent::ToolCall { call: call.clone() })
                }
                StreamEvent::Retry { attempt, delay_ms, reason } => events(&AgentEvent::Retry {
                    attempt: *attempt,
                    delay_ms: *delay_ms,
                    reason: reason.clone(),
                }),
                StreamEvent::Usage { .. } | StreamEvent::Done { .. } => {}
            });
            match result {
                Err(e @ ModelError::Truncated { .. }) if attempt == 0 => {
                    attempt += 1;
                    events(&AgentEvent::Retry { attempt, delay_ms: 0, reason: e.to_string() });
                }
                other => return Ok(other?),
            }
        }
    }

    fn request(&self, messages: Vec<Message>) -> Request {
        let tools = ground::specs(
            &self.tools,
            &self.ws,
            self.config.constrained,
            self.compact(),
            &self.read,
        );
        Request {
            messages,
            tools,
            max_tokens: self.config.max_tokens,
            temperature: self.config.temperature,
            stop: Vec::new(),
            tool_choice: ToolChoice::Auto,
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

    /// Runs one tool call; with the files it changed. `Err` holds an observation that reports a
    /// failure to the model.
    fn call_tool(
        &mut self,
        call: &ToolCall,
        approver: &mut dyn Approver,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<(Observation, Vec<FileHashes>), String> {
        if self.config.answer_tool && call.name == ANSWER_TOOL {
            return Err(format!(
                "The answer was not understood: its arguments are not a JSON object with a \
                 `text` string ({}). Call answer again with {{\"text\": \"...\"}}.",
                truncate_middle(&call.arguments, 200)
            ));
        }
        let Some(tool) = self.tools.get(&call.name) else {
            return Err(format!(
                "There is no tool named `{}`. Available tools: {}.",
                call.name,
                self.tools.names().join(", ")
            ));
        };
        let args: serde_json::Value = serde_json::from_str(&call.arguments).map_err(|e| {
            format!("The arguments are not valid JSON ({e}). Send one JSON object matching the tool's schema.")
        })?;
        let kind = tool.kind();
        let command = args.get("command").and_then(|c| c.as_str()).map(str::to_string);
        let ask = kind == ToolKind::Exec
            && (tool.always_ask()
                || needs_approval(self.config.approval, kind, command.as_deref()));
        if ask
            && let Verdict::Deny { feedback } =
                approver.approve_command(call, command.as_deref().unwrap_or_default())
        {
            events(&AgentEvent::Rejected { call_id: call.id.clone(), feedback: feedback.clone() });
            return Err(with_feedback("The user declined to run this command.", feedback));
        }
        let changes = match tool.run(&self.ws, args).map_err(|e| explain(&self.ws, &e))? {
            Outcome::Text(obs) => return Ok((obs, Vec::new())),
            Outcome::Change(changes) => changes,
        };
        // The model saw placeholders where secrets were; writing one back would lose the secret.
        if self.redactor.is_some()
            && let Some(file) = changes.files.iter().find(|f| {
                let placeholders = |t: &Option<String>| {
                    t.as_deref().map_or(0, |t| t.matches(PLACEHOLDER_PREFIX).count())
                };
                placeholders(&f.new) > placeholders(&f.old)
            })
        {
            return Err(format!(
                "Refused: this change writes a redaction placeholder ({PLACEHOLDER_PREFIX}…) into {}. \
                 Those lines hold secrets hidden from you; leave them unchanged.",
                file.path
            ));
        }
        let (added, removed) = changes.line_counts();
        if let Some(budget) = self.config.step_budget.filter(|&b| added + removed > b) {
            return Err(format!(
                "Refused: this edit changes {} lines ({added} added, {removed} removed) and the \
                 step budget is {budget}. Split it into smaller edits, one step at a time.",
                added + removed
            ));
        }
        events(&AgentEvent::ChangeProposed { call_id: call.id.clone(), changes: changes.clone() });
        let review = if needs_approval(self.config.approval, kind, None) {
            approver.review_changes(call, &changes)
        } else {
            Review::accept_all(&changes)
        };
        let (selection, feedback) = (review.selection, review.feedback);
        let edited = review.edited.is_some();
        let changes = review.edited.unwrap_or(changes);
        if !selection.accepts_anything() {
            events(&AgentEvent::Rejected { call_id: call.id.clone(), feedback: feedback.clone() });
            return Err(with_feedback(
                "The user rejected this change; nothing was written.",
                feedback,
            ));
        }
        let files = apply_changes(&self.ws, &changes, &selection).map_err(|e| e.to_string())?;
        events(&AgentEvent::ChangeApplied { call_id: call.id.clone(), files: files.clone() });
        let hashes = changes
            .files
            .iter()
            .zip(&selection.0)
            .filter(|(file, accepted)| file.is_applied(accepted))
            .flat_map(|(file, accepted)| record::file_hashes(file, accepted))
            .collect();
        let summary = if edited {
            format!(
                "The user edited the change before applying it. Written: {}. Read the files again before editing them further.",
                files.join(", ")
            )
        } else if selection.accepts_everything() {
            format!("Applied. Changed: {}.", files.join(", "))
        } else {
            format!(
                "The user accepted only part of this change. Written: {}. The rejected hunks were not applied; read the files again before editing them.",
                files.join(", ")
            )
        };
        let text = with_feedback(&summary, feedback);
        Ok((Observation { text, ..Observation::default() }, hashes))
    }

    /// Remembers what a call did: a failure or a read, not to be repeated; files read; a change
    /// written (after which calls made before may give something else).
    fn note_outcome(
        &mut self,
        call: &ToolCall,
        obs: &Observation,
        files: &[FileHashes],
        is_error: bool,
    ) {
        if is_error {
            self.failures.record(call, &obs.text);
        } else if self.tools.get(&call.name).is_some_and(|t| t.kind() == ToolKind::Read) {
            self.failures.record_read(call);
        }
        if !files.is_empty() {
            self.failures.clear();
        }
        if call.name == "read_file" {
            self.read.extend(obs.quotes.iter().map(|q| q.path.clone()));
        }
    }

    /// Whether the model gets the compact prompt and tools: a small model (one given the answer
    /// tool) with a small context.
    fn compact(&self) -> bool {
        self.config.answer_tool && self.provider.info().context_length <= ground::COMPACT_CONTEXT
    }

    /// Compacts the history when the next prompt would take more than 80% of the input budget:
    /// older turns are summarised by the model, keeping the first message and the recent tail.
    fn fit_context(&mut self, events: &mut dyn FnMut(&AgentEvent)) -> Result<(), AgentError> {
        let info = self.provider.info();
        let reserve = u64::from(self.config.max_tokens.unwrap_or(0))
            .max(info.context_length / 4)
            .min(info.context_length / 2);
        let limit = info.context_length - reserve;
        // The tools' schemas are part of every prompt, whichever way a provider sends them.
        let fixed = format!(
            "{}{}",
            self.system,
            serde_json::to_string(&self.request(Vec::new()).tools).unwrap_or_default()
        );
        let before = compact::count(self.provider.as_ref(), &fixed, &self.history);
        if before * 10 <= limit * 8 {
            return Ok(());
        }
        let Some(cut) = compact::split_point(self.provider.as_ref(), &self.history, limit * 4 / 10)
        else {
            return if before <= limit {
                Ok(())
            } else {
                Err(AgentError::ContextFull { tokens: before, limit })
            };
        };
        let transcript = compact::transcript(&self.history[1..cut], (limit as usize * 4) * 6 / 10);
        let summary_request = Request {
            messages: vec![Message::system(compact::SUMMARY_PROMPT), Message::user(transcript)],
            tools: Vec::new(),
            max_tokens: Some((limit / 8).clamp(64, 1024) as u32),
            temperature: self.config.temperature,
            stop: Vec::new(),
            tool_choice: ToolChoice::Auto,
        };
        let quoted = self.quotes_in(&self.history[1..cut]);
        let summary = self.call_model(&summary_request, quoted, &mut |_| {})?;
        self.usage += summary.usage;
        let first = format!(
            "{}\n\n[Summary of the work so far]\n{}",
            self.history[0].text(),
            summary.content.trim()
        );
        let mut compacted = vec![Message::user(first)];
        compacted.extend(self.history.drain(cut..));
        self.history = compacted;
        if let Some(log) = &mut self.log {
            log.replace(&self.history)?;
        }
        let after = compact::count(self.provider.as_ref(), &fixed, &self.history);
        events(&AgentEvent::Compacted { tokens_before: before, tokens_after: after });
        if after > limit {
            return Err(AgentError::ContextFull { tokens: after, limit });
        }
        Ok(())
    }
}

const ANSWER_TOOL: &str = "answer";

fn answer_spec() -> ToolSpec {
    ToolSpec {
        name: ANSWER_TOOL.into(),
        description: "Finish: give the user your final answer. Call it when the task is done or cannot be done.".into(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": { "text": { "type": "string", "description": "The answer." } },
            "required": ["text"]
        }),
    }
}

/// The endpoint a provider talks to, or `in-process:<provider>`.
fn endpoint_name(provider: &dyn Provider) -> String {
    let info = provider.info();
    info.endpoint.unwrap_or_else(|| format!("in-process:{}", info.provider.name()))
}

fn with_feedback(text: &str, feedback: Option<String>) -> String {
    match feedback {
        Some(f) if !f.trim().is_empty() => format!("{text}\nThe user says: {}", f.trim()),
        _ => text.to_string(),
    }
}
