//! The loop: model turn, tool calls, observations, until the model answers.

use tiller_model::{Cancel, ModelError, Provider, Request, ToolChoice};
use tiller_tools::{Outcome, Registry, ToolKind, Workspace, apply_changes};
use tiller_types::{AgentEvent, ApprovalPolicy, Message, StreamEvent, ToolCall, ToolSpec, Usage};

use crate::compact::{self, truncate_middle};
use crate::{AgentError, Approver, SessionLog, Verdict, needs_approval, system_prompt};

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
}

impl Agent {
    pub fn new(
        provider: Box<dyn Provider>,
        tools: Registry,
        ws: Workspace,
        config: AgentConfig,
    ) -> Self {
        let system = system_prompt(ws.root());
        Agent {
            provider,
            tools,
            ws,
            config,
            system,
            history: Vec::new(),
            log: None,
            usage: Usage::default(),
            cancel: Cancel::default(),
        }
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
        self.cancel.reset();
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
                let (output, is_error) = match self.call_tool(call, approver, events) {
                    Ok(text) => (text, false),
                    Err(text) => (text, true),
                };
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
        }
        Err(AgentError::StepLimit(self.config.max_steps))
    }

    /// The text of an `answer` tool call, when the answer tool is on and the model called it.
    fn answer_call(&self, calls: &[ToolCall]) -> Option<String> {
        let call = calls.iter().find(|c| self.config.answer_tool && c.name == ANSWER_TOOL)?;
        let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap_or_default();
        Some(args["text"].as_str().map_or_else(|| call.arguments.clone(), str::to_string))
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
            let result = self.provider.complete(&request, &self.cancel, &mut |ev| match ev {
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
        Request {
            messages,
            tools: self.tools.specs(),
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

    /// Runs one tool call. `Err` holds an observation that reports a failure to the model.
    fn call_tool(
        &mut self,
        call: &ToolCall,
        approver: &mut dyn Approver,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<String, String> {
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
            && needs_approval(self.config.approval, kind, command.as_deref());
        if ask
            && let Verdict::Deny { feedback } =
                approver.approve_command(call, command.as_deref().unwrap_or_default())
        {
            events(&AgentEvent::Rejected { call_id: call.id.clone(), feedback: feedback.clone() });
            return Err(with_feedback("The user declined to run this command.", feedback));
        }
        let changes = match tool.run(&self.ws, args).map_err(|e| e.to_string())? {
            Outcome::Text(text) => return Ok(text),
            Outcome::Change(changes) => changes,
        };
        events(&AgentEvent::ChangeProposed { call_id: call.id.clone(), changes: changes.clone() });
        let (selection, feedback) = if needs_approval(self.config.approval, kind, None) {
            let review = approver.review_changes(call, &changes);
            (review.selection, review.feedback)
        } else {
            (changes.accept_all(), None)
        };
        if !selection.accepts_anything() {
            events(&AgentEvent::Rejected { call_id: call.id.clone(), feedback: feedback.clone() });
            return Err(with_feedback(
                "The user rejected this change; nothing was written.",
                feedback,
            ));
        }
        let files = apply_changes(&self.ws, &changes, &selection).map_err(|e| e.to_string())?;
        events(&AgentEvent::ChangeApplied { call_id: call.id.clone(), files: files.clone() });
        let summary = if selection.accepts_everything() {
            format!("Applied. Changed: {}.", files.join(", "))
        } else {
            format!(
                "The user accepted only part of this change. Written: {}. The rejected hunks were not applied; read the files again before editing them.",
                files.join(", ")
            )
        };
        Ok(with_feedback(&summary, feedback))
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
            serde_json::to_string(&self.tools.specs()).unwrap_or_default()
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
        let summary = self.provider.complete(&summary_request, &self.cancel, &mut |_| {})?;
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

fn with_feedback(text: &str, feedback: Option<String>) -> String {
    match feedback {
        Some(f) if !f.trim().is_empty() => format!("{text}\nThe user says: {}", f.trim()),
        _ => text.to_string(),
    }
}

/// Adds a result to every tool call that has none.
fn close_dangling_calls(history: Vec<Message>) -> Vec<Message> {
    let answered: std::collections::HashSet<String> = history
        .iter()
        .filter_map(|m| match m {
            Message::Tool { call_id, .. } => Some(call_id.clone()),
            _ => None,
        })
        .collect();
    let mut out = Vec::with_capacity(history.len());
    for message in history {
        let missing: Vec<ToolCall> = match &message {
            Message::Assistant { tool_calls, .. } => {
                tool_calls.iter().filter(|c| !answered.contains(&c.id)).cloned().collect()
            }
            _ => Vec::new(),
        };
        out.push(message);
        out.extend(missing.into_iter().map(|c| Message::Tool {
            call_id: c.id,
            name: c.name,
            content: "The session ended before this call finished; its effect is unknown.".into(),
            is_error: true,
        }));
    }
    out
}
