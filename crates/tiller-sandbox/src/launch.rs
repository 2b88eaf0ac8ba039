//! Turns a program and its arguments into a confined [`Command`] for the tier in force.
//!
//! Tier A: `bwrap --unshare-all --die-with-parent --new-session --ro-bind / / …` around the
//! helper, which confines itself further and then executes the program. The PID namespace ends
//! with its first process, so killing bubblewrap (the process the caller spawns) ends every
//! process the command started, including ones that called `setsid`. Tier B: the helper alone.
//! Both start the command with a minimal environment ([`Policy::passes_env`]).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use tempfile::TempDir;

use crate::{Detection, HELPER_ARG, Policy, SandboxError, Tier};

/// Where the private temporary directory appears inside tier A.
const INNER_TMP: &str = "/tmp";

/// Confines commands by one policy, for as long as it lives (typically one agent session).
#[derive(Debug)]
pub struct Sandbox {
    policy: Policy,
    detection: Detection,
    helper: PathBuf,
    /// The private temporary directory, shared by the commands of this sandbox and removed
    /// with it: bound over `/tmp` in tier A, `$TMPDIR` in tier B.
    tmp: TempDir,
    /// Empty folders this sandbox holds at read-only paths that were missing (a `.git` where
    /// the workspace is no repository), removed with it if still empty.
    held: Mutex<Vec<PathBuf>>,
}

impl Sandbox {
    /// A sandbox enforcing `policy` with what `detection` found. `helper` is the `tiller`
    /// executable (`std::env::current_exe()`), whose `main` calls [`crate::helper_main`].
    pub fn new(
        policy: Policy,
        detection: Detection,
        helper: PathBuf,
    ) -> Result<Sandbox, SandboxError> {
        let tmp = tempfile::Builder::new()
            .prefix("tiller-sandbox-")
            .tempdir()
            .map_err(SandboxError::TempDir)?;
        let helper = canonical(&helper)?;
        Ok(Sandbox { policy, detection, helper, tmp, held: Mutex::default() })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn detection(&self) -> &Detection {
        &self.detection
    }

    pub fn tier(&self) -> Tier {
        self.detection.tier()
    }

    /// Whether commands cannot be confined here (tier C), so each needs the user's approval
    /// and then runs unconfined; [`Sandbox::command`] refuses in that case.
    pub fn requires_approval(&self) -> bool {
        self.tier() == Tier::C
    }

    /// A sandbox like this one that may also write beneath `dir`: for a scratch checkout
    /// beside the workspace (the baseline that `tiller perf` measures against).
    pub fn widened(&self, dir: &Path) -> Result<Sandbox, SandboxError> {
        let mut policy = self.policy.clone();
        policy.writable.push(dir.to_path_buf());
        self.with_policy(policy)
    }

    /// A sandbox on the same machine and helper that enforces `policy` instead: for a program
    /// with needs of its own (an MCP server's network and environment).
    pub fn with_policy(&self, policy: Policy) -> Result<Sandbox, SandboxError> {
        Sandbox::new(policy, self.detection.clone(), self.helper.clone())
    }

    /// A command that runs `program` with `args` in `cwd`, confined; ready to spawn. Its
    /// environment is tiller's cut down to what [`Policy::passes_env`] allows, and `TMPDIR`.
    /// The caller sets stdio and may add environment variables. Kill the spawned process to
    /// stop the command: in tier A that ends all it started.
    pub fn command(
        &self,
        program: &OsStr,
        args: &[OsString],
        cwd: &Path,
    ) -> Result<Command, SandboxError> {
        let writable =
            self.policy.writable.iter().map(|p| canonical(p)).collect::<Result<Vec<_>, _>>()?;
        let (mut cmd, tmp) = match self.tier() {
            Tier::A => {
                let bwrap = self.detection.bwrap.as_deref().unwrap_or(Path::new("bwrap"));
                let mut cmd = Command::new(bwrap);
                self.hold_missing(&writable);
                cmd.args(self.bwrap_args(&writable, cwd)).arg("--").arg(&self.helper);
                (cmd, PathBuf::from(INNER_TMP))
            }
            Tier::B => (Command::new(&self.helper), self.tmp.path().to_path_buf()),
            Tier::C => return Err(SandboxError::Unavailable(self.detection.reasons().join("; "))),
        };
        let inner = Policy {
            writable: writable.into_iter().chain([tmp.clone()]).collect(),
            ..self.policy.clone()
        };
        let inner = serde_json::to_string(&inner)
            .map_err(|e| SandboxError::HelperArgs(format!("cannot pass the policy: {e}")))?;
        cmd.arg(HELPER_ARG)
            .arg(inner)
            .arg("--")
            .arg(program)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(
                std::env::vars_os().filter(|(name, _)| {
                    name.to_str().is_some_and(|name| self.policy.passes_env(name))
                }),
            )
            .env("TMPDIR", tmp);
        Ok(cmd)
    }

    /// Makes an empty folder at each read-only path missing inside a writable root, so that
    /// bubblewrap binds it read-only and the command cannot create it there; an empty one
    /// already there (left by a tiller that was killed) is taken over. Each is removed when
    /// the sandbox is dropped, if still empty. Where a folder cannot be made, the command, as
    /// the same user, cannot make it either.
    fn hold_missing(&self, writable: &[PathBuf]) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        for path in &self.policy.read_only {
            let inside = path
                .parent()
                .and_then(|dir| dir.canonicalize().ok())
                .is_some_and(|dir| writable.iter().any(|w| dir.starts_with(w)));
            if !inside {
                continue;
            }
            // Made again if something removed it since the last command.
            let made = std::fs::create_dir(path).is_ok();
            let empty = || std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
            let symlink = path.symlink_metadata().is_ok_and(|m| m.is_symlink());
            if (made || (!symlink && empty())) && !held.contains(path) {
                held.push(path.clone());
            }
        }
    }

    /// bubblewrap's options: all namespaces new (the network one unless the policy allows
    /// network), a read-only root, fresh `/dev` and `/proc`, the hidden paths outside the
    /// writable roots (so a writable root inside one, such as a workspace under `/var`, is
    /// bound back into the empty folder), the private `/tmp`, the writable roots, the hidden
    /// paths inside them, the read-only ones (also where hidden), and the helper itself (in
    /// case it lives somewhere hidden).
    fn bwrap_args(&self, writable: &[PathBuf], cwd: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = ["--unshare-all", "--die-with-parent", "--new-session"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let mut push = |opt: &str, paths: &[&Path]| {
            args.push(opt.into());
            args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
        };
        if self.policy.network {
            push("--share-net", &[]);
        }
        push("--ro-bind", &[Path::new("/"), Path::new("/")]);
        push("--dev", &[Path::new("/dev")]);
        push("--proc", &[Path::new("/proc")]);
        let hidden = existing(&self.policy.hidden);
        let (inner, outer): (Vec<_>, Vec<_>) =
            hidden.iter().partition(|h| writable.iter().any(|w| h.starts_with(w)));
        for h in outer {
            let (opt, paths) = hiding(h);
            push(opt, &paths);
        }
        push("--bind", &[self.tmp.path(), Path::new(INNER_TMP)]);
        for w in writable {
            push("--bind", &[w, w]);
        }
        for h in inner {
            let (opt, paths) = hiding(h);
            push(opt, &paths);
        }
        for r in existing(&self.policy.read_only) {
            push("--ro-bind", &[&r, &r]);
        }
        push("--ro-bind", &[&self.helper, &self.helper]);
        push("--chdir", &[cwd]);
        args
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let held = self.held.get_mut().unwrap_or_else(PoisonError::into_inner);
        for path in held.drain(..) {
            // Fails, as it should, once something was put inside.
            let _ = std::fs::remove_dir(path);
        }
    }
}

/// bubblewrap's option that shows `path` empty: a tmpfs for a folder, `/dev/null` for a file.
fn hiding(path: &Path) -> (&'static str, Vec<&Path>) {
    if path.is_dir() {
        ("--tmpfs", vec![path])
    } else {
        ("--ro-bind", vec![Path::new("/dev/null"), path])
    }
}

fn canonical(path: &Path) -> Result<PathBuf, SandboxError> {
    path.canonicalize().map_err(|source| SandboxError::Path { path: path.to_owned(), source })
}

/// The paths that exist, resolved (so `/var/run` becomes `/run`) and without repeats.
fn existing(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for p in paths.iter().filter_map(|p| p.canonicalize().ok()) {
        if !found.contains(&p) {
            found.push(p);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(tier: Tier) -> Detection {
        Detection {
            landlock_abi: Some(if tier == Tier::C { 1 } else { 7 }),
            seccomp: true,
            userns: if tier == Tier::A { Ok(()) } else { Err("denied".into()) },
            bwrap: Some(PathBuf::from("/usr/bin/bwrap")),
            root: false,
            fixes: Vec::new(),
        }
    }

    /// A workspace with `.git/hooks`, a home holding `.ssh` (a folder) and `.netrc` (a file),
    /// and a policy for them.
    fn setup() -> (TempDir, PathBuf, Policy) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let ws = root.join("ws");
        std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
        std::fs::create_dir_all(root.join("home/.ssh")).unwrap();
        std::fs::write(root.join("home/.netrc"), "").unwrap();
        let mut policy = Policy::for_workspace(&ws);
        policy.hidden = vec![root.join("home/.ssh"), root.join("home/.netrc"), root.join("nope")];
        (dir, ws, policy)
    }

    fn argv(cmd: &Command) -> Vec<String> {
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// Where `needle` starts in `haystack`.
    fn find(haystack: &[String], needle: &[&str]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn tier_a_wraps_the_helper_in_bubblewrap() {
        let (_dir, ws, policy) = setup();
        let helper = std::env::current_exe().unwrap();
        let sandbox = Sandbox::new(policy, detection(Tier::A), helper.clone()).unwrap();
        let cmd = sandbox.command("sh".as_ref(), &["-c".into(), "true".into()], &ws).unwrap();
        let args = argv(&cmd);
        let (ws, home) = (ws.to_str().unwrap(), ws.parent().unwrap().join("home"));
        let tmp = sandbox.tmp.path().to_str().unwrap();
        assert_eq!(
            args[..4],
            ["/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
        );
        assert!(!args.contains(&"--share-net".to_owned()));
        let at = |needle: &[&str]| {
            find(&args, needle).unwrap_or_else(|| panic!("{needle:?} in {args:?}"))
        };
        let bind_ws = at(&["--bind", ws, ws]);
        assert!(
            at(&["--ro-bind", "/", "/"]) < at(&["--tmpfs", home.join(".ssh").to_str().unwrap()])
        );
        assert!(at(&["--ro-bind", "/dev/null", home.join(".netrc").to_str().unwrap()]) < bind_ws);
        assert!(at(&["--bind", tmp, "/tmp"]) < bind_ws);
        let git = format!("{ws}/.git");
        assert!(bind_ws < at(&["--ro-bind", &git, &git]));
        // Missing paths are left out rather than failing bubblewrap.
        assert!(!args.iter().any(|a| a.ends_with("/nope")));
        let helper = helper.canonicalize().unwrap();
        let helper = helper.to_str().unwrap();
        let tail = at(&["--", helper, HELPER_ARG]);
        assert_eq!(args[tail + 4..], ["--", "sh", "-c", "true"]);
        let inner: Policy = serde_json::from_str(&args[tail + 3]).unwrap();
        assert_eq!(inner.writable, [PathBuf::from(ws), PathBuf::from("/tmp")]);
        let tmpdir = cmd.get_envs().find(|(k, _)| *k == "TMPDIR").and_then(|(_, v)| v);
        assert_eq!(tmpdir, Some(OsStr::new("/tmp")));
    }

    #[test]
    fn hidden_folders_inside_and_around_the_workspace() {
        let (dir, ws, mut policy) = setup();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(ws.join("secret")).unwrap();
        policy.hidden = vec![root.clone(), ws.join("secret")];
        let sandbox =
            Sandbox::new(policy, detection(Tier::A), std::env::current_exe().unwrap()).unwrap();
        let args = argv(&sandbox.command("true".as_ref(), &[], &ws).unwrap());
        let at = |needle: &[&Path]| {
            let needle: Vec<&str> = needle.iter().map(|p| p.to_str().unwrap()).collect();
            find(&args, &needle).unwrap_or_else(|| panic!("{needle:?} in {args:?}"))
        };
        // The folder around the workspace is emptied, the workspace bound back into it, and
        // the secret inside the workspace emptied after that.
        let bind_ws = at(&[Path::new("--bind"), &ws, &ws]);
        assert!(at(&[Path::new("--tmpfs"), &root]) < bind_ws);
        assert!(bind_ws < at(&[Path::new("--tmpfs"), &ws.join("secret")]));
    }

    #[test]
    fn a_missing_git_is_held_empty_and_removed_after() {
        let (_dir, ws, policy) = setup();
        std::fs::remove_dir_all(ws.join(".git")).unwrap();
        let sandbox =
            Sandbox::new(policy, detection(Tier::A), std::env::current_exe().unwrap()).unwrap();
        let args = argv(&sandbox.command("true".as_ref(), &[], &ws).unwrap());
        let git = ws.join(".git").to_str().unwrap().to_owned();
        assert!(find(&args, &["--ro-bind", &git, &git]).is_some(), "{args:?}");
        assert!(ws.join(".git").is_dir());
        drop(sandbox);
        assert!(!ws.join(".git").exists(), "the placeholder was left behind");
        // One found empty (left by a killed tiller) is taken over; one in use stays.
        std::fs::create_dir(ws.join(".git")).unwrap();
        let policy = Policy::for_workspace(&ws);
        let sandbox =
            Sandbox::new(policy, detection(Tier::A), std::env::current_exe().unwrap()).unwrap();
        sandbox.command("true".as_ref(), &[], &ws).unwrap();
        // Removed between commands, it is made again.
        std::fs::remove_dir(ws.join(".git")).unwrap();
        sandbox.command("true".as_ref(), &[], &ws).unwrap();
        assert!(ws.join(".git").is_dir());
        drop(sandbox);
        assert!(!ws.join(".git").exists());
        let policy = Policy::for_workspace(&ws);
        let sandbox =
            Sandbox::new(policy, detection(Tier::A), std::env::current_exe().unwrap()).unwrap();
        sandbox.command("true".as_ref(), &[], &ws).unwrap();
        std::fs::write(ws.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        drop(sandbox);
        assert!(ws.join(".git/HEAD").exists());
    }

    #[test]
    fn the_environment_is_cut_down() {
        let (_dir, ws, mut policy) = setup();
        policy.env = vec!["CARGO_PKG_NAME".into()];
        let sandbox =
            Sandbox::new(policy, detection(Tier::B), std::env::current_exe().unwrap()).unwrap();
        let cmd = sandbox.command("env".as_ref(), &[], &ws).unwrap();
        let envs: Vec<_> = cmd.get_envs().collect();
        // Cargo sets both for the test; only the listed one passes (after `env_clear`, the
        // child gets exactly these).
        assert!(envs.contains(&(OsStr::new("CARGO_PKG_NAME"), Some(OsStr::new("tiller-sandbox")))));
        assert!(!envs.iter().any(|(k, _)| *k == "CARGO_MANIFEST_DIR"), "{envs:?}");
    }

    #[test]
    fn network_shares_the_host_network() {
        let (_dir, ws, mut policy) = setup();
        policy.network = true;
        let sandbox =
            Sandbox::new(policy, detection(Tier::A), std::env::current_exe().unwrap()).unwrap();
        let cmd = sandbox.command("true".as_ref(), &[], &ws).unwrap();
        assert!(argv(&cmd).contains(&"--share-net".to_owned()));
    }

    #[test]
    fn tier_b_runs_the_helper_alone_with_a_private_tmpdir() {
        let (_dir, ws, policy) = setup();
        let helper = std::env::current_exe().unwrap().canonicalize().unwrap();
        let sandbox = Sandbox::new(policy, detection(Tier::B), helper.clone()).unwrap();
        let cmd = sandbox.command("ls".as_ref(), &[], &ws).unwrap();
        let args = argv(&cmd);
        assert_eq!(args[0], helper.to_str().unwrap());
        assert_eq!(args[1], HELPER_ARG);
        assert_eq!(args[3..], ["--", "ls"]);
        let inner: Policy = serde_json::from_str(&args[2]).unwrap();
        assert_eq!(inner.writable, [ws, sandbox.tmp.path().to_path_buf()]);
        assert!(!sandbox.requires_approval());
    }

    #[test]
    fn tier_c_refuses_and_asks_for_approval() {
        let (_dir, ws, policy) = setup();
        let sandbox =
            Sandbox::new(policy, detection(Tier::C), std::env::current_exe().unwrap()).unwrap();
        assert!(sandbox.requires_approval());
        let err = sandbox.command("ls".as_ref(), &[], &ws).unwrap_err();
        assert!(matches!(err, SandboxError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("commands need approval"), "{err}");
    }

    #[test]
    fn a_missing_workspace_is_an_error() {
        let (dir, _ws, mut policy) = setup();
        policy.writable = vec![dir.path().join("gone")];
        let sandbox =
            Sandbox::new(policy, detection(Tier::B), std::env::current_exe().unwrap()).unwrap();
        let err = sandbox.command("ls".as_ref(), &[], dir.path()).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }
}
