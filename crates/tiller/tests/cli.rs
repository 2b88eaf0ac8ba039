//! The `tiller` binary as a user runs it: a scripted model on a temporary git repository, with
//! its own config and data directories.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/http.rs"]
mod http;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    std::fs::create_dir_all(&repo).unwrap();
    for f in ["greet.py", "test_greet.py", "AGENTS.md"] {
        std::fs::copy(example.join(f), repo.join(f)).unwrap();
    }
    assert!(
        Command::new("git").args(["init", "-q"]).current_dir(&repo).status().unwrap().success()
    );
    Env { _dir: dir, home, repo }
}

fn script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/hello.script.json")
        .display()
        .to_string()
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
}

/// Runs `command` with stdout a pipe whose reader is already gone (`tiller … | true`).
fn into_closed_pipe(command: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command.stdout(writer).stderr(Stdio::piped()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exec_fixes_the_example_and_prints_the_answer_on_stdout() {
    let env = env();
    let out =
        env.tiller(&["exec", "--provider", "scripted", "--model", &script(), "Make the test pass"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("greet now includes the name") && stdout.lines().count() == 1,
        "{stdout}"
    );
    assert!(stderr.contains("→ apply_patch") && stderr.contains("wrote: greet.py"), "{stderr}");
    assert!(stderr.contains("✓ shell: exit code: 0"), "{stderr}");
    let fixed = std::fs::read_to_string(env.repo.join("greet.py")).unwrap();
    assert!(fixed.contains("return f\"Hello, {name}!\""));
    // The session was recorded where XDG says, and can be listed.
    let list = env.tiller(&["sessions", "--json"]);
    let row: serde_json::Value = serde_json::from_str(text(&list.stdout).trim()).unwrap();
    assert_eq!(row["model"], "hello-script");
    assert_eq!(row["messages"], 11);
    assert!(env.home.join(".local/share/tiller/sessions").is_dir());
}

#[test]
fn json_mode_prints_only_events_on_stdout() {
    let env = env();
    let out = env.tiller(&[
        "exec",
        "--json",
        "--provider",
        "scripted",
        "--model",
        &script(),
        "Make the test pass",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"session_started"));
    assert_eq!(types.last(), Some(&"answer"));
    for t in [
        "turn_started",
        "text_delta",
        "tool_call",
        "tool_result",
        "change_proposed",
        "change_applied",
        "usage",
    ] {
        assert!(types.contains(&t), "no {t} in {types:?}");
    }
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
}

#[test]
fn resume_continues_the_latest_session_of_the_workspace() {
    let env = env();
    let one_turn = env.repo.join("one.json");
    std::fs::write(&one_turn, r#"{"turns":[{"text":"first"}]}"#).unwrap();
    assert!(
        env.tiller(&["exec", "--provider", "scripted", "--model", "one.json", "hello"])
            .status
            .success()
    );
    let out = env.tiller(&["resume", "--provider", "scripted", "--model", "one.json", "again"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&env.tiller(&["sessions", "--json"]).stdout);
    assert_eq!(list.lines().count(), 1, "{list}");
    let row: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(row["messages"], 4, "two tasks, two answers");
}

#[test]
fn errors_say_what_to_do_and_use_distinct_exit_codes() {
    let env = env();
    // With nothing configured the embedded engine's default model is used; here it is absent.
    let out = env.tiller(&["exec", "task"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: ") && stderr.contains("smollm2"), "{stderr}");
    assert!(
        stderr.contains("hint: install the default model with scripts/fetch-model"),
        "{stderr}"
    );

    std::fs::write(env.repo.join("no-retry.toml"), "[profiles.p]\nmax_retries = 0\n").unwrap();
    let out = env.tiller(&[
        "--config",
        "no-retry.toml",
        "--profile",
        "p",
        "exec",
        "--provider",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "-m",
        "x",
        "task",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("hint: is the server running"), "{}", text(&out.stderr));

    let out = env.tiller(&["--provider", "bogus", "exec", "task"]);
    assert_eq!(out.status.code(), Some(2));

    let out = env.tiller(&["resume", "--session", "nope", "task"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("hint: list sessions"));

    std::fs::write(env.repo.join("bad.toml"), "profile = 3").unwrap();
    let out = env.tiller(&["--config", "bad.toml", "exec", "task"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}

#[test]
fn prints_version_and_completions() {
    let env = env();
    let out = env.tiller(&["--version"]);
    assert_eq!(text(&out.stdout).trim(), format!("tiller {}", env!("CARGO_PKG_VERSION")));
    let out = env.tiller(&["completions", "bash"]);
    assert!(text(&out.stdout).contains("_tiller()"));
}

/// The embedded engine end to end, on the tiny random-weight fixture model: every turn must be a
/// well-formed tool call (the grammar sees to it), and the last step must answer.
#[cfg(feature = "llama")]
#[test]
fn exec_runs_the_embedded_engine_to_an_answer() {
    let env = env();
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tiller-llama/tests/fixtures/tiny.gguf")
        .display()
        .to_string();
    let out = env.tiller(&[
        "exec",
        "--json",
        "--provider",
        "llama",
        "--model",
        &model,
        "--max-steps",
        "2",
        "--approval",
        "untrusted",
        "List the files.",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events[0]["provider"], "llama");
    assert_eq!(events.last().unwrap()["type"], "answer");
    let calls: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["type"] == "tool_call").map(|e| &e["call"]).collect();
    assert!(!calls.is_empty());
    for call in calls {
        let args = call["arguments"].as_str().unwrap();
        assert!(
            serde_json::from_str::<serde_json::Value>(args).is_ok_and(|v| v.is_object()),
            "{call}"
        );
    }
}

/// The main job on the default model, as `scripts/quickstart` runs it: SmolLM2-135M fixes the
/// example's bug (the fix coming from candidates its test checked) and answers in words.
#[cfg(feature = "llama")]
#[test]
fn the_default_model_fixes_the_example() {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".local/share"));
    let model = data.join("tiller/models/smollm2.gguf");
    if !model.exists() {
        // scripts/test installs the model and sets this: there, a missing model fails.
        assert!(
            std::env::var_os("TILLER_EXPECT_SMOLLM2").is_none(),
            "{} is missing",
            model.display()
        );
        eprintln!("skipped: {} is missing (scripts/fetch-model smollm2)", model.display());
        return;
    }
    let env = env();
    let task = "The test in test_greet.py fails. Find out why and fix greet.py so that it passes.";
    let model = model.display().to_string();
    let out =
        env.tiller(&["exec", "--provider", "llama", "--model", &model, "--max-steps", "8", task]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("candidates pass"), "{stderr}");
    let test = Command::new("python3").arg("test_greet.py").current_dir(&env.repo).output();
    assert!(test.unwrap().status.success(), "the test passes afterwards: {stderr}");
    let answer = stdout.trim();
    let sentence = answer.starts_with(|c: char| c.is_ascii_uppercase())
        && answer.contains(' ')
        && answer.ends_with('.');
    assert!(sentence && !answer.contains(['<', '{']), "a sentence: {stdout}");
}

#[test]
fn ctrl_c_stops_a_waiting_model_call_and_exits_130() {
    let env = env();
    // An endpoint that accepts the connection and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let _held = std::thread::spawn(move || {
        let connection = listener.accept();
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(connection);
    });
    let child = Command::new(env!("CARGO_BIN_EXE_tiller"))
        .args(["exec", "--provider", "openai", "--base-url", &url, "-m", "x", "task"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", &env.home)
        .current_dir(&env.repo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    assert!(
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("error: cancelled"), "{}", text(&out.stderr));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the call kept waiting");
}

#[test]
fn exec_records_every_call_and_action_and_ledger_reports_them() {
    let env = env();
    let out =
        env.tiller(&["exec", "--provider", "scripted", "--model", &script(), "Make the test pass"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = env.tiller(&["ledger", "--by", "model", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let row: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!((row["key"].as_str(), row["calls"].as_u64()), (Some("hello-script"), Some(5)));
    assert_eq!((row["cost"].as_f64(), row["unpriced_calls"].as_u64()), (Some(0.0), Some(0)));
    let table = text(&env.tiller(&["ledger"]).stdout);
    assert!(table.starts_with("day ") && table.lines().count() == 2, "{table}");

    let csv = text(&env.tiller(&["ledger", "export", "--csv"]).stdout);
    assert_eq!(csv.lines().count(), 1 + 5, "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains(",scripted,,hello-script,"), "{csv}");

    let out = env.tiller(&["ledger", "verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // 5 model calls and 5 tool actions; a local model sends nothing off the machine.
    assert_eq!(text(&out.stdout).trim(), "ok: 10 entries, hash chain intact");
    assert_eq!(text(&env.tiller(&["ledger", "sent"]).stdout), "");

    let db = env.home.join(".local/share/tiller/ledger.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let actions: Vec<serde_json::Value> = conn
        .prepare("SELECT payload FROM entries WHERE kind = 'tool_action' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
        .collect();
    let tools: Vec<&str> = actions.iter().map(|a| a["tool"].as_str().unwrap()).collect();
    assert_eq!(tools, ["read_file", "read_file", "shell", "apply_patch", "shell"]);
    assert_eq!(
        (actions[2]["exit_code"].as_i64(), actions[4]["exit_code"].as_i64()),
        (Some(1), Some(0))
    );
    let patched = &actions[3]["files"][0];
    assert_eq!(patched["path"], "greet.py");
    let after = std::fs::read(env.repo.join("greet.py")).unwrap();
    assert_eq!(patched["after_sha256"].as_str().unwrap(), tiller_ledger::sha256_hex(&after));
    assert_ne!(patched["before_sha256"], patched["after_sha256"]);

    conn.execute_batch("DROP TRIGGER entries_no_update").unwrap();
    // Rewriting history: the failing test run (row 5) made to look like a pass.
    let forged = "replace(payload, '\"exit_code\":1', '\"exit_code\":0')";
    let sql =
        format!("UPDATE entries SET payload = {forged} WHERE id = 5 AND kind = 'tool_action'");
    assert_eq!(conn.execute(&sql, []).unwrap(), 1);
    let out = env.tiller(&["ledger", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("breaks at row 5"), "{}", text(&out.stderr));
}

#[test]
fn endpoints_off_the_machine_need_the_allow_list() {
    let env = env();
    let remote = ["exec", "--provider", "openai", "--base-url", "http://10.1.2.3:9/v1", "-m", "x"];
    let out = env.tiller(&[&remote[..], &["task"]].concat());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("allow = [\"10.1.2.3\"]"), "{}", text(&out.stderr));

    std::fs::write(env.repo.join("c.toml"), "[egress]\nallow = ['10.1.2.3']\nlocal_only = true\n")
        .unwrap();
    let out = env.tiller(&[&["--config", "c.toml"][..], &remote, &["task"]].concat());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("local_only is on"), "{}", text(&out.stderr));
}

/// Run by `egress_goes_only_to_the_allowed_endpoint` inside a network namespace that has only
/// loopback; does nothing when run otherwise.
#[test]
#[ignore = "runs inside the namespace the egress test makes"]
fn egress_child() {
    let Some(out_file) = std::env::var_os("TILLER_EGRESS_CHILD") else {
        return;
    };
    assert!(Command::new("ip").args(["link", "set", "lo", "up"]).status().unwrap().success());
    let (url, _) = http::serve_events(|_, _| http::chat_events(&[http::chat_reply("m", "done")]));
    let addr = url.trim_start_matches("http://").trim_end_matches("/v1").to_string();
    let env = env();
    let trace = env.home.join("connects.log");
    let run = |extra: &[&str]| {
        Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=connect", "-o"])
            .arg(&trace)
            .arg(env!("CARGO_BIN_EXE_tiller"))
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", &env.home)
            .env("HTTPS_PROXY", "http://10.9.9.9:3128")
            .env("http_proxy", "http://10.9.9.9:3128")
            .current_dir(&env.repo)
            .output()
            .unwrap()
    };
    let allowed = run(&["exec", "--provider", "openai", "--base-url", &url, "-m", "m", "hi"]);
    let log_allowed = std::fs::read_to_string(&trace).unwrap();
    let refused =
        run(&["exec", "--provider", "openai", "--base-url", "http://10.1.2.3/v1", "-m", "m", "hi"]);
    let log_refused = std::fs::read_to_string(&trace).unwrap();
    let report = serde_json::json!({
        "addr": addr,
        "allowed": { "code": allowed.status.code(), "stdout": text(&allowed.stdout), "stderr": text(&allowed.stderr), "connects": log_allowed },
        "refused": { "code": refused.status.code(), "stderr": text(&refused.stderr), "connects": log_refused },
    });
    std::fs::write(out_file, report.to_string()).unwrap();
}

/// tiller's own connections, traced: every connect(2) goes to the endpoint it was given, even
/// with proxy variables set; an endpoint off the allow-list is refused before any connect.
#[test]
fn egress_goes_only_to_the_allowed_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--net", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "egress_child", "--ignored", "--test-threads", "1"])
        .env("TILLER_EGRESS_CHILD", &report)
        .status()
        .expect("unshare (util-linux) runs");
    assert!(status.success(), "the namespaced run failed; needs strace and iproute2");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let allowed = &report["allowed"];
    assert_eq!(allowed["code"], 0, "{allowed}");
    assert_eq!(allowed["stdout"], "done\n");
    let addr: std::net::SocketAddr = report["addr"].as_str().unwrap().parse().unwrap();
    let inet: Vec<&str> =
        allowed["connects"].as_str().unwrap().lines().filter(|l| l.contains("AF_INET")).collect();
    assert!(!inet.is_empty(), "{allowed}");
    let want = format!("sin_port=htons({}), sin_addr=inet_addr(\"{}\")", addr.port(), addr.ip());
    for connect in &inet {
        assert!(connect.contains(&want), "unexpected connect: {connect}");
    }
    let refused = &report["refused"];
    assert_eq!(refused["code"], 3, "{refused}");
    assert!(!refused["connects"].as_str().unwrap().contains("AF_INET"), "{refused}");
}

#[test]
fn exec_runs_the_models_commands_in_the_sandbox() {
    let env = env();
    // Outside the workspace and outside /tmp, which the sandbox replaces with its own (cargo's
    // temporary folder is under /tmp when the checkout is).
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let parent = if parent.starts_with("/tmp") { Path::new("/var/tmp") } else { parent };
    let dir = tempfile::tempdir_in(parent).unwrap();
    let outside = dir.path().join("escaped.txt");
    let command = format!("echo hi > {} ; echo inside > ok.txt; echo exit=$?", outside.display());
    let script = serde_json::json!({ "model": "s", "turns": [
        { "tool_calls": [ { "name": "shell", "arguments": { "command": command } } ] },
        { "text": "tried" }
    ]});
    std::fs::write(env.repo.join("s.json"), script.to_string()).unwrap();
    let out = env.tiller(&["exec", "--json", "--provider", "scripted", "-m", "s.json", "go"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events[0]["sandbox"][0].as_str().unwrap().starts_with("tier "), "{}", events[0]);
    let result = events.iter().find(|e| e["type"] == "tool_result").unwrap();
    let output = result["output"].as_str().unwrap();
    assert!(output.contains("Read-only file system") && output.contains("exit=0"), "{output}");
    assert!(!outside.exists());
    assert_eq!(std::fs::read_to_string(env.repo.join("ok.txt")).unwrap(), "inside\n");
}

#[test]
fn review_reports_a_commit_that_copies_a_function() {
    let env = env();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(&env.repo)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    let shout = "def shout(name, times):
    \"\"\"Return `name` in capitals, `times` times.\"\"\"
    words = []
    for i in range(times):
        words.append(name.upper())
    text = \" \".join(words)
    return text + \"!\"
";
    let greet = std::fs::read_to_string(env.repo.join("greet.py")).unwrap();
    std::fs::write(env.repo.join("greet.py"), format!("{greet}\n\n{shout}")).unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "shout"]);
    let whisper = shout
        .replace("shout", "whisper")
        .replace("capitals", "lower case")
        .replace("upper", "lower")
        .replace("words", "parts");
    std::fs::write(env.repo.join("quiet.py"), &whisper).unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "whisper"]);

    let out = env.tiller(&["review", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!((report["added"].as_u64(), report["removed"].as_u64()), (Some(7), Some(0)));
    let dup = &report["duplicates"][0];
    assert_eq!((&dup["path"], &dup["lines"]), (&"quiet.py".into(), &serde_json::json!([1, 7])));
    assert_eq!((&dup["other_path"], &dup["same_shape"]), (&"greet.py".into(), &true.into()));
    assert_eq!(report["longest_function"]["name"], "whisper");

    let repo = env.repo.display().to_string();
    let out = env.tiller(&["-C", &repo, "review", "HEAD"]);
    let stdout = text(&out.stdout);
    let [a, b] = [&dup["other_lines"][0], &dup["other_lines"][1]];
    let copy = format!("quiet.py:1-7 ≈ greet.py:{a}-{b} (same shape)");
    assert!(
        stdout.starts_with("+7 −0 in 1 file · duplicates: ") && stdout.contains(&copy),
        "{stdout}"
    );
    assert!(
        stdout.contains("longest function touched: whisper (quiet.py:1-7, 7 lines)"),
        "{stdout}"
    );
    assert!(stdout.lines().nth(1).is_some_and(|l| l.ends_with("quiet.py")), "{stdout}");

    let out = env.tiller(&["review", "nope.."]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("hint: give a range"), "{}", text(&out.stderr));
}

#[test]
fn a_headless_refusal_to_run_a_command_names_the_unconfined_opt_in() {
    let env = env();
    let script = serde_json::json!({ "model": "s", "turns": [
        { "tool_calls": [ { "name": "shell", "arguments": { "command": "touch made.txt" } } ] },
        { "text": "refused" }
    ]});
    std::fs::write(env.repo.join("s.json"), script.to_string()).unwrap();
    // Nobody is there to approve under `untrusted`: the command is refused, and the model and
    // the user are told the ways out, the unconfined one named for tier C.
    let out = env.tiller(&[
        "exec",
        "--json",
        "--approval",
        "untrusted",
        "--provider",
        "scripted",
        "-m",
        "s.json",
        "go",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("--dangerously-run-unconfined"), "{stdout}");
    assert!(!env.repo.join("made.txt").exists());
    // The opt-in is accepted by flag and config; where the sandbox confines (tiers A and B) it
    // changes nothing, elsewhere the command runs unconfined; either way it runs now.
    std::fs::write(env.repo.join("t.toml"), "dangerously_run_unconfined = true\n").unwrap();
    for opt_in in [&["--dangerously-run-unconfined"][..], &["--config", "t.toml"]] {
        let args = [&["exec", "--provider", "scripted", "-m", "s.json"][..], opt_in, &["go"]];
        let out = env.tiller(&args.concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(env.repo.join("made.txt").exists());
        std::fs::remove_file(env.repo.join("made.txt")).unwrap();
    }
}

#[test]
fn ctrl_c_stops_a_running_command_in_the_sandbox_with_all_it_started() {
    let env = env();
    // A number of seconds no other process on the machine sleeps.
    let secs = format!("95{}", std::process::id());
    let command = format!("sh -c 'sleep {secs} & sleep {secs}'");
    let script = serde_json::json!({ "model": "s", "turns": [
        { "tool_calls": [ { "name": "shell", "arguments": { "command": command } } ] },
        { "text": "never reached" }
    ]});
    std::fs::write(env.repo.join("s.json"), script.to_string()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tiller"))
        .args(["exec", "--provider", "scripted", "-m", "s.json", "sleep"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", &env.home)
        .current_dir(&env.repo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The sleeps run in the sandbox (a PID namespace in tier A) but show in /proc all the same.
    let sleeping = || {
        let wanted = format!("sleep\0{secs}\0");
        let live = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, s)| !s.starts_with('Z')))
        };
        let entries = std::fs::read_dir("/proc").unwrap().flatten();
        let pids = entries.filter_map(|e| e.file_name().into_string().ok());
        pids.filter(|p| p.parse::<u32>().is_ok() && live(p))
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == wanted.as_bytes())
            })
            .count()
    };
    let eventually = |done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        done()
    };
    assert!(eventually(&|| sleeping() == 2), "the sleeps never started");
    assert!(
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(eventually(&|| sleeping() == 0), "a sleep survived Ctrl-C");
}

#[test]
fn every_printing_subcommand_exits_quietly_into_a_closed_pipe() {
    let env = env();
    let exec = ["exec", "--provider", "scripted", "--model", &script(), "Make the test pass"];
    let out = into_closed_pipe(&mut env.command(&exec));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let git = |args: &[&str]| {
        let mut git = Command::new("git");
        git.args(["-c", "user.name=t", "-c", "user.email=t@t"]).args(args);
        assert!(git.current_dir(&env.repo).status().unwrap().success(), "git {args:?}");
    };
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "fix"]);
    let models = env.home.join(".local/share/tiller/models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("broken.gguf"), b"not a model").unwrap();
    let printing: &[&[&str]] = &[
        &["sessions"],
        &["sessions", "--json"],
        &["ledger"],
        &["ledger", "--json"],
        &["ledger", "--by", "model"],
        &["ledger", "verify"],
        &["ledger", "verify", "--json"],
        &["ledger", "export", "--csv"],
        &["doctor"],
        &["doctor", "--json"],
        &["review", "HEAD"],
        &["review", "HEAD", "--json"],
        &["models"],
        &["models", "--json"],
        &["completions", "bash"],
        &["project"],
    ];
    for args in printing {
        // Each prints something when stdout is open.
        let open = env.tiller(args);
        assert!(!open.stdout.is_empty(), "{args:?} printed nothing: {}", text(&open.stderr));
        let out = into_closed_pipe(&mut env.command(args));
        let stderr = text(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert_eq!(out.status.code(), open.status.code(), "{args:?}: {stderr}");
    }
}

#[test]
fn exec_strips_terminal_escapes_from_the_answer_on_a_terminal_only() {
    let env = env();
    let script = env.home.join("escapes.json");
    let answer = "before\u{1b}[2J\u{1b}]0;pwned\u{7}after";
    let turns = serde_json::json!({"model": "m", "turns": [{"text": answer}]});
    std::fs::write(&script, turns.to_string()).unwrap();
    let script = script.display().to_string();
    let args = ["exec", "--provider", "scripted", "--model", &script, "hi"];
    // Piped, the answer is data and passes untouched.
    let out = env.tiller(&args);
    assert_eq!(text(&out.stdout), format!("{answer}\n"), "{}", text(&out.stderr));
    // On a terminal (util-linux `script` gives it one) nothing of the sequences is left.
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let line: Vec<String> =
        [env!("CARGO_BIN_EXE_tiller")].iter().chain(&args).map(|a| quote(a)).collect();
    let out = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", &env.home)
        .current_dir(&env.repo)
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` runs the test on a terminal");
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("beforeafter"), "{shown:?}");
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'), "{shown:?}");
}

#[test]
fn the_root_or_home_folder_is_no_workspace_unless_asked_for() {
    let env = env();
    let exec = ["exec", "--provider", "scripted", "--model", &script(), "Make the test pass"];
    let home = env.home.display().to_string();
    for dir in ["/", home.as_str()] {
        let out = env.tiller(&[&["-C", dir][..], &exec].concat());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("all of it writable to the model"), "{stderr}");
        assert!(stderr.contains("hint:") && stderr.contains("--allow-broad-workspace"), "{stderr}");
    }
    // Asked for, the home folder is a workspace like any other.
    for f in ["greet.py", "test_greet.py"] {
        std::fs::copy(env.repo.join(f), env.home.join(f)).unwrap();
    }
    let out = env.tiller(&[&["-C", &home, "--allow-broad-workspace"][..], &exec].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn special_files_named_on_the_command_line_are_refused_at_once() {
    let env = env();
    let fifo = env.home.join("pipe.gguf");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let fifo = fifo.display().to_string();
    // Nobody writes to the pipe, so reading it would wait for ever; /dev/zero never ends.
    let runs: &[&[&str]] = &[
        &["--config", &fifo, "exec", "hi"],
        &["--config", "/dev/zero", "exec", "hi"],
        &["--provider", "scripted", "--model", &fifo, "exec", "hi"],
        &["--provider", "scripted", "--model", "/dev/zero", "exec", "hi"],
        &["--provider", "llama", "--model", &fifo, "exec", "hi"],
    ];
    for args in runs {
        let out = env.tiller(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains("not a regular file"), "{args:?}: {stderr}");
    }
}

/// A loopback server that answers the n-th request with the n-th recorded response (a fixture
/// under tests/fixtures, sent as an event stream) and keeps the request bodies.
fn replay(fixtures: &[&str]) -> (String, http::Received) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let bodies: Vec<String> =
        fixtures.iter().map(|f| std::fs::read_to_string(dir.join(f)).unwrap()).collect();
    http::serve_events(move |n, _| bodies[n.min(bodies.len() - 1)].clone())
}

/// An Anthropic session (recorded responses replayed on loopback): each request marks the
/// prompt-cache breakpoints, and the ledger shows the cache reads they earned.
#[test]
fn an_anthropic_session_reads_its_prompt_from_the_cache_and_the_ledger_shows_it() {
    let env = env();
    let (url, received) = replay(&["anthropic_read.sse", "anthropic_answer.sse"]);
    let model = ["--provider", "anthropic", "--base-url", &url, "-m", "claude-sonnet-4-5"];
    let out = env.tiller(&[&["exec"][..], &model, &["Why does the test fail?"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "greet returns \"Hello\" without the name.\n");

    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2);
    for body in received.iter() {
        assert_eq!(body["max_tokens"], 32_000);
        assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
        let tools = body["tools"].as_array().unwrap();
        assert_eq!(tools.last().unwrap()["cache_control"]["type"], "ephemeral");
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            last["content"].as_array().unwrap().last().unwrap()["cache_control"]["type"],
            "ephemeral"
        );
    }

    let out = env.tiller(&["ledger", "--by", "model"]);
    let table = text(&out.stdout);
    println!("{table}");
    let out = env.tiller(&["ledger", "--by", "model", "--json"]);
    let row: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(row["calls"], 2, "{row}");
    // 9 + 3412 written, then 7 + 121 + 3412 with 3412 read from the cache.
    assert_eq!(
        (row["prompt_tokens"].as_u64(), row["cached_tokens"].as_u64()),
        (Some(6961), Some(3412))
    );
    assert!(table.lines().nth(1).unwrap().contains(" 49%"), "{table}");
}

fn tiny_gguf() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tiller-llama/tests/fixtures/tiny.gguf"),
    )
    .unwrap()
}

/// A loopback server that behaves like Hugging Face's file endpoints: the API's file listing
/// (with each LFS file's sha256), `resolve` redirecting to a CDN host (`localhost` here), and a
/// CDN that cuts the first whole-file transfer of each file half-way and answers ranges. Every
/// file holds `bytes`; `bad-Q5_K_M.gguf` is listed with a wrong sha256. The requests are kept
/// as `PATH range=RANGE`.
fn hub_server(bytes: Vec<u8>) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = std::sync::Arc::clone(&seen);
    let sha = tiller_ledger::sha256_hex(&bytes);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let path = request.split(' ').nth(1).unwrap_or_default().to_string();
            let mut range = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                    range = v.trim().to_string();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let cut_before = log.lock().unwrap().iter().any(|r| r.starts_with(&format!("{path} ")));
            log.lock().unwrap().push(format!("{path} range={range}"));
            let json = |body: String| {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
            };
            let reply = if path == "/api/models/org/repo/tree/main?recursive=true" {
                let file = |name: &str, oid: &str| {
                    format!(
                        r#"{{"type":"file","oid":"0f1e","size":{},"path":"{name}","lfs":{{"oid":"{oid}","size":{},"pointerSize":135}}}}"#,
                        bytes.len(),
                        bytes.len()
                    )
                };
                json(format!(
                    r#"[{{"type":"file","oid":"1a2b","size":52,"path":"README.md"}},{},{},{}]"#,
                    file("tiny-Q8_0.gguf", &sha),
                    file("tiny-Q4_K_M.gguf", &sha),
                    file("bad-Q5_K_M.gguf", &"0".repeat(64)),
                ))
            } else if path == "/api/models/org/many/tree/main?recursive=true" {
                json(
                    r#"[{"type":"file","path":"m-Q8_0.gguf"},{"type":"file","path":"m-F16.gguf"}]"#
                        .into(),
                )
            } else if let Some(file) = path.strip_prefix("/org/repo/resolve/main/") {
                format!(
                    "HTTP/1.1 302 Found\r\nlocation: http://localhost:{port}/cdn/{file}\r\n\
                     x-linked-etag: \"{sha}\"\r\ncontent-length: 0\r\n\r\n"
                )
            } else if path.starts_with("/cdn/") {
                let start: usize = range
                    .strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .map_or(0, |s| s.parse().unwrap());
                let head = if range.is_empty() {
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", bytes.len())
                } else {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {start}-{}/{}\r\ncontent-length: {}\r\n\r\n",
                        bytes.len() - 1,
                        bytes.len(),
                        bytes.len() - start
                    )
                };
                // The first whole-file transfer of each file breaks off half-way.
                let end =
                    if range.is_empty() && !cut_before { bytes.len() / 2 } else { bytes.len() };
                let mut reply = head.into_bytes();
                reply.extend_from_slice(&bytes[start..end]);
                let _ = stream.write_all(&reply);
                continue;
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_string()
            };
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (format!("http://127.0.0.1:{port}"), seen)
}

/// `tiller models pull hf:…` against a loopback hub: the Q4_K_M file is picked, the redirect
/// to the CDN followed, the transfer cut half-way resumed with a range, the sha256 checked
/// against the listing, and the model is then `--model NAME`. A part left by an earlier run is
/// resumed; a wrong sha256 is refused and nothing kept.
#[cfg(feature = "llama")]
#[test]
fn pull_resumes_checks_and_names_the_model() {
    let env = env();
    let bytes = tiny_gguf();
    let (hub, seen) = hub_server(bytes.clone());
    let models = env.home.join(".local/share/tiller/models");
    let pull = |what: &str| {
        env.command(&["models", "pull", what]).env("HF_ENDPOINT", &hub).output().unwrap()
    };
    let out = pull("hf:org/repo");
    assert!(out.status.success(), "{}", text(&out.stderr));
    eprintln!("{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "tiny-Q4_K_M\n");
    assert!(text(&out.stderr).contains("matches the hub's listing"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(models.join("tiny-Q4_K_M.gguf")).unwrap(), bytes);
    assert!(!models.join("tiny-Q4_K_M.gguf.part").exists());
    let cdn: Vec<String> =
        seen.lock().unwrap().iter().filter(|r| r.starts_with("/cdn/")).cloned().collect();
    let half = bytes.len() / 2;
    assert_eq!(
        cdn,
        [
            "/cdn/tiny-Q4_K_M.gguf range=".to_string(),
            format!("/cdn/tiny-Q4_K_M.gguf range=bytes={half}-")
        ]
    );
    let list = text(&env.tiller(&["models"]).stdout);
    assert!(list.starts_with("tiny-Q4_K_M "), "{list}");

    // What an earlier run left is resumed from where it ended.
    std::fs::write(models.join("tiny-Q8_0.gguf.part"), &bytes[..1000]).unwrap();
    let out = pull("hf:org/repo/tiny-Q8_0.gguf");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(models.join("tiny-Q8_0.gguf")).unwrap(), bytes);
    assert_eq!(seen.lock().unwrap().last().unwrap(), "/cdn/tiny-Q8_0.gguf range=bytes=1000-");

    let out = pull("hf:org/repo/bad-Q5_K_M.gguf");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not the 0000"), "{}", text(&out.stderr));
    assert!(
        !models.join("bad-Q5_K_M.gguf").exists() && !models.join("bad-Q5_K_M.gguf.part").exists()
    );

    let out = pull("hf:org/many");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("name one as hf:org/many/FILE: m-Q8_0.gguf, m-F16.gguf"),
        "{}",
        text(&out.stderr)
    );
    let out = pull("org/many");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// `tiller models` shows per file its architecture, parameters, quantisation, context (in use
/// and trained), tool-call format, memory and whether the template takes tools; a file that
/// is no model is listed with the reason. Table and JSON.
#[cfg(feature = "llama")]
#[test]
fn models_lists_what_each_file_is_and_needs() {
    let env = env();
    let models = env.home.join(".local/share/tiller/models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("tiny.gguf"), tiny_gguf()).unwrap();
    std::fs::write(models.join("broken.gguf"), b"not a model").unwrap();
    let out = env.tiller(&["models"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout).replace(&models.display().to_string(), "[MODELS]");
    assert_eq!(
        listed,
        "broken           -               - -        ctx -             calls -           needs -         unusable: [MODELS]/broken.gguf is not a GGUF model (no GGUF magic)\n\
         tiny             llama        140K F16      ctx 8192/8192     calls tiller      needs 0.0 GiB   template knows no tools\n"
    );
    let out = env.tiller(&["models", "--json"]);
    let rows: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let tiny = &rows[1];
    assert_eq!(
        (&tiny["architecture"], &tiny["parameters"], &tiny["tool_format"], &tiny["memory_bytes"]),
        (&"llama".into(), &139712.into(), &"tiller".into(), &2390176.into())
    );
    assert_eq!(rows[0]["supported"], false);
}

/// A model pulled with Ollama runs in-process as `ollama:NAME:TAG`, read from Ollama's store
/// where it is, and `tiller models` lists it.
#[cfg(feature = "llama")]
#[test]
fn models_pulled_with_ollama_are_listed_and_run_in_place() {
    let env = env();
    let store = env.home.join("ollama-store");
    let bytes = tiny_gguf();
    let sha = tiller_ledger::sha256_hex(&bytes);
    let manifests = store.join("manifests/registry.ollama.ai/library/qwen2.5-coder");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::create_dir_all(store.join("blobs")).unwrap();
    std::fs::write(store.join(format!("blobs/sha256-{sha}")), &bytes).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": format!("sha256:{}", "c".repeat(64)), "size": 487},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": format!("sha256:{sha}"), "size": bytes.len()},
            {"mediaType": "application/vnd.ollama.image.template", "digest": format!("sha256:{}", "d".repeat(64)), "size": 1482},
        ],
    });
    std::fs::write(manifests.join("7b"), manifest.to_string()).unwrap();
    // A manifest whose blob is gone is listed with the reason.
    let broken = manifest.to_string().replace(&sha, &"e".repeat(64));
    std::fs::write(manifests.join("broken"), broken).unwrap();

    let tiller = |args: &[&str]| env.command(args).env("OLLAMA_MODELS", &store).output().unwrap();
    let out = tiller(&["models"]);
    let list = text(&out.stdout);
    println!("{list}");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("ollama:qwen2.5-coder:7b ") && lines[0].contains("llama"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("ollama:qwen2.5-coder:broken ") && lines[1].contains("is missing"),
        "{list}"
    );

    let run =
        ["exec", "--provider", "llama", "--model", "ollama:qwen2.5-coder:7b", "--max-steps", "2"];
    let out = tiller(&[&run[..], &["List the files."]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!env.home.join(".local/share/tiller/models").exists(), "nothing is copied");

    let out = tiller(&["exec", "--provider", "llama", "--model", "ollama:qwen3:8b", "hi"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("installed: ollama:qwen2.5-coder:7b"),
        "{}",
        text(&out.stderr)
    );
}

/// With `--provider openai`, `tiller models` lists what the endpoint serves.
#[test]
fn models_lists_an_endpoints_models() {
    let env = env();
    let (url, _) = replay(&["openai_models.json"]);
    let out = env.tiller(&["models", "--provider", "openai", "--base-url", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "qwen2.5-coder:7b\nllama3.2:latest\n");
}
