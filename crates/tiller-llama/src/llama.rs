//! The [`Llama`] provider: a GGUF model run in-process by llama.cpp, with its KV cache kept
//! between calls so that each turn decodes only what is new.
//!
//! Loaded models stay mapped for the life of the process and are shared by every `Llama` that
//! loads the same file: llama.cpp contexts borrow their model, and a model that never goes away
//! lets a context live in a plain struct without unsafe code. The context (the KV cache, the bulk
//! of the memory) is freed with its `Llama`.

use std::path::{Path, PathBuf};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tiller_model::{
    Cancel, Collector, Completion, ModelError, ModelInfo, Provider, Request, ToolChoice,
};
use tiller_types::{ProviderKind, StopReason, StreamEvent, ToolCall, ToolSpec, Usage};

use crate::gguf::{self, GgufInfo};
use crate::stream::{Output, Step};
use crate::template::{ChatFormat, Prompt};
use crate::{LlamaError, resolve_model};

mod batch;
mod depart;
pub(crate) mod load;

/// The sequence of the cache that holds a prompt set aside, after those of replies decoded
/// together.
const PARKED: i32 = batch::MAX_SEQUENCES as i32;

/// How many tokens `a` and `b` begin with alike.
fn shared(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(a, b)| a == b).count()
}

/// Context length used when the configuration gives none, if the model allows that much.
pub const DEFAULT_CONTEXT: u32 = 8192;
/// Output tokens per call when the request gives no limit.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;
/// Sampling temperature when the request gives none.
pub const DEFAULT_TEMPERATURE: f32 = 0.7;

/// How to load a model.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// A path to a `.gguf` file, or the name of one in the models folder (see [`resolve_model`]).
    pub model: String,
    /// The models folder; `None` for the default one.
    pub models_dir: Option<PathBuf>,
    /// Upper bound on the context length; the model's own length applies when smaller.
    /// `None`: [`DEFAULT_CONTEXT`].
    pub context_length: Option<u32>,
    /// Threads for prompt processing and generation; `None`: the number of physical cores.
    pub threads: Option<u32>,
    /// Seed for sampling: from the same seed, the same calls give the same replies.
    pub seed: u32,
    /// Whether tool calls are constrained by a grammar built from the offered tools (on by
    /// default; off only to measure what the grammar is worth).
    pub constrain_tool_calls: bool,
}

impl LlamaConfig {
    /// Defaults for `model`.
    pub fn new(model: impl Into<String>) -> Self {
        LlamaConfig {
            model: model.into(),
            models_dir: None,
            context_length: None,
            threads: None,
            seed: 0,
            constrain_tool_calls: true,
        }
    }
}

/// A GGUF model in-process, as a [`Provider`].
pub struct Llama {
    name: String,
    path: PathBuf,
    gguf: GgufInfo,
    model: &'static LlamaModel,
    ctx: LlamaContext<'static>,
    format: ChatFormat,
    /// The tokens of the tool-call format's markers, decoded as text though they are special.
    markers: Vec<LlamaToken>,
    bos_text: String,
    n_ctx: usize,
    n_batch: usize,
    seed: u32,
    constrain: bool,
    /// The tokens whose keys and values are in the context's cache, in order.
    cached: Vec<LlamaToken>,
    /// The tokens of a prompt set aside in sequence [`PARKED`] (see [`Llama::switch`]).
    parked: Vec<LlamaToken>,
    /// The lines departures took from the last few replies (see `depart.rs`).
    departed: depart::Memo,
    calls: u64,
}

impl Llama {
    /// Finds, checks and loads a model, and makes its context.
    pub fn load(config: &LlamaConfig) -> Result<Llama, LlamaError> {
        let path = resolve_model(&config.model, config.models_dir.as_deref())?;
        let info = gguf::read(&path)?;
        info.check_supported(&path)?;
        let (model, ctx) = load::load_shared(load::backend()?, &path, config, &info)?;

        let vocab = model.vocab();
        let piece = |t| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned();
        let (bos_text, eos_text) = (piece(vocab.bos()), piece(vocab.eos()));
        let format = ChatFormat::new(info.chat_template.clone(), bos_text.clone(), eos_text)?;
        let markers =
            format.tool_format().markers().iter().filter_map(|m| special_token(model, m)).collect();
        let name = path
            .file_stem()
            .map_or_else(|| config.model.clone(), |s| s.to_string_lossy().into_owned());
        Ok(Llama {
            name,
            n_ctx: ctx.n_ctx() as usize,
            n_batch: ctx.n_batch() as usize,
            path,
            gguf: info,
            model,
            ctx,
            format,
            markers,
            bos_text,
            seed: config.seed,
            constrain: config.constrain_tool_calls,
            cached: Vec::new(),
            parked: Vec::new(),
            departed: depart::Memo::default(),
            calls: 0,
        })
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the model's GGUF header says.
    pub fn gguf(&self) -> &GgufInfo {
        &self.gguf
    }

    /// The context length in use.
    pub fn context_length(&self) -> usize {
        self.n_ctx
    }

    /// Changes the sampling seed for later calls.
    pub fn set_seed(&mut self, seed: u32) {
        self.seed = seed;
    }

    /// The seed for the next `n` replies, which take it plus 0 to `n - 1`; later calls take
    /// the seeds after them, so that asking again is sampling again, and the same calls from
    /// the same seed give the same replies.
    fn next_seeds(&mut self, n: usize) -> u32 {
        let seed = self.seed;
        self.seed = seed.wrapping_add(n as u32);
        seed
    }

    /// The prompt `req` renders to, as text (for inspection and tests).
    pub fn prompt_text(&self, req: &Request) -> Result<String, LlamaError> {
        Ok(self.format.render(&req.messages, &req.tools)?.text)
    }

    /// The tokens `req` renders to (for inspection and tests).
    pub fn prompt_tokens(&self, req: &Request) -> Result<Vec<LlamaToken>, LlamaError> {
        Ok(self.tokenize_prompt(&self.format.render(&req.messages, &req.tools)?))
    }

    /// The token that `text` names when read as a special token, if it is one.
    pub fn special_token(&self, text: &str) -> Option<LlamaToken> {
        special_token(self.model, text)
    }

    /// How the model's chat template writes prompts and tool calls.
    pub fn chat_format(&self) -> &ChatFormat {
        &self.format
    }

    /// What a reply of `text` comes to when `tools` are offered, read token by token as
    /// [`Provider::complete`] reads what the model writes: the text shown, and the calls.
    pub fn read_reply(&self, text: &str, tools: &[ToolSpec]) -> (String, Vec<(String, String)>) {
        let tool_format = self.format.tool_format();
        let mut out = Output::new(Vec::new(), Some(tool_format));
        let mut shown = String::new();
        for token in self.model.vocab().tokenize(text.as_bytes(), false, true) {
            match out.push(&self.piece(token)) {
                Step::Text(t) => shown.push_str(&t),
                Step::Stop(t) | Step::CallEnd(t) => {
                    shown.push_str(&t);
                    break;
                }
            }
        }
        shown.push_str(&out.flush());
        let calls = out.call().map_or_else(Vec::new, |c| tool_format.parse(c, tools));
        (shown, calls)
    }

    /// The bytes of a token as shown: special tokens only where they are tool-call markers.
    fn piece(&self, token: LlamaToken) -> Vec<u8> {
        let special = self.markers.contains(&token);
        self.model.vocab().token_to_piece(token, special, None)
    }

    /// Tokenizes a rendered prompt, with a BOS token when the model wants one and the template
    /// did not write it. Only the template's own text may hold special tokens: where an input's
    /// range ([`Prompt::plain`]) holds text that reads as one, the prompt is tokenized in pieces
    /// and those ranges as plain text. (Otherwise in one piece, as llama.cpp does.)
    fn tokenize_prompt(&self, prompt: &Prompt) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        let text = prompt.text.as_bytes();
        let mut tokens = Vec::new();
        if vocab.should_add_bos() && !prompt.text.starts_with(&self.bos_text) {
            tokens.push(vocab.bos());
        }
        let valid = |r: &&std::ops::Range<usize>| r.start <= r.end && r.end <= text.len();
        let smuggled = |r: &std::ops::Range<usize>| {
            vocab.tokenize(&text[r.clone()], false, true)
                != vocab.tokenize(&text[r.clone()], false, false)
        };
        if !prompt.plain.iter().filter(valid).any(smuggled) {
            tokens.extend(vocab.tokenize(text, false, true));
            return tokens;
        }
        let mut at = 0;
        for range in prompt.plain.iter().filter(valid) {
            if range.start < at {
                continue;
            }
            tokens.extend(vocab.tokenize(&text[at..range.start], false, true));
            tokens.extend(vocab.tokenize(&text[range.clone()], false, false));
            at = range.end;
        }
        tokens.extend(vocab.tokenize(&text[at..], false, true));
        tokens
    }

    /// Brings the cache to `tokens[..len - 1]` plus the logits of the last token, reusing the
    /// longest prefix already cached (in sequence 0, or set aside), with `room` cells left for
    /// what the call decodes after the prompt. Returns how many tokens were reused.
    fn prefill(
        &mut self,
        tokens: &[LlamaToken],
        room: usize,
        cancel: &Cancel,
    ) -> Result<usize, ModelError> {
        self.switch(tokens, room);
        let mut keep = shared(&self.cached, tokens);
        // The last prompt token is always decoded again: its logits pick the first reply token.
        keep = keep.min(tokens.len().saturating_sub(1));
        let trimmed =
            u32::try_from(keep).ok().and_then(|k| self.ctx.kv_cache_seq_rm(0, Some(k), None).ok());
        if trimmed.is_none() {
            self.forget();
            keep = 0;
        }
        self.cached.truncate(keep);

        let mut batch = LlamaBatch::new(self.n_batch, 1);
        for chunk in tokens[keep..].chunks(self.n_batch) {
            if cancel.is_cancelled() {
                return Err(ModelError::Cancelled);
            }
            batch.clear();
            let last_chunk = self.cached.len() + chunk.len() == tokens.len();
            for (i, &t) in chunk.iter().enumerate() {
                let logits = last_chunk && i + 1 == chunk.len();
                batch.add(t, (self.cached.len() + i) as i32, &[0], logits).map_err(engine)?;
            }
            self.decode(&mut batch, chunk)?;
        }
        Ok(keep)
    }

    /// Keeps the caches of two prompts, so that a conversation and a side request taken in
    /// turns (a candidate's rewrite between the agent's steps) each reuse their own: when
    /// `tokens` share more with the prompt set aside than with the one in sequence 0, the two
    /// change places; when they share less than half of the one in sequence 0, that one is set
    /// aside in place of the other. The prompt set aside is let go when it would leave the call
    /// (`tokens` and `room` cells more) too little of the context.
    fn switch(&mut self, tokens: &[LlamaToken], room: usize) {
        let (now, aside) = (shared(&self.cached, tokens), shared(&self.parked, tokens));
        let ctx = &mut self.ctx;
        // Moves sequence `from`, whole, to the empty sequence `to`.
        let mut moved = |from: i32, to: i32| {
            ctx.copy_kv_cache_seq(from, to, None, None).is_ok()
                && ctx.clear_kv_cache_seq(Some(from as u32), None, None).is_ok()
        };
        let done = if aside > now {
            // Sequence 1 is empty between calls.
            let swapped = moved(0, 1) && moved(PARKED, 0) && moved(1, PARKED);
            std::mem::swap(&mut self.cached, &mut self.parked);
            swapped
        } else if now < self.cached.len() / 2 {
            self.parked = self.cached.clone();
            self.ctx.clear_kv_cache_seq(Some(PARKED as u32), None, None).is_ok()
                && self.ctx.copy_kv_cache_seq(0, PARKED, None, None).is_ok()
        } else {
            true
        };
        let full = self.parked.len() + tokens.len() + room > self.n_ctx;
        if !done || (full && self.ctx.clear_kv_cache_seq(Some(PARKED as u32), None, None).is_err())
        {
            self.forget();
        } else if full {
            self.parked.clear();
        }
    }

    /// Empties the cache, where a part of it could not be let go alone.
    fn forget(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
        self.parked.clear();
    }

    /// Decodes a batch holding `tokens`, keeping `cached` true to the cache even on failure.
    fn decode(&mut self, batch: &mut LlamaBatch, tokens: &[LlamaToken]) -> Result<(), ModelError> {
        if let Err(e) = self.ctx.decode(batch) {
            self.forget();
            return Err(engine(e));
        }
        self.cached.extend_from_slice(tokens);
        Ok(())
    }

    /// Whether this request's reply must be a tool call.
    fn call_required(&self, req: &Request) -> bool {
        req.tool_choice == ToolChoice::Required && !req.callable().is_empty()
    }

    /// The next token after the one at `index` of the last decoded batch (-1: its last).
    /// `LlamaSampler::sample` would do the same, but llama.cpp aborts the process there when no
    /// token is left or when the grammar cannot accept the one chosen (as with broken or random
    /// weights); here both fail the call.
    fn next_token(&self, sampler: &mut Sampler, index: i32) -> Result<LlamaToken, LlamaError> {
        let none_left =
            || LlamaError::Grammar("no token is left that the tool-call grammar allows".into());
        let mut candidates = self.ctx.token_data_array_ith(index);
        if let Some(grammar) = &mut sampler.grammar {
            candidates.apply_sampler(grammar);
        }
        candidates.apply_sampler(&mut sampler.chain);
        let token = candidates.selected_token().ok_or_else(none_left)?;
        if let Some(grammar) = &mut sampler.grammar {
            grammar.try_accept(token).map_err(|_| {
                let piece = self.model.vocab().token_to_piece(token, true, None);
                LlamaError::Grammar(format!(
                    "the model chose {:?}, which the tool-call grammar cannot take",
                    String::from_utf8_lossy(&piece)
                ))
            })?;
        }
        sampler.chain.accept(token);
        Ok(token)
    }

    fn sampler(&self, req: &Request, seed: u32) -> Result<Sampler, LlamaError> {
        let tool_format = self.format.tool_format();
        let grammar = if self.constrain && !req.callable().is_empty() {
            let grammar = tool_format.grammar(req.callable());
            // Under `Auto` the grammar waits for the model to open a call.
            let sampler = if self.call_required(req) {
                LlamaSampler::grammar(self.model, &grammar, "root")
            } else {
                LlamaSampler::grammar_lazy(self.model, &grammar, "root", [tool_format.start()], &[])
            };
            Some(sampler.map_err(|e| LlamaError::Grammar(format!("{e}\n{grammar}")))?)
        } else {
            None
        };
        let temperature = req.temperature.unwrap_or(DEFAULT_TEMPERATURE);
        let chain = if temperature <= 0.0 {
            LlamaSampler::greedy()
        } else {
            LlamaSampler::chain_simple([
                // A mild repetition penalty keeps small models out of loops (inside a call's
                // string, a loop would run out the token budget and leave the call unfinished).
                LlamaSampler::penalties(self.model.n_vocab(), 64, 1.1, 0.0, 0.0),
                LlamaSampler::top_k(40),
                LlamaSampler::top_p(0.95, 1),
                LlamaSampler::min_p(0.05, 1),
                LlamaSampler::temp(temperature),
                LlamaSampler::dist(seed),
            ])
        };
        Ok(Sampler { grammar, chain })
    }
}

/// How one reply's tokens are chosen: the grammar (when calls are constrained), applied to the
/// whole vocabulary first, then the rest of the chain; each reply of a batch has its own.
pub(crate) struct Sampler {
    grammar: Option<LlamaSampler>,
    chain: LlamaSampler,
}

impl Provider for Llama {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            provider: ProviderKind::Llama,
            model: self.name.clone(),
            context_length: self.n_ctx as u64,
            endpoint: None,
        }
    }

    fn complete(
        &mut self,
        req: &Request,
        cancel: &Cancel,
        on_event: &mut dyn FnMut(&StreamEvent),
    ) -> Result<Completion, ModelError> {
        let (tokens, reader) = self.prompt_for(req)?;
        let mut text = reader();
        let seed = self.next_seeds(1);
        let mut sampler = self.sampler(req, seed)?;
        let mut out = Collector::new(on_event);
        let limit = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS) as usize;
        let reused = self.prefill(&tokens, limit, cancel)?;
        let vocab = self.model.vocab();
        let mut batch = LlamaBatch::new(1, 1);
        let mut generated = 0;
        let stop = loop {
            if cancel.is_cancelled() {
                break StopReason::Cancelled;
            }
            if generated >= limit || self.cached.len() >= self.n_ctx {
                break StopReason::MaxTokens;
            }
            let token = self.next_token(&mut sampler, -1)?;
            if vocab.is_eog(token) {
                break StopReason::EndTurn;
            }
            generated += 1;
            let step = text.push(&self.piece(token));
            let (shown, done) = match step {
                Step::Text(t) => (t, None),
                Step::Stop(t) => (t, Some(StopReason::StopSequence)),
                Step::CallEnd(t) => (t, Some(StopReason::ToolCalls)),
            };
            if !shown.is_empty() {
                out.emit(StreamEvent::TextDelta { text: shown });
            }
            if let Some(reason) = done {
                break reason;
            }
            batch.clear();
            batch.add(token, self.cached.len() as i32, &[0], true).map_err(engine)?;
            self.decode(&mut batch, &[token])?;
        };
        let usage = Usage {
            prompt_tokens: tokens.len() as u64,
            cached_tokens: reused as u64,
            completion_tokens: generated as u64,
        };
        Ok(self.finish(req, text, stop, usage, out))
    }

    fn complete_n(
        &mut self,
        req: &Request,
        n: usize,
        cancel: &Cancel,
    ) -> Result<Vec<Completion>, ModelError> {
        let mut all = Vec::with_capacity(n);
        while all.len() < n {
            let batch = (n - all.len()).min(batch::MAX_SEQUENCES);
            all.extend(self.complete_together(req, batch, cancel)?);
        }
        Ok(all)
    }

    fn departures(
        &mut self,
        req: &Request,
        text: &str,
        held: &[usize],
        n: usize,
        cancel: &Cancel,
    ) -> Result<Vec<Completion>, ModelError> {
        self.depart(req, text, held, n, cancel)
    }

    fn count_tokens(&self, text: &str) -> u64 {
        self.model.vocab().tokenize(text.as_bytes(), false, false).len() as u64
    }
}

impl Llama {
    /// The prompt's tokens for `req`, and how to make a reader of a reply. A required call
    /// without the grammar is started with the call's marker.
    fn prompt_for(
        &self,
        req: &Request,
    ) -> Result<(Vec<LlamaToken>, impl Fn() -> Output + use<>), ModelError> {
        let mut prompt = self.format.render(&req.messages, &req.tools)?;
        let tool_format = self.format.tool_format();
        let prefilled = self.call_required(req) && !self.constrain;
        if prefilled {
            prompt.text.push_str(tool_format.start());
        }
        if let Some(given) = &req.reply_start {
            // The caller's text, maybe from files: plain, like the conversation's inputs. It is
            // not read as output (a stop sequence in it does not count); `finish` puts it back.
            let at = prompt.text.len();
            prompt.plain.push(at..at + given.len());
            prompt.text.push_str(given);
        }
        let tokens = self.tokenize_prompt(&prompt);
        if tokens.is_empty() || tokens.len() >= self.n_ctx {
            return Err(
                LlamaError::PromptTooLong { prompt: tokens.len(), context: self.n_ctx }.into()
            );
        }
        let mut stops = req.stop.clone();
        stops.extend(prompt.stop);
        let tools = !req.tools.is_empty();
        let reader = move || {
            let mut text = Output::new(stops.clone(), tools.then_some(tool_format));
            if prefilled {
                text.push(tool_format.start().as_bytes());
            }
            text
        };
        Ok((tokens, reader))
    }

    /// The completion of a reply read by `text`, which ended for `stop`: the rest of its text
    /// and its tool call emitted to `out`.
    fn finish(
        &mut self,
        req: &Request,
        mut text: Output,
        mut stop: StopReason,
        usage: Usage,
        mut out: Collector,
    ) -> Completion {
        let rest = text.flush();
        if !rest.is_empty() {
            out.emit(StreamEvent::TextDelta { text: rest });
        }
        let tool_format = self.format.tool_format();
        if let Some(calls) = text.call() {
            // An unfinished or malformed call still goes to the agent as a call, whose arguments
            // it reports as broken: its markup is never shown or taken for an answer.
            for (name, arguments) in tool_format.parse(calls, req.callable()) {
                self.calls += 1;
                let id = format!("call_{}", self.calls);
                out.emit(StreamEvent::ToolCall { call: ToolCall { id, name, arguments } });
            }
            // A call cut at the output limit stays cut: the agent tells the model so.
            if !matches!(stop, StopReason::Cancelled | StopReason::MaxTokens) {
                stop = StopReason::ToolCalls;
            }
        }
        out.emit(StreamEvent::Usage { usage });
        out.emit(StreamEvent::Done { stop });
        let mut completion = out.finish(self.name.clone(), None, 0);
        if let Some(given) = &req.reply_start {
            completion.content.insert_str(0, given);
        }
        completion
    }
}

/// The token that `text` names when read as a special token, if it is one.
fn special_token(model: &LlamaModel, text: &str) -> Option<LlamaToken> {
    match model.vocab().tokenize(text.as_bytes(), false, true)[..] {
        [token] => Some(token),
        _ => None,
    }
}

/// An error llama.cpp reported, as the engine's.
pub(crate) fn engine(e: impl std::fmt::Display) -> ModelError {
    LlamaError::Engine(e.to_string()).into()
}
