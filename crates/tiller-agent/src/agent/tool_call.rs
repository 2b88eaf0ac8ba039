//! One tool call: running it, and for a change (an edit's, or what a command changed in the
//! tree) the review, the step budget and writing or undoing the result. A reply cut at the
//! output limit runs no calls.

use tiller_ledger::FileHashes;
use tiller_model::Completion;
use tiller_tools::{
    Observation, ToolKind, ToolOutput, Workspace, apply_changes, explain, keep_accepted,
};
use tiller_types::{AgentEvent, ChangeSet, Message, ToolCall};

use super::Agent;
use crate::record;
use crate::redact::PLACEHOLDER_PREFIX;
use crate::{AgentError, Approver, Review, Verdict, needs_approval};

impl Agent {
    /// A reply the endpoint cut at the output limit. Without tool calls it was to be the answer,
    /// and the user is told it is unfinished, unless every reply must be a call (the answer
    /// tool): then it was a call cut before it parsed, and the model is told. The tool calls of a
    /// cut reply are not run (the last one is incomplete): each result tells the model, which
    /// can then write in smaller pieces.
    pub(super) fn cut_reply(
        &mut self,
        mut completion: Completion,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<(), AgentError> {
        // Nothing has changed since the request: its limit is the one the reply met.
        let limit = self.request(Vec::new()).max_tokens.unwrap_or_default();
        let output = format!(
            "Not run: your reply was cut at the output limit of {limit} tokens before this call \
             was complete. Make smaller calls: split a long file into several writes or edits."
        );
        if completion.tool_calls.is_empty() {
            self.push(completion.message())?;
            if !self.config.answer_tool {
                return Err(AgentError::Cut { limit });
            }
            return self.push(Message::user(output));
        }
        // Arguments cut mid-way are no JSON, which some servers refuse to find in the history.
        for call in &mut completion.tool_calls {
            if serde_json::from_str::<serde_json::Value>(&call.arguments).is_err() {
                call.arguments = "{}".into();
            }
        }
        self.push(completion.message())?;
        for call in &completion.tool_calls {
            let (call_id, name) = (call.id.clone(), call.name.clone());
            events(&AgentEvent::ToolResult {
                call_id: call_id.clone(),
                name: name.clone(),
                output: output.clone(),
                is_error: true,
            });
            self.push(Message::Tool { call_id, name, content: output.clone(), is_error: true })?;
        }
        Ok(())
    }

    /// Runs one tool call; with the files it changed. `Err` holds an observation that reports a
    /// failure to the model.
    pub(super) fn call_tool(
        &mut self,
        call: &ToolCall,
        approver: &mut dyn Approver,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<(Observation, Vec<FileHashes>), String> {
        if self.config.answer_tool && call.name == super::ANSWER_TOOL {
            return Err(format!(
                "The answer was not understood: its arguments are not a JSON object with a \
                 `text` string ({}). Call answer again with {{\"text\": \"...\"}}.",
                tiller_types::text::clip_middle(&call.arguments, 200)
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
        // A served tool's `command` argument is no shell command: it is shown as its call.
        let command = match tool.served_by() {
            None => args.get("command").and_then(|c| c.as_str()).map(str::to_string),
            Some(_) => None,
        };
        let ask = kind == ToolKind::Exec
            && !self.approved_tools.contains(&call.name)
            && (tool.always_ask()
                || needs_approval(self.config.approval, kind, command.as_deref()));
        let shown = command.unwrap_or_else(|| format!("{} {}", call.name, call.arguments));
        if ask {
            match approver.approve_command(call, &shown) {
                Verdict::Deny { feedback } => {
                    let rejected = AgentEvent::Rejected {
                        call_id: call.id.clone(),
                        feedback: feedback.clone(),
                    };
                    events(&rejected);
                    return Err(with_feedback("The user declined to run this command.", feedback));
                }
                Verdict::ApproveTool if tool.served_by().is_some() => {
                    self.approved_tools.insert(call.name.clone());
                }
                Verdict::Approve | Verdict::ApproveTool => {}
            }
        }
        // A command writes the tree itself: what it changed is found by comparing the tree
        // before and after, and goes through the same review as an edit.
        let watch = kind == ToolKind::Exec;
        if watch {
            self.tree.before(&self.ws).map_err(|e| {
                format!("Not run: cannot note the working tree before the command ({e}).")
            })?;
        }
        let output = tool.run_call(&self.ws, &call.id, args).map_err(|e| explain(&self.ws, &e))?;
        let (changes, ran) = match output {
            ToolOutput::Text(obs) if !watch => return Ok((obs, Vec::new())),
            ToolOutput::Text(mut obs) => {
                let seen = self.tree.after(&self.ws).map_err(|e| {
                    format!("{}\n\nCannot tell what the command changed: {e}", obs.text)
                })?;
                if !seen.opaque.is_empty() {
                    obs.text.push_str(&format!(
                        "\n\nChanged, and kept as they are (binary or over {} KiB, so not \
                         reviewable): {}.",
                        tiller_tools::MAX_FILE_BYTES / 1024,
                        seen.opaque.join(", ")
                    ));
                }
                if seen.changes.files.is_empty() {
                    return Ok((obs, Vec::new()));
                }
                (seen.changes, Some(obs))
            }
            ToolOutput::Change(changes) => (changes, None),
        };
        self.review(call, changes, ran, approver, events)
    }

    /// Has `changes` reviewed and brings the tree to the accepted part. For an edit (`ran` is
    /// `None`) that means writing it; for a command, which already wrote the whole change and
    /// printed `ran`, it means restoring what was rejected.
    fn review(
        &mut self,
        call: &ToolCall,
        changes: ChangeSet,
        ran: Option<Observation>,
        approver: &mut dyn Approver,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<(Observation, Vec<FileHashes>), String> {
        let (output, exit_code) = match &ran {
            Some(obs) => (format!("{}\n\n", obs.text), obs.exit_code),
            None => (String::new(), None),
        };
        // A command's refused change is undone; an edit's was never written.
        let refuse = |ws: &Workspace, changes: &ChangeSet, why: String| {
            if ran.is_none() {
                return why;
            }
            match keep_accepted(ws, changes, &changes.reject_all()) {
                Ok(_) => format!("{output}{why} The command's changes to the files were undone."),
                Err(e) => format!("{output}{why} Undoing the command's changes failed: {e}"),
            }
        };
        // Where the sandbox could not keep a command out of `.tiller/` (tier B, unconfined).
        let unwritable: Vec<String> = (changes.files.iter())
            .filter_map(|f| self.ws.resolve_write(&f.path).err().map(|e| e.to_string()))
            .collect();
        if !unwritable.is_empty() {
            return Err(refuse(&self.ws, &changes, format!("Refused: {}.", unwritable.join("; "))));
        }
        // The model saw placeholders where secrets were; writing one back would lose the secret.
        if self.redactor.is_some()
            && let Some(file) = changes.files.iter().find(|f| {
                let placeholders = |t: &Option<String>| {
                    t.as_deref().map_or(0, |t| t.matches(PLACEHOLDER_PREFIX).count())
                };
                placeholders(&f.new) > placeholders(&f.old)
            })
        {
            return Err(refuse(
                &self.ws,
                &changes,
                format!(
                    "Refused: this change writes a redaction placeholder ({PLACEHOLDER_PREFIX}…) into {}. \
                 Those lines hold secrets hidden from you; leave them unchanged.",
                    file.path
                ),
            ));
        }
        let (added, removed) = changes.line_counts();
        if let Some(budget) = self.config.step_budget.filter(|&b| added + removed > b) {
            return Err(refuse(
                &self.ws,
                &changes,
                format!(
                    "Refused: this edit changes {} lines ({added} added, {removed} removed) and the \
                 step budget is {budget}. Split it into smaller edits, one step at a time.",
                    added + removed
                ),
            ));
        }
        events(&AgentEvent::ChangeProposed { call_id: call.id.clone(), changes: changes.clone() });
        let review = if needs_approval(self.config.approval, ToolKind::Edit, None) {
            approver.review_changes(call, &changes)
        } else {
            Review::accept_all(&changes)
        };
        let (selection, feedback) = (review.selection, review.feedback);
        let edited = review.edited.is_some();
        let changes = match review.edited {
            // A reviewer's edit to a command's change is applied over the tree as it was before.
            Some(mine) if ran.is_some() => {
                keep_accepted(&self.ws, &changes, &changes.reject_all())
                    .map_err(|e| e.to_string())?;
                mine
            }
            Some(mine) => mine,
            None => changes,
        };
        let written_before = edited || ran.is_none();
        if !selection.accepts_anything() {
            events(&AgentEvent::Rejected { call_id: call.id.clone(), feedback: feedback.clone() });
            let text = match ran {
                None => "The user rejected this change; nothing was written.".to_string(),
                Some(_) => refuse(
                    &self.ws,
                    &changes,
                    "The user rejected what this command changed in the files.".into(),
                ),
            };
            return Err(with_feedback(&text, feedback));
        }
        let files = if written_before {
            apply_changes(&self.ws, &changes, &selection)
        } else {
            keep_accepted(&self.ws, &changes, &selection)
        }
        .map_err(|e| format!("{output}{e}"))?;
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
            match ran {
                None => format!("Applied. Changed: {}.", files.join(", ")),
                Some(_) => format!("The user accepted the changes to: {}.", files.join(", ")),
            }
        } else {
            format!(
                "The user accepted only part of this change. Written: {}. The rejected hunks were not applied; read the files again before editing them.",
                files.join(", ")
            )
        };
        let text = format!("{output}{}", with_feedback(&summary, feedback));
        Ok((Observation { text, exit_code, ..Observation::default() }, hashes))
    }
}

pub(super) fn with_feedback(text: &str, feedback: Option<String>) -> String {
    match feedback {
        Some(f) if !f.trim().is_empty() => format!("{text}\nThe user says: {}", f.trim()),
        _ => text.to_string(),
    }
}
