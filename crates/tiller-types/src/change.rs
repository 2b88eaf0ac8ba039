//! Pending change sets: edits proposed by the model, held as per-file hunks until a reviewer
//! accepts some or all of them. Nothing here touches the disk; `tiller-tools` computes change sets
//! and writes the accepted part.

use serde::{Deserialize, Serialize};

/// All files one edit would change.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub files: Vec<FileChange>,
}

/// One file's change. `old` and `new` are whole contents (absent for added or deleted files).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    /// Workspace-relative path, with `/` separators.
    pub path: String,
    pub kind: ChangeKind,
    pub old: Option<String>,
    pub new: Option<String>,
    /// Changed regions of `old`, in order, without context lines.
    pub hunks: Vec<Hunk>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ChangeKind {
    Add,
    Update,
    Delete,
    /// Renamed to `to`, possibly with edits.
    Move {
        to: String,
    },
}

/// One changed region: `removed` lines of the old text starting at line `old_start` (0-based)
/// are replaced by `added`. Lines keep their terminators so that contents rebuild exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hunk {
    pub old_start: usize,
    pub removed: Vec<String>,
    pub added: Vec<String>,
}

/// A reviewer's verdict: for each file, one flag per reviewable item (see
/// [`FileChange::items`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection(pub Vec<Vec<bool>>);

impl ChangeSet {
    /// A selection accepting everything.
    pub fn accept_all(&self) -> Selection {
        Selection(self.files.iter().map(|f| vec![true; f.items()]).collect())
    }

    /// A selection rejecting everything.
    pub fn reject_all(&self) -> Selection {
        Selection(self.files.iter().map(|f| vec![false; f.items()]).collect())
    }

    /// Lines added and removed over all files.
    pub fn line_counts(&self) -> (usize, usize) {
        self.files
            .iter()
            .flat_map(|f| &f.hunks)
            .fold((0, 0), |(a, r), h| (a + h.added.len(), r + h.removed.len()))
    }
}

impl Selection {
    pub fn accepts_anything(&self) -> bool {
        self.0.iter().flatten().any(|&b| b)
    }

    pub fn accepts_everything(&self) -> bool {
        self.0.iter().flatten().all(|&b| b)
    }
}

impl FileChange {
    /// How many items a reviewer decides on: one per hunk, or one for the whole file operation
    /// when there are no hunks (a pure rename, or an empty file added or deleted).
    pub fn items(&self) -> usize {
        self.hunks.len().max(1)
    }

    /// Whether the file operation itself (add, delete, move) happens under `accepted`.
    /// An update or move with edits applies when any of its hunks is accepted.
    pub fn is_applied(&self, accepted: &[bool]) -> bool {
        accepted.iter().any(|&b| b)
    }

    /// The content the file ends up with when only the `accepted` hunks are applied
    /// (`None`: the file does not exist afterwards). `accepted` has [`Self::items`] flags.
    pub fn content_with(&self, accepted: &[bool]) -> Option<String> {
        let applied = self.is_applied(accepted);
        match (&self.kind, applied) {
            (ChangeKind::Add, true) => self.new.clone(),
            (ChangeKind::Add, false) => None,
            (ChangeKind::Delete, true) => None,
            (_, _) if self.hunks.is_empty() => self.old.clone(),
            (_, _) => {
                let old = self.old.as_deref().unwrap_or_default();
                let lines: Vec<&str> = old.split_inclusive('\n').collect();
                let mut out = String::with_capacity(old.len());
                let mut at = 0;
                for (hunk, &take) in self.hunks.iter().zip(accepted) {
                    let start = hunk.old_start.min(lines.len());
                    lines[at.min(start)..start].iter().for_each(|l| out.push_str(l));
                    if take {
                        hunk.added.iter().for_each(|l| out.push_str(l));
                    } else {
                        hunk.removed.iter().for_each(|l| out.push_str(l));
                    }
                    at = start + hunk.removed.len();
                }
                lines.get(at..).unwrap_or_default().iter().for_each(|l| out.push_str(l));
                Some(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_hunk_update() -> FileChange {
        FileChange {
            path: "a.txt".into(),
            kind: ChangeKind::Update,
            old: Some("one\ntwo\nthree\nfour\n".into()),
            new: Some("ONE\ntwo\nthree\nFOUR\nfive".into()),
            hunks: vec![
                Hunk { old_start: 0, removed: vec!["one\n".into()], added: vec!["ONE\n".into()] },
                Hunk {
                    old_start: 3,
                    removed: vec!["four\n".into()],
                    added: vec!["FOUR\n".into(), "five".into()],
                },
            ],
        }
    }

    #[test]
    fn all_hunks_rebuild_new_content() {
        let f = two_hunk_update();
        assert_eq!(f.content_with(&[true, true]), f.new);
    }

    #[test]
    fn no_hunks_keep_old_content() {
        let f = two_hunk_update();
        assert_eq!(f.content_with(&[false, false]), f.old);
    }

    #[test]
    fn one_hunk_applies_alone() {
        let f = two_hunk_update();
        assert_eq!(f.content_with(&[false, true]).unwrap(), "one\ntwo\nthree\nFOUR\nfive");
        assert_eq!(f.content_with(&[true, false]).unwrap(), "ONE\ntwo\nthree\nfour\n");
    }

    #[test]
    fn add_and_delete_follow_their_single_item() {
        let add = FileChange {
            path: "n".into(),
            kind: ChangeKind::Add,
            old: None,
            new: Some("x\n".into()),
            hunks: vec![Hunk { old_start: 0, removed: vec![], added: vec!["x\n".into()] }],
        };
        assert_eq!(add.content_with(&[true]).as_deref(), Some("x\n"));
        assert_eq!(add.content_with(&[false]), None);
        let del =
            FileChange { kind: ChangeKind::Delete, old: Some("x\n".into()), new: None, ..add };
        assert_eq!(del.content_with(&[true]), None);
        assert_eq!(del.content_with(&[false]).as_deref(), Some("x\n"));
    }

    #[test]
    fn selection_counts_items() {
        let set = ChangeSet { files: vec![two_hunk_update()] };
        let all = set.accept_all();
        assert_eq!(all, Selection(vec![vec![true, true]]));
        assert!(all.accepts_everything());
        assert_eq!(set.line_counts(), (3, 2));
    }
}
