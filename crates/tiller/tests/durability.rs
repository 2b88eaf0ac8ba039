//! Nothing lost, nothing crashes: sessions and the ledger under kills, locks, damaged files, a
//! read-only data directory and a flaky endpoint, with the `tiller` binary as a user runs it.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/http.rs"]
mod http;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Env {
    _dir: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    for f in ["greet.py", "test_greet.py", "AGENTS.md"] {
        std::fs::copy(example.join(f), repo.join(f)).unwrap();
    }
    assert!(
        Command::new("git").args(["init", "-q"]).current_dir(&repo).status().unwrap().success()
    );
    std::fs::write(repo.join("one.json"), r#"{"turns":[{"text":"first"}]}"#).unwrap();
    Env { _dir: dir, home, repo }
}

/// The example script: five model calls and five tool actions.
fn script() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.script.json");
    path.display().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Env {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tiller"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", &self.home)
            .current_dir(&self.repo);
        command
    }

    fn tiller(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    fn data(&self) -> PathBuf {
        self.home.join(".local/share/tiller")
    }

    fn sessions(&self) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(self.data().join("sessions")) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = dir
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        paths.sort();
        paths
    }

    fn ledger(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data().join("ledger.sqlite")).unwrap()
    }

    /// Ledger rows of `kind` for `session`.
    fn rows(&self, session: &str, kind: &str) -> Vec<serde_json::Value> {
        let conn = self.ledger();
        let mut stmt = conn
            .prepare("SELECT payload FROM entries WHERE session = ?1 AND kind = ?2 ORDER BY id")
            .unwrap();
        stmt.query_map([session, kind], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
            .collect()
    }
}

fn exec(env: &Env, script: &str) -> Output {
    env.tiller(&["exec", "--provider", "scripted", "--model", script, "Make the test pass"])
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The messages of a session file, by role, read line by line as tiller writes them.
fn messages(path: &Path) -> Vec<serde_json::Value> {
    let mut messages = Vec::new();
    for line in std::fs::read(path).unwrap().split(|&b| b == b'\n') {
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
        match record["type"].as_str() {
            Some("message") => messages.push(record["message"].clone()),
            Some("replace") => messages = record["messages"].as_array().unwrap().clone(),
            _ => {}
        }
    }
    messages
}

/// A loopback chat endpoint that answers the first `failures` requests with 503 (retry after
/// 1 ms), then with a streamed "done" from a model it names by a file path, as llama-server
/// does. Returns its base URL.
fn flaky_server(failures: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            http::read_body(&stream);
            if n < failures {
                let headers = "retry-after-ms: 1\r\ncontent-type: application/json\r\n";
                let body = r#"{"error":{"message":"busy"}}"#;
                http::respond(&mut stream, "503 Service Unavailable", headers, body);
            } else {
                let done = http::chat_reply("/models/x-7b.gguf", "done");
                http::respond_events(&mut stream, &http::chat_events(&[done]));
            }
        }
    });
    url
}

#[test]
fn retries_are_recorded_and_one_model_is_one_row() {
    let env = env();
    let ok = flaky_server(4);
    let out = env.tiller(&["exec", "--provider", "openai", "--base-url", &ok, "-m", "x", "hi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let failing = flaky_server(usize::MAX);
    let out =
        env.tiller(&["exec", "--provider", "openai", "--base-url", &failing, "-m", "x", "hi"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let csv = text(&env.tiller(&["ledger", "export", "--csv"]).stdout);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let retries = header.iter().position(|h| *h == "retries").unwrap();
    let counts: Vec<String> =
        csv.lines().skip(1).map(|l| l.split(',').nth(retries).unwrap().to_string()).collect();
    assert_eq!(counts, ["4", "4"], "{csv}");
    let out = text(&env.tiller(&["ledger", "--by", "model", "--json"]).stdout);
    let rows: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!((rows[0]["key"].as_str(), rows[0]["calls"].as_u64()), (Some("x"), Some(2)));
    assert_eq!(rows[0]["failed_calls"], 1);
    assert_eq!(rows[0]["returned"], serde_json::json!(["/models/x-7b.gguf"]));
}

#[test]
fn a_second_process_on_a_session_is_refused_and_told_who_holds_it() {
    let env = env();
    // An endpoint that accepts the connection and never answers: the first process waits.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let held = listener.accept();
        std::thread::sleep(std::time::Duration::from_secs(60));
        drop(held);
    });
    let mut first =
        env.spawn(&["exec", "--provider", "openai", "--base-url", &url, "-m", "x", "task"]);
    let session = loop {
        if let Some(path) = env.sessions().pop()
            && path.with_extension("lock").is_file()
        {
            break stem(&path);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = env.tiller(&[
        "resume",
        "--session",
        &session,
        "--provider",
        "openai",
        "--base-url",
        &url,
        "-m",
        "x",
        "more",
    ]);
    first.kill().unwrap();
    first.wait().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains(&format!("in use by process {}", first.id())), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
    // Once the holder is gone, the session can be resumed.
    let out = env.tiller(&[
        "resume",
        "--session",
        &session,
        "--provider",
        "scripted",
        "--model",
        "one.json",
        "more",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn resume_takes_the_session_with_the_latest_activity() {
    let env = env();
    for _ in 0..2 {
        assert!(exec(&env, "one.json").status.success());
    }
    // Whichever id sorts last, make it the one touched longest ago.
    let sessions = env.sessions();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().append(true).open(&sessions[1]).unwrap().set_modified(old).unwrap();
    let out = env.tiller(&["resume", "--provider", "scripted", "--model", "one.json", "again"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(messages(&sessions[0]).len(), 4);
    assert_eq!(messages(&sessions[1]).len(), 2);
}

#[test]
fn a_session_with_a_bad_byte_or_no_meta_line_is_listed_and_resumed() {
    let env = env();
    for _ in 0..2 {
        assert!(exec(&env, "one.json").status.success());
    }
    let sessions = env.sessions();
    let mut bytes = std::fs::read(&sessions[0]).unwrap();
    bytes.extend_from_slice(
        b"{\"type\":\"message\",\"message\":{\"role\":\"user\",\"content\":\"\xff\"}}\n",
    );
    std::fs::write(&sessions[0], bytes).unwrap();
    let bytes = std::fs::read(&sessions[1]).unwrap();
    let meta_end = bytes.iter().position(|&b| b == b'\n').unwrap();
    std::fs::write(&sessions[1], &bytes[meta_end + 1..]).unwrap();
    let out = env.tiller(&["sessions", "--json"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).lines().count(), 2, "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("1 unreadable lines skipped") && stderr.contains("no meta line"),
        "{stderr}"
    );
    for path in &sessions {
        let out = env.tiller(&[
            "resume",
            "--session",
            &stem(path),
            "--provider",
            "scripted",
            "--model",
            "one.json",
            "more",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(messages(path).len(), 4);
    }
}

#[test]
fn a_locked_ledger_keeps_the_task_going_and_the_rows_come_in_at_the_next_start() {
    let env = env();
    assert!(exec(&env, "one.json").status.success());
    let holder = env.ledger();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = exec(&env, &script());
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("warning: the ledger cannot be written").count(), 1, "{stderr}");
    let session = stem(env.sessions().iter().find(|p| messages(p).len() > 2).unwrap());
    holder.execute_batch("ROLLBACK").unwrap();
    assert!(env.rows(&session, "model_call").is_empty());
    // The next start writes them.
    assert!(exec(&env, "one.json").status.success());
    assert_eq!(env.rows(&session, "model_call").len(), 5);
    assert_eq!(env.rows(&session, "tool_action").len(), 5);
    let out = env.tiller(&["ledger", "verify"]);
    assert_eq!(text(&out.stdout).trim(), "ok: 12 entries, hash chain intact");
    // And only once.
    assert!(exec(&env, "one.json").status.success());
    assert_eq!(env.rows(&session, "model_call").len(), 5);
}

#[test]
fn ledger_troubles_are_the_environment_with_a_hint_and_leave_no_empty_session() {
    let env = env();
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(env.data().join("ledger.sqlite"), "not a database at all ".repeat(300)).unwrap();
    for args in [&["ledger"][..], &["exec", "--provider", "scripted", "--model", "one.json", "hi"]]
    {
        let out = env.tiller(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{stderr}");
        assert!(stderr.contains("hint: the file is not a tiller ledger"), "{stderr}");
    }
    assert!(env.sessions().is_empty(), "{:?}", env.sessions());
}

#[test]
fn read_only_commands_work_on_a_read_only_data_directory() {
    let env = env();
    assert!(exec(&env, &script()).status.success());
    let data = env.data();
    let read_only = |args: &[&str]| {
        Command::new("bwrap")
            .args(["--dev-bind", "/", "/", "--ro-bind"])
            .args([&data, &data])
            .arg(env!("CARGO_BIN_EXE_tiller"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", &env.home)
            .current_dir(&env.repo)
            .output()
            .expect("bwrap runs")
    };
    for args in
        [&["ledger"][..], &["ledger", "verify"], &["ledger", "--by", "model"], &["sessions"]]
    {
        let out = read_only(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(
        text(&read_only(&["ledger", "verify"]).stdout).trim(),
        "ok: 10 entries, hash chain intact"
    );
    let out = read_only(&["exec", "--provider", "scripted", "--model", "one.json", "hi"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("hint: make the data directory writable"), "{stderr}");
}

/// A seeded generator (xorshift), so that the kill points are the same on every run.
struct Points(u64);

impl Points {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

/// `tiller exec` killed (SIGKILL) at 20 points through the example run: after the next start,
/// every model call and tool action the session completed is in the ledger, every completed
/// turn is in the session, and the chain holds.
#[test]
fn a_killed_exec_loses_no_completed_turn_in_the_session_or_the_ledger() {
    // How long an unkilled run takes here, to spread the kill points over it.
    let env0 = env();
    let started = std::time::Instant::now();
    assert!(exec(&env0, &script()).status.success());
    let span = started.elapsed().as_micros() as u64;
    let mut points = Points(0x5eed_1e55_u64);
    for round in 0..20 {
        let env = env();
        let mut child = env.spawn(&["exec", "--provider", "scripted", "--model", &script(), "go"]);
        std::thread::sleep(std::time::Duration::from_micros(points.next(span)));
        child.kill().unwrap();
        child.wait().unwrap();
        let killed = env.sessions();
        // The next start.
        assert!(exec(&env, "one.json").status.success(), "round {round}");
        let Some(path) = killed.first() else { continue };
        let session = stem(path);
        let messages = messages(path);
        let calls = env.rows(&session, "model_call");
        let actions = env.rows(&session, "tool_action");
        let answered = messages.iter().filter(|m| m["role"] == "assistant").count();
        let results: Vec<&str> = messages
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        let tools: Vec<&str> = actions.iter().map(|a| a["tool"].as_str().unwrap()).collect();
        // Rows are written as each call or action ends, before its message: the ledger holds
        // every completed one, and at most the one in flight more.
        assert!(
            calls.len() == answered || calls.len() == answered + 1,
            "round {round}: {} calls, {answered} answers",
            calls.len()
        );
        assert!(
            tools.starts_with(&results) && tools.len() <= results.len() + 1,
            "round {round}: {tools:?} vs {results:?}"
        );
        // Each tool result follows its call: no call left without its result or vice versa
        // beyond the one in flight.
        let called: usize =
            messages.iter().filter_map(|m| m["tool_calls"].as_array().map(Vec::len)).sum();
        assert!(called >= results.len(), "round {round}");
        let out = env.tiller(&["ledger", "verify"]);
        assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
    }
}

/// The ledger on a full disk (a small tmpfs in a private mount namespace, the ledger file linked
/// there): a start is refused as the environment, with a hint, and leaves no session behind; once
/// space is freed everything works and the chain holds.
#[test]
fn a_full_disk_under_the_ledger_is_the_environment_with_a_hint() {
    let env = env();
    let data = env.data();
    std::fs::create_dir_all(data.join("full")).unwrap();
    std::os::unix::fs::symlink(data.join("full/ledger.sqlite"), data.join("ledger.sqlite"))
        .unwrap();
    let script = r#"set -u
        cd "$REPO"
        mount -t tmpfs -o size=256k tmpfs "$DATA/full"
        "$TILLER" exec --provider scripted --model one.json first > /dev/null 2>&1 || echo "first failed"
        dd if=/dev/zero of="$DATA/full/pad" bs=1k 2>/dev/null
        "$TILLER" exec --provider scripted --model one.json task > /dev/null 2> "$OUT/full.err"
        echo "full exit $?"
        ls "$DATA/sessions" | grep -c jsonl
        rm "$DATA/full/pad"
        "$TILLER" exec --provider scripted --model one.json next > /dev/null 2>&1 || echo "next failed"
        "$TILLER" ledger verify
        "#;
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", &env.home)
        .env("REPO", &env.repo)
        .env("DATA", &data)
        .env("TILLER", env!("CARGO_BIN_EXE_tiller"))
        .env("OUT", &env.home)
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = text(&out.stdout);
    let full = std::fs::read_to_string(env.home.join("full.err")).unwrap_or_default();
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_eq!(stdout, "full exit 5\n1\nok: 2 entries, hash chain intact\n", "{full}");
    assert!(full.contains("hint: the disk may be full"), "{full}");
}
