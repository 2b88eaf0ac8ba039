//! Text made safe to show: cut to a length with a marker, and cleared of terminal control
//! sequences. Pure functions, shared by the tools, the providers and the front ends.

use std::borrow::Cow;

/// `text` cut to its first `max_chars` characters, with `…` when something was dropped.
pub fn clip(text: &str, max_chars: usize) -> Cow<'_, str> {
    clip_marked(text, max_chars, |_| "…".into())
}

/// `text` cut to its first `max_chars` characters, followed by `mark(dropped)` when `dropped`
/// characters were left out.
pub fn clip_marked(
    text: &str,
    max_chars: usize,
    mark: impl FnOnce(usize) -> String,
) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => text.into(),
        Some((at, _)) => {
            let dropped = text[at..].chars().count();
            format!("{}{}", &text[..at], mark(dropped)).into()
        }
    }
}

/// `text` cut to at most about `max_bytes`, keeping its head and tail and saying how much was
/// left out in between.
pub fn clip_middle(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return text.into();
    }
    let keep = max_bytes / 2;
    let head_end = text.floor_char_boundary(keep);
    let tail_start = text.ceil_char_boundary(text.len() - keep);
    let omitted = tail_start - head_end;
    format!("{}\n[… {omitted} bytes omitted …]\n{}", &text[..head_end], &text[tail_start..]).into()
}

/// `text` without terminal control: escape sequences (CSI such as `ESC [2J`, OSC such as a
/// window title, and two-byte ones) are removed whole, and every other control character but
/// newline and tab is dropped, so that what a model or a file says cannot drive the terminal.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            // CSI, as ESC [ or the one-character C1 form: parameters up to a final byte.
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                skip_csi(&mut chars);
            }
            '\u{9b}' => skip_csi(&mut chars),
            // OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \).
            '\x1b' if matches!(chars.peek(), Some(']' | 'P' | 'X' | '^' | '_')) => {
                chars.next();
                skip_string(&mut chars);
            }
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            // Any other escape: intermediate bytes (`ESC ( B`), then one final character.
            '\x1b' => {
                while chars.next_if(|c| (' '..='/').contains(c)).is_some() {}
                chars.next();
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.into()
}

fn skip_csi(chars: &mut impl Iterator<Item = char>) {
    for c in chars.by_ref() {
        if ('\x40'..='\x7e').contains(&c) {
            break;
        }
    }
}

fn skip_string(chars: &mut std::iter::Peekable<impl Iterator<Item = char>>) {
    while let Some(c) = chars.next() {
        match c {
            '\x07' | '\u{9c}' => break,
            '\x1b' if chars.peek() == Some(&'\\') => {
                chars.next();
                break;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_middle_cuts_on_char_boundaries() {
        let text = "é".repeat(100);
        let cut = clip_middle(&text, 51);
        assert!(cut.starts_with("éééé") && cut.ends_with("éééé"), "{cut}");
        assert!(cut.contains("bytes omitted"));
        assert_eq!(clip_middle("short", 10), "short");
    }

    #[test]
    fn clips_on_characters_with_a_marker() {
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("ééé", 1), "é…");
        let marked = clip_marked("abcdef", 2, |n| format!("… [{n} more]"));
        assert_eq!(marked, "ab… [4 more]");
    }

    #[test]
    fn removes_escape_sequences_whole_and_keeps_newlines_and_tabs() {
        let raw = "a\x1b[2J\x1b[1;31mred\x1b[0m\x1b]0;pwned\x07b\x1b]8;;http://x\x1b\\link\x1b(B\r\n\tc\u{9b}31md\x08";
        assert_eq!(printable(raw), "aredblink\n\tcd");
        assert!(matches!(printable("plain\ttext\n"), Cow::Borrowed(_)));
        // A sequence cut off at the end takes nothing after it.
        assert_eq!(printable("x\x1b[12"), "x");
        assert_eq!(printable("x\x1b]0;title"), "x");
    }
}
