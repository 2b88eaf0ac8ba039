//! The `shell` tool, the process runner under it, and the check for commands that are clearly
//! read-only.
//!
//! [`run_command`] runs any prepared [`Command`] (the sandbox passes its own) in a process group
//! of its own, with stdout and stderr on one pipe so their interleaving is kept, and output capped
//! to its head and tail. On timeout the whole group is killed. Reading stops shortly after the
//! command ends even if a background process still holds the pipe: such a process keeps running,
//! but what it prints afterwards is not captured.
//!
//! With a [`Terminal`] (an editor's, over ACP) and a sandbox of tier A, a command runs there
//! instead, as `tiller sandbox --policy …`: the same confinement, time limit and environment,
//! its output shown as it comes.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use serde::Deserialize;
use tiller_sandbox::{Sandbox, Tier};
use tiller_types::{Cancel, ToolSpec};

use crate::{Observation, Tool, ToolError, ToolKind, ToolOutput, Workspace, parse_args};

/// How often a running command checks whether it was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// How long output is still read after the command ended, for a pipe that a background process
/// keeps open.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Exit code of `tiller sandbox` for a command it killed at its time limit, as `timeout(1)`'s.
pub const TIMED_OUT: i32 = 124;

/// Somewhere other than tiller's own process that runs the shell's confined commands: an
/// editor's terminal, which shows their output as it comes.
pub trait Terminal: Send + Sync {
    /// Runs `command` (program, arguments, directory, and the environment variables it sets)
    /// for the model's call `call_id`, until it ends or `cancel` is set, keeping the last
    /// `output_cap` bytes of its output; where more came, `output` starts with a line saying so
    /// and `omitted` is 0, the count unknown.
    fn run(
        &self,
        call_id: &str,
        command: &Command,
        output_cap: usize,
        cancel: &Cancel,
    ) -> Result<CommandOutput, ToolError>;
}

/// Runs a command with `bash -c` (or `sh -c` where bash is missing), confined by the sandbox
/// when it has one.
#[derive(Clone)]
pub struct Shell {
    /// Time limit when the model gives none.
    pub timeout: Duration,
    /// Longest time limit the model may ask for.
    pub max_timeout: Duration,
    /// Bytes of output kept: half from the start, half from the end.
    pub output_cap: usize,
    /// Where commands run. `None` runs them unconfined (tests, and the user's explicit choice).
    pub sandbox: Option<Arc<Sandbox>>,
    /// Stops the running command, with everything it started; the agent shares its own.
    pub cancel: Cancel,
    /// Where nothing can confine commands (tier C), run them unconfined without asking: the
    /// user's explicit choice (`--dangerously-run-unconfined`).
    pub allow_unconfined: bool,
    /// Runs confined commands in tier A, where killing the terminal's process ends all the
    /// command started (bubblewrap dies with its parent).
    pub terminal: Option<Arc<dyn Terminal>>,
}

impl Default for Shell {
    fn default() -> Self {
        Shell {
            timeout: Duration::from_secs(120),
            max_timeout: Duration::from_secs(600),
            output_cap: 16 * 1024,
            sandbox: None,
            cancel: Cancel::default(),
            allow_unconfined: false,
            terminal: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    command: String,
    timeout_secs: Option<u64>,
    workdir: Option<String>,
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandExit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// It ran past this limit and its process group was killed.
    TimedOut(Duration),
    /// It was cancelled (Ctrl-C) and its process group was killed.
    Cancelled,
}

/// What a command printed, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    pub exit: CommandExit,
    /// stdout and stderr as interleaved by the command, decoded lossily; when over the cap, the
    /// head and the tail with a `[… N bytes omitted …]` line between them.
    pub output: String,
    /// Bytes left out of the middle of `output`.
    pub omitted: usize,
}

impl fmt::Display for CommandOutput {
    /// The observation for the model: how the command ended, then its output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exit {
            CommandExit::Code(code) => write!(f, "exit code: {code}")?,
            CommandExit::Signal(sig) => write!(f, "killed by signal {sig}")?,
            CommandExit::TimedOut(limit) => {
                write!(f, "timed out after {limit:?}; process group killed")?
            }
            CommandExit::Cancelled => write!(f, "cancelled by the user; process group killed")?,
        }
        if self.output.is_empty() {
            write!(f, "\n(no output)")
        } else {
            write!(f, "\n{}", self.output)
        }
    }
}

impl Tool for Shell {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "shell".into(),
            description: format!(
                "Run a bash command in the workspace root (or workdir); stdin is empty. Returns \
                 the exit code and combined stdout+stderr, cut to the first and last {} KiB. \
                 Killed after timeout_secs (default {}, max {}).",
                self.output_cap / 2048,
                self.timeout.as_secs(),
                self.max_timeout.as_secs()
            ),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The bash command line."},
                    "timeout_secs": {"type": "integer", "minimum": 1, "maximum": self.max_timeout.as_secs(), "description": format!("Time limit in seconds. Default {}.", self.timeout.as_secs())},
                    "workdir": {"type": "string", "description": "Directory to run in, relative to the workspace root. Default \".\"."}
                },
                "required": ["command"],
                "additionalProperties": false
            }),
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Exec
    }

    /// With a sandbox that cannot confine anything on this machine (tier C), every command is
    /// put to the user, unless they chose to run commands unconfined.
    fn always_ask(&self) -> bool {
        !self.allow_unconfined && self.sandbox.as_ref().is_some_and(|s| s.requires_approval())
    }

    fn share_cancel(&mut self, cancel: &Cancel) {
        self.cancel = cancel.clone();
    }

    fn run(&self, ws: &Workspace, args: serde_json::Value) -> Result<ToolOutput, ToolError> {
        self.execute(ws, None, args)
    }

    fn run_call(
        &self,
        ws: &Workspace,
        call_id: &str,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        self.execute(ws, Some(call_id), args)
    }
}

impl Shell {
    /// Runs the command `args` asks for, in the terminal where there is one and `call_id`.
    fn execute(
        &self,
        ws: &Workspace,
        call_id: Option<&str>,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let args: Args = parse_args(args)?;
        let dir = match &args.workdir {
            Some(workdir) => {
                let dir = ws.resolve(workdir)?;
                if !dir.is_dir() {
                    return Err(ToolError::path(workdir, "is not a directory"));
                }
                dir
            }
            None => ws.root().to_path_buf(),
        };
        let timeout = match args.timeout_secs {
            Some(secs) => Duration::from_secs(secs.max(1)).min(self.max_timeout),
            None => self.timeout,
        };
        let sandbox = self.sandbox.as_deref().filter(|s| !s.requires_approval());
        if let (Some(terminal), Some(sandbox), Some(id)) = (&self.terminal, sandbox, call_id)
            && sandbox.tier() == Tier::A
        {
            let cmd = in_terminal(sandbox, &args.command, &dir, timeout)?;
            let started = Instant::now();
            let mut output = terminal.run(id, &cmd, self.output_cap, &self.cancel)?;
            if output.exit == CommandExit::Code(TIMED_OUT) && started.elapsed() >= timeout {
                output.exit = CommandExit::TimedOut(timeout);
            }
            return Ok(observation(output));
        }
        let mut cmd = match sandbox {
            Some(sandbox) => {
                let args = ["-c".into(), args.command.clone().into()];
                sandbox.command(OsStr::new(shell_program()), &args, &dir).map_err(|e| {
                    ToolError::Other(format!("the sandbox cannot run this command: {e}"))
                })?
            }
            None => {
                let mut cmd = Command::new(shell_program());
                cmd.arg("-c").arg(&args.command).current_dir(dir);
                cmd
            }
        };
        // With no terminal to answer on, a credential prompt would only wait for the timeout.
        cmd.env("GIT_TERMINAL_PROMPT", "0");
        let output = run_command_until(cmd, timeout, self.output_cap, &self.cancel)?;
        Ok(observation(output))
    }
}

/// What the model is told of a command that ran.
fn observation(output: CommandOutput) -> ToolOutput {
    let exit_code = match output.exit {
        CommandExit::Code(code) => Some(code),
        CommandExit::Signal(_) | CommandExit::TimedOut(_) | CommandExit::Cancelled => None,
    };
    ToolOutput::Text(Observation { text: output.to_string(), quotes: Vec::new(), exit_code })
}

/// `command` in `dir` as a terminal runs it: `tiller sandbox` with `sandbox`'s policy and
/// `timeout`, and the variables that policy passes on taken from tiller's environment, not the
/// terminal's. `GIT_TERMINAL_PROMPT=0` is set as for a command run here.
fn in_terminal(
    sandbox: &Sandbox,
    command: &str,
    dir: &std::path::Path,
    timeout: Duration,
) -> Result<Command, ToolError> {
    let mut policy = sandbox.policy().clone();
    policy.env.push("GIT_TERMINAL_PROMPT".into());
    let json = serde_json::to_string(&policy)
        .map_err(|e| ToolError::Other(format!("cannot pass the sandbox policy: {e}")))?;
    let exe = std::env::current_exe()
        .map_err(|e| ToolError::Other(format!("cannot find the tiller executable: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.args(["sandbox", "--policy", &json, "--timeout", &timeout.as_secs().to_string(), "-C"])
        .arg(dir)
        .args(["--", shell_program(), "-c", command])
        .current_dir(dir)
        .envs(
            std::env::vars_os()
                .filter(|(name, _)| name.to_str().is_some_and(|name| policy.passes_env(name))),
        )
        .env("GIT_TERMINAL_PROMPT", "0");
    Ok(cmd)
}

/// `bash` when it is on the `PATH`, else `sh`.
fn shell_program() -> &'static str {
    let has_bash = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("bash").is_file()));
    if has_bash { "bash" } else { "sh" }
}

/// Runs `cmd` to completion or until `timeout`, keeping at most `output_cap` bytes of its output.
///
/// This sets the command's stdin (null), stdout and stderr (one shared pipe) and puts it in a new
/// process group; everything else (program, arguments, directory, environment) is the caller's.
/// On timeout the whole process group is killed with `SIGKILL`.
pub fn run_command(
    cmd: Command,
    timeout: Duration,
    output_cap: usize,
) -> Result<CommandOutput, ToolError> {
    run_command_until(cmd, timeout, output_cap, &Cancel::default())
}

/// [`run_command`], also stopped (its whole process group killed) when `cancel` is set.
pub fn run_command_until(
    mut cmd: Command,
    timeout: Duration,
    output_cap: usize,
    cancel: &Cancel,
) -> Result<CommandOutput, ToolError> {
    let program = cmd.get_program().to_owned();
    let pipe_error = |e| ToolError::Other(format!("cannot create a pipe: {e}"));
    let (mut reader, writer) = std::io::pipe().map_err(pipe_error)?;
    cmd.stdin(Stdio::null())
        .stdout(writer.try_clone().map_err(pipe_error)?)
        .stderr(writer)
        .process_group(0);
    let child = cmd.spawn().map_err(|e| ToolError::io(&program, e))?;
    // The command still holds our copies of the write end; the reader sees end-of-file only
    // once every copy is closed.
    drop(cmd);

    let buffer = Arc::new(Mutex::new(Capped::new(output_cap)));
    let (drained_tx, drained_rx) = mpsc::channel();
    let sink = Arc::clone(&buffer);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => lock(&sink).push(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // The receiver may be gone when a background process held the pipe past the grace.
        let _ = drained_tx.send(());
    });

    let exit = match wait_group(child, Some(timeout), cancel) {
        Ok(Ending::Exited(status)) => match (status.code(), status.signal()) {
            (Some(code), _) => CommandExit::Code(code),
            (None, Some(sig)) => CommandExit::Signal(sig),
            (None, None) => CommandExit::Code(-1),
        },
        Ok(Ending::TimedOut) => CommandExit::TimedOut(timeout),
        Ok(Ending::Cancelled) => CommandExit::Cancelled,
        Err(e) => return Err(ToolError::io(&program, e)),
    };
    // Either end-of-file or the grace running out is fine; what was read so far is the output.
    let _ = drained_rx.recv_timeout(DRAIN_GRACE);
    let captured = lock(&buffer);
    Ok(CommandOutput { exit, output: captured.render(), omitted: captured.omitted })
}

/// How a process group waited for by [`wait_group`] ended.
#[derive(Debug)]
pub enum Ending {
    Exited(std::process::ExitStatus),
    /// It ran past its limit and was killed.
    TimedOut,
    /// The caller cancelled it and it was killed.
    Cancelled,
}

/// Waits for `child`, which must lead a process group of its own (`process_group(0)`), until
/// it exits, `limit` passes or `cancel` is set; in the last two cases its whole process group is
/// killed with `SIGKILL` and reaped. In tier A the group leader is bubblewrap, whose death ends
/// the sandbox's PID namespace and everything in it (`--die-with-parent`), including processes
/// that left the group with `setsid`; in tiers B and C the group is the command's own.
pub fn wait_group(
    mut child: std::process::Child,
    limit: Option<Duration>,
    cancel: &Cancel,
) -> std::io::Result<Ending> {
    let group = Pid::from_child(&child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let lost = || std::io::Error::other("lost track of the command");
    let deadline = limit.map(|limit| Instant::now() + limit);
    loop {
        let left = deadline.map_or(CANCEL_POLL, |d| d.saturating_duration_since(Instant::now()));
        match rx.recv_timeout(left.min(CANCEL_POLL)) {
            Ok(status) => return status.map(Ending::Exited),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(lost()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let ending = if cancel.is_cancelled() {
                    Ending::Cancelled
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    Ending::TimedOut
                } else {
                    continue;
                };
                // The group may already be gone if the command ended at this very moment.
                let _ = kill_process_group(group, Signal::KILL);
                rx.recv().map_err(|_| lost())??;
                return Ok(ending);
            }
        }
    }
}

/// Locks the output buffer. A panic while holding it cannot leave it inconsistent (every push is
/// complete or not made), so a poisoned lock is used as is.
fn lock(buffer: &Mutex<Capped>) -> std::sync::MutexGuard<'_, Capped> {
    buffer.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Output kept within a cap: the first half as it came, then a window over the latest bytes.
struct Capped {
    half: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    omitted: usize,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Capped { half: cap / 2, head: Vec::new(), tail: VecDeque::new(), omitted: 0 }
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.half.saturating_sub(self.head.len()).min(bytes.len());
        let (head, rest) = bytes.split_at(room);
        self.head.extend_from_slice(head);
        self.tail.extend(rest);
        let over = self.tail.len().saturating_sub(self.half);
        self.tail.drain(..over);
        self.omitted += over;
    }

    fn render(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.omitted > 0 {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("[… {} bytes omitted …]\n", self.omitted));
        }
        let (a, b) = self.tail.as_slices();
        out.push_str(&String::from_utf8_lossy(&[a, b].concat()));
        out
    }
}

/// Whether `command` is clearly read-only, so that it may run without asking.
///
/// Conservative: only a short list of reading programs qualifies, with their writing or
/// program-running options refused, and any command holding `>`, `<`, `;`, `&`, `|`, a backtick
/// or a line break (even quoted), or an unquoted expansion (`$`, globs, braces), is not safe.
pub fn is_known_safe(command: &str) -> bool {
    if command.contains(['>', '<', ';', '&', '|', '`', '\n', '\r']) {
        return false;
    }
    let Some(words) = split_words(command) else {
        return false;
    };
    let Some((program, args)) = words.split_first() else {
        return false;
    };
    let has = |bad: &[&str]| {
        args.iter().any(|a| bad.iter().any(|b| a == b || a.starts_with(&format!("{b}="))))
    };
    match program.as_str() {
        "ls" | "cat" | "head" | "tail" | "wc" | "pwd" | "echo" | "grep" | "stat" | "du" | "df"
        | "basename" | "dirname" | "realpath" | "readlink" | "nl" | "cut" | "diff" | "cmp"
        | "which" | "true" => true,
        // These run a program of the caller's choosing on each file.
        "rg" => !has(&["--pre", "--hostname-bin"]),
        "find" => !has(&[
            "-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf",
            "-fls",
        ]),
        "git" => git_is_read_only(args),
        _ => false,
    }
}

/// Whether `git <args>` only reads. Global options (`-c`, `-C`, …) are refused outright: `-c`
/// can name programs for git to run.
fn git_is_read_only(args: &[String]) -> bool {
    let Some((sub, rest)) = args.split_first() else {
        return false;
    };
    let only = |allowed: &[&str]| rest.iter().all(|a| allowed.contains(&a.as_str()));
    match sub.as_str() {
        "status" | "diff" | "log" | "show" | "blame" | "rev-parse" | "ls-files" | "describe"
        | "grep" => !rest.iter().any(|a| {
            // `-O`/`--open-files-in-pager` and `--ext-diff` run programs; `--output` writes.
            a.starts_with("-O")
                || ["output", "ext-diff", "open-files-in-pager"]
                    .iter()
                    .any(|opt| names_long_option(a, opt))
        }),
        // Any other argument (a name, -d, -m, …) creates, renames or deletes a branch.
        "branch" => only(&[
            "-a",
            "--all",
            "-r",
            "--remotes",
            "-v",
            "-vv",
            "--verbose",
            "--list",
            "--show-current",
        ]),
        "remote" => only(&["-v", "--verbose"]),
        _ => false,
    }
}

/// Whether `arg` is the long option `--option`, with or without a value, or an abbreviation of
/// it (git accepts any unambiguous prefix).
fn names_long_option(arg: &str, option: &str) -> bool {
    let Some(name) = arg.strip_prefix("--") else {
        return false;
    };
    let name = name.split_once('=').map_or(name, |(name, _)| name);
    !name.is_empty() && option.starts_with(name)
}

/// The words of `command` as the shell splits them, or `None` when it holds anything the shell
/// would expand or treat as syntax: unquoted `$ * ? [ { ( ) # !`, `$` inside double quotes, or an
/// unclosed quote.
fn split_words(command: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '$' => return None,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\') => w.push(c),
                            c => w.extend(['\\', c]),
                        },
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            '$' | '*' | '?' | '[' | '{' | '(' | ')' | '#' | '!' => return None,
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::temp_workspace as ws;
    use std::time::Instant;

    fn sh(shell: &Shell, ws: &Workspace, args: serde_json::Value) -> Result<String, String> {
        match shell.run(ws, args) {
            Ok(ToolOutput::Text(o)) => Ok(o.text),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    fn bash(command: &str, timeout: Duration, cap: usize) -> CommandOutput {
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(command);
        run_command(cmd, timeout, cap).unwrap()
    }

    /// Whether process `pid` is gone (or a zombie waiting for a reaper that may never come).
    fn is_gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, s)| s.starts_with('Z')),
        }
    }

    fn first_pid(output: &str) -> i32 {
        output.split_whitespace().find_map(|w| w.parse().ok()).unwrap()
    }

    #[test]
    fn reports_exit_codes_and_signals() {
        let (_d, ws) = ws();
        let shell = Shell::default();
        let run = |c: &str| sh(&shell, &ws, serde_json::json!({"command": c})).unwrap();
        assert_eq!(run("echo hi"), "exit code: 0\nhi\n");
        assert_eq!(run("exit 3"), "exit code: 3\n(no output)");
        assert_eq!(run("kill -9 $$"), "killed by signal 9\n(no output)");
        let exit_code = |c: &str| match shell.run(&ws, serde_json::json!({"command": c})) {
            Ok(ToolOutput::Text(o)) => o.exit_code,
            other => panic!("{other:?}"),
        };
        assert_eq!(exit_code("exit 3"), Some(3));
        assert_eq!(exit_code("kill -9 $$"), None);
    }

    #[test]
    fn stderr_is_interleaved_with_stdout() {
        let out = bash("echo one; echo two >&2; echo three", Duration::from_secs(10), 1000);
        assert_eq!(out.output, "one\ntwo\nthree\n");
        assert_eq!(out.exit, CommandExit::Code(0));
    }

    #[test]
    fn output_keeps_head_and_tail() {
        let out = bash("seq 1 100000", Duration::from_secs(10), 1000);
        assert!(out.output.starts_with("1\n2\n3\n"), "{}", out.output);
        assert!(out.output.ends_with("99999\n100000\n"), "{}", out.output);
        let total = (1..=100_000).map(|n: u32| n.to_string().len() + 1).sum::<usize>();
        assert_eq!(out.omitted, total - 1000);
        assert!(out.output.contains(&format!("[… {} bytes omitted …]", total - 1000)));
    }

    #[test]
    fn invalid_utf8_is_shown_lossily() {
        let out = bash("printf 'caf\\351\\n'", Duration::from_secs(10), 1000);
        assert_eq!(out.output, "caf\u{FFFD}\n");
    }

    /// The processes whose command line is `sleep <seconds>`.
    pub(crate) fn sleeping(seconds: &str) -> Vec<i32> {
        let wanted = format!("sleep\0{seconds}\0");
        let procs = std::fs::read_dir("/proc").unwrap().flatten();
        procs
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| !is_gone(pid))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted.as_bytes())
            })
            .collect()
    }

    /// Waits (up to a minute, far past any normal delay) until `done` holds; whether it does.
    fn eventually(done: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        done()
    }

    #[test]
    fn cancel_kills_the_command_and_what_it_started() {
        let (_d, ws) = ws();
        let cancel = Cancel::default();
        let mut shell = Shell::default();
        shell.share_cancel(&cancel);
        // A number of seconds no other process on the machine sleeps.
        let secs = format!("97{}", std::process::id());
        let command = format!("sh -c 'sleep {secs} & sleep {secs}'");
        let running = std::thread::spawn(move || {
            sh(&shell, &ws, serde_json::json!({ "command": command })).unwrap()
        });
        assert!(eventually(|| sleeping(&secs).len() == 2), "the sleeps never started");
        cancel.cancel();
        let out = running.join().unwrap();
        assert!(out.starts_with("cancelled by the user; process group killed"), "{out}");
        assert!(eventually(|| sleeping(&secs).is_empty()), "survived: {:?}", sleeping(&secs));
    }

    #[test]
    fn tier_c_asks_for_every_command_unless_running_unconfined_was_chosen() {
        let (dir, ws) = ws();
        let nothing_confines = tiller_sandbox::Detection {
            landlock_abi: None,
            seccomp: false,
            userns: Err("not here".into()),
            bwrap: None,
            root: false,
            fixes: Vec::new(),
        };
        let policy = tiller_sandbox::Policy::for_workspace(dir.path());
        let exe = std::env::current_exe().unwrap();
        let sandbox = Arc::new(Sandbox::new(policy, nothing_confines, exe).unwrap());
        let asking = Shell { sandbox: Some(Arc::clone(&sandbox)), ..Shell::default() };
        assert!(asking.always_ask());
        let unconfined = Shell { allow_unconfined: true, ..asking };
        assert!(!unconfined.always_ask());
        let out = sh(&unconfined, &ws, serde_json::json!({"command": "echo ran > f; cat f"}));
        assert_eq!(out.unwrap(), "exit code: 0\nran\n");
    }

    /// A terminal that records what it is asked to run and answers with `exit` after `delay`.
    struct Fake {
        asked: Mutex<Vec<(String, Vec<String>)>>,
        exit: CommandExit,
        delay: Duration,
    }

    impl Terminal for Fake {
        fn run(
            &self,
            id: &str,
            cmd: &Command,
            cap: usize,
            _: &Cancel,
        ) -> Result<CommandOutput, ToolError> {
            let text = |s: &OsStr| s.to_string_lossy().into_owned();
            let mut args: Vec<String> = cmd.get_args().map(text).collect();
            args.extend(cmd.get_envs().map(|(k, v)| format!("{}={}", text(k), text(v.unwrap()))));
            args.push(format!("cap={cap}"));
            self.asked.lock().unwrap().push((id.to_string(), args));
            std::thread::sleep(self.delay);
            Ok(CommandOutput { exit: self.exit, output: "printed\n".into(), omitted: 0 })
        }
    }

    #[test]
    fn a_terminal_runs_commands_in_tiller_sandbox_in_tier_a_only() {
        let (dir, ws) = ws();
        let policy = tiller_sandbox::Policy::for_workspace(dir.path());
        let sandbox = |bwrap: Option<&str>| {
            let detection = tiller_sandbox::Detection {
                landlock_abi: Some(7),
                seccomp: true,
                userns: Ok(()),
                bwrap: bwrap.map(Into::into),
                root: false,
                fixes: Vec::new(),
            };
            let exe = std::env::current_exe().unwrap();
            Some(Arc::new(Sandbox::new(policy.clone(), detection, exe).unwrap()))
        };
        let fake = |exit, delay| Arc::new(Fake { asked: Mutex::default(), exit, delay });
        let terminal = fake(CommandExit::Code(3), Duration::ZERO);
        let shell = Shell {
            sandbox: sandbox(Some("/usr/bin/bwrap")),
            terminal: Some(terminal.clone()),
            ..Shell::default()
        };
        let run = |shell: &Shell, args| match shell.run_call(&ws, "call-1", args).unwrap() {
            ToolOutput::Text(o) => (o.text, o.exit_code),
            other => panic!("{other:?}"),
        };
        let out = run(&shell, serde_json::json!({"command": "make", "timeout_secs": 5}));
        assert_eq!(out, ("exit code: 3\nprinted\n".into(), Some(3)));
        let (id, args) = terminal.asked.lock().unwrap().pop().unwrap();
        assert_eq!(id, "call-1");
        let root = dir.path().display().to_string();
        assert_eq!(args[..2], ["sandbox", "--policy"]);
        let sent: tiller_sandbox::Policy = serde_json::from_str(&args[2]).unwrap();
        assert_eq!(sent.writable, policy.writable);
        assert!(sent.passes_env("GIT_TERMINAL_PROMPT"));
        let rest = ["--timeout", "5", "-C", &root, "--", shell_program(), "-c", "make"];
        assert_eq!(args[3..11], rest);
        assert!(args.contains(&"GIT_TERMINAL_PROMPT=0".into()), "{args:?}");
        assert_eq!(args.last().unwrap(), "cap=16384");

        // `tiller sandbox`'s exit code at the time limit is a timeout.
        let slow = Shell {
            terminal: Some(fake(CommandExit::Code(124), Duration::from_secs(1))),
            ..shell.clone()
        };
        let out = run(&slow, serde_json::json!({"command": "sleep 9", "timeout_secs": 1}));
        assert_eq!(out, ("timed out after 1s; process group killed\nprinted\n".into(), None));

        // Without a call to show it in, or in tier B, the command runs here (the helper being
        // this test binary, it runs no command at all).
        let echo = serde_json::json!({"command": "echo here"});
        shell.run(&ws, echo.clone()).unwrap();
        Shell { sandbox: sandbox(None), ..shell }.run_call(&ws, "call-2", echo).unwrap();
        assert!(terminal.asked.lock().unwrap().is_empty());
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let (_d, ws) = ws();
        let shell = Shell { timeout: Duration::from_secs(1), ..Shell::default() };
        let started = Instant::now();
        let out = sh(&shell, &ws, serde_json::json!({"command": "sleep 100 & echo $!; sleep 100"}))
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(out.starts_with("timed out after 1s"), "{out}");
        let grandchild = first_pid(&out);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_gone(grandchild) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(is_gone(grandchild), "background sleep {grandchild} survived");
    }

    #[test]
    fn background_process_holding_the_pipe_does_not_block() {
        let started = Instant::now();
        let out = bash("sleep 100 & echo $!", Duration::from_secs(60), 1000);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(out.exit, CommandExit::Code(0));
        let pid = Pid::from_raw(first_pid(&out.output)).unwrap();
        rustix::process::kill_process(pid, Signal::KILL).unwrap();
    }

    #[test]
    fn workdir_is_confined_to_the_workspace() {
        let (dir, ws) = ws();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("f"), "").unwrap();
        let shell = Shell::default();
        let out = sh(&shell, &ws, serde_json::json!({"command": "pwd", "workdir": "sub"}));
        assert!(out.unwrap().trim_end().ends_with("/sub"));
        let err = |w: &str| {
            sh(&shell, &ws, serde_json::json!({"command": "pwd", "workdir": w})).unwrap_err()
        };
        assert!(err("..").contains("outside"));
        assert!(err("/").contains("outside"));
        assert!(err("f").contains("not a directory"));
        assert!(err("missing").contains("not a directory"));
    }

    #[test]
    fn missing_program_is_an_error() {
        let cmd = Command::new("/nonexistent/program");
        let err = run_command(cmd, Duration::from_secs(1), 100).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/program"), "{err}");
    }

    #[test]
    fn known_safe_commands() {
        for safe in [
            "ls -la src",
            "cat Cargo.toml",
            "head -n 20 'a file.txt'",
            "wc -l src/lib.rs",
            "pwd",
            "echo hello",
            "grep -rn \"fn main\" src",
            "rg -n 'foo$' crates",
            "rg -g '*.rs' Tool",
            "find . -name \"*.rs\" -type f",
            "git status",
            "git diff --stat HEAD~1",
            "git log --oneline -n 5",
            "git diff --exit-code",
            "git show HEAD:src/lib.rs",
            "git branch -a",
            "git remote -v",
        ] {
            assert!(is_known_safe(safe), "{safe}");
        }
        for unsafe_ in [
            "",
            "rm -rf /",
            "echo hi > f",
            "cat a >> b",
            "ls; rm f",
            "ls && rm f",
            "ls & rm f",
            "ls | sh",
            "cat <(rm f)",
            "echo $(rm f)",
            "echo `rm f`",
            "echo \"$(rm f)\"",
            "ls\nrm f",
            "ls *",
            "find . -name x -delete",
            "find . -exec rm {} +",
            "find . -fprint out",
            "rg --pre ./run x",
            "rg --pre=./run x",
            "git -c core.pager=sh log",
            "git branch new-branch",
            "git branch -D main",
            "git diff --output=patch.txt",
            "git log -p --outp patch.txt",
            "git grep -Ovim x",
            "git commit -m x",
            "git push",
            "git remote add o url",
            "sed -i s/a/b/ f",
            "FOO=1 ls",
            "echo 'unclosed",
            "grep 'a|b' f",
        ] {
            assert!(!is_known_safe(unsafe_), "{unsafe_}");
        }
    }
}
