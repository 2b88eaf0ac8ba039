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

/// Starts `tiller` on `dir/script.json` in `repo`, in a tmux session of the test's own.
fn launch(dir: &Path, repo: &Path, home: &Path, name: &str) -> Tmux {
    let tmux = Tmux { socket: format!("tiller-test-{}-{name}", std::process::id()) };
    let command = format!(
        "env -i PATH=\"$PATH\" HOME={home} TERM=xterm-256color {tiller} --provider scripted -m {script}; echo EXITED $?; sleep 60",
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
    tmux
}

#[test]
fn review_two_hunks_in_tmux_commit_the_accepted_one_then_undo() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, home) = setup(dir.path());
    let tmux = launch(dir.path(), &repo, &home, "a");
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
    let tmux = launch(dir.path(), &repo, &home, "sed");
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
