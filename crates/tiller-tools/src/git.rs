//! The git operations the front ends and loops build on: committing a step's files with
//! trailers that tie the commit to its session, and reading those trailers back to undo it.
//! Everything goes through `tiller_git`, which keeps the repository's configuration from
//! running code (no hooks, no fsmonitor, no repository-defined filters).

use std::path::Path;

pub use tiller_git::is_repo;

use crate::ToolError;

/// Trailer naming the session a step's commit belongs to.
pub const SESSION_TRAILER: &str = "Tiller-Session";
/// Trailer giving the number of session messages before the model turn that proposed the step,
/// to undo the conversation.
pub const MESSAGES_TRAILER: &str = "Tiller-Messages";

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
    let mut args = vec!["commit", "--quiet", "--no-verify", "-m", &text, "--only", "--"];
    args.extend(files.iter().map(String::as_str));
    let mut cmd = tiller_git::command(root, &args).map_err(failed)?;
    // A repository with no committer identity still gets its commit, under tiller's name.
    if git(root, &["var", "GIT_COMMITTER_IDENT"]).is_err() {
        for who in ["AUTHOR", "COMMITTER"] {
            cmd.env(format!("GIT_{who}_NAME"), "tiller");
            cmd.env(format!("GIT_{who}_EMAIL"), "tiller@localhost");
        }
    }
    tiller_git::output(&mut cmd, "commit").map_err(failed)?;
    Ok(git(root, &["rev-parse", "--short", "HEAD"])?.trim().to_string())
}

/// The value of trailer `key` in the message of `rev`, if it has one.
pub fn trailer(root: &Path, rev: &str, key: &str) -> Result<Option<String>, ToolError> {
    let format = format!("--format=%(trailers:key={key},valueonly)");
    let out = git(root, &["log", "-1", &format, rev])?;
    Ok(out.lines().next().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string))
}

/// Runs git in `root` (hardened, see `tiller_git::command`); its stdout, or its stderr as the
/// error.
pub fn git(root: &Path, args: &[&str]) -> Result<String, ToolError> {
    tiller_git::run(root, args).map_err(failed)
}

fn failed(e: tiller_git::GitError) -> ToolError {
    ToolError::Other(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiller_git::trap::{Attack, Trap};

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

    /// The git operations tiller and its loops run on a workspace, one after the other.
    fn operate(root: &Path) {
        assert!(is_repo(root));
        let status = git(root, &["status", "--porcelain", "-z", "--untracked-files=all"]).unwrap();
        assert!(status.contains("a.txt"), "{status}");
        git(root, &["diff"]).unwrap();
        git(root, &["log", "-p", "-1"]).unwrap();
        commit(root, &["a.txt".into(), "new.txt".into()], "Step", &[(SESSION_TRAILER, "s".into())])
            .unwrap();
        assert_eq!(trailer(root, "HEAD", SESSION_TRAILER).unwrap().as_deref(), Some("s"));
        git(root, &["show", "--name-only", "--format=", "HEAD"]).unwrap();
        git(root, &["reset", "--quiet", "--keep", "HEAD~1"]).unwrap();
        std::fs::write(root.join("a.txt"), "again\n").unwrap();
        git(root, &["checkout", "-q", "HEAD", "--", "a.txt"]).unwrap();
        git(root, &["rm", "-q", "--cached", "--ignore-unmatch", "--", "new.txt"]).unwrap();
    }

    #[test]
    fn repository_config_runs_nothing() {
        let fired: Vec<(Attack, String)> = Attack::ALL
            .into_iter()
            .filter_map(|attack| {
                let trap = Trap::new(attack).unwrap();
                operate(&trap.root());
                Some((attack, trap.fired()?))
            })
            .collect();
        assert_eq!(fired, []);
    }

    #[test]
    fn the_environment_cannot_point_git_elsewhere() {
        if let Some(root) = std::env::var_os("TILLER_TRAP_ROOT") {
            return operate(Path::new(&root));
        }
        let trap = Trap::unarmed().unwrap();
        let mut vars = trap.hostile_env().unwrap();
        vars.push(("TILLER_TRAP_ROOT", trap.root().into()));
        let name = "git::tests::the_environment_cannot_point_git_elsewhere";
        let (passed, out) = tiller_git::trap::rerun(name, &vars).unwrap();
        assert!(passed, "{out}");
        assert_eq!(trap.fired(), None);
        // The step was committed, and taken back, in the workspace's own repository.
        let log = git(&trap.root(), &["reflog", "--format=%gs"]).unwrap();
        assert!(log.contains("Step"), "{log}");
    }
}
