//! `tiller eval --suite NAME`: the agent solves each task of a suite in a scratch repository
//! with its tools; first-try and second-try pass rates, tokens and time.

use std::path::Path;
use std::sync::Arc;

use clap::Args;
use tiller_agent::{Agent, AgentConfig, Recorder};
use tiller_probe::eval::eval;
use tiller_tools::{Registry, Shell, Workspace};
use tiller_types::{ApprovalPolicy, ProviderKind};

use crate::cli::ModelArgs;
use crate::command_error::CommandError;
use crate::commands::{self, probe};
use crate::config::{self, Settings};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// tiller-basic (built in) or humaneval.
    #[arg(long, default_value = "tiller-basic")]
    pub suite: String,
    /// Only these tasks (repeat the flag for several).
    #[arg(long = "task", value_name = "ID")]
    pub tasks: Vec<String>,
    /// Model turns per try.
    #[arg(long, default_value_t = 15)]
    pub max_steps: u32,
    /// Seconds the grader gives each task's tests.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Grade unconfined (where no sandbox is available).
    #[arg(long)]
    pub no_sandbox: bool,
    /// The report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(model_args: &ModelArgs, args: &EvalArgs) -> Result<(), CommandError> {
    let settings = config::settle(model_args)?;
    let mut suite = probe::load_suite(&args.suite, true)?;
    if !args.tasks.is_empty() {
        suite = suite.retain(&args.tasks);
    }
    let grader = probe::grader(args.no_sandbox, args.timeout)?;
    let mut agent_for = |root: &Path| agent(root, &settings, args.max_steps).map_err(|e| e.message);
    let report = eval(&suite, &grader, &mut agent_for, &mut |t| {
        let second = t.second_try.map_or(String::new(), |o| format!(", then {}", o.as_str()));
        eprintln!(
            "eval {}: {}{second} ({} tokens, {:.1}s)",
            t.task,
            t.first_try.as_str(),
            t.tokens,
            t.seconds
        );
    })?;
    if args.json {
        outln!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        outln!(
            "{}: {} tasks, first try {:.0}%, second try {:.0}%, {} tokens, {:.0}s",
            report.suite,
            report.tasks.len(),
            report.first_try_rate * 100.0,
            report.second_try_rate * 100.0,
            report.tokens,
            report.seconds
        );
    }
    Ok(())
}

/// An agent for a scratch repository at `root`: the configured model, the tools with the
/// shell confined to `root`, no approvals, every call recorded in the ledger.
fn agent(root: &Path, settings: &Settings, max_steps: u32) -> Result<Agent, CommandError> {
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
    Ok(match checker {
        Some(checker) => agent.with_checker(checker),
        None => agent,
    })
}
