//! Errors of the probe.

use std::path::PathBuf;

/// Why a probe operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("unknown suite `{0}` (tiller-basic, humaneval; bugfix for `tiller eval`)")]
    UnknownSuite(String),
    #[error("suite file {path}: {detail}")]
    SuiteFile { path: PathBuf, detail: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Sandbox(#[from] tiller_sandbox::SandboxError),
    #[error("cannot run the tests: {0}")]
    Tool(#[from] tiller_tools::ToolError),
    #[error(transparent)]
    Ledger(#[from] tiller_ledger::LedgerError),
    #[error("cannot draw the chart: {0}")]
    Chart(String),
    #[error("{0}")]
    Window(String),
    #[error("cannot start the agent: {0}")]
    Agent(String),
}

impl ProbeError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> ProbeError {
        ProbeError::Io { what: what.into(), source }
    }
}
