//! Drawing the live view: the last streamed line, the prompt of the current mode, and the status
//! line; or the help overlay. Everything finished is printed above it, into the terminal's own
//! scrollback, where it can be scrolled, selected and copied.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::Tone;
use crate::app::{App, Mode, Status};
use crate::review::Stage;

/// Rows of the live view.
pub const HEIGHT: u16 = 6;

const HELP: &[&str] = &[
    "Enter send the task · Ctrl-C stop the model, twice quits · Ctrl-O last tool output · F1 or ? help",
    "review: y accept hunk · n reject · e edit in $EDITOR · a accept the rest · d reject the rest",
    "then edit the commit message, Enter; say why to the model (optional), Enter",
    "commands: y run · n refuse and say why · Esc refuse · Esc closes this help",
];

/// How a [`Tone`] looks, with or without colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to anything non-empty (no-color.org).
    pub fn from_env() -> Theme {
        Theme { color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) }
    }

    pub fn style(self, tone: Tone) -> Style {
        let style = Style::new();
        let colored = |c: Color| if self.color { style.fg(c) } else { style };
        match tone {
            Tone::Plain => style,
            Tone::Dim | Tone::Context => style.add_modifier(Modifier::DIM),
            Tone::User => style.add_modifier(Modifier::BOLD),
            Tone::Accent => colored(Color::Cyan),
            Tone::Added => colored(Color::Green),
            Tone::Removed => colored(Color::Red),
            Tone::Good => colored(Color::Green),
            Tone::Bad => colored(Color::Red).add_modifier(Modifier::BOLD),
        }
    }
}

pub fn draw(frame: &mut Frame, app: &App, theme: Theme) {
    let [body, prompt, status] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(1), Constraint::Length(1)])
            .areas(frame.area());
    let body_text: Vec<Line> = if app.help {
        HELP.iter().map(|l| Line::styled(*l, theme.style(Tone::Accent))).collect()
    } else {
        let mut lines = vec![Line::raw(app.live.as_str())];
        if let Some(notice) = &app.notice {
            lines.push(Line::styled(notice.as_str(), theme.style(Tone::Bad)));
        }
        lines
    };
    frame.render_widget(Paragraph::new(body_text), body);
    let (label, field, hint) = prompt_parts(app);
    let line = Line::from(vec![
        Span::styled(label.clone(), theme.style(Tone::Accent)),
        Span::raw(field.unwrap_or_default()),
        Span::styled(hint, theme.style(Tone::Dim)),
    ]);
    frame.render_widget(Paragraph::new(line), prompt);
    if let Some(field) = field {
        let x = prompt.x + (label.chars().count() + field.chars().count()) as u16;
        frame.set_cursor_position(Position::new(x.min(prompt.right().saturating_sub(1)), prompt.y));
    }
    let style = theme.style(Tone::Dim).add_modifier(Modifier::REVERSED);
    frame.render_widget(Paragraph::new(status_line(&app.status)).style(style), status);
}

/// The prompt row: a label, the text field being typed if any, and a hint of the keys.
fn prompt_parts(app: &App) -> (String, Option<&str>, String) {
    match &app.mode {
        Mode::Idle => ("› ".into(), Some(app.input.as_str()), String::new()),
        Mode::Running => ("working… ".into(), None, "Ctrl-C stops".into()),
        Mode::Approve { command, note: None, .. } => {
            (format!("run `{command}`? "), None, "y yes · n no · ? help".into())
        }
        Mode::Approve { note: Some(note), .. } => {
            ("why not? › ".into(), Some(note.as_str()), String::new())
        }
        Mode::Review(review) => match (&review.stage, review.current()) {
            (Stage::Hunk(_), Some((n, total, file))) => (
                format!("{} hunk {n}/{total}: ", file.path),
                None,
                "y accept · n reject · e edit · a accept rest · d reject rest · ? help".into(),
            ),
            (Stage::Message, _) => {
                ("commit message › ".into(), Some(review.message.as_str()), String::new())
            }
            _ => (
                "note for the model (Enter to skip) › ".into(),
                Some(review.note.as_str()),
                String::new(),
            ),
        },
    }
}

fn status_line(s: &Status) -> String {
    let cost = s.cost.map_or_else(|| "cost n/a".to_string(), |c| format!("${c:.4}"));
    let percent = (s.context_used * 100).checked_div(s.context_length).unwrap_or(0);
    format!(
        " {} · context {}/{} ({percent}%) · in {} ({} cached) out {} · {cost} · step {} · F1 help",
        s.model,
        short(s.context_used),
        short(s.context_length),
        short(s.total.prompt_tokens),
        short(s.total.cached_tokens),
        short(s.total.completion_tokens),
        s.step
    )
}

/// A count in a few characters: 950, 12.3k, 1.2M.
fn short(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}
