//! Command-line definitions. Flags that select the model are global: they mean the same on
//! every subcommand, and each can also come from the environment or a config profile.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tiller_types::{ApprovalPolicy, ProviderKind};

use crate::command_error::{CommandError, Kind};

#[derive(Debug, Parser)]
#[command(name = "tiller", version, about = "A free-software coding agent for the terminal.")]
pub struct Cli {
    #[command(flatten)]
    pub model: ModelArgs,

    /// With no command: let the commands the model runs use the network (off by default).
    #[arg(long)]
    pub network: bool,

    /// With no command: continue this workspace's latest session in the front end.
    #[arg(short = 'c', long = "continue")]
    pub continue_session: bool,

    /// With no command: continue session ID in the front end.
    #[arg(long, value_name = "ID", conflicts_with = "continue_session")]
    pub resume: Option<String>,

    /// Without a command, tiller opens an interactive session.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one task headless: progress on stderr, the final answer on stdout.
    Exec(ExecArgs),
    /// Continue a recorded session with a new task.
    Resume(ResumeArgs),
    /// Serve an editor over the Agent Client Protocol on stdin and stdout (docs/editors.md).
    Acp(AcpArgs),
    /// List recorded sessions.
    Sessions {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// What tiller recorded: model calls with tokens, cost and latency by day (or --by session,
    /// model, endpoint); `export --csv`, `verify`, `sent`.
    Ledger(LedgerArgs),
    /// The holdability of a git range: lines added and removed, added code that repeats code
    /// elsewhere, and the longest function touched (docs/review.md).
    Review(ReviewArgs),
    /// List the models installed for the embedded engine and those Ollama has pulled; with
    /// `--provider openai`, the endpoint's models. `pull` gets one (docs/models.md).
    Models(crate::commands::models::ModelsArgs),
    /// Measure the embedded engine.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Undo the last step: reset the commit an interactive session made for it and rewind that
    /// session's conversation to before it.
    Undo,
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// Report what this machine offers for confining commands, the tier in force, and how
    /// to fix what is missing.
    Doctor {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run a command confined to the current directory as tiller runs the agent's commands.
    Sandbox(SandboxArgs),
    /// The MCP servers in the config: list them with their tools, add or remove one
    /// (docs/mcp.md).
    Mcp {
        #[command(subcommand)]
        command: crate::commands::mcp::McpCommand,
    },
    /// The drift probe: run a task suite against the model, compare windows of runs, chart
    /// them (docs/probe.md).
    Probe {
        #[command(subcommand)]
        command: crate::commands::probe::ProbeCommand,
    },
    /// Let the agent solve each task of a suite in a scratch repository: first-try and
    /// second-try pass rates, tokens and time.
    Eval(crate::commands::eval::EvalArgs),
    /// The project's commands (tests, one test, build, benchmark) and where each came from.
    Project(ProjectArgs),
    /// Have the agent write a test that reproduces a bug; kept and committed only if it fails
    /// at an assertion while every other test keeps its outcome (docs/loops.md).
    Repro(ReproArgs),
    /// Have the agent fix the code until the reproducing test and the whole suite pass, without
    /// touching the test; then one commit.
    Fix(FixArgs),
    /// Find a bug, reproduce it, fix it, commit both; repeat until --max, the token budget, or
    /// the model finds no more.
    Sweep(SweepArgs),
    /// Have the agent speed up a benchmark; kept only if the tests pass and interleaved runs
    /// show it faster (Mann-Whitney U, p < 0.05, twice).
    Perf(PerfArgs),
}

#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write the commands in force to .tiller/project.toml.
    #[arg(long)]
    pub save: bool,
}

/// What every loop takes.
#[derive(Debug, Args)]
pub struct LoopArgs {
    /// Accept the agent's edits without asking (headless).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Tries the agent gets, each told why the last was rejected.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,
    /// Model turns per try.
    #[arg(long)]
    pub max_steps: Option<u32>,
    /// Let the commands the model runs use the network (off by default).
    #[arg(long)]
    pub network: bool,
}

#[derive(Debug, Args)]
pub struct ReproArgs {
    /// The bug, in words.
    pub bug: String,
    #[command(flatten)]
    pub common: LoopArgs,
}

#[derive(Debug, Args)]
pub struct FixArgs {
    /// The failing test (default: the one the latest `tiller repro` commit added).
    #[arg(long)]
    pub test: Option<String>,
    #[command(flatten)]
    pub common: LoopArgs,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Most test-and-fix pairs.
    #[arg(long, default_value_t = 5)]
    pub max: u32,
    /// Stop before a new round once this many tokens are spent.
    #[arg(long, value_name = "TOKENS")]
    pub budget: Option<u64>,
    /// Where to look for bugs (default: the whole project).
    pub paths: Vec<String>,
    /// One JSON object per committed pair.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: LoopArgs,
}

#[derive(Debug, Args)]
pub struct PerfArgs {
    /// The benchmark command (default: the project's `bench`).
    #[arg(long)]
    pub bench: Option<String>,
    /// Runs of each side per measurement.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..))]
    pub runs: u32,
    /// Do not collect a `perf` profile for the model.
    #[arg(long)]
    pub no_profile: bool,
    #[command(flatten)]
    pub common: LoopArgs,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Allow network access (vsock and io_uring stay refused).
    #[arg(long)]
    pub network: bool,
    /// Kill the command and everything it started after this many seconds (exit code 124).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// The confinement as JSON, as a session hands it to an editor's terminal, in place of the
    /// one for the workspace and config; the command's output is all that is printed.
    #[arg(long, value_name = "JSON", hide = true, conflicts_with = "network")]
    pub policy: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Prefill and decode speed and peak memory of the engine against llama.cpp driven
    /// directly (same model, context, threads, batch and prompt), and the KV-cache reuse over a
    /// scripted conversation. The model is --model (default smollm2).
    Engine(BenchEngineArgs),
    /// One side of `bench engine` in a process of its own: a job as JSON on stdin, the result
    /// as one JSON line on stdout.
    #[command(hide = true)]
    Side,
    /// Stream tokens through the interactive front end into a terminal emulator and count the
    /// bytes written and the full-screen clears per token.
    Render {
        #[arg(long, default_value_t = 5000)]
        tokens: usize,
    },
    /// What noting the working tree before and after each command costs (to review what
    /// commands change), on a generated repository, against launching `true` in the sandbox.
    Tree {
        /// Files in the generated repository.
        #[arg(long, default_value_t = 10_000)]
        files: usize,
        /// Measurements of each kind; the median is reported.
        #[arg(long, default_value_t = 30)]
        rounds: usize,
    },
}

#[derive(Debug, Args)]
pub struct BenchEngineArgs {
    /// Threads for both sides (default: the engine's, one per physical core).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Prompt length, roughly.
    #[arg(long, default_value_t = 256)]
    pub prompt_tokens: usize,
    /// Tokens to generate, for the speed test and for each reply of the conversation.
    #[arg(long, default_value_t = 64)]
    pub gen_tokens: u32,
    /// Runs of each side, alternating; the medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repetitions: u32,
    /// Turns of the scripted conversation.
    #[arg(long, default_value_t = 10)]
    pub turns: usize,
    /// One JSON object with every figure.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AcpArgs {
    /// Let the commands the model runs use the network (off by default).
    #[arg(long)]
    pub network: bool,
}

/// Which model to use and how to reach it.
#[derive(Clone, Debug, Args, Default)]
pub struct ModelArgs {
    /// Config profile to start from.
    #[arg(long, global = true, env = "TILLER_PROFILE")]
    pub profile: Option<String>,
    #[arg(long, global = true, env = "TILLER_PROVIDER", value_parser = parse_provider)]
    pub provider: Option<ProviderKind>,
    /// Endpoint base URL, including the version path (e.g. http://127.0.0.1:8080/v1).
    #[arg(long, global = true, env = "TILLER_BASE_URL")]
    pub base_url: Option<String>,
    /// Model name; for the scripted provider, the script file.
    #[arg(long, short = 'm', global = true, env = "TILLER_MODEL")]
    pub model: Option<String>,
    /// Environment variable that holds the API key.
    #[arg(long, global = true, env = "TILLER_API_KEY_ENV")]
    pub api_key_env: Option<String>,
    /// Workspace directory (default: the current directory).
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Allow `/` or the home folder itself as the workspace, all of it writable to the model.
    #[arg(long, global = true)]
    pub allow_broad_workspace: bool,
    /// When to ask before acting: never, on-request or untrusted.
    #[arg(long, global = true, env = "TILLER_APPROVAL", value_parser = parse_approval)]
    pub approval: Option<ApprovalPolicy>,
    /// Config file (default: $XDG_CONFIG_HOME/tiller/config.toml).
    #[arg(long, global = true, env = "TILLER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Candidate edits to sample at an edit step while the project's tests fail; each is
    /// checked by the tests in a scratch copy and the passing one with the smallest change is
    /// offered (default: 16 on the embedded engine where the project has a test command; 1: off).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub candidates: Option<u16>,
    /// Sampling seed of the embedded engine: from the same seed, the same run (default: 0).
    #[arg(long, global = true, env = "TILLER_SEED")]
    pub seed: Option<u32>,
    /// Where nothing can confine commands (sandbox tier C), run the model's commands unconfined
    /// without asking. They can then do anything your user can. Has no effect in tiers A and B.
    #[arg(long, global = true)]
    pub dangerously_run_unconfined: bool,
}

impl ModelArgs {
    /// The workspace: `-C DIR`, or else the current directory.
    pub fn workspace_dir(&self) -> Result<PathBuf, CommandError> {
        match &self.workspace {
            Some(dir) => Ok(dir.clone()),
            None => std::env::current_dir().map_err(|e| {
                CommandError::new(Kind::Internal, format!("cannot read the current directory: {e}"))
            }),
        }
    }
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// What to do.
    pub task: String,
    /// Print events as JSON lines on stdout (docs/exec-json.md).
    #[arg(long)]
    pub json: bool,
    /// Model turns before giving up.
    #[arg(long)]
    pub max_steps: Option<u32>,
    /// Let the commands the model runs use the network (off by default).
    #[arg(long)]
    pub network: bool,
}

#[derive(Debug, Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    pub command: Option<LedgerCommand>,
    /// How to group the summary of model calls.
    #[arg(long, value_enum, default_value_t = LedgerGroup::Day)]
    pub by: LedgerGroup,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Every model call as CSV on stdout.
    Export {
        #[arg(long, required = true)]
        csv: bool,
    },
    /// Check the hash chain; name the first row that breaks it.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// What left the machine: per endpoint, the files and lines that requests carried.
    Sent {
        /// Only this endpoint (its base URL).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LedgerGroup {
    Day,
    Session,
    Model,
    Endpoint,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Session id (default: the latest session of this workspace).
    #[arg(long)]
    pub session: Option<String>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// `A..B`, `A..` or one commit (default: the last commit; with none yet, the working tree).
    pub range: Option<String>,
    /// The report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_provider(s: &str) -> Result<ProviderKind, String> {
    toml::Value::String(s.into())
        .try_into()
        .map_err(|_| format!("unknown provider `{s}` (openai, anthropic, llama, scripted)"))
}

fn parse_approval(s: &str) -> Result<ApprovalPolicy, String> {
    toml::Value::String(s.into())
        .try_into()
        .map_err(|_| format!("unknown approval policy `{s}` (never, on-request, untrusted)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_parse_on_subcommands() {
        let cli = Cli::try_parse_from([
            "tiller",
            "exec",
            "--provider",
            "scripted",
            "-m",
            "s.json",
            "--approval",
            "on-request",
            "hi",
        ])
        .unwrap();
        assert_eq!(cli.model.provider, Some(ProviderKind::Scripted));
        assert_eq!(cli.model.approval, Some(ApprovalPolicy::OnRequest));
        assert!(Cli::try_parse_from(["tiller", "--provider", "nope", "exec", "x"]).is_err());
    }
}
