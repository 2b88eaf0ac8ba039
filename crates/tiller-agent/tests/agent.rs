//! The agent loop end to end, on a scripted model and a real temporary git repository.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tiller_agent::{
    AcceptAll, Agent, AgentConfig, AgentError, Approver, Recorder, Review, SessionLog, Verdict,
    load_session,
};
use tiller_ledger::Ledger;
use tiller_model::{Request, Scripted, ToolChoice};
use tiller_tools::{Registry, Workspace};
use tiller_types::{AgentEvent, ApprovalPolicy, ChangeSet, Message, Selection, ToolCall};

/// A small repository with a bug: `greet` says "Hello" without the name.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("greet.py"), "def greet(name):\n    return \"Hello\"\n").unwrap();
    std::fs::write(
        root.join("test_greet.py"),
        "from greet import greet\nassert greet(\"Ada\") == \"Hello, Ada\", greet(\"Ada\")\nprint(\"ok\")\n",
    )
    .unwrap();
    std::fs::write(root.join("AGENTS.md"), "Run tests with `python3 test_greet.py`.\n").unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "."],
        &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ] {
        assert!(Command::new("git").args(args).current_dir(root).status().unwrap().success());
    }
    dir
}

fn scripted(turns: serde_json::Value, context_length: u64) -> (Scripted, Arc<Mutex<Vec<Request>>>) {
    let script = serde_json::from_value(
        json!({ "model": "scripted-test", "context_length": context_length, "turns": turns }),
    )
    .unwrap();
    let provider = Scripted::new("test-script".into(), script);
    let requests = provider.requests();
    (provider, requests)
}

fn agent(provider: Scripted, root: &Path, approval: ApprovalPolicy) -> Agent {
    let config = AgentConfig { approval, ..AgentConfig::default() };
    Agent::new(Box::new(provider), Registry::default(), Workspace::new(root).unwrap(), config)
}

const FIX: &str = "*** Begin Patch\n*** Update File: greet.py\n@@ def greet(name):\n-    return \"Hello\"\n+    return f\"Hello, {name}\"\n*** End Patch\n";

#[test]
fn reads_searches_patches_runs_and_answers() {
    let repo = repo();
    let (provider, requests) = scripted(
        json!([
            { "text": "Let me read the code.", "tool_calls": [ { "name": "read_file", "arguments": { "path": "greet.py" } } ] },
            { "tool_calls": [ { "name": "search", "arguments": { "pattern": "greet\\(" } } ] },
            { "tool_calls": [ { "name": "apply_patch", "arguments": { "patch": FIX } } ] },
            { "tool_calls": [ { "name": "shell", "arguments": { "command": "python3 test_greet.py" } } ] },
            { "text": "Fixed greet to include the name; python3 test_greet.py prints ok." }
        ]),
        8192,
    );
    let sessions = tempfile::tempdir().unwrap();
    let log = SessionLog::create(sessions.path(), "ws", "scripted", "scripted-test").unwrap();
    let log_path = log.path().to_path_buf();
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never).with_log(log);
    let mut events = Vec::new();
    let answer = agent
        .run("Fix the greeting so the test passes.", &mut AcceptAll, &mut |e| {
            events.push(e.clone())
        })
        .unwrap();

    assert_eq!(answer, "Fixed greet to include the name; python3 test_greet.py prints ok.");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("greet.py")).unwrap(),
        "def greet(name):\n    return f\"Hello, {name}\"\n"
    );
    let results: Vec<(&str, &str, bool)> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolResult { name, output, is_error, .. } => {
                Some((name.as_str(), output.as_str(), *is_error))
            }
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|(_, _, err)| !err), "{results:#?}");
    assert!(results[0].1.contains("return \"Hello\""));
    assert!(results[1].1.contains("test_greet.py:2"), "{}", results[1].1);
    assert!(
        results[3].1.contains("exit code: 0") && results[3].1.contains("ok"),
        "{}",
        results[3].1
    );
    assert!(
        events.iter().any(
            |e| matches!(e, AgentEvent::ChangeApplied { files, .. } if files == &["greet.py"])
        )
    );

    // Every message is on disk, in order.
    let saved = load_session(&log_path).unwrap();
    assert_eq!(saved.messages, agent.history());
    assert_eq!(saved.messages.len(), 1 + 4 * 2 + 1);

    // The prompt the model saw last: system prompt with AGENTS.md, the task, every call and result.
    let last = requests.lock().unwrap().last().cloned().unwrap();
    insta::assert_json_snapshot!("final_prompt", last.messages);
    let tools: Vec<&str> = last.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        tools,
        ["read_file", "list_dir", "search", "replace", "apply_patch", "write_file", "shell"]
    );
}

#[test]
fn bad_calls_become_observations_the_model_can_fix() {
    let repo = repo();
    let (provider, _) = scripted(
        json!([
            { "tool_calls": [
                { "name": "delete_everything", "arguments": {} },
                { "name": "read_file", "arguments": "{\"path\": \"greet.py\"" },
                { "name": "read_file", "arguments": { "file": "greet.py" } },
                { "name": "read_file", "arguments": { "path": "../../etc/passwd" } },
                { "name": "apply_patch", "arguments": { "patch": "*** Begin Patch\n*** Update File: greet.py\n-    return \"Goodbye\"\n+    return 1\n*** End Patch" } }
            ] },
            { "text": "Giving up." }
        ]),
        8192,
    );
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never);
    let mut errors = Vec::new();
    agent
        .run("x", &mut AcceptAll, &mut |e| {
            if let AgentEvent::ToolResult { output, is_error: true, .. } = e {
                errors.push(output.clone());
            }
        })
        .unwrap();
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert!(
        errors[0].contains("no tool named `delete_everything`") && errors[0].contains("read_file")
    );
    assert!(errors[1].contains("not valid JSON"));
    assert!(errors[2].contains("invalid arguments"));
    assert!(errors[3].contains("outside the workspace"));
    assert!(
        errors[4].contains("return \"Hello\""),
        "the failed hunk quotes the closest lines: {}",
        errors[4]
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("greet.py")).unwrap(),
        "def greet(name):\n    return \"Hello\"\n"
    );
}

/// Rejects commands and every hunk but the first, with feedback.
struct Picky {
    commands: Vec<String>,
}

impl Approver for Picky {
    fn approve_command(&mut self, _: &ToolCall, command: &str) -> Verdict {
        self.commands.push(command.into());
        Verdict::Deny { feedback: Some("not now".into()) }
    }

    fn review_changes(&mut self, _: &ToolCall, changes: &ChangeSet) -> Review {
        let selection =
            changes.files.iter().map(|f| (0..f.items()).map(|i| i == 0).collect()).collect();
        let feedback = Some("only the first hunk".into());
        Review { selection: Selection(selection), feedback, edited: None }
    }
}

#[test]
fn reviewer_decides_hunk_by_hunk_under_untrusted() {
    let repo = repo();
    let two_hunks = "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\n";
    std::fs::write(repo.path().join("notes.txt"), two_hunks).unwrap();
    let (provider, _) = scripted(
        json!([
            { "tool_calls": [ { "name": "write_file", "arguments": { "path": "notes.txt", "content": "LINE 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nLINE 8\n" } } ] },
            { "tool_calls": [ { "name": "shell", "arguments": { "command": "touch made-by-shell" } }, { "name": "shell", "arguments": { "command": "ls" } } ] },
            { "text": "done" }
        ]),
        8192,
    );
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Untrusted);
    let mut picky = Picky { commands: vec![] };
    let mut outputs = Vec::new();
    agent
        .run("edit", &mut picky, &mut |e| {
            if let AgentEvent::ToolResult { output, .. } = e {
                outputs.push(output.clone());
            }
        })
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        two_hunks.replacen("line 1", "LINE 1", 1)
    );
    assert!(
        outputs[0].contains("accepted only part") && outputs[0].contains("only the first hunk"),
        "{}",
        outputs[0]
    );
    // `touch` needs approval and was refused; `ls` is known to be read-only and ran.
    assert_eq!(picky.commands, ["touch made-by-shell"]);
    assert!(outputs[1].contains("declined") && outputs[1].contains("not now"));
    assert!(!repo.path().join("made-by-shell").exists());
    assert!(outputs[2].contains("greet.py"), "{}", outputs[2]);
}

#[test]
fn stops_at_the_step_limit() {
    let repo = repo();
    let call = json!({ "tool_calls": [ { "name": "list_dir", "arguments": {} } ] });
    let (provider, _) = scripted(json!([call, call, call]), 8192);
    let mut agent = Agent::new(
        Box::new(provider),
        Registry::default(),
        Workspace::new(repo.path()).unwrap(),
        AgentConfig { max_steps: 2, ..AgentConfig::default() },
    );
    let err = agent.run("loop", &mut AcceptAll, &mut |_| {}).unwrap_err();
    assert!(matches!(err, AgentError::StepLimit(2)), "{err}");
}

#[test]
fn compacts_older_turns_when_the_context_fills() {
    let repo = repo();
    let big = "x".repeat(3500);
    let (provider, requests) = scripted(
        json!([
            { "text": big, "tool_calls": [ { "name": "list_dir", "arguments": {} } ] },
            { "text": big, "tool_calls": [ { "name": "list_dir", "arguments": { "depth": 1 } } ] },
            { "text": "SUMMARY: listed the directory twice." },
            { "text": "done" }
        ]),
        3200,
    );
    let sessions = tempfile::tempdir().unwrap();
    let log = SessionLog::create(sessions.path(), "ws", "scripted", "m").unwrap();
    let log_path = log.path().to_path_buf();
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never).with_log(log);
    let mut compacted = None;
    let answer = agent
        .run("the task", &mut AcceptAll, &mut |e| {
            if let AgentEvent::Compacted { tokens_before, tokens_after } = e {
                compacted = Some((*tokens_before, *tokens_after));
            }
        })
        .unwrap();
    assert_eq!(answer, "done");
    let (before, after) = compacted.expect("compaction fired");
    assert!(after < before, "{before} -> {after}");
    let requests = requests.lock().unwrap();
    // The summary call saw the older turns and no tools; the next turn saw the summary.
    assert!(requests[2].tools.is_empty() && requests[2].messages[1].text().contains("xxxx"));
    let first = requests[3].messages[1].text();
    assert!(
        first.starts_with("the task") && first.contains("SUMMARY: listed the directory twice."),
        "{first}"
    );
    // The session file, read back, holds the compacted history.
    assert_eq!(load_session(&log_path).unwrap().messages, agent.history());
}

#[test]
fn resumed_history_closes_calls_left_open_by_a_crash() {
    let repo = repo();
    let (provider, requests) = scripted(json!([{ "text": "resumed" }]), 8192);
    let open_call = ToolCall { id: "c9".into(), name: "shell".into(), arguments: "{}".into() };
    let history = vec![
        Message::user("earlier task"),
        Message::Assistant { content: String::new(), tool_calls: vec![open_call] },
    ];
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never).with_history(history);
    assert_eq!(agent.run("go on", &mut AcceptAll, &mut |_| {}).unwrap(), "resumed");
    let sent = &requests.lock().unwrap()[0].messages;
    assert!(matches!(&sent[3], Message::Tool { call_id, is_error: true, .. } if call_id == "c9"));
    assert_eq!(sent[4], Message::user("go on"));
}

#[test]
fn a_stream_broken_midway_is_asked_once_more() {
    let repo = repo();
    let (provider, requests) = scripted(
        json!([
            { "text": "partial answ", "truncate": true },
            { "text": "full answer" },
            { "text": "cut again", "truncate": true },
            { "text": "and again", "truncate": true }
        ]),
        8192,
    );
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never);
    let mut retries = 0;
    let answer = agent
        .run("a", &mut AcceptAll, &mut |e| retries += matches!(e, AgentEvent::Retry { .. }) as u32)
        .unwrap();
    assert_eq!((answer.as_str(), retries), ("full answer", 1));
    let sent = requests.lock().unwrap().clone();
    assert_eq!(sent[0], sent[1], "the same prompt, resent");
    // Only one retry per turn: a second break ends the run with the error.
    let err = agent.run("b", &mut AcceptAll, &mut |_| {}).unwrap_err();
    assert!(matches!(err, AgentError::Model(tiller_model::ModelError::Truncated { .. })), "{err}");
}

#[test]
fn with_the_answer_tool_every_turn_is_a_call_and_answer_ends_the_task() {
    let repo = repo();
    let call = json!({ "tool_calls": [ { "name": "list_dir", "arguments": {} } ] });
    let answer =
        json!({ "tool_calls": [ { "name": "answer", "arguments": { "text": "All listed." } } ] });
    let (provider, requests) = scripted(json!([call, answer, call, call, answer]), 8192);
    let config = AgentConfig { answer_tool: true, max_steps: 3, ..AgentConfig::default() };
    let mut agent = Agent::new(
        Box::new(provider),
        Registry::default(),
        Workspace::new(repo.path()).unwrap(),
        config,
    );
    assert_eq!(agent.run("list", &mut AcceptAll, &mut |_| {}).unwrap(), "All listed.");
    assert_eq!(agent.history().last(), Some(&Message::assistant("All listed.")));
    // The last step offers only the answer tool, so a small model must finish there.
    assert_eq!(agent.run("again", &mut AcceptAll, &mut |_| {}).unwrap(), "All listed.");
    let requests = requests.lock().unwrap();
    let names = |r: &Request| r.tools.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert!(requests.iter().all(|r| r.tool_choice == ToolChoice::Required));
    assert_eq!(names(&requests[0]).last().map(String::as_str), Some("answer"));
    assert_eq!(names(&requests[4]), ["answer"]);
}

#[test]
fn a_malformed_answer_is_no_answer_and_the_model_is_told() {
    let repo = repo();
    let broken = json!({ "tool_calls": [ { "name": "answer", "arguments": "{\"text\": \"}}</tool_call>" } ] });
    let answer =
        json!({ "tool_calls": [ { "name": "answer", "arguments": { "text": "Fixed." } } ] });
    let (provider, requests) = scripted(json!([broken, answer]), 8192);
    let config = AgentConfig { answer_tool: true, max_steps: 3, ..AgentConfig::default() };
    let mut agent = Agent::new(
        Box::new(provider),
        Registry::default(),
        Workspace::new(repo.path()).unwrap(),
        config,
    );
    let mut shown = Vec::new();
    let answer = agent.run("fix", &mut AcceptAll, &mut |e| shown.push(e.clone())).unwrap();
    assert_eq!(answer, "Fixed.");
    let answers: Vec<_> = shown.iter().filter(|e| matches!(e, AgentEvent::Answer { .. })).collect();
    assert_eq!(answers, [&AgentEvent::Answer { text: "Fixed.".into() }]);
    let second = serde_json::to_string(&requests.lock().unwrap()[1].messages).unwrap();
    assert!(second.contains("The answer was not understood"), "{second}");
}

#[test]
fn a_call_that_failed_is_not_run_again_and_repeats_stop_the_run() {
    let repo = repo();
    let outside = json!({ "tool_calls": [ { "name": "read_file", "arguments": { "path": "/tmp/test_greet.py" } } ] });
    let (provider, requests) = scripted(json!([outside, outside, outside, outside, outside]), 8192);
    let config = AgentConfig { max_steps: 10, ..AgentConfig::default() };
    let mut agent = Agent::new(
        Box::new(provider),
        Registry::default(),
        Workspace::new(repo.path()).unwrap(),
        config,
    );
    let err = agent.run("fix", &mut AcceptAll, &mut |_| {}).unwrap_err();
    assert!(matches!(err, AgentError::Repeating(3)), "{err}");
    assert_eq!(requests.lock().unwrap().len(), 4, "the first call and three repeats");
    let results: Vec<&str> = agent
        .history()
        .iter()
        .filter_map(|m| match m {
            Message::Tool { content, .. } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        results[0].contains("is outside the workspace. Paths are relative to the workspace root; the closest that exist: test_greet.py"),
        "{}",
        results[0]
    );
    assert!(results[1..].iter().all(|r| r.starts_with("Not run: you made this same call before")));
}

#[test]
fn on_a_constrained_engine_paths_are_listed_and_small_contexts_get_few_tools() {
    let repo = repo();
    let answer = json!({ "tool_calls": [ { "name": "answer", "arguments": { "text": "ok" } } ] });
    let (provider, requests) = scripted(json!([answer.clone(), answer]), 8192);
    let config = AgentConfig { answer_tool: true, constrained: true, ..AgentConfig::default() };
    let ws = Workspace::new(repo.path()).unwrap();
    let mut agent = Agent::new(Box::new(provider), Registry::default(), ws, config);
    agent.run("fix", &mut AcceptAll, &mut |_| {}).unwrap();
    let request = requests.lock().unwrap()[0].clone();
    let names: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["read_file", "replace", "shell", "answer"]);
    assert_eq!(
        request.tools[0].parameters["properties"]["path"]["enum"],
        json!(["greet.py", "test_greet.py"]),
        "AGENTS.md is in the system prompt already"
    );
    let replace = serde_json::to_string(&request.tools[1].parameters).unwrap();
    assert!(replace.contains(r#""enum":["def greet(name):","    return \"Hello\""]"#), "{replace}");
    assert!(!serde_json::to_string(&request.tools).unwrap().contains("x-tiller"));
}

/// A fake GitHub token in the right format (prefix, 36 alphanumerics).
const TOKEN: &str = "ghp_R8x2Kq7LmN4pV9tY3wZ6bC1dF5gH0jS2aE7u";

#[test]
fn a_remote_model_never_sees_secrets_or_denied_files_and_the_ledger_says_what_left() {
    let repo = repo();
    let config_py = format!("import os\nGITHUB_TOKEN = \"{TOKEN}\"\nDEBUG = True\n");
    std::fs::write(repo.path().join("settings.py"), &config_py).unwrap();
    std::fs::write(repo.path().join(".env"), "DB_PASSWORD=s3cr3t-pa55w0rd-x\n").unwrap();
    let write_back = "import os\nGITHUB_TOKEN = \"[REDACTED:github-token:1]\"\nDEBUG = False\n";
    let (provider, requests) = scripted(
        json!([
            { "tool_calls": [ { "name": "read_file", "arguments": { "path": "settings.py", "start_line": 2 } } ] },
            { "tool_calls": [ { "name": "read_file", "arguments": { "path": ".env" } } ] },
            { "tool_calls": [ { "name": "shell", "arguments": { "command": "cat .env" } } ] },
            { "tool_calls": [ { "name": "write_file", "arguments": { "path": "settings.py", "content": write_back } } ] },
            { "text": "Done." }
        ]),
        8192,
    );
    let ws = Workspace::new(repo.path()).unwrap().deny(&[".env*".into()]).unwrap();
    let config =
        AgentConfig { remote: true, approval: ApprovalPolicy::Never, ..AgentConfig::default() };
    let db = repo.path().join("ledger.sqlite");
    let recorder = Recorder::new(Ledger::open(&db).unwrap(), "s1", Default::default());
    let mut agent =
        Agent::new(Box::new(provider), Registry::default(), ws, config).with_ledger(recorder);
    let task = format!("Turn DEBUG off. My token is {TOKEN} if you need it.");
    assert_eq!(agent.run(&task, &mut AcceptAll, &mut |_| {}).unwrap(), "Done.");

    let sent = serde_json::to_string(&*requests.lock().unwrap()).unwrap();
    assert!(!sent.contains(&TOKEN[4..]), "the token left the machine");
    assert!(!sent.contains("s3cr3t-pa55w0rd"), "the .env value left the machine");
    assert!(sent.contains("[REDACTED:github-token:1]"));
    assert!(sent.contains("withheld"), "reading .env is refused: {sent}");
    assert!(sent.contains("Refused: this change writes a redaction placeholder"));
    assert_eq!(std::fs::read_to_string(repo.path().join("settings.py")).unwrap(), config_py);

    let ledger = Ledger::open(&db).unwrap();
    assert!(ledger.verify().unwrap().is_ok());
    let what_left = ledger.sent(None).unwrap();
    assert_eq!(what_left.len(), 1);
    assert_eq!(what_left[0].requests, 5);
    let files: Vec<(&str, &[[u32; 2]])> =
        what_left[0].files.iter().map(|f| (f.path.as_str(), f.lines.as_slice())).collect();
    assert_eq!(files, [("AGENTS.md", &[[1, 1]][..]), ("settings.py", &[[2, 3]][..])]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let redactions: Vec<serde_json::Value> = conn
        .prepare("SELECT payload FROM entries WHERE kind = 'redaction' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
        .collect();
    let seen: Vec<(&str, &str)> = redactions
        .iter()
        .map(|r| (r["secret_kind"].as_str().unwrap(), r["location"].as_str().unwrap()))
        .collect();
    assert_eq!(seen[0], ("github-token", "the task, line 1"));
    assert_eq!(seen[1], ("github-token", "output of read_file call call_1_1, line 1"));
    assert!(seen[2].1.starts_with("output of shell call call_3_1"), "{seen:?}");
    assert_eq!(seen.len(), 3, "{seen:?}");
    drop((conn, ledger));
    for file in ["ledger.sqlite", "ledger.sqlite-wal"].map(|f| repo.path().join(f)) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "{file:?}");
    }
}

#[test]
fn an_edit_over_the_step_budget_is_refused_with_the_reason() {
    let repo = repo();
    let big: String = (0..30).map(|n| format!("line {n}\n")).collect();
    let small = "print('hi')\n";
    let (provider, requests) = scripted(
        json!([
            { "tool_calls": [ { "name": "write_file", "arguments": { "path": "big.txt", "content": big } } ] },
            { "tool_calls": [ { "name": "write_file", "arguments": { "path": "small.py", "content": small } } ] },
            { "text": "Split it." }
        ]),
        8192,
    );
    let config = AgentConfig { step_budget: Some(20), ..AgentConfig::default() };
    let mut agent = Agent::new(
        Box::new(provider),
        Registry::default(),
        Workspace::new(repo.path()).unwrap(),
        config,
    );
    agent.run("write files", &mut AcceptAll, &mut |_| {}).unwrap();
    assert!(!repo.path().join("big.txt").exists());
    assert_eq!(std::fs::read_to_string(repo.path().join("small.py")).unwrap(), small);
    let requests = requests.lock().unwrap();
    assert!(requests[0].messages[0].text().contains("at most 20 changed lines"));
    let refusal = requests[1].messages.last().unwrap().text();
    assert!(
        refusal.contains("changes 30 lines (30 added, 0 removed) and the step budget is 20"),
        "{refusal}"
    );
}
