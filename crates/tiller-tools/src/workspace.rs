//! The workspace: the directory tree the agent may touch. Every path a tool receives goes through
//! [`Workspace::resolve`], which keeps it inside the root (no `..` escapes, no symlinks leading
//! out). Writes are atomic: a temporary file in the same directory, renamed over the target.
//! Files the user has withheld from the model (see [`Workspace::deny`]) cannot be read, and
//! git's metadata and tiller's own configuration cannot be written (see
//! [`Workspace::resolve_write`]). Nothing but a regular file is read (a named pipe would hang
//! the read, a device never end it). Where an editor holds the files ([`Buffers`]), text is read
//! from and written to its buffers instead, after the same checks.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::ToolError;

/// The largest file the tools take in whole (to edit it); `read_file` reads any size in parts.
pub const MAX_TEXT: u64 = 16 << 20;

#[derive(Clone, Debug)]
pub struct Workspace {
    root: PathBuf,
    denied: GlobSet,
    /// Directories no tool writes into, besides every `.git` and `.tiller`: the git directory
    /// a `.git` file names, tiller's configuration and data directories.
    protected: Vec<PathBuf>,
    buffers: Option<Editor>,
}

/// An editor's view of the workspace's text files: their contents with unsaved changes, and
/// writes that land in its buffers (the Agent Client Protocol's file system methods). Paths are
/// absolute and already confined; the workspace checks them before asking.
pub trait Buffers: Send + Sync {
    fn read(&self, abs: &Path) -> std::io::Result<String>;
    fn write(&self, abs: &Path, text: &str) -> std::io::Result<()>;
}

#[derive(Clone)]
struct Editor(Arc<dyn Buffers>);

impl std::fmt::Debug for Editor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Editor")
    }
}

/// Why a path inside git's metadata is not written.
const GIT_METADATA: &str = "is inside git's metadata (.git), which tools do not change: hooks and \
     config there would run code outside the sandbox, unreviewed";
/// Why a path in `.tiller/` is not written.
const TILLER_PROJECT: &str = "is tiller's project configuration (.tiller/), which tools do not \
     change: it names the commands that check the agent's work";
/// Why a path in a protected directory is not written.
const TILLER_OWN: &str = "is inside tiller's own configuration, data or git directory, which \
     tools do not change";

impl Workspace {
    /// A workspace rooted at `root`, which must be an existing directory.
    pub fn new(root: &Path) -> Result<Self, ToolError> {
        let root = root.canonicalize().map_err(|e| ToolError::io(root, e))?;
        if !root.is_dir() {
            return Err(ToolError::path(root.display().to_string(), "not a directory"));
        }
        let protected = git_dirs(&root);
        Ok(Workspace { root, denied: GlobSet::empty(), protected, buffers: None })
    }

    /// Reads and writes text files through an editor's `buffers` from now on.
    pub fn with_buffers(mut self, buffers: Arc<dyn Buffers>) -> Self {
        self.buffers = Some(Editor(buffers));
        self
    }

    /// Keeps tools from writing into `dirs` (tiller's configuration and data directories, where
    /// the workspace holds them).
    pub fn protect(mut self, dirs: &[PathBuf]) -> Self {
        self.protected.extend(dirs.iter().filter_map(|d| d.canonicalize().ok()));
        self
    }

    /// Withholds files matching any of `globs` from the model: reading them is an error and
    /// searches skip them. A glob without `/` matches a file name anywhere (`.env*`, `*.pem`);
    /// one with `/` matches the workspace-relative path.
    pub fn deny(mut self, globs: &[String]) -> Result<Self, ToolError> {
        let mut set = GlobSetBuilder::new();
        for glob in globs {
            let pattern = if glob.contains('/') { glob.clone() } else { format!("**/{glob}") };
            let glob = Glob::new(&pattern)
                .map_err(|e| ToolError::Arguments(format!("bad deny glob `{glob}`: {e}")))?;
            set.add(glob);
        }
        self.denied = set.build().map_err(|e| ToolError::Arguments(e.to_string()))?;
        Ok(self)
    }

    /// Whether `abs`, a path inside the workspace, is withheld from the model.
    pub fn is_denied(&self, abs: &Path) -> bool {
        !self.denied.is_empty() && self.denied.is_match(self.relative(abs))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path for `path` (relative to the root, or absolute inside it), refusing
    /// anything that leads outside the workspace, lexically or through a symlink.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ToolError> {
        let escape = || ToolError::path(path, "is outside the workspace");
        let given = Path::new(path);
        let mut out = self.root.clone();
        let relative = if given.is_absolute() {
            given.strip_prefix(&self.root).map_err(|_| escape())?
        } else {
            given
        };
        for part in relative.components() {
            match part {
                Component::Normal(name) => out.push(name),
                Component::CurDir => {}
                Component::ParentDir => {
                    if out == self.root {
                        return Err(escape());
                    }
                    out.pop();
                }
                Component::RootDir | Component::Prefix(_) => return Err(escape()),
            }
        }
        // Symlinks: the deepest part that exists must still resolve inside the root.
        let existing = out.ancestors().find(|p| p.symlink_metadata().is_ok()).unwrap_or(&self.root);
        let real = existing.canonicalize().map_err(|e| ToolError::io(existing, e))?;
        if !real.starts_with(&self.root) {
            return Err(ToolError::path(path, "leads outside the workspace through a symlink"));
        }
        Ok(out)
    }

    /// [`resolve`](Self::resolve) for a path a tool writes, moves or deletes: refused, too,
    /// inside git's metadata (any `.git`, in any case, and the git directory a `.git` file
    /// names), tiller's project configuration (`.tiller/`) and the [`protect`](Self::protect)ed
    /// directories, as written and where symlinks lead.
    pub fn resolve_write(&self, path: &str) -> Result<PathBuf, ToolError> {
        let abs = self.resolve(path)?;
        let existing = abs.ancestors().find(|p| p.symlink_metadata().is_ok()).unwrap_or(&self.root);
        let real = existing.canonicalize().map_err(|e| ToolError::io(existing, e))?;
        let real = real.join(abs.strip_prefix(existing).unwrap_or(Path::new("")));
        for candidate in [&abs, &real] {
            let rel = candidate.strip_prefix(&self.root).unwrap_or(candidate);
            let mut names = rel.components().map(|c| c.as_os_str());
            if names.clone().any(|name| name.eq_ignore_ascii_case(".git")) {
                return Err(ToolError::path(path, GIT_METADATA));
            }
            if names.next().is_some_and(|first| first == ".tiller") {
                return Err(ToolError::path(path, TILLER_PROJECT));
            }
            if self.protected.iter().any(|dir| candidate.starts_with(dir)) {
                return Err(ToolError::path(path, TILLER_OWN));
            }
        }
        Ok(abs)
    }

    /// The workspace-relative form of an absolute path inside it, with `/` separators.
    pub fn relative(&self, abs: &Path) -> String {
        let rel = abs.strip_prefix(&self.root).unwrap_or(abs);
        let s = rel.to_string_lossy().replace('\\', "/");
        if s.is_empty() { ".".into() } else { s }
    }

    /// Opens a file for reading: `Ok(None)` if it does not exist, an error if it is withheld
    /// or not a regular file. Never blocks, even on a named pipe.
    pub fn open(&self, path: &str) -> Result<Option<std::fs::File>, ToolError> {
        let abs = self.resolve(path)?;
        if self.is_denied(&abs) {
            return Err(ToolError::path(path, "is withheld from the model by the `deny` setting"));
        }
        match tiller_types::file::open_regular(&abs) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                Err(ToolError::path(path, e.to_string()))
            }
            Err(_) if abs.is_dir() => Err(ToolError::path(path, "is a directory")),
            Err(e) => Err(ToolError::io(&abs, e)),
        }
    }

    /// Reads a text file whole: `Ok(None)` if it does not exist, an error naming the problem if
    /// it is a directory or special file, binary, not UTF-8, or over [`MAX_TEXT`].
    pub fn read_text(&self, path: &str) -> Result<Option<String>, ToolError> {
        let Some(file) = self.open(path)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        match &self.buffers {
            Some(Editor(editor)) => {
                let abs = self.resolve(path)?;
                bytes = editor.read(&abs).map_err(|e| ToolError::io(&abs, e))?.into_bytes();
            }
            None => {
                file.take(MAX_TEXT + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| ToolError::path(path, e.to_string()))?;
            }
        }
        if bytes.len() as u64 > MAX_TEXT {
            let max = tiller_types::file::size(MAX_TEXT);
            return Err(ToolError::path(
                path,
                format!(
                    "is larger than {max}, too large to edit whole; read_file reads it in parts"
                ),
            ));
        }
        text_of(path, bytes).map(Some)
    }

    /// Writes `content` to `path` atomically, creating parent directories and keeping the
    /// permissions of a file it replaces; a new file gets those the umask gives any new file.
    pub fn write_atomic(&self, path: &str, content: &str) -> Result<(), ToolError> {
        self.write_at(path, &self.resolve_write(path)?, content)
    }

    pub fn remove(&self, path: &str) -> Result<(), ToolError> {
        let abs = self.resolve_write(path)?;
        std::fs::remove_file(&abs).map_err(|e| ToolError::io(&abs, e))
    }

    /// Puts back what `path` held before a command changed it: `old`, or no file. Unlike
    /// [`write_atomic`](Self::write_atomic), also where tools do not write (a command that
    /// the sandbox could not stop changed `.tiller/`): restoring what was there is always safe.
    pub fn restore(&self, path: &str, old: Option<&str>) -> Result<(), ToolError> {
        let abs = self.resolve(path)?;
        match old {
            Some(text) => self.write_at(path, &abs, text),
            None => std::fs::remove_file(&abs).map_err(|e| ToolError::io(&abs, e)),
        }
    }

    fn write_at(&self, path: &str, abs: &Path, content: &str) -> Result<(), ToolError> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(Editor(editor)) = &self.buffers {
            return editor.write(abs, content).map_err(|e| ToolError::io(abs, e));
        }
        let dir = abs.parent().ok_or_else(|| ToolError::path(path, "has no parent directory"))?;
        std::fs::create_dir_all(dir).map_err(|e| ToolError::io(dir, e))?;
        // 0666 less the umask, as for any file a program creates (tempfile's own is 0600).
        let mut tmp = tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| ToolError::io(dir, e))?;
        tmp.write_all(content.as_bytes()).map_err(|e| ToolError::io(tmp.path(), e))?;
        tmp.as_file().sync_all().map_err(|e| ToolError::io(tmp.path(), e))?;
        if let Ok(meta) = std::fs::metadata(abs) {
            std::fs::set_permissions(tmp.path(), meta.permissions())
                .map_err(|e| ToolError::io(tmp.path(), e))?;
        }
        tmp.persist(abs).map_err(|e| ToolError::io(abs, e.error))?;
        Ok(())
    }
}

/// The git directory and common directory a `.git` file at `root` names (`gitdir: DIR`, as
/// worktrees and submodules have), where they are not under a `.git` already.
fn git_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let Ok(text) = std::fs::read_to_string(root.join(".git")) else { return dirs };
    let Some(dir) = text.trim().strip_prefix("gitdir:") else { return dirs };
    let Ok(dir) = root.join(dir.trim()).canonicalize() else { return dirs };
    if let Ok(common) = std::fs::read_to_string(dir.join("commondir"))
        && let Ok(common) = dir.join(common.trim()).canonicalize()
    {
        dirs.push(common);
    }
    dirs.push(dir);
    dirs
}

/// Decodes file bytes as text, or says why they are not.
pub(crate) fn text_of(path: &str, bytes: Vec<u8>) -> Result<String, ToolError> {
    if bytes.iter().take(8192).any(|&b| b == 0) {
        return Err(ToolError::path(path, format!("is a binary file ({} bytes)", bytes.len())));
    }
    String::from_utf8(bytes).map_err(|e| {
        ToolError::path(
            path,
            format!("is not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// A workspace in a fresh temporary directory, for tests.
#[cfg(test)]
pub(crate) fn temp_workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ws = Workspace::new(dir.path()).expect("a workspace in it");
    (dir, ws)
}

/// A workspace holding a git repository, a `link` to its `.git` and a nested `sub/.git`, for
/// tests of what tools refuse to write. The paths a tool must not write, each with the words
/// its refusal must contain.
#[cfg(test)]
pub(crate) fn repo_workspace() -> (tempfile::TempDir, Workspace, [(&'static str, &'static str); 8])
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    for d in [".git/hooks", "sub/.git", ".tiller"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("a directory");
    }
    std::fs::write(dir.path().join(".git/config"), "[core]\n").expect("a config");
    std::os::unix::fs::symlink(".git", dir.path().join("link")).expect("a link");
    let ws = Workspace::new(dir.path()).expect("a workspace in it");
    let refused = [
        (".git/config", "git's metadata"),
        (".git/hooks/post-commit", "git's metadata"),
        ("sub/.git/x", "git's metadata"),
        (".GIT/config", "git's metadata"),
        ("link/config", "git's metadata"),
        ("link/hooks/pre-commit", "git's metadata"),
        (".git", "git's metadata"),
        (".tiller/project.toml", "tiller's project configuration"),
    ];
    (dir, ws, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use temp_workspace as ws;

    #[test]
    fn git_metadata_and_tiller_config_are_not_written() {
        let (dir, ws, refused) = repo_workspace();
        for (path, why) in refused {
            let err = ws.write_atomic(path, "x").unwrap_err().to_string();
            assert!(err.starts_with(path) && err.contains(why), "{path}: {err}");
            assert!(ws.remove(path).is_err(), "{path}");
        }
        assert_eq!(std::fs::read_to_string(dir.path().join(".git/config")).unwrap(), "[core]\n");
        assert!(!dir.path().join(".git/hooks/post-commit").exists());
        // Reading stays allowed; files merely named like git's pass.
        assert_eq!(ws.read_text(".git/config").unwrap().as_deref(), Some("[core]\n"));
        ws.write_atomic(".gitignore", "x").unwrap();
        ws.write_atomic("a.git/x", "x").unwrap();
    }

    #[test]
    fn the_git_dir_a_git_file_names_is_not_written() {
        let (dir, _) = ws();
        std::fs::create_dir_all(dir.path().join("store/worktrees/w")).unwrap();
        std::fs::write(dir.path().join("store/worktrees/w/commondir"), "../..\n").unwrap();
        std::fs::write(dir.path().join(".git"), "gitdir: store/worktrees/w\n").unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let ws = Workspace::new(dir.path()).unwrap().protect(&[data]);
        for path in ["store/config", "store/worktrees/w/HEAD", "data/ledger.sqlite"] {
            let err = ws.write_atomic(path, "x").unwrap_err().to_string();
            assert!(err.contains("tiller's own configuration, data or git directory"), "{err}");
        }
        assert!(!dir.path().join("store/config").exists());
    }

    #[test]
    fn resolves_inside_and_refuses_escapes() {
        let (_d, ws) = ws();
        assert_eq!(ws.resolve("a/../b.txt").unwrap(), ws.root().join("b.txt"));
        assert_eq!(ws.resolve(".").unwrap(), ws.root());
        assert!(ws.resolve("../x").is_err());
        assert!(ws.resolve("a/../../x").is_err());
        assert!(ws.resolve("/etc/passwd").is_err());
        let inside = ws.root().join("c.txt");
        assert_eq!(ws.resolve(inside.to_str().unwrap()).unwrap(), inside);
    }

    #[test]
    fn refuses_symlink_escapes() {
        let (_d, ws) = ws();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.root().join("out")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", ws.root().join("pw")).unwrap();
        let err = ws.resolve("out/new.txt").unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        assert!(ws.resolve("pw").is_err());
        assert!(ws.write_atomic("out/new.txt", "x").is_err());
        assert!(!outside.path().join("new.txt").exists());
    }

    #[test]
    fn atomic_write_creates_dirs_and_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, ws) = ws();
        ws.write_atomic("sub/run.sh", "echo 1\n").unwrap();
        let path = ws.root().join("sub/run.sh");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        ws.write_atomic("sub/run.sh", "echo 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "echo 2\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o755);
        // A new file follows the umask, like one any other program creates.
        std::fs::write(ws.root().join("plain"), "").unwrap();
        let umasked = std::fs::metadata(ws.root().join("plain")).unwrap().permissions().mode();
        ws.write_atomic("new.txt", "x\n").unwrap();
        let mode = std::fs::metadata(ws.root().join("new.txt")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, umasked & 0o777);
    }

    #[test]
    fn read_text_names_binary_and_bad_utf8() {
        let (_d, ws) = ws();
        std::fs::write(ws.root().join("bin"), b"\x7fELF\0\0").unwrap();
        std::fs::write(ws.root().join("latin1"), b"caf\xe9\n").unwrap();
        assert!(ws.read_text("bin").unwrap_err().to_string().contains("binary"));
        assert!(ws.read_text("latin1").unwrap_err().to_string().contains("UTF-8"));
        assert_eq!(ws.read_text("missing").unwrap(), None);
    }

    #[test]
    fn denied_files_cannot_be_read_anywhere_in_the_tree() {
        let (_d, ws) = ws();
        let globs = [".env*", "*.pem", "id_*", "secrets/*.json"].map(String::from);
        let ws = ws.deny(&globs).unwrap();
        for path in [".env", "app/.env.local", "tls/key.pem", "id_ed25519", "secrets/db.json"] {
            ws.write_atomic(path, "x\n").unwrap();
            let err = ws.read_text(path).unwrap_err().to_string();
            assert!(err.contains("withheld"), "{path}: {err}");
        }
        for path in ["env.rs", "src/pem.rs", "app/identity.rs", "other/secrets/db.json"] {
            ws.write_atomic(path, "x\n").unwrap();
            assert_eq!(ws.read_text(path).unwrap().as_deref(), Some("x\n"), "{path}");
        }
        assert!(ws.deny(&["a[".into()]).is_err());
    }

    /// An editor that holds one file, `a.txt`, with unsaved text, and keeps what is written.
    struct Unsaved(std::sync::Mutex<Vec<(PathBuf, String)>>);

    impl Buffers for Unsaved {
        fn read(&self, _: &Path) -> std::io::Result<String> {
            Ok("unsaved\n".into())
        }

        fn write(&self, abs: &Path, text: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push((abs.to_path_buf(), text.into()));
            Ok(())
        }
    }

    #[test]
    fn an_editor_holds_the_text_after_the_same_checks() {
        let (dir, ws, refused) = repo_workspace();
        let editor = Arc::new(Unsaved(Default::default()));
        std::fs::write(dir.path().join("a.txt"), "saved\n").unwrap();
        let ws = ws.deny(&["*.pem".into()]).unwrap().with_buffers(editor.clone());
        assert_eq!(ws.read_text("a.txt").unwrap().as_deref(), Some("unsaved\n"));
        assert_eq!(ws.read_text("missing.txt").unwrap(), None);
        std::fs::write(dir.path().join("k.pem"), "key\n").unwrap();
        assert!(ws.read_text("k.pem").unwrap_err().to_string().contains("withheld"));
        ws.write_atomic("a.txt", "new\n").unwrap();
        for (path, _) in refused {
            assert!(ws.write_atomic(path, "x\n").is_err(), "{path}");
        }
        let written = editor.0.lock().unwrap().clone();
        assert_eq!(written, [(ws.root().join("a.txt"), "new\n".to_string())]);
        assert_eq!(std::fs::read_to_string(dir.path().join("a.txt")).unwrap(), "saved\n");
    }
}
