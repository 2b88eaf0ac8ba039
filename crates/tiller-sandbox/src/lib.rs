//! Confinement for the commands a tiller agent runs: writes only inside the workspace and a
//! private temporary directory, reads elsewhere, no network, no way to outlive a timeout, the
//! repository's metadata read-only, a minimal environment.
//!
//! - [`Policy`] says what a command may touch (plain data).
//! - [`Detection`] says what this machine offers, and so which [`Tier`] is in force.
//! - [`Sandbox::command`] wraps a program in bubblewrap and the helper (tier A) or the helper
//!   alone (tier B); in tier C it refuses, and the caller must ask the user instead.
//! - [`helper_main`] is the helper: the `tiller` executable started again as
//!   `tiller __sandbox POLICY -- PROGRAM ARGS…`. It applies rlimits, Landlock and seccomp to
//!   itself, then executes the program.
//!
//! docs/sandbox.md describes the tiers and what each leaves open.

mod detect;
mod helper;
mod launch;
mod policy;
mod seccomp;

use std::io;
use std::path::PathBuf;

pub use detect::{Detection, Tier};
pub use helper::{DENY_USERNS_ARG, HELPER_ARG, helper_main};
pub use launch::Sandbox;
pub use policy::{BASE_ENV, Limits, Policy};

/// Everything that can go wrong while confining a command.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Tier C: nothing here can confine commands, so each one needs the user's approval.
    #[error("no sandbox is available here ({0}), so commands need approval")]
    Unavailable(String),
    #[error("{}: {source}", path.display())]
    Path { path: PathBuf, source: io::Error },
    #[error("cannot create the sandbox's private temporary directory: {0}")]
    TempDir(io::Error),
    #[error("bad arguments for the sandbox helper: {0}")]
    HelperArgs(String),
    #[error("cannot set {what}: {source}")]
    Setup { what: &'static str, source: io::Error },
    #[error("Landlock: {0}")]
    Landlock(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("cannot run {program}: {source}")]
    Exec { program: String, source: io::Error },
}
