//! What a command changed in the working tree, as a [`ChangeSet`] for the same review as edits.
//!
//! A command writes the tree directly, so the content a file had before it ran must be known
//! beforehand to show hunks and to restore rejected ones. The choice made here, [`TreeWatch`]:
//!
//! - Before each command, the tree is walked (tracked and untracked files; what `.gitignore`
//!   and `.git/info/exclude` ignore, `.git` itself, symlinks and denied files are left out) and
//!   each file's stat stamp (size, mtime, ctime, inode) is taken. A file whose stamp matches the
//!   one kept from the last walk keeps its kept content; only new or changed files are read.
//!   So the first walk reads the tree once and every later one reads just what changed since
//!   (the model's own edits, a previous command's output): on an unchanged tree a command costs
//!   one stat per file, no reads.
//! - After the command, the tree is walked again; a file whose stamp differs, or whose mtime is
//!   too recent for the stamp to be trusted (git's "racy clean" case), is read and compared
//!   with the kept content.
//! - Contents are kept in memory for text files up to [`MAX_FILE_BYTES`]. Binary and larger
//!   files are watched by stamp only: when a command changes one, it is named to the model and
//!   the user but cannot be reviewed hunk by hunk or restored.
//!
//! The alternatives were worse: git's objects hold HEAD and the index, but the working tree may
//! differ from both while steps are pending, and untracked files are in neither; writing the
//! whole tree as objects before every command (`git stash create` with untracked files) costs a
//! hash of every changed file and two processes per command, and needs a repository.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tiller_types::{ChangeKind, ChangeSet, Selection};

use crate::{ToolError, Workspace, diff_file};

/// Largest file whose content is kept, and so can be reviewed and restored.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A file's mtime within this many nanoseconds of a walk may change again unseen by its stamp
/// (timestamps are coarser than the clock); such a file is always read after a command.
const RACY_NANOS: i128 = 2_000_000_000;

/// Stat metadata that changes whenever a file's content does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: i128,
    ctime: i128,
    inode: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    stamp: Stamp,
    /// The text, when the file is text and small enough to keep.
    text: Option<Arc<str>>,
}

/// The working tree as of the last walk; see the module docs.
#[derive(Default)]
pub struct TreeWatch {
    files: HashMap<String, Entry>,
    /// When the last walk started, in nanoseconds since the epoch.
    walked_at: i128,
}

/// What one command changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TreeChanges {
    /// Text files added, changed or deleted, for review.
    pub changes: ChangeSet,
    /// Files that changed but cannot be reviewed: binary, or over [`MAX_FILE_BYTES`].
    pub opaque: Vec<String>,
}

impl TreeWatch {
    /// Notes the tree as it is now, reading only files new or changed since the last walk.
    pub fn before(&mut self, ws: &Workspace) -> Result<(), ToolError> {
        let now = now_nanos();
        let mut files = HashMap::with_capacity(self.files.len());
        for (path, stamp) in stamps(ws)? {
            let entry = match self.files.remove(&path) {
                Some(entry) if entry.stamp == stamp => entry,
                _ => Entry { stamp, text: read_kept(ws, &path, stamp) },
            };
            files.insert(path, entry);
        }
        self.files = files;
        self.walked_at = now;
        Ok(())
    }

    /// What changed since [`Self::before`]. The watch itself is left as it was: the next
    /// `before` catches up with whatever review made of the changes.
    pub fn after(&self, ws: &Workspace) -> Result<TreeChanges, ToolError> {
        let mut out = TreeChanges::default();
        let mut now = stamps(ws)?;
        now.sort_by(|a, b| a.0.cmp(&b.0));
        let mut seen = std::collections::HashSet::with_capacity(now.len());
        for (path, stamp) in now {
            seen.insert(path.clone());
            let old = self.files.get(&path);
            let racy = old.is_some_and(|e| e.stamp.mtime + RACY_NANOS > self.walked_at);
            if old.is_some_and(|e| e.stamp == stamp) && !racy {
                continue;
            }
            let new = read_kept(ws, &path, stamp);
            match (old, new) {
                (None, Some(new)) => {
                    let file = diff_file(&path, ChangeKind::Add, None, Some(new.to_string()));
                    out.changes.files.push(file);
                }
                (Some(Entry { text: Some(old), .. }), Some(new)) if old != &new => {
                    let (old, new) = (Some(old.to_string()), Some(new.to_string()));
                    out.changes.files.push(diff_file(&path, ChangeKind::Update, old, new));
                }
                (Some(Entry { text: Some(_), .. }), Some(_)) => {}
                // Not kept before or not text now: only the stamp can tell.
                (Some(e), _) if e.stamp == stamp => {}
                _ => out.opaque.push(path),
            }
        }
        let mut gone: Vec<(&String, &Entry)> =
            self.files.iter().filter(|(path, _)| !seen.contains(*path)).collect();
        gone.sort_by(|a, b| a.0.cmp(b.0));
        for (path, entry) in gone {
            match &entry.text {
                Some(old) => out.changes.files.push(diff_file(
                    path,
                    ChangeKind::Delete,
                    Some(old.to_string()),
                    None,
                )),
                None => out.opaque.push(path.clone()),
            }
        }
        Ok(out)
    }
}

/// Brings the working tree, which holds the `new` side of `changes` (a command wrote it), to
/// what `selection` accepts: rejected hunks get their old lines back, a rejected new file is
/// removed, a rejected deletion is restored. Returns the paths whose accepted state differs from
/// before the command, that is, what the step changed.
pub fn keep_accepted(
    ws: &Workspace,
    changes: &ChangeSet,
    selection: &Selection,
) -> Result<Vec<String>, ToolError> {
    if selection.0.len() != changes.files.len() {
        return Err(ToolError::Other("selection does not match the change set".into()));
    }
    let mut kept = Vec::new();
    for (file, accepted) in changes.files.iter().zip(&selection.0) {
        let target = file.content_with(accepted);
        if target != file.new {
            match &target {
                Some(text) => ws.write_atomic(&file.path, text)?,
                None => ws.remove(&file.path)?,
            }
        }
        if target != file.old {
            kept.push(file.path.clone());
        }
    }
    Ok(kept)
}

/// The stamp of every file in the tree, by workspace-relative path.
fn stamps(ws: &Workspace) -> Result<Vec<(String, Stamp)>, ToolError> {
    let walk = ignore::WalkBuilder::new(ws.root())
        .hidden(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    let mut out = Vec::new();
    for entry in walk {
        let entry = entry.map_err(|e| ToolError::Other(format!("cannot walk the tree: {e}")))?;
        if !entry.file_type().is_some_and(|t| t.is_file()) || ws.is_denied(entry.path()) {
            continue;
        }
        // A file removed between listing and stat is simply not there.
        let Ok(meta) = entry.metadata() else { continue };
        out.push((ws.relative(entry.path()), stamp_of(&meta)));
    }
    Ok(out)
}

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    let nanos = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
    Stamp {
        size: meta.size(),
        mtime: nanos(meta.mtime(), meta.mtime_nsec()),
        ctime: nanos(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
    }
}

/// The text of `path` when it is text and within [`MAX_FILE_BYTES`] (by its stamp).
fn read_kept(ws: &Workspace, path: &str, stamp: Stamp) -> Option<Arc<str>> {
    if stamp.size > MAX_FILE_BYTES {
        return None;
    }
    let bytes = std::fs::read(Path::new(ws.root()).join(path)).ok()?;
    if bytes.len() as u64 > MAX_FILE_BYTES || bytes.iter().take(8192).any(|&b| b == 0) {
        return None;
    }
    String::from_utf8(bytes).ok().map(Arc::from)
}

fn now_nanos() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::temp_workspace;

    fn sh(dir: &Path, script: &str) {
        let status =
            std::process::Command::new("sh").arg("-c").arg(script).current_dir(dir).status();
        assert!(status.unwrap().success(), "{script}");
    }

    #[test]
    fn sees_updates_adds_and_deletes_and_skips_ignored_files() {
        let (dir, ws) = temp_workspace();
        sh(
            dir.path(),
            "printf 'a\\nb\\nc\\n' > a.txt; echo x > gone.txt; echo keep > same.txt; \
             echo 'build/' > .gitignore; mkdir build",
        );
        let mut watch = TreeWatch::default();
        watch.before(&ws).unwrap();
        sh(
            dir.path(),
            "sed -i s/b/B/ a.txt; echo new > n.txt; rm gone.txt; echo o > build/out; \
             printf '\\0bin' > blob",
        );
        let seen = watch.after(&ws).unwrap();
        let summary: Vec<(&str, &ChangeKind)> =
            seen.changes.files.iter().map(|f| (f.path.as_str(), &f.kind)).collect();
        assert_eq!(
            summary,
            [
                ("a.txt", &ChangeKind::Update),
                ("n.txt", &ChangeKind::Add),
                ("gone.txt", &ChangeKind::Delete)
            ]
        );
        assert_eq!(seen.changes.files[0].hunks[0].added, ["B\n"]);
        assert_eq!(seen.opaque, ["blob"]);
    }

    #[test]
    fn rejected_parts_are_restored() {
        let (dir, ws) = temp_workspace();
        sh(dir.path(), "printf '1\\n2\\n3\\n4\\n5\\n' > a.txt; echo x > gone.txt");
        let mut watch = TreeWatch::default();
        watch.before(&ws).unwrap();
        sh(dir.path(), "sed -i -e s/1/ONE/ -e s/5/FIVE/ a.txt; echo n > n.txt; rm gone.txt");
        let seen = watch.after(&ws).unwrap().changes;
        assert_eq!(seen.files[0].hunks.len(), 2);
        let selection = Selection(vec![vec![false, true], vec![false], vec![false]]);
        let kept = keep_accepted(&ws, &seen, &selection).unwrap();
        assert_eq!(kept, ["a.txt"]);
        assert_eq!(ws.read_text("a.txt").unwrap().unwrap(), "1\n2\n3\n4\nFIVE\n");
        assert!(!dir.path().join("n.txt").exists());
        assert_eq!(ws.read_text("gone.txt").unwrap().as_deref(), Some("x\n"));
        // The next walk starts from the restored tree.
        watch.before(&ws).unwrap();
        assert_eq!(watch.after(&ws).unwrap(), TreeChanges::default());
    }

    #[test]
    fn same_size_rewrite_in_place_is_seen() {
        let (dir, ws) = temp_workspace();
        sh(dir.path(), "echo aaaa > f");
        let mut watch = TreeWatch::default();
        watch.before(&ws).unwrap();
        // Same size, same inode, possibly the same timestamp tick.
        sh(dir.path(), "printf 'bbbb\\n' 1<> f");
        let seen = watch.after(&ws).unwrap().changes;
        assert_eq!(seen.files.len(), 1);
        assert_eq!(seen.files[0].new.as_deref(), Some("bbbb\n"));
    }
}
