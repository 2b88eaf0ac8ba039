//! Escape attempts against the real `tiller sandbox`, and what must still work inside it.
//!
//! Every attempt runs through the `tiller` binary in a temporary workspace; the test process
//! itself is never confined. Each asserts that the attempt failed, with the error the program
//! saw. The suite needs tier A: elsewhere it says so loudly and skips, unless
//! `TILLER_SANDBOX_EXPECT_TIER=A` (as `scripts/test` sets), where a missing tier A fails.
//! `TILLER_BIN` and `TILLER_TEST_TMPDIR` let `scripts/test` run it as an unprivileged user.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scratch.rs"]
mod scratch;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// A search path without per-user tool shims: the system's python3, sh and coreutils.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Python that runs named attempts and prints `NAME: STRERROR`, or `NAME: ESCAPED`.
const ATTEMPT: &str = r#"
import ctypes, os, socket, sys
def attempt(name, f):
    try:
        f()
    except OSError as e:
        print(f"{name}: {e.strerror}")
    else:
        print(f"{name}: ESCAPED")
libc = ctypes.CDLL(None, use_errno=True)
def io_uring():
    params = ctypes.create_string_buffer(120)
    if libc.syscall(425, 8, params) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
"#;

/// A TCP and a unix socket attempt in python, for a shell script.
const ATTEMPT_SH: &str = "python3 -c 'import socket\n\
    for name, family in (\"tcp4\", socket.AF_INET), (\"unix\", socket.AF_UNIX):\n\
    \x20 try: socket.socket(family)\n\
    \x20 except OSError as e: print(name + \":\", e.strerror)';";

fn tiller() -> PathBuf {
    std::env::var_os("TILLER_BIN").map_or(env!("CARGO_BIN_EXE_tiller").into(), PathBuf::from)
}

/// `tiller doctor --json`, once.
fn doctor() -> &'static serde_json::Value {
    static DOCTOR: OnceLock<serde_json::Value> = OnceLock::new();
    DOCTOR.get_or_init(|| {
        let out = Command::new(tiller()).args(["doctor", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

/// Returns from the test unless tier A is in force.
macro_rules! need_tier_a {
    () => {
        if !tier_a() {
            return;
        }
    };
}

/// Whether tier A is in force; fails if `TILLER_SANDBOX_EXPECT_TIER=A` and it is not.
fn tier_a() -> bool {
    let d = doctor();
    if d["tier"] == "A" {
        return true;
    }
    if std::env::var("TILLER_SANDBOX_EXPECT_TIER").is_ok_and(|t| t == "A") {
        panic!("TILLER_SANDBOX_EXPECT_TIER=A but: {}; fixes: {}", d["summary"], d["fixes"]);
    }
    eprintln!("SKIPPED: the sandbox escape suite needs tier A; here: {}", d["summary"]);
    false
}

struct Env {
    _dir: tempfile::TempDir,
    base: PathBuf,
    home: PathBuf,
    ws: PathBuf,
}

/// `base/{home,ws,sibling}` in a fresh folder outside `/tmp` (which tier A replaces).
fn env() -> Env {
    let dir = scratch::outside_tmp();
    let base = dir.path().canonicalize().unwrap();
    let (home, ws) = (base.join("home"), base.join("ws"));
    for d in [&home, &ws, &base.join("sibling")] {
        std::fs::create_dir(d).unwrap();
    }
    Env { _dir: dir, base, home, ws }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Env {
    /// `tiller ARGS` in the workspace, with a clean environment.
    fn tiller(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(tiller());
        cmd.args(args).env_clear().env("PATH", PATH).env("HOME", &self.home).current_dir(&self.ws);
        cmd
    }

    /// `tiller --config FILE sandbox -- PROGRAM ARGS`, FILE holding `config`.
    fn tiller_with(&self, config: &str, program: &str, args: &[&str]) -> Command {
        let file = self.base.join("config.toml");
        std::fs::write(&file, config).unwrap();
        let mut cmd = self.tiller(&["--config", file.to_str().unwrap(), "sandbox", "--", program]);
        cmd.args(args);
        cmd
    }

    /// `tiller sandbox OPTS -- sh -c SCRIPT`.
    fn sh(&self, opts: &[&str], script: &str) -> Out {
        let mut args = vec!["sandbox"];
        args.extend(opts);
        args.extend(["--", "sh", "-c", script]);
        output(&mut self.tiller(&args))
    }

    /// `tiller sandbox OPTS -- python3 -c ATTEMPT+CODE`.
    fn python(&self, opts: &[&str], code: &str) -> Out {
        let code = format!("{ATTEMPT}{code}");
        let mut args = vec!["sandbox"];
        args.extend(opts);
        args.extend(["--", "python3", "-c", &code]);
        output(&mut self.tiller(&args))
    }
}

fn output(cmd: &mut Command) -> Out {
    let out = cmd.output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
    }
}

/// `echo > target` fails with the read-only root's error, and nothing is written.
fn assert_write_refused(env: &Env, target: &Path) {
    let out = env.sh(&[], &format!("echo escaped > '{}'", target.display()));
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("tier A"), "{}", out.stderr);
    assert!(out.stderr.contains("Read-only file system"), "{}", out.stderr);
    assert!(!std::fs::read_to_string(target).unwrap_or_default().contains("escaped"));
}

/// Writing to `target(env)` fails in tier A, for a fresh environment.
fn refuses_write(target: impl FnOnce(&Env) -> PathBuf) {
    need_tier_a!();
    let env = env();
    assert_write_refused(&env, &target(&env));
}

#[test]
fn write_outside_the_workspace_is_refused() {
    refuses_write(|env| env.base.join("outside"));
}

#[test]
fn write_to_home_is_refused() {
    refuses_write(|env| env.home.join(".bashrc"));
}

/// `-C DIR` names the workspace, as for every subcommand: the command runs there and may write
/// there, and not in the folder tiller was started from.
#[test]
fn dash_c_names_the_workspace() {
    need_tier_a!();
    let env = env();
    let ws = env.ws.display().to_string();
    let mut cmd = env.tiller(&["-C", &ws, "sandbox", "--", "sh", "-c", "pwd; touch made"]);
    let out = output(cmd.current_dir(&env.home));
    assert_eq!((out.code, out.stdout.trim()), (0, ws.as_str()), "{}", out.stderr);
    assert!(env.ws.join("made").is_file());
    let out = output(
        env.tiller(&["-C", &ws, "sandbox", "--", "touch", "../home/x"]).current_dir(&env.home),
    );
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(!env.home.join("x").exists());
}

#[test]
fn a_session_policy_confines_and_prints_only_the_command() {
    need_tier_a!();
    let env = env();
    let policy = serde_json::to_string(&tiller_sandbox::Policy::for_workspace(&env.ws)).unwrap();
    let sub = env.ws.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let script = "pwd; touch ../made; touch ../../home/x";
    let run = |extra: &[&str]| {
        let mut args = vec!["sandbox", "--policy", &policy];
        args.extend(extra);
        args.extend(["-C", sub.to_str().unwrap(), "--", "sh", "-c", script]);
        output(&mut env.tiller(&args))
    };
    // The policy's workspace is writable, from the folder the command runs in; beyond it not.
    let out = run(&[]);
    assert_ne!(out.code, 0);
    assert_eq!(out.stdout, format!("{}\n", sub.display()));
    assert!(out.stderr.starts_with("touch: cannot touch '../../home/x'"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(env.ws.join("made").is_file());
    assert!(!env.home.join("x").exists());
    // Its time limit ends it with timeout(1)'s code, and says nothing of it.
    let mut args = vec!["sandbox", "--policy", &policy, "--timeout", "1", "--", "sleep", "30"];
    let out = output(&mut env.tiller(&args));
    assert_eq!((out.code, out.stderr.as_str()), (124, ""));
    args.splice(1..3, []);
    assert!(output(&mut env.tiller(&args)).stderr.contains("timed out after 1s"));
}

#[test]
fn write_to_etc_is_refused() {
    refuses_write(|_| PathBuf::from("/etc/tiller-escape"));
}

#[test]
fn write_to_a_sibling_folder_is_refused() {
    refuses_write(|env| env.ws.join("../sibling/f"));
}

#[test]
fn write_through_a_symlink_out_of_the_workspace_is_refused() {
    need_tier_a!();
    let env = env();
    std::os::unix::fs::symlink(env.base.join("sibling"), env.ws.join("link")).unwrap();
    assert_write_refused(&env, &env.ws.join("link/f"));
    assert!(!env.base.join("sibling/f").exists());
}

/// `git ARGS` in `dir` outside the sandbox, as tiller or the user runs it later: no global or
/// system config, so only the repository's own can run anything.
fn git(env: &Env, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", &env.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap()
}

/// Runs `attack` in a shell, with `$HOOK` a command that leaves a mark outside the
/// workspace, first unconfined in a copy of the workspace `prepare` makes (it must leave the
/// mark when git runs `later` there) and then in the sandbox (it must not). Returns what the
/// attack printed on stderr in the sandbox.
fn git_attack(prepare: impl Fn(&Env, &Path), attack: &str, later: &[&str]) -> String {
    let env = env();
    let mark = env.base.join("mark");
    let script = format!("HOOK='touch {}; false'; {attack}", mark.display());
    // The control: the attack works where nothing confines it.
    let control = env.base.join("control");
    std::fs::create_dir(&control).unwrap();
    prepare(&env, &control);
    let out = Command::new("sh").args(["-c", &script]).current_dir(&control).output().unwrap();
    assert!(out.status.success(), "control: {}", String::from_utf8_lossy(&out.stderr));
    git(&env, &control, later);
    assert!(mark.exists(), "control failed: git {later:?} ran nothing");
    std::fs::remove_file(&mark).unwrap();

    prepare(&env, &env.ws);
    let out = env.sh(&[], &script);
    assert_ne!(out.code, 0, "{}", out.stderr);
    git(&env, &env.ws, later);
    assert!(!mark.exists(), "git {later:?} ran what the sandboxed command planted");
    out.stderr
}

fn git_init(env: &Env, dir: &Path) {
    assert!(git(env, dir, &["init", "-q"]).status.success());
    assert!(git(env, dir, &["commit", "-q", "--allow-empty", "-m", "first"]).status.success());
}

/// A repository, whose own git dir names another as its common dir through `commondir`.
#[test]
fn git_commondir_cannot_be_redirected() {
    need_tier_a!();
    let err = git_attack(
        git_init,
        "git init -q evil && git -C evil config core.fsmonitor \"$HOOK\" && \
         echo \"$PWD/evil/.git\" > .git/commondir",
        &["status"],
    );
    assert!(err.contains(".git/commondir: Read-only file system"), "{err}");
}

#[test]
fn git_dir_cannot_be_renamed_or_replaced() {
    need_tier_a!();
    let err = git_attack(
        git_init,
        "cp -r .git .git-new && git --git-dir=.git-new config core.fsmonitor \"$HOOK\"; \
         mv .git .git-old; rm -rf .git; mv -T .git-new .git",
        &["status"],
    );
    assert!(err.contains("cannot move '.git' to '.git-old': Device or resource busy"), "{err}");
    assert!(err.contains("cannot remove '.git/config': Read-only file system"), "{err}");
    assert!(err.contains("cannot move '.git-new' to '.git': Device or resource busy"), "{err}");
}

/// A linked worktree, whose `.git` is a file naming its git dir.
#[test]
fn a_worktree_git_file_cannot_be_rewritten() {
    need_tier_a!();
    let worktree = |env: &Env, dir: &Path| {
        let main = env.base.join(format!("main-{}", dir.file_name().unwrap().to_str().unwrap()));
        std::fs::create_dir(&main).unwrap();
        git_init(env, &main);
        let add = git(env, &main, &["worktree", "add", "-q", dir.to_str().unwrap()]);
        assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    };
    let err = git_attack(
        worktree,
        "git init -q evil && git -C evil config core.fsmonitor \"$HOOK\" && \
         echo \"gitdir: $PWD/evil/.git\" > .git",
        &["status"],
    );
    assert!(err.contains(".git: Read-only file system"), "{err}");
}

#[test]
fn missing_git_hooks_cannot_be_created() {
    need_tier_a!();
    let without_hooks = |env: &Env, dir: &Path| {
        git_init(env, dir);
        std::fs::remove_dir_all(dir.join(".git/hooks")).unwrap();
    };
    let err = git_attack(
        without_hooks,
        "mkdir .git/hooks && printf '#!/bin/sh\\n%s\\n' \"$HOOK\" > .git/hooks/post-commit && \
         chmod +x .git/hooks/post-commit",
        &["commit", "-q", "--allow-empty", "-m", "second"],
    );
    assert!(err.contains("cannot create directory '.git/hooks': Read-only file system"), "{err}");
}

/// A workspace that is no repository: no `.git` may appear at its root, and the empty folder
/// that holds the place while commands run is gone afterwards.
#[test]
fn a_repository_cannot_be_created_in_a_plain_workspace() {
    need_tier_a!();
    let err =
        git_attack(|_, _| {}, "git init -q && git config core.fsmonitor \"$HOOK\"", &["status"]);
    assert!(err.contains("Read-only file system"), "{err}");
    let env = env();
    let out = env.sh(&[], "echo made > f; ls -a");
    assert_eq!(out.stdout, ".\n..\n.git\n.tiller\nf\n", "{}", out.stderr);
    let left: Vec<_> =
        std::fs::read_dir(&env.ws).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["f"], "the placeholder was left behind");
}

#[test]
fn git_metadata_stays_read_only_but_readable() {
    need_tier_a!();
    let env = env();
    git_init(&env, &env.ws);
    for target in [".git/hooks/pre-commit", ".git/config", ".git/HEAD", ".git/info/attributes"] {
        assert_write_refused(&env, &env.ws.join(target));
    }
    let out = env.sh(&[], "git log --format=%s && git status --short && echo new > f");
    assert_eq!(out.stdout, "first\n", "{}", out.stderr);
    assert!(env.ws.join("f").exists());
}

/// `.tiller/` names the commands that check the agent's work: a command cannot rewrite, add
/// to, rename or replace it, nor create it where it is missing (and the folder that holds its
/// place while commands run is gone afterwards).
#[test]
fn tiller_s_project_configuration_stays_read_only() {
    need_tier_a!();
    let env = env();
    let toml = "test = \"sh test.sh\"\n";
    std::fs::create_dir(env.ws.join(".tiller")).unwrap();
    std::fs::write(env.ws.join(".tiller/project.toml"), toml).unwrap();
    for target in [".tiller/project.toml", ".tiller/other.toml"] {
        assert_write_refused(&env, &env.ws.join(target));
    }
    let out = env.sh(&[], "mv .tiller .t || rm -rf .tiller; cat .tiller/project.toml");
    assert!(
        out.stderr.contains("cannot move '.tiller' to '.t': Device or resource busy"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, toml, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(env.ws.join(".tiller/project.toml")).unwrap(), toml);

    let env = self::env();
    let out = env.sh(&[], "mkdir -p .tiller; echo 'test = \"true\"' > .tiller/project.toml");
    assert!(out.stderr.contains("Read-only file system"), "{}", out.stderr);
    let left: Vec<_> =
        std::fs::read_dir(&env.ws).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the placeholder was left behind: {left:?}");
}

/// Secrets in tiller's environment, and the endpoint's API key even where `[sandbox] env`
/// names it, stay out of the command's; what `[sandbox] env` names otherwise passes.
#[test]
fn secrets_in_the_environment_are_not_passed_on() {
    need_tier_a!();
    let env = env();
    let config = env.base.join("config.toml");
    std::fs::write(&config, "[sandbox]\nenv = [\"PASS_ME\", \"MY_API_KEY\"]\n").unwrap();
    let config = config.to_str().unwrap();
    let mut cmd =
        env.tiller(&["--config", config, "--api-key-env", "MY_API_KEY", "sandbox", "--", "env"]);
    cmd.env("GITHUB_TOKEN", "ghp_secret")
        .env("AWS_SECRET_ACCESS_KEY", "aws_secret")
        .env("MY_API_KEY", "key_secret")
        .env("PASS_ME", "passed")
        .env("LC_ALL", "C");
    let out = output(&mut cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut names: Vec<&str> =
        out.stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
    names.sort();
    // bubblewrap sets PWD.
    assert_eq!(names, ["HOME", "LC_ALL", "PASS_ME", "PATH", "PWD", "TMPDIR"], "{}", out.stdout);
    assert!(!out.stdout.contains("secret"), "{}", out.stdout);
}

/// tiller's data (sessions and the ledger of every project) and its config, wherever the
/// XDG variables or `--config` put them, are hidden.
#[test]
fn tiller_data_and_config_are_hidden() {
    need_tier_a!();
    let env = env();
    let (data, config) = (env.home.join(".local/share/tiller"), env.home.join(".config/tiller"));
    let other = env.base.join("elsewhere");
    for dir in [&data.join("sessions"), &config, &other.join("tiller")] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let files = [
        data.join("ledger.sqlite"),
        data.join("sessions/s.jsonl"),
        config.join("config.toml"),
        other.join("tiller/ledger.sqlite"),
        env.base.join("my-config.toml"),
    ];
    for f in &files {
        std::fs::write(f, "# private\n").unwrap();
    }
    let cat: Vec<String> = files.iter().map(|f| format!("cat '{}';", f.display())).collect();
    let out = env.sh(&[], &cat[..3].concat());
    assert_eq!(out.stdout, "", "{}", out.stderr);
    for f in &files[..3] {
        assert!(
            out.stderr.contains(&format!("{}: No such file or directory", f.display())),
            "{}",
            out.stderr
        );
    }
    // A file is covered by /dev/null, which bubblewrap binds without device access.
    let mut cmd = env.tiller(&[
        "--config",
        files[4].to_str().unwrap(),
        "sandbox",
        "--",
        "sh",
        "-c",
        &cat[3..].concat(),
    ]);
    cmd.env("XDG_DATA_HOME", &other);
    let out = output(&mut cmd);
    assert_eq!(out.stdout, "", "{}", out.stderr);
    assert!(out.stderr.contains("ledger.sqlite: No such file or directory"), "{}", out.stderr);
    assert!(out.stderr.contains("my-config.toml: Permission denied"), "{}", out.stderr);
}

#[test]
fn tcp_and_udp_over_ipv4_and_ipv6_are_refused() {
    need_tier_a!();
    let env = env();
    let tcp4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp4.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let (t, u) = (tcp4.local_addr().unwrap().port(), udp4.local_addr().unwrap().port());
    let code = format!(
        "S = socket.socket\n\
         attempt('tcp4', lambda: S(socket.AF_INET).connect(('127.0.0.1', {t})))\n\
         attempt('udp4', lambda: S(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {u})))\n\
         attempt('tcp6', lambda: S(socket.AF_INET6).connect(('::1', {t})))\n\
         attempt('udp6', lambda: S(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'x', ('::1', {u})))\n"
    );
    let out = env.python(&[], &code);
    let refused = "Address family not supported by protocol";
    let expected = format!("tcp4: {refused}\nudp4: {refused}\ntcp6: {refused}\nudp6: {refused}\n");
    assert_eq!(out.stdout, expected, "{}", out.stderr);
    tcp4.set_nonblocking(true).unwrap();
    assert!(tcp4.accept().is_err(), "a TCP connection got through");
    assert!(udp4.recv(&mut [0; 8]).is_err(), "a UDP datagram got through");
}

#[test]
fn netlink_is_refused() {
    need_tier_a!();
    let code = "attempt('netlink', lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))\n";
    let out = env().python(&[], code);
    assert_eq!(out.stdout, "netlink: Address family not supported by protocol\n", "{}", out.stderr);
}

#[test]
fn vsock_and_io_uring_are_refused_even_with_network_on() {
    need_tier_a!();
    let env = env();
    let code = "attempt('vsock', lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM))\n\
                attempt('io_uring', io_uring)\n";
    for opts in [&[][..], &["--network"]] {
        let out = env.python(opts, code);
        assert_eq!(
            out.stdout,
            "vsock: Address family not supported by protocol\nio_uring: Function not implemented\n",
            "{opts:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn network_flag_allows_tcp() {
    need_tier_a!();
    let tcp4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp4.local_addr().unwrap().port();
    let code = format!("socket.create_connection(('127.0.0.1', {port})).sendall(b'hi')\n");
    let out = env().python(&["--network"], &code);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut got = String::new();
    tcp4.accept().unwrap().0.read_to_string(&mut got).unwrap();
    assert_eq!(got, "hi");
}

/// A unix socket listening at `path`, stream or datagram, for an attempt to reach.
enum Listener {
    Stream(UnixListener),
    Datagram(UnixDatagram),
}

impl Listener {
    fn bind(path: &Path, datagram: bool) -> Listener {
        let listener = if datagram {
            Listener::Datagram(UnixDatagram::bind(path).unwrap())
        } else {
            Listener::Stream(UnixListener::bind(path).unwrap())
        };
        match &listener {
            Listener::Stream(l) => l.set_nonblocking(true).unwrap(),
            Listener::Datagram(d) => d.set_nonblocking(true).unwrap(),
        }
        listener
    }

    /// Whether a connection or a datagram arrived since the last call.
    fn reached(&self) -> bool {
        match self {
            Listener::Stream(l) => l.accept().is_ok(),
            Listener::Datagram(d) => d.recv(&mut [0; 64]).is_ok(),
        }
    }
}

/// Python attempts on the unix socket at `PATH`: connecting a new socket, and sending a
/// datagram from a socket pair, by `sendto` and after `connect` (a datagram socket may change
/// its peer).
const UNIX_STREAM: &str = "attempt('unix', lambda: socket.socket(socket.AF_UNIX).connect(PATH))\n";
const UNIX_DATAGRAM: &str = "def pair():\n    return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)[0]\n\
    attempt('sendto', lambda: pair().sendto(b'x', PATH))\n\
    attempt('connect', lambda: (lambda s: (s.connect(PATH), s.send(b'x')))(pair()))\n";

/// Runs `code` (with `PATH` the socket's path) against a socket listening at `path`: first
/// unconfined, where it must get through, then in the sandbox with `config` (a config file's
/// text) and `extra_env`. Returns what the sandboxed attempt printed; fails if a connection or
/// datagram got through while it printed no `ESCAPED`.
fn unix_attempt(
    env: &Env,
    path: &Path,
    code: &str,
    config: &str,
    extra_env: &[(&str, &Path)],
) -> String {
    let listener = Listener::bind(path, code == UNIX_DATAGRAM);
    let code = format!("{ATTEMPT}PATH = '{}'\n{code}", path.display());
    let outside = Command::new("python3").args(["-c", &code]).output().unwrap();
    let outside = String::from_utf8_lossy(&outside.stdout);
    assert!(!outside.is_empty() && outside.lines().all(|l| l.ends_with(": ESCAPED")), "{outside}");
    while listener.reached() {}
    let mut cmd = env.tiller_with(config, "python3", &["-c", &code]);
    cmd.envs(extra_env.iter().copied());
    let out = output(&mut cmd);
    let escaped = out.stdout.contains("ESCAPED");
    assert!(escaped || !listener.reached(), "got through unseen: {}", out.stdout);
    assert!(!out.stdout.is_empty(), "{}", out.stderr);
    out.stdout
}

/// The error of a refused `socket` or `socketpair`.
const NO_FAMILY: &str = "Address family not supported by protocol";
/// Where the folder holding a socket is hidden.
const HIDDEN: &str = "No such file or directory";
/// The config that lets commands make unix sockets.
const UNIX_ALLOWED: &str = "[sandbox]\nunix_sockets = true\n";

/// With unix sockets allowed, a socket under `/run`, `$XDG_RUNTIME_DIR` (normally
/// /run/user/UID), `/var` or an ssh-agent's in `~/.ssh` is still out of sight.
#[test]
fn unix_sockets_in_hidden_folders_stay_out_of_sight() {
    need_tier_a!();
    let env = env();
    let id = std::process::id();
    let mut system = vec![PathBuf::from(format!("/var/tmp/tiller-escape-{id}.sock"))];
    if is_root() {
        system.push(PathBuf::from(format!("/run/tiller-escape-{id}.sock")));
    } else {
        eprintln!("NOTE: not root, so no socket can be made under /run; the runtime dir covers it");
    }
    for path in &system {
        let _ = std::fs::remove_file(path);
        let out = unix_attempt(&env, path, UNIX_STREAM, UNIX_ALLOWED, &[]);
        std::fs::remove_file(path).unwrap();
        assert_eq!(out, format!("unix: {HIDDEN}\n"));
    }
    let runtime = env.base.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::create_dir(env.home.join(".ssh")).unwrap();
    let extra = [("XDG_RUNTIME_DIR", runtime.as_path())];
    let out = unix_attempt(&env, &runtime.join("bus"), UNIX_STREAM, UNIX_ALLOWED, &extra);
    assert_eq!(out, format!("unix: {HIDDEN}\n"));
    let out = unix_attempt(&env, &env.home.join(".ssh/agent.sock"), UNIX_STREAM, UNIX_ALLOWED, &[]);
    assert_eq!(out, format!("unix: {HIDDEN}\n"));
}

/// By default no unix socket outside the sandbox can be reached, wherever it lies: in a
/// hidden folder, in `$HOME`, five levels down, or one a datagram socket pair sends to.
#[test]
fn unix_sockets_outside_are_unreachable_wherever_they_lie() {
    need_tier_a!();
    let env = env();
    let deep = env.home.join("a/b/c/d");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::create_dir(env.home.join(".ssh")).unwrap();
    let out = unix_attempt(&env, &deep.join("log.sock"), UNIX_DATAGRAM, "", &[]);
    assert_eq!(out, format!("sendto: {NO_FAMILY}\nconnect: {NO_FAMILY}\n"));
    for path in [deep.join("x.sock"), env.home.join("x.sock"), env.home.join(".ssh/agent.sock")] {
        let out = unix_attempt(&env, &path, UNIX_STREAM, "", &[]);
        assert_eq!(out, format!("unix: {NO_FAMILY}\n"), "{}", path.display());
    }
}

/// A socket made after the command started (by another program of the user) is as
/// unreachable as one that was there before.
#[test]
fn a_unix_socket_made_after_the_command_started_is_unreachable() {
    need_tier_a!();
    let env = env();
    let path = env.home.join("late.sock");
    let code = format!(
        "{ATTEMPT}print('ready', flush=True)\nsys.stdin.readline()\n\
         attempt('unix', lambda: socket.socket(socket.AF_UNIX).connect('{}'))\n",
        path.display()
    );
    let mut child = env
        .tiller(&["sandbox", "--", "python3", "-c", &code])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    let listener = Listener::bind(&path, false);
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"go\n").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest, format!("unix: {NO_FAMILY}\n"));
    assert!(!listener.reached(), "a connection got through");
}

/// A server and a client on a socket in the workspace: refused by default, working where
/// the config allows unix sockets.
#[test]
fn unix_sockets_in_the_workspace_work_where_allowed() {
    need_tier_a!();
    let env = env();
    let code = "def serve():\n\
                \x20   s = socket.socket(socket.AF_UNIX); s.bind('srv.sock'); s.listen()\n\
                \x20   c = socket.socket(socket.AF_UNIX); c.connect('srv.sock'); c.sendall(b'hi')\n\
                \x20   print(s.accept()[0].recv(2).decode())\n\
                attempt('serve', serve)\n";
    assert_eq!(env.python(&[], code).stdout, format!("serve: {NO_FAMILY}\n"));
    let code = format!("{ATTEMPT}{code}");
    let out = output(&mut env.tiller_with(UNIX_ALLOWED, "python3", &["-c", &code]));
    assert_eq!(out.stdout, "hi\nserve: ESCAPED\n", "{}", out.stderr);
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap()
}

#[test]
fn a_setsid_child_does_not_outlive_the_timeout() {
    need_tier_a!();
    let env = env();
    let started = std::time::Instant::now();
    let out = env.sh(
        &["--timeout", "1"],
        "setsid sh -c 'sleep 3; echo escaped > marker' & echo started; sleep 60",
    );
    assert_eq!(out.code, 124, "{}", out.stderr);
    assert_eq!(out.stdout, "started\n");
    assert!(out.stderr.contains("timed out after 1s"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(3), "the kill took {:?}", started.elapsed());
    std::thread::sleep(Duration::from_secs(4));
    assert!(!env.ws.join("marker").exists(), "the setsid child survived the timeout");
}

/// Forks until refused or 2,000 children (so that, where no limit holds, the test does not
/// use up the machine's process IDs), then exits; the children sleep.
const FORK_BOMB: &str = "import time
n = 0
while n < 2000:
    try:
        pid = os.fork()
    except OSError as e:
        print(n, e.strerror); break
    if pid == 0:
        time.sleep(60); os._exit(0)
    n += 1
else:
    print(n, 'unlimited')
";

#[test]
fn a_fork_bomb_is_limited_and_leaves_nothing_behind() {
    need_tier_a!();
    // A mark in every bomb process's command line, to look for survivors by.
    let mark = format!("# tiller-fork-bomb-{}", std::process::id());
    let out = env().python(&["--timeout", "60"], &format!("{FORK_BOMB}{mark}\n"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (forks, error) = out.stdout.trim_end().split_once(' ').unwrap();
    let forks: u32 = forks.parse().unwrap();
    if is_root() {
        // The kernel exempts root from RLIMIT_NPROC; tiller doctor warns of it.
        assert!(out.stderr.contains("only the timeout stops a fork bomb"), "{}", out.stderr);
        eprintln!("NOTE: as root the process limit does not hold: {forks} forks, {error}");
    } else {
        assert_eq!(error, "Resource temporarily unavailable");
        assert!((900..=1024).contains(&forks), "{forks} forks");
    }
    // The PID namespace ended with the command, taking every child along.
    let survivors = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(&mark))
        .count();
    assert_eq!(survivors, 0, "fork bomb processes outlived the command");
}

#[test]
fn workspace_tmp_and_reads_work() {
    need_tier_a!();
    let env = env();
    let name = format!("tiller-private-{}", std::process::id());
    let out = env.sh(
        &[],
        &format!(
            "set -e; mkdir -p a/b; echo hi > a/b/f; mv a/b/f g; cat g; \
             echo t > /tmp/{name}; cat /tmp/{name}; echo \"$TMPDIR\"; head -c 5 /etc/passwd; echo"
        ),
    );
    assert_eq!(out.stdout, "hi\nt\n/tmp\nroot:\n", "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(env.ws.join("g")).unwrap(), "hi\n");
    assert!(!Path::new("/tmp").join(&name).exists(), "/tmp is not private");
}

#[test]
fn cargo_test_runs_on_a_small_crate() {
    need_tier_a!();
    let Some(cargo) = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .filter(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        eprintln!("SKIPPED: cargo is not runnable by this user (set CARGO to a cargo it can run)");
        return;
    };
    let env = env();
    std::fs::create_dir(env.ws.join("src")).unwrap();
    let manifest =
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n";
    std::fs::write(env.ws.join("Cargo.toml"), manifest).unwrap();
    let lib =
        "pub fn two() -> u32 { 2 }\n#[test]\nfn two_is_two() { assert_eq!(crate::two(), 2); }\n";
    std::fs::write(env.ws.join("src/lib.rs"), lib).unwrap();
    let toolchain = cargo.parent().unwrap().display().to_string();
    let mut cmd = env.tiller(&["sandbox", "--", "cargo", "test", "--offline", "--quiet"]);
    cmd.env("PATH", format!("{toolchain}:{PATH}"))
        .env("CARGO_HOME", env.ws.join(".cargo-home"))
        .env("CARGO_TARGET_DIR", env.ws.join("target"));
    let out = output(&mut cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("test result: ok. 1 passed"), "{}", out.stdout);
}

#[test]
fn a_missing_program_exits_127() {
    need_tier_a!();
    let out = output(&mut env().tiller(&["sandbox", "--", "/nonexistent/program"]));
    assert_eq!(out.code, 127, "{}", out.stderr);
    let expected = "tiller sandbox: cannot run /nonexistent/program: No such file or directory";
    assert!(out.stderr.contains(expected), "{}", out.stderr);
}

/// With user namespaces refused around the launcher (as in a container), tier B is chosen
/// and says what it leaves open; Landlock and seccomp still refuse writes and sockets, and the
/// environment is as minimal.
#[test]
fn tier_b_is_chosen_without_user_namespaces() {
    if doctor()["landlock_abi"].as_u64().unwrap_or(0) < 3 || doctor()["seccomp"] != true {
        eprintln!(
            "SKIPPED: tier B needs Landlock ABI 3 and seccomp; here: {}",
            doctor()["summary"]
        );
        return;
    }
    let env = env();
    let tiller = tiller().display().to_string();
    let script = format!(
        "echo escaped > '{}'; {ATTEMPT_SH} echo token=${{GITHUB_TOKEN:-none}}; echo hi > f && cat f",
        env.base.join("outside").display()
    );
    let mut cmd =
        env.tiller(&["__sandbox-deny-userns", "--", &tiller, "sandbox", "--", "sh", "-c", &script]);
    let out = output(cmd.env("GITHUB_TOKEN", "ghp_secret"));
    assert!(out.stderr.contains("tier B (Landlock and seccomp, no namespaces)"), "{}", out.stderr);
    assert!(out.stderr.contains("user namespaces are unavailable"), "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: without namespaces, secret folders such as ~/.ssh"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    assert!(!env.base.join("outside").exists());
    assert_eq!(
        out.stdout,
        format!("tcp4: {NO_FAMILY}\nunix: {NO_FAMILY}\ntoken=none\nhi\n"),
        "{}",
        out.stderr
    );
}
