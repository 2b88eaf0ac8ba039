//! `tiller bench engine`: the embedded engine against llama.cpp driven directly, each side in a
//! child process of its own (this binary again, as the hidden `bench side`), alternating, so
//! that both see the same machine and each reports its own peak memory. `tiller bench render`:
//! what streaming costs the terminal.

use crate::cli::{BenchCommand, ModelArgs};
use crate::command_error::CommandError;

pub fn run(model: &ModelArgs, command: BenchCommand) -> Result<(), CommandError> {
    match command {
        BenchCommand::Render { tokens } => render(tokens),
        #[cfg(feature = "llama")]
        BenchCommand::Engine(args) => imp::engine(model, &args),
        #[cfg(feature = "llama")]
        BenchCommand::Side => imp::side(),
        #[cfg(not(feature = "llama"))]
        BenchCommand::Engine(_) | BenchCommand::Side => {
            let _ = model;
            Err(crate::engine::missing())
        }
    }
}

/// `tiller bench render`: the front end's output while streaming, on an emulated 120×40
/// terminal.
fn render(tokens: usize) -> Result<(), CommandError> {
    let report = tiller_tui::bench::render(tokens, 120, 40).map_err(|e| {
        crate::command_error::CommandError::new(crate::command_error::Kind::Internal, e.to_string())
    })?;
    outln!("streamed {} tokens into a 120x40 terminal emulator", report.tokens);
    outln!("bytes written: {} ({:.1} per token)", report.bytes, report.bytes_per_token());
    outln!(
        "full-screen clears: {} ({:.3} per token)",
        report.full_clears,
        report.clears_per_token()
    );
    Ok(())
}

#[cfg(feature = "llama")]
mod imp {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    use tiller_llama::bench::{self, Comparison, Job, Run, Setup, Turn};

    use crate::cli::{BenchEngineArgs, ModelArgs};
    use crate::command_error::{CommandError, Kind};
    use crate::engine::DEFAULT_MODEL;

    pub fn engine(model: &ModelArgs, args: &BenchEngineArgs) -> Result<(), CommandError> {
        let setup = Setup {
            model: model.model.clone().unwrap_or_else(|| DEFAULT_MODEL.into()),
            models_dir: Some(crate::paths::models_dir()),
            threads: args.threads.unwrap_or_else(bench::default_threads),
            prompt_tokens: args.prompt_tokens,
            gen_tokens: args.gen_tokens,
        };
        let (mut engine, mut reference) = (Vec::new(), Vec::new());
        for i in 1..=args.repetitions {
            eprintln!("bench: run {i}/{}: engine", args.repetitions);
            let e = child(&Job::Engine(setup.clone()))?;
            eprintln!("bench: run {i}/{}: reference", args.repetitions);
            // The reference decodes exactly what the engine did: its prompt, as many tokens.
            let job = Job::Reference {
                setup: Setup { gen_tokens: e.gen_tokens as u32, ..setup.clone() },
                prompt: e.prompt.clone(),
                n_ctx: e.n_ctx,
            };
            let r = child(&job)?;
            if r.prompt_tokens != e.prompt_tokens {
                eprintln!(
                    "bench: warning: the reference tokenized {} prompt tokens, the engine {}",
                    r.prompt_tokens, e.prompt_tokens
                );
            }
            engine.push(e);
            reference.push(r);
        }
        let speed = bench::compare(&engine, &reference);
        eprintln!("bench: conversation of {} turns", args.turns);
        let turns = bench::conversation(&setup, args.turns)?;

        if args.json {
            let report = serde_json::json!({
                "model": setup.model,
                "threads": setup.threads,
                "speed": speed,
                "turns": turns,
            });
            outln!("{report}");
        } else {
            print_table(&setup, &speed, &turns);
        }
        Ok(())
    }

    /// The hidden `bench side`: runs the job on stdin and prints its result.
    pub fn side() -> Result<(), CommandError> {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).map_err(internal)?;
        let job: Job = serde_json::from_str(&input).map_err(internal)?;
        let run = bench::run_job(&job)?;
        outln!("{}", serde_json::to_string(&run).map_err(internal)?);
        Ok(())
    }

    /// Runs `job` in a fresh process of this binary and reads its result line.
    fn child(job: &Job) -> Result<Run, CommandError> {
        let exe = std::env::current_exe().map_err(internal)?;
        let mut proc = Command::new(exe)
            .args(["bench", "side"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(internal)?;
        let job = serde_json::to_vec(job).map_err(internal)?;
        // Dropping stdin after the write closes it, which ends the child's read.
        proc.stdin.take().map(|mut stdin| stdin.write_all(&job)).transpose().map_err(internal)?;
        let out = proc.wait_with_output().map_err(internal)?;
        if !out.status.success() {
            // The child has reported its error on the shared stderr.
            return Err(CommandError::new(
                Kind::Model,
                format!("a bench run failed ({})", out.status),
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).map_err(internal)
    }

    fn internal(e: impl std::fmt::Display) -> CommandError {
        CommandError::new(Kind::Internal, format!("bench: {e}"))
    }

    fn print_table(setup: &Setup, s: &Comparison, turns: &[Turn]) {
        outln!(
            "model {}, {} threads, context {}, prompt {} tokens, {} generated; medians of {} runs",
            setup.model,
            setup.threads,
            s.n_ctx,
            s.prompt_tokens,
            s.gen_tokens,
            s.repetitions
        );
        outln!("{:<16} {:>10} {:>10} {:>7}", "", "engine", "reference", "ratio");
        let rss = s.peak_rss_mib.iter().map(|f| ("peak RSS MiB", f));
        for (name, f) in [("prefill tok/s", &s.prefill_tps), ("decode tok/s", &s.decode_tps)]
            .into_iter()
            .chain(rss)
        {
            outln!("{name:<16} {:>10.1} {:>10.1} {:>7.3}", f.engine, f.reference, f.ratio);
        }
        outln!();
        outln!("turn  prompt  cached  processed    new  reply  processed/new");
        for (i, t) in turns.iter().enumerate() {
            outln!(
                "{:>4} {:>7} {:>7} {:>10} {:>6} {:>6} {:>14.2}",
                i + 1,
                t.prompt_tokens,
                t.cached_tokens,
                t.processed_tokens,
                t.new_tokens,
                t.reply_tokens,
                t.ratio
            );
        }
    }
}
