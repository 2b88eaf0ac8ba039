//! Verified loops: the agent proposes, and tiller checks every claim by running the project's
//! own commands, never taking the model's word for a result.
//!
//! - [`repro`]: the agent writes a test for a bug; it is kept only if it fails at an assertion
//!   while every other test keeps its outcome, then committed on its own.
//! - [`fix`]: the agent changes code (never the reproducing test) until that test and the whole
//!   suite pass; then one commit.
//! - [`sweep`]: find a bug, repro, fix, commit; again, until a limit or the model finds none.
//! - [`perf`]: an optimisation is kept only if the tests pass and interleaved runs of a
//!   benchmark show it faster by a Mann-Whitney U test at p < 0.05, twice.
//!
//! The project's commands come from [`ProjectCommands`]; they run through a [`Verifier`], in
//! the sandbox. Each loop drives an [`Agent`](tiller_agent::Agent) built by the caller, through
//! a [`Loop`], which also records every step and verdict in the ledger.

mod context;
mod fix;
mod git;
mod perf;
mod repro;
mod sweep;
mod verify;

pub use context::{Conclusion, Loop, Step};
pub use fix::{Fixed, fix};
pub use perf::{Measurement, PerfOptions, Sped, perf};
pub use repro::{Repro, repro};
pub use sweep::{Pair, Sweep, SweepOptions, sweep};
pub use tiller_tools::{Failure, Origin, PROJECT_FILE, ProjectCommands, SuiteResult, parse_output};
pub use verify::Verifier;

/// Everything that can stop a loop before it reaches a verdict.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Agent(#[from] tiller_agent::AgentError),
    #[error(transparent)]
    Tool(#[from] tiller_tools::ToolError),
    #[error(transparent)]
    Sandbox(#[from] tiller_sandbox::SandboxError),
    #[error(transparent)]
    Ledger(#[from] tiller_ledger::LedgerError),
    /// The loop cannot start from this state of the project.
    #[error("{0}")]
    Precondition(String),
}
