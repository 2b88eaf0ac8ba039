//! Reading the repository: the files of a working tree (as `git ls-files` lists them, or a
//! directory walk outside git), and the two ends of a revision range through the `git` command.
//! Binary files and files over [`MAX_FILE`] bytes are left out.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;

use crate::lang::Lang;
use crate::report::{LeftOut, Report, build};
use crate::{FileState, ReviewError};

/// Files larger than this are not read: generated or data, not code to hold.
const MAX_FILE: u64 = 1 << 20;

/// The report for files changed in memory (a pending step), against the rest of the repository
/// rooted at `root`: its other source files, as `git ls-files` lists them (untracked ones too,
/// ignored ones not), or a directory walk when `root` is not in a git repository.
pub fn report_files(root: &Path, files: &[FileState]) -> Result<Report, ReviewError> {
    let code = listing(root)?.into_iter().filter(|path| Lang::of(path).is_some());
    Ok(build(files, &read_all(root, code)))
}

/// The report for a git revision range, computed from the repository at `repo`: `A..B` (either
/// side defaults to `HEAD`), or a single revision `REV` meaning `REV^..REV`. An empty range means
/// `HEAD^..HEAD`, or with no commits yet, the working tree against nothing.
pub fn report_range(repo: &Path, range: &str) -> Result<Report, ReviewError> {
    let top = tiller_git::toplevel(repo).map_err(|e| match e {
        tiller_git::GitError::Failed { .. } => ReviewError::NotARepo { path: repo.to_path_buf() },
        e => e.into(),
    })?;
    let Some((from, to)) = ends(&top, range.trim())? else {
        return working_tree(&top);
    };
    let (old, new) = (tree(&top, &from)?, tree(&top, &to)?);
    let mut changed: Vec<&str> = old
        .keys()
        .chain(new.keys())
        .filter(|&path| old.get(path) != new.get(path))
        .map(String::as_str)
        .collect();
    changed.sort_unstable();
    changed.dedup();
    let wanted = changed
        .iter()
        .flat_map(|&p| [old.get(p), new.get(p)])
        .flatten()
        .chain(new.iter().filter(|(path, _)| Lang::of(path).is_some()).map(|(_, blob)| blob));
    let texts = blobs(&top, wanted.filter(|b| b.small).map(|b| b.oid.as_str()).collect())?;
    // The text of one side: `Some(None)` when the file is absent there, `None` when unreadable.
    let side = |blob: Option<&Blob>| match blob {
        None => Some(None),
        Some(blob) => texts.get(&blob.oid).map(|t| Some(t.as_str())),
    };
    let mut left_out = Vec::new();
    let files: Vec<FileState> = changed
        .iter()
        .filter_map(|&path| {
            let (o, n) = (old.get(path), new.get(path));
            let state = (|| Some(FileState { path, old: side(o)?, new: side(n)? }))();
            if state.is_none() {
                let unread = [o, n].into_iter().flatten().find(|b| !texts.contains_key(&b.oid));
                let too_large = unread.is_some_and(|b| !b.small);
                left_out.push(left(path, too_large));
            }
            state
        })
        .collect();
    let others: Vec<(String, String)> = new
        .iter()
        .filter_map(|(path, blob)| Some((path.clone(), texts.get(&blob.oid)?.clone())))
        .collect();
    Ok(Report { left_out, ..build(&files, &others) })
}

/// A file left out of the report: over [`MAX_FILE`], or else binary.
fn left(path: &str, too_large: bool) -> LeftOut {
    let reason = if too_large {
        format!("over {} MiB", MAX_FILE >> 20)
    } else {
        "binary or not UTF-8".into()
    };
    LeftOut { path: path.into(), reason }
}

/// The commits (or empty tree) at the ends of `range`; `None` for an empty range in a repository
/// without commits.
fn ends(top: &Path, range: &str) -> Result<Option<(String, String)>, ReviewError> {
    let resolve = |rev: &str| {
        commit(top, rev).ok_or_else(|| ReviewError::BadRange {
            range: range.to_string(),
            reason: format!("`{rev}` is not a commit here"),
        })
    };
    if range.is_empty() {
        let Some(head) = commit(top, "HEAD") else { return Ok(None) };
        return Ok(Some((parent(top, &head)?, head)));
    }
    match range.split_once("..") {
        Some((a, b)) => {
            let (a, b) =
                (if a.is_empty() { "HEAD" } else { a }, if b.is_empty() { "HEAD" } else { b });
            Ok(Some((resolve(a)?, resolve(b)?)))
        }
        None => {
            let rev = resolve(range)?;
            Ok(Some((parent(top, &rev)?, rev)))
        }
    }
}

/// The commit `rev` names, if it names one.
fn commit(top: &Path, rev: &str) -> Option<String> {
    if rev.starts_with('-') {
        return None;
    }
    let spec = format!("{rev}^{{commit}}");
    let out = git(top, &["rev-parse", "--verify", "--quiet", &spec]).ok()?;
    Some(out.trim().to_string())
}

/// The first parent of `rev`, or the empty tree for a root commit.
fn parent(top: &Path, rev: &str) -> Result<String, ReviewError> {
    match commit(top, &format!("{rev}^")) {
        Some(parent) => Ok(parent),
        None => Ok(git(top, &["hash-object", "-t", "tree", "--stdin"])?.trim().to_string()),
    }
}

/// A file in a tree.
#[derive(PartialEq)]
struct Blob {
    oid: String,
    /// At most [`MAX_FILE`] bytes: worth reading.
    small: bool,
}

/// The files of the tree of `rev`, by path.
fn tree(top: &Path, rev: &str) -> Result<BTreeMap<String, Blob>, ReviewError> {
    let out = git(top, &["ls-tree", "-r", "-z", "-l", "--full-tree", rev])?;
    let mut files = BTreeMap::new();
    for entry in out.split('\0').filter(|e| !e.is_empty()) {
        let Some((meta, path)) = entry.split_once('\t') else { continue };
        // <mode> <type> <object> <size>; symbolic links (120000) and submodules are not files.
        if let [mode, "blob", oid, size] = meta.split_whitespace().collect::<Vec<_>>()[..]
            && mode != "120000"
        {
            let small = size.parse::<u64>().is_ok_and(|s| s <= MAX_FILE);
            files.insert(path.to_string(), Blob { oid: oid.to_string(), small });
        }
    }
    Ok(files)
}

/// The text of each object in `oids`, read through one `git cat-file --batch`; binary ones are
/// left out.
fn blobs(top: &Path, mut oids: Vec<&str>) -> Result<HashMap<String, String>, ReviewError> {
    oids.sort_unstable();
    oids.dedup();
    let failed = |e: std::io::Error| {
        let message = e.to_string();
        ReviewError::Git(tiller_git::GitError::Failed { args: "cat-file".into(), message })
    };
    let mut child = tiller_git::command(top, &["cat-file", "--batch"])?
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(failed)?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(failed(std::io::Error::other("no pipes")));
    };
    let input: String = oids.iter().map(|oid| format!("{oid}\n")).collect();
    // Written from a thread: git answers while it reads, and both pipes would fill up.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut out = BufReader::new(stdout);
    let mut texts = HashMap::new();
    for oid in oids {
        let mut header = String::new();
        out.read_line(&mut header).map_err(failed)?;
        // "<oid> blob <size>", or "<oid> missing".
        let Some(size) = header.split_whitespace().nth(2).and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        let mut bytes = vec![0; size + 1];
        out.read_exact(&mut bytes).map_err(failed)?;
        bytes.pop();
        if let Some(text) = text(bytes) {
            texts.insert(oid.to_string(), text);
        }
    }
    writer.join().map_err(|_| failed(std::io::Error::other("writer panicked")))?.map_err(failed)?;
    child.wait().map_err(failed)?;
    Ok(texts)
}

/// With no commits yet: every file of the working tree is added.
fn working_tree(top: &Path) -> Result<Report, ReviewError> {
    let paths = listing(top)?;
    let texts = read_all(top, paths.iter().cloned());
    let files: Vec<FileState> =
        texts.iter().map(|(path, text)| FileState { path, old: None, new: Some(text) }).collect();
    let read: std::collections::HashSet<&str> = texts.iter().map(|(p, _)| p.as_str()).collect();
    let left_out = paths
        .iter()
        .filter(|p| !read.contains(p.as_str()))
        .filter_map(|p| {
            let meta = std::fs::symlink_metadata(top.join(p)).ok().filter(|m| m.is_file())?;
            Some(left(p, meta.len() > MAX_FILE))
        })
        .collect();
    Ok(Report { left_out, ..build(&files, &[]) })
}

/// The files under `root`, relative to it: tracked and untracked but not ignored in a git
/// repository, else everything but hidden entries, `target` and `node_modules`.
fn listing(root: &Path) -> Result<Vec<String>, ReviewError> {
    let args = ["ls-files", "-z", "--cached", "--others", "--exclude-standard"];
    if let Ok(out) = git(root, &args) {
        let mut paths: Vec<String> =
            out.split('\0').filter(|p| !p.is_empty()).map(String::from).collect();
        paths.dedup(); // a file with merge conflicts is listed once per stage
        return Ok(paths);
    }
    let mut paths = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let io = |source| ReviewError::Io { path: root.join(&dir), source };
        for entry in std::fs::read_dir(root.join(&dir)).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            match entry.file_type().map_err(io)? {
                t if t.is_dir() => dirs.push(path),
                t if t.is_file() => paths.push(path),
                _ => {}
            }
        }
    }
    paths.sort_unstable();
    Ok(paths)
}

/// The path and text of each of `paths` under `root` that can be read as text.
fn read_all(root: &Path, paths: impl Iterator<Item = String>) -> Vec<(String, String)> {
    paths
        .filter_map(|path| {
            let text = read_text(&root.join(&path))?;
            Some((path, text))
        })
        .collect()
}

/// The file's text, unless it is missing, a symbolic link, over [`MAX_FILE`] or binary.
fn read_text(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    text(std::fs::read(path).ok()?)
}

fn text(bytes: Vec<u8>) -> Option<String> {
    if bytes.contains(&0) { None } else { String::from_utf8(bytes).ok() }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, ReviewError> {
    Ok(tiller_git::run(dir, args)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_git_the_walk_skips_hidden_and_build_folders() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.rs", "src/b.rs", ".hidden/c.rs", "target/d.rs", "src/.e.rs"] {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        assert_eq!(listing(dir.path()).unwrap(), ["a.rs", "src/b.rs"]);
    }

    #[test]
    fn binary_and_missing_files_are_not_text() {
        assert_eq!(text(b"ok\n".to_vec()).as_deref(), Some("ok\n"));
        assert_eq!(text(b"a\0b".to_vec()), None);
        assert_eq!(text(vec![0xff, 0xfe]), None);
        assert_eq!(read_text(Path::new("/nonexistent/file")), None);
    }
}
