//! `tiller probe run|compare|report`: the drift probe (docs/probe.md). Runs a task suite
//! against the configured model and records every graded trial in the ledger; compares two
//! windows of trials; charts runs over time.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use tiller_ledger::now_ms;
use tiller_model::Cancel;
use tiller_probe::compare::{Comparison, Rule, Verdict, compare};
use tiller_probe::run::{RunOptions, calibrate};
use tiller_probe::{Grader, ProbeError, Suite, Window, report, select};
use tiller_sandbox::Detection;
use tiller_types::ProviderKind;

use crate::cli::ModelArgs;
use crate::command_error::{CommandError, Kind};
use crate::{commands, config, paths};

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// Run a suite K times per task against the model; grade each answer by its tests in the
    /// sandbox and record it in the ledger.
    Run(RunArgs),
    /// Compare a recent window of trials with a baseline: degraded, ok or inconclusive.
    Compare(CompareArgs),
    /// Pass rate and speed per run: a table, and a chart (SVG) with an HTML page.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// tiller-basic (built in) or humaneval (install with scripts/fetch-suite humaneval).
    #[arg(long, default_value = "tiller-basic")]
    pub suite: String,
    /// Trials per task.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: u32,
    /// Model calls at once, each with its own connection (for remote endpoints).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Sampling temperature (default: the profile's, else the endpoint's).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Output tokens per answer.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: u32,
    /// A name for this configuration, shown in reports.
    #[arg(long)]
    pub label: Option<String>,
    /// Afterwards, list the tasks that always passed or always failed and keep only the others
    /// for later runs of this suite.
    #[arg(long)]
    pub calibrate: bool,
    /// Run every task, ignoring a calibration's keep list.
    #[arg(long)]
    pub all_tasks: bool,
    /// Seconds each answer's tests may run.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Run the tests unconfined (where no sandbox is available).
    #[arg(long)]
    pub no_sandbox: bool,
    /// The summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    #[arg(long, default_value = "tiller-basic")]
    pub suite: String,
    /// A run id or SINCE..UNTIL (UTC dates or times); default: the run before --recent of the
    /// same model.
    #[arg(long, value_name = "WINDOW")]
    pub baseline: Option<String>,
    /// A run id or SINCE..UNTIL; default: the latest run.
    #[arg(long, value_name = "WINDOW")]
    pub recent: Option<String>,
    /// Smallest drop in pass rate, in points, that counts as degraded.
    #[arg(long, default_value_t = 5.0)]
    pub min_effect: f64,
    /// Largest drop, in points, an `ok` verdict may leave open.
    #[arg(long, default_value_t = 10.0)]
    pub tolerance: f64,
    /// Decide by a sequential test (SPRT) of the recent trials against the baseline rate.
    #[arg(long)]
    pub quick: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long, default_value = "tiller-basic")]
    pub suite: String,
    /// Folder for probe-SUITE.svg and probe-SUITE.html.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// One JSON object per run on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(model_args: &ModelArgs, command: &ProbeCommand) -> Result<(), CommandError> {
    match command {
        ProbeCommand::Run(args) => probe_run(model_args, args),
        ProbeCommand::Compare(args) => probe_compare(args),
        ProbeCommand::Report(args) => probe_report(args),
    }
}

/// The suite `name`, cut to its calibration keep list unless `all`.
pub fn load_suite(name: &str, all: bool) -> Result<Suite, CommandError> {
    let suite = Suite::load(name, &paths::data_dir())?;
    let keep = keep_file(&suite.name);
    match std::fs::read_to_string(&keep) {
        Ok(text) if !all => {
            let ids: Vec<String> = text.lines().map(str::to_owned).collect();
            eprintln!(
                "probe: {} tasks kept by {} (--all-tasks for every task)",
                ids.len(),
                keep.display()
            );
            Ok(suite.retain(&ids))
        }
        _ => Ok(suite),
    }
}

/// A new run's id: the UTC time to the millisecond.
pub fn run_id() -> String {
    let now = now_ms();
    let stamp = tiller_types::time::utc_timestamp((now / 1000) as u64).replace([':', '-'], "");
    format!("{}-{:03}", stamp.trim_end_matches('Z'), now % 1000)
}

fn keep_file(suite: &str) -> PathBuf {
    paths::data_dir().join(format!("suites/{suite}.keep"))
}

/// A grader confined by this machine's sandbox, unless the user chose otherwise.
pub fn grader(no_sandbox: bool, timeout: u64) -> Result<Grader, CommandError> {
    let mut grader = if no_sandbox {
        Grader::unconfined()
    } else {
        let helper = std::env::current_exe().map_err(|e| {
            CommandError::new(Kind::Internal, format!("cannot find the tiller executable: {e}"))
        })?;
        Grader::confined(Detection::probe(), helper).map_err(|e| {
            CommandError::from(e)
                .with_hint("run `tiller doctor`, or grade unconfined with --no-sandbox")
        })?
    };
    grader.timeout = Duration::from_secs(timeout);
    Ok(grader)
}

fn probe_run(model_args: &ModelArgs, args: &RunArgs) -> Result<(), CommandError> {
    let settings = config::settle(model_args)?;
    if args.jobs > 1
        && settings.profile.provider.unwrap_or(ProviderKind::Llama) == ProviderKind::Llama
    {
        return Err(CommandError::new(Kind::User, "--jobs is for remote endpoints")
            .with_hint("the embedded engine runs one call at a time"));
    }
    let suite = load_suite(&args.suite, args.all_tasks)?;
    let grader = grader(args.no_sandbox, args.timeout)?;
    let providers = (0..args.jobs)
        .map(|_| config::model(&settings).map(|m| m.provider))
        .collect::<Result<Vec<_>, _>>()?;
    let ledger = commands::ledger::open()?;
    let opts = RunOptions {
        run_id: run_id(),
        samples: args.samples,
        temperature: args.temperature.or(settings.profile.temperature),
        max_tokens: Some(args.max_tokens),
        label: args.label.clone(),
    };
    let cancel = Cancel::default();
    let stop = cancel.clone();
    // Installing fails only when a handler is already set, which then stays in charge.
    let _ = ctrlc::set_handler(move || stop.cancel());
    let summary =
        tiller_probe::run::run(&suite, providers, &grader, &ledger, &opts, &cancel, &mut |p| {
            let rate = if p.done > 0 { 100.0 * p.passed as f64 / p.done as f64 } else { 0.0 };
            eprint!(
                "\rprobe {}: {}/{} trials, {} passed ({rate:.0}%)",
                suite.name, p.done, p.total, p.passed
            );
        })?;
    eprintln!();
    let calibration = args.calibrate.then(|| calibrate(&summary.trials));
    if let Some(cal) = &calibration {
        let path = keep_file(&suite.name);
        let write = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
            std::fs::write(&path, cal.keep.iter().map(|id| format!("{id}\n")).collect::<String>())
        });
        write.map_err(|e| CommandError::new(Kind::Internal, format!("{}: {e}", path.display())))?;
        eprintln!("probe: kept {} tasks in {}", cal.keep.len(), path.display());
    }
    if args.json {
        let mut value = serde_json::to_value(&summary).unwrap_or_default();
        value["calibration"] = serde_json::to_value(&calibration).unwrap_or_default();
        outln!("{value}");
    } else {
        let total = summary.trials.len();
        let rate = if total > 0 { 100.0 * summary.passed as f64 / total as f64 } else { 0.0 };
        outln!("run {}: {} of {total} trials passed ({rate:.1}%)", summary.run_id, summary.passed);
        let outcomes: Vec<String> =
            summary.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        outln!("outcomes: {}", outcomes.join(", "));
        if !summary.skipped.is_empty() {
            outln!("skipped (interpreter missing): {}", summary.skipped.join(", "));
        }
        if let Some(cal) = &calibration {
            outln!("always passed: {}", list(&cal.always_pass));
            outln!("always failed: {}", list(&cal.always_fail));
        }
    }
    if summary.cancelled {
        return Err(CommandError::new(
            Kind::Cancelled,
            "cancelled; the trials so far are recorded",
        ));
    }
    Ok(())
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() { "none".into() } else { ids.join(", ") }
}

fn probe_compare(args: &CompareArgs) -> Result<(), CommandError> {
    let ledger = commands::ledger::open()?;
    let trials = ledger.probe_trials(Some(&args.suite))?;
    let window = |w: &Option<String>| w.as_deref().map(str::parse::<Window>).transpose();
    let (a, b) = select(&trials, window(&args.baseline)?.as_ref(), window(&args.recent)?.as_ref())?;
    let rule = Rule {
        min_effect: args.min_effect / 100.0,
        tolerance: args.tolerance / 100.0,
        quick: args.quick,
        ..Rule::default()
    };
    let c = compare(&a, &b, &rule);
    if args.json {
        outln!("{}", serde_json::to_string(&c).unwrap_or_default());
    } else {
        out!("{}", text(&c));
    }
    if c.verdict == Verdict::Degraded {
        return Err(CommandError::new(
            Kind::Task,
            "the recent window is degraded against the baseline",
        ));
    }
    Ok(())
}

/// The comparison for the terminal.
fn text(c: &Comparison) -> String {
    let mut out = String::new();
    for (name, w) in [("baseline", &c.baseline), ("recent", &c.recent)] {
        out += &format!(
            "{name:<9} {:<28} {:>5} trials  pass {:5.1}% ({:.1}–{:.1}%)  model {}\n",
            w.runs.join(","),
            w.trials,
            w.pass_rate * 100.0,
            w.pass_rate_ci.0 * 100.0,
            w.pass_rate_ci.1 * 100.0,
            w.models_returned.join(",")
        );
    }
    let p = &c.pass_rate;
    let cmh = p.cmh_p.map_or("n/a".into(), |v| format!("{v:.4}"));
    out += &format!(
        "pass rate {:+.1} points (95% CI {:+.1} to {:+.1}) over {} tasks; CMH p {cmh} (Holm {:.4}), pooled Fisher p {:.4}{}\n",
        p.difference * 100.0,
        p.difference_ci.0 * 100.0,
        p.difference_ci.1 * 100.0,
        p.tasks,
        p.adjusted_p,
        p.fisher_p,
        if p.flagged { "  FLAGGED" } else { "" }
    );
    for (name, unit, s) in [("ttft", "ms", &c.ttft_ms), ("decode", "tok/s", &c.decode_tps)] {
        if let Some(s) = s {
            out += &format!(
                "{name:<9} median {:.1} → {:.1} {unit} ({:+.0}%), shift {:+.1} (95% CI {:+.1} to {:+.1}); p {:.4} (Holm {:.4}){}\n",
                s.median_baseline,
                s.median_recent,
                s.change * 100.0,
                s.shift,
                s.shift_ci.0,
                s.shift_ci.1,
                s.p_value,
                s.adjusted_p,
                if s.flagged { "  FLAGGED" } else { "" }
            );
        }
    }
    out += &format!(
        "cusum     {}\n",
        if c.suspect { "SUSPECT: the recent trials drifted down" } else { "quiet" }
    );
    for w in &c.warnings {
        out += &format!("warning: {w}\n");
    }
    let verdict = match c.verdict {
        Verdict::Degraded => "degraded",
        Verdict::Ok => "ok",
        Verdict::Inconclusive => "inconclusive",
    };
    out + &format!("verdict: {verdict}: {}\n", c.reasons.join("; "))
}

fn probe_report(args: &ReportArgs) -> Result<(), CommandError> {
    let ledger = commands::ledger::open()?;
    let points = report::runs(&ledger.probe_trials(Some(&args.suite))?);
    if points.is_empty() {
        return Err(CommandError::new(
            Kind::User,
            format!("no probe runs of {} recorded", args.suite),
        )
        .with_hint("start with `tiller probe run`"));
    }
    let svg = report::svg(&points)?;
    let html = report::html(&format!("tiller probe: {}", args.suite), &points, &svg);
    let io = |p: &PathBuf, e: std::io::Error| {
        CommandError::new(Kind::User, format!("{}: {e}", p.display()))
    };
    std::fs::create_dir_all(&args.out).map_err(|e| io(&args.out, e))?;
    for (ext, body) in [("svg", &svg), ("html", &html)] {
        let path = args.out.join(format!("probe-{}.{ext}", args.suite));
        std::fs::write(&path, body).map_err(|e| io(&path, e))?;
        eprintln!("probe: wrote {}", path.display());
    }
    if args.json {
        for p in &points {
            outln!("{}", serde_json::to_string(p).unwrap_or_default());
        }
    } else {
        out!("{}", report::table(&points));
    }
    Ok(())
}

impl From<ProbeError> for CommandError {
    fn from(e: ProbeError) -> Self {
        match e {
            ProbeError::Sandbox(e) => e.into(),
            ProbeError::Ledger(e) => e.into(),
            ProbeError::UnknownSuite(_) | ProbeError::Window(_) => {
                CommandError::new(Kind::User, e.to_string())
            }
            ProbeError::SuiteFile { .. } => CommandError::new(Kind::Config, e.to_string()),
            _ => CommandError::new(Kind::Internal, e.to_string()),
        }
    }
}
