//! `perf`: the agent optimises for a benchmark command; tiller keeps the change only if the
//! tests pass and interleaved runs against a checkout of HEAD show it faster by a one-sided
//! Mann-Whitney U test at p < 0.05, in two measurements running one after the other (one alone
//! would keep one no-op change in twenty). Reported as benchstat does: medians, the
//! Hodges-Lehmann shift with its 95% interval as a percentage, p and the sample sizes.

use std::path::Path;

use serde_json::json;
use tiller_sandbox::Sandbox;
use tiller_stats::{Alternative, MannWhitney, mann_whitney, median};
use tiller_tools::git::{SESSION_TRAILER, commit, git};

use crate::git::{require_clean, revert};
use crate::{Conclusion, Loop, LoopError};
use tiller_tools::{PROJECT_FILE, is_test_path, shell_quote};
use tiller_types::text::clip;

/// Significance level of each measurement.
const ALPHA: f64 = 0.05;

/// The benchmark and how to measure it.
#[derive(Clone, Debug)]
pub struct PerfOptions {
    /// A `bash -c` line, run in the project root (and in the baseline checkout).
    pub bench: String,
    /// Runs of each side per measurement.
    pub runs: usize,
    /// Give the model a `perf` profile of the benchmark when `perf` is installed.
    pub profile: bool,
}

/// Wall times in seconds of interleaved runs, and the test on them.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub baseline: Vec<f64>,
    pub candidate: Vec<f64>,
    pub test: MannWhitney,
}

impl Measurement {
    /// Whether the candidate is faster at the significance level.
    pub fn faster(&self) -> bool {
        self.test.p_value < ALPHA
    }

    /// `time: 412ms → 198ms −51.9% [−53.0%, −50.2%] p=0.0002 n=10+10`.
    pub fn summary(&self) -> String {
        let t = &self.test;
        let pct = |x: f64| format!("{:+.1}%", 100.0 * x / t.median_a).replace('-', "−");
        let p = if t.p_value < 1e-4 { "p<0.0001".into() } else { format!("p={:.4}", t.p_value) };
        format!(
            "time: {} → {} {} [{}, {}] {p} n={}+{}",
            seconds(t.median_a),
            seconds(t.median_b),
            pct(t.shift),
            pct(t.shift_ci.0),
            pct(t.shift_ci.1),
            self.baseline.len(),
            self.candidate.len()
        )
    }

    fn data(&self) -> serde_json::Value {
        let t = &self.test;
        json!({
            "baseline_s": self.baseline, "candidate_s": self.candidate,
            "median_baseline_s": t.median_a, "median_candidate_s": t.median_b,
            "shift_s": t.shift, "shift_ci_s": [t.shift_ci.0, t.shift_ci.1],
            "u": t.u, "p": t.p_value, "summary": self.summary(),
        })
    }
}

/// A kept optimisation.
#[derive(Clone, Debug, PartialEq)]
pub struct Sped {
    pub measurement: Measurement,
    /// The second, confirming measurement.
    pub confirmation: Measurement,
    pub files: Vec<String>,
    pub commit: String,
}

/// Has the agent make `options.bench` faster and keeps only a measured speed-up.
pub fn perf(lp: &mut Loop, options: &PerfOptions) -> Result<Conclusion<Sped>, LoopError> {
    let root = lp.verifier.root.clone();
    require_clean(&root)?;
    if !lp.verifier.suite()?.green() {
        return Err(LoopError::Precondition("the test suite fails before any change".into()));
    }
    let scratch = tempfile::Builder::new()
        .prefix("tiller-perf-")
        .tempdir()
        .map_err(|e| LoopError::Precondition(format!("cannot create a scratch directory: {e}")))?;
    let baseline = Baseline::add(&root, &scratch.path().join("baseline"))?;
    let sandbox = lp.verifier.sandbox.as_deref().map(|s| s.widened(scratch.path())).transpose()?;
    let bench = options.bench.as_str();
    lp.verifier.time(bench, &root, sandbox.as_ref())?;
    let before = (0..options.runs)
        .map(|_| lp.verifier.time(bench, &root, sandbox.as_ref()))
        .collect::<Result<Vec<f64>, _>>()?;
    let now = median(&before);
    lp.note(
        "perf",
        "baseline",
        "measured",
        None,
        json!({ "bench": bench, "runs_s": before, "median_s": now }),
    )?;
    let profile = if options.profile {
        profile(lp, bench, scratch.path(), sandbox.as_ref())?
    } else {
        String::new()
    };
    // The benchmark's own files (those its command names) and the tests: a change that
    // edits what is measured, or deletes what checks behaviour, is not kept.
    let bench_files = bench_files(&root, bench)?;
    let is_protected = |path: &str| {
        bench_files.iter().any(|f| f == path) || is_test_path(path) || path == PROJECT_FILE
    };
    let mut task = format!(
        "Make `{bench}` faster: it takes {} (median of {} runs).{profile}\n\nChange the code it \
         exercises, keep its behaviour, and keep the tests passing (`{}`). Do not change the \
         benchmark ({}) or the tests: tiller refuses such changes. tiller keeps the change only if interleaved runs show it faster.",
        seconds(now),
        options.runs,
        lp.verifier.commands.test,
        if bench_files.is_empty() { "its command".to_string() } else { bench_files.join(", ") },
    );
    let mut reason = String::new();
    for attempt in 1..=lp.attempts {
        let (files, touched) = lp.attempt(&task, &is_protected, "the benchmark or the tests")?;
        let why = if let Some(why) = touched {
            why
        } else if files.is_empty() {
            "nothing changed".to_string()
        } else if !lp.verifier.suite()?.green() {
            "the tests fail with this change".to_string()
        } else {
            let first = measure(lp, bench, &baseline.dir, sandbox.as_ref(), options.runs)?;
            lp.note("perf", "measure", verdict(&first), Some(&first.summary()), first.data())?;
            if !first.faster() {
                format!("not significantly faster ({})", first.summary())
            } else {
                let second = measure(lp, bench, &baseline.dir, sandbox.as_ref(), options.runs)?;
                lp.note(
                    "perf",
                    "confirm",
                    verdict(&second),
                    Some(&second.summary()),
                    second.data(),
                )?;
                if second.faster() {
                    let message = format!("Speed up `{}`\n\n{}", clip(bench, 50), second.summary());
                    let hash =
                        commit(&root, &files, &message, &[(SESSION_TRAILER, lp.session.clone())])?;
                    let data = json!({ "attempt": attempt, "files": files, "commit": hash });
                    lp.note("perf", "attempt", "kept", Some(&second.summary()), data)?;
                    return Ok(Conclusion::Accepted(Sped {
                        measurement: first,
                        confirmation: second,
                        files,
                        commit: hash,
                    }));
                }
                format!("faster in one measurement but not in the next ({})", second.summary())
            }
        };
        revert(&root, &files)?;
        lp.note(
            "perf",
            "attempt",
            "reverted",
            Some(&why),
            json!({ "attempt": attempt, "files": files }),
        )?;
        task = format!("tiller reverted the change: {why}. Try another optimisation.");
        reason = why;
    }
    Ok(Conclusion::Rejected(reason))
}

/// The tracked files the words of `bench` name, relative to `root`: `python bench.py`,
/// `./scripts/bench.sh --fast` and `cargo bench --bench parse` name `bench.py`,
/// `scripts/bench.sh` and (as `benches/parse.rs`) the bench target.
fn bench_files(root: &Path, bench: &str) -> Result<Vec<String>, LoopError> {
    let tracked = git(root, &["ls-files", "-z"])?;
    let words: Vec<&str> = bench
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '"' | '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_start_matches("./"))
        .collect();
    let named = |path: &str| {
        let stem = Path::new(path).file_stem().and_then(|s| s.to_str());
        words.contains(&path)
            || (path.starts_with("benches/") && stem.is_some_and(|s| words.contains(&s)))
    };
    Ok(tracked.split('\0').filter(|p| named(p)).map(str::to_string).collect())
}

fn verdict(m: &Measurement) -> &'static str {
    if m.faster() { "faster" } else { "not significant" }
}

/// `runs` timed runs of each side, alternating which goes first, after one warm-up run each.
fn measure(
    lp: &Loop,
    bench: &str,
    baseline: &Path,
    sandbox: Option<&Sandbox>,
    runs: usize,
) -> Result<Measurement, LoopError> {
    let v = &lp.verifier;
    let (mut a, mut b) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    v.time(bench, baseline, sandbox)?;
    v.time(bench, &v.root, sandbox)?;
    for i in 0..runs {
        if i % 2 == 0 {
            a.push(v.time(bench, baseline, sandbox)?);
            b.push(v.time(bench, &v.root, sandbox)?);
        } else {
            b.push(v.time(bench, &v.root, sandbox)?);
            a.push(v.time(bench, baseline, sandbox)?);
        }
    }
    // Greater: the baseline's times tend to be larger than the candidate's.
    let test = mann_whitney(&a, &b, Alternative::Greater)
        .ok_or_else(|| LoopError::Precondition("--runs must be at least 1".into()))?;
    Ok(Measurement { baseline: a, candidate: b, test })
}

/// A `perf` profile of one run for the model, or a line saying why there is none.
fn profile(
    lp: &mut Loop,
    bench: &str,
    scratch: &Path,
    sandbox: Option<&Sandbox>,
) -> Result<String, LoopError> {
    let installed = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("perf").is_file()));
    let data = scratch.join("perf.data");
    let record = format!(
        "perf record -q -g -o {} -- bash -c {}",
        shell_quote(&data.to_string_lossy()),
        shell_quote(bench)
    );
    let report = format!(
        "perf report --stdio --no-children --percent-limit 2 -i {} | grep -v '^#' | grep -v '^$' | head -60",
        shell_quote(&data.to_string_lossy())
    );
    let why = if !installed {
        "perf is not installed".to_string()
    } else {
        let v = &lp.verifier;
        let out = v.run(&record, &v.root, sandbox)?;
        let shown = v.run(&report, &v.root, sandbox)?;
        if out.exit == tiller_tools::CommandExit::Code(0) && !shown.output.trim().is_empty() {
            lp.note("perf", "profile", "recorded", None, json!({}))?;
            return Ok(format!("\n\nA profile of one run (perf report):\n{}", shown.output));
        }
        format!("perf record failed: {}", out.output.lines().next().unwrap_or("no output"))
    };
    lp.note("perf", "profile", "none", Some(&why), json!({}))?;
    Ok(String::new())
}

/// A checkout of HEAD to measure against, removed when dropped.
struct Baseline<'a> {
    root: &'a Path,
    dir: std::path::PathBuf,
}

impl<'a> Baseline<'a> {
    fn add(root: &'a Path, dir: &Path) -> Result<Baseline<'a>, LoopError> {
        git(root, &["worktree", "add", "--quiet", "--detach", &dir.to_string_lossy(), "HEAD"])?;
        Ok(Baseline { root, dir: dir.to_path_buf() })
    }
}

impl Drop for Baseline<'_> {
    fn drop(&mut self) {
        // A worktree left registered is pruned by git later; nothing to do about a failure here.
        let _ = git(self.root, &["worktree", "remove", "--force", &self.dir.to_string_lossy()]);
    }
}

/// A duration for people: `412ms`, `19.8ms`, `1.25s`.
fn seconds(s: f64) -> String {
    let ms = s * 1000.0;
    match ms {
        _ if ms >= 1000.0 => format!("{s:.2}s"),
        _ if ms >= 100.0 => format!("{ms:.0}ms"),
        _ if ms >= 10.0 => format!("{ms:.1}ms"),
        _ => format!("{ms:.2}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_files_are_those_its_command_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]).unwrap();
        let files = ["bench.py", "scripts/bench.sh", "benches/parse.rs", "src/parse.rs", "b.py"];
        for file in files {
            std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            std::fs::write(root.join(file), "x\n").unwrap();
        }
        commit(root, &files.map(String::from), "init", &[]).unwrap();
        let named = |bench| bench_files(root, bench).unwrap();
        assert_eq!(named("python3 bench.py"), ["bench.py"]);
        assert_eq!(named("cd x && ./scripts/bench.sh --fast"), ["scripts/bench.sh"]);
        assert_eq!(named("cargo bench --bench parse"), ["benches/parse.rs"]);
        assert!(named("make bench").is_empty());
    }

    #[test]
    fn summary_reads_like_benchstat() {
        let baseline = vec![0.410, 0.412, 0.415, 0.411, 0.413];
        let candidate = vec![0.198, 0.199, 0.197, 0.200, 0.198];
        let test = mann_whitney(&baseline, &candidate, Alternative::Greater).unwrap();
        let m = Measurement { baseline, candidate, test };
        assert!(m.faster());
        assert_eq!(m.summary(), "time: 412ms → 198ms −51.9% [−52.7%, −51.2%] p=0.0060 n=5+5");
        assert_eq!(
            (seconds(1.254), seconds(0.0198), seconds(0.0012)),
            ("1.25s".into(), "19.8ms".into(), "1.20ms".into())
        );
    }
}
