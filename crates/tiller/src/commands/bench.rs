//! `tiller bench engine`: the embedded engine against llama.cpp driven directly, each side in a
//! child process of its own (this binary again, as the hidden `bench side`), alternating, so
//! that both see the same machine and each reports its own peak memory. `tiller bench render`:
//! what streaming costs the terminal. `tiller bench tree`: what watching the working tree around
//! each command costs, against the sandbox's own launch.

use crate::cli::{BenchCommand, ModelArgs};
use crate::command_error::CommandError;

pub fn run(model: &ModelArgs, command: BenchCommand) -> Result<(), CommandError> {
    match command {
        BenchCommand::Render { tokens } => render(tokens),
        BenchCommand::Tree { files, rounds } => tree(model, files, rounds.max(1)),
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

/// `tiller bench tree`: a generated repository of `files` text files (and an ignored build
/// folder), watched as the agent watches it around a command: the first note (which reads every
/// file once), a command that changed nothing, a command that changed one file; each against
/// running `true` in the sandbox.
fn tree(model: &ModelArgs, files: usize, rounds: usize) -> Result<(), CommandError> {
    use std::time::{Duration, Instant};
    use tiller_tools::{TreeWatch, Workspace};

    let internal = |e: &dyn std::fmt::Display| {
        CommandError::new(crate::command_error::Kind::Internal, e.to_string())
    };
    let dir = tempfile::tempdir().map_err(|e| internal(&e))?;
    let root = dir.path();
    let line = "let value = compute(input, options); // a line of ordinary source text\n";
    for n in 0..files {
        let path = root.join(format!("src/m{:03}/f{n}.rs", n % 100));
        if n < 100 {
            std::fs::create_dir_all(path.parent().unwrap_or(root)).map_err(|e| internal(&e))?;
        }
        std::fs::write(&path, line.repeat(20 + n % 40)).map_err(|e| internal(&e))?;
    }
    std::fs::create_dir_all(root.join("target")).map_err(|e| internal(&e))?;
    for n in 0..1000 {
        std::fs::write(root.join(format!("target/o{n}")), "x").map_err(|e| internal(&e))?;
    }
    std::fs::write(root.join(".gitignore"), "target/\n").map_err(|e| internal(&e))?;
    let ws = Workspace::new(root).map_err(|e| internal(&e))?;
    let settings = crate::config::settle(model)?;
    let sandbox = super::sandbox::for_workspace(ws.root(), false, &settings)?;
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let time = |f: &mut dyn FnMut() -> Result<(), CommandError>| -> Result<Duration, CommandError> {
        let started = Instant::now();
        f()?;
        Ok(started.elapsed())
    };

    let mut watch = TreeWatch::default();
    let first = time(&mut || watch.before(&ws).map_err(|e| internal(&e)))?;
    let (mut unchanged, mut one_changed, mut launch) = (Vec::new(), Vec::new(), Vec::new());
    let victim = ws.root().join("src/m000/f0.rs");
    for round in 0..rounds {
        unchanged.push(time(&mut || {
            watch.before(&ws).map_err(|e| internal(&e))?;
            let seen = watch.after(&ws).map_err(|e| internal(&e))?;
            match seen.changes.files.len() {
                0 => Ok(()),
                n => Err(internal(&format!("{n} files seen changed in an unchanged tree"))),
            }
        })?);
        one_changed.push(time(&mut || {
            watch.before(&ws).map_err(|e| internal(&e))?;
            std::fs::write(&victim, format!("{line}// round {round}\n"))
                .map_err(|e| internal(&e))?;
            let seen = watch.after(&ws).map_err(|e| internal(&e))?;
            match seen.changes.files.len() {
                1 => Ok(()),
                n => Err(internal(&format!("{n} files seen changed, not 1"))),
            }
        })?);
        launch.push(time(&mut || {
            let mut cmd = match sandbox.command(std::ffi::OsStr::new("true"), &[], ws.root()) {
                Ok(cmd) => cmd,
                // Tier C: nothing confines, so the reference is the bare launch.
                Err(_) => std::process::Command::new("true"),
            };
            let status = cmd.status().map_err(|e| internal(&e))?;
            if status.success() { Ok(()) } else { Err(internal(&"`true` failed")) }
        })?);
    }
    let (unchanged, one_changed, launch) = (median(unchanged), median(one_changed), median(launch));
    let ratio = |d: Duration| d.as_secs_f64() / launch.as_secs_f64();
    outln!("tree: {files} files (and 1000 ignored), {rounds} rounds, medians");
    outln!("sandbox: {}", sandbox.detection().summary());
    outln!("launching `true` in the sandbox: {launch:.2?}");
    outln!(
        "first note of the tree (reads every file once): {first:.2?} ({:.2}x launch)",
        ratio(first)
    );
    outln!(
        "before + after a command that changed nothing: {unchanged:.2?} ({:.2}x launch)",
        ratio(unchanged)
    );
    outln!(
        "before + after a command that changed one file: {one_changed:.2?} ({:.2}x launch)",
        ratio(one_changed)
    );
    Ok(())
}

#[cfg(feature = "llama")]
mod imp {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    use tiller_llama::bench::{self, Comparison, Job, Run, Setup, Together, TurnFigures};

    use crate::cli::{BenchEngineArgs, ModelArgs};
    use crate::command_error::{CommandError, Kind};
    use crate::engine::DEFAULT_MODEL;

    /// Candidate counts measured decoding together.
    const CANDIDATES: [usize; 4] = [1, 2, 4, 8];

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
        eprintln!("bench: candidates decoded together");
        let together = bench::candidates(&setup, &CANDIDATES)?;

        if args.json {
            let report = serde_json::json!({
                "model": setup.model,
                "threads": setup.threads,
                "speed": speed,
                "turns": turns,
                "candidates": together,
            });
            outln!("{report}");
        } else {
            print_table(&setup, &speed, &turns);
            print_together(&together);
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

    fn print_table(setup: &Setup, s: &Comparison, turns: &[TurnFigures]) {
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

    fn print_together(together: &[Together]) {
        outln!();
        outln!("candidates  grammar  tokens  wall s   tok/s  wall / one");
        for t in together {
            outln!(
                "{:>10} {:>8} {:>7} {:>7.2} {:>7.1} {:>11.2}",
                t.sequences,
                if t.grammar { "yes" } else { "no" },
                t.gen_tokens,
                t.wall_s,
                t.tps(),
                t.wall_ratio
            );
        }
    }
}
