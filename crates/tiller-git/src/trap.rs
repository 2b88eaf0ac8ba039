//! Booby-trapped repositories, for tests that tiller's git operations run nothing a repository
//! (or the environment tiller was started in) names: each trap is a script that appends to a
//! marker file when run. Set up with plain `git`, not the hardened wrapper, as an attacker would.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Ways a repository's configuration can make git run a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// `core.fsmonitor` naming a hook, run by status, add, commit and diff.
    Fsmonitor,
    /// Scripts in `.git/hooks`: pre-commit, post-commit, post-checkout, reference-transaction…
    Hooks,
    /// `diff.external`.
    DiffExternal,
    /// A textconv driver named in `.gitattributes`.
    Textconv,
    /// A clean/smudge/process filter named in `.gitattributes`.
    Filter,
    /// `include.path` pulling in a file that sets `core.fsmonitor` and a filter.
    Include,
}

impl Attack {
    /// Every attack.
    pub const ALL: [Attack; 6] = [
        Attack::Fsmonitor,
        Attack::Hooks,
        Attack::DiffExternal,
        Attack::Textconv,
        Attack::Filter,
        Attack::Include,
    ];
}

/// Hooks git runs around the operations tiller uses.
const HOOKS: [&str; 8] = [
    "pre-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "post-checkout",
    "reference-transaction",
    "post-index-change",
    "pre-auto-gc",
];

/// A repository with `a.txt` committed, then armed.
pub struct Trap {
    dir: tempfile::TempDir,
}

impl Trap {
    /// A repository armed with `attack`.
    pub fn new(attack: Attack) -> io::Result<Trap> {
        let trap = Trap::unarmed()?;
        let root = trap.root();
        let script = trap.script();
        let s = script.to_string_lossy();
        match attack {
            Attack::Fsmonitor => git(&root, &["config", "core.fsmonitor", &s])?,
            Attack::Hooks => trap.hooks(&root.join(".git/hooks"))?,
            Attack::DiffExternal => git(&root, &["config", "diff.external", &s])?,
            Attack::Textconv => {
                std::fs::write(root.join(".gitattributes"), "* diff=evil\n")?;
                git(&root, &["config", "diff.evil.textconv", &s])?;
            }
            Attack::Filter => {
                std::fs::write(root.join(".git/info/attributes"), "* filter=evil\n")?;
                std::fs::write(root.join(".gitattributes"), "* filter=evil\n")?;
                for key in ["clean", "smudge"] {
                    git(&root, &["config", &format!("filter.evil.{key}"), &s])?;
                }
                git(&root, &["config", "filter.evil.required", "true"])?;
            }
            Attack::Include => {
                let included = trap.dir.path().join("included.config");
                std::fs::write(
                    &included,
                    format!("[core]\n\tfsmonitor = {s}\n[filter \"evil\"]\n\tclean = {s}\n"),
                )?;
                std::fs::write(root.join(".gitattributes"), "* filter=evil\n")?;
                git(&root, &["config", "include.path", &included.to_string_lossy()])?;
            }
        }
        Ok(trap)
    }

    /// A repository with `a.txt` committed, then changed, and `new.txt` untracked; the trap
    /// script is written but nothing names it.
    pub fn unarmed() -> io::Result<Trap> {
        let trap = Trap { dir: tempfile::tempdir()? };
        let root = trap.root();
        std::fs::create_dir(&root)?;
        git(&root, &["init", "-q"])?;
        std::fs::write(root.join("a.txt"), "a\n")?;
        git(&root, &["add", "a.txt"])?;
        git(&root, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"])?;
        let marker = trap.marker().to_string_lossy().into_owned();
        // Writes its name and arguments to the marker, then passes stdin through (a filter).
        let script = format!("#!/bin/sh\necho \"$0 $*\" >> '{marker}'\nexec cat\n");
        std::fs::write(trap.script(), script)?;
        make_executable(&trap.script())?;
        // The working tree differs from HEAD, so that status, diff and commit have work to do.
        std::fs::write(root.join("a.txt"), "a\nchanged\n")?;
        std::fs::write(root.join("new.txt"), "new\n")?;
        Ok(trap)
    }

    /// The repository's working tree.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// What the trap scripts recorded, if any ran.
    pub fn fired(&self) -> Option<String> {
        std::fs::read_to_string(self.marker()).ok()
    }

    /// An environment that points git elsewhere: `GIT_DIR` at another repository whose hooks
    /// are armed, `GIT_CONFIG_GLOBAL` at a file naming an fsmonitor hook, and the like.
    pub fn hostile_env(&self) -> io::Result<Vec<(&'static str, OsString)>> {
        let other = self.dir.path().join("other");
        std::fs::create_dir_all(&other)?;
        git(&other, &["init", "-q"])?;
        self.hooks(&other.join(".git/hooks"))?;
        let hooks = self.dir.path().join("hooks");
        std::fs::create_dir_all(&hooks)?;
        self.hooks(&hooks)?;
        let s = self.script().to_string_lossy().into_owned();
        let global = self.dir.path().join("global.config");
        let text = format!("[core]\n\tfsmonitor = {s}\n\thooksPath = {}\n", hooks.display());
        std::fs::write(&global, text)?;
        Ok(vec![
            ("GIT_DIR", other.join(".git").into()),
            ("GIT_WORK_TREE", self.root().into()),
            ("GIT_CONFIG_GLOBAL", global.clone().into()),
            ("GIT_CONFIG", global.into()),
            ("GIT_CONFIG_PARAMETERS", format!("'core.hookspath'='{}'", hooks.display()).into()),
            ("GIT_EXTERNAL_DIFF", s.clone().into()),
            ("GIT_PAGER", s.into()),
        ])
    }

    fn marker(&self) -> PathBuf {
        self.dir.path().join("fired")
    }

    fn script(&self) -> PathBuf {
        self.dir.path().join("evil.sh")
    }

    /// Every hook in [`HOOKS`], in `dir`, as a copy of the trap script.
    fn hooks(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for hook in HOOKS {
            let path = dir.join(hook);
            // Hooks are not filters: no stdin to pass through, and some get none.
            let text = std::fs::read_to_string(self.script())?.replace("exec cat\n", "");
            std::fs::write(&path, text)?;
            make_executable(&path)?;
        }
        Ok(())
    }
}

/// Runs the current test binary's test `name` alone again, with `vars` added to its
/// environment: whether it passed, and what it printed. The test tells the child run from its
/// own by one of `vars`.
pub fn rerun(name: &str, vars: &[(&'static str, OsString)]) -> io::Result<(bool, String)> {
    let out = Command::new(std::env::current_exe()?)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    Ok((out.status.success() && text.contains("1 passed"), text.into_owned()))
}

/// Plain git, for setting traps.
fn git(dir: &Path, args: &[&str]) -> io::Result<()> {
    let status = Command::new("git").arg("-C").arg(dir).args(args).status()?;
    if status.success() { Ok(()) } else { Err(io::Error::other(format!("git {args:?}: {status}"))) }
}

fn make_executable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}
