//! The front end's state, apart from any terminal: what the agent reported, what the user is
//! typing or deciding, and the lines waiting to be printed above the live view. Input comes in
//! as agent messages and key presses; what needs the outside world comes back as [`Effect`]s.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tiller_agent::Verdict;
use tiller_tools::SERVED_SEPARATOR;
use tiller_types::{AgentEvent, ToolCall, Usage};

use crate::Tone;
use crate::input::Field;
use crate::review::{ReviewState, Stage};
use crate::slash::{self, Slash};
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
    /// Carry out a slash command.
    Slash(Slash),
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
    /// The model runs off this machine.
    pub remote: bool,
}

pub enum Mode {
    /// Waiting for a task.
    Idle,
    /// The agent is working.
    Running,
    Review(Box<ReviewState>),
    Approve {
        command: String,
        /// A served tool's name (an MCP server's), which may be approved for the session.
        tool: Option<String>,
        reply: std::sync::mpsc::Sender<Verdict>,
        /// Whether the user said no and is now typing why (in [`App::field`]).
        asking_why: bool,
    },
}

pub struct App {
    pub mode: Mode,
    /// The task being typed; kept while the model works, so typing ahead loses nothing.
    pub input: Field,
    /// The other text being typed: why a command was refused, a commit message, a note.
    pub field: Field,
    /// Streamed text of the current line, not yet complete.
    pub live: String,
    /// Finished lines, waiting to be printed above the live view.
    pub out: Vec<(Tone, String)>,
    pub status: Status,
    pub help: bool,
    /// A one-line message under the live text, e.g. how to quit.
    pub notice: Option<String>,
    /// The workspace's files, for completing `@` mentions.
    pub files: Vec<String>,
    /// The names `/model` takes: profiles and local models, for completion.
    pub models: Vec<String>,
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
    /// An app with `history`, the tasks given in earlier sessions, oldest first.
    pub fn new(status: Status, commits: bool, history: Vec<String>) -> App {
        App {
            mode: Mode::Idle,
            input: Field::new(history),
            field: Field::default(),
            live: String::new(),
            out: Vec::new(),
            status,
            help: false,
            notice: None,
            files: Vec::new(),
            models: Vec::new(),
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
                let tool = Some(call.name).filter(|n| n.contains(SERVED_SEPARATOR));
                self.mode = Mode::Approve { command, tool, reply, asking_why: false };
            }
            FromAgent::Switched { info, remote } => {
                let place = match remote {
                    true => "remote: secrets are redacted, denied files withheld",
                    false => "on this machine",
                };
                let (provider, model) = (info.provider.name(), &info.model);
                let context = info.context_length;
                let line = format!("model: {provider}/{model} ({place}; context {context} tokens)");
                self.print(Tone::Good, line);
                self.status.model = info.model;
                self.status.context_length = context;
                self.status.remote = remote;
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
                let failed = is_error || exit_failed(&output);
                let (mark, tone) = if failed { ("✗", Tone::Bad) } else { ("✓", Tone::Dim) };
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
            AgentEvent::Candidates { passed, total, .. } => {
                let tone = if passed > 0 { Tone::Dim } else { Tone::Bad };
                self.print(tone, format!("{passed} of {total} candidates pass"));
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
        if key.code == KeyCode::F(1) || (key.code == KeyCode::Char('?') && self.deciding()) {
            self.help = !self.help;
            return Vec::new();
        }
        if key.code == KeyCode::Esc && self.help {
            self.help = false;
            return Vec::new();
        }
        let enter = key.code == KeyCode::Enter && key.modifiers.is_empty();
        match &mut self.mode {
            Mode::Idle | Mode::Running if key.code == KeyCode::Tab => {
                let (files, models) = (&self.files, &self.models);
                self.input.complete(|before, word| slash::complete(before, word, files, models));
            }
            Mode::Idle if enter && self.input.text().trim_start().starts_with('/') => {
                let text = self.input.take();
                self.print(Tone::User, format!("› {}", text.trim()));
                match Slash::parse(text.trim()) {
                    Ok(Slash::Help) => {
                        let lines =
                            slash::COMMANDS.iter().map(|(n, what)| format!("{n:<9} {what}"));
                        self.out.extend(lines.map(|l| (Tone::Dim, l)));
                        self.help = true;
                    }
                    Ok(Slash::Quit) => return vec![Effect::Quit],
                    Ok(Slash::Model(None)) => self.show_model(),
                    Ok(command) => return vec![Effect::Slash(command)],
                    Err(e) => self.print(Tone::Bad, format!("✗ {e}")),
                }
            }
            Mode::Idle if enter => {
                if !self.input.text().trim().is_empty() {
                    let task = self.input.take();
                    self.print(Tone::User, format!("› {task}"));
                    self.mode = Mode::Running;
                    return vec![Effect::Submit(task)];
                }
            }
            Mode::Running if key.code == KeyCode::Esc => return self.interrupt(),
            // Typed ahead: kept in the prompt for when the model is done.
            Mode::Idle | Mode::Running => self.input.key(key),
            Mode::Approve { asking_why: false, .. } => match key.code {
                KeyCode::Char('y') => self.answer_command(Verdict::Approve),
                KeyCode::Char('a') if matches!(&self.mode, Mode::Approve { tool: Some(_), .. }) => {
                    self.answer_command(Verdict::ApproveTool)
                }
                KeyCode::Char('n') => {
                    if let Mode::Approve { asking_why, .. } = &mut self.mode {
                        *asking_why = true;
                        self.field.set("");
                    }
                }
                KeyCode::Esc => self.answer_command(Verdict::Deny { feedback: None }),
                _ => {}
            },
            Mode::Approve { asking_why: true, .. } if enter => {
                let note = self.field.take();
                let feedback = Some(note.trim().to_string()).filter(|n| !n.is_empty());
                if let Some(note) = &feedback {
                    self.print(Tone::Dim, format!("said to the model: {note}"));
                }
                self.answer_command(Verdict::Deny { feedback });
            }
            Mode::Approve { asking_why: true, .. } => self.field.key(key),
            Mode::Review(_) => return self.review_key(key, enter),
        }
        Vec::new()
    }

    /// `/model` alone: the model in use, and the names `/model NAME` takes.
    fn show_model(&mut self) {
        let place = if self.status.remote { "remote" } else { "on this machine" };
        self.print(Tone::Dim, format!("model: {} ({place})", self.status.model));
        let names = match self.models.is_empty() {
            true => "no profiles or local models found".to_string(),
            false => self.models.join(", "),
        };
        self.print(Tone::Dim, format!("/model NAME switches to one of: {names}"));
    }

    /// Text pasted into the terminal: into the field being typed, as one piece.
    pub fn on_paste(&mut self, text: &str) {
        match &self.mode {
            Mode::Idle | Mode::Running => self.input.paste(text),
            _ if self.typing() => self.field.paste(text),
            _ => {}
        }
    }

    /// Whether a one-key decision is asked for (so `?` is help, not text).
    fn deciding(&self) -> bool {
        match &self.mode {
            Mode::Review(r) => matches!(r.stage, Stage::Hunk(_)),
            Mode::Approve { asking_why, .. } => !asking_why,
            Mode::Idle | Mode::Running => false,
        }
    }

    /// Whether keys go into [`App::field`].
    fn typing(&self) -> bool {
        match &self.mode {
            Mode::Review(r) => !matches!(r.stage, Stage::Hunk(_)),
            Mode::Approve { asking_why, .. } => *asking_why,
            Mode::Idle | Mode::Running => false,
        }
    }

    /// Time passed: drops a notice that no longer applies. Whether anything changed.
    pub fn tick(&mut self) -> bool {
        let expired = self.last_ctrl_c.is_some_and(|t| t.elapsed() >= DOUBLE_PRESS);
        if expired && self.notice.is_some() {
            self.notice = None;
            self.last_ctrl_c = None;
            return true;
        }
        false
    }

    fn ctrl_c(&mut self) -> Vec<Effect> {
        let again = self.last_ctrl_c.is_some_and(|t| t.elapsed() < DOUBLE_PRESS);
        self.last_ctrl_c = Some(Instant::now());
        if again {
            return vec![Effect::Quit];
        }
        match &self.mode {
            Mode::Idle if !self.input.is_empty() => {
                self.input.take();
            }
            Mode::Idle => self.notice = Some("press Ctrl-C again to quit".into()),
            _ => return self.interrupt(),
        }
        Vec::new()
    }

    /// Stops the model and whatever it runs; a review or question in progress is answered no.
    fn interrupt(&mut self) -> Vec<Effect> {
        match &mut self.mode {
            Mode::Review(review) => {
                if let Stage::Hunk(_) = review.stage {
                    review.decide(false, true);
                }
                self.print(Tone::Bad, "✗ rejected (interrupted)");
                self.finish_review();
            }
            Mode::Approve { .. } => self.answer_command(Verdict::Deny { feedback: None }),
            Mode::Idle | Mode::Running => {}
        }
        self.notice = Some("stopping; press Ctrl-C again to quit".into());
        vec![Effect::Cancel]
    }

    fn answer_command(&mut self, verdict: Verdict) {
        if let Mode::Approve { reply, .. } = std::mem::replace(&mut self.mode, Mode::Running) {
            let _ = reply.send(verdict);
        }
    }

    fn review_key(&mut self, key: KeyEvent, enter: bool) -> Vec<Effect> {
        let Mode::Review(review) = &mut self.mode else { return Vec::new() };
        match review.stage {
            Stage::Hunk(_) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('a') => {
                    review.decide(true, key.code == KeyCode::Char('a'));
                    self.out.push((Tone::Good, "✓ accepted".into()));
                }
                KeyCode::Char('n') | KeyCode::Char('d') | KeyCode::Esc => {
                    review.decide(false, key.code != KeyCode::Char('n'));
                    self.out.push((Tone::Bad, "✗ rejected".into()));
                }
                KeyCode::Char('e') => return vec![Effect::EditHunk],
                _ => return Vec::new(),
            },
            Stage::Message if enter => {
                let message = self.field.text().trim().to_string();
                if message.is_empty() {
                    self.notice = Some("a commit needs a message".into());
                    return Vec::new();
                }
                review.message = message;
                self.field.take();
                if review.message_done() {
                    self.finish_review();
                    return Vec::new();
                }
            }
            Stage::Note if enter => {
                review.note = self.field.take();
                if !review.note.trim().is_empty() {
                    let note = review.note.trim().to_string();
                    self.print(Tone::Dim, format!("said to the model: {note}"));
                }
                self.finish_review();
                return Vec::new();
            }
            Stage::Message | Stage::Note => {
                self.field.key(key);
                return Vec::new();
            }
        }
        self.after_decision();
        Vec::new()
    }

    /// Prints the next hunk once the previous one is decided.
    fn after_decision(&mut self) {
        if let Mode::Review(review) = &self.mode {
            let lines = review.hunk_lines();
            self.out.extend(lines);
            match review.stage {
                Stage::Message => self.field.set(&review.message.clone()),
                Stage::Note => self.field.set(""),
                Stage::Hunk(_) => {}
            }
        }
    }

    /// The reviewer's edit of the current hunk came back from the editor.
    pub fn hunk_edited(&mut self, text: &str) {
        if let Mode::Review(review) = &mut self.mode {
            review.edit_hunk(text);
            self.print(Tone::Good, "hunk edited and accepted as:");
            self.out.extend(text.lines().map(|l| (Tone::Added, format!("+{l}"))));
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

/// Whether a command failed, by the first line of the shell tool's output: a non-zero exit code,
/// a signal, a timeout.
fn exit_failed(output: &str) -> bool {
    let first = output.lines().next().unwrap_or_default();
    first.strip_prefix("exit code: ").is_some_and(|code| code.trim() != "0")
        || first.starts_with("killed by signal")
        || first.starts_with("timed out after")
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
