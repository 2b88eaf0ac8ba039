//! The front end's state, apart from any terminal: what the agent reported, what the user is
//! typing or deciding, and the lines waiting to be printed above the live view. Input comes in
//! as agent messages and key presses; what needs the outside world comes back as [`Effect`]s.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tiller_agent::Verdict;
use tiller_types::{AgentEvent, ToolCall, Usage};

use crate::Tone;
use crate::review::{ReviewState, Stage};
use crate::worker::FromAgent;

/// A second Ctrl-C within this time quits.
const DOUBLE_PRESS: Duration = Duration::from_secs(2);

/// What the app needs done outside itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Run this task.
    Submit(String),
    /// Stop the model call in progress.
    Cancel,
    Quit,
    /// Open the current hunk in the user's editor.
    EditHunk,
    /// Commit `files`, just written by tool call `call_id`, with `message`.
    Commit {
        call_id: String,
        files: Vec<String>,
        message: String,
    },
}

/// What the model is working with, for the status line.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub model: String,
    pub context_length: u64,
    /// Tokens of the last call: its prompt and its answer.
    pub context_used: u64,
    pub total: Usage,
    /// The session's cost so far, from the ledger; `None` when a call had no price.
    pub cost: Option<f64>,
    pub step: u32,
}

pub enum Mode {
    /// Waiting for a task.
    Idle,
    /// The agent is working.
    Running,
    Review(Box<ReviewState>),
    Approve {
        command: String,
        reply: std::sync::mpsc::Sender<Verdict>,
        note: Option<String>,
    },
}

pub struct App {
    pub mode: Mode,
    /// The task being typed.
    pub input: String,
    /// Streamed text of the current line, not yet complete.
    pub live: String,
    /// Finished lines, waiting to be printed above the live view.
    pub out: Vec<(Tone, String)>,
    pub status: Status,
    pub help: bool,
    /// A one-line message under the live text, e.g. how to quit.
    pub notice: Option<String>,
    /// Whether each accepted change becomes a commit.
    commits: bool,
    /// The message for the commit of the change being written.
    commit_message: Option<String>,
    /// The full text of the last tool result, for Ctrl-O.
    last_output: Option<String>,
    /// Whether the model streamed text this turn (then its answer was already shown).
    streamed: bool,
    last_ctrl_c: Option<Instant>,
}

impl App {
    pub fn new(status: Status, commits: bool) -> App {
        App {
            mode: Mode::Idle,
            input: String::new(),
            live: String::new(),
            out: Vec::new(),
            status,
            help: false,
            notice: None,
            commits,
            commit_message: None,
            last_output: None,
            streamed: false,
            last_ctrl_c: None,
        }
    }

    fn print(&mut self, tone: Tone, text: impl Into<String>) {
        let text: String = text.into();
        self.out.extend(text.lines().map(|l| (tone, l.to_string())));
        if text.is_empty() {
            self.out.push((tone, String::new()));
        }
    }

    /// Moves the streamed partial line, if any, to the output.
    fn end_live(&mut self) {
        if !self.live.is_empty() {
            let line = std::mem::take(&mut self.live);
            self.print(Tone::Plain, line);
        }
    }

    pub fn on_agent(&mut self, message: FromAgent) -> Vec<Effect> {
        match message {
            FromAgent::Event(event) => return self.on_event(event),
            FromAgent::Review { call, changes, reply } => {
                self.end_live();
                let review = ReviewState::new(call, changes, reply);
                self.out.extend(review.hunk_lines());
                self.mode = Mode::Review(Box::new(review));
            }
            FromAgent::Approve { call, command, reply } => {
                self.end_live();
                self.print(Tone::Accent, format!("? run `{command}` ({})", call.id));
                self.mode = Mode::Approve { command, reply, note: None };
            }
            FromAgent::Finished(result) => {
                self.end_live();
                if let Err(e) = result {
                    self.print(Tone::Bad, format!("✗ {e}"));
                }
                self.print(Tone::Plain, "");
                self.mode = Mode::Idle;
            }
        }
        Vec::new()
    }

    fn on_event(&mut self, event: AgentEvent) -> Vec<Effect> {
        match event {
            AgentEvent::SessionStarted { session_id, provider, model, sandbox, .. } => {
                self.print(
                    Tone::Dim,
                    format!("tiller · session {session_id} · {provider}/{model}"),
                );
                for note in sandbox {
                    self.print(Tone::Dim, format!("sandbox: {note}"));
                }
            }
            AgentEvent::TurnStarted { step } => {
                self.status.step = step;
                self.streamed = false;
            }
            AgentEvent::TextDelta { text } => {
                self.streamed = true;
                self.live.push_str(&text);
                while let Some(at) = self.live.find('\n') {
                    let line: String = self.live.drain(..=at).collect();
                    self.print(Tone::Plain, line.trim_end_matches('\n'));
                }
            }
            AgentEvent::ToolCall { call } => {
                self.end_live();
                self.print(Tone::Accent, format!("→ {}", describe(&call)));
            }
            AgentEvent::ToolResult { name, output, is_error, .. } => {
                let (mark, tone) = if is_error { ("✗", Tone::Bad) } else { ("✓", Tone::Dim) };
                let first = output.lines().next().unwrap_or_default().to_string();
                let more = output.lines().count().saturating_sub(1);
                let rest = if more > 0 {
                    format!(" (+{more} lines, Ctrl-O shows them)")
                } else {
                    String::new()
                };
                self.print(tone, format!("{mark} {name}: {first}{rest}"));
                self.last_output = Some(output);
            }
            AgentEvent::ChangeProposed { .. } => {}
            AgentEvent::ChangeApplied { call_id, files } => {
                self.print(Tone::Good, format!("wrote: {}", files.join(", ")));
                let message = self.commit_message.take();
                if self.commits {
                    let message = message.unwrap_or_else(|| format!("Edit {}", files.join(", ")));
                    return vec![Effect::Commit { call_id, files, message }];
                }
            }
            AgentEvent::Rejected { feedback, .. } => {
                let why = feedback.map(|f| format!(": {f}")).unwrap_or_default();
                self.print(Tone::Bad, format!("rejected{why}"));
            }
            AgentEvent::Retry { attempt, delay_ms, reason } => {
                self.print(Tone::Dim, format!("retry {attempt} in {delay_ms} ms: {reason}"));
            }
            AgentEvent::Usage { call, total } => {
                self.status.context_used = call.tokens();
                self.status.total = total;
            }
            AgentEvent::Compacted { tokens_before, tokens_after } => {
                self.print(
                    Tone::Dim,
                    format!("compacted: {tokens_before} → {tokens_after} tokens"),
                );
            }
            AgentEvent::Answer { text } => {
                self.end_live();
                if !self.streamed {
                    self.print(Tone::Plain, text);
                }
            }
            AgentEvent::Error { message } => self.print(Tone::Bad, format!("✗ {message}")),
            AgentEvent::Warning { message } => self.print(Tone::Bad, format!("warning: {message}")),
        }
        Vec::new()
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        self.notice = None;
        if ctrl && key.code == KeyCode::Char('c') {
            return self.ctrl_c();
        }
        if ctrl && key.code == KeyCode::Char('o') {
            if let Some(output) = self.last_output.clone() {
                self.print(Tone::Dim, output);
            }
            return Vec::new();
        }
        if key.code == KeyCode::F(1) || (key.code == KeyCode::Char('?') && !self.typing()) {
            self.help = !self.help;
            return Vec::new();
        }
        if key.code == KeyCode::Esc && self.help {
            self.help = false;
            return Vec::new();
        }
        match &mut self.mode {
            Mode::Idle => match key.code {
                KeyCode::Enter if !self.input.trim().is_empty() => {
                    let task = std::mem::take(&mut self.input);
                    self.print(Tone::User, format!("› {task}"));
                    self.mode = Mode::Running;
                    return vec![Effect::Submit(task)];
                }
                code => edit(&mut self.input, code),
            },
            Mode::Running => {}
            Mode::Approve { note: None, .. } => match key.code {
                KeyCode::Char('y') => self.answer_command(Verdict::Approve),
                KeyCode::Char('n') => {
                    if let Mode::Approve { note, .. } = &mut self.mode {
                        *note = Some(String::new());
                    }
                }
                KeyCode::Esc => self.answer_command(Verdict::Deny { feedback: None }),
                _ => {}
            },
            Mode::Approve { note: Some(note), .. } => match key.code {
                KeyCode::Enter => {
                    let feedback = Some(note.trim().to_string()).filter(|n| !n.is_empty());
                    self.answer_command(Verdict::Deny { feedback });
                }
                code => edit(note, code),
            },
            Mode::Review(_) => return self.review_key(key.code),
        }
        Vec::new()
    }

    /// Whether keys go into a text field (so `?` is text, not help).
    fn typing(&self) -> bool {
        match &self.mode {
            Mode::Idle => !self.input.is_empty(),
            Mode::Review(r) => !matches!(r.stage, Stage::Hunk(_)),
            Mode::Approve { note, .. } => note.is_some(),
            Mode::Running => false,
        }
    }

    fn ctrl_c(&mut self) -> Vec<Effect> {
        let again = self.last_ctrl_c.is_some_and(|t| t.elapsed() < DOUBLE_PRESS);
        self.last_ctrl_c = Some(Instant::now());
        if again {
            return vec![Effect::Quit];
        }
        match &self.mode {
            Mode::Idle if !self.input.is_empty() => self.input.clear(),
            Mode::Idle => self.notice = Some("press Ctrl-C again to quit".into()),
            _ => {
                self.notice = Some("stopping; press Ctrl-C again to quit".into());
                return vec![Effect::Cancel];
            }
        }
        Vec::new()
    }

    fn answer_command(&mut self, verdict: Verdict) {
        if let Mode::Approve { reply, .. } = std::mem::replace(&mut self.mode, Mode::Running) {
            let _ = reply.send(verdict);
        }
    }

    fn review_key(&mut self, code: KeyCode) -> Vec<Effect> {
        let Mode::Review(review) = &mut self.mode else { return Vec::new() };
        match review.stage {
            Stage::Hunk(_) => match code {
                KeyCode::Char('y') | KeyCode::Char('a') => {
                    review.decide(true, code == KeyCode::Char('a'));
                    self.out.push((Tone::Good, "✓ accepted".into()));
                }
                KeyCode::Char('n') | KeyCode::Char('d') | KeyCode::Esc => {
                    review.decide(false, code != KeyCode::Char('n'));
                    self.out.push((Tone::Bad, "✗ rejected".into()));
                }
                KeyCode::Char('e') => return vec![Effect::EditHunk],
                _ => return Vec::new(),
            },
            Stage::Message => match code {
                KeyCode::Enter => {
                    if review.message_done() {
                        self.finish_review();
                        return Vec::new();
                    }
                }
                code => edit(&mut review.message, code),
            },
            Stage::Note => match code {
                KeyCode::Enter => {
                    self.finish_review();
                    return Vec::new();
                }
                code => edit(&mut review.note, code),
            },
        }
        self.after_decision();
        Vec::new()
    }

    /// Prints the next hunk once the previous one is decided.
    fn after_decision(&mut self) {
        if let Mode::Review(review) = &self.mode {
            let lines = review.hunk_lines();
            self.out.extend(lines);
        }
    }

    /// The reviewer's edit of the current hunk came back from the editor.
    pub fn hunk_edited(&mut self, text: &str) {
        if let Mode::Review(review) = &mut self.mode {
            review.edit_hunk(text);
            self.print(Tone::Good, "hunk edited and accepted");
            self.after_decision();
        }
    }

    /// The current hunk's text, for the editor.
    pub fn hunk_text(&self) -> Option<String> {
        match &self.mode {
            Mode::Review(review) => review.hunk_text(),
            _ => None,
        }
    }

    fn finish_review(&mut self) {
        if let Mode::Review(review) = std::mem::replace(&mut self.mode, Mode::Running) {
            self.commit_message = review.finish();
        }
    }
}

/// Applies a key to a one-line text field.
fn edit(field: &mut String, code: KeyCode) {
    match code {
        KeyCode::Char(c) => field.push(c),
        KeyCode::Backspace => {
            field.pop();
        }
        _ => {}
    }
}

/// A tool call in one line: its name and its main argument.
fn describe(call: &ToolCall) -> String {
    let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap_or_default();
    let main = ["command", "path", "pattern"].iter().find_map(|k| args[*k].as_str());
    match main {
        Some(arg) => format!("{} {}", call.name, arg.lines().next().unwrap_or_default()),
        None => call.name.clone(),
    }
}
