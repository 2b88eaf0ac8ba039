//! What leaves and what is kept: what is sent to a remote model, with its secrets replaced
//! and each replacement recorded; every model call and tool action, written to the ledger, or
//! to the session log while the ledger cannot be written.

use std::time::Instant;

use tiller_ledger::{FileHashes, Redaction, Sent, ToolAction};
use tiller_model::{Completion, Provider, Request};
use tiller_tools::{Observation, Quote};
use tiller_types::{AgentEvent, Message, StreamEvent, ToolCall};

use super::Agent;
use crate::AgentError;
use crate::record;

impl Agent {
    /// Before the first request to a remote model: redacts the system prompt and any history
    /// carried over from an earlier session.
    pub(super) fn prepare(&mut self) {
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
    pub(super) fn outbound(&mut self, text: String, location: &str) -> String {
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
    pub(super) fn call_model(
        &mut self,
        request: &Request,
        quoted: Vec<Quote>,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<Completion, AgentError> {
        let started = Instant::now();
        let mut retries = 0;
        let outcome = self.provider.complete(request, &self.cancel, &mut |event| {
            retries += u32::from(matches!(event, StreamEvent::Retry { .. }));
            on_event(event);
        });
        if let Some(recorder) = &mut self.recorder {
            let info = self.provider.info();
            let remote = self.config.remote;
            let took = (started.elapsed(), retries);
            let request_sha256 = recorder.model_call(&info, remote, request, &outcome, took);
            if remote {
                let files = record::sent_files(self.system_quotes.iter().chain(&quoted));
                let endpoint = endpoint_name(self.provider.as_ref());
                recorder.push(Sent { endpoint, request_sha256, files });
            }
        }
        self.flush()?;
        Ok(outcome?)
    }

    /// The quotes of the tool results among `messages`.
    pub(super) fn quotes_in(&self, messages: &[Message]) -> Vec<Quote> {
        let ids = messages.iter().filter_map(|m| match m {
            Message::Tool { call_id, .. } => Some(call_id),
            _ => None,
        });
        ids.filter_map(|id| self.quotes.get(id)).flatten().cloned().collect()
    }

    /// Records a call with what it gave (the observation before redaction and truncation,
    /// whether it failed, how long it took) and the files it changed.
    pub(super) fn record_action(
        &mut self,
        call: &ToolCall,
        (obs, is_error, millis): (&Observation, bool, u128),
        files: Vec<FileHashes>,
    ) -> Result<(), AgentError> {
        let Some(recorder) = &mut self.recorder else {
            return Ok(());
        };
        let arguments = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|_| serde_json::Value::String(call.arguments.clone()));
        let served_by = self.tools.get(&call.name).and_then(|t| t.served_by());
        let mcp =
            served_by.map(|(server, tool)| record::mcp_call(server, tool, call, obs, is_error));
        recorder.push(ToolAction {
            tool: call.name.clone(),
            arguments,
            exit_code: obs.exit_code,
            duration_ms: millis as u64,
            files,
            mcp,
        });
        self.flush()
    }

    /// Writes the pending ledger rows. When the ledger cannot take them (locked by another
    /// process past the wait, disk full, read-only), the task goes on: from then on this run's
    /// rows are kept in the session log, and the next start writes them into the ledger.
    pub(super) fn flush(&mut self) -> Result<(), AgentError> {
        let Some(recorder) = &mut self.recorder else {
            return Ok(());
        };
        if !self.ledger_down {
            match recorder.flush() {
                Ok(()) => return Ok(()),
                // Without a session log there is nowhere else to keep them.
                Err(e) if self.log.is_none() => return Err(e.into()),
                Err(e) => {
                    self.warning = Some(format!(
                        "the ledger cannot be written ({e}); its rows are kept in the session log \
                         and written into the ledger at the next start"
                    ));
                    self.ledger_down = true;
                }
            }
        }
        let rows = recorder.take_pending();
        match &mut self.log {
            Some(log) if !rows.is_empty() => log.keep_ledger_rows(rows),
            _ => Ok(()),
        }
    }

    /// Emits the warning waiting, if any.
    pub(super) fn warn(&mut self, events: &mut dyn FnMut(&AgentEvent)) {
        if let Some(message) = self.warning.take() {
            events(&AgentEvent::Warning { message });
        }
    }
}

/// The endpoint a provider talks to, or `in-process:<provider>`.
fn endpoint_name(provider: &dyn Provider) -> String {
    let info = provider.info();
    info.endpoint.unwrap_or_else(|| format!("in-process:{}", info.provider.name()))
}
