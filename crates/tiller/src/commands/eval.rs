//! `tiller eval --suite NAME`: the agent fixes each task's scratch repository with its tools;
//! solve rates, stages, steps, tokens and time, each task a trial in the ledger.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tiller_agent::{Agent, AgentConfig, Recorder};
use tiller_model::ModelInfo;
use tiller_probe::Suite;
use tiller_probe::eval::{EvalOptions, EvalReport, eval};
use tiller_probe::run::RunOptions;
use tiller_tools::{Registry, Shell, Workspace};
use tiller_types::{ApprovalPolicy, ProviderKind};

use crate::cli::ModelArgs;
use crate::command_error::CommandError;
use crate::commands::{self, probe};
use crate::config::{self, Settings};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// bugfix, tiller-basic (both built in) or humaneval.
    #[arg(long, default_value = "tiller-basic")]
    pub suite: String,
    /// Only these tasks (repeat the flag for several).
    #[arg(long = "task", value_name = "ID")]
    pub tasks: Vec<String>,
    /// Tries of each task, each a trial in the ledger.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub samples: u32,
    /// Model turns per try.
    #[arg(long, default_value_t = 15)]
    pub max_steps: u32,
    /// Seconds one task may take, both tries together; the agent is stopped then.
    #[arg(long, value_name = "SECS")]
    pub task_time: Option<u64>,
    /// Seconds the grader gives each task's tests.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// A name for this configuration, for `tiller probe compare` and reports.
    #[arg(long)]
    pub label: Option<String>,
    /// Grade unconfined (where no sandbox is available).
    #[arg(long)]
    pub no_sandbox: bool,
    /// The report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(model_args: &ModelArgs, args: &EvalArgs) -> Result<(), CommandError> {
    let settings = config::settle(model_args)?;
    let mut suite = match args.suite.as_str() {
        "bugfix" => Suite::bugfix()?,
        name => Suite::from_answers(&probe::load_suite(name, true)?),
    };
    if !args.tasks.is_empty() {
        suite = suite.retain(&args.tasks);
    }
    let grader = probe::grader(args.no_sandbox, args.timeout)?;
    let ledger = commands::ledger::open()?;
    let opts = EvalOptions {
        run: RunOptions {
            run_id: probe::run_id(),
            samples: args.samples,
            temperature: settings.profile.temperature,
            max_tokens: settings.profile.max_tokens,
            label: args.label.clone(),
        },
        task_time: args.task_time.map(Duration::from_secs),
    };
    let mut agent_for = |root: &Path| agent(root, &settings, args.max_steps).map_err(|e| e.message);
    let report = eval(&suite, &grader, &ledger, &opts, &mut agent_for, &mut |t| {
        let second = t.second_try.map_or(String::new(), |o| format!(", then {}", o.as_str()));
        eprintln!(
            "eval {}: {}{second} ({} steps, {} tokens, {:.1}s)",
            t.task,
            t.first_try.as_str(),
            t.steps,
            t.tokens,
            t.seconds
        );
    })?;
    if args.json {
        outln!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        out!("{}", table(&report));
    }
    Ok(())
}

/// The report for the terminal: one line per task, then the totals.
fn table(report: &EvalReport) -> String {
    let mut out = format!(
        "{:<20} {:<13} {:<12} {:>5} {:>6} {:>8} {:>7}\n",
        "task", "outcome", "stage", "steps", "failed", "tokens", "seconds"
    );
    for t in &report.tasks {
        out += &format!(
            "{:<20} {:<13} {:<12} {:>5} {:>6} {:>8} {:>7.1}\n",
            t.task,
            t.outcome().as_str(),
            t.stage.as_str(),
            t.steps,
            t.failed_calls,
            t.tokens,
            t.seconds
        );
    }
    let stages: Vec<String> =
        report.stages.iter().map(|(s, n)| format!("{} {n}", s.as_str())).collect();
    out + &format!(
        "{} (run {}): {} tasks, solved {:.0}% first try, {:.0}% after the second; {}; {} tokens, {:.0}s\n",
        report.suite,
        report.run_id,
        report.tasks.len(),
        report.first_try_rate * 100.0,
        report.second_try_rate * 100.0,
        stages.join(", "),
        report.tokens,
        report.seconds
    )
}

/// An agent for a scratch repository at `root`, and its model: the configured model, the tools with the
/// shell confined to `root`, no approvals, every call recorded in the ledger.
fn agent(
    root: &Path,
    settings: &Settings,
    max_steps: u32,
) -> Result<(Agent, ModelInfo), CommandError> {
    let model = config::model(settings)?;
    let info = model.provider.info();
    let sandbox = commands::sandbox::for_workspace(root, false, settings)?;
    let sandbox = Arc::new(sandbox);
    let shell = Shell { sandbox: Some(Arc::clone(&sandbox)), ..Shell::default() };
    let engine = info.provider == ProviderKind::Llama;
    let (candidates, checker) = commands::session::test_runner(root, settings, engine, &sandbox);
    let config = AgentConfig {
        max_steps,
        approval: ApprovalPolicy::Never,
        max_tokens: settings.profile.max_tokens,
        temperature: settings.profile.temperature,
        answer_tool: settings.profile.answer_tool.unwrap_or(info.provider == ProviderKind::Llama),
        remote: model.remote,
        constrained: engine,
        brief: engine,
        candidates,
        ..AgentConfig::default()
    };
    let session = format!("eval-{}", root.file_name().unwrap_or_default().to_string_lossy());
    let recorder = Recorder::new(commands::ledger::open()?, session, settings.prices.clone());
    let agent =
        Agent::new(model.provider, Registry::with_shell(shell), Workspace::new(root)?, config)
            .with_ledger(recorder);
    let agent = match checker {
        Some(checker) => agent.with_checker(checker),
        None => agent,
    };
    Ok((agent, info))
}
