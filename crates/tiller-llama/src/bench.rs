//! Measurements behind `tiller bench engine`: the engine's prefill and decode speed against a
//! reference that drives llama.cpp directly with the same settings, how much of each turn of a
//! conversation the KV cache spares, and what N candidate replies decoded together cost against
//! one.
//!
//! Each side of the speed comparison is meant to run in a process of its own ([`run_job`]), so
//! that its peak memory ([`peak_rss_kib`]) is its own; the caller starts the processes, hands
//! each a [`Job`] and gathers the [`Run`]s into a [`Comparison`].

use std::mem::ManuallyDrop;
use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::LlamaCppError;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use serde::{Deserialize, Serialize};
use tiller_model::{Cancel, ModelError, Provider, Request, ToolChoice};
use tiller_types::{Message, StreamEvent, ToolSpec};

use crate::llama::engine;
use crate::{Llama, LlamaConfig, LlamaError, resolve_model};

/// What both sides of a measurement share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Model name or path, as for [`LlamaConfig::model`].
    pub model: String,
    pub models_dir: Option<std::path::PathBuf>,
    pub threads: u32,
    /// The prompt's length, roughly: the engine's chat template decides the last few tokens.
    pub prompt_tokens: usize,
    pub gen_tokens: u32,
}

impl Setup {
    fn config(&self) -> LlamaConfig {
        let mut config = LlamaConfig::new(self.model.clone());
        config.models_dir.clone_from(&self.models_dir);
        config.threads = Some(self.threads);
        config
    }
}

/// One side of the speed comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "side", rename_all = "snake_case")]
pub enum Job {
    /// The engine through [`Provider::complete`]: one greedy request without tools.
    Engine(Setup),
    /// llama.cpp driven directly over the engine's rendered `prompt`, in a context of `n_ctx`
    /// tokens, generating exactly `setup.gen_tokens`.
    Reference { setup: Setup, prompt: String, n_ctx: u32 },
}

/// What one side measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub prompt_tokens: u64,
    pub gen_tokens: u64,
    /// From the start of the call to the first generated token.
    pub prefill_s: f64,
    /// From the first generated token to the end of the call.
    pub decode_s: f64,
    pub n_ctx: u32,
    /// The process's peak resident memory at the end of the run (Linux only).
    pub peak_rss_kib: Option<u64>,
    /// The rendered prompt (engine runs only), for the reference to decode the same tokens.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prompt: String,
}

impl Run {
    pub fn prefill_tps(&self) -> f64 {
        per_second(self.prompt_tokens, self.prefill_s)
    }

    /// Generated tokens over the time after the first: the engine and the reference both
    /// decode each generated token once in that time.
    pub fn decode_tps(&self) -> f64 {
        per_second(self.gen_tokens, self.decode_s)
    }
}

/// A median figure of each side and their ratio, engine / reference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    pub engine: f64,
    pub reference: f64,
    pub ratio: f64,
}

impl Figure {
    fn of(engine: &[Run], reference: &[Run], f: impl Fn(&Run) -> f64) -> Figure {
        let (engine, reference) = (median(engine, &f), median(reference, &f));
        Figure { engine, reference, ratio: engine / reference }
    }
}

/// The speed comparison, medians over the repetitions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub repetitions: usize,
    pub prompt_tokens: u64,
    pub gen_tokens: u64,
    pub n_ctx: u32,
    pub prefill_tps: Figure,
    pub decode_tps: Figure,
    /// Absent where a side could not read its peak memory.
    pub peak_rss_mib: Option<Figure>,
}

/// One turn of [`conversation`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TurnFigures {
    pub prompt_tokens: u64,
    /// Prompt tokens found in the KV cache.
    pub cached_tokens: u64,
    /// Prompt tokens decoded in this turn: `prompt_tokens - cached_tokens`.
    pub processed_tokens: u64,
    /// Prompt tokens that were neither in the last turn's prompt nor its reply.
    pub new_tokens: u64,
    pub reply_tokens: u64,
    /// `processed_tokens / new_tokens`: 1 when only what is new is decoded.
    pub ratio: f64,
}

/// N replies to one request, decoded together ([`candidates`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Together {
    pub sequences: usize,
    /// Whether the replies were tool calls sampled under the grammar.
    pub grammar: bool,
    /// Tokens generated over all replies.
    pub gen_tokens: u64,
    pub wall_s: f64,
    /// Wall time over that of one sequence in the same setting.
    pub wall_ratio: f64,
}

impl Together {
    /// Generated tokens per second of wall time, over all sequences.
    pub fn tps(&self) -> f64 {
        per_second(self.gen_tokens, self.wall_s)
    }
}

/// Candidates as an edit step samples them: for each of `counts`, that many replies to one
/// request whose prompt is in the cache already, sampled at temperature 0.8 and decoded
/// together; once as plain text and once as tool calls under the grammar. Ratios are against
/// the first count.
pub fn candidates(setup: &Setup, counts: &[usize]) -> Result<Vec<Together>, ModelError> {
    let mut llama = Llama::load(&setup.config())?;
    let mut out = Vec::new();
    for grammar in [false, true] {
        let mut req = sized_request(&llama, setup.prompt_tokens, setup.gen_tokens)?;
        req.temperature = Some(0.8);
        if grammar {
            req.tools = vec![edit_tool()];
            req.tool_choice = ToolChoice::Required;
        }
        // The conversation before an edit step has its prompt cached.
        let warm = Request { max_tokens: Some(1), ..req.clone() };
        llama.complete(&warm, &Cancel::default(), &mut |_| {})?;
        let mut one = None;
        for &n in counts {
            let start = Instant::now();
            let replies = llama.complete_n(&req, n, &Cancel::default())?;
            let wall_s = start.elapsed().as_secs_f64();
            let one_s = *one.get_or_insert(wall_s);
            out.push(Together {
                sequences: n,
                grammar,
                gen_tokens: replies.iter().map(|r| r.usage.completion_tokens).sum(),
                wall_s,
                wall_ratio: wall_s / one_s,
            });
        }
    }
    Ok(out)
}

/// An edit tool as the agent offers it on the engine: the line to replace is one of a list.
fn edit_tool() -> ToolSpec {
    ToolSpec {
        name: "replace".into(),
        description: "Replace a line of the story with new text.".into(),
        parameters: serde_json::json!({"type": "object", "properties": {
            "old": {"enum": ["The workshop stood at the end of a narrow lane,", "Every morning the carpenter opened the shutters."]},
            "new": {"type": "string"}},
            "required": ["old", "new"]}),
    }
}

/// The engine's default thread count: physical cores, or logical ones where unknown.
pub fn default_threads() -> u32 {
    crate::llama::load::physical_cores().max(1) as u32
}

/// The process's peak resident memory (`VmHWM`), where `/proc` reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Runs one side of the speed comparison in this process.
pub fn run_job(job: &Job) -> Result<Run, ModelError> {
    let mut run = match job {
        Job::Engine(setup) => engine_run(setup)?,
        Job::Reference { setup, prompt, n_ctx } => reference_run(setup, prompt, *n_ctx)?,
    };
    run.peak_rss_kib = peak_rss_kib();
    Ok(run)
}

/// Gathers the runs of both sides; the counts and context are the engine's first run's.
pub fn compare(engine: &[Run], reference: &[Run]) -> Comparison {
    let first = engine.first().cloned().unwrap_or_default();
    let mib = |r: &Run| r.peak_rss_kib.map_or(f64::NAN, |k| k as f64 / 1024.0);
    let rss = Figure::of(engine, reference, mib);
    Comparison {
        repetitions: engine.len().min(reference.len()),
        prompt_tokens: first.prompt_tokens,
        gen_tokens: first.gen_tokens,
        n_ctx: first.n_ctx,
        prefill_tps: Figure::of(engine, reference, Run::prefill_tps),
        decode_tps: Figure::of(engine, reference, Run::decode_tps),
        peak_rss_mib: (!rss.ratio.is_nan()).then_some(rss),
    }
}

/// A scripted conversation of `turns` turns through the engine, as an agent holds one: each
/// turn appends a question and the model's reply of up to `setup.gen_tokens` tokens.
pub fn conversation(setup: &Setup, turns: usize) -> Result<Vec<TurnFigures>, ModelError> {
    let mut llama = Llama::load(&setup.config())?;
    let mut messages = vec![Message::system("You are a helpful assistant. Answer in a few lines.")];
    let mut seen = 0;
    let mut out = Vec::with_capacity(turns);
    for question in QUESTIONS.iter().cycle().take(turns) {
        messages.push(Message::user(*question));
        let req = greedy(messages.clone(), setup.gen_tokens);
        let reply = llama.complete(&req, &Cancel::default(), &mut |_| {})?;
        messages.push(reply.message());
        let u = reply.usage;
        let processed = u.prompt_tokens - u.cached_tokens;
        let new = u.prompt_tokens.saturating_sub(seen);
        out.push(TurnFigures {
            prompt_tokens: u.prompt_tokens,
            cached_tokens: u.cached_tokens,
            processed_tokens: processed,
            new_tokens: new,
            reply_tokens: u.completion_tokens,
            ratio: processed as f64 / new.max(1) as f64,
        });
        seen = u.prompt_tokens + u.completion_tokens;
    }
    Ok(out)
}

/// Questions for [`conversation`], asked in turn.
const QUESTIONS: [&str; 5] = [
    "What is a hash map, in two sentences?",
    "How does it handle two keys with the same hash?",
    "When would you pick a sorted tree instead?",
    "Show a short Rust example that counts words with one.",
    "What does that example cost in memory for a million words?",
];

/// Plain prose to pad the speed test's prompt to length.
const FILLER: &str = "The workshop stood at the end of a narrow lane, where the river bent \
    twice before reaching the mill. Every morning the carpenter opened the shutters, swept the \
    shavings from the bench and sharpened his chisels on a stone worn hollow by years of use. \
    Neighbours brought him broken chairs, warped doors and cradles that had rocked three \
    generations, and he mended each one slowly, talking to the wood as if it could answer.";

fn greedy(messages: Vec<Message>, max_tokens: u32) -> Request {
    Request { messages, max_tokens: Some(max_tokens), temperature: Some(0.0), ..Request::default() }
}

/// A request whose rendered prompt is about `tokens` long: filler words are added, about half
/// of what is missing at a time, until the prompt is long enough.
fn sized_request(llama: &Llama, tokens: usize, max_tokens: u32) -> Result<Request, LlamaError> {
    let mut text = String::from("Continue this story at length.\n\n");
    let mut words = FILLER.split_whitespace().cycle();
    loop {
        let req = greedy(vec![Message::user(text.clone())], max_tokens);
        let missing = tokens.saturating_sub(llama.count_tokens(&llama.prompt_text(&req)?) as usize);
        if missing == 0 {
            return Ok(req);
        }
        for word in words.by_ref().take(missing.div_ceil(2)) {
            text.push_str(word);
            text.push(' ');
        }
    }
}

fn engine_run(setup: &Setup) -> Result<Run, ModelError> {
    let mut llama = Llama::load(&setup.config())?;
    let req = sized_request(&llama, setup.prompt_tokens, setup.gen_tokens)?;
    let prompt = llama.prompt_text(&req)?;
    let start = Instant::now();
    let mut first = None;
    let reply = llama.complete(&req, &Cancel::default(), &mut |e| {
        if first.is_none() && matches!(e, StreamEvent::TextDelta { .. }) {
            first = Some(start.elapsed());
        }
    })?;
    let total = start.elapsed();
    let first = first.unwrap_or(total);
    Ok(Run {
        prompt_tokens: reply.usage.prompt_tokens,
        gen_tokens: reply.usage.completion_tokens,
        prefill_s: first.as_secs_f64(),
        decode_s: total.saturating_sub(first).as_secs_f64(),
        n_ctx: llama.context_length() as u32,
        peak_rss_kib: None,
        prompt,
    })
}

/// llama.cpp by the book: tokenize, decode the prompt in batches, then sample greedily and
/// decode one token at a time, `setup.gen_tokens` times whatever the model says.
fn reference_run(setup: &Setup, prompt: &str, n_ctx: u32) -> Result<Run, ModelError> {
    // In a process of its own the reference owns the backend; where the engine has set it up
    // already (tests run both sides in one process) a witness of it stands in, never dropped
    // because dropping one frees the backend.
    let mut owned = LlamaBackend::init();
    if let Ok(b) = owned.as_mut()
        && std::env::var_os("TILLER_LLAMA_LOG").is_none()
    {
        b.void_logs();
    }
    let shared = ManuallyDrop::new(LlamaBackend {});
    let backend = match &owned {
        Ok(backend) => backend,
        Err(LlamaCppError::BackendAlreadyInitialized) => &*shared,
        Err(e) => return Err(engine(e)),
    };
    let path = resolve_model(&setup.model, setup.models_dir.as_deref())?;
    let model =
        LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default()).map_err(engine)?;
    let n_batch = n_ctx.min(512);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_threads(setup.threads as i32)
        .with_n_threads_batch(setup.threads as i32);
    let mut ctx = model.new_context(backend, params).map_err(engine)?;
    let mut sampler = LlamaSampler::greedy();
    let gen_tokens = setup.gen_tokens as usize;

    let start = Instant::now();
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, true);
    let mut batch = LlamaBatch::new(n_batch as usize, 1);
    for (c, chunk) in tokens.chunks(n_batch as usize).enumerate() {
        batch.clear();
        for (i, &t) in chunk.iter().enumerate() {
            let pos = c * n_batch as usize + i;
            batch.add(t, pos as i32, &[0], pos + 1 == tokens.len()).map_err(engine)?;
        }
        ctx.decode(&mut batch).map_err(engine)?;
    }
    let mut token = sampler.sample(&ctx, -1);
    let first = start.elapsed();
    for i in 0..gen_tokens {
        batch.clear();
        batch.add(token, (tokens.len() + i) as i32, &[0], true).map_err(engine)?;
        ctx.decode(&mut batch).map_err(engine)?;
        if i + 1 < gen_tokens {
            token = sampler.sample(&ctx, -1);
        }
    }
    let total = start.elapsed();
    Ok(Run {
        prompt_tokens: tokens.len() as u64,
        gen_tokens: gen_tokens as u64,
        prefill_s: first.as_secs_f64(),
        decode_s: total.saturating_sub(first).as_secs_f64(),
        n_ctx,
        peak_rss_kib: None,
        prompt: String::new(),
    })
}

fn per_second(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

fn median(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(prompt_tokens: usize, gen_tokens: u32) -> Setup {
        Setup {
            model: concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny.gguf").into(),
            models_dir: None,
            threads: 1,
            prompt_tokens,
            gen_tokens,
        }
    }

    // One test for all: both sides share the process's llama.cpp backend, and the engine
    // must set it up first (see `reference_run`).
    #[test]
    fn both_sides_and_the_conversation_on_the_tiny_model() -> Result<(), ModelError> {
        let setup = tiny(100, 8);
        let engine = run_job(&Job::Engine(setup.clone()))?;
        assert!((90..=110).contains(&engine.prompt_tokens), "{engine:?}");
        assert!((1..=8).contains(&engine.gen_tokens), "{engine:?}");
        assert!(engine.prompt.contains("Continue this story"));
        assert_eq!(engine.n_ctx, 8192);

        let reference = Job::Reference {
            setup: Setup { gen_tokens: engine.gen_tokens as u32, ..setup },
            prompt: engine.prompt.clone(),
            n_ctx: engine.n_ctx,
        };
        let reference = run_job(&reference)?;
        // Same text, same tokens: the reference decodes what the engine decoded.
        assert_eq!(reference.prompt_tokens, engine.prompt_tokens);
        assert_eq!(reference.gen_tokens, engine.gen_tokens);
        assert!(reference.prompt.is_empty());

        let c = compare(&[engine.clone(), engine.clone()], std::slice::from_ref(&reference));
        assert_eq!(c.repetitions, 1);
        assert_eq!((c.prompt_tokens, c.gen_tokens), (engine.prompt_tokens, engine.gen_tokens));
        assert_eq!(c.prefill_tps.engine, engine.prefill_tps());
        assert!(c.prefill_tps.engine > 0.0 && c.decode_tps.reference > 0.0, "{c:?}");
        assert_eq!(c.decode_tps.ratio, c.decode_tps.engine / c.decode_tps.reference);
        if cfg!(target_os = "linux") {
            assert!(c.peak_rss_mib.as_ref().is_some_and(|f| f.engine > 1.0), "{c:?}");
        }

        let together = candidates(&tiny(60, 6), &[1, 3])?;
        let shape: Vec<(usize, bool)> = together.iter().map(|t| (t.sequences, t.grammar)).collect();
        assert_eq!(shape, [(1, false), (3, false), (1, true), (3, true)]);
        for t in &together {
            assert!(t.gen_tokens <= 6 * t.sequences as u64 && t.wall_s > 0.0, "{t:?}");
        }
        assert_eq!((together[0].wall_ratio, together[2].wall_ratio), (1.0, 1.0));
        assert!(together[3].gen_tokens > together[2].gen_tokens, "{together:?}");

        let turns = conversation(&tiny(0, 6), 4)?;
        assert_eq!(turns.len(), 4);
        for (i, t) in turns.iter().enumerate() {
            assert_eq!(t.processed_tokens, t.prompt_tokens - t.cached_tokens, "turn {i}: {t:?}");
            assert!(t.processed_tokens <= t.prompt_tokens && t.reply_tokens <= 6, "{t:?}");
            if i == 0 {
                assert_eq!((t.cached_tokens, t.new_tokens), (0, t.prompt_tokens), "{t:?}");
            } else {
                assert!(t.cached_tokens > 0 && t.new_tokens < t.prompt_tokens, "turn {i}: {t:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn medians_and_peak_memory() {
        let run = |prefill_s| Run { prompt_tokens: 10, prefill_s, ..Run::default() };
        assert_eq!(median(&[run(1.0), run(5.0), run(2.0)], Run::prefill_tps), 5.0);
        assert_eq!(median(&[run(1.0), run(2.0)], Run::prefill_tps), 7.5);
        assert!(median(&[], Run::prefill_tps).is_nan());
        assert_eq!(per_second(3, 0.0), 0.0);
        if cfg!(target_os = "linux") {
            assert!(peak_rss_kib().is_some_and(|k| k > 0));
        }
        assert!(default_threads() >= 1);
    }
}
