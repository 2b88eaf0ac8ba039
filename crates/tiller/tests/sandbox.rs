//! Escape attempts against the real `tiller sandbox`, and what must still work inside it.
//!
//! Every attempt runs through the `tiller` binary in a temporary workspace; the test process
//! itself is never confined. Each asserts that the attempt failed, with the error the program
//! saw. The suite needs tier A: elsewhere it says so loudly and skips, unless
//! `TILLER_SANDBOX_EXPECT_TIER=A` (as `scripts/test` sets), where a missing tier A fails.
//! `TILLER_BIN` and `TILLER_TEST_TMPDIR` let `scripts/test` run it as an unprivileged user.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
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

/// A TCP attempt in python, for a shell script.
const ATTEMPT_SH: &str = "python3 -c 'import socket\ntry: socket.socket()\nexcept OSError as e: print(\"tcp4:\", e.strerror)';";

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
    // Cargo's temporary folder lies under /tmp when the checkout does; /var/tmp then.
    let cargo_tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let fallback = if cargo_tmp.starts_with("/tmp") {
        PathBuf::from("/var/tmp/tiller-tests")
    } else {
        cargo_tmp
    };
    let parent = std::env::var_os("TILLER_TEST_TMPDIR").map_or(fallback, PathBuf::from);
    std::fs::create_dir_all(&parent).unwrap();
    let dir = tempfile::tempdir_in(parent).unwrap();
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

#[test]
fn git_hooks_and_config_stay_read_only() {
    need_tier_a!();
    let env = env();
    std::fs::create_dir_all(env.ws.join(".git/hooks")).unwrap();
    std::fs::write(env.ws.join(".git/config"), "").unwrap();
    assert_write_refused(&env, &env.ws.join(".git/hooks/pre-commit"));
    assert_write_refused(&env, &env.ws.join(".git/config"));
    // The rest of .git stays writable: commits must work.
    let out = env.sh(&[], "echo ref > .git/HEAD && cat .git/HEAD");
    assert_eq!(out.stdout, "ref\n", "{}", out.stderr);
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

/// Connecting to a listening unix socket at `path` works outside the sandbox and fails inside
/// it, because the folder holding it is hidden.
fn assert_unix_socket_hidden(env: &Env, path: &Path, extra_env: &[(&str, &Path)]) {
    let listener = UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let code = format!(
        "attempt('unix', lambda: socket.socket(socket.AF_UNIX).connect('{}'))\n",
        path.display()
    );
    let outside =
        Command::new("python3").args(["-c", &format!("{ATTEMPT}{code}")]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&outside.stdout), "unix: ESCAPED\n", "control failed");
    assert!(listener.accept().is_ok());
    let mut cmd = env.tiller(&["sandbox", "--", "python3", "-c", &format!("{ATTEMPT}{code}")]);
    cmd.envs(extra_env.iter().copied());
    let out = output(&mut cmd);
    assert_eq!(out.stdout, "unix: No such file or directory\n", "{}", out.stderr);
    assert!(listener.accept().is_err(), "a connection got through");
}

#[test]
fn unix_socket_under_run_is_unreachable() {
    need_tier_a!();
    let env = env();
    let path = PathBuf::from(format!("/run/tiller-escape-{}.sock", std::process::id()));
    if is_root() {
        assert_unix_socket_hidden(&env, &path, &[]);
        std::fs::remove_file(&path).unwrap();
    } else {
        eprintln!(
            "NOTE: not root, so no socket can be made under /run; the runtime-dir test covers it"
        );
    }
    // $XDG_RUNTIME_DIR (normally /run/user/UID) and an ssh-agent socket in ~/.ssh.
    let runtime = env.base.join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    assert_unix_socket_hidden(&env, &runtime.join("bus"), &[("XDG_RUNTIME_DIR", &runtime)]);
    std::fs::create_dir(env.home.join(".ssh")).unwrap();
    assert_unix_socket_hidden(&env, &env.home.join(".ssh/agent.sock"), &[]);
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
/// and says what it leaves open; Landlock and seccomp still refuse writes and sockets.
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
        "echo escaped > '{}'; {ATTEMPT_SH} echo hi > f && cat f",
        env.base.join("outside").display()
    );
    let out = output(&mut env.tiller(&[
        "__sandbox-deny-userns",
        "--",
        &tiller,
        "sandbox",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    assert!(out.stderr.contains("tier B (Landlock and seccomp, no namespaces)"), "{}", out.stderr);
    assert!(out.stderr.contains("user namespaces are unavailable"), "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: without namespaces, unix sockets that exist as files"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    assert!(!env.base.join("outside").exists());
    assert_eq!(
        out.stdout, "tcp4: Address family not supported by protocol\nhi\n",
        "{}",
        out.stderr
    );
}
