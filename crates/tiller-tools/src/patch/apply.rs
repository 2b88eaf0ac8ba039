//! Applying an update's chunks to a file's text: finding each chunk (exactly first, then more and
//! more tolerantly), and, for a chunk that is not there, finding the lines most like it so the
//! error can show them.

use std::fmt::Write;

use super::{Chunk, ChunkLine, PatchError};

/// Line comparisons, strictest first: a chunk is placed by the strictest one that finds it.
const LEVELS: [fn(&str, &str) -> bool; 4] =
    [|a, b| a == b, |a, b| a.trim_end() == b.trim_end(), |a, b| a.trim() == b.trim(), folded_eq];

/// The text `text` becomes when `chunks` are applied in order, each found after the previous
/// one. Context lines and untouched lines stay as the file has them; added lines take the file's
/// usual line end, and the file keeps or lacks its final newline as before. `path` only names
/// the file in errors.
pub fn apply_chunks(path: &str, text: &str, chunks: &[Chunk]) -> Result<String, PatchError> {
    let lines = split(text);
    let bodies: Vec<&str> = lines.iter().map(|l| l.0).collect();
    let mut edits: Vec<(usize, &Chunk)> = Vec::with_capacity(chunks.len());
    let mut cursor = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        for anchor in &chunk.anchors {
            let Some(at) = find_anchor(&bodies, anchor, cursor) else {
                let best = closest(&bodies, &[anchor.as_str()]).0;
                return Err(PatchError::AnchorNotFound {
                    path: path.to_string(),
                    chunk: i + 1,
                    from: cursor + 1,
                    anchor: anchor.clone(),
                    closest: bodies.get(best).map(|l| (best + 1, l.to_string())),
                });
            };
            cursor = at + 1;
        }
        let old: Vec<&str> = chunk.old().collect();
        let start = if !old.is_empty() {
            find_chunk(&bodies, &old, cursor, chunk.at_eof).ok_or_else(|| {
                let (best, _) = closest(&bodies, &old);
                let window = bodies.iter().enumerate().skip(best).take(old.len());
                PatchError::NoMatch {
                    path: path.to_string(),
                    chunk: i + 1,
                    from: cursor + 1,
                    at_eof: chunk.at_eof,
                    expected: old.iter().map(|l| l.to_string()).collect(),
                    closest: window.map(|(n, l)| (n + 1, l.to_string())).collect(),
                }
            })?
        } else if chunk.anchors.is_empty() || chunk.at_eof {
            // Pure additions with nothing to place them go at the end.
            bodies.len()
        } else {
            cursor
        };
        edits.push((start, chunk));
        if !old.is_empty() || !chunk.anchors.is_empty() {
            cursor = start + old.len();
        }
    }
    // Only an end-of-file addition can come out of order, and it overlaps nothing.
    edits.sort_by_key(|e| e.0);
    Ok(rebuild(text, &lines, &edits))
}

/// The lines of `text` as (body, line end), the end being `\n`, `\r\n` or, last, empty.
fn split(text: &str) -> Vec<(&str, &str)> {
    text.split_inclusive('\n')
        .map(|l| {
            let body = l.strip_suffix('\n').map_or(l, |b| b.strip_suffix('\r').unwrap_or(b));
            (body, &l[body.len()..])
        })
        .collect()
}

/// `lines` with each chunk of `edits` put in at its start line, joined again.
fn rebuild(text: &str, lines: &[(&str, &str)], edits: &[(usize, &Chunk)]) -> String {
    let crlf = text.matches("\r\n").count();
    let eol = if crlf * 2 > text.matches('\n').count() { "\r\n" } else { "\n" };
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(lines.len());
    let mut at = 0;
    for &(start, chunk) in edits {
        out.extend_from_slice(&lines[at..start]);
        at = start;
        for line in &chunk.lines {
            match line {
                ChunkLine::Context(_) => out.push(lines[at]),
                ChunkLine::Remove(_) => {}
                ChunkLine::Add(added) => out.push((added, eol)),
            }
            at += usize::from(!matches!(line, ChunkLine::Add(_)));
        }
    }
    out.extend_from_slice(&lines[at..]);
    let ends_open = text.is_empty() || text.ends_with('\n');
    let last = out.len().saturating_sub(1);
    let mut new = String::with_capacity(text.len());
    for (i, (body, end)) in out.into_iter().enumerate() {
        new.push_str(body);
        new.push_str(match end {
            _ if i == last && !ends_open => "",
            "" => eol,
            end => end,
        });
    }
    new
}

/// Where `old` starts in `lines` at `from` or after (only at the very end if `at_eof`).
fn find_chunk(lines: &[&str], old: &[&str], from: usize, at_eof: bool) -> Option<usize> {
    let last = lines.len().checked_sub(old.len())?;
    let starts = if at_eof { last.max(from)..=last } else { from..=last };
    LEVELS.iter().find_map(|same| {
        starts.clone().find(|&s| old.iter().zip(&lines[s..]).all(|(o, l)| same(l, o)))
    })
}

/// The first line at `from` or after that is `anchor`, or else contains it, or else contains
/// it once punctuation is folded.
fn find_anchor(lines: &[&str], anchor: &str, from: usize) -> Option<usize> {
    let folded: String = anchor.chars().map(fold).collect();
    let levels: [&dyn Fn(&str) -> bool; 3] =
        [&|l| l.trim() == anchor, &|l| l.contains(anchor), &|l| {
            l.chars().map(fold).collect::<String>().contains(&folded)
        }];
    let rest = lines.get(from..)?;
    levels.iter().find_map(|matches| rest.iter().position(|l| matches(l))).map(|i| from + i)
}

/// Whether two lines are equal but for surrounding whitespace and typographic punctuation.
fn folded_eq(a: &str, b: &str) -> bool {
    a.trim().chars().map(fold).eq(b.trim().chars().map(fold))
}

/// The ASCII look-alike of typographic punctuation and spaces.
fn fold(c: char) -> char {
    match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '«' | '»' => '"',
        '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => ' ',
        c => c,
    }
}

/// The start of the window of `lines` most like `want` and its similarity (0 to 1): the mean
/// over its lines of the Dice coefficient of their character pairs. Ties go to the earliest.
fn closest(lines: &[&str], want: &[&str]) -> (usize, f64) {
    let n = want.len().min(lines.len());
    if n == 0 {
        return (0, 0.0);
    }
    let want: Vec<Vec<u64>> = want.iter().map(|l| pairs(l)).collect();
    let have: Vec<Vec<u64>> = lines.iter().map(|l| pairs(l)).collect();
    let mut best = (0, -1.0);
    for start in 0..=lines.len() - n {
        let score =
            (0..n).map(|i| dice(&want[i], &have[start + i])).sum::<f64>() / want.len() as f64;
        if score > best.1 {
            best = (start, score);
        }
    }
    best
}

/// The sorted character pairs of a trimmed line (a one-character line counts as one pair).
fn pairs(line: &str) -> Vec<u64> {
    let chars: Vec<u64> = line.trim().chars().map(|c| u64::from(fold(c))).collect();
    let mut pairs: Vec<u64> = match chars.len() {
        0 | 1 => chars.iter().map(|c| c | (1 << 63)).collect(),
        _ => chars.windows(2).map(|w| (w[0] << 32) | w[1]).collect(),
    };
    pairs.sort_unstable();
    pairs
}

/// `2 |a ∩ b| / (|a| + |b|)` of two sorted multisets; 1 when both are empty.
fn dice(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => (i, j, common) = (i + 1, j + 1, common + 1),
        }
    }
    2.0 * common as f64 / (a.len() + b.len()) as f64
}

/// The body of a [`PatchError::NoMatch`] message: the lines the chunk expects, and the closest
/// lines of the file with `>` on those that differ.
pub(super) fn mismatch(
    expected: &[String],
    closest: &[(usize, String)],
    at_eof: bool,
    from: usize,
) -> String {
    let width = closest.last().map_or(1, |(n, _)| n.to_string().len());
    let mut out = String::from("The chunk expects these lines (context and removed):\n");
    // Writing to a `String` cannot fail, here and below.
    for line in expected {
        let _ = writeln!(out, "  {:width$} | {line}", "");
    }
    let (Some((first, _)), Some((last, _))) = (closest.first(), closest.last()) else {
        out.push_str("but the file is empty.");
        return out;
    };
    let _ = writeln!(out, "The closest lines in the file, {first} to {last} (`>`: differs):");
    let mut all_same = closest.len() == expected.len();
    for (i, (n, line)) in closest.iter().enumerate() {
        let same = expected.get(i).is_some_and(|e| folded_eq(e, line));
        all_same &= same;
        let mark = if same { ' ' } else { '>' };
        let _ = writeln!(out, "{mark} {n:>width$} | {line}");
    }
    if all_same && at_eof {
        out.push_str(
            "These lines are in the file, but not at its end as `*** End of File` requires.",
        );
    } else if all_same {
        // Anywhere from `from` on, the search would have found them.
        let _ = write!(
            out,
            "These lines come before line {from}, where this chunk may start: chunks must follow \
             the file's order, each after the previous chunk and after its `@@` anchors."
        );
    } else {
        out.push_str("Fix the chunk so its context and removed lines match the file exactly.");
    }
    out
}

/// The end of a [`PatchError::AnchorNotFound`] message.
pub(super) fn closest_line(closest: &Option<(usize, String)>) -> String {
    closest
        .as_ref()
        .map(|(n, line)| format!("; the closest line is {n}: {line:?}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::{PatchOp, parse_patch};

    use super::*;

    /// Applies the update body `body` to `old`.
    fn apply(old: &str, body: &str) -> Result<String, PatchError> {
        let text = format!("*** Begin Patch\n*** Update File: f\n{body}\n*** End Patch");
        let ops = parse_patch(&text).expect("test patches parse").ops;
        let [PatchOp::Update { chunks, .. }] = &ops[..] else { panic!("one update expected") };
        apply_chunks("f", old, chunks)
    }

    #[test]
    fn applies_chunks() {
        let two_fns = "fn a() {\n    ret 1\n}\nfn b() {\n    ret 1\n}\n";
        let cases = [
            ("replace", "a\nb\nc\n", " a\n-b\n+B\n c", "a\nB\nc\n"),
            (
                "two chunks",
                "1\n2\n3\n4\n5\n6\n",
                "@@\n 1\n-2\n+two\n@@\n 5\n-6\n+six",
                "1\ntwo\n3\n4\n5\nsix\n",
            ),
            ("first match wins", "x\ny\nx\ny\n", "-x\n+X\n y", "X\ny\nx\ny\n"),
            (
                "anchor picks the later match",
                two_fns,
                "@@ fn b() {\n-    ret 1\n+    ret 2",
                "fn a() {\n    ret 1\n}\nfn b() {\n    ret 2\n}\n",
            ),
            (
                "stacked anchors",
                "class A:\n  def f():\n    pass\nclass B:\n  def f():\n    pass\n",
                "@@ class B:\n@@ def f():\n-    pass\n+    return 1",
                "class A:\n  def f():\n    pass\nclass B:\n  def f():\n    return 1\n",
            ),
            (
                "an equal line beats an earlier line containing the anchor",
                "// see fn b()\nfn a() {\n    ret 1\n}\nfn b()\n    ret 1\n",
                "@@ fn b()\n-    ret 1\n+    ret 3",
                "// see fn b()\nfn a() {\n    ret 1\n}\nfn b()\n    ret 3\n",
            ),
            (
                "anchor contained in a line",
                "impl Foo {\n    pub fn run(&self) {\n        go();\n    }\n}\n",
                "@@ fn run\n-        go();\n+        stop();",
                "impl Foo {\n    pub fn run(&self) {\n        stop();\n    }\n}\n",
            ),
            (
                "end of file picks the last match",
                "end\nx\nend\n",
                "-end\n+END\n*** End of File",
                "end\nx\nEND\n",
            ),
            (
                "trailing whitespace ignored, the file's context kept",
                "a  \nb\t\nc\n",
                " a\n-b\n+B\n c",
                "a  \nB\nc\n",
            ),
            (
                "indentation ignored, the file's context kept",
                "if x:\n    y()\n    z()\n",
                " if x:\n-y()\n+    w()\n z()",
                "if x:\n    w()\n    z()\n",
            ),
            (
                "typographic punctuation folded",
                "say(\u{201C}don\u{2019}t\u{201D}) \u{2014} now\n",
                "-say(\"don't\") - now\n+say(\"do\")",
                "say(\"do\")\n",
            ),
            ("CRLF kept", "a\r\nb\r\nc\r\n", " a\n-b\n+B\n+B2", "a\r\nB\r\nB2\r\nc\r\n"),
            ("mixed line ends kept", "a\r\nb\nc\n", "-c\n+C", "a\r\nb\nC\n"),
            ("no final newline kept", "a\nb", "-b\n+B", "a\nB"),
            ("addition after a last line without newline", "a\nb", "@@ b\n+c", "a\nb\nc"),
            ("pure addition goes at the end", "a\nb\n", "+c\n+d", "a\nb\nc\nd\n"),
            ("pure addition after its anchor", "a\nb\nc\n", "@@ a\n+a2", "a\na2\nb\nc\n"),
            ("pure addition to an empty file", "", "+first", "first\n"),
            ("delete lines", "a\nb\nc\nd\n", " a\n-b\n-c\n d", "a\nd\n"),
            ("delete everything", "a\n", "-a", ""),
            ("empty context lines", "a\n\nb\n", " a\n\n-b\n+c", "a\n\nc\n"),
        ];
        for (name, old, body, new) in cases {
            assert_eq!(apply(old, body).as_deref(), Ok(new), "{name}");
        }
    }

    #[test]
    fn explains_chunks_that_do_not_apply() {
        let file = "fn main() {\n    let x = 1;\n    println!(\"{x}\");\n}\n";
        let cases = [
            (
                "missing context quotes both sides",
                file,
                " fn main() {\n-    let x = 2;\n+    let x = 3;",
                "f: chunk 1 does not match the file (searched from line 1 on).\n\
                 The chunk expects these lines (context and removed):\n\
                 \x20   | fn main() {\n\
                 \x20   |     let x = 2;\n\
                 The closest lines in the file, 1 to 2 (`>`: differs):\n\
                 \x20 1 | fn main() {\n\
                 > 2 |     let x = 1;\n\
                 Fix the chunk so its context and removed lines match the file exactly.",
            ),
            (
                "chunks out of order",
                "a\nb\nc\n",
                "@@\n-c\n+C\n@@\n-a\n+A",
                "f: chunk 2 does not match the file (searched from line 4 on).\n\
                 The chunk expects these lines (context and removed):\n\
                 \x20   | a\n\
                 The closest lines in the file, 1 to 1 (`>`: differs):\n\
                 \x20 1 | a\n\
                 These lines come before line 4, where this chunk may start",
            ),
            (
                "end of file chunk elsewhere",
                "a\nb\n",
                "-a\n+A\n*** End of File",
                "f: chunk 1 does not match the file (searched from line 1 on, at the end of the \
                 file).\nThe chunk expects these lines (context and removed):\n\
                 \x20   | a\n\
                 The closest lines in the file, 1 to 1 (`>`: differs):\n\
                 \x20 1 | a\n\
                 These lines are in the file, but not at its end",
            ),
            (
                "anchor not found",
                file,
                "@@ fn mian()\n-}\n+};",
                "f: chunk 1: no line from line 1 on contains the `@@` anchor \"fn mian()\"; \
                 the closest line is 1: \"fn main() {\"",
            ),
            (
                "anchor only before the cursor",
                "a\nb\n",
                "@@\n-b\n+B\n@@ a\n+x",
                "f: chunk 2: no line from line 3 on contains the `@@` anchor \"a\"",
            ),
            (
                "chunk longer than the file",
                "a\n",
                " a\n-b",
                "The closest lines in the file, 1 to 1 (`>`: differs):\n  1 | a\nFix",
            ),
            ("empty file", "", "-a", "  | a\nbut the file is empty."),
        ];
        for (name, old, body, message) in cases {
            let err = apply(old, body).expect_err(name).to_string();
            assert!(err.contains(message), "{name}:\n{err}");
        }
    }

    #[test]
    fn similarity_prefers_the_nearest_window() {
        let lines = ["alpha", "beta", "gamma", "delta"];
        assert_eq!(closest(&lines, &["gamma", "deltx"]).0, 2);
        assert_eq!(closest(&lines, &["alpha"]), (0, 1.0));
        assert_eq!(dice(&pairs("abc"), &pairs("xyz")), 0.0);
        assert_eq!(closest(&[], &["a"]), (0, 0.0));
    }
}
