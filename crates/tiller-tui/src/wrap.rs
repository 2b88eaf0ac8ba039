//! Cutting a line of text into terminal rows: at spaces where it can, by display width (wide
//! characters take two columns), with tabs as spaces and control characters dropped, so that a
//! row never spills past the terminal's edge and words stay whole when copied.

use unicode_width::UnicodeWidthChar;

/// `text` as rows of at most `width` columns; an empty text is one empty row.
pub fn rows(text: &str, width: usize) -> Vec<String> {
    let width = width.max(2);
    // Escape sequences go whole (`ESC [2J`, not just its ESC), then any control left.
    let text = tiller_types::text::printable(&text.replace('\t', "    ")).into_owned();
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut used = 0;
    // Where the last space in `row` ends, in bytes and columns.
    let mut last_space: Option<(usize, usize)> = None;
    for c in text.chars().filter(|c| !c.is_control()) {
        let w = c.width().unwrap_or(0);
        if used + w > width {
            match last_space.filter(|_| c != ' ') {
                Some((byte, cols)) => {
                    let rest = row.split_off(byte);
                    rows.push(std::mem::replace(&mut row, rest));
                    used -= cols;
                }
                None => {
                    rows.push(std::mem::take(&mut row));
                    used = 0;
                }
            }
            last_space = None;
            if c == ' ' && used == 0 {
                continue;
            }
        }
        row.push(c);
        used += w;
        if c == ' ' {
            last_space = Some((row.len(), used));
        }
    }
    rows.push(row);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_at_spaces_and_keeps_words_whole() {
        assert_eq!(rows("the quick brown fox", 10), ["the quick ", "brown fox"]);
        assert_eq!(rows("", 10), [""]);
        assert_eq!(rows("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(rows("a\tb\u{1b}c", 20), ["a    b"]);
        assert_eq!(rows("x\u{1b}[2Jy\u{1b}]0;title\u{7}z", 20), ["xyz"]);
    }

    #[test]
    fn wide_characters_take_two_columns() {
        assert_eq!(rows("日本語です", 4), ["日本", "語で", "す"]);
        for row in rows("漢字 and more 漢字漢字漢字", 7) {
            assert!(row.chars().map(|c| c.width().unwrap_or(0)).sum::<usize>() <= 7, "{row}");
        }
    }
}
