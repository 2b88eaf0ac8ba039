//! The interactive front end in a real terminal: tmux runs `tiller` on a scripted model, keys
//! are sent as a user types them, and the screen and the repository are checked; then
//! `tiller undo` takes the step back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A tmux server of the test's own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend(keys);
        assert!(self.run(&args).status.success());
    }

    /// Waits until the screen shows `text`.
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no {text:?} on screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(repo).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const PATCH: &str = "*** Begin Patch\n*** Update File: greet.py\n@@ def greet(name):\n-    return \"Hello\"\n+    return f\"Hello, {name}\"\n@@ def bye(name):\n-    return \"Bye\"\n+    return f\"Bye, {name}\"\n*** End Patch\n";

fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let (repo, home) = (dir.join("repo"), dir.join("home"));
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let code =
        "def greet(name):\n    return \"Hello\"\n\n\n\n\n\n\ndef bye(name):\n    return \"Bye\"\n";
    std::fs::write(repo.join("greet.py"), code).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]);
    let script = serde_json::json!({ "model": "tui-script", "turns": [
        { "text": "Fixing both functions.\n", "tool_calls": [ { "name": "apply_patch",
          "arguments": { "patch": PATCH, "message": "Greet by name" } } ] },
        { "text": "Done." }
    ]});
    std::fs::write(dir.join("script.json"), script.to_string()).unwrap();
    (repo, home)
}

/// Starts `tiller ARGS` on `dir/script.json` in `repo`, in a tmux session of the test's own,
/// 100 columns wide, with every byte it writes to the terminal copied to `dir/bytes.out`.
fn launch(dir: &Path, repo: &Path, home: &Path, name: &str, args: &str) -> Tmux {
    let tmux = Tmux { socket: format!("tiller-test-{}-{name}", std::process::id()) };
    let command = format!(
        "env -i PATH=\"$PATH\" HOME={home} TERM=xterm-256color {tiller} {args} --provider scripted -m {script}; echo EXITED $?; sleep 60",
        home = home.display(),
        tiller = env!("CARGO_BIN_EXE_tiller"),
        script = dir.join("script.json").display(),
    );
    let repo_dir = repo.display().to_string();
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        "-c",
        &repo_dir,
        &command,
    ]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    let pipe = format!("cat >> {}", dir.join("bytes.out").display());
    assert!(tmux.run(&["pipe-pane", "-o", "-t", "t", &pipe]).status.success());
    tmux
}

#[test]
fn review_two_hunks_in_tmux_commit_the_accepted_one_then_undo() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, home) = setup(dir.path());
    let tmux = launch(dir.path(), &repo, &home, "a", "");
    tmux.wait_for("scripted/tui-script");
    tmux.keys(&["fix the greetings", "Enter"]);
    let screen = tmux.wait_for("greet.py hunk 1/2");
    assert!(screen.contains("+     return f\"Hello, {name}\""), "{screen}");
    assert!(screen.contains("step: +2 −2 in 1 file"), "the holdability line: {screen}");
    tmux.keys(&["y"]);
    tmux.wait_for("greet.py hunk 2/2");
    tmux.keys(&["n"]);
    tmux.wait_for("commit message › Greet by name");
    tmux.keys(&["Enter"]);
    tmux.wait_for("note for the model");
    tmux.keys(&["bye stays as it is", "Enter"]);
    let screen = tmux.wait_for("Done.");
    assert!(screen.contains("committed") && screen.contains("Greet by name"), "{screen}");
    tmux.keys(&["C-c"]);
    tmux.keys(&["C-c"]);
    tmux.wait_for("EXITED 0");

    // One commit, with only the accepted hunk.
    let log = git(&repo, &["log", "--format=%s"]);
    assert_eq!(log, "Greet by name\ninit\n");
    let diff = git(&repo, &["show", "--format=", "HEAD"]);
    assert!(diff.contains("+    return f\"Hello, {name}\""), "{diff}");
    assert!(!diff.contains("Bye, {name}"), "{diff}");
    assert!(git(&repo, &["status", "--porcelain"]).is_empty());

    // Undo: the commit goes, and the session is back to before the model's edit.
    let undo = Command::new(env!("CARGO_BIN_EXE_tiller"))
        .arg("undo")
        .env("HOME", &home)
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(undo.status.success(), "{}", String::from_utf8_lossy(&undo.stderr));
    assert!(String::from_utf8_lossy(&undo.stdout).contains("undid"));
    assert_eq!(git(&repo, &["log", "--format=%s"]), "init\n");
    assert!(std::fs::read_to_string(repo.join("greet.py")).unwrap().contains("return \"Hello\""));
    let sessions = Command::new(env!("CARGO_BIN_EXE_tiller"))
        .args(["sessions", "--json"])
        .env("HOME", &home)
        .output()
        .unwrap();
    let row: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&sessions.stdout).trim()).unwrap();
    assert_eq!(row["messages"], 1, "only the task is left: {row}");
}

/// The text of the one session file in `sessions` (beside it lies its lock file).
fn session_log(sessions: &Path) -> String {
    let entries = std::fs::read_dir(sessions).unwrap().map(|e| e.unwrap().path());
    let logs: Vec<PathBuf> =
        entries.filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    std::fs::read_to_string(&logs[0]).unwrap()
}

fn captured(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("bytes.out")).unwrap_or_default()
}

/// Waits until the terminal has had no output for `quiet`, and returns how many bytes it had.
fn settle(dir: &Path, quiet: Duration) -> usize {
    let start = Instant::now();
    let mut last = (captured(dir).len(), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = captured(dir).len();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return now;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the terminal never went quiet");
    }
}

#[test]
fn pasted_lines_are_one_task_the_idle_screen_writes_nothing_and_resizing_never_clears() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, home) = setup(dir.path());
    let script = serde_json::json!({ "model": "tui-script", "turns": [
        { "text": "Read all three lines of the task. This answer is long enough to wrap on a narrow terminal, word by word.\n" }
    ]});
    std::fs::write(dir.path().join("script.json"), script.to_string()).unwrap();
    let tmux = launch(dir.path(), &repo, &home, "paste", "");
    tmux.wait_for("scripted/tui-script");

    // Idle: once drawn, nothing more is written while nothing changes.
    let before = settle(dir.path(), Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(1500));
    let idle = captured(dir.path()).len() - before;
    assert_eq!(idle, 0, "bytes written in 1.5 s of idle");

    // A pasted block of three lines stays one task.
    std::fs::write(dir.path().join("paste.txt"), "first line\nsecond line\nthird line").unwrap();
    let paste = dir.path().join("paste.txt").display().to_string();
    assert!(tmux.run(&["load-buffer", "-b", "p", &paste]).status.success());
    assert!(tmux.run(&["paste-buffer", "-p", "-b", "p", "-t", "t"]).status.success());
    tmux.keys(&["Enter"]);
    tmux.wait_for("three lines of the task");
    let sessions = home.join(".local/share/tiller/sessions");
    let log = session_log(&sessions);
    assert!(log.contains("first line\\nsecond line\\nthird line"), "{log}");

    // Narrower: no full-screen clear, and the transcript is still on screen.
    settle(dir.path(), Duration::from_millis(300));
    assert!(tmux.run(&["resize-window", "-t", "t", "-x", "40"]).status.success());
    settle(dir.path(), Duration::from_millis(300));
    let bytes = captured(dir.path());
    let clears = bytes.windows(4).filter(|w| *w == b"\x1b[2J").count();
    assert_eq!(clears, 0, "full-screen clears");
    let screen = tmux.screen();
    assert!(screen.contains("three lines of the"), "{screen}");
    tmux.keys(&["C-c"]);
    tmux.keys(&["C-c"]);
    tmux.wait_for("EXITED 0");
}

#[test]
fn slash_commands_mentions_history_and_resume_in_tmux() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, home) = setup(dir.path());
    let script = serde_json::json!({ "model": "tui-script", "turns": [
        { "text": "Looked at it." }, { "text": "Looked again." }, { "text": "Resumed fine." }
    ]});
    std::fs::write(dir.path().join("script.json"), script.to_string()).unwrap();
    let tmux = launch(dir.path(), &repo, &home, "slash", "");
    tmux.wait_for("scripted/tui-script");

    tmux.keys(&["/frob", "Enter"]);
    tmux.wait_for("unknown command /frob; /help lists them");
    // Tab completes the mention; its content goes with the task.
    tmux.keys(&["explain @gr", "Tab"]);
    tmux.wait_for("explain @greet.py");
    tmux.keys(&["please", "Enter"]);
    tmux.wait_for("attached @greet.py (10 lines)");
    tmux.wait_for("Looked at it.");
    // Up recalls it; the cursor goes home and the line is edited there.
    tmux.keys(&["Up"]);
    tmux.wait_for("› explain @greet.py please");
    tmux.keys(&["C-a", "re-", "Enter"]);
    tmux.wait_for("Looked again.");
    let sessions = home.join(".local/share/tiller/sessions");
    let log = session_log(&sessions);
    assert!(
        log.contains("explain @greet.py please\\n\\ngreet.py (lines 1-10):\\ndef greet"),
        "{log}"
    );
    assert!(log.contains("re-explain @greet.py please"), "{log}");

    tmux.keys(&["/cost", "Enter"]);
    tmux.wait_for("this session: 2 calls (0 failed)");
    // The third turn of the script is the summary.
    tmux.keys(&["/compact", "Enter"]);
    tmux.wait_for("compacted: ");
    tmux.keys(&["/undo", "Enter"]);
    tmux.wait_for("the last commit is not a step tiller made");
    tmux.keys(&["/quit", "Enter"]);
    tmux.wait_for("EXITED 0");
    tmux.run(&["kill-server"]);

    // The front end continues the session, showing what came before.
    let script =
        serde_json::json!({ "model": "tui-script", "turns": [{ "text": "Resumed fine." }]});
    std::fs::write(dir.path().join("script.json"), script.to_string()).unwrap();
    let tmux = launch(dir.path(), &repo, &home, "slash2", "-c");
    let screen = tmux.wait_for("resumed; the conversation so far:");
    // Compacted: the first task (with the summary) and the last turn.
    assert!(screen.contains("› explain @greet.py please\nLooked again."), "{screen}");
    tmux.keys(&["/resume", "Enter"]);
    tmux.wait_for("no other session in this workspace");
    tmux.keys(&["and now?", "Enter"]);
    tmux.wait_for("Resumed fine.");
}

#[test]
fn a_sed_run_by_the_shell_tool_is_reviewed_hunk_by_hunk_in_tmux() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, home) = setup(dir.path());
    let sed =
        "sed -i -e 's/\"Hello\"/f\"Hello, {name}\"/' -e 's/\"Bye\"/f\"Bye, {name}\"/' greet.py";
    let script = serde_json::json!({ "model": "tui-script", "turns": [
        { "tool_calls": [ { "name": "shell", "arguments": { "command": sed } } ] },
        { "text": "Done." }
    ]});
    std::fs::write(dir.path().join("script.json"), script.to_string()).unwrap();
    let tmux = launch(dir.path(), &repo, &home, "sed", "");
    tmux.wait_for("scripted/tui-script");
    tmux.keys(&["fix the greetings with sed", "Enter"]);
    // The command ran; what it changed is held for review as two hunks.
    let screen = tmux.wait_for("greet.py hunk 1/2");
    assert!(screen.contains("+     return f\"Hello, {name}\""), "{screen}");
    tmux.keys(&["y"]);
    tmux.wait_for("greet.py hunk 2/2");
    tmux.keys(&["n"]);
    tmux.wait_for("commit message › Edit greet.py");
    tmux.keys(&["Enter"]);
    tmux.wait_for("note for the model");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("Done.");
    assert!(screen.contains("committed"), "{screen}");
    tmux.keys(&["C-c"]);
    tmux.keys(&["C-c"]);
    tmux.wait_for("EXITED 0");

    // The accepted hunk is the step's commit; the rejected one was undone on disk.
    assert_eq!(git(&repo, &["log", "--format=%s"]), "Edit greet.py\ninit\n");
    let diff = git(&repo, &["show", "--format=", "HEAD"]);
    assert!(diff.contains("+    return f\"Hello, {name}\""), "{diff}");
    assert!(!diff.contains("Bye, {name}"), "{diff}");
    assert!(git(&repo, &["status", "--porcelain"]).is_empty());
    let code = std::fs::read_to_string(repo.join("greet.py")).unwrap();
    assert!(code.contains("return \"Bye\"") && code.contains("Hello, {name}"), "{code}");
}

#[test]
fn model_switches_to_a_configured_profile_in_tmux() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, home) = setup(dir.path());
    let script = serde_json::json!({ "model": "tui-script", "turns": [{ "text": "First model." }]});
    std::fs::write(dir.path().join("script.json"), script.to_string()).unwrap();
    let other = serde_json::json!({ "model": "other-script", "context_length": 4096,
        "turns": [{ "text": "Second model here." }]});
    let other_path = dir.path().join("other.json");
    std::fs::write(&other_path, other.to_string()).unwrap();
    let config = dir.path().join("config.toml");
    let profile =
        format!("[profiles.other]\nprovider = 'scripted'\nmodel = '{}'\n", other_path.display());
    std::fs::write(&config, profile).unwrap();
    let tmux = launch(dir.path(), &repo, &home, "model", &format!("--config {}", config.display()));
    tmux.wait_for("scripted/tui-script");
    tmux.keys(&["hello", "Enter"]);
    tmux.wait_for("First model.");

    tmux.keys(&["/model", "Enter"]);
    tmux.wait_for("/model NAME switches to one of: other");
    tmux.keys(&["/model ot", "Tab"]);
    tmux.wait_for("› /model other");
    tmux.keys(&["Enter"]);
    tmux.wait_for("model: scripted/other-script (on this machine; context 4096 tokens)");
    // No such profile: a local model, and none is installed (or the build has no engine).
    tmux.keys(&["/model nowhere", "Enter"]);
    let screen = tmux.wait_for("✗ ");
    assert!(
        screen.contains("✗ no model named 'nowhere'") || screen.contains("no embedded llama.cpp"),
        "{screen}"
    );
    tmux.keys(&["and you?", "Enter"]);
    let screen = tmux.wait_for("Second model here.");
    assert!(screen.contains("other-script"), "the status line names the new model:\n{screen}");
    tmux.keys(&["C-c"]);
    tmux.keys(&["C-c"]);
    tmux.wait_for("EXITED 0");
    let log = session_log(&home.join(".local/share/tiller/sessions"));
    assert!(log.contains("Second model here."), "{log}");
}
