//! What a confined command may do, as plain data: no probing and no enforcing here.
//!
//! [`Policy::for_workspace`] gives the defaults: write inside the workspace only, read
//! everywhere else, no network, `.git/hooks`, `.git/config` and tiller's own config read-only,
//! and runtime folders (sockets) and well-known secret folders hidden.

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

/// What a confined command may touch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Directories it may write beneath (the workspace).
    pub writable: Vec<PathBuf>,
    /// Directories it may read beneath (default: all of `/`).
    pub readable: Vec<PathBuf>,
    /// Paths under a writable root that stay read-only: things that run code later, outside
    /// the sandbox (`.git/hooks`, `.git/config`) and tiller's own config.
    pub read_only: Vec<PathBuf>,
    /// Folders and files replaced by an empty one: runtime folders full of sockets (`/run`,
    /// `$XDG_RUNTIME_DIR`) and secrets (`~/.ssh`, `~/.aws`, …). Missing ones are skipped.
    pub hidden: Vec<PathBuf>,
    /// Whether sockets other than unix ones may be created.
    pub network: bool,
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
    /// The default policy for a workspace at `root`, with `$HOME`, `$XDG_CONFIG_HOME` and
    /// `$XDG_RUNTIME_DIR` taken from the environment.
    pub fn for_workspace(root: &Path) -> Policy {
        Policy::for_workspace_with(root, |var| std::env::var_os(var))
    }

    /// [`Policy::for_workspace`] with the environment given by `var`.
    fn for_workspace_with(root: &Path, var: impl Fn(&str) -> Option<OsString>) -> Policy {
        let dir = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = dir("HOME");
        let config = dir("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));

        let mut hidden = vec![PathBuf::from("/run"), PathBuf::from("/var/run")];
        hidden.extend(dir("XDG_RUNTIME_DIR"));
        if let Some(home) = &home {
            hidden.extend(HOME_SECRETS.iter().map(|s| home.join(s)));
        }
        // Hiding a folder that holds the workspace would hide the workspace too.
        hidden.retain(|h| !root.starts_with(h));

        let mut read_only = vec![root.join(".git/hooks"), root.join(".git/config")];
        read_only.extend(config.map(|c| c.join("tiller")));

        Policy {
            writable: vec![root.to_path_buf()],
            readable: vec![PathBuf::from("/")],
            read_only,
            hidden,
            network: false,
            limits: Limits::default(),
        }
    }
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
        assert!(!p.network);
        assert_eq!(p.limits, Limits::default());
        assert_eq!(
            p.read_only,
            [
                Path::new("/home/u/proj/.git/hooks"),
                Path::new("/home/u/proj/.git/config"),
                Path::new("/home/u/.config/tiller"),
            ]
        );
        for h in ["/run", "/var/run", "/run/user/1000", "/home/u/.ssh", "/home/u/.config/gcloud"] {
            assert!(p.hidden.contains(&PathBuf::from(h)), "{h} not hidden: {:?}", p.hidden);
        }
    }

    #[test]
    fn config_home_and_missing_home_are_respected() {
        let p = Policy::for_workspace_with(Path::new("/w"), env(&[("XDG_CONFIG_HOME", "/cfg")]));
        assert_eq!(p.read_only.last().unwrap(), Path::new("/cfg/tiller"));
        assert_eq!(p.hidden, [Path::new("/run"), Path::new("/var/run")]);
        // An empty variable counts as unset.
        let p = Policy::for_workspace_with(Path::new("/w"), env(&[("HOME", "")]));
        assert_eq!(p.read_only.len(), 2);
    }

    #[test]
    fn a_hidden_folder_holding_the_workspace_stays_visible() {
        let p = Policy::for_workspace_with(
            Path::new("/run/user/1000/proj"),
            env(&[("HOME", "/home/u"), ("XDG_RUNTIME_DIR", "/run/user/1000")]),
        );
        assert!(!p.hidden.iter().any(|h| h.starts_with("/run")), "{:?}", p.hidden);
        assert!(p.hidden.contains(&PathBuf::from("/var/run")));
    }

    #[test]
    fn round_trips_through_json() {
        let mut p = Policy::for_workspace_with(Path::new("/w"), env(&[]));
        p.network = true;
        p.limits.processes = 7;
        let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
