//! The one way tiller runs git. A repository is data the agent (or whoever cloned it) may have
//! written, so its configuration must not make git run a program: hooks, an fsmonitor, an
//! external diff, textconv and filter drivers are all named by config files inside `.git` (or
//! files they include). [`command`] builds a `git` that ignores them, started with none of
//! the `GIT_*` variables of tiller's own environment, which could point it at another
//! repository or configuration. What is neutralised and why is in docs/git.md.

#[cfg(feature = "trap")]
pub mod trap;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a git command failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("git {args}: {message}")]
    Failed { args: String, message: String },
}

/// Settings that win over every configuration file, each turning off a way config runs code.
const FIXED: [(&str, &str); 13] = [
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.pager", "cat"),
    ("core.editor", "true"),
    ("sequence.editor", "true"),
    // gpg.program, and signing with it.
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("log.showSignature", "false"),
    // Every transport, and with them ssh commands, remote helpers, askpass and credential
    // helpers: tiller only works on local repositories.
    ("protocol.allow", "never"),
    // Other repositories, with their own configuration.
    ("submodule.recurse", "false"),
    ("diff.ignoreSubmodules", "all"),
    // Background processes.
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
];

/// Subcommands that show diffs, and so would run `diff.external` or a textconv driver.
const DIFFING: [&str; 4] = ["diff", "log", "show", "whatchanged"];

/// A `git` for the repository at or above `dir`, running `args` (the subcommand first): no
/// hooks, fsmonitor, pager, editor, external diff, textconv, signing or transports, filter
/// drivers only as the user's own (system or global) configuration defines them, and none of
/// tiller's `GIT_*` variables. Stdin is empty unless the caller sets it.
pub fn command(dir: &Path, args: &[&str]) -> Result<Command, GitError> {
    let mut settings: Vec<(String, String)> =
        FIXED.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let listing = output(bare(dir).args(["config", "--list", "--show-scope", "-z"]), "config")?;
    settings.extend(filters(&listing));
    let mut cmd = bare(dir);
    cmd.env("GIT_CONFIG_COUNT", settings.len().to_string());
    for (i, (key, value)) in settings.into_iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), key).env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
    let (sub, rest) = args.split_first().unzip();
    cmd.args(sub);
    if sub.is_some_and(|s| DIFFING.contains(s)) {
        cmd.args(["--no-ext-diff", "--no-textconv"]);
    }
    cmd.args(rest.unwrap_or_default());
    Ok(cmd)
}

/// Runs git with `args` in `dir` (see [`command`]): its stdout, or its stderr as the error.
pub fn run(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    output(&mut command(dir, args)?, &args.join(" "))
}

/// The top of the work tree at or above `dir`.
pub fn toplevel(dir: &Path) -> Result<PathBuf, GitError> {
    let out = run(dir, &["rev-parse", "--show-toplevel"])?;
    Ok(PathBuf::from(out.trim_end_matches('\n')))
}

/// Whether `dir` is inside a git work tree.
pub fn is_repo(dir: &Path) -> bool {
    run(dir, &["rev-parse", "--is-inside-work-tree"]).is_ok_and(|out| out.trim() == "true")
}

/// Runs `cmd`: its stdout, or its stderr as the error, under the name `what`.
pub fn output(cmd: &mut Command, what: &str) -> Result<String, GitError> {
    let out = cmd.output()?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(GitError::Failed { args: what.to_string(), message });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `GIT_*` variables kept from tiller's environment: the user's identity, which names no
/// program and no repository.
const IDENTITY: [&str; 6] = [
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_COMMITTER_DATE",
];

/// `git -C dir` with none of tiller's other `GIT_*` variables, nothing to prompt with and no
/// stdin.
fn bare(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    let inherited: Vec<OsString> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.as_encoded_bytes().starts_with(b"GIT_"))
        .filter(|name| !IDENTITY.iter().any(|id| name == id))
        .collect();
    for name in inherited {
        cmd.env_remove(name);
    }
    cmd.envs([
        ("GIT_TERMINAL_PROMPT", "0"),
        ("GIT_EDITOR", "true"),
        ("GIT_SEQUENCE_EDITOR", "true"),
        ("GIT_PAGER", "cat"),
    ]);
    cmd.arg("--no-pager").arg("-C").arg(dir).stdin(Stdio::null());
    cmd
}

/// Overrides for the filter drivers the repository's own configuration defines (the `local`
/// and `worktree` scopes, files they include among them), from `git config --list
/// --show-scope -z` output: the user's own (system or global) command where there is one, else
/// none, and then the filter is not required.
fn filters(listing: &str) -> Vec<(String, String)> {
    let mut user: Vec<(&str, &str)> = Vec::new();
    let mut repo: Vec<&str> = Vec::new();
    let mut fields = listing.split('\0');
    while let (Some(scope), Some(entry)) = (fields.next(), fields.next()) {
        let (key, value) = entry.split_once('\n').unwrap_or((entry, ""));
        let Some(driver) = key.strip_prefix("filter.") else { continue };
        let Some((_, var)) = driver.rsplit_once('.') else { continue };
        if !matches!(var, "clean" | "smudge" | "process") {
            continue;
        }
        match scope {
            "system" | "global" => user.push((key, value)),
            _ => repo.push(key),
        }
    }
    let mut settings = Vec::new();
    for key in repo {
        if settings.iter().any(|(k, _)| k == key) {
            continue;
        }
        match user.iter().rev().find(|(k, _)| *k == key) {
            Some((_, value)) => settings.push((key.to_string(), value.to_string())),
            None => {
                settings.push((key.to_string(), String::new()));
                if let Some((driver, _)) = key.rsplit_once('.') {
                    settings.push((format!("{driver}.required"), "false".to_string()));
                }
            }
        }
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_filters_give_way_to_the_users() {
        let listing = [
            "global\0filter.lfs.clean\ngit-lfs clean -- %f",
            "local\0filter.lfs.clean\nevil",
            "local\0filter.evil.smudge\nevil",
            "local\0filter.a.b.process\nevil",
            "local\0filter.evil.required\ntrue",
            "local\0core.bare\nfalse",
            "command\0filter.x.clean\nx",
        ]
        .join("\0");
        let found = filters(&(listing + "\0"));
        let expected = [
            ("filter.lfs.clean", "git-lfs clean -- %f"),
            ("filter.evil.smudge", ""),
            ("filter.evil.required", "false"),
            ("filter.a.b.process", ""),
            ("filter.a.b.required", "false"),
            ("filter.x.clean", ""),
            ("filter.x.required", "false"),
        ];
        let found: Vec<(&str, &str)> = found.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        assert_eq!(found, expected);
    }
}
