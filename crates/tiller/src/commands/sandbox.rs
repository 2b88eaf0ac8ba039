//! `tiller sandbox -- CMD ARGS…`: runs one command confined to the current directory, as the
//! agent's commands are, and exits with its status.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use tiller_sandbox::{Detection, Policy, Sandbox};
use tiller_tools::{Ending, TIMED_OUT, wait_group};
use tiller_types::Cancel;

use crate::cli::{ModelArgs, SandboxArgs};
use crate::command_error::{CommandError, Kind};
use crate::config::{self, Settings};

/// The sandbox for commands run in `root`: the default policy, with the config file in use
/// hidden too, the `[sandbox] env` variables passed on (except the API key's) and unix
/// sockets as `[sandbox] unix_sockets` says.
pub fn for_workspace(
    root: &Path,
    network: bool,
    settings: &Settings,
) -> Result<Sandbox, CommandError> {
    let mut policy = Policy::for_workspace(root);
    policy.network = network;
    policy.unix_sockets = settings.sandbox.unix_sockets;
    if !policy.hidden.iter().any(|h| settings.config_path.starts_with(h)) {
        policy.hidden.push(settings.config_path.clone());
    }
    let key = settings.api_key_var();
    policy.env =
        settings.sandbox.env.iter().filter(|name| Some(name.as_str()) != key).cloned().collect();
    confine(policy)
}

/// A sandbox enforcing `policy` on this machine, with this executable as its helper.
fn confine(policy: Policy) -> Result<Sandbox, CommandError> {
    let helper = std::env::current_exe().map_err(|e| {
        CommandError::new(Kind::Internal, format!("cannot find the tiller executable: {e}"))
    })?;
    Ok(Sandbox::new(policy, Detection::probe(), helper)?)
}

/// The active tier, then each warning.
pub fn notes(sandbox: &Sandbox) -> Vec<String> {
    let detection = sandbox.detection();
    let warnings = detection.warnings().into_iter().map(|w| format!("warning: {w}"));
    std::iter::once(detection.summary()).chain(warnings).collect()
}

pub fn run(model_args: &ModelArgs, args: &SandboxArgs) -> Result<(), CommandError> {
    let cwd = model_args.workspace_dir()?;
    // A session's own policy (an editor's terminal running its command) names the workspace,
    // which `cwd` lies in, and prints nothing of its own.
    let quiet = args.policy.is_some();
    let sandbox = match &args.policy {
        Some(json) => confine(serde_json::from_str(json).map_err(|e| {
            CommandError::new(Kind::User, format!("--policy is not a sandbox policy: {e}"))
        })?)?,
        None => for_workspace(&cwd, args.network, &config::settle(model_args)?)?,
    };
    if !quiet {
        for note in notes(&sandbox) {
            eprintln!("tiller sandbox: {note}");
        }
    }
    let Some((program, rest)) = args.command.split_first() else {
        return Err(CommandError::new(Kind::User, "no command given"));
    };
    let mut cmd = sandbox.command(program, rest, &cwd)?;
    if args.timeout.is_some() {
        // Its own process group, so that the timeout can kill the group in tier B too.
        cmd.process_group(0);
    }
    let child = cmd
        .spawn()
        .map_err(|e| CommandError::new(Kind::Internal, format!("cannot start the sandbox: {e}")))?;
    let code = wait(child, args.timeout.map(Duration::from_secs), quiet)?;
    // Exiting skips destructors: remove the private temporary directory first.
    drop(sandbox);
    std::process::exit(code)
}

/// The child's exit code (128 + the signal that killed it), or [`TIMED_OUT`] once its process
/// group was killed after `timeout` (said on stderr unless `quiet`).
fn wait(mut child: Child, timeout: Option<Duration>, quiet: bool) -> Result<i32, CommandError> {
    let lost = |e: std::io::Error| {
        CommandError::new(Kind::Internal, format!("lost track of the command: {e}"))
    };
    let status = match timeout {
        None => child.wait().map_err(lost)?,
        Some(limit) => match wait_group(child, Some(limit), &Cancel::default()).map_err(lost)? {
            Ending::Exited(status) => status,
            Ending::TimedOut | Ending::Cancelled => {
                if !quiet {
                    eprintln!(
                        "tiller sandbox: timed out after {}s; killed the command and all it \
                         started",
                        limit.as_secs()
                    );
                }
                return Ok(TIMED_OUT);
            }
        },
    };
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
