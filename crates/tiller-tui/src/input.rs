//! The text fields (the task prompt, notes for the model, commit messages): a line editor with
//! shell keys, built on `ratatui-textarea`. Enter is the caller's; Alt-Enter or Shift-Enter
//! starts a new line, a pasted block stays one text, and the prompt keeps a history that Up and
//! Down walk and Ctrl-R searches.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Modifier, Style};
use ratatui_textarea::{CursorMove, DataCursor, TextArea, WrapMode};

/// Entries of history kept.
pub const HISTORY_LIMIT: usize = 500;

/// One editable text field.
pub struct Field {
    area: TextArea<'static>,
    /// Earlier entries, oldest first.
    history: Vec<String>,
    /// Which entry Up/Down or Ctrl-R show, and the text that was being typed before.
    browsing: Option<(usize, String)>,
}

impl Default for Field {
    fn default() -> Self {
        Field::new(Vec::new())
    }
}

impl Field {
    pub fn new(history: Vec<String>) -> Field {
        let mut field = Field { area: TextArea::default(), history, browsing: None };
        field.set("");
        field
    }

    pub fn text(&self) -> String {
        self.area.lines().join("\n")
    }

    pub fn is_empty(&self) -> bool {
        self.area.is_empty()
    }

    /// Replaces the text; the cursor goes to its end.
    pub fn set(&mut self, text: &str) {
        let mut area = TextArea::new(text.split('\n').map(str::to_string).collect());
        area.set_wrap_mode(WrapMode::Word);
        area.set_cursor_line_style(Style::new());
        area.set_cursor_style(Style::new().add_modifier(Modifier::REVERSED));
        area.move_cursor(CursorMove::Bottom);
        area.move_cursor(CursorMove::End);
        self.area = area;
    }

    /// Takes the text out, leaving the field empty; a non-empty text goes into the history.
    pub fn take(&mut self) -> String {
        let text = self.text();
        self.set("");
        self.browsing = None;
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            self.history.push(text.clone());
            let over = self.history.len().saturating_sub(HISTORY_LIMIT);
            self.history.drain(..over);
        }
        text
    }

    /// Inserts pasted text at the cursor, line breaks included.
    pub fn paste(&mut self, text: &str) {
        self.area.insert_str(text.replace("\r\n", "\n").replace('\r', "\n"));
    }

    /// Applies an editing key. Enter is not one: the caller decides what it does.
    pub fn key(&mut self, key: KeyEvent) {
        let (ctrl, alt) = (
            key.modifiers.contains(KeyModifiers::CONTROL),
            key.modifiers.contains(KeyModifiers::ALT),
        );
        match key.code {
            KeyCode::Enter if alt || key.modifiers.contains(KeyModifiers::SHIFT) => {
                self.area.insert_newline()
            }
            KeyCode::Enter => {}
            KeyCode::Up if !ctrl && !alt && self.area.cursor().0 == 0 => self.recall(-1),
            KeyCode::Down if !ctrl && !alt && self.on_last_line() && self.browsing.is_some() => {
                self.recall(1)
            }
            KeyCode::Char('u') if ctrl => {
                self.area.delete_line_by_head();
            }
            KeyCode::Char('r') if ctrl => self.search(),
            // Not the widget's undo, redo, copy, cut and scroll keys: a shell has none of them.
            KeyCode::Char('z' | 'c' | 'x' | 'v' | 'j') if ctrl => {}
            KeyCode::Char('v') if alt => {}
            _ => {
                self.area.input(key);
            }
        }
    }

    fn on_last_line(&self) -> bool {
        self.area.cursor().0 + 1 >= self.area.lines().len()
    }

    /// Shows the history entry `step` away from the one shown (or from the typed text).
    fn recall(&mut self, step: isize) {
        let (at, draft) = self.browsing.take().unwrap_or_else(|| (self.history.len(), self.text()));
        let next = at as isize + step;
        if next < 0 || self.history.is_empty() {
            self.browsing = Some((at, draft));
            return;
        }
        let next = next as usize;
        let text = self.history.get(next).cloned().unwrap_or_else(|| draft.clone());
        self.set(&text);
        if next < self.history.len() {
            self.browsing = Some((next, draft));
        }
    }

    /// Ctrl-R: the latest earlier entry containing what was typed; again, the one before.
    fn search(&mut self) {
        let (at, needle) =
            self.browsing.take().unwrap_or_else(|| (self.history.len(), self.text()));
        let found = self.history[..at].iter().rposition(|h| h.contains(needle.as_str()));
        match found {
            Some(n) => {
                let text = self.history[n].clone();
                self.set(&text);
                self.browsing = Some((n, needle));
            }
            None => self.browsing = Some((at, needle)),
        }
    }

    /// Tab: completes the last word by `complete` (given the text before it, and the word)
    /// when the cursor is at the end of the text.
    pub fn complete(&mut self, complete: impl Fn(&str, &str) -> Option<String>) {
        let text = self.text();
        let DataCursor(row, col) = self.area.cursor();
        let at_end = self.on_last_line() && col == self.area.lines()[row].chars().count();
        let start = text.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        if let Some(done) = at_end.then(|| complete(&text[..start], &text[start..])).flatten() {
            self.set(&format!("{}{done}", &text[..start]));
        }
    }

    /// The widget to draw.
    pub fn widget(&self) -> &TextArea<'static> {
        &self.area
    }

    /// Rows the text takes at `width` columns, wrapped at words.
    pub fn rows(&self, width: u16) -> u16 {
        let width = usize::from(width.max(1));
        let rows: usize = self.area.lines().iter().map(|l| crate::wrap::rows(l, width).len()).sum();
        rows.max(1) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(field: &mut Field, code: KeyCode, modifiers: KeyModifiers) {
        field.key(KeyEvent::new(code, modifiers));
    }

    fn typed(field: &mut Field, text: &str) {
        for c in text.chars() {
            press(field, KeyCode::Char(c), KeyModifiers::NONE);
        }
    }

    #[test]
    fn shell_keys_edit_the_line() {
        let mut f = Field::default();
        typed(&mut f, "fix the bug now");
        press(&mut f, KeyCode::Char('w'), KeyModifiers::CONTROL);
        assert_eq!(f.text(), "fix the bug ");
        press(&mut f, KeyCode::Char('a'), KeyModifiers::CONTROL);
        typed(&mut f, "please ");
        press(&mut f, KeyCode::Right, KeyModifiers::CONTROL);
        press(&mut f, KeyCode::Char('k'), KeyModifiers::CONTROL);
        assert_eq!(f.text(), "please fix ");
        press(&mut f, KeyCode::Char('u'), KeyModifiers::CONTROL);
        assert_eq!(f.text(), "");
        typed(&mut f, "a?b");
        press(&mut f, KeyCode::Home, KeyModifiers::NONE);
        press(&mut f, KeyCode::Delete, KeyModifiers::NONE);
        assert_eq!(f.text(), "?b");
    }

    #[test]
    fn alt_enter_and_paste_make_one_multi_line_text() {
        let mut f = Field::default();
        typed(&mut f, "one");
        press(&mut f, KeyCode::Enter, KeyModifiers::ALT);
        f.paste("two\r\nthree");
        assert_eq!(f.text(), "one\ntwo\nthree");
        assert_eq!(f.take(), "one\ntwo\nthree");
        assert!(f.is_empty());
    }

    #[test]
    fn up_and_down_walk_the_history_and_ctrl_r_searches_it() {
        let mut f = Field::new(vec!["add tests".into(), "fix greet".into()]);
        typed(&mut f, "dra");
        press(&mut f, KeyCode::Up, KeyModifiers::NONE);
        assert_eq!(f.text(), "fix greet");
        press(&mut f, KeyCode::Up, KeyModifiers::NONE);
        assert_eq!(f.text(), "add tests");
        press(&mut f, KeyCode::Up, KeyModifiers::NONE);
        assert_eq!(f.text(), "add tests");
        press(&mut f, KeyCode::Down, KeyModifiers::NONE);
        press(&mut f, KeyCode::Down, KeyModifiers::NONE);
        assert_eq!(f.text(), "dra", "the draft comes back");
        f.set("test");
        press(&mut f, KeyCode::Char('r'), KeyModifiers::CONTROL);
        assert_eq!(f.text(), "add tests");
        f.take();
        assert_eq!(f.history, ["add tests", "fix greet", "add tests"]);
    }
}
