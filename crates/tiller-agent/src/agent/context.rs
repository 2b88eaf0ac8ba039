//! Keeping the conversation within the model's context: compaction when the next prompt would
//! not fit, and on request (`/compact`).

use tiller_model::Request;
use tiller_types::{AgentEvent, Message};

use super::Agent;
use crate::AgentError;
use crate::compact;
use tiller_types::text::clip_middle;

impl Agent {
    /// Compacts the history when the next prompt would take more than 80% of the input budget:
    /// older turns (and any earlier summary) are summarised by the model into one summary after
    /// the task, keeping the recent tail; the conversation comes out smaller every time.
    pub(super) fn fit_context(
        &mut self,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<(), AgentError> {
        self.fit_context_or_compact(false, events)
    }

    /// The output limit of each reply, which the context keeps free.
    pub(super) fn max_tokens(&self) -> u32 {
        let info = self.provider.info();
        self.config.max_tokens.unwrap_or_else(|| tiller_model::default_max_tokens(&info))
    }

    /// The output limit of the next reply. Where every call offered is small but a `replace`
    /// held to the lines of `bounded_by` (compact mode on a constrained engine), no reply needs
    /// more than a rewrite of the largest of those files, half as long again, and 256 tokens
    /// for the call around it; so a small model that rambles on inside a string is cut in
    /// seconds rather than at [`Agent::max_tokens`].
    pub(super) fn reply_limit(&self, bounded_by: Option<&[String]>) -> u32 {
        let Some(files) = bounded_by else {
            return self.max_tokens();
        };
        let count = |path: &String| {
            let text = self.ws.read_text(path).ok().flatten().unwrap_or_default();
            self.provider.count_tokens(&text)
        };
        let largest = files.iter().map(count).max().unwrap_or(0);
        let need = largest + largest / 2 + 256;
        self.max_tokens().min(u32::try_from(need).unwrap_or(u32::MAX))
    }

    /// Summarises all but the last turn now, whatever the context holds (`/compact`). Nothing
    /// happens to a conversation too short to split.
    pub fn compact_now(&mut self, events: &mut dyn FnMut(&AgentEvent)) -> Result<(), AgentError> {
        self.fit_context_or_compact(true, events)
    }

    fn fit_context_or_compact(
        &mut self,
        force: bool,
        events: &mut dyn FnMut(&AgentEvent),
    ) -> Result<(), AgentError> {
        let info = self.provider.info();
        let reserve =
            u64::from(self.max_tokens()).max(info.context_length / 4).min(info.context_length / 2);
        let limit = info.context_length - reserve;
        // The tools' schemas are part of every prompt, whichever way a provider sends them; on
        // the constrained engine the prompt shows them held to the workspace.
        let fixed = format!(
            "{}{}",
            self.system,
            serde_json::to_string(self.request(Vec::new()).callable()).unwrap_or_default()
        );
        let before = compact::count(self.provider.as_ref(), &fixed, &self.history);
        if before * 10 <= limit * 8 && !force {
            return Ok(());
        }
        // Aim at 60% of the budget for the fixed part, the summary and the recent turns kept,
        // so that the next compaction is turns away; when that still does not fit, keep only
        // the last turn.
        let fixed_tokens = compact::count(self.provider.as_ref(), &fixed, &[]);
        let tail = (limit * 6 / 10).saturating_sub(fixed_tokens + summary_budget(limit));
        let mut after = before;
        // Asked for, it keeps only the last turn: a conversation that fits keeps everything else.
        let budgets: &[u64] = if force { &[0] } else { &[tail, 0] };
        for &tail_budget in budgets {
            let Some(cut) =
                compact::split_point(self.provider.as_ref(), &self.history, tail_budget)
            else {
                break;
            };
            self.compact(cut, limit)?;
            after = compact::count(self.provider.as_ref(), &fixed, &self.history);
            events(&AgentEvent::Compacted { tokens_before: before, tokens_after: after });
            // What was read may be summarised away now: reading it again is no repeat.
            self.failures.clear();
            if after <= limit || force {
                return Ok(());
            }
        }
        if after <= limit { Ok(()) } else { Err(AgentError::ContextFull { tokens: after, limit }) }
    }

    /// Replaces the messages before `cut` by the task and one summary of them. The summary
    /// covers the previous one (part of the first message), so summaries never pile up, and it
    /// is cut to its token budget should the model overrun it.
    fn compact(&mut self, cut: usize, limit: u64) -> Result<(), AgentError> {
        let max_tokens = summary_budget(limit);
        let transcript = compact::transcript(&self.history[..cut], (limit as usize * 4) * 6 / 10);
        let summary_request = Request {
            messages: vec![Message::system(compact::SUMMARY_PROMPT), Message::user(transcript)],
            tools: Vec::new(),
            max_tokens: Some(max_tokens as u32),
            temperature: self.config.temperature,
            ..Request::default()
        };
        let quoted = self.quotes_in(&self.history[1..cut]);
        let summary = self.call_model(&summary_request, quoted, &mut |_| {})?;
        self.usage += summary.usage;
        let task = self.history[0].text();
        let task = task.split(compact::SUMMARY_HEADING).next().unwrap_or(task).trim_end();
        let summary = clip_middle(summary.content.trim(), max_tokens as usize * 4);
        let first = format!("{task}{}{summary}", compact::SUMMARY_HEADING);
        let mut compacted = vec![Message::user(first)];
        compacted.extend(self.history.drain(cut..));
        self.history = compacted;
        if let Some(log) = &mut self.log {
            log.replace(&self.history)?;
        }
        Ok(())
    }
}

/// Tokens a summary may take when `limit` tokens are available for the prompt.
fn summary_budget(limit: u64) -> u64 {
    (limit / 8).clamp(64, 1024)
}
