//! The terminal side: raw mode and the inline viewport, the loop that feeds agent messages and
//! keys to the [`App`] and carries out its [`Effect`]s (tasks, cancelling, the editor, commits),
//! and [`present`], which prints finished lines and redraws the live view in one synchronized
//! update.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::crossterm::event::{self, Event};
use ratatui::crossterm::terminal::{
    BeginSynchronizedUpdate, EndSynchronizedUpdate, disable_raw_mode, enable_raw_mode,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::text::Line;
use ratatui::{Terminal, TerminalOptions, Viewport};
use tiller_agent::{Agent, load_session};
use tiller_ledger::{GroupBy, Ledger};
use tiller_tools::git;
use tiller_types::{AgentEvent, Message};

use crate::app::{App, Effect, Status};
use crate::view::{self, Theme};
use crate::worker::{self, FromAgent};

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
}

/// Runs the interactive session until the user quits.
pub fn run(agent: Agent, options: Options) -> io::Result<()> {
    let theme = Theme::from_env();
    let commits = options.commits && git::is_repo(&options.root);
    let mut app = App::new(options.status.clone(), commits);
    for event in options.intro.iter().cloned() {
        app.on_agent(FromAgent::Event(event));
    }
    if options.commits && !commits {
        app.out.push((crate::Tone::Dim, "not a git repository: changes are not committed".into()));
    }
    let (to_ui, from_agent) = mpsc::channel();
    let worker = worker::spawn(agent, to_ui);
    enable_raw_mode()?;
    let restore = Restore;
    let backend = CrosstermBackend::new(io::stdout());
    let viewport = Viewport::Inline(view::HEIGHT);
    let mut terminal = Terminal::with_options(backend, TerminalOptions { viewport })?;
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
        }
        present(&mut terminal, &mut app, theme)?;
        if event::poll(Duration::from_millis(25))? {
            match event::read()? {
                Event::Key(key) => {
                    let effects = app.on_key(key);
                    if effects.contains(&Effect::Quit) {
                        break;
                    }
                    apply(&mut app, effects, &worker, &options, &mut terminal)?;
                }
                Event::Resize(..) => terminal.autoresize()?,
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
    println!();
    Ok(())
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
                worker.cancel.reset();
                let _ = worker.tasks.send(task);
            }
            Effect::Cancel => worker.cancel.cancel(),
            Effect::Quit => {}
            Effect::EditHunk => {
                if let Some(text) = app.hunk_text() {
                    let edited = edit_in_editor(&text)?;
                    terminal.clear()?;
                    app.hunk_edited(&edited);
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
        .flat_map(|(tone, text)| wrap(&text, width as usize).into_iter().map(move |r| (tone, r)))
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

/// `text` cut into rows of at most `width` characters; an empty text is one empty row.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let text = text.replace('\t', "    ");
    // Escape sequences go whole (`ESC [2J`, not just its ESC), then any control left.
    let text = tiller_types::text::printable(&text);
    let chars: Vec<char> = text.chars().filter(|c| !c.is_control()).collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars.chunks(width).map(|c| c.iter().collect()).collect()
}

/// Opens `text` in `$VISUAL`, `$EDITOR` or `vi`, and returns what the user saved.
fn edit_in_editor(text: &str) -> io::Result<String> {
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
    status?;
    std::fs::read_to_string(file.path())
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
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), cursor::Show);
    }
}
