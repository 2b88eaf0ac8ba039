//! What a confined command may do, as plain data: no probing and no enforcing here.
//!
//! [`Policy::for_workspace`] gives the defaults: write inside the workspace only, read
//! everywhere else, no network, the repository's metadata (`.git` and the folders it names)
//! and tiller's project configuration (`.tiller`) read-only and in place, runtime folders
//! (sockets), secret folders and tiller's own config and data hidden, and a minimal
//! environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Secret folders and files under `$HOME` that a command never needs to see.
const HOME_SECRETS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".config/gcloud",
    ".config/gh",
    ".password-store",
    ".local/share/keyrings",
    ".netrc",
    ".git-credentials",
    ".pgpass",
    ".pypirc",
    ".npmrc",
    ".cargo/credentials.toml",
];

/// Folders outside `$HOME` where services keep their unix sockets (`/run`, `/var/run`,
/// `/var/lib/mysql`, `/var/spool/postfix`, …) or where other disks are mounted.
const SYSTEM_HIDDEN: &[&str] = &["/run", "/var", "/srv", "/mnt", "/media"];

/// Environment variables every command gets from tiller's: where things are, who the user is,
/// the language and terminal. Nothing here holds a secret.
pub const BASE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "TZ",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "CARGO_HOME",
    "CARGO_TARGET_DIR",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "NVM_DIR",
    "GOPATH",
    "GOROOT",
    "JAVA_HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// What a confined command may touch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Directories it may write beneath (the workspace).
    pub writable: Vec<PathBuf>,
    /// Directories it may read beneath (default: all of `/`).
    pub readable: Vec<PathBuf>,
    /// Paths that stay read-only and cannot be renamed, replaced or created: what git reads
    /// later outside the sandbox (the workspace's `.git`, folder or file, the git dir and the
    /// common dir it names), and `.tiller`, which names the commands that check the agent's
    /// work. One missing inside a writable root is held by an empty folder while commands run
    /// (tier A).
    pub read_only: Vec<PathBuf>,
    /// Folders and files replaced by an empty one: runtime and service folders full of sockets
    /// (`/run`, `/var`, `$XDG_RUNTIME_DIR`, …), secrets (`~/.ssh`, `~/.aws`, …) and tiller's
    /// own config and data. Missing ones are skipped.
    pub hidden: Vec<PathBuf>,
    /// Environment variables passed on by name besides [`BASE_ENV`] and `LC_*`.
    pub env: Vec<String>,
    /// Whether sockets other than unix ones may be created.
    pub network: bool,
    /// Whether unix sockets may be created (a stream socket pair always may). Such a socket can
    /// connect to any socket file the command sees, wherever it lies and whenever it was made.
    pub unix_sockets: bool,
    pub limits: Limits,
}

/// Resource limits, set as rlimits on the command and everything it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Processes and threads the command may run at once (`RLIMIT_NPROC`).
    pub processes: u64,
    /// Largest file it may write (`RLIMIT_FSIZE`).
    pub file_size_bytes: u64,
    /// CPU seconds each of its processes may use (`RLIMIT_CPU`).
    pub cpu_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { processes: 1024, file_size_bytes: 8 << 30, cpu_secs: 3600 }
    }
}

impl Policy {
    /// The default policy for a workspace at `root`, with `$HOME`, `$XDG_CONFIG_HOME`,
    /// `$XDG_DATA_HOME` and `$XDG_RUNTIME_DIR` taken from the environment.
    pub fn for_workspace(root: &Path) -> Policy {
        Policy::for_workspace_with(root, |var| std::env::var_os(var))
    }

    /// [`Policy::for_workspace`] with the environment given by `var`.
    fn for_workspace_with(root: &Path, var: impl Fn(&str) -> Option<OsString>) -> Policy {
        let dir = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = dir("HOME");
        let xdg = |name: &str, fallback: &str| {
            dir(name).or_else(|| home.as_ref().map(|h| h.join(fallback))).map(|d| d.join("tiller"))
        };

        let mut hidden: Vec<PathBuf> = SYSTEM_HIDDEN.iter().map(PathBuf::from).collect();
        hidden.extend(dir("XDG_RUNTIME_DIR"));
        if let Some(home) = &home {
            hidden.extend(HOME_SECRETS.iter().map(|s| home.join(s)));
        }
        hidden.extend(xdg("XDG_CONFIG_HOME", ".config"));
        hidden.extend(xdg("XDG_DATA_HOME", ".local/share"));

        Policy {
            writable: vec![root.to_path_buf()],
            readable: vec![PathBuf::from("/")],
            read_only: git_metadata(root).into_iter().chain([root.join(".tiller")]).collect(),
            hidden,
            env: Vec::new(),
            network: false,
            unix_sockets: false,
            limits: Limits::default(),
        }
    }

    /// Whether a command gets the environment variable `name` from tiller's.
    pub fn passes_env(&self, name: &str) -> bool {
        BASE_ENV.contains(&name) || name.starts_with("LC_") || self.env.iter().any(|e| e == name)
    }
}

/// What git reads for the worktree at `root`, all of which can make it run programs: `.git`,
/// and where that is a file (`gitdir: DIR`, in a linked worktree or a submodule) the git dir
/// it names, and the common dir the git dir's `commondir` file names. Relative paths are
/// resolved as git does; `.git` is listed even when missing.
fn git_metadata(root: &Path) -> Vec<PathBuf> {
    let dot = root.join(".git");
    let named = |file: &Path, prefix: &str| {
        let text = std::fs::read_to_string(file).ok()?;
        let target = text.trim_end_matches(['\n', '\r']).strip_prefix(prefix)?.trim_start();
        Some(file.parent()?.join(target))
    };
    let git_dir = if dot.is_file() { named(&dot, "gitdir:") } else { Some(dot.clone()) };
    let common = git_dir.as_ref().and_then(|d| named(&d.join("commondir"), ""));
    let mut paths = vec![dot];
    for p in git_dir.into_iter().chain(common) {
        if !paths.contains(&p) {
            paths.push(p);
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |var| pairs.iter().find(|(k, _)| *k == var).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn defaults_confine_writes_to_the_workspace() {
        let p = Policy::for_workspace_with(
            Path::new("/home/u/proj"),
            env(&[("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1000")]),
        );
        assert_eq!(p.writable, [Path::new("/home/u/proj")]);
        assert_eq!(p.readable, [Path::new("/")]);
        assert!(!p.network && !p.unix_sockets);
        assert_eq!(p.limits, Limits::default());
        assert_eq!(
            p.read_only,
            [Path::new("/home/u/proj/.git"), Path::new("/home/u/proj/.tiller")]
        );
        for h in [
            "/run",
            "/var",
            "/srv",
            "/run/user/1000",
            "/home/u/.ssh",
            "/home/u/.config/gcloud",
            "/home/u/.config/tiller",
            "/home/u/.local/share/tiller",
        ] {
            assert!(p.hidden.contains(&PathBuf::from(h)), "{h} not hidden: {:?}", p.hidden);
        }
    }

    #[test]
    fn xdg_homes_and_missing_home_are_respected() {
        let p = Policy::for_workspace_with(
            Path::new("/w"),
            env(&[("XDG_CONFIG_HOME", "/cfg"), ("XDG_DATA_HOME", "/data")]),
        );
        assert_eq!(
            p.hidden[SYSTEM_HIDDEN.len()..],
            [Path::new("/cfg/tiller"), Path::new("/data/tiller")]
        );
        // An empty variable counts as unset.
        let p = Policy::for_workspace_with(Path::new("/w"), env(&[("HOME", "")]));
        assert_eq!(p.hidden.len(), SYSTEM_HIDDEN.len());
    }

    #[test]
    fn the_environment_is_minimal_plus_what_is_named() {
        let mut p = Policy::for_workspace_with(Path::new("/w"), env(&[]));
        p.env = vec!["NPM_TOKEN".into()];
        for name in ["PATH", "HOME", "LC_ALL", "LANG", "NPM_TOKEN"] {
            assert!(p.passes_env(name), "{name}");
        }
        for name in ["GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "NPM"] {
            assert!(!p.passes_env(name), "{name}");
        }
    }

    #[test]
    fn git_metadata_follows_gitdir_and_commondir() {
        let dir = tempfile::tempdir().unwrap();
        let (main, wt) = (dir.path().join("main"), dir.path().join("wt"));
        let git_dir = main.join(".git/worktrees/wt");
        std::fs::create_dir_all(&git_dir).unwrap();
        std::fs::create_dir(&wt).unwrap();
        // A linked worktree: `.git` is a file naming the git dir, which names the common dir.
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", git_dir.display())).unwrap();
        std::fs::write(git_dir.join("commondir"), "../..\n").unwrap();
        assert_eq!(git_metadata(&wt), [wt.join(".git"), git_dir.clone(), git_dir.join("../..")]);
        // A relative gitdir, as in a submodule; a commondir in a plain repository.
        std::fs::write(wt.join(".git"), "gitdir: ../main/.git/worktrees/wt").unwrap();
        assert_eq!(git_metadata(&wt)[1], wt.join("../main/.git/worktrees/wt"));
        std::fs::write(main.join(".git/commondir"), "/elsewhere").unwrap();
        assert_eq!(git_metadata(&main), [main.join(".git"), PathBuf::from("/elsewhere")]);
        // Not a repository: `.git` still listed, so that it cannot be created.
        assert_eq!(git_metadata(dir.path()), [dir.path().join(".git")]);
    }

    #[test]
    fn round_trips_through_json() {
        let mut p = Policy::for_workspace_with(Path::new("/w"), env(&[]));
        p.network = true;
        p.unix_sockets = true;
        p.limits.processes = 7;
        p.env = vec!["A".into()];
        let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
