//! The git operations the front ends and loops build on: committing a step's files with
//! trailers that tie the commit to its session, and reading those trailers back to undo it.
//! Everything goes through the `git` command, so the user's own configuration and hooks apply.

use std::path::Path;
use std::process::Command;

use crate::ToolError;

/// Trailer naming the session a step's commit belongs to.
pub const SESSION_TRAILER: &str = "Tiller-Session";
/// Trailer giving the number of session messages before the model turn that proposed the step,
/// to undo the conversation.
pub const MESSAGES_TRAILER: &str = "Tiller-Messages";

/// Whether `root` is inside a git work tree.
pub fn is_repo(root: &Path) -> bool {
    git(root, &["rev-parse", "--is-inside-work-tree"]).is_ok_and(|out| out.trim() == "true")
}

/// Commits exactly `files` (added, changed or deleted; other staged work is left alone) with
/// `message` and `trailers`. Returns the new commit's short hash.
pub fn commit(
    root: &Path,
    files: &[String],
    message: &str,
    trailers: &[(&str, String)],
) -> Result<String, ToolError> {
    let mut add = vec!["add", "-A", "--"];
    add.extend(files.iter().map(String::as_str));
    git(root, &add)?;
    let mut text = message.trim().to_string();
    if !trailers.is_empty() {
        text.push_str("\n\n");
        for (key, value) in trailers {
            text.push_str(&format!("{key}: {value}\n"));
        }
    }
    // A repository with no committer identity still gets its commit, under tiller's name.
    let identity = match git(root, &["config", "user.email"]) {
        Ok(_) => vec![],
        Err(_) => vec!["-c", "user.name=tiller", "-c", "user.email=tiller@localhost"],
    };
    let mut args = identity;
    args.extend(["commit", "--quiet", "--no-verify", "-m", &text, "--only", "--"]);
    args.extend(files.iter().map(String::as_str));
    git(root, &args)?;
    Ok(git(root, &["rev-parse", "--short", "HEAD"])?.trim().to_string())
}

/// The value of trailer `key` in the message of `rev`, if it has one.
pub fn trailer(root: &Path, rev: &str, key: &str) -> Result<Option<String>, ToolError> {
    let format = format!("--format=%(trailers:key={key},valueonly)");
    let out = git(root, &["log", "-1", &format, rev])?;
    Ok(out.lines().next().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string))
}

/// Runs git in `root`; its stdout, or its stderr as the error.
pub fn git(root: &Path, args: &[&str]) -> Result<String, ToolError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| ToolError::Other(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ToolError::Other(format!("git {}: {}", args[0], stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_given_files_with_trailers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(!is_repo(root));
        git(root, &["init", "-q"]).unwrap();
        assert!(is_repo(root));
        std::fs::write(root.join("a.txt"), "a\n").unwrap();
        std::fs::write(root.join("b.txt"), "b\n").unwrap();
        git(root, &["add", "b.txt"]).unwrap();
        let trailers = [(SESSION_TRAILER, "s1".to_string()), (MESSAGES_TRAILER, "4".into())];
        let hash = commit(root, &["a.txt".into()], "Add a\n", &trailers).unwrap();
        assert_eq!(hash.len(), 7, "{hash}");
        let files = git(root, &["show", "--name-only", "--format=", "HEAD"]).unwrap();
        assert_eq!(files.trim(), "a.txt");
        // b.txt is still staged, not committed.
        assert_eq!(git(root, &["diff", "--cached", "--name-only"]).unwrap().trim(), "b.txt");
        assert_eq!(trailer(root, "HEAD", SESSION_TRAILER).unwrap().as_deref(), Some("s1"));
        assert_eq!(trailer(root, "HEAD", MESSAGES_TRAILER).unwrap().as_deref(), Some("4"));
        assert_eq!(trailer(root, "HEAD", "Other").unwrap(), None);
        assert_eq!(git(root, &["log", "-1", "--format=%s"]).unwrap().trim(), "Add a");
    }
}
