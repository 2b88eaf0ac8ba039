//! Running the project's commands, confined by the sandbox when there is one, with a time
//! limit: the test suite parsed into a [`SuiteResult`], a benchmark timed; and, for the agent's
//! candidate edits, the tests in a scratch copy of the project.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tiller_sandbox::Sandbox;
use tiller_tools::{CommandExit, CommandOutput, run_command_until};
use tiller_types::Cancel;

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
    /// How long the last run of the tests in `root` took: a candidate's run in a copy may take
    /// [`CANDIDATE_SLOWDOWN`] times as long before it is stopped as a candidate that hangs.
    last_run: Mutex<Option<Duration>>,
}

/// How many times as long as the tests took in the workspace a candidate's run may take.
const CANDIDATE_SLOWDOWN: u32 = 10;

/// The least time a candidate's run is given, however fast the tests ran in the workspace.
const CANDIDATE_FLOOR: Duration = Duration::from_secs(10);

/// The limit on a candidate's run, given the last run in the workspace and the verifier's own.
fn candidate_limit(last_run: Option<Duration>, timeout: Duration) -> Duration {
    last_run.map_or(timeout, |t| (t * CANDIDATE_SLOWDOWN).max(CANDIDATE_FLOOR).min(timeout))
}

impl Verifier {
    /// A verifier for `root` with a ten-minute limit per command.
    pub fn new(root: &Path, commands: ProjectCommands, sandbox: Option<Arc<Sandbox>>) -> Self {
        Verifier {
            root: root.to_path_buf(),
            commands,
            sandbox,
            timeout: Duration::from_secs(600),
            last_run: Mutex::new(None),
        }
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
        let sandbox = self.sandbox.as_deref();
        self.tests_in(command, &self.root, sandbox, self.timeout, &Cancel::default())
    }

    /// Runs the tests with `command` in `dir`, stopped at `limit` or when `cancel` is set.
    fn tests_in(
        &self,
        command: &str,
        dir: &Path,
        sandbox: Option<&Sandbox>,
        limit: Duration,
        cancel: &Cancel,
    ) -> Result<SuiteResult, LoopError> {
        let started = Instant::now();
        let out = self.run_until(command, dir, sandbox, limit, cancel)?;
        if dir == self.root {
            *self.last_run.lock().unwrap_or_else(|e| e.into_inner()) = Some(started.elapsed());
        }
        let mut result = parse_output(&out.output, out.exit == CommandExit::Code(0));
        match out.exit {
            CommandExit::TimedOut(limit) => {
                result.build_error = Some(format!("`{command}` ran past {limit:?} and was stopped"))
            }
            CommandExit::Cancelled => result.build_error = Some(format!("`{command}` was stopped")),
            _ => {}
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
        self.run_until(command, dir, sandbox, self.timeout, &Cancel::default())
    }

    fn run_until(
        &self,
        command: &str,
        dir: &Path,
        sandbox: Option<&Sandbox>,
        limit: Duration,
        cancel: &Cancel,
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
        Ok(run_command_until(cmd, limit, OUTPUT_CAP, cancel)?)
    }
}

impl tiller_agent::Checker for Verifier {
    /// The failing tests alone (where the project says how to run one), then the suite, in
    /// `dir`, with the sandbox allowed to write there. In a copy of the workspace (a candidate's)
    /// a run that takes many times as long as the last in the workspace is stopped: it hangs.
    fn check(
        &self,
        dir: &Path,
        failing: &[String],
        cancel: &Cancel,
    ) -> Result<SuiteResult, String> {
        let limit = match dir == self.root {
            true => self.timeout,
            false => {
                let last = *self.last_run.lock().unwrap_or_else(|e| e.into_inner());
                candidate_limit(last, self.timeout)
            }
        };
        let widened = match &self.sandbox {
            Some(sandbox) if dir != self.root => {
                Some(sandbox.widened(dir).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let sandbox = widened.as_ref().or(self.sandbox.as_deref());
        let one_by_one = self.commands.test_one.is_some();
        for name in failing.iter().filter(|_| one_by_one) {
            let result = self.tests_in(&self.commands.one(name), dir, sandbox, limit, cancel);
            match result.map_err(|e| e.to_string())? {
                result if !result.green() => return Ok(result),
                _ => {}
            }
        }
        let result = self.tests_in(&self.commands.test, dir, sandbox, limit, cancel);
        result.map_err(|e| e.to_string())
    }

    /// One a core, up to [`MAX_CHECKS`]: a project's tests mostly run on one.
    fn workers(&self) -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_CHECKS)
    }
}

/// Candidates' test runs at once, at most.
const MAX_CHECKS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_may_take_ten_times_the_last_run_within_bounds() {
        let (secs, ten_minutes) = (Duration::from_secs, Duration::from_secs(600));
        assert_eq!(candidate_limit(Some(secs(3)), ten_minutes), secs(30));
        assert_eq!(candidate_limit(Some(Duration::from_millis(80)), ten_minutes), secs(10));
        assert_eq!(candidate_limit(Some(secs(120)), ten_minutes), ten_minutes);
        assert_eq!(candidate_limit(None, ten_minutes), ten_minutes, "no run to go by");
    }
}
