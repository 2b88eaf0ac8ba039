//! The rendering benchmark: streams tokens through the real [`App`] and [`present`] into a
//! terminal emulator (the `vt100` crate) and counts what reached the terminal: bytes per token,
//! and full-screen clears (the cause of flicker), which should be none.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use ratatui::backend::{Backend, ClearType, CrosstermBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use ratatui::{Terminal, TerminalOptions, Viewport};
use tiller_types::AgentEvent;

use crate::app::{App, Status};
use crate::term::present;
use crate::view::{HEIGHT, Theme};
use crate::worker::FromAgent;

/// What streaming cost on the terminal.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderReport {
    pub tokens: usize,
    pub bytes: usize,
    /// `ESC [ 2 J` and `ESC [ 3 J`: whole-screen and scrollback clears.
    pub full_clears: usize,
    /// The emulator's screen at the end, for checking that what was streamed is shown.
    pub screen: String,
}

impl RenderReport {
    pub fn bytes_per_token(&self) -> f64 {
        self.bytes as f64 / self.tokens.max(1) as f64
    }

    pub fn clears_per_token(&self) -> f64 {
        self.full_clears as f64 / self.tokens.max(1) as f64
    }
}

/// Streams `tokens` tokens of text (a line break every dozen) through the front end on a
/// `width` × `height` terminal, presenting after every token as the live loop does.
pub fn render(tokens: usize, width: u16, height: u16) -> io::Result<RenderReport> {
    let sink = Sink::default();
    let backend = Emulated {
        inner: CrosstermBackend::new(sink.clone()),
        size: Size::new(width, height),
        cursor: Position::new(0, 0),
    };
    let viewport = Viewport::Inline(HEIGHT);
    let mut terminal = Terminal::with_options(backend, TerminalOptions { viewport })?;
    let status = Status { model: "bench".into(), context_length: 8192, ..Status::default() };
    let mut app = App::new(status, false, Vec::new());
    let theme = Theme { color: true };
    present(&mut terminal, &mut app, theme)?;
    for n in 0..tokens {
        let text = if n % 12 == 11 { format!("t{n}\n") } else { format!("t{n} ") };
        app.on_agent(FromAgent::Event(AgentEvent::TextDelta { text }));
        present(&mut terminal, &mut app, theme)?;
    }
    let bytes = sink.take();
    let mut parser = vt100::Parser::new(height, width, 0);
    parser.process(&bytes);
    let full_clears = count(&bytes, b"\x1b[2J") + count(&bytes, b"\x1b[3J");
    Ok(RenderReport { tokens, bytes: bytes.len(), full_clears, screen: parser.screen().contents() })
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// A writer whose bytes can be taken out while a backend owns a clone of it.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Sink {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The crossterm backend writing to a [`Sink`], with a fixed size and a cursor that starts at
/// the top, since there is no real terminal to ask.
struct Emulated {
    inner: CrosstermBackend<Sink>,
    size: Size,
    cursor: Position,
}

impl Write for Emulated {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Write::flush(&mut self.inner)
    }
}

impl Backend for Emulated {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.inner.draw(content)
    }

    fn append_lines(&mut self, n: u16) -> io::Result<()> {
        self.inner.append_lines(n)
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        self.inner.show_cursor()
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        Ok(self.cursor)
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        self.cursor = position.into();
        self.inner.set_cursor_position(self.cursor)
    }

    fn clear(&mut self) -> io::Result<()> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> io::Result<Size> {
        Ok(self.size)
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        Ok(WindowSize { columns_rows: self.size, pixels: Size::default() })
    }

    fn flush(&mut self) -> io::Result<()> {
        Backend::flush(&mut self.inner)
    }

    fn scroll_region_up(&mut self, region: std::ops::Range<u16>, lines: u16) -> io::Result<()> {
        self.inner.scroll_region_up(region, lines)
    }

    fn scroll_region_down(&mut self, region: std::ops::Range<u16>, lines: u16) -> io::Result<()> {
        self.inner.scroll_region_down(region, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_never_clears_the_screen_and_shows_the_text() {
        let report = render(600, 80, 24).unwrap();
        assert_eq!(report.full_clears, 0);
        // The last complete line is in the scrollback area above the live view.
        assert!(report.screen.contains("t588 t589 t590 t591"), "{}", report.screen);
        assert!(report.screen.contains("t599"), "the live line: {}", report.screen);
        assert!(report.bytes_per_token() < 200.0, "{}", report.bytes_per_token());
    }
}
