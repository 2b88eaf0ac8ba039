//! Several replies to one request, decoded together: the prompt is decoded once, in sequence 0
//! of the cache, and shared with the other sequences; then each step decodes the next token of
//! every unfinished reply in one batch, each reply sampled by its own sampler (with its own seed
//! and grammar state). On a CPU a batch of a few tokens costs little more than one, so N replies
//! cost far less than N calls.

use llama_cpp_2::llama_batch::LlamaBatch;
use tiller_model::{Cancel, Collector, Completion, ModelError, Request};
use tiller_types::{StopReason, StreamEvent, Usage};

use super::{DEFAULT_MAX_TOKENS, Llama, Sampler, engine};
use crate::stream::{Output, Step};

/// Most replies decoded together; the context is made with this many sequences.
pub(crate) const MAX_SEQUENCES: usize = 16;

/// One reply as it is decoded.
struct Reply {
    sampler: Sampler,
    text: Output,
    /// The text read so far, outside a tool call.
    shown: String,
    generated: usize,
    stop: Option<StopReason>,
    /// Where its logits are in the batch decoded last (-1: the batch's last token).
    logits: i32,
}

impl Llama {
    /// `n` (at most [`MAX_SEQUENCES`]) replies to `req`, decoded together; reply `i` is sampled
    /// with the next seed plus `i`, so the first is the reply [`complete`](tiller_model::Provider::complete)
    /// would give. The replies share the context left after the prompt.
    pub(super) fn complete_together(
        &mut self,
        req: &Request,
        n: usize,
        cancel: &Cancel,
    ) -> Result<Vec<Completion>, ModelError> {
        let (tokens, reader) = self.prompt_for(req)?;
        let limit = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS) as usize;
        let reused = self.prefill(&tokens, n * limit, cancel)?;
        let mut replies = Vec::with_capacity(n);
        let first = self.next_seeds(n);
        for i in 0..n {
            let seed = first.wrapping_add(i as u32);
            let (sampler, text) = (self.sampler(req, seed)?, reader());
            replies.push(Reply {
                sampler,
                text,
                shown: String::new(),
                generated: 0,
                stop: None,
                logits: -1,
            });
        }
        let decoded = self.decode_together(&mut replies, tokens.len(), limit, cancel);
        // Only the prompt stays cached, in sequence 0, as `cached` says.
        for seq in 0..n as u32 {
            let from = (seq == 0).then_some(tokens.len() as u32);
            if self.ctx.clear_kv_cache_seq(Some(seq), from, None).is_err() {
                self.forget();
            }
        }
        decoded?;
        let completions = replies.into_iter().enumerate().map(|(i, reply)| {
            let mut ignore = |_: &StreamEvent| {};
            let mut out = Collector::new(&mut ignore);
            if !reply.shown.is_empty() {
                out.emit(StreamEvent::TextDelta { text: reply.shown });
            }
            let usage = Usage {
                prompt_tokens: tokens.len() as u64,
                // The other replies reuse the whole prompt.
                cached_tokens: if i == 0 { reused } else { tokens.len() } as u64,
                completion_tokens: reply.generated as u64,
            };
            let stop = reply.stop.unwrap_or(StopReason::MaxTokens);
            self.finish(req, reply.text, stop, usage, out)
        });
        Ok(completions.collect())
    }

    /// Decodes `replies` from the prompt of `prompt` tokens in sequence 0 until each stops or
    /// the cache is full.
    fn decode_together(
        &mut self,
        replies: &mut [Reply],
        prompt: usize,
        limit: usize,
        cancel: &Cancel,
    ) -> Result<(), ModelError> {
        for seq in 1..replies.len() {
            self.ctx.copy_kv_cache_seq(0, seq as i32, None, None).map_err(engine)?;
        }
        let vocab = self.model.vocab();
        let mut batch = LlamaBatch::new(replies.len(), 1);
        let mut free = self.n_ctx.saturating_sub(prompt);
        for pos in prompt.. {
            batch.clear();
            for (seq, reply) in replies.iter_mut().enumerate().filter(|(_, r)| r.stop.is_none()) {
                if cancel.is_cancelled() {
                    reply.stop = Some(StopReason::Cancelled);
                    continue;
                }
                if reply.generated >= limit || free == 0 {
                    reply.stop = Some(StopReason::MaxTokens);
                    continue;
                }
                let token = self.next_token(&mut reply.sampler, reply.logits)?;
                if vocab.is_eog(token) {
                    reply.stop = Some(StopReason::EndTurn);
                    continue;
                }
                reply.generated += 1;
                let (shown, done) = match reply.text.push(&vocab.token_to_piece(token, false, None))
                {
                    Step::Text(t) => (t, None),
                    Step::Stop(t) => (t, Some(StopReason::StopSequence)),
                    Step::CallEnd(t) => (t, Some(StopReason::ToolCalls)),
                };
                reply.shown.push_str(&shown);
                if done.is_some() {
                    reply.stop = done;
                    continue;
                }
                free -= 1;
                reply.logits = batch.n_tokens();
                batch.add(token, pos as i32, &[seq as i32], true).map_err(engine)?;
            }
            if batch.n_tokens() == 0 {
                break;
            }
            self.ctx.decode(&mut batch).map_err(engine)?;
        }
        Ok(())
    }
}
