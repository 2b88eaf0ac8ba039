//! Turning old and new file contents into reviewable hunks, and writing the accepted part of a
//! change set to the working tree.

use similar::{DiffTag, TextDiff};
use tiller_types::{ChangeKind, ChangeSet, FileChange, Hunk, Selection};

use crate::{ToolError, Workspace};

/// The change of one file from `old` to `new` (either absent for an add or a delete), split into
/// hunks: maximal runs of changed lines.
pub fn diff_file(
    path: &str,
    kind: ChangeKind,
    old: Option<String>,
    new: Option<String>,
) -> FileChange {
    let (before, after) = (old.as_deref().unwrap_or(""), new.as_deref().unwrap_or(""));
    let old_lines: Vec<&str> = before.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = after.split_inclusive('\n').collect();
    let diff = TextDiff::from_lines(before, after);
    let mut hunks: Vec<Hunk> = Vec::new();
    let mut open = false;
    for op in diff.ops() {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        if tag == DiffTag::Equal {
            open = false;
            continue;
        }
        if !open {
            hunks.push(Hunk { old_start: old_range.start, removed: vec![], added: vec![] });
            open = true;
        }
        if let Some(h) = hunks.last_mut() {
            h.removed.extend(old_lines[old_range].iter().map(|l| l.to_string()));
            h.added.extend(new_lines[new_range].iter().map(|l| l.to_string()));
        }
    }
    FileChange { path: path.to_string(), kind, old, new, hunks }
}

/// A unified diff of one file's change, with three lines of context, for people to read.
pub fn unified_diff(file: &FileChange) -> String {
    let (old, new) = (file.old.as_deref().unwrap_or(""), file.new.as_deref().unwrap_or(""));
    let a = format!("a/{}", file.path);
    let b = match &file.kind {
        ChangeKind::Move { to } => format!("b/{to}"),
        _ => format!("b/{}", file.path),
    };
    let (a, b) = match file.kind {
        ChangeKind::Add => ("/dev/null".to_string(), b),
        ChangeKind::Delete => (a, "/dev/null".to_string()),
        _ => (a, b),
    };
    let diff = TextDiff::from_lines(old, new);
    diff.unified_diff().context_radius(3).header(&a, &b).to_string()
}

/// Writes the part of `changes` that `selection` accepts. Every touched file is first checked to
/// still hold the content the change was computed from, so an edit made meanwhile is never
/// overwritten. Returns the paths written or removed.
pub fn apply_changes(
    ws: &Workspace,
    changes: &ChangeSet,
    selection: &Selection,
) -> Result<Vec<String>, ToolError> {
    if selection.0.len() != changes.files.len() {
        return Err(ToolError::Other("selection does not match the change set".into()));
    }
    for file in &changes.files {
        if ws.read_text(&file.path)? != file.old {
            return Err(ToolError::path(&file.path, "changed on disk since the edit was proposed"));
        }
        if let ChangeKind::Move { to } = &file.kind
            && ws.resolve(to)?.exists()
        {
            return Err(ToolError::path(to, "already exists"));
        }
    }
    let mut touched = Vec::new();
    for (file, accepted) in changes.files.iter().zip(&selection.0) {
        if !file.is_applied(accepted) {
            continue;
        }
        let content = file.content_with(accepted);
        match (&file.kind, content) {
            (ChangeKind::Move { to }, Some(text)) => {
                ws.write_atomic(to, &text)?;
                ws.remove(&file.path)?;
                touched.extend([file.path.clone(), to.clone()]);
            }
            (_, Some(text)) => {
                ws.write_atomic(&file.path, &text)?;
                touched.push(file.path.clone());
            }
            (_, None) => {
                ws.remove(&file.path)?;
                touched.push(file.path.clone());
            }
        }
    }
    Ok(touched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_splits_runs_into_hunks() {
        let f = diff_file(
            "a",
            ChangeKind::Update,
            Some("1\n2\n3\n4\n5\n".into()),
            Some("1\nTWO\n3\n4\nFIVE\nSIX\n".into()),
        );
        assert_eq!(f.hunks.len(), 2);
        assert_eq!(
            f.hunks[0],
            Hunk { old_start: 1, removed: vec!["2\n".into()], added: vec!["TWO\n".into()] }
        );
        assert_eq!(f.hunks[1].old_start, 4);
        assert_eq!(f.content_with(&[true, true]), f.new);
        assert_eq!(f.content_with(&[false, true]).unwrap(), "1\n2\n3\n4\nFIVE\nSIX\n");
    }

    #[test]
    fn applies_only_accepted_hunks_and_refuses_stale_edits() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path()).unwrap();
        ws.write_atomic("a.txt", "1\n2\n3\n4\n5\n").unwrap();
        let set = ChangeSet {
            files: vec![
                diff_file(
                    "a.txt",
                    ChangeKind::Update,
                    Some("1\n2\n3\n4\n5\n".into()),
                    Some("1\nB\n3\n4\nE\n".into()),
                ),
                diff_file("new.txt", ChangeKind::Add, None, Some("hi\n".into())),
            ],
        };
        let touched =
            apply_changes(&ws, &set, &Selection(vec![vec![false, true], vec![false]])).unwrap();
        assert_eq!(touched, vec!["a.txt"]);
        assert_eq!(ws.read_text("a.txt").unwrap().unwrap(), "1\n2\n3\n4\nE\n");
        assert!(!dir.path().join("new.txt").exists());
        // The file now differs from the change's `old`: applying again must refuse.
        let err = apply_changes(&ws, &set, &set.accept_all()).unwrap_err();
        assert!(err.to_string().contains("changed on disk"), "{err}");
    }

    #[test]
    fn unified_diff_reads_like_git() {
        let f =
            diff_file("a.txt", ChangeKind::Update, Some("1\n2\n".into()), Some("1\nTWO\n".into()));
        assert_eq!(unified_diff(&f), "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n 1\n-2\n+TWO\n");
        let add = diff_file("n.txt", ChangeKind::Add, None, Some("x\n".into()));
        assert!(unified_diff(&add).starts_with("--- /dev/null\n+++ b/n.txt\n"));
    }

    #[test]
    fn moves_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path()).unwrap();
        ws.write_atomic("old.txt", "x\n").unwrap();
        ws.write_atomic("gone.txt", "y\n").unwrap();
        let set = ChangeSet {
            files: vec![
                diff_file(
                    "old.txt",
                    ChangeKind::Move { to: "d/new.txt".into() },
                    Some("x\n".into()),
                    Some("x\n".into()),
                ),
                diff_file("gone.txt", ChangeKind::Delete, Some("y\n".into()), None),
            ],
        };
        apply_changes(&ws, &set, &set.accept_all()).unwrap();
        assert_eq!(ws.read_text("d/new.txt").unwrap().as_deref(), Some("x\n"));
        assert_eq!(ws.read_text("old.txt").unwrap(), None);
        assert_eq!(ws.read_text("gone.txt").unwrap(), None);
    }
}
