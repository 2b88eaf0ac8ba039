//! What a command changed in the working tree, as a [`ChangeSet`] for the same review as edits.
//!
//! A command writes the tree directly, so the content a file had before it ran must be known
//! beforehand to show hunks and to restore rejected ones. The choice made here, [`TreeWatch`]:
//!
//! - The first note walks the tree (tracked and untracked files; what `.gitignore` and
//!   `.git/info/exclude` ignore, `.git` itself, symlinks and denied files are left out), takes
//!   each file's stat stamp (size, mtime, ctime, inode, links) and keeps its content, and puts
//!   an inotify watch on every folder it walked (`tree/events.rs`).
//! - Every later look, before and after each command, walks again only the folders the events
//!   name: the folder a file was written, made, removed or renamed in, the whole of a folder
//!   made, removed or moved, or whose ignore rules changed. A file there whose stamp differs,
//!   or whose mtime is too recent for the stamp to be trusted (git's "racy clean" case), is
//!   read and compared with the kept content. So a command that changed nothing costs two
//!   reads of the event queue, and one that changed a file the walk of one folder.
//! - A file with more than one link can change through a name in another folder; such files
//!   are always looked at again.
//! - Where inotify is unavailable or overflows, the look walks the whole tree, reading only
//!   the files whose stamps changed.
//! - Contents are kept in memory for text files up to [`MAX_FILE_BYTES`]. Binary and larger
//!   files are watched by stamp only: when a command changes one, it is named to the model and
//!   the user but cannot be reviewed hunk by hunk or restored.
//!
//! The alternatives were worse: walking the whole tree by stat before and after every command
//! costs a stat per file twice (on 10,000 files, several times the sandbox's launch); git's
//! objects hold HEAD and the index, but the working tree may differ from both while steps are
//! pending, and untracked files are in neither; writing the whole tree as objects before every
//! command (`git stash create` with untracked files) costs a hash of every changed file and two
//! processes per command, and needs a repository.

mod events;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tiller_types::{ChangeKind, ChangeSet, Selection};

use crate::{ToolError, Workspace, diff_file};
use events::{Dirty, Events};

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
    links: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    stamp: Stamp,
    /// The text, when the file is text and small enough to keep.
    text: Option<Arc<str>>,
}

/// The working tree as of the last note; see the module docs.
#[derive(Default)]
pub struct TreeWatch {
    files: BTreeMap<String, Entry>,
    /// When the last note started, in nanoseconds since the epoch.
    walked_at: i128,
    /// The watches, from the first note on; `None` before it or where inotify failed.
    events: Option<Events>,
    /// Whether the first note was taken.
    started: bool,
    /// Where something changed since the last note.
    dirty: Dirty,
    /// The kept files with more than one link.
    linked: BTreeSet<String>,
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
    /// Notes the tree as it is now, reading only files new or changed since the last note.
    pub fn before(&mut self, ws: &Workspace) -> Result<(), ToolError> {
        let now = now_nanos();
        let (scope, seen) = self.look(ws)?;
        let covered = self.covered(&scope);
        let mut fresh = BTreeMap::new();
        for (path, stamp) in seen {
            let entry = match self.files.remove(&path) {
                Some(entry) if entry.stamp == stamp => entry,
                _ => Entry { stamp, text: read_kept(ws, &path, stamp) },
            };
            fresh.insert(path, entry);
        }
        for path in covered {
            self.files.remove(&path);
        }
        if scope.all {
            self.linked.clear();
        }
        self.linked.retain(|p| self.files.get(p).is_some_and(|e| e.stamp.links > 1));
        self.linked.extend(fresh.iter().filter(|(_, e)| e.stamp.links > 1).map(|(p, _)| p.clone()));
        self.files.append(&mut fresh);
        self.walked_at = now;
        Ok(())
    }

    /// What changed since [`Self::before`]. The kept tree is left as it was: the next `before`
    /// catches up with whatever review made of the changes.
    pub fn after(&mut self, ws: &Workspace) -> Result<TreeChanges, ToolError> {
        let mut out = TreeChanges::default();
        let (scope, now) = self.look(ws)?;
        // Put back for the next `before`, which must see these folders again.
        self.dirty = scope;
        let mut seen = HashSet::with_capacity(now.len());
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
        for path in self.covered(&self.dirty).iter().filter(|p| !seen.contains(*p)) {
            let Some(entry) = self.files.get(path) else { continue };
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
        out.changes.files.sort_by(|a, b| {
            (a.kind == ChangeKind::Delete, &a.path).cmp(&(b.kind == ChangeKind::Delete, &b.path))
        });
        out.opaque.sort();
        Ok(out)
    }

    /// Where to look (what the events name, and files with several links), taken out of the
    /// pending set, and the stamps of the files found there.
    fn look(&mut self, ws: &Workspace) -> Result<(Dirty, Vec<(String, Stamp)>), ToolError> {
        let mut scope = std::mem::take(&mut self.dirty);
        match &mut self.events {
            Some(events) => events.drain(&mut scope),
            None => scope.all = true,
        }
        if !self.started {
            self.started = true;
            self.events = Events::new();
            scope.all = true;
        }
        let mut seen = Vec::new();
        if scope.all {
            self.walk(ws, ".", true, &mut seen)?;
        } else {
            for tree in &scope.trees {
                self.walk(ws, tree, true, &mut seen)?;
            }
            for dir in scope.dirs.iter().filter(|d| !scope.trees.iter().any(|t| t == *d)) {
                self.walk(ws, dir, false, &mut seen)?;
            }
            seen.sort_by(|a, b| a.0.cmp(&b.0));
            seen.dedup_by(|a, b| a.0 == b.0);
        }
        // A file with several links changes through any of its names: the ones kept, and the
        // other names of one that gained a link.
        let inodes: HashSet<u64> =
            seen.iter().filter(|(_, s)| s.links > 1).map(|(_, s)| s.inode).collect();
        let mut extra: BTreeSet<String> = self.linked.clone();
        if !inodes.is_empty() {
            let same = self.files.iter().filter(|(_, e)| inodes.contains(&e.stamp.inode));
            extra.extend(same.map(|(p, _)| p.clone()));
        }
        extra.retain(|p| !scope.covers(p));
        for path in extra {
            if let Ok(meta) = ws.root().join(&path).symlink_metadata() {
                seen.push((path.clone(), stamp_of(&meta)));
            }
            scope.files.insert(path);
        }
        Ok((scope, seen))
    }

    /// The kept files that lie in `scope`.
    fn covered(&self, scope: &Dirty) -> Vec<String> {
        if scope.all || scope.trees.contains(".") {
            return self.files.keys().cloned().collect();
        }
        let under = |prefix: String| {
            let files = self.files.range(prefix.clone()..).map(|(p, _)| p);
            files.take_while(move |p| p.starts_with(&prefix))
        };
        let mut out: Vec<String> = Vec::new();
        for tree in &scope.trees {
            out.extend(under(format!("{tree}/")).cloned());
        }
        for dir in &scope.dirs {
            let prefix = if dir == "." { String::new() } else { format!("{dir}/") };
            let len = prefix.len();
            out.extend(under(prefix).filter(|p| !p[len..].contains('/')).cloned());
        }
        out.extend(scope.files.iter().filter(|p| self.files.contains_key(*p)).cloned());
        out.sort();
        out.dedup();
        out
    }

    /// Adds the stamp of every file beneath `dir` (only in it unless `deep`) to `out`, and
    /// watches every folder walked; a refused watch makes the next look walk everything. Any
    /// folder but the root is walked from its parent, so that its parent's ignore rules apply
    /// to it too.
    fn walk(
        &mut self,
        ws: &Workspace,
        dir: &str,
        deep: bool,
        out: &mut Vec<(String, Stamp)>,
    ) -> Result<(), ToolError> {
        let (start, first) = match dir.rsplit_once('/') {
            _ if dir == "." => (ws.root().to_path_buf(), 0),
            Some((parent, _)) => (ws.root().join(parent), 1),
            None => (ws.root().to_path_buf(), 1),
        };
        let target = ws.root().join(dir);
        let walk = ignore::WalkBuilder::new(start)
            .hidden(false)
            .require_git(false)
            .max_depth(if deep { None } else { Some(first + 1) })
            .filter_entry(move |e| {
                e.file_name() != ".git" && (e.depth() != 1 || first == 0 || e.path() == target)
            })
            .build();
        for entry in walk {
            let entry = match entry {
                Ok(entry) => entry,
                // Removed since the event: nothing there to note.
                Err(e)
                    if e.io_error().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(e) => return Err(ToolError::Other(format!("cannot walk the tree: {e}"))),
            };
            let Some(kind) = entry.file_type() else { continue };
            if kind.is_dir() && entry.depth() >= first && (deep || entry.depth() == first) {
                let rel = ws.relative(entry.path());
                if let Some(events) = &mut self.events
                    && !events.watch(entry.path(), rel)
                {
                    self.events = None;
                }
                continue;
            }
            if !kind.is_file() || ws.is_denied(entry.path()) {
                continue;
            }
            // A file removed between listing and stat is simply not there.
            let Ok(meta) = entry.metadata() else { continue };
            out.push((ws.relative(entry.path()), stamp_of(&meta)));
        }
        Ok(())
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
            ws.restore(&file.path, target.as_deref())?;
        }
        if target != file.old {
            kept.push(file.path.clone());
        }
    }
    Ok(kept)
}

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    let nanos = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
    Stamp {
        size: meta.size(),
        mtime: nanos(meta.mtime(), meta.mtime_nsec()),
        ctime: nanos(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        links: meta.nlink(),
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

    /// Summary of what `after` saw: each file's path and kind.
    fn seen(watch: &mut TreeWatch, ws: &Workspace) -> Vec<(String, ChangeKind)> {
        let seen = watch.after(ws).unwrap().changes;
        seen.files.into_iter().map(|f| (f.path, f.kind)).collect()
    }

    #[test]
    fn folders_made_moved_and_removed_are_seen_to_the_bottom() {
        let (dir, ws) = temp_workspace();
        sh(dir.path(), "mkdir -p sub/inner old; echo s > sub/inner/s; echo o > old/o");
        let mut watch = TreeWatch::default();
        watch.before(&ws).unwrap();
        sh(
            dir.path(),
            "mkdir -p new/a/b; echo n > new/a/b/n; mv sub moved; rm -r old; \
             echo gen/ > .gitignore; mkdir gen; echo g > gen/g",
        );
        use ChangeKind::*;
        let expected = [
            (".gitignore", Add),
            ("moved/inner/s", Add),
            ("new/a/b/n", Add),
            ("old/o", Delete),
            ("sub/inner/s", Delete),
        ]
        .map(|(p, k)| (p.to_owned(), k));
        assert_eq!(seen(&mut watch, &ws), expected);
        // Folders made by the command are watched from then on.
        watch.before(&ws).unwrap();
        sh(dir.path(), "echo more >> new/a/b/n; echo m >> moved/inner/s");
        let expected = [("moved/inner/s", Update), ("new/a/b/n", Update)];
        assert_eq!(seen(&mut watch, &ws), expected.map(|(p, k)| (p.to_owned(), k)));
    }

    #[test]
    fn a_file_changed_through_a_link_elsewhere_is_seen() {
        let (dir, ws) = temp_workspace();
        sh(dir.path(), "mkdir sub other; echo a > sub/a; echo b > sub/b; ln sub/b other/b");
        let mut watch = TreeWatch::default();
        watch.before(&ws).unwrap();
        // A link made by the command, and one that was there before.
        sh(dir.path(), "ln sub/a other/a; echo A >> other/a; echo B >> other/b");
        use ChangeKind::*;
        let expected =
            [("other/a", Add), ("other/b", Update), ("sub/a", Update), ("sub/b", Update)];
        assert_eq!(seen(&mut watch, &ws), expected.map(|(p, k)| (p.to_owned(), k)));
    }

    #[test]
    fn changes_between_commands_are_not_the_next_commands() {
        let (dir, ws) = temp_workspace();
        sh(dir.path(), "mkdir sub; echo 1 > sub/f");
        let mut watch = TreeWatch::default();
        watch.before(&ws).unwrap();
        assert_eq!(seen(&mut watch, &ws), []);
        // An edit between two commands (the model's, or the user's in an editor).
        sh(dir.path(), "echo 2 > sub/f; echo n > sub/new");
        watch.before(&ws).unwrap();
        assert_eq!(seen(&mut watch, &ws), []);
        sh(dir.path(), "echo 3 > sub/f");
        let seen = watch.after(&ws).unwrap().changes;
        assert_eq!(
            (seen.files[0].old.as_deref(), seen.files[0].new.as_deref()),
            (Some("2\n"), Some("3\n"))
        );
    }
}
