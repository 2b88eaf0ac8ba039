//! The git work a loop needs around the agent: which files it changed, putting them back, and
//! finding the commit that added a reproducing test.

use std::path::Path;

use tiller_tools::git::git;

use crate::LoopError;

/// Trailer naming the test a repro commit added; `fix` looks it up to protect the test's files.
pub const TEST_TRAILER: &str = "Tiller-Test";

/// Files that differ from HEAD, untracked ones included (ignored ones not): `(status, path)`.
pub fn changed(root: &Path) -> Result<Vec<(String, String)>, LoopError> {
    let out = git(root, &["status", "--porcelain", "-z", "--untracked-files=all"])?;
    let mut files = Vec::new();
    let mut entries = out.split('\0').filter(|e| e.len() > 3);
    while let Some(entry) = entries.next() {
        let (status, path) = entry.split_at(3);
        if status.starts_with('R') || status.starts_with('C') {
            // A rename is followed by its source path.
            entries.next();
        }
        files.push((status.trim().to_string(), path.to_string()));
    }
    Ok(files)
}

/// The paths of [`changed`] files.
pub fn changed_paths(root: &Path) -> Result<Vec<String>, LoopError> {
    Ok(changed(root)?.into_iter().map(|(_, path)| path).collect())
}

/// Refuses to start on uncommitted work, which putting back the agent's changes could lose.
pub fn require_clean(root: &Path) -> Result<(), LoopError> {
    let dirty = changed_paths(root)?;
    if dirty.is_empty() {
        return Ok(());
    }
    Err(LoopError::Precondition(format!(
        "the working tree has uncommitted changes ({}); commit or stash them first",
        dirty.join(", ")
    )))
}

/// Puts `paths` back as they are in HEAD: changed files restored, new ones removed.
pub fn revert(root: &Path, paths: &[String]) -> Result<(), LoopError> {
    let status: Vec<(String, String)> = changed(root)?;
    for (code, path) in status.iter().filter(|(_, p)| paths.contains(p)) {
        if code == "??" || code.starts_with('A') {
            git(root, &["rm", "-q", "--cached", "--ignore-unmatch", "--", path])?;
            let full = root.join(path);
            // Gone already is as good as removed.
            let _ = std::fs::remove_file(&full).or_else(|_| std::fs::remove_dir_all(&full));
        } else {
            git(root, &["checkout", "-q", "HEAD", "--", path])?;
        }
    }
    Ok(())
}

/// The newest commit (of the last 200) whose test trailer is `test` (any test when `None`):
/// the test's name and the files the commit changed.
pub fn repro_commit(
    root: &Path,
    test: Option<&str>,
) -> Result<Option<(String, Vec<String>)>, LoopError> {
    let format = format!("--format=%H%x00%(trailers:key={TEST_TRAILER},valueonly)%x00");
    let log = git(root, &["log", "-200", &format])?;
    let mut fields = log.split('\0');
    while let (Some(hash), Some(name)) = (fields.next(), fields.next()) {
        let name = name.trim();
        if name.is_empty() || test.is_some_and(|t| t != name) {
            continue;
        }
        let files = git(root, &["show", "--name-only", "--format=", hash.trim()])?;
        return Ok(Some((name.to_string(), files.lines().map(str::to_string).collect())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverts_changed_and_new_files_and_finds_repro_commits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]).unwrap();
        std::fs::write(root.join("a.txt"), "a\n").unwrap();
        tiller_tools::git::commit(root, &["a.txt".into()], "init", &[]).unwrap();
        require_clean(root).unwrap();
        std::fs::write(root.join("a.txt"), "changed\n").unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/new.txt"), "new\n").unwrap();
        assert_eq!(changed_paths(root).unwrap(), ["a.txt", "d/new.txt"]);
        assert!(require_clean(root).unwrap_err().to_string().contains("a.txt, d/new.txt"));
        revert(root, &["a.txt".into(), "d/new.txt".into()]).unwrap();
        require_clean(root).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "a\n");

        assert_eq!(repro_commit(root, None).unwrap(), None);
        std::fs::write(root.join("t.txt"), "t\n").unwrap();
        let trailer = [(TEST_TRAILER, "it_works".to_string())];
        tiller_tools::git::commit(root, &["t.txt".into()], "Add test", &trailer).unwrap();
        let found = Some(("it_works".to_string(), vec!["t.txt".to_string()]));
        assert_eq!(repro_commit(root, None).unwrap(), found);
        assert_eq!(repro_commit(root, Some("it_works")).unwrap(), found);
        assert_eq!(repro_commit(root, Some("other")).unwrap(), None);
    }
}
