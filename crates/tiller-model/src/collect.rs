//! Assembles streamed events into a [`Completion`], timing the call as it goes.

use std::time::Instant;

use tiller_types::{StopReason, StreamEvent, ToolCall, Usage};

use crate::{CallMeta, Completion};

/// Forwards events to a callback and remembers what they add up to.
pub struct Collector<'a> {
    on_event: &'a mut dyn FnMut(&StreamEvent),
    started: Instant,
    ttft_ms: Option<u64>,
    content: String,
    tool_calls: Vec<ToolCall>,
    usage: Usage,
    stop: Option<StopReason>,
}

impl<'a> Collector<'a> {
    pub fn new(on_event: &'a mut dyn FnMut(&StreamEvent)) -> Self {
        Collector {
            on_event,
            started: Instant::now(),
            ttft_ms: None,
            content: String::new(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            stop: None,
        }
    }

    pub fn emit(&mut self, event: StreamEvent) {
        match &event {
            StreamEvent::TextDelta { text } => self.content.push_str(text),
            StreamEvent::ToolCall { call } => self.tool_calls.push(call.clone()),
            StreamEvent::Usage { usage } => self.usage = *usage,
            StreamEvent::Done { stop } => self.stop = Some(*stop),
            StreamEvent::Retry { .. } => {}
        }
        if self.ttft_ms.is_none()
            && matches!(event, StreamEvent::TextDelta { .. } | StreamEvent::ToolCall { .. })
        {
            self.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
        }
        (self.on_event)(&event);
    }

    /// Whether a `Done` event was seen.
    pub fn is_done(&self) -> bool {
        self.stop.is_some()
    }

    /// Whether anything of the answer has been passed on (after which a retry would repeat it).
    pub fn has_output(&self) -> bool {
        !self.content.is_empty() || !self.tool_calls.is_empty()
    }

    pub fn finish(self, model: String, http_status: Option<u16>, retries: u32) -> Completion {
        let stop = self.stop.unwrap_or(if self.tool_calls.is_empty() {
            StopReason::EndTurn
        } else {
            StopReason::ToolCalls
        });
        Completion {
            content: self.content,
            tool_calls: self.tool_calls,
            usage: self.usage,
            stop,
            model,
            meta: CallMeta {
                http_status,
                retries,
                ttft_ms: self.ttft_ms,
                latency_ms: self.started.elapsed().as_millis() as u64,
            },
        }
    }
}
