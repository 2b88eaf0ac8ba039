//! `tiller acp` driven by a real editor-side peer: the reference TypeScript SDK's client
//! (`@agentclientprotocol/sdk`, installed by `scripts/test` under `target/peers/acp`) runs
//! `tests/acp/client.mjs` against scripted models (`tests/acp/*.script.json`, and the two the
//! test writes for the client's terminal). It skips where node or the SDK is missing, unless
//! `TILLER_EXPECT_ACP` is set (as `scripts/test` sets it), where that fails; the terminal's part
//! needs tier A, under `TILLER_SANDBOX_EXPECT_TIER=A` too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/scratch.rs"]
mod scratch;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const NOTES: &str = "one\ntwo\nthree\nfour\n";

/// The folder the SDK is installed in, when node and the SDK are there.
fn sdk() -> Option<PathBuf> {
    let dir = std::env::var_os("TILLER_ACP_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peers/acp"));
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let installed = dir.join("node_modules/@agentclientprotocol/sdk/package.json").is_file();
    if node && installed {
        return Some(dir);
    }
    let why = format!("node found: {node}; SDK in {}: {installed}", dir.display());
    assert!(std::env::var_os("TILLER_EXPECT_ACP").is_none(), "TILLER_EXPECT_ACP is set but {why}");
    eprintln!("skipped: {why} (scripts/test installs it)");
    None
}

/// Whether tier A is in force, where the editor's terminal runs commands; fails if
/// `TILLER_SANDBOX_EXPECT_TIER=A` (as `scripts/test` sets) and it is not.
fn tier_a() -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_tiller")).args(["doctor", "--json"]).output();
    let doctor: Value = serde_json::from_slice(&out.unwrap().stdout).unwrap();
    let expected = std::env::var("TILLER_SANDBOX_EXPECT_TIER").is_ok_and(|t| t == "A");
    assert!(doctor["tier"] == "A" || !expected, "tier A expected: {}", doctor["summary"]);
    doctor["tier"] == "A"
}

/// A model script at `path` that calls the shell tool with `arguments`, then answers.
fn write_script(path: &Path, arguments: Value) {
    let call = serde_json::json!({ "name": "shell", "arguments": arguments });
    let turns = serde_json::json!([{ "tool_calls": [call] }, { "text": "Done." }]);
    let model = serde_json::json!({ "model": "acp-script", "turns": turns });
    std::fs::write(path, model.to_string()).unwrap();
}

/// Whether a process `sleep SECS` is still there, after up to a minute's wait for it to go.
fn still_sleeping(secs: &str) -> bool {
    let wanted = format!("sleep\0{secs}\0");
    let found = || {
        let mut procs = std::fs::read_dir("/proc").unwrap().flatten();
        procs.any(|p| std::fs::read(p.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes()))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while found() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    found()
}

/// The updates of one session, by their `sessionUpdate` kind.
fn kinds(updates: &Value) -> Vec<&str> {
    updates.as_array().unwrap().iter().map(|u| u["sessionUpdate"].as_str().unwrap()).collect()
}

#[test]
fn an_editor_drives_sessions_through_the_reference_client() {
    let Some(sdk) = sdk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (home, work) = (dir.path().join("home"), dir.path().join("work"));
    for name in ["allow", "deny", "cancel", "hunks", "command", "terminal", "stop"] {
        std::fs::create_dir_all(work.join(name)).unwrap();
        std::fs::write(work.join(name).join("notes.txt"), NOTES).unwrap();
    }
    // The terminal's command writes inside its workspace and tries a real folder outside it
    // (tier A has a /tmp of its own).
    let outside = scratch::outside_tmp();
    let escaped = outside.path().join("escaped.txt");
    let script =
        format!("echo from-the-terminal; echo in > inside.txt; echo out > {}", escaped.display());
    write_script(&work.join("terminal.script.json"), serde_json::json!({ "command": script }));
    // A number of seconds no other process on the machine sleeps.
    let secs = format!("97{}", std::process::id());
    // Where it runs in tiller (not tier A), nothing cancels it: its time limit ends it.
    let sleep = serde_json::json!({ "command": format!("sleep {secs}"), "timeout_secs": 30 });
    write_script(&work.join("stop.script.json"), sleep);
    std::fs::create_dir_all(&home).unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/acp");
    let out = Command::new("node")
        .arg(here.join("client.mjs"))
        .args([Path::new(env!("CARGO_BIN_EXE_tiller")), &work])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", &home)
        .env("TILLER_ACP_SDK", sdk.canonicalize().unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes = |name: &str| std::fs::read_to_string(work.join(name).join("notes.txt")).unwrap();
    let (work1, hunks) = (&seen["work"], &seen["hunks"]);
    assert_eq!(work1["init"]["agentCapabilities"]["loadSession"], true, "{seen}");
    assert_eq!(work1["exit"], 0, "{stderr}");

    // Allowed: written through the editor, shown as a diff, the call completed.
    let allow = &work1["allow"];
    assert_eq!(allow["stopReason"], "end_turn");
    assert_eq!(notes("allow"), "ONE\ntwo\nthree\nFOUR\n");
    let updates = &work1["seen"]["updates"][allow["sessionId"].as_str().unwrap()];
    let kinds_allow = kinds(updates);
    assert!(kinds_allow.starts_with(&["agent_message_chunk"]), "{kinds_allow:?}");
    assert!(kinds_allow.contains(&"tool_call"), "{kinds_allow:?}");
    let done = updates.as_array().unwrap().iter().find(|u| u["status"] == "completed").unwrap();
    assert_eq!(done["content"][0]["type"], "diff", "{done}");
    assert_eq!(done["content"][0]["newText"], "ONE\ntwo\nthree\nFOUR\n");
    let allow_path = work.join("allow/notes.txt").canonicalize().unwrap();
    let writes = work1["seen"]["writes"].as_array().unwrap();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(Path::new(writes[0].as_str().unwrap()), allow_path);
    let permission = &work1["seen"]["permissions"][0];
    assert_eq!(permission["toolCall"]["kind"], "edit");
    assert_eq!(permission["toolCall"]["content"][0]["oldText"], NOTES);

    // Denied: nothing written, the call failed, the model went on to its answer.
    let deny = &work1["deny"];
    assert_eq!(deny["stopReason"], "end_turn");
    assert_eq!(notes("deny"), NOTES);
    let updates = &work1["seen"]["updates"][deny["sessionId"].as_str().unwrap()];
    assert!(updates.as_array().unwrap().iter().any(|u| u["status"] == "failed"), "{updates}");

    // Cancelled at the first streamed word: no edit proposed, the prompt says so.
    let cancel = &work1["cancel"];
    assert_eq!(cancel["stopReason"], "cancelled");
    assert_eq!(notes("cancel"), NOTES);
    assert_eq!(work1["seen"]["permissions"].as_array().unwrap().len(), 2);

    // Loaded in a new process: the history replayed, the task first, the edit with its result.
    let replay = &seen["loaded"]["seen"]["updates"][allow["sessionId"].as_str().unwrap()];
    let kinds_replay = kinds(replay);
    let expected = ["user_message_chunk", "agent_message_chunk", "tool_call", "tool_call_update"];
    assert_eq!(kinds_replay, [&expected[..], &["agent_message_chunk"]].concat(), "{replay}");
    assert!(replay[0]["content"]["text"].as_str().unwrap().starts_with("Capitalise"));
    assert_eq!(replay[2]["title"], "apply_patch");
    assert_eq!(replay[3]["status"], "completed");
    assert_eq!(replay[4]["content"]["text"], "Done.");

    // Hunk by hunk: one question per hunk, the first taken, the second left.
    assert_eq!(hunks["stopReason"], "end_turn");
    assert_eq!(hunks["seen"]["permissions"].as_array().unwrap().len(), 2);
    assert_eq!(notes("hunks"), "ONE\ntwo\nthree\nfour\n");

    // A command the policy asks about, rejected: not run, the call failed.
    let command = &seen["command"];
    assert_eq!(command["stopReason"], "end_turn");
    let asked = &command["seen"]["permissions"];
    assert_eq!(asked[0]["toolCall"]["title"], "Run `touch made-by-command`", "{asked}");
    assert_eq!(asked[0]["toolCall"]["kind"], "execute");
    assert!(!work.join("command/made-by-command").exists());
    let updates = &command["seen"]["updates"][command["sessionId"].as_str().unwrap()];
    assert!(updates.as_array().unwrap().iter().any(|u| u["status"] == "failed"), "{updates}");

    let terminal = &seen["terminal"];
    let terminal_id = terminal["sessionId"].as_str().unwrap();
    assert_eq!(terminal["stopReason"], "end_turn", "{stderr}");
    let stop = &seen["stop"];
    let stop_id = stop["sessionId"].as_str().unwrap();

    // Every call in the ledger: the edits as actions of their sessions.
    let db = home.join(".local/share/tiller/ledger.sqlite");
    let conn = rusqlite::Connection::open(db).unwrap();
    let sessions: Vec<String> = conn
        .prepare("SELECT session FROM entries WHERE kind = 'tool_action' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ids = [allow["sessionId"].as_str().unwrap(), deny["sessionId"].as_str().unwrap()];
    assert_eq!(sessions[..2], ids, "{sessions:?}");
    assert_eq!(sessions.len(), 6, "{sessions:?}");
    assert_eq!(sessions[4..], [terminal_id, stop_id], "{sessions:?}");

    // The editor's terminal: the command ran there, confined by `tiller sandbox`, shown live.
    let created = terminal["seen"]["terminals"].as_array().unwrap();
    if !tier_a() {
        assert!(created.is_empty(), "{created:?}");
        return eprintln!("skipped: the editor's terminal runs commands only in tier A");
    }
    assert_eq!(created.len(), 1, "{created:?}");
    let tiller = Path::new(env!("CARGO_BIN_EXE_tiller")).canonicalize().unwrap();
    assert_eq!(Path::new(created[0]["command"].as_str().unwrap()).canonicalize().unwrap(), tiller);
    let args: Vec<&str> =
        created[0]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args[..2], ["sandbox", "--policy"], "{args:?}");
    assert_eq!(args[args.len() - 2..], ["-c", &script], "{args:?}");
    let workspace = work.join("terminal").canonicalize().unwrap();
    assert_eq!(Path::new(created[0]["cwd"].as_str().unwrap()), workspace);
    let updates = &terminal["seen"]["updates"][terminal_id];
    let embeds = |u: &&Value| u["content"][0]["type"] == "terminal";
    let shown = updates.as_array().unwrap().iter().find(embeds).expect("no terminal shown");
    assert_eq!(shown["content"][0]["terminalId"], "terminal-1", "{shown}");
    assert_eq!(terminal["seen"]["released"], serde_json::json!(["terminal-1"]));
    // Inside the workspace the command wrote (and its edit was reviewed); outside it could not.
    assert_eq!(std::fs::read_to_string(workspace.join("inside.txt")).unwrap(), "in\n");
    assert!(!escaped.exists(), "the command wrote outside its workspace");
    // What the terminal printed is the observation of the call, sent with the next request.
    let log = home.join(format!(".local/share/tiller/sessions/{terminal_id}.jsonl"));
    let log = std::fs::read_to_string(log).unwrap();
    let observed = log
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|entry| entry["message"]["role"] == "tool")
        .unwrap();
    let observed = observed["message"]["content"].as_str().unwrap();
    assert!(observed.starts_with("exit code: 1\nfrom-the-terminal\n"), "{observed}");
    assert!(observed.contains("escaped.txt: Read-only file system"), "{observed}");

    // Cancelled while it runs there: the terminal killed, with all the command started.
    assert_eq!(stop["stopReason"], "cancelled", "{stderr}");
    assert_eq!(stop["seen"]["killed"], serde_json::json!(["terminal-1"]));
    assert_eq!(stop["seen"]["released"], serde_json::json!(["terminal-1"]));
    assert!(!still_sleeping(&secs), "the command outlived its cancelled terminal");
}
