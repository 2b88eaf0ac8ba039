//! The agent loop end to end, on a scripted model and a real temporary git repository.
// Helpers outside #[test] functions unwrap too: a failed setup should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tiller/tests/support/http.rs"]
mod http;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tiller_agent::{
    AcceptAll, Agent, AgentConfig, AgentError, Approver, Checker, ModelSwitch, Recorder, Review,
    SessionLog, Verdict, load_session,
};
use tiller_ledger::Ledger;
use tiller_model::{Request, Scripted, ToolChoice};
use tiller_tools::{Registry, SuiteResult, Workspace, parse_output};
use tiller_types::{
    AgentEvent, ApprovalPolicy, Cancel, ChangeKind, ChangeSet, Message, Selection, ToolCall,
};

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
    std::fs::write(root.join(".gitignore"), "__pycache__/\n").unwrap();
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
    let big = "x".repeat(3300);
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

/// The tool results in the agent's conversation, in order.
fn tool_results(agent: &Agent) -> Vec<&str> {
    let results = agent.history().iter().filter_map(|m| match m {
        Message::Tool { content, .. } => Some(content.as_str()),
        _ => None,
    });
    results.collect()
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
    let results = tool_results(&agent);
    assert!(
        results[0].contains("is outside the workspace. Paths are relative to the workspace root; the closest that exist: test_greet.py"),
        "{}",
        results[0]
    );
    assert!(results[1..].iter().all(|r| r.starts_with("Not run: you made this same call before")));
}

/// A model that undoes its edit and makes it again is going round in circles: the edit, made
/// again with the files as they were when it was first made, is a repeat.
#[test]
fn an_edit_made_again_after_undoing_it_is_a_repeat() {
    let repo = repo();
    let edit = |old: &str, new: &str| json!({ "tool_calls": [ { "name": "replace", "arguments": { "path": "greet.py", "old": old, "new": new } } ] });
    let (hello, hi) = ("    return \"Hello\"", "    return \"Hi\"");
    let (there, back) = (edit(hello, hi), edit(hi, hello));
    let (provider, requests) =
        scripted(json!([there, back, there, there, there, { "text": "unreached" }]), 8192);
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never);
    let err = agent.run("fix", &mut AcceptAll, &mut |_| {}).unwrap_err();
    assert!(matches!(err, AgentError::Repeating(3)), "{err}");
    assert_eq!(requests.lock().unwrap().len(), 5);
    let results = tool_results(&agent);
    assert!(results[..2].iter().all(|r| r.starts_with("Applied.")), "{results:?}");
    assert!(results[2].starts_with("Not run: you made this same call before"), "{}", results[2]);
    assert!(results[2].contains("round in a circle"), "{}", results[2]);
    let greet = std::fs::read_to_string(repo.path().join("greet.py")).unwrap();
    assert!(greet.contains(hello), "{greet}");
}

#[test]
fn a_command_is_not_run_again_until_the_workspace_changes() {
    let repo = repo();
    let test = json!({ "tool_calls": [ { "name": "shell", "arguments": { "command": "python3 test_greet.py" } } ] });
    let (provider, _) = scripted(
        json!([
            test,
            test,
            { "tool_calls": [ { "name": "apply_patch", "arguments": { "patch": FIX } } ] },
            test,
            { "text": "Fixed." }
        ]),
        8192,
    );
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never);
    assert_eq!(agent.run("fix", &mut AcceptAll, &mut |_| {}).unwrap(), "Fixed.");
    let results = tool_results(&agent);
    assert!(results[0].contains("AssertionError"), "{}", results[0]);
    assert!(results[1].starts_with("Not run: you made this same call before"), "{}", results[1]);
    assert!(results[1].contains("its result is above"), "{}", results[1]);
    assert!(results[3].contains("exit code: 0"), "run again after the change: {}", results[3]);
}

/// The grammar holds the calls to the workspace as it is; the prompt shows them as first held,
/// the same at every step, so that the engine's cache of it holds.
#[test]
fn on_a_constrained_engine_paths_are_listed_and_small_contexts_get_few_tools() {
    let repo = repo();
    let read = json!({ "tool_calls": [ { "name": "read_file", "arguments": { "path": "test_greet.py" } } ] });
    let answer = json!({ "tool_calls": [ { "name": "answer", "arguments": { "text": "ok" } } ] });
    let (provider, requests) = scripted(json!([read, answer]), 8192);
    let config = AgentConfig { answer_tool: true, constrained: true, ..AgentConfig::default() };
    let ws = Workspace::new(repo.path()).unwrap();
    let mut agent = Agent::new(Box::new(provider), Registry::default(), ws, config);
    agent.run("fix", &mut AcceptAll, &mut |_| {}).unwrap();
    let requests = requests.lock().unwrap().clone();
    let request = &requests[0];
    for tools in [&request.tools, &request.callable] {
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["read_file", "replace", "shell", "answer"]);
    }
    assert_eq!(
        request.callable[0].parameters["properties"]["path"]["enum"],
        json!([".gitignore", "greet.py", "test_greet.py"]),
        "AGENTS.md is in the system prompt already"
    );
    let replace = serde_json::to_string(&request.callable[1].parameters).unwrap();
    assert!(replace.contains(r#""enum":["def greet(name):","    return \"Hello\""]"#), "{replace}");
    assert!(!serde_json::to_string(&request.callable).unwrap().contains("x-tiller"));
    assert_eq!(request.tools, request.callable);
    assert_eq!(requests[1].tools, request.tools, "the prompt's tools hold still");
    assert_ne!(requests[1].callable, request.callable, "test_greet.py was read");
}

/// In compact mode on a constrained engine every call is small but a `replace`, so a reply's
/// output limit is what a rewrite of the largest file it may edit needs, not a quarter of the
/// context: a small model rambling on inside a string is cut in seconds.
#[test]
fn on_a_small_constrained_engine_a_reply_is_limited_to_what_an_edit_needs() {
    let repo = repo();
    let limit = |context_length: u64| {
        let answer =
            json!({ "tool_calls": [ { "name": "answer", "arguments": { "text": "ok" } } ] });
        let (provider, requests) = scripted(json!([answer]), context_length);
        let config = AgentConfig { answer_tool: true, constrained: true, ..AgentConfig::default() };
        let ws = Workspace::new(repo.path()).unwrap();
        let mut agent = Agent::new(Box::new(provider), Registry::default(), ws, config);
        agent.run("fix", &mut AcceptAll, &mut |_| {}).unwrap();
        requests.lock().unwrap()[0].max_tokens.unwrap()
    };
    // greet.py is 9 tokens (the scripted model counts four bytes a token).
    let small = limit(8192);
    assert!((256..300).contains(&small), "{small}");
    // 120 lines, 495 tokens: room for a rewrite of it half as long again.
    let code: String =
        (0..60).map(|i| format!("def f_{i:02}(x):\n    return x + {i:04}\n")).collect();
    std::fs::write(repo.path().join("greet.py"), &code).unwrap();
    let grown = limit(8192);
    assert!((900..2048).contains(&grown), "{grown}");
    // A large context gets the full tools and the provider's limit, a quarter of it.
    assert_eq!(limit(32_768), 8192);
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

/// `/model` mid-session: from the embedded engine to a remote model and back. What the remote
/// model is sent is redacted (the conversation from before the switch too), unconstrained and
/// recorded as sent; denied files are withheld from it; back on a local model, nothing is
/// redacted or recorded as sent any more.
#[test]
fn switching_models_mid_session_switches_what_depends_on_where_the_model_runs() {
    let repo = repo();
    std::fs::write(repo.path().join(".env"), "DB_PASSWORD=s3cr3t-pa55w0rd-x\n").unwrap();
    let read = |path: &str| json!({ "tool_calls": [ { "name": "read_file", "arguments": { "path": path } } ] });
    let (local, local_requests) = scripted(json!([read("greet.py"), { "text": "Read." }]), 8192);
    let db = repo.path().join("ledger.sqlite");
    let recorder = Recorder::new(Ledger::open(&db).unwrap(), "s1", Default::default());
    let config = AgentConfig { constrained: true, ..AgentConfig::default() };
    let ws = Workspace::new(repo.path()).unwrap();
    let mut agent =
        Agent::new(Box::new(local), Registry::default(), ws, config.clone()).with_ledger(recorder);
    let task = format!("My token is {TOKEN}; read greet.py.");
    agent.run(&task, &mut AcceptAll, &mut |_| {}).unwrap();
    let local_sent = serde_json::to_string(&*local_requests.lock().unwrap()).unwrap();
    assert!(local_sent.contains(TOKEN) && local_sent.contains("\"enum\""));

    let (remote, remote_requests) =
        scripted(json!([read(".env"), { "text": "Withheld." }]), 128_000);
    let ws = Workspace::new(repo.path()).unwrap().deny(&[".env*".into()]).unwrap();
    let remote_config = AgentConfig { remote: true, constrained: false, ..config.clone() };
    agent.switch_model(ModelSwitch { provider: Box::new(remote), ws, config: remote_config });
    agent.run("and .env?", &mut AcceptAll, &mut |_| {}).unwrap();
    let sent = serde_json::to_string(&*remote_requests.lock().unwrap()).unwrap();
    assert!(!sent.contains(&TOKEN[4..]), "the token from before the switch left the machine");
    assert!(sent.contains("[REDACTED:github-token:1]"), "{sent}");
    assert!(!sent.contains("s3cr3t-pa55w0rd") && sent.contains("withheld"), "{sent}");
    assert!(!sent.contains("\"enum\""), "a remote model was sent the workspace's paths");
    let what_left = Ledger::open(&db).unwrap().sent(None).unwrap();
    assert_eq!(what_left[0].requests, 2);
    let files: Vec<&str> = what_left[0].files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["AGENTS.md", "greet.py"], "read before the switch, sent after it");

    let (back, back_requests) = scripted(json!([{ "text": "Local again." }]), 8192);
    let ws = Workspace::new(repo.path()).unwrap();
    agent.switch_model(ModelSwitch { provider: Box::new(back), ws, config });
    agent.run(&format!("again {TOKEN}"), &mut AcceptAll, &mut |_| {}).unwrap();
    let back_sent = serde_json::to_string(&*back_requests.lock().unwrap()).unwrap();
    assert!(back_sent.contains(&format!("again {TOKEN}")), "a local model's task was redacted");
    assert_eq!(Ledger::open(&db).unwrap().sent(None).unwrap()[0].requests, 2);
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

/// The ids of every tool call in `history`, and of every tool result.
fn call_ids(history: &[Message]) -> (Vec<String>, Vec<String>) {
    let calls = history.iter().flat_map(|m| match m {
        Message::Assistant { tool_calls, .. } => tool_calls.iter().map(|c| c.id.clone()).collect(),
        _ => Vec::new(),
    });
    let results = history.iter().filter_map(|m| match m {
        Message::Tool { call_id, .. } => Some(call_id.clone()),
        _ => None,
    });
    (calls.collect(), results.collect())
}

/// Reopens a session this process closed a moment ago. A child forked meanwhile by another
/// test thread shares the file's lock until it execs, so busy is waited out.
fn reopen(path: &Path) -> SessionLog {
    loop {
        match SessionLog::reopen(path) {
            Err(AgentError::SessionBusy { .. }) => std::thread::yield_now(),
            other => return other.unwrap(),
        }
    }
}

#[test]
fn call_ids_stay_unique_across_the_processes_of_a_session() {
    let repo = repo();
    let sessions = tempfile::tempdir().unwrap();
    let path =
        SessionLog::create(sessions.path(), "ws", "scripted", "m").unwrap().path().to_path_buf();
    let turns = json!([
        { "tool_calls": [ { "name": "list_dir", "arguments": {} }, { "name": "list_dir", "arguments": {} } ] },
        { "text": "done" }
    ]);
    // Each process numbers its calls from the start again (`call_1_1`, ...).
    for task in ["one", "two", "three"] {
        let (provider, _) = scripted(turns.clone(), 8192);
        let history = load_session(&path).unwrap().messages;
        let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never)
            .with_history(history)
            .with_log(reopen(&path));
        let mut streamed = Vec::new();
        agent
            .run(task, &mut AcceptAll, &mut |e| {
                if let AgentEvent::ToolCall { call } = e {
                    streamed.push(call.id.clone());
                }
            })
            .unwrap();
        // The front end hears the ids the history keeps.
        let (calls, _) = call_ids(agent.history());
        assert_eq!(streamed, calls[calls.len() - 2..]);
    }
    let (calls, results) = call_ids(&load_session(&path).unwrap().messages);
    let unique: std::collections::HashSet<&String> = calls.iter().collect();
    assert_eq!((calls.len(), unique.len()), (6, 6), "{calls:?}");
    assert_eq!(calls, results);
}

#[test]
fn a_call_left_open_is_closed_even_when_an_earlier_call_had_its_id() {
    let repo = repo();
    let (provider, requests) = scripted(json!([{ "text": "resumed" }]), 8192);
    let call = ToolCall { id: "call_1".into(), name: "list_dir".into(), arguments: "{}".into() };
    let history = vec![
        Message::user("earlier task"),
        Message::Assistant { content: String::new(), tool_calls: vec![call.clone()] },
        Message::Tool {
            call_id: "call_1".into(),
            name: "list_dir".into(),
            content: "a".into(),
            is_error: false,
        },
        // Killed while this one ran: same id, no result.
        Message::Assistant { content: String::new(), tool_calls: vec![call] },
    ];
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never).with_history(history);
    agent.run("go on", &mut AcceptAll, &mut |_| {}).unwrap();
    let sent = &requests.lock().unwrap()[0].messages;
    assert!(
        matches!(&sent[5], Message::Tool { call_id, is_error: true, .. } if call_id == "call_1"),
        "{sent:?}"
    );
    assert_eq!(sent[6], Message::user("go on"));
}

/// A model that calls `read_file` for `turns` turns, then answers, and answers every summary
/// request (no tools offered) with a summary of `summary_bytes`.
struct Worker {
    turns: usize,
    done: usize,
    summary_bytes: usize,
}

impl tiller_model::Provider for Worker {
    fn info(&self) -> tiller_model::ModelInfo {
        tiller_model::ModelInfo {
            provider: tiller_types::ProviderKind::Scripted,
            model: "worker".into(),
            context_length: 4096,
            endpoint: None,
        }
    }

    fn complete(
        &mut self,
        req: &Request,
        _: &tiller_model::Cancel,
        _: &mut dyn FnMut(&tiller_types::StreamEvent),
    ) -> Result<tiller_model::Completion, tiller_model::ModelError> {
        let (content, tool_calls) = if req.tools.is_empty() {
            (format!("Summary: {}", "s".repeat(self.summary_bytes)), Vec::new())
        } else if self.done < self.turns {
            self.done += 1;
            let call = ToolCall {
                id: "call_1".into(),
                name: "read_file".into(),
                // A different range each turn: the same read twice would be refused.
                arguments: format!(r#"{{"path":"greet.py","end_line":{}}}"#, self.done),
            };
            (format!("Turn {}: {}", self.done, "w".repeat(600)), vec![call])
        } else {
            ("finished".into(), Vec::new())
        };
        Ok(tiller_model::Completion {
            content,
            tool_calls,
            stop: tiller_types::StopReason::EndTurn,
            usage: tiller_types::Usage::default(),
            model: "worker".into(),
            meta: tiller_model::CallMeta::default(),
        })
    }
}

#[test]
fn compaction_at_4k_over_50_turns_keeps_one_summary_and_shrinks_each_time() {
    let repo = repo();
    let worker = Worker { turns: 50, done: 0, summary_bytes: 1200 };
    let config = AgentConfig { max_steps: 60, ..AgentConfig::default() };
    let mut agent = Agent::new(
        Box::new(worker),
        Registry::default(),
        Workspace::new(repo.path()).unwrap(),
        config,
    );
    let mut compactions = Vec::new();
    let answer = agent.run("the task", &mut AcceptAll, &mut |e| {
        if let AgentEvent::Compacted { tokens_before, tokens_after } = e {
            compactions.push((*tokens_before, *tokens_after));
        }
    });
    assert_eq!(answer.unwrap(), "finished");
    assert!(compactions.len() >= 5, "{compactions:?}");
    assert!(compactions.iter().all(|(before, after)| after < before), "{compactions:?}");
    let first = agent.history()[0].text();
    assert!(first.starts_with("the task"), "{first}");
    assert_eq!(first.matches("[Summary of the work so far]").count(), 1, "{first}");
    assert!(first.len() < 2000, "{} bytes", first.len());
}

/// Accepts or rejects every change as a whole, and keeps what it was shown.
struct Judge {
    accept: bool,
    shown: Vec<ChangeSet>,
}

impl Approver for Judge {
    fn approve_command(&mut self, _: &ToolCall, _: &str) -> Verdict {
        Verdict::Approve
    }

    fn review_changes(&mut self, _: &ToolCall, changes: &ChangeSet) -> Review {
        self.shown.push(changes.clone());
        let selection = if self.accept { changes.accept_all() } else { changes.reject_all() };
        Review { selection, feedback: None, edited: None }
    }
}

/// Runs `sed -i` on the tracked greet.py and a command creating a new file, under `judge`;
/// returns the tool results and the files each applied change reported.
fn commands_changing_files(repo: &Path, judge: &mut Judge) -> (Vec<String>, Vec<Vec<String>>) {
    let (provider, _) = scripted(
        json!([
            { "tool_calls": [ { "name": "shell", "arguments": { "command": "sed -i 's/\"Hello\"/f\"Hello, {name}\"/' greet.py" } } ] },
            { "tool_calls": [ { "name": "shell", "arguments": { "command": "echo made > new.txt && echo created" } } ] },
            { "text": "done" }
        ]),
        8192,
    );
    let mut agent = agent(provider, repo, ApprovalPolicy::OnRequest);
    let (mut outputs, mut applied) = (Vec::new(), Vec::new());
    agent
        .run("fix it with sed", judge, &mut |e| match e {
            AgentEvent::ToolResult { output, .. } => outputs.push(output.clone()),
            AgentEvent::ChangeApplied { files, .. } => applied.push(files.clone()),
            _ => {}
        })
        .unwrap();
    (outputs, applied)
}

#[test]
fn changes_made_by_commands_are_reviewed_and_restored_when_rejected() {
    let repo = repo();
    let before = std::fs::read_to_string(repo.path().join("greet.py")).unwrap();
    let mut judge = Judge { accept: false, shown: Vec::new() };
    let (outputs, applied) = commands_changing_files(repo.path(), &mut judge);
    // The reviewer saw the sed edit as a hunk of greet.py, and the new file as an addition.
    assert_eq!(judge.shown.len(), 2);
    let sed = &judge.shown[0].files[0];
    assert_eq!((sed.path.as_str(), &sed.kind), ("greet.py", &ChangeKind::Update));
    assert_eq!(sed.hunks[0].added, ["    return f\"Hello, {name}\"\n"]);
    let new = &judge.shown[1].files[0];
    assert_eq!((new.path.as_str(), &new.kind), ("new.txt", &ChangeKind::Add));
    // Rejected: greet.py is as before and new.txt is gone; the model is told, with the output.
    assert_eq!(std::fs::read_to_string(repo.path().join("greet.py")).unwrap(), before);
    assert!(!repo.path().join("new.txt").exists());
    assert!(applied.is_empty(), "{applied:?}");
    assert!(outputs[1].contains("created") && outputs[1].contains("undone"), "{}", outputs[1]);
    assert!(git_status(repo.path()).is_empty());
}

#[test]
fn changes_made_by_commands_become_part_of_the_step_when_accepted() {
    let repo = repo();
    let mut judge = Judge { accept: true, shown: Vec::new() };
    let (outputs, applied) = commands_changing_files(repo.path(), &mut judge);
    assert_eq!(
        std::fs::read_to_string(repo.path().join("greet.py")).unwrap(),
        "def greet(name):\n    return f\"Hello, {name}\"\n"
    );
    assert_eq!(std::fs::read_to_string(repo.path().join("new.txt")).unwrap(), "made\n");
    // Each step names its files, which the front end commits.
    assert_eq!(applied, [vec!["greet.py".to_string()], vec!["new.txt".to_string()]]);
    assert!(outputs[0].contains("exit code: 0") && outputs[0].contains("accepted"));
    assert_eq!(git_status(repo.path()), " M greet.py\n?? new.txt\n");
}

#[test]
fn a_command_over_the_step_budget_is_undone() {
    let repo = repo();
    let (provider, requests) = scripted(
        json!([
            { "tool_calls": [ { "name": "shell", "arguments": { "command": "seq 1 30 > big.txt" } } ] },
            { "text": "too big" }
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
    agent.run("write", &mut AcceptAll, &mut |_| {}).unwrap();
    assert!(!repo.path().join("big.txt").exists());
    let refusal = requests.lock().unwrap()[1].messages.last().unwrap().text().to_string();
    assert!(refusal.contains("step budget is 20") && refusal.contains("undone"), "{refusal}");
}

/// `.tiller/project.toml` names the commands that check the agent's work. Where the sandbox
/// cannot make it read-only (tier B, or commands run unconfined, as here), a command that
/// writes there has all its changes undone and the model is told why.
#[test]
fn a_command_changing_tiller_s_project_configuration_is_undone() {
    let repo = repo();
    let toml = "test = \"python3 test_greet.py\"\n";
    std::fs::create_dir(repo.path().join(".tiller")).unwrap();
    std::fs::write(repo.path().join(".tiller/project.toml"), toml).unwrap();
    let attack = "echo 'test = \"true\"' > .tiller/project.toml; echo x > .tiller/more.toml; \
                  echo '# ok' >> greet.py";
    let (provider, requests) = scripted(
        json!([
            { "tool_calls": [ { "name": "shell", "arguments": { "command": attack } } ] },
            { "text": "done" }
        ]),
        8192,
    );
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never);
    agent.run("make the tests pass", &mut AcceptAll, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read_to_string(repo.path().join(".tiller/project.toml")).unwrap(), toml);
    assert!(!repo.path().join(".tiller/more.toml").exists());
    assert_eq!(git_status(repo.path()), "?? .tiller/\n", "greet.py's change undone too");
    let refusal = requests.lock().unwrap()[1].messages.last().unwrap().text().to_string();
    assert!(refusal.contains(".tiller/project.toml") && refusal.contains("undone"), "{refusal}");
}

fn git_status(root: &Path) -> String {
    let out = Command::new("git").args(["status", "--porcelain"]).current_dir(root).output();
    String::from_utf8(out.unwrap().stdout).unwrap()
}

#[test]
fn under_approval_never_a_command_s_changes_are_recorded_with_their_hashes() {
    let repo = repo();
    let (provider, _) = scripted(
        json!([
            { "tool_calls": [ { "name": "shell", "arguments": { "command": "sed -i s/Hello/Hi/ greet.py" } } ] },
            { "text": "done" }
        ]),
        8192,
    );
    let ledger_dir = tempfile::tempdir().unwrap();
    let db = ledger_dir.path().join("ledger.sqlite");
    let recorder = Recorder::new(Ledger::open(&db).unwrap(), "s1", Default::default());
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never).with_ledger(recorder);
    agent.run("edit", &mut AcceptAll, &mut |_| {}).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let payload: String = conn
        .query_row("SELECT payload FROM entries WHERE kind = 'tool_action'", [], |r| r.get(0))
        .unwrap();
    let action: serde_json::Value = serde_json::from_str(&payload).unwrap();
    let sha = |text: &str| tiller_ledger::sha256_hex(text.as_bytes());
    assert_eq!(action["tool"], "shell");
    assert_eq!(
        action["files"],
        json!([{
            "path": "greet.py",
            "before_sha256": sha("def greet(name):\n    return \"Hello\"\n"),
            "after_sha256": sha("def greet(name):\n    return \"Hi\"\n"),
        }])
    );
}

#[test]
fn cancelling_stops_a_running_command_and_everything_it_started() {
    let repo = repo();
    // A number of seconds no other process on the machine sleeps.
    let secs = format!("96{}", std::process::id());
    let command = format!("sh -c 'sleep {secs} & sleep {secs}'");
    let (provider, _) = scripted(
        json!([
            { "tool_calls": [ { "name": "shell", "arguments": { "command": command } } ] },
            { "text": "never reached" }
        ]),
        8192,
    );
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never);
    let cancel = agent.cancel_handle();
    let running = std::thread::spawn(move || {
        let mut outputs = Vec::new();
        let result = agent.run("sleep", &mut AcceptAll, &mut |e| {
            if let AgentEvent::ToolResult { output, .. } = e {
                outputs.push(output.clone());
            }
        });
        (result, outputs)
    });
    assert!(eventually(|| sleeping(&secs).len() == 2), "the sleeps never started");
    cancel.cancel();
    let (result, outputs) = running.join().unwrap();
    assert!(
        matches!(result, Err(AgentError::Model(tiller_model::ModelError::Cancelled))),
        "{result:?}"
    );
    assert!(outputs[0].contains("cancelled by the user"), "{outputs:?}");
    assert!(eventually(|| sleeping(&secs).is_empty()), "survived: {:?}", sleeping(&secs));
}

/// The live processes whose command line is `sleep <seconds>`.
fn sleeping(seconds: &str) -> Vec<i32> {
    let wanted = format!("sleep\0{seconds}\0");
    let live = |pid: &i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, s)| !s.starts_with('Z')))
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(live)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted.as_bytes())
        })
        .collect()
}

/// Waits (up to a minute, far past any normal delay) until `done` holds; whether it does.
fn eventually(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done()
}

/// Approves everything, noting each question: `run <command>` or `review <paths>`.
#[derive(Default)]
struct Recording(Vec<String>);

impl Approver for Recording {
    fn approve_command(&mut self, _: &ToolCall, command: &str) -> Verdict {
        self.0.push(format!("run {command}"));
        Verdict::Approve
    }

    fn review_changes(&mut self, _: &ToolCall, changes: &ChangeSet) -> Review {
        let paths: Vec<&str> = changes.files.iter().map(|f| f.path.as_str()).collect();
        self.0.push(format!("review {}", paths.join(" ")));
        Review::accept_all(changes)
    }
}

#[test]
fn each_approval_policy_asks_what_docs_config_md_says() {
    use ApprovalPolicy::*;
    let cases: [(ApprovalPolicy, &[&str]); 3] = [
        (Never, &[]),
        (OnRequest, &["review a.txt", "review b.txt"]),
        (Untrusted, &["review a.txt", "run echo b > b.txt", "review b.txt"]),
    ];
    for (policy, asked) in cases {
        let repo = repo();
        let (provider, _) = scripted(
            json!([
                { "tool_calls": [ { "name": "write_file", "arguments": { "path": "a.txt", "content": "a\n" } } ] },
                { "tool_calls": [ { "name": "shell", "arguments": { "command": "echo b > b.txt" } } ] },
                { "tool_calls": [ { "name": "shell", "arguments": { "command": "ls" } } ] },
                { "text": "done" }
            ]),
            8192,
        );
        let mut recording = Recording::default();
        agent(provider, repo.path(), policy).run("go", &mut recording, &mut |_| {}).unwrap();
        assert_eq!(recording.0, asked, "{policy:?}");
        // Everything was approved, so everything happened.
        assert!(repo.path().join("a.txt").exists() && repo.path().join("b.txt").exists());
    }
}

#[test]
fn compact_now_summarises_all_but_the_last_turn() {
    let repo = repo();
    let (provider, requests) = scripted(
        json!([
            { "tool_calls": [ { "name": "list_dir", "arguments": {} } ] },
            { "tool_calls": [ { "name": "list_dir", "arguments": { "depth": 1 } } ] },
            { "text": "done" },
            { "text": "SUMMARY: listed the directory twice." }
        ]),
        8192,
    );
    let mut agent = agent(provider, repo.path(), ApprovalPolicy::Never);
    agent.run("the task", &mut AcceptAll, &mut |_| {}).unwrap();
    let before = agent.history().len();
    let mut compacted = None;
    agent
        .compact_now(&mut |e| {
            if let AgentEvent::Compacted { tokens_before, tokens_after } = e {
                compacted = Some((*tokens_before, *tokens_after));
            }
        })
        .unwrap();
    let (tokens_before, tokens_after) = compacted.expect("compaction fired");
    assert!(tokens_after < tokens_before, "{tokens_before} -> {tokens_after}");
    assert!(agent.history().len() < before);
    assert!(agent.history()[0].text().contains("SUMMARY: listed the directory twice."));
    assert!(requests.lock().unwrap()[3].tools.is_empty(), "the summary call offers no tools");
}

/// A loopback server speaking OpenAI's streamed chat completions: the n-th request gets the
/// n-th list of chunks; request bodies are kept.
fn chat_server(replies: Vec<Vec<serde_json::Value>>) -> (String, http::Received) {
    http::serve_events(move |n, _| http::chat_events(&replies[n.min(replies.len() - 1)]))
}

fn endpoint(url: &str, context_length: u64) -> tiller_model::EndpointConfig {
    tiller_model::EndpointConfig {
        base_url: url.into(),
        model: "m".into(),
        api_key: None,
        context_length,
        connect_timeout: std::time::Duration::from_secs(5),
        idle_timeout: std::time::Duration::from_secs(10),
        deadline: std::time::Duration::from_secs(30),
        max_retries: 0,
        egress: tiller_model::EgressPolicy::default(),
    }
}

/// A reply cut at the output limit is never the answer: its tool call is not run and the model
/// is told; a cut final answer is an error for the user. Every request carries a limit.
#[test]
fn a_reply_cut_at_the_output_limit_is_not_taken_as_finished() {
    let repo = repo();
    let write = json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1",
        "function": {"name": "write_file", "arguments": "{\"path\": \"big.py\", \"content\": \"x = 1\\n"}}]},
        "finish_reason": "length"}]});
    let text = json!({"choices": [{"delta": {"content": "The answer is that the"}, "finish_reason": "length"}]});
    let (url, received) = chat_server(vec![vec![write], vec![text]]);
    let provider = tiller_model::OpenAi::new(endpoint(&url, 8192)).unwrap();
    let config = AgentConfig { approval: ApprovalPolicy::Never, ..AgentConfig::default() };
    let ws = Workspace::new(repo.path()).unwrap();
    let mut agent = Agent::new(Box::new(provider), Registry::default(), ws, config);
    let mut events = Vec::new();
    let err =
        agent.run("Write big.py.", &mut AcceptAll, &mut |e| events.push(e.clone())).unwrap_err();

    assert!(matches!(err, AgentError::Cut { limit: 2048 }), "{err}");
    assert!(!repo.path().join("big.py").exists(), "a cut call was run");
    assert!(!events.iter().any(|e| matches!(e, AgentEvent::Answer { .. })), "{events:?}");
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2);
    // A quarter of the context by default, sent as `max_tokens` to a server that is not OpenAI.
    assert!(received.iter().all(|r| r["max_tokens"] == 2048), "{received:?}");
    let told = received[1]["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(told["role"], "tool");
    assert!(told["content"].as_str().unwrap().contains("cut at the output limit of 2048 tokens"));
    // The incomplete arguments are not sent back as they were.
    let call =
        &received[1]["messages"].as_array().unwrap().iter().rev().nth(1).unwrap()["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], "{}");
}

/// With the answer tool every reply is a call, so a cut reply without one is a call cut before
/// it parsed: the model is told and tries again, and the run goes on to its answer.
#[test]
fn with_the_answer_tool_a_cut_reply_is_told_to_the_model() {
    let repo = repo();
    let cut = json!({"choices": [{"delta": {"content": "<tool_call>{\"name\": \"answer\", \"arguments\": {\"text\": \"It is"}, "finish_reason": "length"}]});
    let answer = json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "a1",
        "function": {"name": "answer", "arguments": "{\"text\": \"done\"}"}}]}, "finish_reason": "tool_calls"}]});
    let (url, received) = chat_server(vec![vec![cut], vec![answer]]);
    let provider = tiller_model::OpenAi::new(endpoint(&url, 4096)).unwrap();
    let config = AgentConfig { answer_tool: true, ..AgentConfig::default() };
    let ws = Workspace::new(repo.path()).unwrap();
    let mut agent = Agent::new(Box::new(provider), Registry::default(), ws, config);
    let answer = agent.run("Say done.", &mut AcceptAll, &mut |_| {}).unwrap();
    assert_eq!(answer, "done");
    let received = received.lock().unwrap();
    let told = received[1]["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(told["role"], "user");
    assert!(
        told["content"].as_str().unwrap().contains("cut at the output limit of 1024"),
        "{told}"
    );
}

/// A tool an MCP server would serve: `srv__ping`, answering "pong".
struct Ping;

impl tiller_tools::Tool for Ping {
    fn spec(&self) -> tiller_types::ToolSpec {
        let parameters = json!({"type": "object", "properties": {"command": {"type": "string"}}});
        tiller_types::ToolSpec { name: "srv__ping".into(), description: "Ping.".into(), parameters }
    }

    fn kind(&self) -> tiller_tools::ToolKind {
        tiller_tools::ToolKind::Exec
    }

    fn run(
        &self,
        _: &Workspace,
        _: serde_json::Value,
    ) -> Result<tiller_tools::ToolOutput, tiller_tools::ToolError> {
        Ok("pong".to_string().into())
    }

    fn served_by(&self) -> Option<(&str, &str)> {
        Some(("srv", "ping"))
    }
}

/// Tools a server would serve, and its warnings, each said once.
struct Served(Vec<Box<dyn tiller_tools::Tool>>, Mutex<Vec<String>>);

impl tiller_tools::ToolSource for Served {
    fn tools(&self) -> &[Box<dyn tiller_tools::Tool>] {
        &self.0
    }

    fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.1.lock().unwrap())
    }
}

/// Offers one more tool at each refresh, as a server that says its tools changed.
struct Growing(Vec<Box<dyn tiller_tools::Tool>>);

impl tiller_tools::ToolSource for Growing {
    fn tools(&self) -> &[Box<dyn tiller_tools::Tool>] {
        &self.0
    }

    fn refresh(&mut self) {
        self.0.push(Box::new(Ping));
    }
}

#[test]
fn served_tools_are_listed_again_before_each_request() {
    let repo = repo();
    let ping = json!({ "tool_calls": [ { "name": "srv__ping", "arguments": {} } ] });
    let (provider, requests) = scripted(json!([ping, { "text": "done" }]), 8192);
    let tools = Registry::default().with_source(Box::new(Growing(Vec::new())));
    let ws = Workspace::new(repo.path()).unwrap();
    let mut agent = Agent::new(Box::new(provider), tools, ws, AgentConfig::default());
    agent.run("ping", &mut Always(Vec::new()), &mut |_| {}).unwrap();
    let requests = requests.lock().unwrap();
    let served: Vec<usize> =
        requests.iter().map(|r| r.tools.iter().filter(|t| t.name == "srv__ping").count()).collect();
    assert_eq!(served, [1, 2]);
}

/// Approves each command for its whole tool, and counts the questions.
struct Always(Vec<String>);

impl Approver for Always {
    fn approve_command(&mut self, _: &ToolCall, command: &str) -> Verdict {
        self.0.push(command.into());
        Verdict::ApproveTool
    }

    fn review_changes(&mut self, _: &ToolCall, changes: &ChangeSet) -> Review {
        Review::accept_all(changes)
    }
}

#[test]
fn served_tools_are_asked_like_commands_and_approved_for_the_session_and_recorded() {
    let repo = repo();
    // `command` is the served tool's own argument, no shell command: `ls` is not known safe here.
    let ping =
        json!({ "tool_calls": [ { "name": "srv__ping", "arguments": { "command": "ls" } } ] });
    let touch =
        json!({ "tool_calls": [ { "name": "shell", "arguments": { "command": "touch x" } } ] });
    let (provider, requests) =
        scripted(json!([ping, ping, touch, touch, { "text": "done" }]), 8192);
    let tools = Registry::default().with_source(Box::new(Served(
        vec![Box::new(Ping)],
        Mutex::new(vec!["srv: one tool left out".into()]),
    )));
    let config = AgentConfig { approval: ApprovalPolicy::Untrusted, ..AgentConfig::default() };
    let ws = Workspace::new(repo.path()).unwrap();
    let ledger_dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(ledger_dir.path().join("l.sqlite")).unwrap();
    let mut agent = Agent::new(Box::new(provider), tools, ws, config).with_ledger(Recorder::new(
        ledger,
        "s",
        Default::default(),
    ));
    let mut approver = Always(Vec::new());
    let mut warnings = Vec::new();
    agent
        .run("ping", &mut approver, &mut |e| {
            if let AgentEvent::Warning { message } = e {
                warnings.push(message.clone());
            }
        })
        .unwrap();
    // Asked once for the served tool; the shell is asked every time all the same.
    assert_eq!(approver.0, [r#"srv__ping {"command":"ls"}"#, "touch x", "touch x"]);
    assert_eq!(warnings, ["srv: one tool left out"]);
    let requests = requests.lock().unwrap();
    assert!(requests[0].tools.iter().any(|t| t.name == "srv__ping"));
    let Some(Message::Tool { content, .. }) = requests[1].messages.last() else { panic!() };
    assert_eq!(content, "pong");
    let conn = rusqlite::Connection::open(ledger_dir.path().join("l.sqlite")).unwrap();
    let mcp: Vec<serde_json::Value> = conn
        .prepare("SELECT payload FROM entries WHERE kind = 'tool_action' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str::<serde_json::Value>(&p.unwrap()).unwrap()["mcp"].clone())
        .collect();
    let sent = r#"{"command":"ls"}"#;
    let ping = json!({"server": "srv", "tool": "ping", "outcome": "ok", "bytes": 4,
        "arguments_sha256": tiller_ledger::sha256_hex(sent.as_bytes())});
    // The shell's actions have none.
    assert_eq!(mcp, [ping.clone(), ping, json!(null), json!(null)]);
}

/// Runs the example's test the way its project would, in the directory it is given.
struct RunTests;

impl Checker for RunTests {
    fn check(&self, dir: &Path, _: &[String], _: &Cancel) -> Result<SuiteResult, String> {
        let out = Command::new("python3")
            .arg("test_greet.py")
            .current_dir(dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .map_err(|e| e.to_string())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(parse_output(&text, out.status.success()))
    }
}

fn replace_greeting(new: &str) -> serde_json::Value {
    json!({ "tool_calls": [ { "name": "replace", "arguments":
        { "path": "greet.py", "old": "    return \"Hello\"", "new": new } } ] })
}

/// The model's edit and its candidates, checked with the test: what is applied, what the
/// model is told, what the ledger keeps.
fn run_candidates(
    turns: serde_json::Value,
) -> (tempfile::TempDir, Vec<Request>, Vec<AgentEvent>, Vec<serde_json::Value>) {
    run_candidates_with(&[], turns)
}

/// [`run_candidates`] with `files` written over the repository's first.
fn run_candidates_with(
    files: &[(&str, &str)],
    turns: serde_json::Value,
) -> (tempfile::TempDir, Vec<Request>, Vec<AgentEvent>, Vec<serde_json::Value>) {
    let repo = repo();
    for (path, text) in files {
        std::fs::write(repo.path().join(path), text).unwrap();
    }
    // Turns, or `{ "turns": …, "departures": … }`.
    let (turns, departures) = match turns {
        serde_json::Value::Object(script) => {
            (script["turns"].clone(), script["departures"].clone())
        }
        turns => (turns, json!([])),
    };
    let script = json!({ "turns": turns, "departures": departures });
    let provider = Scripted::new("test-script".into(), serde_json::from_value(script).unwrap());
    let requests = provider.requests();
    let config =
        AgentConfig { approval: ApprovalPolicy::Never, candidates: 3, ..AgentConfig::default() };
    let db_dir = tempfile::tempdir().unwrap();
    let db = db_dir.path().join("ledger.sqlite");
    let recorder = Recorder::new(Ledger::open(&db).unwrap(), "s1", Default::default());
    let ws = Workspace::new(repo.path()).unwrap();
    let mut agent = Agent::new(Box::new(provider), Registry::default(), ws, config)
        .with_ledger(recorder)
        .with_checker(Box::new(RunTests));
    let mut events = Vec::new();
    agent
        .run("The test fails; fix greet.py.", &mut AcceptAll, &mut |e| events.push(e.clone()))
        .unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let notes: Vec<serde_json::Value> = conn
        .prepare("SELECT payload FROM entries WHERE kind = 'note' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
        .collect();
    let requests = requests.lock().unwrap().clone();
    (repo, requests, events, notes)
}

/// A reply to a rewrite request: the lines at fault written again, as a code block.
fn rewrite(body: &str) -> serde_json::Value {
    json!({ "text": format!("```python\ndef greet(name):\n{body}\n```") })
}

#[test]
fn of_three_candidates_the_one_the_tests_pass_is_applied_and_then_kept() {
    let fixed = "    return \"Hello, \" + name";
    let (repo, requests, events, notes) = run_candidates(json!([
        replace_greeting("    return \"Hi\""),
        rewrite(fixed),
        rewrite("    return \"Hello \" + name"),
        { "tool_calls": [ { "name": "replace", "arguments":
            { "path": "greet.py", "old": fixed, "new": "    return \"Hey\"" } } ] },
        { "text": "Fixed." }
    ]));
    let code = std::fs::read_to_string(repo.path().join("greet.py")).unwrap();
    assert_eq!(code, format!("def greet(name):\n{fixed}\n"), "the fix, and not the edit after it");
    let counted: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Candidates { passed, total, .. } => Some((*passed, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(counted, [(1, 2)], "the third, no smaller, is not checked");

    // The candidates were asked for as the lines at fault written again, in code.
    assert_eq!(requests.len(), 5);
    for request in &requests[1..3] {
        assert!(request.tools.is_empty());
        let start = request.reply_start.as_deref();
        assert_eq!(start, Some("```python\ndef greet(name):"), "the reply is begun");
        let Message::User { content } = request.messages.last().unwrap() else {
            panic!("{:?}", request.messages);
        };
        let lines = "def greet(name):\n    return \"Hello\"\n\n\n";
        let test =
            "# test_greet.py fails here:\nassert greet(\"Ada\") == \"Hello, Ada\", greet(\"Ada\")";
        let fails = format!("```python\n{lines}{test}\n# AssertionError: Hello\n```\n");
        assert!(content.starts_with(&fails), "the lines at fault, then the failure: {content}");
    }
    // The conversation holds the call that was applied, and the model is told the tests pass.
    let sent = serde_json::to_string(&requests[3].messages).unwrap();
    assert!(sent.contains("Hello, \\\\\\\" + name"), "{sent}");
    assert!(sent.contains("Applied. Changed: greet.py.\\nThe tests pass now. Say in one sentence what you changed."), "{sent}");
    // An edit that would make the passing tests fail is not applied.
    let Message::Tool { content, is_error, .. } = requests[4].messages.last().unwrap() else {
        panic!("the edit's result comes last: {:?}", requests[4].messages);
    };
    assert!(is_error);
    assert!(content.starts_with("Not applied: the tests pass with the code as it is"), "{content}");
    assert!(content.contains("AssertionError: Hey"), "{content}");

    let verdicts: Vec<&str> =
        notes.iter().map(|n| n["data"]["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["fails", "passes"]);
    assert!(notes.iter().all(|n| n["topic"] == "candidate"));
    assert_eq!(notes[1]["data"]["arguments"]["new"], format!("def greet(name):\n{fixed}"));
}

#[test]
fn when_no_candidate_passes_the_model_sees_their_failures() {
    let (repo, requests, events, notes) = run_candidates(json!([
        replace_greeting("    return \"Hi\""),
        rewrite("    return \"Hey\""),
        rewrite("    return \"Hey\""),
        { "text": "I could not fix it." }
    ]));
    let code = std::fs::read_to_string(repo.path().join("greet.py")).unwrap();
    assert_eq!(code, "def greet(name):\n    return \"Hello\"\n", "nothing applied");
    assert!(events.iter().any(|e| matches!(e, AgentEvent::Candidates { passed: 0, total: 3, .. })));
    let Message::Tool { content, is_error, .. } = requests[3].messages.last().unwrap() else {
        panic!("the edit's result comes last: {:?}", requests[3].messages);
    };
    assert!(is_error);
    assert!(content.starts_with("Not applied: 3 candidate edits"), "{content}");
    assert_eq!(content.matches("+    return \"Hey\"").count(), 1, "one line per change: {content}");
    assert!(content.contains("+    return \"Hi\""), "{content}");
    assert!(content.contains("AssertionError: Hi"), "the failure is shown: {content}");
    assert_eq!(notes.len(), 3);
}

/// A small model often writes the line at fault right and breaks another: the changes inside a
/// rewrite are tried alone too, smallest first, and the first that passes is applied.
#[test]
fn the_right_line_of_a_rewrite_that_breaks_another_is_tried_alone() {
    let fixed = "    return \"Hello, \" + name";
    let (repo, _, events, notes) = run_candidates(json!([
        replace_greeting("    return \"Hi\""),
        rewrite(&format!("    print(undefined)\n{fixed}")),
        rewrite("    return \"Hey\""),
        { "text": "Fixed." }
    ]));
    let code = std::fs::read_to_string(repo.path().join("greet.py")).unwrap();
    assert_eq!(code, format!("def greet(name):\n{fixed}\n"), "the right line alone");
    let passing: Vec<&serde_json::Value> =
        notes.iter().filter(|n| n["data"]["verdict"] == "passes").collect();
    assert_eq!(passing.len(), 1, "checking stops at the first that passes: {notes:?}");
    assert_eq!(passing[0]["data"]["arguments"]["new"], format!("def greet(name):\n{fixed}"));
    assert!(events.iter().any(|e| matches!(e, AgentEvent::Candidates { passed: 1, .. })));
}

/// The model's departures from the lines at fault (each one line written otherwise, ranked by
/// the model) are candidates too, checked first: rewrites, which cost the whole region's
/// tokens, are asked for only when no departure passes.
#[test]
fn a_departure_of_the_model_from_the_lines_at_fault_is_a_candidate() {
    let departed = "    return \"Hello, \" + name";
    let (repo, requests, events, notes) = run_candidates(json!({
        "turns": [
            replace_greeting("    return \"Hi\""),
            { "text": "Fixed." }
        ],
        "departures": [[
            "```python\ndef greet(name):\n    return \"Hello!\"",
            format!("```python\ndef greet(name):\n{departed}")
        ]]
    }));
    let code = std::fs::read_to_string(repo.path().join("greet.py")).unwrap();
    assert_eq!(code, format!("def greet(name):\n{departed}\n"), "the departure, checked first");
    let tried: Vec<&serde_json::Value> =
        notes.iter().map(|n| &n["data"]["arguments"]["new"]).collect();
    assert_eq!(
        tried[1], "def greet(name):\n    return \"Hello!\"",
        "after the model's own: {notes:?}"
    );
    assert!(events.iter().any(|e| matches!(e, AgentEvent::Candidates { passed: 1, .. })));
    assert_eq!(requests.len(), 2, "no rewrite asked for: {requests:#?}");
}

/// A candidate the tests failed with is not checked again while the workspace is as it was; a
/// model that repeats its edit while each round brings new candidates is not stopped as
/// repeating, and one whose round brings nothing new is told so, and counted.
#[test]
fn candidates_checked_before_are_left_out_and_a_round_with_new_ones_is_no_repeat() {
    let fixed = "    return \"Hello, \" + name";
    let hi = || replace_greeting("    return \"Hi\"");
    let (repo, _, _, notes) = run_candidates(json!([
        hi(), rewrite("    return \"Hey\""), rewrite("    return \"Yo\""),
        hi(), rewrite("    return \"Hey\""), rewrite("    return \"Hola\""),
        hi(), rewrite("    return \"Yo\""), rewrite("    return \"Hiya\""),
        hi(), rewrite("    return \"Hey\""), rewrite("    return \"Yo\""),
        hi(), rewrite(fixed), rewrite("    return \"Hey\""),
        { "text": "Fixed." }
    ]));
    let code = std::fs::read_to_string(repo.path().join("greet.py")).unwrap();
    assert_eq!(code, format!("def greet(name):\n{fixed}\n"), "the fix of the fifth round");
    let new = |n: &serde_json::Value| n["data"]["arguments"]["new"].as_str().map(str::to_string);
    let checked = |body: &str| notes.iter().filter_map(new).filter(|n| n.ends_with(body)).count();
    assert_eq!(checked("    return \"Hi\""), 1, "{notes:#?}");
    assert_eq!(checked("    return \"Hey\""), 1, "{notes:#?}");
    assert_eq!(checked("    return \"Yo\""), 1, "{notes:#?}");
}

/// Departures are the model's most likely first: a later round on the same lines asks for more
/// of them, and checks those it had not.
#[test]
fn each_round_on_the_lines_at_fault_asks_for_more_departures() {
    let fixed = "    return \"Hello, \" + name";
    let departure = |body: &str| format!("```python\ndef greet(name):\n{body}");
    let wrong: Vec<String> =
        (0..6).map(|i| departure(&format!("    return \"Hello{i}\""))).collect();
    let deeper = [wrong.clone(), vec![departure(fixed)]].concat();
    let hi = || replace_greeting("    return \"Hi\"");
    let (repo, _, _, notes) = run_candidates(json!({
        "turns": [
            hi(), rewrite("    return \"Hey\""), rewrite("    return \"Yo\""),
            hi(), rewrite("    return \"Hey\""), rewrite("    return \"Yo\""),
            { "text": "Fixed." }
        ],
        "departures": [wrong, deeper]
    }));
    let code = std::fs::read_to_string(repo.path().join("greet.py")).unwrap();
    assert_eq!(code, format!("def greet(name):\n{fixed}\n"), "{notes:#?}");
    let second: Vec<&serde_json::Value> = notes
        .iter()
        .filter(|n| n["data"]["step"] == 2)
        .map(|n| &n["data"]["arguments"]["new"])
        .collect();
    assert_eq!(second, [&json!(format!("def greet(name):\n{fixed}"))], "only the new one checked");
}

/// Two lines at fault: two departures, each on its own line and each alone no fix, are a
/// candidate together.
#[test]
fn two_departures_on_different_lines_are_a_candidate_together() {
    let greet = "def greet(name):\n    x = \"Hello\"\n    return x\n";
    let (x, ret) = ("    x = \"Hello, \"", "    return x + name");
    let edit = json!({ "tool_calls": [ { "name": "replace", "arguments":
        { "path": "greet.py", "old": "    return x", "new": "    return x + \"!\"" } } ] });
    let body = |x: &str, ret: &str| format!("```python\ndef greet(name):\n{x}\n{ret}");
    let (repo, _, _, notes) = run_candidates_with(
        &[("greet.py", greet)],
        json!({
            "turns": [
                edit,
                { "text": body("    x = \"Hi\"", "    return x") + "\n```" },
                { "text": body("    x = \"Hey\"", "    return x") + "\n```" },
                { "text": "Fixed." }
            ],
            "departures": [[body(x, "    return x"), body("    x = \"Hello\"", ret)]]
        }),
    );
    let code = std::fs::read_to_string(repo.path().join("greet.py")).unwrap();
    assert_eq!(code, format!("def greet(name):\n{x}\n{ret}\n"), "{notes:#?}");
}

/// Where the failing function calls another of the workspace's, the next round of candidates
/// rewrites that one.
#[test]
fn the_next_round_rewrites_the_function_the_failing_one_calls() {
    let greet = "from words import hello\n\n\ndef greet(name):\n    return hello(name)\n";
    let words = "def hello(name):\n    return \"Hello\"\n";
    let edit = |new: &str| {
        json!({ "tool_calls": [ { "name": "replace", "arguments":
            { "path": "greet.py", "old": "    return hello(name)", "new": new } } ] })
    };
    let fixed = "```python\ndef hello(name):\n    return \"Hello, \" + name\n```";
    let (repo, requests, _, _) = run_candidates_with(
        &[("greet.py", greet), ("words.py", words)],
        json!([
            edit("    return hello(name) + \"!\""),
            rewrite("    return hello(name) + \"?\""),
            rewrite("    return hello(name) + \".\""),
            edit("    return hello(name) + \";\""),
            { "text": "```python\ndef hello(name):\n    return \"Hi\"\n```" },
            { "text": fixed },
            { "text": "Fixed." }
        ]),
    );
    let starts: Vec<&str> = requests.iter().filter_map(|r| r.reply_start.as_deref()).collect();
    let (first, second) = ("```python\ndef greet(name):", "```python\ndef hello(name):");
    assert_eq!(starts, [first, first, second, second], "two rewrites a round");
    let code = std::fs::read_to_string(repo.path().join("words.py")).unwrap();
    assert_eq!(code, "def hello(name):\n    return \"Hello, \" + name\n");
}

/// A model that, after a round of candidates failed, makes a call it made before (a read, the
/// tests run again) is not stopped as repeating while the tests fail: a round of candidates is
/// checked in that call's place, and a passing one is applied.
#[test]
fn a_call_made_again_while_the_tests_fail_brings_a_round_of_candidates() {
    let fixed = "    return \"Hello, \" + name";
    let read =
        json!({ "tool_calls": [ { "name": "read_file", "arguments": { "path": "greet.py" } } ] });
    let (repo, requests, _, notes) = run_candidates(json!([
        replace_greeting("    return \"Hi\""), rewrite("    return \"Hey\""), rewrite("    return \"Yo\""),
        read.clone(),
        read, rewrite("    return \"Hola\""), rewrite(fixed),
        { "text": "Fixed." }
    ]));
    let code = std::fs::read_to_string(repo.path().join("greet.py")).unwrap();
    assert_eq!(code, format!("def greet(name):\n{fixed}\n"), "{notes:#?}");
    let sent = serde_json::to_string(&requests.last().unwrap().messages).unwrap();
    assert!(sent.contains("The tests pass now."), "{sent}");
    let steps: Vec<&serde_json::Value> = notes.iter().map(|n| &n["data"]["step"]).collect();
    assert_eq!(steps, [1, 1, 1, 3, 3], "the read itself is no candidate: {notes:#?}");
}
