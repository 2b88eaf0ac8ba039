//! Departures: the ways the model would most likely write one line of a given reply otherwise.
//! The reply is decoded once after the prompt, keeping the logits of every position; each token
//! the model ranks high in place of the one there begins a departure, which shares the cache up
//! to that point in a sequence of its own and takes the model's most likely tokens to the end of
//! the line; a swap, that token alone in place of the one there, follows it. Departures are
//! decoded together, a batch of sequences at a time, most likely first. A later call for more
//! departures from the same reply takes the lines decoded before from a memo.

use std::collections::{HashMap, HashSet};

use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;
use tiller_model::{CallMeta, Cancel, Completion, ModelError, Request};
use tiller_types::{StopReason, Usage};

use super::batch::MAX_SEQUENCES;
use super::{Llama, engine};
use crate::LlamaError;

/// Tokens other than the one there taken as departures at each position, at most.
const PER_POSITION: usize = 24;

/// Tokens a departure may take to reach the end of its line.
const LINE_TOKENS: usize = 48;

/// Replies whose departures' lines [`Memo`] keeps, at most: the rewrites of a few regions.
const MEMO_REPLIES: usize = 4;

/// A departure from the given text: at its token `at`, `token` in place of the one there.
#[derive(Clone, Copy)]
struct Fork {
    at: usize,
    token: LlamaToken,
    logprob: f32,
}

/// The line decoded for each fork of one reply, by token index and token.
type Lines = HashMap<(usize, LlamaToken), Vec<u8>>;

/// The lines decoded for departures from the last few replies, by the tokens of prompt and
/// reply.
#[derive(Default)]
pub(super) struct Memo(Vec<(Vec<LlamaToken>, Lines)>);

impl Memo {
    /// The lines known for `tokens`, taken out (put back with [`Memo::keep`]).
    fn take(&mut self, tokens: &[LlamaToken]) -> Lines {
        match self.0.iter().position(|(t, _)| t == tokens) {
            Some(i) => self.0.remove(i).1,
            None => Lines::new(),
        }
    }

    /// Keeps `lines` for `tokens`, the newest; the oldest beyond [`MEMO_REPLIES`] go.
    fn keep(&mut self, tokens: Vec<LlamaToken>, lines: Lines) {
        self.0.push((tokens, lines));
        let extra = self.0.len().saturating_sub(MEMO_REPLIES);
        self.0.drain(..extra);
    }
}

impl Llama {
    /// The engine's [`Provider::departures`](tiller_model::Provider::departures).
    pub(super) fn depart(
        &mut self,
        req: &Request,
        text: &str,
        held: &[usize],
        n: usize,
        cancel: &Cancel,
    ) -> Result<Vec<Completion>, ModelError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        // The reply given is tokenized with the prompt, as the model would have written it: its
        // first token may join the end of the reply's start.
        let start = req.reply_start.clone().unwrap_or_default();
        let (prompt, _) = self.prompt_for(req)?;
        let whole = Request { reply_start: Some(format!("{start}{text}")), ..req.clone() };
        let (all, _) = self.prompt_for(&whole)?;
        if all.len() + LINE_TOKENS >= self.n_ctx {
            let prompt = all.len() + LINE_TOKENS;
            return Err(LlamaError::PromptTooLong { prompt, context: self.n_ctx }.into());
        }
        let (prompt, given) = all.split_at(super::shared(&prompt, &all).clamp(1, all.len()));
        let pieces: Vec<Vec<u8>> = given.iter().map(|&t| self.piece(t)).collect();
        let head = pieces.concat();
        // What of the reply's start the given tokens hold again.
        let Some(head) = head.strip_suffix(text.as_bytes()) else {
            return Ok(Vec::new());
        };
        let Some(start) = start.as_bytes().strip_suffix(head) else {
            return Ok(Vec::new());
        };
        if given.is_empty() {
            return Ok(Vec::new());
        }
        let room = given.len() + (MAX_SEQUENCES - 1) * LINE_TOKENS;
        let reused = self.prefill(prompt, room, cancel)?;
        let mut forks = self.forks(-1, given[0], 0);
        let mut batch = LlamaBatch::new(self.n_batch, 1);
        for (c, chunk) in given.chunks(self.n_batch).enumerate() {
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            let first = c * self.n_batch;
            batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                batch.add(t, (prompt.len() + first + i) as i32, &[0], true).map_err(engine)?;
            }
            self.decode(&mut batch, chunk)?;
            for (i, at) in (first + 1..given.len()).take(chunk.len()).enumerate() {
                forks.extend(self.forks(i as i32, given[at], at));
            }
        }
        let lines = lines_of(&pieces, head.len());
        forks.retain(|f| !held.contains(&lines[f.at]));
        forks.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));

        let mut seen = HashSet::from([pieces.concat()]);
        let mut found = Vec::new();
        let mut known = self.departed.take(&all);
        for group in forks.chunks(MAX_SEQUENCES - 1) {
            if found.len() >= n {
                break;
            }
            let fresh: Vec<Fork> =
                group.iter().filter(|f| !known.contains_key(&(f.at, f.token))).copied().collect();
            let mut generated = HashMap::new();
            if !fresh.is_empty() {
                let lines = self.lines(&fresh, prompt.len(), cancel)?;
                for (fork, (line, tokens)) in fresh.iter().zip(lines) {
                    known.insert((fork.at, fork.token), line);
                    generated.insert((fork.at, fork.token), tokens);
                }
            }
            for fork in group {
                let line = &known[&(fork.at, fork.token)];
                let tokens = generated.get(&(fork.at, fork.token)).copied().unwrap_or(0);
                let swapped = swap(&pieces, fork.at, &self.piece(fork.token));
                let departed = [Some((splice(&pieces, fork.at, line), tokens)), swapped];
                for (departed, tokens) in departed.into_iter().flatten() {
                    if found.len() < n && seen.insert(departed.clone()) {
                        found.push((departed, tokens));
                    }
                }
            }
        }
        self.departed.keep(all.clone(), known);
        let completions = found.into_iter().enumerate().map(|(i, (departed, generated))| {
            let usage = Usage {
                prompt_tokens: all.len() as u64,
                // The others reuse all that the first decoded.
                cached_tokens: if i == 0 { reused } else { all.len() } as u64,
                completion_tokens: generated as u64,
            };
            Completion {
                content: String::from_utf8_lossy(&[start, &departed].concat()).into_owned(),
                tool_calls: Vec::new(),
                usage,
                stop: StopReason::EndTurn,
                model: self.name.clone(),
                meta: CallMeta::default(),
            }
        });
        Ok(completions.collect())
    }

    /// The tokens ranked highest after the token at `index` of the last decoded batch, other
    /// than `actual`, the given text's token `at` there.
    fn forks(&self, index: i32, actual: LlamaToken, at: usize) -> Vec<Fork> {
        let logits = self.ctx.get_logits_ith(index);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let norm = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
        let mut top: Vec<(f32, usize)> = Vec::with_capacity(PER_POSITION + 2);
        for (t, &logit) in logits.iter().enumerate() {
            if top.len() <= PER_POSITION || logit > top[top.len() - 1].0 {
                let at = top.partition_point(|(l, _)| *l >= logit);
                top.insert(at, (logit, t));
                top.truncate(PER_POSITION + 1);
            }
        }
        let vocab = self.model.vocab();
        top.into_iter()
            .map(|(logit, t)| Fork { at, token: LlamaToken::new(t as i32), logprob: logit - norm })
            .filter(|f| {
                f.token != actual && !vocab.is_eog(f.token) && !self.piece(f.token).is_empty()
            })
            .take(PER_POSITION)
            .collect()
    }

    /// Each fork of `group` (fewer than [`MAX_SEQUENCES`]) taken to the end of its line after a
    /// prompt of `prompt` tokens, in a sequence of its own: the line's text from the fork's
    /// token on, and the tokens decoded for it.
    fn lines(
        &mut self,
        group: &[Fork],
        prompt: usize,
        cancel: &Cancel,
    ) -> Result<Vec<(Vec<u8>, usize)>, ModelError> {
        let vocab = self.model.vocab();
        let mut lines: Vec<(Vec<u8>, usize)> =
            group.iter().map(|f| (self.piece(f.token), 1)).collect();
        let mut next: Vec<Option<LlamaToken>> = group.iter().map(|f| Some(f.token)).collect();
        let decoded = (|| {
            for (seq, fork) in (1..).zip(group) {
                let end = (prompt + fork.at) as u32;
                self.ctx.copy_kv_cache_seq(0, seq, None, Some(end)).map_err(engine)?;
            }
            let mut batch = LlamaBatch::new(group.len(), 1);
            for step in 0..LINE_TOKENS {
                if cancel.is_cancelled() {
                    return Err(ModelError::Cancelled);
                }
                batch.clear();
                let mut at = Vec::new();
                for (i, fork) in group.iter().enumerate() {
                    let Some(token) = next[i].filter(|_| !lines[i].0.contains(&b'\n')) else {
                        continue;
                    };
                    let pos = (prompt + fork.at + step) as i32;
                    batch.add(token, pos, &[i as i32 + 1], true).map_err(engine)?;
                    at.push(i);
                }
                if at.is_empty() {
                    break;
                }
                self.ctx.decode(&mut batch).map_err(engine)?;
                for (index, &i) in at.iter().enumerate() {
                    let logits = self.ctx.get_logits_ith(index as i32);
                    let best = (0..).zip(logits).max_by(|a, b| a.1.total_cmp(b.1));
                    next[i] = best.map(|(t, _)| LlamaToken::new(t)).filter(|&t| !vocab.is_eog(t));
                    if let Some(token) = next[i] {
                        lines[i].0.extend(self.piece(token));
                        lines[i].1 += 1;
                    }
                }
            }
            Ok(())
        })();
        // Only sequence 0 stays, as `cached` says.
        for seq in 1..=group.len() as u32 {
            if self.ctx.clear_kv_cache_seq(Some(seq), None, None).is_err() {
                self.forget();
            }
        }
        decoded.map(|()| lines)
    }
}

/// The text of `pieces` with the line that holds piece `at` written from there on as `line`
/// says (up to its first line break); the lines after it as they were.
fn splice(pieces: &[Vec<u8>], at: usize, line: &[u8]) -> Vec<u8> {
    let (before, after) = (pieces[..at].concat(), pieces[at..].concat());
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let rest = after.iter().position(|&b| b == b'\n').map_or(&[][..], |end| &after[end..]);
    [&before[..], line, rest].concat()
}

/// The line of the text after the first `skip` bytes of `pieces` where each piece begins (a
/// piece that begins with a break belongs to the line it ends).
fn lines_of(pieces: &[Vec<u8>], skip: usize) -> Vec<usize> {
    let (mut line, mut at) = (0, 0);
    let mut lines = Vec::with_capacity(pieces.len());
    for piece in pieces {
        lines.push(line);
        line += piece.iter().enumerate().filter(|&(i, &b)| b == b'\n' && at + i >= skip).count();
        at += piece.len();
    }
    lines
}

/// The text of `pieces` with piece `at` alone replaced by `piece`, the rest of its line kept
/// (the model's line after a token it ranks high may stray from a line right but for that
/// token); `None` where either breaks a line. No token is decoded for it.
fn swap(pieces: &[Vec<u8>], at: usize, piece: &[u8]) -> Option<(Vec<u8>, usize)> {
    if piece.contains(&b'\n') || pieces[at].contains(&b'\n') {
        return None;
    }
    Some(([&pieces[..at].concat()[..], piece, &pieces[at + 1..].concat()].concat(), 0))
}

#[cfg(test)]
mod tests {
    use super::{lines_of, splice, swap};

    #[test]
    fn a_departure_rewrites_the_rest_of_its_line_only() {
        let pieces: Vec<Vec<u8>> =
            ["\n", "    ", "return", " a", " <", " b", "\n", "x"].map(|p| p.into()).to_vec();
        let spliced = |at, line: &str| String::from_utf8(splice(&pieces, at, line.as_bytes()));
        assert_eq!(spliced(4, " <= b\n    pass").unwrap(), "\n    return a <= b\nx");
        // Cut short: the line ends where the departure breaks it.
        assert_eq!(spliced(3, "\n").unwrap(), "\n    return\nx");
        // At the break that ends a line: the line goes on.
        assert_eq!(spliced(6, " + 1\n").unwrap(), "\n    return a < b + 1\nx");
        // On the last line, with no break after it.
        assert_eq!(spliced(7, "y").unwrap(), "\n    return a < b\ny");
    }

    #[test]
    fn each_piece_begins_on_a_line_of_the_text_after_its_head() {
        let pieces: Vec<Vec<u8>> =
            [":\n", "    ", "x", "\n", "\n    ", "y"].map(|p| p.into()).to_vec();
        // The head, `:`, is no part of the text: its break begins the text's first line.
        assert_eq!(lines_of(&pieces, 1), [0, 1, 1, 1, 2, 3]);
    }

    #[test]
    fn a_swap_replaces_one_token_and_keeps_the_rest() {
        let pieces: Vec<Vec<u8>> =
            ["\n", "    ", "return", " a", " <", " b", "\n", "x"].map(|p| p.into()).to_vec();
        let swapped = |at, piece: &str| swap(&pieces, at, piece.as_bytes()).map(|s| s.0);
        assert_eq!(swapped(4, " >").unwrap(), b"\n    return a > b\nx");
        assert_eq!(swapped(6, " +"), None, "the break stays");
        assert_eq!(swapped(5, "\n"), None, "no break is added");
    }
}
