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
    let mut app = App::new(status, true);
    app.on_agent(FromAgent::Event(AgentEvent::TurnStarted { step: 3 }));
    let call = Usage { prompt_tokens: 9_500, cached_tokens: 8_000, completion_tokens: 240 };
    let total = Usage { prompt_tokens: 21_000, cached_tokens: 16_000, completion_tokens: 900 };
    app.on_agent(FromAgent::Event(AgentEvent::Usage { call, total }));
    app
}

fn frame(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(100, HEIGHT)).unwrap();
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
