//! The terminal side: raw mode and the inline viewport, the loop that feeds agent messages and
//! keys to the [`App`] and carries out its [`Effect`]s (tasks, cancelling, the editor, commits),
//! and [`present`], which prints finished lines and redraws the live view in one synchronized
//! update.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::crossterm::event::{self, DisableBracketedPaste, EnableBracketedPaste, Event};
use ratatui::crossterm::terminal::{
    BeginSynchronizedUpdate, Clear, ClearType, EndSynchronizedUpdate, disable_raw_mode,
    enable_raw_mode,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::text::Line;
use ratatui::{Terminal, TerminalOptions, Viewport};
use tiller_agent::{Agent, load_session};
use tiller_ledger::{GroupBy, Ledger};
use tiller_tools::git;
use tiller_types::{AgentEvent, Message};

use crate::app::{App, Effect, Status};
use crate::slash::{self, Slash};
use crate::view::{self, Theme};
use crate::worker::{self, FromAgent, Job};

/// What the front end needs besides the agent.
pub struct Options {
    /// The workspace, for commits.
    pub root: PathBuf,
    pub session_id: String,
    /// The session log, whose length at each commit lets `tiller undo` rewind the conversation.
    pub session_path: PathBuf,
    /// Commit each accepted change.
    pub commits: bool,
    /// For the cost on the status line.
    pub ledger: Option<Ledger>,
    pub status: Status,
    /// Events to show first (the session header).
    pub intro: Vec<AgentEvent>,
    /// Lines to show after them: a resumed conversation.
    pub transcript: Vec<(crate::Tone, String)>,
    /// The file of tasks given in this workspace, one JSON string a line, for Up and Ctrl-R.
    pub history: Option<PathBuf>,
    /// The commit the session started from, for `/review`.
    pub start_head: Option<String>,
    /// The workspace's files, for completing `@` mentions.
    pub files: Vec<String>,
    /// The names `/model` takes, for completion.
    pub models: Vec<String>,
}

/// Runs the interactive session until the user quits; `/model` switches with `load_model`.
pub fn run(agent: Agent, options: Options, load_model: worker::LoadModel) -> io::Result<()> {
    let theme = Theme::from_env();
    let commits = options.commits && git::is_repo(&options.root);
    let history = options.history.as_deref().map(load_history).unwrap_or_default();
    let mut app = App::new(options.status.clone(), commits, history);
    app.files = options.files.clone();
    app.models = options.models.clone();
    for event in options.intro.iter().cloned() {
        app.on_agent(FromAgent::Event(event));
    }
    app.out.extend(options.transcript.iter().cloned());
    if options.commits && !commits {
        app.out.push((crate::Tone::Dim, "not a git repository: changes are not committed".into()));
    }
    let (to_ui, from_agent) = mpsc::channel();
    let worker = worker::spawn(agent, to_ui, load_model);
    enable_raw_mode()?;
    let restore = Restore;
    execute!(io::stdout(), EnableBracketedPaste)?;
    let mut terminal = open_terminal(io::stdout())?;
    // Drawn only when something changed: an idle screen gets no bytes at all.
    let mut dirty = true;
    loop {
        while let Ok(message) = from_agent.try_recv() {
            if let FromAgent::Review { changes, .. } = &message {
                app.out.push((crate::Tone::Dim, holdability(&options.root, changes)));
            }
            // The ledger has the previous turn once the next one starts.
            let finished = matches!(
                message,
                FromAgent::Finished(_) | FromAgent::Event(AgentEvent::TurnStarted { .. })
            );
            let effects = app.on_agent(message);
            apply(&mut app, effects, &worker, &options, &mut terminal)?;
            if finished {
                app.status.cost = session_cost(&options);
            }
            dirty = true;
        }
        dirty |= app.tick();
        if dirty {
            present(&mut terminal, &mut app, theme)?;
            dirty = false;
        }
        if event::poll(Duration::from_millis(25))? {
            dirty = true;
            match event::read()? {
                Event::Key(key) => {
                    let effects = app.on_key(key);
                    if effects.contains(&Effect::Quit) {
                        break;
                    }
                    apply(&mut app, effects, &worker, &options, &mut terminal)?;
                }
                Event::Paste(text) => app.on_paste(&text),
                Event::Resize(..) => terminal = resized(terminal, io::stdout)?,
                _ => {}
            }
        }
    }
    worker.cancel.cancel();
    // The live view goes; what was printed above it stays in the scrollback.
    terminal.clear()?;
    drop(restore);
    // The agent thread ends with the task it is on; its channel is closed, so it asks nothing.
    drop(worker.tasks);
    let _ = writeln!(io::stdout());
    Ok(())
}

/// The inline live view at the cursor, on `out`.
fn open_terminal<W: Write>(out: W) -> io::Result<Terminal<CrosstermBackend<W>>> {
    let viewport = Viewport::Inline(view::HEIGHT);
    Terminal::with_options(CrosstermBackend::new(out), TerminalOptions { viewport })
}

/// The live view after the terminal changed size. ratatui would clear the whole screen when the
/// width shrinks (and move the view to the top); instead the old view's rows are cleared from
/// their top down, the transcript above them stays, and a new view opens there.
pub fn resized<W: Write>(
    mut terminal: Terminal<CrosstermBackend<W>>,
    out: impl FnOnce() -> W,
) -> io::Result<Terminal<CrosstermBackend<W>>> {
    let size = terminal.size()?;
    let top = terminal.get_frame().area().y.min(size.height.saturating_sub(view::HEIGHT));
    execute!(terminal.backend_mut(), cursor::MoveTo(0, top), Clear(ClearType::FromCursorDown))?;
    drop(terminal);
    open_terminal(out())
}

/// Carries out a slash command, printing what it says.
fn slash_command(app: &mut App, command: Slash, worker: &worker::Worker, options: &Options) {
    let (dim, bad) = (crate::Tone::Dim, crate::Tone::Bad);
    let mut say = |tone, text: String| app.out.extend(text.lines().map(|l| (tone, l.to_string())));
    match command {
        Slash::Cost => say(dim, session_usage(options)),
        Slash::Diff => match git::git(&options.root, &["diff", "--no-ext-diff", "HEAD"]) {
            Ok(diff) if diff.is_empty() => say(dim, "no uncommitted changes".into()),
            Ok(diff) => say(crate::Tone::Plain, diff),
            Err(e) => say(bad, format!("✗ {e}")),
        },
        Slash::Review => {
            let range = format!("{}..HEAD", options.start_head.as_deref().unwrap_or("HEAD"));
            match tiller_review::report_range(&options.root, &range) {
                Ok(report) => say(dim, report.render()),
                Err(e) => say(bad, format!("✗ {e}")),
            }
        }
        Slash::Undo => {
            let undone = crate::undo::last_step(&options.root)
                .and_then(|step| Ok((crate::undo::reset_step(&options.root)?, step)));
            match undone {
                Ok((subject, step)) if step.session == options.session_id => {
                    let _ = worker.tasks.send(Job::Rewind(step.keep, true));
                    say(crate::Tone::Good, format!("undid {subject}"));
                }
                Ok((subject, step)) => {
                    say(dim, format!("undid {subject} (of session {})", step.session))
                }
                Err(e) => say(bad, format!("✗ {e}")),
            }
        }
        Slash::Compact => {
            let _ = worker.tasks.send(Job::Compact);
            say(dim, "compacting…".into());
        }
        Slash::Clear => {
            let _ = worker.tasks.send(Job::Rewind(0, false));
            say(dim, "new conversation: the model starts afresh".into());
        }
        Slash::Resume(id) => say(dim, past_sessions(options, id.as_deref())),
        Slash::Model(Some(name)) => {
            let _ = worker.tasks.send(Job::Model(name.clone()));
            say(dim, format!("switching to {name}…"));
        }
        Slash::Help | Slash::Quit | Slash::Model(None) => {}
    }
}

/// `task` with the content of each `@path` it mentions appended (line ranges as given), read
/// through the workspace's confinement; a mention that cannot be read is reported and left out.
fn with_mentions(
    root: &std::path::Path,
    mut task: String,
    out: &mut Vec<(crate::Tone, String)>,
) -> String {
    let Ok(ws) = tiller_tools::Workspace::new(root) else { return task };
    for (path, range) in slash::mentions(&task.clone()) {
        let read = ws
            .resolve(&path)
            .map_err(|e| e.to_string())
            .and_then(|full| std::fs::read_to_string(full).map_err(|e| format!("{path}: {e}")));
        let text = match read {
            Ok(text) => text,
            Err(e) => {
                out.push((crate::Tone::Bad, format!("✗ @{path} not attached: {e}")));
                continue;
            }
        };
        let (first, last) = range.unwrap_or((1, text.lines().count().max(1)));
        let lines: Vec<&str> = text.lines().skip(first - 1).take(last + 1 - first).collect();
        task.push_str(&format!("\n\n{path} (lines {first}-{last}):\n{}", lines.join("\n")));
        out.push((crate::Tone::Dim, format!("attached @{path} ({} lines)", lines.len())));
    }
    task
}

/// This session's calls and tokens from the ledger, for `/cost`.
fn session_usage(options: &Options) -> String {
    let Some(ledger) = &options.ledger else { return "no ledger: nothing recorded".into() };
    let rows = ledger.summary(GroupBy::Session, None).unwrap_or_default();
    match rows.into_iter().find(|r| r.key == options.session_id) {
        Some(r) => format!(
            "this session: {} calls ({} failed) · in {} ({} cached) · out {} · ${:.4}{}",
            r.calls,
            r.failed_calls,
            r.prompt_tokens,
            r.cached_tokens,
            r.completion_tokens,
            r.cost,
            if r.unpriced_calls > 0 { " (some calls have no price)" } else { "" },
        ),
        None => "this session: no model calls yet".into(),
    }
}

/// The recorded sessions of this workspace, newest last, for `/resume`.
fn past_sessions(options: &Options, id: Option<&str>) -> String {
    if let Some(id) = id {
        return format!("quit, then `tiller --resume {id}` continues that session here");
    }
    let Some(dir) = options.session_path.parent() else { return String::new() };
    let root = options.root.display().to_string();
    let lines: Vec<String> = tiller_agent::list_sessions(dir)
        .into_iter()
        .filter(|s| s.meta.workspace == root && s.meta.id != options.session_id)
        .map(|s| {
            let task = s.messages.iter().find_map(|m| match m {
                Message::User { content } => content.lines().next().map(str::to_string),
                _ => None,
            });
            format!("{}  {}  {}", s.meta.id, s.meta.created, task.unwrap_or_default())
        })
        .collect();
    match lines.is_empty() {
        true => "no other session in this workspace".into(),
        false => lines.join("\n") + "\n`/resume ID` says how to continue one",
    }
}

/// Earlier tasks from a history file; a line that does not parse is skipped.
fn load_history(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut tasks: Vec<String> =
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    tasks.drain(..tasks.len().saturating_sub(crate::input::HISTORY_LIMIT));
    tasks
}

/// Adds `task` to the history file (best effort: a task is never lost for want of history).
fn save_history(path: &std::path::Path, task: &str) {
    let line = serde_json::Value::String(task.into()).to_string();
    let _ = path.parent().map(std::fs::create_dir_all);
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
    let _ = file.and_then(|mut f| writeln!(f, "{line}"));
}

/// Carries out what the app asked for.
fn apply(
    app: &mut App,
    effects: Vec<Effect>,
    worker: &worker::Worker,
    options: &Options,
    terminal: &mut Terminal<CrosstermBackend<io::Stdout>>,
) -> io::Result<()> {
    for effect in effects {
        match effect {
            Effect::Submit(task) => {
                if let Some(path) = &options.history {
                    save_history(path, &task);
                }
                let task = with_mentions(&options.root, task, &mut app.out);
                worker.cancel.reset();
                let _ = worker.tasks.send(Job::Task(task));
            }
            Effect::Slash(command) => slash_command(app, command, worker, options),
            Effect::Cancel => worker.cancel.cancel(),
            Effect::Quit => {}
            Effect::EditHunk => {
                if let Some(text) = app.hunk_text() {
                    let edited = edit_in_editor(&text)?;
                    terminal.clear()?;
                    match edited {
                        Some(edited) => app.hunk_edited(&edited),
                        None => app.out.push((crate::Tone::Dim, "edit abandoned".into())),
                    }
                }
            }
            Effect::Commit { call_id, files, message } => {
                let messages = messages_before(&options.session_path, &call_id);
                let trailers = [
                    (git::SESSION_TRAILER, options.session_id.clone()),
                    (git::MESSAGES_TRAILER, messages.to_string()),
                ];
                let line = match git::commit(&options.root, &files, &message, &trailers) {
                    Ok(hash) => (crate::Tone::Good, format!("committed {hash} {message}")),
                    Err(e) => (crate::Tone::Bad, format!("✗ not committed: {e}")),
                };
                app.out.push(line);
            }
        }
    }
    Ok(())
}

/// Prints the app's finished lines above the live view and redraws the view, as one
/// synchronized update. Lines are cut to the terminal's width here, so the scrollback holds them
/// as wrapped rows.
pub fn present<B: Backend + Write>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    theme: Theme,
) -> io::Result<()>
where
    B::Error: Into<io::Error>,
{
    execute!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    let width = terminal.size().map_err(Into::into)?.width.max(1);
    let rows: Vec<Line> = app
        .out
        .drain(..)
        .flat_map(|(tone, text)| {
            crate::wrap::rows(&text, width.into()).into_iter().map(move |r| (tone, r))
        })
        .map(|(tone, row)| Line::styled(row, theme.style(tone)))
        .collect();
    for chunk in rows.chunks(256) {
        terminal
            .insert_before(chunk.len() as u16, |buf| {
                for (y, row) in chunk.iter().enumerate() {
                    buf.set_line(0, y as u16, row, width);
                }
            })
            .map_err(Into::into)?;
    }
    terminal.draw(|frame| view::draw(frame, app, theme)).map_err(Into::into)?;
    execute!(terminal.backend_mut(), EndSynchronizedUpdate)
}

/// Opens `text` in `$VISUAL`, `$EDITOR` or `vi`, and returns what the user saved; `None` when
/// the editor failed or was quit with an error (`:cq`), which leaves the hunk undecided.
fn edit_in_editor(text: &str) -> io::Result<Option<String>> {
    let file = tempfile::Builder::new().suffix(".txt").tempfile()?;
    std::fs::write(file.path(), text)?;
    let editor =
        std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or("vi".into());
    disable_raw_mode()?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status();
    enable_raw_mode()?;
    if !status?.success() {
        return Ok(None);
    }
    std::fs::read_to_string(file.path()).map(Some)
}

/// How many messages of the session come before the model turn that made tool call `call_id`:
/// what `tiller undo` keeps.
fn messages_before(session: &std::path::Path, call_id: &str) -> usize {
    let messages = load_session(session).map(|s| s.messages).unwrap_or_default();
    let made_call = |m: &Message| match m {
        Message::Assistant { tool_calls, .. } => tool_calls.iter().any(|c| c.id == call_id),
        _ => false,
    };
    messages.iter().position(made_call).unwrap_or(messages.len())
}

/// The holdability report of a proposed step, in one line.
fn holdability(root: &std::path::Path, changes: &tiller_types::ChangeSet) -> String {
    match tiller_review::report_changes(root, changes, &changes.accept_all()) {
        Ok(report) => format!("step: {}", report.render().lines().next().unwrap_or_default()),
        Err(e) => format!("step: no report ({e})"),
    }
}

/// The session's cost so far, from the ledger.
fn session_cost(options: &Options) -> Option<f64> {
    let rows = options.ledger.as_ref()?.summary(GroupBy::Session, None).ok()?;
    match rows.into_iter().find(|r| r.key == options.session_id) {
        Some(row) => (row.unpriced_calls == 0).then_some(row.cost),
        None => Some(0.0),
    }
}

/// Leaves raw mode and shows the cursor when dropped, on any way out.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), DisableBracketedPaste);
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), cursor::Show);
    }
}
