//! The holdability report of a change: lines added and removed, added code that repeats code
//! elsewhere in the repository (the same, or the same shape, over [`MIN_RUN`] lines or more), and
//! the longest function the change touches. For a pending step ([`report_changes`],
//! [`report_files`]) or a git range ([`report_range`]). What is measured and the heuristics'
//! limits: `docs/review.md`.

mod duplicates;
mod functions;
mod lang;
mod repo;
mod report;

use std::path::{Path, PathBuf};

use tiller_types::{ChangeKind, ChangeSet, Selection};

pub use duplicates::MIN_RUN;
pub use repo::{report_files, report_range};
pub use report::{Duplicate, FileStat, Function, LeftOut, Report};

/// One file as a step leaves it. `None`: the file does not exist on that side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileState<'a> {
    /// Relative to the repository root, with `/` separators.
    pub path: &'a str,
    pub old: Option<&'a str>,
    pub new: Option<&'a str>,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{} is not in a git repository", path.display())]
    NotARepo { path: PathBuf },
    #[error("bad range `{range}`: {reason}")]
    BadRange { range: String, reason: String },
    #[error(transparent)]
    Git(#[from] tiller_git::GitError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The report for the part of `changes` that `accepted` accepts, against the rest of the
/// repository at `root`: what the front end shows for a pending step. A move counts as the old
/// path deleted and the new one added.
pub fn report_changes(
    root: &Path,
    changes: &ChangeSet,
    accepted: &Selection,
) -> Result<Report, ReviewError> {
    let applied: Vec<_> = changes
        .files
        .iter()
        .zip(&accepted.0)
        .filter(|(file, flags)| file.is_applied(flags))
        .map(|(file, flags)| (file, file.content_with(flags)))
        .collect();
    let mut files = Vec::new();
    for (file, new) in &applied {
        let (old, new) = (file.old.as_deref(), new.as_deref());
        match &file.kind {
            ChangeKind::Move { to } => {
                files.push(FileState { path: &file.path, old, new: None });
                files.push(FileState { path: to, old: None, new });
            }
            _ => files.push(FileState { path: &file.path, old, new }),
        }
    }
    report_files(root, &files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiller_types::{FileChange, Hunk};

    #[test]
    fn changes_report_only_what_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let hunk = |at: usize, old: &str, new: &str| Hunk {
            old_start: at,
            removed: vec![format!("{old}\n")],
            added: vec![format!("{new}\n"), "extra\n".into()],
        };
        let update = FileChange {
            path: "a.txt".into(),
            kind: ChangeKind::Update,
            old: Some("one\ntwo\n".into()),
            new: Some("ONE\nextra\nTWO\nextra\n".into()),
            hunks: vec![hunk(0, "one", "ONE"), hunk(1, "two", "TWO")],
        };
        let moved = FileChange {
            path: "old.txt".into(),
            kind: ChangeKind::Move { to: "new.txt".into() },
            old: Some("x\n".into()),
            new: Some("x\n".into()),
            hunks: vec![],
        };
        let changes = ChangeSet { files: vec![update, moved] };
        let report =
            report_changes(dir.path(), &changes, &Selection(vec![vec![false, true], vec![true]]))
                .unwrap();
        let stats: Vec<_> = report.files.iter().map(|f| (&*f.path, f.added, f.removed)).collect();
        assert_eq!(stats, [("a.txt", 2, 1), ("old.txt", 0, 1), ("new.txt", 1, 0)]);
        let none = Selection(vec![vec![false, false], vec![false]]);
        assert_eq!(report_changes(dir.path(), &changes, &none).unwrap(), Report::default());
    }
}
