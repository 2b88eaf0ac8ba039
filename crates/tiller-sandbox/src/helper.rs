//! The helper: confines its own process, then becomes the program.
//!
//! The `tiller` executable is the helper when its first argument is [`HELPER_ARG`]; `main`
//! hands over to [`helper_main`] before parsing anything else. In tier A it runs inside
//! bubblewrap, after the namespaces are set up: Landlock and seccomp applied before bubblewrap
//! would stop bubblewrap itself from working.

use std::convert::Infallible;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, path_beneath_rules,
};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::{Limits, Policy, SandboxError, detect, seccomp};

/// First argument that makes `tiller` the helper: `tiller __sandbox POLICY_JSON -- PROGRAM ARGS…`.
pub const HELPER_ARG: &str = "__sandbox";

/// First argument that runs a command with user namespaces refused, as in a container that
/// forbids them: `tiller __sandbox-deny-userns -- PROGRAM ARGS…`. The tests use it to see
/// tier B chosen; it also reproduces such a container for a bug report.
pub const DENY_USERNS_ARG: &str = "__sandbox-deny-userns";

/// Device files every command may write to, besides its writable roots.
const DEVICES: &[&str] =
    &["/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx", "/dev/pts", "/dev/shm"];

/// Runs the helper if this process was started as one; `None` if it was not.
///
/// On success this never returns: the process has become the program. On failure it prints
/// `tiller sandbox: …` to stderr and returns 127 when the program was not found, 126 otherwise
/// (as shells do).
pub fn helper_main() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    let mode = args.next()?;
    let result = if mode == HELPER_ARG {
        confine(args)
    } else if mode == DENY_USERNS_ARG {
        deny_userns(args)
    } else {
        return None;
    };
    let Err(err) = result;
    eprintln!("tiller sandbox: {err}");
    let not_found = matches!(&err, SandboxError::Exec { source, .. }
        if source.kind() == std::io::ErrorKind::NotFound);
    Some(ExitCode::from(if not_found { 127 } else { 126 }))
}

/// `POLICY -- PROGRAM ARGS…`: no_new_privs, rlimits, Landlock, seccomp, then exec.
fn confine(mut args: impl Iterator<Item = OsString>) -> Result<Infallible, SandboxError> {
    let policy = args.next().ok_or_else(|| SandboxError::HelperArgs("no policy".into()))?;
    let policy: Policy = policy
        .to_str()
        .ok_or_else(|| SandboxError::HelperArgs("the policy is not UTF-8".into()))
        .and_then(|p| {
            serde_json::from_str(p).map_err(|e| SandboxError::HelperArgs(e.to_string()))
        })?;
    let (program, args) = command_after_separator(args)?;
    no_new_privs()?;
    set_limits(&policy.limits)?;
    restrict_files(&policy)?;
    seccomp::deny_sockets(policy.network, policy.unix_sockets)?;
    seccomp::deny_io_uring()?;
    Err(exec(program, args))
}

/// `-- PROGRAM ARGS…` with user namespaces refused.
fn deny_userns(args: impl Iterator<Item = OsString>) -> Result<Infallible, SandboxError> {
    let (program, args) = command_after_separator(args)?;
    no_new_privs()?;
    seccomp::deny_user_namespaces()?;
    Err(exec(program, args))
}

/// Keeps this process and its children from gaining privileges (setuid programs, file
/// capabilities): required for seccomp without `CAP_SYS_ADMIN`.
fn no_new_privs() -> Result<(), SandboxError> {
    rustix::thread::set_no_new_privs(true)
        .map_err(|e| SandboxError::Setup { what: "no_new_privs", source: e.into() })
}

/// The program and its arguments, after a `--`.
fn command_after_separator(
    mut args: impl Iterator<Item = OsString>,
) -> Result<(OsString, Vec<OsString>), SandboxError> {
    if args.next().is_none_or(|sep| sep != "--") {
        return Err(SandboxError::HelperArgs("expected `--` before the program".into()));
    }
    let program =
        args.next().ok_or_else(|| SandboxError::HelperArgs("no program to run".into()))?;
    Ok((program, args.collect()))
}

/// Replaces this process with `program`; returns only on failure.
fn exec(program: OsString, args: Vec<OsString>) -> SandboxError {
    let source = Command::new(&program).args(args).exec();
    SandboxError::Exec { program: program.to_string_lossy().into_owned(), source }
}

/// Sets the rlimits, hard and soft, never above a hard limit already in force.
///
/// `RLIMIT_NPROC` counts every process and thread of the user, not only this command's, so
/// the ones already running are added: in tier A that is the two or three in the sandbox's
/// own namespaces, in tier B all the user's.
fn set_limits(limits: &Limits) -> Result<(), SandboxError> {
    let wanted = [
        (Resource::Nproc, limits.processes.saturating_add(own_tasks()), "RLIMIT_NPROC"),
        (Resource::Fsize, limits.file_size_bytes, "RLIMIT_FSIZE"),
        (Resource::Cpu, limits.cpu_secs, "RLIMIT_CPU"),
    ];
    for (resource, value, what) in wanted {
        let value = getrlimit(resource).maximum.map_or(value, |max| max.min(value));
        setrlimit(resource, Rlimit { current: Some(value), maximum: Some(value) })
            .map_err(|e| SandboxError::Setup { what, source: e.into() })?;
    }
    Ok(())
}

/// Tasks (processes and threads) of this user visible in `/proc`: the `task` folder of a
/// process has two links plus one per thread.
fn own_tasks() -> u64 {
    let uid = rustix::process::getuid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| std::fs::metadata(e.path().join("task")).ok())
        .filter(|m| m.uid() == uid)
        .map(|m| m.nlink().saturating_sub(2))
        .sum()
}

/// Landlock: read (and execute) beneath the readable roots, everything beneath the writable
/// ones and the usual devices. Every right the kernel's ABI knows is handled, and anything
/// short of full enforcement is an error. Signals and abstract unix sockets are scoped to the
/// sandbox where the kernel supports it (ABI 6).
///
/// Landlock cannot carve a read-only folder out of a writable one; in tier A bubblewrap's
/// read-only binds do that.
fn restrict_files(policy: &Policy) -> Result<(), SandboxError> {
    let version = detect::landlock_abi()
        .ok_or_else(|| SandboxError::Landlock("not available in this kernel".into()))?;
    let abi = ABI::from(i32::try_from(version).unwrap_or(i32::MAX));
    let error = |e: landlock::RulesetError| SandboxError::Landlock(e.to_string());
    let all = AccessFs::from_all(abi);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)
        .map_err(error)?;
    if abi >= ABI::V6 {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(error)?;
    }
    let writable =
        policy.writable.iter().map(|p| p.as_path()).chain(DEVICES.iter().map(|d| d.as_ref()));
    let status = ruleset
        .create()
        .map_err(error)?
        .add_rules(path_beneath_rules(&policy.readable, AccessFs::from_read(abi)))
        .map_err(error)?
        .add_rules(path_beneath_rules(writable, all))
        .map_err(error)?
        .restrict_self()
        .map_err(error)?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(SandboxError::Landlock(format!(
            "the rules are {:?} only (ABI {version})",
            status.ruleset
        )));
    }
    Ok(())
}
