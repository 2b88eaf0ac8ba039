//! The live view as drawn, in each mode, on ratatui's test backend; and the lines printed above
//! it for a hunk under review.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tiller_tui::{App, Effect, FromAgent, HEIGHT, Status, Theme, draw};
use tiller_types::{AgentEvent, ChangeKind, ChangeSet, FileChange, Hunk, ToolCall, Usage};

fn app() -> App {
    let status = Status {
        model: "qwen2.5-coder".into(),
        context_length: 32_768,
        cost: Some(0.0123),
        ..Status::default()
    };
    let mut app = App::new(status, true, Vec::new());
    app.on_agent(FromAgent::Event(AgentEvent::TurnStarted { step: 3 }));
    let call = Usage { prompt_tokens: 9_500, cached_tokens: 8_000, completion_tokens: 240 };
    let total = Usage { prompt_tokens: 21_000, cached_tokens: 16_000, completion_tokens: 900 };
    app.on_agent(FromAgent::Event(AgentEvent::Usage { call, total }));
    app
}

fn frame(app: &App) -> String {
    frame_at(app, 100)
}

fn frame_at(app: &App, width: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, HEIGHT)).unwrap();
    terminal.draw(|f| draw(f, app, Theme { color: false })).unwrap();
    terminal.backend().to_string()
}

fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn change() -> ChangeSet {
    let old = "fn a() {\n    1\n}\n\nfn b() {\n    2\n}\n".to_string();
    let hunks = vec![
        Hunk { old_start: 1, removed: vec!["    1\n".into()], added: vec!["    10\n".into()] },
        Hunk { old_start: 5, removed: vec!["    2\n".into()], added: vec!["    20\n".into()] },
    ];
    let new = "fn a() {\n    10\n}\n\nfn b() {\n    20\n}\n".to_string();
    let file = FileChange {
        path: "src/lib.rs".into(),
        kind: ChangeKind::Update,
        old: Some(old),
        new: Some(new),
        hunks,
    };
    ChangeSet { files: vec![file] }
}

#[test]
fn idle_prompt_streaming_text_and_status_line() {
    let mut app = app();
    for c in "add a test".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    app.on_agent(FromAgent::Event(AgentEvent::TextDelta { text: "Reading the fi".into() }));
    insta::assert_snapshot!("idle", frame(&app));
}

#[test]
fn review_prints_each_hunk_and_asks_for_a_decision() {
    let mut app = app();
    let (reply, answer) = mpsc::channel();
    let call = ToolCall {
        id: "call_1".into(),
        name: "apply_patch".into(),
        arguments: r#"{"patch": "…", "message": "Scale both constants"}"#.into(),
    };
    app.on_agent(FromAgent::Review { call, changes: change(), reply });
    let printed: Vec<String> = app.out.drain(..).map(|(_, l)| l).collect();
    insta::assert_snapshot!("review_first_hunk", printed.join("\n"));
    insta::assert_snapshot!("review_prompt", frame(&app));

    key(&mut app, KeyCode::Char('y'));
    key(&mut app, KeyCode::Char('n'));
    insta::assert_snapshot!("review_message", frame(&app));
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Char('!'));
    key(&mut app, KeyCode::Enter);
    for c in "keep b".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    let review = answer.try_recv().unwrap();
    assert_eq!(review.selection.0, [vec![true, false]]);
    assert_eq!(review.feedback.as_deref(), Some("keep b"));
    // The accepted change is committed with the (edited) proposed message once written.
    let applied =
        AgentEvent::ChangeApplied { call_id: "call_1".into(), files: vec!["src/lib.rs".into()] };
    assert_eq!(
        app.on_agent(FromAgent::Event(applied)),
        [Effect::Commit {
            call_id: "call_1".into(),
            files: vec!["src/lib.rs".into()],
            message: "Scale both constant!".into()
        }]
    );
}

#[test]
fn approval_prompt_and_help_overlay() {
    let mut app = app();
    let (reply, answer) = mpsc::channel();
    let call = ToolCall { id: "call_2".into(), name: "shell".into(), arguments: "{}".into() };
    app.on_agent(FromAgent::Approve { call, command: "cargo test".into(), reply });
    insta::assert_snapshot!("approve", frame(&app));
    key(&mut app, KeyCode::F(1));
    insta::assert_snapshot!("help", frame(&app));
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('n'));
    for c in "not yet".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        answer.try_recv().unwrap(),
        tiller_agent::Verdict::Deny { feedback: Some("not yet".into()) }
    );
}

#[test]
fn a_served_tool_may_be_approved_for_the_session() {
    let mut app = app();
    let (reply, answer) = mpsc::channel();
    let call = ToolCall { id: "call_3".into(), name: "shell".into(), arguments: "{}".into() };
    app.on_agent(FromAgent::Approve { call, command: "make".into(), reply });
    key(&mut app, KeyCode::Char('a'));
    assert!(answer.try_recv().is_err(), "no `always` for tiller's own tools");
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(answer.try_recv().unwrap(), tiller_agent::Verdict::Approve);
    let (reply, answer) = mpsc::channel();
    let name = "time__get_current_time";
    let call = ToolCall { id: "call_4".into(), name: name.into(), arguments: "{}".into() };
    app.on_agent(FromAgent::Approve { call, command: format!("{name} {{}}"), reply });
    assert!(frame(&app).contains("a always for time__get_current_time"), "{}", frame(&app));
    key(&mut app, KeyCode::Char('a'));
    assert_eq!(answer.try_recv().unwrap(), tiller_agent::Verdict::ApproveTool);
}

#[test]
fn ctrl_c_cancels_a_run_and_twice_quits() {
    let mut app = app();
    for c in "go".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    assert_eq!(key(&mut app, KeyCode::Enter), [Effect::Submit("go".into())]);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.on_key(ctrl_c), [Effect::Cancel]);
    assert_eq!(app.on_key(ctrl_c), [Effect::Quit]);
}

/// At 40 and 120 columns: the streamed line wraps (its end is always visible), a multi-line
/// task keeps its lines, the review keys wrap instead of being cut, and the status line keeps
/// what fits.
#[test]
fn frames_at_40_and_120_columns() {
    for width in [40, 120] {
        let mut app = app();
        app.on_paste("fix the parser\nand add a test for it");
        let text = "The failing test calls parse with an empty string, and the loop never \
                    checks for the end of input, so it reads past the last character";
        app.on_agent(FromAgent::Event(AgentEvent::TextDelta { text: text.into() }));
        insta::assert_snapshot!(format!("streaming_{width}"), frame_at(&app, width));

        let (reply, _answer) = mpsc::channel();
        let call = ToolCall { id: "c1".into(), name: "apply_patch".into(), arguments: "{}".into() };
        app.on_agent(FromAgent::Review { call, changes: change(), reply });
        insta::assert_snapshot!(format!("review_{width}"), frame_at(&app, width));
    }
}

#[test]
fn typing_ahead_a_question_mark_and_an_empty_commit_message() {
    let mut app = app();
    key(&mut app, KeyCode::Char('?'));
    assert!(!app.help, "? at the prompt is text");
    assert_eq!(app.input.text(), "?");
    key(&mut app, KeyCode::Enter);
    for c in "next".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    assert_eq!(app.input.text(), "next", "typed while the model works");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.input.text(), "next", "Enter while working keeps the text");

    let (reply, answer) = mpsc::channel();
    let call = ToolCall { id: "c1".into(), name: "apply_patch".into(), arguments: "{}".into() };
    app.on_agent(FromAgent::Review { call, changes: change(), reply });
    key(&mut app, KeyCode::Char('a'));
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    assert_eq!(app.field.text(), "");
    key(&mut app, KeyCode::Enter);
    assert!(app.notice.as_deref().unwrap_or_default().contains("needs a message"));
    assert!(answer.try_recv().is_err(), "no review sent without a message");
    for c in "Scale".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert!(answer.try_recv().is_ok());
}

#[test]
fn ctrl_c_in_review_rejects_the_rest_and_stops() {
    let mut app = app();
    key(&mut app, KeyCode::Char('x'));
    key(&mut app, KeyCode::Enter);
    let (reply, answer) = mpsc::channel();
    let call = ToolCall { id: "c1".into(), name: "apply_patch".into(), arguments: "{}".into() };
    app.on_agent(FromAgent::Review { call, changes: change(), reply });
    key(&mut app, KeyCode::Char('y'));
    let effects = app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert_eq!(effects, [Effect::Cancel]);
    let review = answer.try_recv().expect("the review is answered");
    assert_eq!(review.selection.0, [vec![true, false]]);
}

#[test]
fn a_failing_command_is_marked_as_failed() {
    let mut app = app();
    let result = |output: &str| AgentEvent::ToolResult {
        call_id: "c".into(),
        name: "shell".into(),
        output: output.into(),
        is_error: false,
    };
    app.on_agent(FromAgent::Event(result("exit code: 1\nboom")));
    app.on_agent(FromAgent::Event(result("exit code: 0\nfine")));
    let lines: Vec<&str> = app.out.iter().map(|(_, l)| l.as_str()).collect();
    assert!(lines.contains(&"✗ shell: exit code: 1 (+1 lines, Ctrl-O shows them)"), "{lines:?}");
    assert!(lines.contains(&"✓ shell: exit code: 0 (+1 lines, Ctrl-O shows them)"), "{lines:?}");
}

fn typed(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| key(app, KeyCode::Char(c))).collect()
}

fn printed(app: &mut App) -> String {
    let lines: Vec<String> = app.out.drain(..).map(|(_, line)| line).collect();
    lines.join("\n")
}

#[test]
fn model_shows_completes_and_switches() {
    let mut app = app();
    app.models = vec!["fast".into(), "smollm2".into(), "smollm3".into()];
    typed(&mut app, "/mo");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/model ");
    key(&mut app, KeyCode::Enter);
    let shown = printed(&mut app);
    assert!(shown.contains("model: qwen2.5-coder (on this machine)"), "{shown}");
    assert!(shown.contains("switches to one of: fast, smollm2, smollm3"), "{shown}");

    typed(&mut app, "/model s");
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.input.text(), "/model smollm", "smollm2 or smollm3");
    typed(&mut app, "2");
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(effects, [Effect::Slash(tiller_tui::slash::Slash::Model(Some("smollm2".into())))]);
    assert!(matches!(app.mode, tiller_tui::Mode::Idle), "a switch is no task");
    assert_eq!(printed(&mut app), "› /model smollm2");

    // The worker switched: the status line and `/model` follow.
    let info = tiller_model::ModelInfo {
        provider: tiller_types::ProviderKind::Openai,
        model: "gpt-4o".into(),
        context_length: 128_000,
        endpoint: Some("https://api.openai.com/v1".into()),
    };
    app.on_agent(FromAgent::Switched { info, remote: true });
    let shown = printed(&mut app);
    assert_eq!(
        shown,
        "model: openai/gpt-4o (remote: secrets are redacted, denied files withheld; context \
         128000 tokens)"
    );
    assert!(frame(&app).contains("gpt-4o"), "{}", frame(&app));
    assert!(!frame(&app).contains("qwen2.5-coder"));
    typed(&mut app, "/model");
    key(&mut app, KeyCode::Enter);
    assert!(printed(&mut app).contains("model: gpt-4o (remote)"));
}
