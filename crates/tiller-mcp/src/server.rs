//! One MCP server: over stdio, a program started confined like the agent's commands (the
//! sandbox tier in force, its own network switch and environment), the protocol client on its
//! stdin and stdout, its stderr kept in a file for telling what went wrong, and stopped with
//! everything it started; or over streamable HTTP (`http.rs`). Either way the client notes the
//! server's word that its tools changed.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use rustix::process::{Pid, Signal, kill_process_group};
use tiller_model::EgressPolicy;
use tiller_sandbox::{Policy, Sandbox};
use tiller_types::McpServer;

use crate::McpError;

/// Bytes of a server's stderr quoted when it fails.
const STDERR_TAIL: u64 = 800;

/// How servers are started in this session.
#[derive(Clone)]
pub struct Launch {
    /// The session's sandbox; each server gets a copy with its own network and environment.
    /// `None` starts servers unconfined (tests, or no sandbox wanted).
    pub sandbox: Option<Arc<Sandbox>>,
    /// Where nothing can confine a server (tier C), start it unconfined anyway: the user's
    /// explicit choice (`--dangerously-run-unconfined`).
    pub allow_unconfined: bool,
    /// The folder servers start in: the workspace.
    pub workspace: PathBuf,
    /// Where a `url` server may be reached from here, as any endpoint of tiller's.
    pub egress: EgressPolicy,
}

/// A running server.
pub(crate) struct Connection {
    pub client: RunningService<RoleClient, Listener>,
    /// The program of a stdio server.
    process: Option<Process>,
}

/// The client's side of what a server tells it: set when its tools changed.
pub(crate) struct Listener(pub Arc<AtomicBool>);

impl ClientHandler for Listener {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A server's process.
pub(crate) struct Process {
    child: tokio::process::Child,
    /// Its process group: bubblewrap's in tier A (whose end ends every process in the sandbox),
    /// the server's own otherwise.
    group: Option<Pid>,
    stderr: std::fs::File,
    /// The server's own sandbox, whose private temporary folder lives as long as it runs.
    _sandbox: Option<Sandbox>,
}

impl Connection {
    /// Starts `entry`'s program, or reaches its `url`, and initializes the protocol, within
    /// `limit`; `listener` hears the server's notices.
    pub async fn start(
        name: &str,
        entry: &McpServer,
        launch: &Launch,
        limit: Duration,
        listener: Listener,
    ) -> Result<Connection, McpError> {
        if let Some(url) = &entry.url {
            let client = crate::http::connect(name, url, entry, &launch.egress, limit, listener);
            return Ok(Connection { client: client.await?, process: None });
        }
        let program = entry.command.as_deref().ok_or_else(|| McpError::NoCommand(name.into()))?;
        let args: Vec<OsString> = entry.args.iter().map(OsString::from).collect();
        let mut policy = match &launch.sandbox {
            Some(sandbox) => sandbox.policy().clone(),
            None => Policy::for_workspace(&launch.workspace),
        };
        policy.network = entry.network.unwrap_or(false);
        policy.env = entry.env_vars.clone();
        let sandbox = match &launch.sandbox {
            Some(s) if !s.requires_approval() => Some(s.with_policy(policy.clone())?),
            Some(_) if !launch.allow_unconfined => return Err(McpError::Unconfined(name.into())),
            _ => None,
        };
        let mut cmd = match &sandbox {
            Some(sandbox) => sandbox.command(program.as_ref(), &args, &launch.workspace)?,
            None => {
                let mut cmd = std::process::Command::new(program);
                let passed = std::env::vars_os()
                    .filter(|(var, _)| var.to_str().is_some_and(|var| policy.passes_env(var)));
                cmd.args(&args).current_dir(&launch.workspace).env_clear().envs(passed);
                cmd
            }
        };
        let stderr = tempfile::tempfile().map_err(|e| McpError::Start {
            server: name.into(),
            detail: format!("cannot make a file for its stderr: {e}"),
        })?;
        let err_copy = stderr.try_clone().map_err(|e| McpError::Start {
            server: name.into(),
            detail: format!("cannot make a file for its stderr: {e}"),
        })?;
        cmd.envs(&entry.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err_copy)
            .process_group(0);
        let mut child =
            tokio::process::Command::from(cmd).kill_on_drop(true).spawn().map_err(|e| {
                McpError::Start {
                    server: name.into(),
                    detail: format!("cannot run {program}: {e}"),
                }
            })?;
        let group = child.id().and_then(|id| Pid::from_raw(id as i32));
        let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
            return Err(McpError::Start { server: name.into(), detail: "no pipes".into() });
        };
        let mut process = Process { child, group, stderr, _sandbox: sandbox };
        match tokio::time::timeout(limit, listener.serve((stdout, stdin))).await {
            Ok(Ok(client)) => Ok(Connection { client, process: Some(process) }),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer to `initialize` within {} s", limit.as_secs()),
                };
                let detail = format!("{why}{}", process.stop_and_explain().await);
                Err(McpError::Start { server: name.into(), detail })
            }
        }
    }

    /// Stops the server (a program's whole process group killed and reaped, an HTTP session
    /// closed) and says how a program ended and what its stderr ends with, as a suffix for a
    /// message.
    pub async fn stop_and_explain(mut self) -> String {
        match &mut self.process {
            Some(process) => process.stop_and_explain().await,
            None => {
                let _ = self.client.close_with_timeout(Duration::from_secs(5)).await;
                String::new()
            }
        }
    }
}

impl Process {
    async fn stop_and_explain(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("; it exited ({status})"),
            _ => String::new(),
        };
        self.kill().await;
        let tail = self.stderr_tail();
        if tail.is_empty() { status } else { format!("{status}; its stderr ends:\n{tail}") }
    }

    async fn kill(&mut self) {
        if let Some(group) = self.group {
            // The group may be gone already.
            let _ = kill_process_group(group, Signal::KILL);
        }
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    /// The end of what the server wrote to stderr.
    fn stderr_tail(&mut self) -> String {
        let mut text = Vec::new();
        let len = self.stderr.seek(SeekFrom::End(0)).unwrap_or(0);
        let from = len.saturating_sub(STDERR_TAIL);
        if self.stderr.seek(SeekFrom::Start(from)).is_ok() {
            let _ = self.stderr.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).trim().to_string()
    }
}
