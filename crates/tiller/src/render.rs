//! Progress of a headless run: readable lines on stderr, or JSON lines on stdout (`--json`).

use std::io::{IsTerminal, Write};

use tiller_types::{AgentEvent, Usage};

/// Longest piece of a tool call or result shown on one progress line.
const SHOWN: usize = 160;

pub struct Progress {
    json: bool,
    /// Text of the current model turn, shown once we know it is not the final answer.
    pending_text: String,
}

impl Progress {
    pub fn new(json: bool) -> Self {
        Progress { json, pending_text: String::new() }
    }

    pub fn event(&mut self, event: &AgentEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                let mut out = std::io::stdout().lock();
                // A closed stdout (e.g. `| head`) is not worth failing the task over.
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            }
            return;
        }
        let line = match event {
            AgentEvent::SessionStarted { session_id, workspace, provider, model, sandbox } => {
                let mut line =
                    format!("tiller · session {session_id} · {provider}/{model} · {workspace}");
                for note in sandbox {
                    line.push_str(&format!("\nsandbox: {note}"));
                }
                line
            }
            AgentEvent::TurnStarted { .. }
            | AgentEvent::Usage { .. }
            | AgentEvent::Answer { .. } => {
                self.pending_text.clear();
                return;
            }
            AgentEvent::TextDelta { text } => {
                self.pending_text.push_str(text);
                return;
            }
            AgentEvent::ToolCall { call } => {
                let said = std::mem::take(&mut self.pending_text);
                let said = said.trim();
                let prefix = if said.is_empty() { String::new() } else { format!("{said}\n") };
                format!("{prefix}→ {} {}", call.name, clip(&call.arguments))
            }
            AgentEvent::ToolResult { name, output, is_error, .. } => {
                let mark = if *is_error { "✗" } else { "✓" };
                let lines = output.lines().count();
                let first = output.lines().next().unwrap_or("");
                format!("  {mark} {name}: {} ({lines} lines)", clip(first))
            }
            AgentEvent::ChangeProposed { changes, .. } => {
                let (added, removed) = changes.line_counts();
                let files: Vec<&str> = changes.files.iter().map(|f| f.path.as_str()).collect();
                format!("  proposed: {} (+{added} -{removed})", files.join(", "))
            }
            AgentEvent::ChangeApplied { files, .. } => format!("  wrote: {}", files.join(", ")),
            AgentEvent::Rejected { feedback, .. } => {
                format!(
                    "  rejected{}",
                    feedback.as_ref().map(|f| format!(": {f}")).unwrap_or_default()
                )
            }
            AgentEvent::Retry { attempt, delay_ms, reason } => {
                format!("  retry {attempt} in {:.1} s: {reason}", *delay_ms as f64 / 1000.0)
            }
            AgentEvent::Compacted { tokens_before, tokens_after } => {
                format!("  compacted the conversation: {tokens_before} → {tokens_after} tokens")
            }
            AgentEvent::Candidates { passed, total, .. } => {
                format!("  {passed} of {total} candidates pass")
            }
            AgentEvent::Error { .. } => return,
            AgentEvent::Warning { message } => format!("warning: {message}"),
        };
        // What the model says and what tools print must not drive the terminal.
        if std::io::stderr().is_terminal() {
            eprintln!("{}", tiller_types::text::printable(&line));
        } else {
            eprintln!("{line}");
        }
    }

    /// The closing line: tokens spent.
    pub fn finish(&mut self, usage: Usage) {
        if !self.json {
            eprintln!(
                "tokens: {} prompt ({} cached), {} completion",
                usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens
            );
        }
    }
}

fn clip(text: &str) -> String {
    tiller_types::text::clip(&text.replace('\n', "⏎"), SHOWN).into_owned()
}
