//! Running the project's commands, confined by the sandbox when there is one, with a time
//! limit: the test suite parsed into a [`SuiteResult`], a benchmark timed; and, for the agent's
//! candidate edits, the tests in a scratch copy of the project.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tiller_sandbox::Sandbox;
use tiller_tools::{CommandExit, CommandOutput, run_command};

use crate::{LoopError, ProjectCommands, SuiteResult, parse_output};

/// Output kept from one run: enough for every test line of a large suite.
const OUTPUT_CAP: usize = 4 << 20;

/// Runs a project's commands in its root.
pub struct Verifier {
    pub root: PathBuf,
    pub commands: ProjectCommands,
    /// Confines every command; `None` runs them unconfined (tests).
    pub sandbox: Option<Arc<Sandbox>>,
    /// Longest a test or benchmark run may take.
    pub timeout: Duration,
}

impl Verifier {
    /// A verifier for `root` with a ten-minute limit per command.
    pub fn new(root: &Path, commands: ProjectCommands, sandbox: Option<Arc<Sandbox>>) -> Self {
        Verifier { root: root.to_path_buf(), commands, sandbox, timeout: Duration::from_secs(600) }
    }

    /// Runs the whole test suite.
    pub fn suite(&self) -> Result<SuiteResult, LoopError> {
        self.tests(&self.commands.test)
    }

    /// Runs test `name` alone where the project says how, else the whole suite.
    pub fn one(&self, name: &str) -> Result<SuiteResult, LoopError> {
        self.tests(&self.commands.one(name))
    }

    fn tests(&self, command: &str) -> Result<SuiteResult, LoopError> {
        self.tests_in(command, &self.root, self.sandbox.as_deref())
    }

    fn tests_in(
        &self,
        command: &str,
        dir: &Path,
        sandbox: Option<&Sandbox>,
    ) -> Result<SuiteResult, LoopError> {
        let out = self.run(command, dir, sandbox)?;
        let mut result = parse_output(&out.output, out.exit == CommandExit::Code(0));
        if let CommandExit::TimedOut(limit) = out.exit {
            result.build_error = Some(format!("`{command}` ran past {limit:?} and was stopped"));
        }
        Ok(result)
    }

    /// Runs `command` once in `dir` and returns its wall time in seconds; an error unless it
    /// exits with status 0.
    pub fn time(
        &self,
        command: &str,
        dir: &Path,
        sandbox: Option<&Sandbox>,
    ) -> Result<f64, LoopError> {
        let started = Instant::now();
        let out = self.run(command, dir, sandbox)?;
        let secs = started.elapsed().as_secs_f64();
        if out.exit != CommandExit::Code(0) {
            return Err(LoopError::Precondition(format!(
                "`{command}` failed in {}: {out}",
                dir.display()
            )));
        }
        Ok(secs)
    }

    /// Runs `command` with `bash -c` in `dir`.
    pub fn run(
        &self,
        command: &str,
        dir: &Path,
        sandbox: Option<&Sandbox>,
    ) -> Result<CommandOutput, LoopError> {
        let args: [OsString; 2] = ["-c".into(), command.into()];
        let mut cmd = match sandbox {
            Some(sandbox) => sandbox.command("bash".as_ref(), &args, dir)?,
            None => {
                let mut cmd = Command::new("bash");
                cmd.args(&args).current_dir(dir);
                cmd
            }
        };
        // No bytecode caches (they would show as new files), no colours, short panics.
        cmd.env("PYTHONDONTWRITEBYTECODE", "1")
            .env("NO_COLOR", "1")
            .env("CARGO_TERM_COLOR", "never")
            .env("RUST_BACKTRACE", "0")
            .env("GIT_TERMINAL_PROMPT", "0");
        Ok(run_command(cmd, self.timeout, OUTPUT_CAP)?)
    }
}

impl tiller_agent::Checker for Verifier {
    /// The failing tests alone (where the project says how to run one), then the suite, in
    /// `dir`, with the sandbox allowed to write there.
    fn check(&self, dir: &Path, failing: &[String]) -> Result<SuiteResult, String> {
        let widened = match &self.sandbox {
            Some(sandbox) if dir != self.root => {
                Some(sandbox.widened(dir).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let sandbox = widened.as_ref().or(self.sandbox.as_deref());
        let one_by_one = self.commands.test_one.is_some();
        for name in failing.iter().filter(|_| one_by_one) {
            let result = self.tests_in(&self.commands.one(name), dir, sandbox);
            match result.map_err(|e| e.to_string())? {
                result if !result.green() => return Ok(result),
                _ => {}
            }
        }
        self.tests_in(&self.commands.test, dir, sandbox).map_err(|e| e.to_string())
    }
}
