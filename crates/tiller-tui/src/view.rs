//! Drawing the live view: the last streamed line, the prompt of the current mode, and the status
//! line; or the help overlay. Everything finished is printed above it, into the terminal's own
//! scrollback, where it can be scrolled, selected and copied.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use unicode_width::UnicodeWidthStr;

use crate::Tone;
use crate::app::{App, Mode, Status};
use crate::input::Field;
use crate::review::Stage;

/// Rows of the live view.
pub const HEIGHT: u16 = 6;

const HELP: &[&str] = &[
    "Enter send · Alt-Enter new line · Up/Down history · Ctrl-R search · Esc or Ctrl-C stop, twice quits",
    "review: y accept hunk · n or Esc reject · e edit in $EDITOR · a accept the rest · d reject the rest",
    "then edit the commit message, Enter; say why to the model (optional), Enter",
    "commands: y run · a always (MCP tool) · n say why not · Esc refuse · Ctrl-O last output · F1 closes",
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

/// Rows the text fields may take; longer text scrolls within them.
const MAX_FIELD_ROWS: u16 = 3;

pub fn draw(frame: &mut Frame, app: &App, theme: Theme) {
    let width = frame.area().width.max(1);
    let (label, field, hint) = prompt_parts(app);
    let label_width = (label.width() as u16).min(width / 2);
    let prompt_rows = match field {
        Some(field) => field.rows(width - label_width).min(MAX_FIELD_ROWS),
        None => {
            let rows = crate::wrap::rows(&format!("{label}{hint}"), width.into()).len() as u16;
            rows.min(MAX_FIELD_ROWS)
        }
    };
    let [body, prompt, status] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(prompt_rows),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let body_text: Vec<Line> = if app.help {
        HELP.iter().map(|l| Line::styled(*l, theme.style(Tone::Accent))).collect()
    } else {
        // The end of the line being streamed, wrapped: what fits above the notice.
        let notice = app.notice.as_ref().map(|n| Line::styled(n.as_str(), theme.style(Tone::Bad)));
        let room = usize::from(body.height).saturating_sub(usize::from(notice.is_some()));
        let rows = crate::wrap::rows(&app.live, width.into());
        let mut lines: Vec<Line> =
            rows[rows.len().saturating_sub(room)..].iter().map(|r| Line::raw(r.clone())).collect();
        lines.extend(notice);
        lines
    };
    frame.render_widget(Paragraph::new(body_text).wrap(Wrap { trim: false }), body);
    match field {
        Some(field) => {
            let [label_area, field_area] =
                Layout::horizontal([Constraint::Length(label_width), Constraint::Fill(1)])
                    .areas(prompt);
            frame.render_widget(Span::styled(label, theme.style(Tone::Accent)), label_area);
            frame.render_widget(field.widget(), field_area);
        }
        None => {
            let line = Line::from(vec![
                Span::styled(label, theme.style(Tone::Accent)),
                Span::styled(hint, theme.style(Tone::Dim)),
            ]);
            frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: false }), prompt);
        }
    }
    let style = theme.style(Tone::Dim).add_modifier(Modifier::REVERSED);
    let line = status_line(&app.status, width.into());
    frame.render_widget(Paragraph::new(line).style(style), status);
}

/// The prompt: a label, the text field being typed if any, and a hint of the keys.
fn prompt_parts(app: &App) -> (String, Option<&Field>, String) {
    match &app.mode {
        Mode::Idle => ("› ".into(), Some(&app.input), String::new()),
        Mode::Running if !app.input.is_empty() => {
            ("(next) › ".into(), Some(&app.input), String::new())
        }
        Mode::Running => ("working… ".into(), None, "Esc or Ctrl-C stops".into()),
        Mode::Approve { command, tool, asking_why: false, .. } => {
            let keys = match tool {
                Some(tool) => format!("y yes · a always for {tool} · n no · ? help"),
                None => "y yes · n no · ? help".into(),
            };
            (format!("run `{command}`? "), None, keys)
        }
        Mode::Approve { asking_why: true, .. } => {
            ("why not? › ".into(), Some(&app.field), String::new())
        }
        Mode::Review(review) => match (&review.stage, review.current()) {
            (Stage::Hunk(_), Some((n, total, file))) => (
                format!("{} hunk {n}/{total}: ", file.path),
                None,
                "y accept · n/Esc reject · e edit · a accept rest · d reject rest · ? help".into(),
            ),
            (Stage::Message, _) => ("commit message › ".into(), Some(&app.field), String::new()),
            _ => ("note for the model (Enter to skip) › ".into(), Some(&app.field), String::new()),
        },
    }
}

/// The status line: in full where it fits, else in short, its parts dropped from the end until
/// it fits in `width` columns.
fn status_line(s: &Status, width: usize) -> String {
    let cost = s.cost.map_or_else(|| "cost n/a".to_string(), |c| format!("${c:.4}"));
    let percent = (s.context_used * 100).checked_div(s.context_length).unwrap_or(0);
    let (used, length) = (short(s.context_used), short(s.context_length));
    let (input, cached, output) = (
        short(s.total.prompt_tokens),
        short(s.total.cached_tokens),
        short(s.total.completion_tokens),
    );
    let full = [
        s.model.clone(),
        format!("context {used}/{length} ({percent}%)"),
        format!("in {input} ({cached} cached) out {output}"),
        cost.clone(),
        format!("step {}", s.step),
        "F1 help".into(),
    ];
    let compact =
        [format!("ctx {percent}%"), cost, format!("step {}", s.step), "F1".into(), s.model.clone()];
    let fits = |parts: &[String]| format!(" {}", parts.join(" · "));
    let line = fits(&full);
    if line.width() <= width {
        return line;
    }
    let mut parts = compact.to_vec();
    while parts.len() > 1 && fits(&parts).width() > width {
        parts.pop();
    }
    fits(&parts)
}

/// A count in a few characters: 950, 12.3k, 1.2M.
fn short(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}
